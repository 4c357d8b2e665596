"""The Router: classify -> route -> preflight -> dispatch, with on_failure between attempts.

The privacy partition is enforced here, in the core, immediately before every dispatch:
no plugin can send a local-only request to a backend marked cloud. So are the other
invariants: every dispatched decision passed preflight (`_checked`, the one place verdicts
apply), each backend's circuit is gated and counted where requests are sent (`_dispatch`,
which also books when each local attempt starts and ends, for babysit), and
`failover.budget_s` bounds every read and wait (`bounded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, cast

import pluggy

from devpulse.core.books import Book, begin_use, end_use, record_call
from devpulse.core.bounded import Cancellation, bounded
from devpulse.core.breaker import Breakers
from devpulse.core.config import Config, load_config
from devpulse.core.errors import (
    BudgetExhausted,
    Cancelled,
    CircuitOpen,
    DevPulseError,
    DispatchFailed,
    NoBackend,
    PreflightRefused,
    PrivacyBlocked,
    RoutingError,
    StreamIncomplete,
    diagnose,
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

log = get_logger(__name__)

# How many times in a row preflight verdicts may reroute one decision.
MAX_REROUTES = 4


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
        """Decide where a request goes (classify, route, preflight) without sending it.

        Deciding changes nothing: no circuit, no ledger row. Only a dispatch does.
        """
        request = as_request(request, **kwargs)
        classification = self.classify(request)
        decision: Decision | None = self.pm.hook.route(
            request=request, classification=classification
        )
        if decision is None:
            raise RoutingError("no route plugin returned a decision")
        return self._checked(request, dataclasses.replace(decision, classification=classification))

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
        """`invoke` for async callers; cancelling the task stops the attempt in flight.

        The pipeline runs in a worker thread; on cancellation the attempt is stopped, the
        request is booked ``cancelled``, and then `asyncio.CancelledError` propagates.
        """
        cancellation = Cancellation()
        running = asyncio.ensure_future(
            asyncio.to_thread(self._invoke, as_request(request, **kwargs), cancellation)
        )
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            cancellation.cancel()
            with contextlib.suppress(Exception):
                await running  # returns once the attempt has stopped and been booked
            raise

    def stream(self, request: Request | str, **kwargs: Any) -> Iterator[Chunk]:
        """Answer a request as chunks; the last chunk carries the complete `Response`.

        A ``restart`` chunk says the answer broke mid-way and a fallback starts it again:
        discard the text received so far. Closing the iterator stops the attempt.
        """
        request = dataclasses.replace(as_request(request, **kwargs), stream=True)
        yield from self._attempts(request, Cancellation())

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
        with contextlib.closing(self._attempts(request, cancellation)) as chunks:
            for chunk in chunks:
                if chunk.response is not None:
                    return chunk.response
        raise DispatchFailed("no answer", [])  # pragma: no cover - _attempts never ends so

    def _attempts(
        self, request: Request, cancellation: Cancellation
    ) -> Generator[Chunk, None, None]:
        """The whole request: open the books, decide, attempt, and book how it ended."""
        _ = self.ledger  # opened, and checked writable, before anything is sent
        try:
            decision = self.route(request)
        except DevPulseError as exc:
            Book().record(self.ledger, self.config, self.classify(request), "refused", exc)
            raise
        book = Book(decision=decision)
        outcome = "failed"
        error: BaseException | None = None
        try:
            yield from self._attempt_all(request, decision, book, cancellation)
            outcome = "answered"
        except GeneratorExit:  # the caller stopped reading: after the answer, or before it
            outcome = "answered" if book.response else "abandoned"
            raise
        except (Cancelled, KeyboardInterrupt) as exc:  # Ctrl-C in the caller's thread
            outcome, error = "cancelled", exc
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            book.record(self.ledger, self.config, decision.classification, outcome, error)

    def _attempt_all(
        self, request: Request, decision: Decision, book: Book, cancellation: Cancellation
    ) -> Iterator[Chunk]:
        """Attempts until one answers, `on_failure` gives up, or attempts or budget run out.

        Before the first token a failover is invisible. After it, the next attempt starts
        the answer again, announced by a ``restart`` chunk: a cut answer is never
        spliced onto another, nor returned as complete. An answer that ends without its
        final `Response` is a failed attempt like any other.
        """
        deadline = self.clock() + self.config.failover.budget_s
        tried: list[str] = []
        per_backend: dict[str, int] = {}
        attempt = 0
        delivered = False  # whether the caller has seen text of an answer that then broke
        while True:
            attempt += 1
            decision = self._admitted(request, decision, attempt, book, tried)
            book.decision = decision
            self.enforce_privacy(decision)  # immediately before every dispatch
            self._wait(decision, deadline, cancellation, tried)
            if delivered:
                yield Chunk("restart")
            delivered = False
            started = time.perf_counter()
            try:
                for chunk in self._dispatch(request, decision, deadline, cancellation):
                    if chunk.response is not None:
                        book.response = chunk.response
                        book.attempt(decision, started, None)
                    delivered = delivered or chunk.is_content
                    yield chunk
                return
            except BudgetExhausted as exc:
                book.attempt(decision, started, exc)
                tried.append(f"{decision.backend}/{decision.model}: {_describe(exc)}")
                raise BudgetExhausted(
                    f"no answer within failover.budget_s "
                    f"({self.config.failover.budget_s:g}s): {'; '.join(tried)}"
                ) from exc
            except (PrivacyBlocked, Cancelled, KeyboardInterrupt) as exc:
                book.attempt(decision, started, exc)
                raise
            except Exception as exc:
                book.attempt(decision, started, exc)
                tried.append(f"{decision.backend}/{decision.model}: {_describe(exc)}")
                log.info(
                    "dispatch.failed",
                    backend=decision.backend,
                    attempt=attempt,
                    error=type(exc).__name__,
                    cause=diagnose(exc).cause.value,
                    mid_answer=delivered,
                )
                retries = per_backend.get(decision.backend, 0)
                per_backend[decision.backend] = retries + 1
                following = None
                if attempt < self.config.failover.max_attempts and self.clock() < deadline:
                    following = self._next(request, decision, exc, attempt, retries, tried)
                if following is None:
                    if len(tried) == 1 and isinstance(exc, DevPulseError) and not delivered:
                        raise
                    where = " (the stream broke mid-answer)" if delivered else ""
                    raise DispatchFailed(
                        f"no answer after {len(tried)} attempt(s){where}: {'; '.join(tried)}",
                        tried,
                    ) from exc
                decision = following

    def _admitted(
        self, request: Request, decision: Decision, attempt: int, book: Book, tried: list[str]
    ) -> Decision:
        """`decision`, or while its backend's circuit is open, the fallback `on_failure` names.

        The breaker is asked here, just before the dispatch it gates; a skipped backend costs
        no attempt and is booked as ``skipped``.
        """
        for _ in range(len(self.config.backends) + 1):
            if not self.config.failover.enabled or self.breakers.admit(decision.backend):
                return decision
            state = self.breakers.states().get(decision.backend, {})
            error = CircuitOpen(
                f"{decision.backend}'s circuit is open ({state.get('consecutive_failures')} "
                f"failure(s) in a row, last cause {state.get('last_cause')}; "
                f"next probe in {state.get('retry_in_s')}s)"
            )
            book.attempt(decision, time.perf_counter(), error, "skipped")
            tried.append(f"{decision.backend}/{decision.model}: {_describe(error)}")
            following = self._next(request, decision, error, attempt, 0, tried)
            if following is None:
                if len(tried) == 1:
                    raise error
                raise DispatchFailed(
                    f"no answer after {len(tried)} attempt(s): {'; '.join(tried)}", tried
                )
            decision = following
        raise CircuitOpen("every backend's circuit is open: " + "; ".join(tried))

    def _next(
        self,
        request: Request,
        decision: Decision,
        error: BaseException,
        attempt: int,
        retries: int,
        tried: list[str],
    ) -> Decision | None:
        """The decision `on_failure` names next, checked like the first; None: give up."""
        following: Decision | None = self.pm.hook.on_failure(
            request=request, decision=decision, error=error, attempt=attempt, retries=retries
        )
        if following is None:
            return None
        following = dataclasses.replace(following, classification=decision.classification)
        try:
            return self._checked(request, following)
        except PreflightRefused as refused:
            tried.append(f"{following.backend}/{following.model}: {refused}")
            # Per-attempt detail (-v): the error the caller gets names this refusal.
            log.info("failover.refused", backend=following.backend, reason=str(refused))
            return None

    def _wait(
        self, decision: Decision, deadline: float, cancellation: Cancellation, tried: list[str]
    ) -> None:
        """Sleep the decision's backoff, unless it would outlast the request's budget."""
        cancellation.check()
        if self.clock() >= deadline:
            raise BudgetExhausted("the time budget ran out: " + "; ".join(tried))
        if decision.delay_s <= 0:
            return
        if self.clock() + decision.delay_s > deadline:
            raise BudgetExhausted(
                f"the time budget ends before a retry of {decision.backend} could start: "
                + "; ".join(tried)
            )
        cancellation.sleep(decision.delay_s)

    def _dispatch(
        self, request: Request, decision: Decision, deadline: float, cancellation: Cancellation
    ) -> Iterator[Chunk]:
        """One attempt, bounded in time, with its outcome told to the breaker.

        `_admitted` let it through the breaker; exactly one of success, failure or release
        follows, whatever happens (an answer, an error, the caller walking away).
        """
        streamed = dataclasses.replace(request, stream=True)

        def answer() -> Response | Iterator[Chunk]:
            found = self.pm.hook.dispatch(request=streamed, decision=decision)
            if found is None:
                raise NoBackend(
                    f"no backend plugin owns {decision.backend!r} "
                    f"(model {decision.model!r}); install or enable one"
                )
            return cast("Response | Iterator[Chunk]", found)

        reported = False
        use = begin_use(self.ledger, decision)
        try:
            # In this thread, before the limits start: a client library's first import
            # must not eat into the first-token limit.
            self.pm.hook.prepare_dispatch(request=streamed, decision=decision)
            for chunk in bounded(
                answer,
                name=decision.backend,
                limits=self.config.limits(decision.backend),
                deadline=deadline,
                cancellation=cancellation,
                clock=self.clock,
            ):
                if chunk.response is not None:
                    self.breakers.success(decision.backend)
                    reported = True
                yield chunk
            if not reported:
                raise StreamIncomplete(
                    f"{decision.backend}: the answer ended without its final response"
                )
        except (BudgetExhausted, Cancelled, NoBackend):
            raise
        except Exception as exc:
            if not reported:
                self.breakers.failure(decision.backend, diagnose(exc))
                reported = True
            raise
        finally:
            if not reported:
                self.breakers.release(decision.backend)
            end_use(self.ledger, use)

    def _checked(self, request: Request, decision: Decision) -> Decision:
        """`decision` through privacy and every preflight: the one place verdicts apply.

        Any refusal refuses, with every objection's reason; otherwise the first reroute wins
        and its decision is checked again, a bounded number of times. A decision that only
        meets "pass" verdicts stands, with their notes in its reasons.
        """
        for _ in range(MAX_REROUTES + 1):
            self.enforce_privacy(decision)
            found: list[Verdict] = [
                v for v in self.pm.hook.preflight(request=request, decision=decision) if v
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


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
