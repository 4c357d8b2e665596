"""The books of one request: what it went through, and the ledger rows that record it.

Rows hold rule ids, sides, models, tokens, costs and timings, never the text.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field

from devpulse.core.config import Config
from devpulse.core.costs import counterfactual_cost, request_cost
from devpulse.core.errors import Cancelled, PrivacyBlocked, diagnose
from devpulse.core.ledger import Attempt, Ledger, RequestRecord, Use
from devpulse.core.logs import get_logger
from devpulse.core.tokens import estimate_tokens
from devpulse.core.types import Classification, Decision, Request, Response, Side, Usage

log = get_logger(__name__)


@dataclass
class Book:
    """What one request went through, for the ledger."""

    decision: Decision | None = None
    response: Response | None = None
    attempts: list[Attempt] = field(default_factory=list)
    request: Request | None = None  # for the caller's ids in its metadata, never its text

    def attempt(
        self,
        decision: Decision,
        started: float,
        error: BaseException | None,
        outcome: str | None = None,
    ) -> None:
        """Note one attempt: answered, failed (with its cause), cancelled, skipped or abandoned."""
        if outcome is None:
            outcome = "failed" if error else "answered"
            if isinstance(error, Cancelled | KeyboardInterrupt):
                outcome = "cancelled"
        self.attempts.append(
            Attempt(
                side=decision.side.value,
                backend=decision.backend,
                model=decision.model,
                outcome=outcome,
                error_class=type(error).__name__ if error else None,
                latency_s=time.perf_counter() - started,
                cause=diagnose(error).cause.value if error else None,
            )
        )

    def record(
        self,
        ledger: Ledger | None,
        config: Config,
        classification: Classification | None,
        outcome: str,
        error: BaseException | None,
    ) -> None:
        """One ledger row for the request, one per attempt, queued: built (costs included) and
        committed by the ledger's own thread behind the caller (`Ledger`'s guarantee), so no
        request waits for SQLite or the price table. The book is final by then; of the error
        only its class is kept (not its traceback's frames)."""
        if ledger is None or classification is None:
            return
        ledger.queue_record(
            functools.partial(
                self.entry,
                config,
                classification,
                outcome,
                type(error).__name__ if error else None,
                time.time(),
                # read now: the caller owns the metadata dict, and may reuse it
                caller_id(self.request, "session_id"),
                caller_id(self.request, "user_id"),
            )
        )

    def entry(
        self,
        config: Config,
        classification: Classification,
        outcome: str,
        error_class: str | None,
        ts: float,
        session_id: str | None = None,
        user_id: str | None = None,
    ) -> RequestRecord:
        """The request's ledger row, as of `ts`, with the caller's ids as they were then:
        rule ids, sides, tokens, costs, never text."""
        decision, response = self.decision, self.response
        usage = response.usage if response else Usage()
        usage_in, usage_out = usage.input_tokens, usage.output_tokens
        reasons = list(decision.reasons) if decision else []
        if response is not None and self.request is not None and not (usage_in or usage_out):
            # The backend reported no usage (a stream without its usage event): priced at
            # nothing, the books would understate cost and savings alike. Estimated, and
            # the row says so.
            usage_in, usage_out = estimate_tokens(self.request.text()), answer_tokens(response)
            reasons.append(USAGE_ESTIMATED)
        cache = {"cache_read": usage.cache_read_tokens, "cache_write": usage.cache_write_tokens}
        answered_side = response.side if response else (decision.side if decision else None)
        model = response.model if response else (decision.model if decision else None)
        return RequestRecord(
            task_class=classification.task_class.value,
            privacy_level=classification.privacy_level.label,
            reasons=reasons,
            outcome=outcome,
            attempts=self.attempts,
            side=answered_side.value if answered_side else None,
            backend=response.backend if response else (decision.backend if decision else None),
            model=model,
            input_tokens=usage_in,
            output_tokens=usage_out,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            latency_s=response.latency_s if response else None,
            first_token_s=response.first_token_s if response else None,
            error_class=error_class,
            cost_usd=request_cost(config, answered_side, model or "", usage_in, usage_out, **cache)
            if response and answered_side
            else 0.0,
            counterfactual_usd=counterfactual_cost(config, usage_in, usage_out, **cache),
            ts=ts,
            session_id=session_id,
            user_id=user_id,
            tool_calls=tool_call_count(response),
        )


def record_call(
    ledger: Ledger | None,
    config: Config,
    classification: Classification,
    decision: Decision,
    *,
    response: Response | None,
    error: BaseException | None,
    latency_s: float,
) -> None:
    """Book one call that a model outside the router made (one attempt, one request row).

    The ledger must never stop the caller's work: the row is queued, and a write that fails
    is logged and dropped by the ledger's thread.
    """
    outcome = "answered" if response is not None else "failed"
    if isinstance(error, Cancelled | KeyboardInterrupt):
        outcome = "cancelled"
    book = Book(decision=decision, response=response)
    if isinstance(error, PrivacyBlocked):  # stopped before it was sent: no attempt
        outcome = "refused"
    else:
        book.attempts.append(
            Attempt(
                side=decision.side.value,
                backend=decision.backend,
                model=response.model if response else decision.model,
                outcome=outcome,
                error_class=type(error).__name__ if error else None,
                latency_s=latency_s,
                cause=diagnose(error).cause.value if error else None,
            )
        )
    book.record(ledger, config, classification, outcome, error)  # queued: never raises


# The reason a row carries when its tokens are estimated: the backend reported none.
USAGE_ESTIMATED = "usage: estimated from the text (the backend reported none)"


def answer_tokens(response: Response) -> int:
    """An answer's tokens, estimated: its text and its tool calls' input."""
    calls = " ".join(json.dumps(use.input) for use in response.tool_uses)
    return estimate_tokens(f"{response.text} {calls}" if calls else response.text)


def caller_id(request: Request | None, key: str) -> str | None:
    """The caller's own id for the ledger (``request.metadata[key]``), if it gave a string."""
    value = request.metadata.get(key) if request is not None else None
    return value if isinstance(value, str) and value else None


def tool_call_count(response: Response | None) -> int:
    """How many tools the answer asked to call; the one place that knows their shape."""
    return len(response.tool_uses) if response is not None else 0


def begin_use(ledger: Ledger | None, decision: Decision) -> Use | None:
    """Book that an attempt starts on a local model, so that babysit, in any process, leaves
    the model alone while it serves; None when not booked. Queued, as the books are."""
    if ledger is None or decision.side is not Side.LOCAL:
        return None
    return ledger.queue_begin_use(decision.backend, decision.model)


def end_use(ledger: Ledger | None, use: Use | None) -> None:
    """Book that the attempt `begin_use` booked has ended, whatever its outcome."""
    if use is not None and ledger is not None:
        ledger.queue_end_use(use)
