"""The attempt state machine of one request, free of I/O: what to do, never how.

`run(router, request)` is a generator of actions. A driver performs each one and sends its
result back (or throws its error in): `Call` (work that may block: preflight probes, the
ledger), `Sleep` (a retry's backoff), `Open`/`Read`/`Close` (one bounded attempt on a
backend) and `Emit` (a chunk for the caller). The sync driver performs them in the caller's
thread; the async driver awaits them, sending blocking calls to a thread. So both paths share
one control flow: classify, route, preflight, the breaker, privacy, dispatch, `on_failure`
and the books. Only I/O differs.

A driver that must stop (the caller walked away, the task was cancelled) throws `Abandoned`
or `Cancelled` in and keeps performing actions until the machine raises: the books still get
written, the breaker released and the attempt's stream closed.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devpulse.core import inline
from devpulse.core.books import Book, begin_use, end_use
from devpulse.core.errors import (
    BudgetExhausted,
    Cancelled,
    CircuitOpen,
    DevPulseError,
    DispatchFailed,
    NoBackend,
    PreflightRefused,
    PrivacyBlocked,
    StreamIncomplete,
    diagnose,
)
from devpulse.core.logs import get_logger
from devpulse.core.types import Chunk, Decision, Request

if TYPE_CHECKING:
    from devpulse.core.pipeline import Router

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Call:
    """Call `fn()` and send back its result. `blocking`: it may wait on I/O (a preflight
    probe, opening the ledger), so the async driver runs it in a thread. `inline`, asked
    by the async driver only (the sync one calls everything where it stands, and need not
    pay for the question): whether it is short and blocks only when a plugin says so
    (`core/inline.py`), so that the async driver tries it on the loop first."""

    fn: Callable[[], Any]
    blocking: bool = True
    inline: Callable[[], bool] | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait `seconds` (a retry's backoff); a cancel ends the wait with `Cancelled`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Open:
    """Start one attempt: send `request` to the backend `decision` names, its reads bounded by
    the backend's limits and `deadline`. `deltas`: whether the caller reads the answer's
    chunks as they come; when not, the driver need send back only the first chunk, the first
    chunk of content and the final response (`bounded`)."""

    request: Request
    decision: Decision
    deadline: float
    deltas: bool = True


@dataclass(frozen=True, slots=True)
class Read:
    """Send back the attempt's next chunk, or None when its answer has ended."""


