"""The memory preflight plugin: checks each local decision, and adds `devpulse ai`/`models`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import click

from devpulse.core.config import Config
from devpulse.core.errors import ConfigError
from devpulse.core.inline import must_not_block
from devpulse.core.ledger import Ledger
from devpulse.core.logs import get_logger
from devpulse.core.types import Decision, DeviceMemory, Request, Side, Verdict
from devpulse.hookspecs import hookimpl
from devpulse.plugins.preflight.estimator import ModelUnknown, check_cache_type
from devpulse.plugins.preflight.memory import Memory, MemoryVerdict
from devpulse.plugins.preflight.servers import across_servers

log = get_logger(__name__)


class MemoryPreflight:
    """Before a local dispatch: does the model fit now? If not, go to the cloud when privacy
    allows, else refuse clearly. A model nobody can describe is let through, with one warning
    per backend and model (again only after it was described in between).

    Loop-safe (`core/inline.py`): with its readings and estimates cached it is pure CPU;
    `Memory` says when it must probe or ask a server first.
    """

    loop_safe = True

    def __init__(
        self,
        config: Config,
        probe: Callable[[], list[list[DeviceMemory] | None]],
        hook: Any = None,
    ):
        check_cache_type(config.preflight.kv_cache_type)  # at start-up, not at the first estimate
        self.config = config
        self.memory = Memory(config, probe, hook=hook, busy=self._busy)
        self._warned: set[tuple[str, str]] = set()
        self._books: Ledger | None = None
        self._lock = threading.Lock()

    @hookimpl
    def preflight(self, request: Request, decision: Decision, dispatching: bool) -> Verdict | None:
        if decision.side is not Side.LOCAL or not self.config.preflight.enabled:
            return None
        try:
            est = self.memory.estimate_for(decision.model, backend=decision.backend)
            # judge asks the servers only when the model does not fit as is
            verdict = self.memory.judge(est.need_mb, backend=decision.backend, model=decision.model)
        except ModelUnknown as exc:  # nobody can describe it: let it through
            self._unknown(decision, exc)
            return None
        with self._lock:
            self._warned.discard((decision.backend, decision.model))
        log.debug(
            "preflight.checked",
            backend=decision.backend,
            model=decision.model,
            need_mb=est.need_mb,
            verdict=verdict.verdict,
            reason=verdict.reasons[0],
        )
        cleaned = ""
        if verdict.reclaimable_mb and verdict.verdict == "tight" and self.config.babysit.auto_clean:
            if dispatching:
                verdict, cleaned = self._auto_clean(decision, est.need_mb, verdict)
            else:  # only deciding (`devpulse route`): nothing is unloaded for a request not sent
                cleaned = "; auto-clean would unload idle models to make room when it is sent"
        details = {k: v for k, v in verdict.as_dict().items() if k != "reasons"}
        details["estimate"] = est.as_dict()
        if verdict.verdict != "no_fit":
            return Verdict(
                "pass",
                f"memory preflight: {decision.model} {verdict.verdict} ({verdict.reasons[0]})"
                + cleaned,
                details=details,
            )
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

    def _auto_clean(
        self, decision: Decision, need_mb: int, verdict: MemoryVerdict
    ) -> tuple[MemoryVerdict, str]:
        """Auto-clean: the model fits only after unloading idle models, so unload them (the
        babysit logic: idle and unpinned only, least recently used first) and judge again.
        Returns the new verdict and a note for the decision's reasons."""
        from devpulse.plugins.babysit.watchdog import Unloader  # noqa: PLC0415

        must_not_block("auto-clean unloads models")
        unloader = Unloader(
            self.config, self.memory.hook, self._ledger(), pins=self.config.babysit.pins
        )

        def budget() -> int:
            self.memory.devices(fresh=True)
            return self.memory.target().budget_mb

        kind = verdict.device.kind
        done = [u for u in unloader.free_until(budget, need_mb, kind=kind) if u.confirmed]
        if not done:
            return verdict, ""
        self.memory.devices(fresh=True)
        again = self.memory.judge(need_mb, backend=decision.backend, model=decision.model)
        names = ", ".join(u.name for u in done)
        freed = sum(u.freed_mb for u in done)
        log.info("preflight.auto_clean", model=decision.model, unloaded=names, freed_mb=freed)
        return again, f"; auto-clean unloaded {names} ({freed} MB freed)"

    def _ledger(self) -> Ledger | None:
        """The ledger that says which models are busy, opened on first use."""
        if self._books is None and self.config.ledger.enabled:
            try:
                self._books = Ledger.from_config(self.config)
            except ConfigError as exc:
                log.warning("preflight.no_ledger", reason=str(exc))
        return self._books

    def _busy(self) -> set[tuple[str, str]]:
        """Models with a request in flight now, in any process: none to unload to make room."""
        must_not_block("reading the ledger's requests in flight")
        books = self._ledger()
        if books is None:
            return set()
        return across_servers(self.config, books.in_flight(self.config.failover.budget_s))

    def _unknown(self, decision: Decision, exc: ModelUnknown) -> None:
        key = (decision.backend, decision.model)
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(
            "preflight.unknown_model",
            backend=decision.backend,
            model=decision.model,
            reason=str(exc),
        )

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from devpulse.plugins.preflight.commands import ai_command, models_command  # noqa: PLC0415

        cli.add_command(ai_command(self.memory))
        cli.add_command(models_command(self.memory))
