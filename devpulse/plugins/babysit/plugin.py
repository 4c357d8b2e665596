"""The babysit plugin: adds `devpulse babysit` over the hooks of the plugin manager."""

from __future__ import annotations

from typing import Any

import click

from devpulse.core.config import Config
from devpulse.hookspecs import hookimpl


class BabysitPlugin:
    """Registers the watchdog command; the watchdog itself reads memory and models through
    the `probe_memory`, `loaded_models` and `unload_model` hooks."""

    def __init__(self, config: Config, hook: Any) -> None:
        self.config = config
        self.hook = hook

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from devpulse.plugins.babysit.command import babysit_command  # noqa: PLC0415

        cli.add_command(babysit_command(self.config, self.hook))