@dataclass(frozen=True, slots=True)
class Close:
    """Stop the attempt's stream and close its connection (a no-op once it has ended)."""


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand `chunk` to the caller."""

    chunk: Chunk


Action = Call | Sleep | Open | Read | Close | Emit
Machine = Generator[Action, Any, None]
READ, CLOSE = Read(), Close()


class Abandoned(BaseException):
    """Thrown in by a driver whose caller stopped reading (after the answer, or before it)."""


def run(router: Router, request: Request) -> Machine:
    """The whole request: open the books, decide, attempt, and book how it ended."""
    yield Call(lambda: router.ledger, blocking=router._ledger is None)  # opened, checked writable
    try:
        decision: Decision = yield Call(
            functools.partial(router.decide, request, dispatching=True),
            inline=functools.partial(router.decides_inline, request),
        )
    except DevPulseError as exc:
        classification = router.classify(request)
        outcome = "cancelled" if isinstance(exc, Cancelled) else "refused"
        yield Call(
            functools.partial(
                Book(request=request).record,
                router.ledger,
                router.config,
                classification,
                outcome,
                exc,
            )
        )
        raise
    book = Book(decision=decision, request=request)
    outcome = "failed"
    error: BaseException | None = None
    closing = False  # this machine is being closed where it stands (`_settle`)
    try:
        yield from _attempt_all(router, request, decision, book)
        outcome = "answered"
    except (Abandoned, GeneratorExit) as exc:
        outcome = "answered" if book.response else "abandoned"
        closing = isinstance(exc, GeneratorExit)
        raise
    except (Cancelled, KeyboardInterrupt) as exc:
        outcome, error = "cancelled", exc
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        record = functools.partial(
            book.record, router.ledger, router.config, decision.classification, outcome, error
        )
        yield from _settle(Call(record, blocking=False), closing)  # queued: behind us


def _attempt_all(router: Router, request: Request, decision: Decision, book: Book) -> Machine:
    """Attempts until one answers, `on_failure` gives up, or attempts or budget run out.

    Before the first token a failover is invisible. After it, the next attempt starts the
    answer again, announced by a ``restart`` chunk: a cut answer is never spliced onto
    another, nor returned as complete. An answer that ends without its final `Response` is a
    failed attempt like any other.
    """
    config = router.config
    deadline = router.clock() + config.failover.budget_s
    tried: list[str] = []
    per_backend: dict[str, int] = {}
    attempt = 0
    delivered = [False]  # whether the caller has seen text of an answer that then broke
    while True:
        attempt += 1
        decision = yield from _admitted(router, request, decision, attempt, book, tried)
        book.decision = decision
        yield from _cleared(router, decision, deadline, tried, restart=delivered[0])
        delivered[0] = False
        started = time.perf_counter()

        def seen(chunk: Chunk, decision: Decision = decision, started: float = started) -> None:
            if chunk.response is not None:
                book.response = chunk.response
                book.attempt(decision, started, None)
            delivered[0] = delivered[0] or chunk.is_content

        try:
            yield from _dispatch(router, request, decision, deadline, seen)
            return
        except BudgetExhausted as exc:
            book.attempt(decision, started, exc)
            tried.append(f"{decision.backend}/{decision.model}: {describe(exc)}")
            raise BudgetExhausted(
                f"no answer within failover.budget_s "
                f"({config.failover.budget_s:g}s): {'; '.join(tried)}"
            ) from exc
        except (PrivacyBlocked, Cancelled, KeyboardInterrupt) as exc:
            book.attempt(decision, started, exc)
            raise
        except (Abandoned, GeneratorExit):
            if book.response is None:  # else `seen` booked it answered
                book.attempt(decision, started, None, "abandoned")
            raise
        except Exception as exc:
            book.attempt(decision, started, exc)
            tried.append(f"{decision.backend}/{decision.model}: {describe(exc)}")
            log.info(
                "dispatch.failed",
                backend=decision.backend,
                attempt=attempt,
                error=type(exc).__name__,
                cause=diagnose(exc).cause.value,
                mid_answer=delivered[0],
            )
            retries = per_backend.get(decision.backend, 0)
            per_backend[decision.backend] = retries + 1
            following = None
            if attempt < config.failover.max_attempts and router.clock() < deadline:
                following = yield from _next(
                    router, request, decision, exc, attempt, retries, tried, book
                )
            if following is None:
                if len(tried) == 1 and isinstance(exc, DevPulseError) and not delivered[0]:
                    raise
                where = " (the stream broke mid-answer)" if delivered[0] else ""
                raise DispatchFailed(
                    f"{_no_answer(tried)}{where}: {'; '.join(tried)}",
                    tried,
                ) from exc
            decision = following


def _admitted(
    router: Router,
    request: Request,
    decision: Decision,
    attempt: int,
    book: Book,
    tried: list[str],
) -> Generator[Action, Any, Decision]:
    """`decision`, or while its backend's circuit is open, the fallback `on_failure` names.

    The breaker is asked here, just before the dispatch it gates; a skipped backend costs no
    attempt and is booked as ``skipped``.
    """
    breakers = router.breakers
    for _ in range(len(router.config.backends) + 1):
        if not router.config.failover.enabled:
            return decision
        if not breakers.loaded:  # the circuits the ledger remembers, read once
            yield Call(breakers.load)
        # Asked here, not through a Call: nothing (a cancel) can come between a probe let
        # through and the code that must settle it.
        if breakers.admit(decision.backend):
            return decision
        state = breakers.states().get(decision.backend, {})
        error = CircuitOpen(
            f"{decision.backend}'s circuit is open ({state.get('consecutive_failures')} "
            f"failure(s) in a row, last cause {state.get('last_cause')}; "
            f"next probe in {state.get('retry_in_s')}s)"
        )
        book.attempt(decision, time.perf_counter(), error, "skipped")
        tried.append(f"{decision.backend}/{decision.model}: {describe(error)}")
        following = yield from _next(router, request, decision, error, attempt, 0, tried, book)
        if following is None:
            if len(tried) == 1:
                raise error
            if all(f": {CircuitOpen.__name__}" in entry for entry in tried):
                break  # nothing was sent: every backend there was to try is open
            raise DispatchFailed(f"{_no_answer(tried)}: {'; '.join(tried)}", tried)
        decision = following
    raise CircuitOpen("every backend's circuit is open: " + "; ".join(dict.fromkeys(tried)))


def _next(
    router: Router,
    request: Request,
    decision: Decision,
    error: BaseException,
    attempt: int,
    retries: int,
    tried: list[str],
    book: Book,
) -> Generator[Action, Any, Decision | None]:
    """The decision `on_failure` names next, checked like the first; None: give up."""
    following: Decision | None = router.pm.hook.on_failure(
        request=request,
        decision=decision,
        error=error,
        attempt=attempt,
        retries=retries,
        tried=tuple(dict.fromkeys((a.backend, a.model) for a in book.attempts)),
    )
    if following is None:
        return None
    following = dataclasses.replace(following, classification=decision.classification)
    try:
        checked: Decision = yield Call(
            functools.partial(router._checked, request, following, True),
            inline=functools.partial(router.decides_inline, request, ("preflight",)),
        )
    except PreflightRefused as refused:
        tried.append(f"{following.backend}/{following.model}: {refused}")
        # Per-attempt detail (-v): the error the caller gets names this refusal.
        log.info("failover.refused", backend=following.backend, reason=str(refused))
        return None
    return checked


def _cleared(
    router: Router, decision: Decision, deadline: float, tried: list[str], *, restart: bool
) -> Machine:
    """Privacy checked, the backoff waited and (`restart`) the caller told that the answer
    starts again, immediately before the dispatch.

    The breaker has admitted the attempt: one that goes no further (privacy refuses it, the
    budget runs out, a cancel comes in the backoff, the caller stops reading at the
    ``restart`` chunk) releases it, so that a probe it was proves nothing and the next
    request may probe instead.
    """
    try:
        router.enforce_privacy(decision)
        yield from _wait(router, decision, deadline, tried)
        if restart:
            yield Emit(Chunk("restart"))
    except BaseException:
        router.breakers.release(decision.backend)
        raise


def _wait(router: Router, decision: Decision, deadline: float, tried: list[str]) -> Machine:
    """Sleep the decision's backoff, unless it would outlast the request's budget."""
    if router.clock() >= deadline:
        raise BudgetExhausted("the time budget ran out: " + "; ".join(tried))
    if decision.delay_s <= 0:
        return
    if router.clock() + decision.delay_s > deadline:
        raise BudgetExhausted(
            f"the time budget ends before a retry of {decision.backend} could start: "
            + "; ".join(tried)
        )
    yield Sleep(decision.delay_s)


def _dispatch(
    router: Router,
    request: Request,
    decision: Decision,
    deadline: float,
    seen: Callable[[Chunk], None],
) -> Machine:
    """One attempt, bounded in time, with its outcome told to the breaker.

    `_admitted` let it through the breaker; exactly one of success, failure or release
    follows, whatever happens (an answer, an error, the caller walking away).
    """
    streamed = dataclasses.replace(request, stream=True)
    breakers, ledger = router.breakers, router.ledger
    backend = decision.backend
    reported = False
    closing = False  # this machine is being closed where it stands (`_settle`)
    # The busy mark is queued, as the books are: only `Ledger`'s own thread waits for SQLite.
    use = yield Call(functools.partial(begin_use, ledger, decision), blocking=False)
    try:
        # Before the limits start: a client library's first import must not eat into the
        # first-token limit (the async driver does it in a thread, unless it is ready).
        yield Call(
            functools.partial(router.pm.hook.prepare_dispatch, request=streamed, decision=decision),
            inline=functools.partial(inline.loop_safe, router.pm, ("prepare_dispatch",)),
        )
        yield Open(streamed, decision, deadline, deltas=request.stream)
        while True:
            try:
                chunk = yield READ
            except Exception as exc:
                if not reported:
                    raise
                # After the final response (the answer is whole and with the caller), the
                # stream's end is protocol: a reset or a stall there fails nothing.
                log.debug("dispatch.after_answer", backend=backend, error=type(exc).__name__)
                break
            if chunk is None:
                break
            if chunk.response is not None:
                # The answer says why it came from here: the dispatched decision's reasons.
                answer = dataclasses.replace(chunk.response, reasons=decision.reasons)
                chunk = dataclasses.replace(chunk, response=answer)
                # A closed circuit stays closed without a write: then nothing blocks.
                yield Call(
                    functools.partial(breakers.success, backend),
                    blocking=breakers.is_tracked(backend),
                )
                reported = True
            seen(chunk)
            yield Emit(chunk)
        if not reported:
            raise StreamIncomplete(f"{backend}: the answer ended without its final response")
    except (BudgetExhausted, Cancelled, NoBackend, Abandoned):
        raise
    except GeneratorExit:
        closing = True
        raise
    except Exception as exc:
        if not reported:
            reported = True
            failure = functools.partial(breakers.failure, backend, diagnose(exc))
            yield Call(failure)
        raise
    finally:
        yield from _settle(CLOSE, closing)
        if not reported:
            breakers.release(backend)
        yield from _settle(Call(functools.partial(end_use, ledger, use), blocking=False), closing)


def _settle(action: Call | Close, closing: bool) -> Machine:
    """`action`, a step of a `finally`, through the driver; or, when the machine is being
    `closing` (`GeneratorExit` thrown in: its driver is gone, as when an event loop shuts
    down with the request unfinished), in place: a closing generator may not yield, and
    queued books must not be lost. The attempt's stream is then the driver's to close."""
    if not closing:
        yield action
    elif isinstance(action, Call):
        action.fn()


def _no_answer(tried: list[str]) -> str:
    """How many attempts were sent, the backends skipped for an open circuit counted apart."""
    skipped = sum(f": {CircuitOpen.__name__}" in entry for entry in tried)
    also = f" ({skipped} skipped: circuit open)" if skipped else ""
    return f"no answer after {len(tried) - skipped} attempt(s){also}"


def describe(exc: BaseException) -> str:
    """An error's type and the first line of its message, for the list of what was tried."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
