"""The Router: classify -> route -> preflight -> dispatch, with on_failure between attempts.

The privacy partition is enforced in the core, immediately before every dispatch: no plugin
can send a local-only request to a backend marked cloud. So are the other invariants: every
dispatched decision passed preflight (`_checked`, the one place verdicts apply), each
backend's circuit is gated and counted where requests are sent, and `failover.budget_s`
bounds every read and wait. The attempts themselves are one state machine
(`core/attempts.py`) that a sync and an async driver (`core/drivers.py`) perform.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, Self

import pluggy

from devpulse.core import inline
from devpulse.core.attempts import run
from devpulse.core.books import record_call
from devpulse.core.bounded import Cancellation
from devpulse.core.breaker import Breakers
from devpulse.core.config import Config, load_config
from devpulse.core.drivers import adrive, drive
from devpulse.core.errors import (
    DevPulseError,
    DispatchFailed,
    PreflightRefused,
    PrivacyBlocked,
    RoutingError,
)
from devpulse.core.ledger import Ledger
from devpulse.core.logs import get_logger
from devpulse.core.plugins import make_plugin_manager
from devpulse.core.types import (
    Chunk,
    Classification,
    Decision,
    Labels,
    PrivacyLevel,
    Request,
    Response,
    Side,
    Verdict,
)

# How many times in a row preflight verdicts may reroute one decision.
MAX_REROUTES = 4


log = get_logger(__name__)


class Router:
    """Route requests to the right side and answer them through the installed plugins.

    Build one per process and reuse it. `plugin_manager` defaults to a fresh one with the
    bundled plugins and installed entry points (see `make_plugin_manager`). `clock` (seconds,
    monotonic) measures each request's time budget.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        ledger: Ledger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config if config is not None else load_config()
        self.pm = plugin_manager or make_plugin_manager(self.config)
        self.clock = clock
        self._ledger = ledger
        self._ledger_lock = threading.Lock()
        self.breakers = Breakers(self.config.failover, store=lambda: self.ledger)

    @property
    def ledger(self) -> Ledger | None:
        """The ledger requests are recorded in (opened on first use), or None if disabled."""
        if self._ledger is None and self.config.ledger.enabled:
            with self._ledger_lock:
                if self._ledger is None:
                    self._ledger = Ledger.from_config(self.config)
        return self._ledger

    def close(self) -> None:
        """Commit the ledger rows still queued, so that another process reads them now.

        Nothing is lost without it (what is queued is committed at interpreter exit, and
        this process's reads wait for it); the router stays usable after it.
        """
        if self._ledger is not None:
            self._ledger.flush()

    async def aclose(self) -> None:
        """`close` for async callers: the wait for SQLite runs in a thread."""
        if self._ledger is not None:
            await asyncio.to_thread(self._ledger.flush)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def classify(self, request: Request) -> Classification:
        """Run every classifier and merge their labels; the highest privacy level wins."""
        labels: list[Labels] = [
            lab for lab in self.pm.hook.classify(request=request) if lab is not None
        ]
        levels = [lab.privacy_level for lab in labels if lab.privacy_level is not None]
        findings = tuple(f for lab in labels for f in lab.findings)
        level = max([*levels, *(f.level for f in findings)], default=PrivacyLevel.PUBLIC)
        if request.task is not None:
            task, rule = request.task, "explicit"
        else:
            named = next((lab for lab in labels if lab.task_class is not None), None)
            if named is not None and named.task_class is not None:
                task, rule = named.task_class, named.rule or "unnamed rule"
            else:
                task, rule = self.config.classify.default_task, "no classifier named one"
        return Classification(
            task_class=task,
            task_rule=rule,
            privacy_level=level,
            local_only=level >= self.config.privacy.local_only_at,
            findings=findings,
            reasons=tuple(r for lab in labels for r in lab.reasons),
            difficulty=next((lab.difficulty for lab in labels if lab.difficulty is not None), None),
        )

    def route(self, request: Request | str, **kwargs: Any) -> Decision:
        """Decide where a request goes (classify, route, preflight) without sending it.

        Deciding changes nothing: no circuit, no ledger row, no model unloaded to make room
        (the preflight says it would be). Only a dispatch does.
        """
        return self.decide(as_request(request, **kwargs), dispatching=False)

    def decide(self, request: Request, *, dispatching: bool) -> Decision:
        """Where `request` goes: `route`, or, `dispatching` it now, with the preflight free to
        act on its verdict (unload idle models to make room)."""
        classification = self.classify(request)
        decision: Decision | None = self.pm.hook.route(
            request=request, classification=classification
        )
        if decision is None:
            raise RoutingError("no route plugin returned a decision")
        return self._checked(
            request, dataclasses.replace(decision, classification=classification), dispatching
        )

    def decides_inline(
        self, request: Request, hooks: tuple[str, ...] = ("classify", "route", "preflight")
    ) -> bool:
        """Whether the async path may decide `request` on the event loop (`core/inline.py`):
        it is short, and every plugin deciding it is marked loop-safe."""
        return len(request.text()) <= inline.INLINE_CHARS and inline.loop_safe(self.pm, hooks)

    def enforce_privacy(self, decision: Decision) -> None:
        """Raise `PrivacyBlocked` if `decision` would send local-only work off this machine.

        A backend counts as local only when the config declares it ``side = "local"`` and the
        decision agrees; anything cloud or undeclared is refused for local-only requests.
        """
        classification = decision.classification
        if classification is None:
            raise RoutingError("decision carries no classification; build it with Router")
        if not classification.local_only:
            return
        declared = self.config.backend_side(decision.backend)
        if decision.side is Side.LOCAL and declared is Side.LOCAL:
            return
        rules = sorted({f.rule_id for f in classification.findings})
        raise PrivacyBlocked(
            f"refused to send a {classification.privacy_level.label} request to "
            f"{decision.backend!r} ({declared or 'undeclared'} backend): requests at or above "
            f"{self.config.privacy.local_only_at.label} stay local"
            + (f" [{', '.join(rules)}]" if rules else "")
        )

    def invoke(self, request: Request | str, **kwargs: Any) -> Response:
        """Answer a request, failing over through `on_failure` as plugins decide."""
        return self._invoke(as_request(request, **kwargs), Cancellation())

    async def ainvoke(self, request: Request | str, **kwargs: Any) -> Response:
        """`invoke` for async callers, on the backends' async clients.

        Cancelling the task stops the attempt in flight and closes its connection; the
        request is booked ``cancelled``, and then `asyncio.CancelledError` propagates.
        """
        chunks = adrive(self, run(self, as_request(request, **kwargs)))
        try:
            async for chunk in chunks:
                if chunk.response is not None:
                    return chunk.response
        finally:
            await chunks.aclose()
        raise DispatchFailed("no answer", [])  # pragma: no cover - the machine never ends so

    def stream(self, request: Request | str, **kwargs: Any) -> Iterator[Chunk]:
        """Answer a request as chunks; the last chunk carries the complete `Response`.

        A ``restart`` chunk says the answer broke mid-way and a fallback starts it again:
        discard the text received so far. Closing the iterator stops the attempt.
        """
        request = dataclasses.replace(as_request(request, **kwargs), stream=True)
        return drive(self, run(self, request), Cancellation())

    def astream(self, request: Request | str, **kwargs: Any) -> AsyncGenerator[Chunk, None]:
        """`stream` for async callers, on the backends' async clients.

        Cancelling the task that reads it stops the attempt and closes its connection, and
        the request is booked ``cancelled``; closing it early (`aclose`) books it
        ``abandoned``, or ``answered`` once the last chunk was read.
        """
        request = dataclasses.replace(as_request(request, **kwargs), stream=True)
        return adrive(self, run(self, request))

    def record(
        self,
        classification: Classification,
        decision: Decision,
        *,
        response: Response | None = None,
        error: BaseException | None = None,
        latency_s: float = 0.0,
    ) -> None:
        """Book a call that went to a model outside the router, as if it had been routed.

        For integrations that watch someone else's model (the LangChain callback handler):
        `decision` names the side, backend and model that were called; `response` carries
        the usage when it answered, `error` what went wrong when it did not. One request row
        and one attempt, priced like any other; never the text. Never raises: the books must
        not break the caller's work.
        """
        try:
            ledger = self.ledger
        except (sqlite3.Error, DevPulseError) as exc:
            log.warning("ledger.call_not_recorded", backend=decision.backend, error=str(exc))
            return
        record_call(
            ledger,
            self.config,
            classification,
            decision,
            response=response,
            error=error,
            latency_s=latency_s,
        )

    def _invoke(self, request: Request, cancellation: Cancellation) -> Response:
        with contextlib.closing(drive(self, run(self, request), cancellation)) as chunks:
            for chunk in chunks:
                if chunk.response is not None:
                    return chunk.response
        raise DispatchFailed("no answer", [])  # pragma: no cover - the machine never ends so

    def _checked(self, request: Request, decision: Decision, dispatching: bool) -> Decision:
        """`decision` through privacy and every preflight: the one place verdicts apply.

        Any refusal refuses, with every objection's reason; otherwise the first reroute wins
        and its decision is checked again, a bounded number of times. A decision that only
        meets "pass" verdicts stands, with their notes in its reasons.
        """
        for _ in range(MAX_REROUTES + 1):
            self.enforce_privacy(decision)
            found: list[Verdict] = [
                v
                for v in self.pm.hook.preflight(
                    request=request, decision=decision, dispatching=dispatching
                )
                if v
            ]
            verdicts = [v for v in found if v.action != "pass"]
            if not verdicts:
                passed = [v for v in found if v.action == "pass"]
                if not passed:
                    return decision
                return dataclasses.replace(
                    decision,
                    reasons=(*decision.reasons, *(v.reason for v in passed)),
                    verdict=decision.verdict or passed[0],
                )
            refusals = [v for v in verdicts if v.action == "refuse" or v.decision is None]
            if refusals:
                raise PreflightRefused(
                    f"preflight refused {decision.backend}: "
                    + "; ".join(v.reason for v in refusals)
                )
            verdict = verdicts[0]
            assert verdict.decision is not None  # a reroute without one is a refusal
            decision = dataclasses.replace(
                verdict.decision,
                reasons=(
                    *decision.reasons,
                    *(v.reason for v in verdicts),
                    *verdict.decision.reasons,
                ),
                classification=decision.classification,
                verdict=verdict,
            )
        raise PreflightRefused(f"preflight rerouted more than {MAX_REROUTES} times in a row")


def as_request(request: Request | str, **kwargs: Any) -> Request:
    """Accept a bare prompt wherever a `Request` is expected."""
    if isinstance(request, Request):
        return dataclasses.replace(request, **kwargs) if kwargs else request
    return Request.from_prompt(request, **kwargs)
