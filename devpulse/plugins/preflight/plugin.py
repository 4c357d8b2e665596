"""The memory preflight plugin: checks each local decision, and adds `devpulse ai`/`models`."""

from __future__ import annotations

from collections.abc import Callable

import click

from devpulse.core.config import Config
from devpulse.core.types import Decision, DeviceMemory, Request, Side, Verdict
from devpulse.hookspecs import hookimpl
from devpulse.plugins.preflight.estimator import ModelUnknown
from devpulse.plugins.preflight.memory import Memory


class MemoryPreflight:
    """Before a local dispatch: does the model fit now? If not, go to the cloud when privacy
    allows, else refuse clearly. A model nobody can describe is let through, with a log line."""

    def __init__(self, config: Config, probe: Callable[[], list[list[DeviceMemory] | None]]):
        self.config = config
        self.memory = Memory(config, probe)

    @hookimpl
    def preflight(self, request: Request, decision: Decision) -> Verdict | None:
        if decision.side is not Side.LOCAL or not self.config.preflight.enabled:
            return None
        try:
            need = self.memory.estimate_for(decision.model, backend=decision.backend).need_mb
        except ModelUnknown:  # nobody can describe it: let it through (the cache remembers)
            return None
        verdict = self.memory.judge(need)  # asks the servers only when it does not fit as is
        if verdict.verdict != "no_fit":
            return None
        details = {k: v for k, v in verdict.as_dict().items() if k != "reasons"}
        reason = f"{decision.model} does not fit in memory now ({verdict.reasons[0]})"
        if decision.classification is not None and decision.classification.local_only:
            return Verdict(
                "refuse",
                f"{reason}; the request is local-only, so it cannot go to the cloud",
                details=details,
            )
        cloud = self.config.cloud
        return Verdict(
            "reroute",
            reason,
            details=details,
            decision=Decision(
                Side.CLOUD,
                cloud.backend,
                cloud.model,
                ("memory preflight: local model does not fit",),
            ),
        )

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from devpulse.plugins.preflight.commands import ai_command, models_command  # noqa: PLC0415

        cli.add_command(ai_command(self.memory))
        cli.add_command(models_command(self.memory))
