"""Helpers shared by tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from devpulse import Router, config_from_mapping, make_plugin_manager


def router_with(config: Mapping[str, Any] | None = None, plugins: Sequence[object] = ()) -> Router:
    """A Router over the bundled plugins plus `plugins`, with no installed entry points."""
    cfg = config_from_mapping(config or {})
    pm = make_plugin_manager(cfg, entry_points=False, extra=plugins)
    return Router(cfg, plugin_manager=pm)
