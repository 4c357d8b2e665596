"""The Router: classify -> route -> preflight -> dispatch, with on_failure between attempts.

The privacy partition is enforced here, in the core, immediately before every dispatch:
no plugin can send a local-only request to a backend marked cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy
import structlog

from devpulse.core.config import Config, load_config
from devpulse.core.costs import counterfactual_cost, request_cost
from devpulse.core.errors import (
    BudgetExhausted,
    DevPulseError,
    DispatchFailed,
    NoBackend,
    PreflightRefused,
    PrivacyBlocked,
    RoutingError,
)
from devpulse.core.ledger import Attempt, Ledger, RequestRecord
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

log = structlog.get_logger(__name__)


class Router:
    """Route requests to the right side and answer them through the installed plugins.

    Build one per process and reuse it. `plugin_manager` defaults to a fresh one with the
    bundled plugins and installed entry points (see `make_plugin_manager`).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.config = config if config is not None else load_config()
        self.pm = plugin_manager or make_plugin_manager(self.config)
        self._ledger = ledger
        self._ledger_lock = threading.Lock()

    @property
    def ledger(self) -> Ledger | None:
        """The ledger requests are recorded in (opened on first use), or None if disabled."""
        if self._ledger is None and self.config.ledger.enabled:
            with self._ledger_lock:
                if self._ledger is None:
                    self._ledger = Ledger.from_config(self.config)
        return self._ledger

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
        )

    def route(self, request: Request | str, **kwargs: Any) -> Decision:
        """Decide where a request goes (classify, route, preflight) without sending it."""
        request = as_request(request, **kwargs)
        classification = self.classify(request)
        decision: Decision | None = self.pm.hook.route(
            request=request, classification=classification
        )
        if decision is None:
            raise RoutingError("no route plugin returned a decision")
        decision = dataclasses.replace(decision, classification=classification)
        self.enforce_privacy(decision)
        verdict: Verdict | None = self.pm.hook.preflight(request=request, decision=decision)
        if verdict is None:
            return decision
        if verdict.action == "refuse" or verdict.decision is None:
            raise PreflightRefused(f"preflight refused {decision.backend}: {verdict.reason}")
        rerouted = dataclasses.replace(
            verdict.decision,
            reasons=(*decision.reasons, verdict.reason, *verdict.decision.reasons),
            classification=classification,
            verdict=verdict,
        )
        self.enforce_privacy(rerouted)
        return rerouted

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
        with contextlib.closing(self._attempts(as_request(request, **kwargs))) as chunks:
            for chunk in chunks:
                if chunk.response is not None:
                    return chunk.response
        raise DispatchFailed("the backend's stream ended without a complete response", [])

    async def ainvoke(self, request: Request | str, **kwargs: Any) -> Response:
        """`invoke` for async callers; runs the blocking pipeline in a worker thread."""
        return await asyncio.to_thread(self.invoke, request, **kwargs)

    def stream(self, request: Request | str, **kwargs: Any) -> Iterator[Chunk]:
        """Answer a request as chunks; the last chunk carries the complete `Response`."""
        request = dataclasses.replace(as_request(request, **kwargs), stream=True)
        yield from self._attempts(request)

    def _attempts(self, request: Request) -> Generator[Chunk, None, None]:
        try:
            decision = self.route(request)
        except DevPulseError as exc:
            self._record(self.classify(request), _Book(), "refused", exc)
            raise
        book = _Book(decision=decision)
        try:
            yield from self._attempt_all(request, decision, book)
        except GeneratorExit:  # the caller stopped reading: after the answer, or before it
            self._record(
                decision.classification, book, "answered" if book.response else "abandoned", None
            )
            raise
        except BaseException as exc:
            self._record(decision.classification, book, "failed", exc)
            raise
        self._record(decision.classification, book, "answered", None)

    def _attempt_all(self, request: Request, decision: Decision, book: _Book) -> Iterator[Chunk]:
        """Attempts until one answers, `on_failure` gives up, or attempts or budget run out.

        Before the first token a failover is invisible. After it, the next attempt starts
        the answer again, announced by a `Chunk(restart=True)`: a cut answer is never
        spliced onto another, nor returned as complete.
        """
        deadline = time.monotonic() + self.config.failover.budget_s
        tried: list[str] = []
        for attempt in range(1, self.config.failover.max_attempts + 1):
            book.decision = decision
            self.enforce_privacy(decision)
            self._wait(decision, deadline, tried)
            delivered = False
            started = time.perf_counter()
            try:
                for chunk in self._dispatch(request, decision):
                    delivered = delivered or bool(chunk.text)
                    if chunk.response is not None:
                        book.response = chunk.response
                        book.attempts.append(_attempt(decision, started, None))
                    yield chunk
            except PrivacyBlocked:
                raise
            except Exception as exc:
                book.attempts.append(_attempt(decision, started, exc))
                tried.append(f"{decision.backend}/{decision.model}: {_describe(exc)}")
                log.warning(
                    "dispatch.failed",
                    backend=decision.backend,
                    attempt=attempt,
                    error=type(exc).__name__,
                    mid_answer=delivered,
                )
                following = None
                if attempt < self.config.failover.max_attempts and time.monotonic() < deadline:
                    following = self._next(request, decision, exc, attempt)
                if following is None:
                    if len(tried) == 1 and isinstance(exc, DevPulseError) and not delivered:
                        raise
                    where = " (the stream broke mid-answer)" if delivered else ""
                    raise DispatchFailed(
                        f"no answer after {len(tried)} attempt(s){where}: {'; '.join(tried)}",
                        tried,
                    ) from exc
                if delivered:
                    yield Chunk("", restart=True)
                decision = following
            else:
                return

    def _next(
        self, request: Request, decision: Decision, error: BaseException, attempt: int
    ) -> Decision | None:
        """The next decision from `on_failure`, through the same preflight as the first."""
        following: Decision | None = self.pm.hook.on_failure(
            request=request, decision=decision, error=error, attempt=attempt
        )
        if following is None:
            return None
        following = dataclasses.replace(following, classification=decision.classification)
        verdict: Verdict | None = self.pm.hook.preflight(request=request, decision=following)
        if verdict is None:
            return following
        if verdict.action == "refuse" or verdict.decision is None:
            log.warning("failover.refused", backend=following.backend, reason=verdict.reason)
            return None
        return dataclasses.replace(
            verdict.decision,
            reasons=(*following.reasons, verdict.reason, *verdict.decision.reasons),
            classification=decision.classification,
        )

    @staticmethod
    def _wait(decision: Decision, deadline: float, tried: list[str]) -> None:
        """Sleep the decision's backoff, unless it would outlast the request's budget."""
        if decision.delay_s <= 0:
            return
        if time.monotonic() + decision.delay_s > deadline:
            raise BudgetExhausted(
                f"the time budget ends before a retry of {decision.backend} could start: "
                + "; ".join(tried)
            )
        time.sleep(decision.delay_s)

    def _record(
        self,
        classification: Classification | None,
        book: _Book,
        outcome: str,
        error: BaseException | None,
    ) -> None:
        """One ledger row for the request, one per attempt; never the text."""
        ledger = self.ledger
        if ledger is None or classification is None:
            return
        decision, response, attempts = book.decision, book.response, book.attempts
        usage_in = response.usage.input_tokens if response else 0
        usage_out = response.usage.output_tokens if response else 0
        answered_side = response.side if response else (decision.side if decision else None)
        model = response.model if response else (decision.model if decision else None)
        ledger.record(
            RequestRecord(
                task_class=classification.task_class.value,
                privacy_level=classification.privacy_level.label,
                reasons=list(decision.reasons) if decision else [],
                outcome=outcome,
                attempts=attempts,
                side=answered_side.value if answered_side else None,
                backend=response.backend if response else (decision.backend if decision else None),
                model=model,
                input_tokens=usage_in,
                output_tokens=usage_out,
                latency_s=response.latency_s if response else None,
                first_token_s=response.first_token_s if response else None,
                error_class=type(error).__name__ if error else None,
                cost_usd=request_cost(self.config, answered_side, model or "", usage_in, usage_out)
                if response and answered_side
                else 0.0,
                counterfactual_usd=counterfactual_cost(self.config, usage_in, usage_out),
            )
        )

    def _dispatch(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        answer = self.pm.hook.dispatch(request=request, decision=decision)
        if answer is None:
            raise NoBackend(
                f"no backend plugin owns {decision.backend!r} "
                f"(model {decision.model!r}); install or enable one"
            )
        if isinstance(answer, Response):
            yield Chunk(text=answer.text, response=answer)
        else:
            yield from answer


@dataclass
class _Book:
    """What one request went through, for the ledger."""

    decision: Decision | None = None
    response: Response | None = None
    attempts: list[Attempt] = field(default_factory=list)


def _attempt(decision: Decision, started: float, error: BaseException | None) -> Attempt:
    return Attempt(
        side=decision.side.value,
        backend=decision.backend,
        model=decision.model,
        outcome="failed" if error else "answered",
        error_class=type(error).__name__ if error else None,
        latency_s=time.perf_counter() - started,
    )


def as_request(request: Request | str, **kwargs: Any) -> Request:
    """Accept a bare prompt wherever a `Request` is expected."""
    if isinstance(request, Request):
        return dataclasses.replace(request, **kwargs) if kwargs else request
    return Request.from_prompt(request, **kwargs)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
