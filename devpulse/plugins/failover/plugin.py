"""The failover plugin: per-cause policy, circuit breakers, and their bookkeeping.

- `on_failure`: retry the same backend (bounded, jittered backoff, never sooner than
  retry-after), fail over to the other side (cloud -> local; local -> cloud only when the
  request is not local-only), move to a larger-context model, or surface the error.
- `preflight` (tryfirst): a backend whose circuit is open is skipped before any attempt.
- `dispatch` wrapper: every answer closes its backend's circuit, every failure counts.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import click

from devpulse.core.config import Config
from devpulse.core.types import Chunk, Decision, Request, Response, Side, Verdict
from devpulse.hookspecs import hookimpl
from devpulse.plugins.failover.causes import Cause, Diagnosis, diagnose

# Causes no other attempt can fix: the caller must hear about them.
SURFACE = {Cause.CONTENT_POLICY, Cause.AUTH, Cause.BAD_REQUEST}
# Causes worth one more try on the same backend before failing over.
RETRY_SAME = {
    Cause.SERVER_ERROR,
    Cause.CONNECTION,
    Cause.MALFORMED_STREAM,
    Cause.RATE_LIMITED,
    Cause.STREAM_CUT,
}


@dataclass
class Circuit:
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False
    last_cause: str | None = None


class Breakers:
    """One circuit per backend: closed, open (skip it), or half-open (one probe goes)."""

    def __init__(
        self,
        threshold: int,
        cooldown_s: float,
        spend_cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.spend_cooldown_s = spend_cooldown_s
        self.clock = clock
        self._circuits: dict[str, Circuit] = {}
        self._lock = threading.Lock()

    def allow(self, backend: str) -> bool:
        """Whether a request may go to `backend` now; after the cool-down, one probe may."""
        with self._lock:
            circuit = self._circuits.get(backend)
            if circuit is None or circuit.open_until == 0.0:
                return True
            if self.clock() < circuit.open_until or circuit.probing:
                return False
            circuit.probing = True
            return True

    def success(self, backend: str) -> None:
        with self._lock:
            self._circuits[backend] = Circuit()

    def failure(self, backend: str, diagnosis: Diagnosis) -> None:
        with self._lock:
            circuit = self._circuits.setdefault(backend, Circuit())
            circuit.failures += 1
            circuit.last_cause = diagnosis.label
            long_outage = diagnosis.cause in (Cause.SPEND_LIMIT, Cause.AUTH)
            if circuit.probing or long_outage or circuit.failures >= self.threshold:
                wait = (
                    self.spend_cooldown_s
                    if long_outage
                    else max(self.cooldown_s, diagnosis.retry_after_s or 0.0)
                )
                circuit.open_until = self.clock() + wait
                circuit.probing = False

    def states(self) -> dict[str, dict[str, Any]]:
        now = self.clock()
        with self._lock:
            return {
                name: {
                    "state": "closed"
                    if c.open_until == 0.0
                    else "half_open"
                    if now >= c.open_until
                    else "open",
                    "consecutive_failures": c.failures,
                    "last_cause": c.last_cause,
                    "retry_in_s": round(max(0.0, c.open_until - now), 1) if c.open_until else 0,
                }
                for name, c in self._circuits.items()
            }


class Failover:
    def __init__(self, config: Config, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.policy = config.failover
        self.breakers = Breakers(
            self.policy.breaker_threshold,
            self.policy.breaker_cooldown_s,
            self.policy.spend_limit_cooldown_s,
        )
        self.sleep = sleep

    # -- before an attempt ------------------------------------------------------------------

    @hookimpl(tryfirst=True)
    def preflight(self, request: Request, decision: Decision) -> Verdict | None:
        if not self.policy.enabled or self.breakers.allow(decision.backend):
            return None
        fallback = self.fallback(decision, f"{decision.backend} circuit open")
        if fallback is None:
            return None  # nowhere else to go: try it anyway rather than refuse
        return Verdict(
            "reroute",
            f"{decision.backend}'s circuit is open",
            decision=fallback,
            details={"circuit": self.breakers.states().get(decision.backend)},
        )

    # -- around each attempt ----------------------------------------------------------------

    @hookimpl(wrapper=True)
    def dispatch(self, request: Request, decision: Decision) -> Any:
        try:
            answer = yield
        except Exception as exc:
            self.breakers.failure(decision.backend, diagnose(exc))
            raise
        if answer is None:
            return None
        if isinstance(answer, Response):
            self.breakers.success(decision.backend)
            return answer
        return self._watch(answer, decision.backend)

    def _watch(self, chunks: Iterator[Chunk], backend: str) -> Iterator[Chunk]:
        try:
            for chunk in chunks:
                if chunk.response is not None:
                    self.breakers.success(backend)
                yield chunk
        except Exception as exc:
            self.breakers.failure(backend, diagnose(exc))
            raise

    # -- `devpulse status` --------------------------------------------------------------------

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        failover = self

        @cli.command("status")
        @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
        @click.pass_obj
        def status(app: Any, as_json: bool) -> None:
            """Circuit state per backend, from the ledger's latest attempts (all processes)."""
            ledger = app.router.ledger
            attempts = ledger.recent_attempts() if ledger is not None else []
            circuits = failover.circuits_from(attempts, time.time())
            if as_json:
                click.echo(json.dumps({"status": "ok", "circuits": circuits}))
                return
            if not circuits:
                click.echo("no attempts recorded yet")
            for name, c in circuits.items():
                click.echo(
                    f"{name}: {c['state']} ({c['consecutive_failures']} failure(s) in a"
                    f" row, last {c['last_error'] or 'ok'})"
                )

    def circuits_from(self, attempts: list[dict[str, Any]], now: float) -> dict[str, Any]:
        """What each backend's breaker says, replayed from recorded attempts."""
        out: dict[str, dict[str, Any]] = {}
        for a in attempts:
            entry = out.setdefault(
                a["backend"],
                {"side": a["side"], "consecutive_failures": 0, "last_error": None, "last_ts": 0.0},
            )
            entry["last_ts"] = a["ts"]
            if a["outcome"] == "answered":
                entry["consecutive_failures"], entry["last_error"] = 0, None
            else:
                entry["consecutive_failures"] += 1
                entry["last_error"] = a["error_class"]
        for entry in out.values():
            failing = entry["consecutive_failures"] >= self.policy.breaker_threshold
            cooling = now - entry.pop("last_ts") < self.policy.breaker_cooldown_s
            entry["state"] = "closed"
            if failing:
                entry["state"] = "open" if cooling else "half_open"
        return out

    # -- after a failure --------------------------------------------------------------------

    @hookimpl(trylast=True)
    def on_failure(
        self, request: Request, decision: Decision, error: BaseException, attempt: int
    ) -> Decision | None:
        if not self.policy.enabled:
            return None
        found = diagnose(error)
        if found.cause in SURFACE:
            return None
        if found.cause == Cause.CONTEXT_LENGTH:
            larger = self.policy.larger_context.get(decision.model)
            if larger is None:
                return None
            return replace(
                decision,
                model=larger,
                delay_s=0.0,
                reasons=(*decision.reasons, f"failover: context length -> {larger}"),
            )
        retries = sum(1 for r in decision.reasons if r.startswith("failover: retry"))
        if found.cause in RETRY_SAME and retries < self.policy.retries:
            wait = self._backoff(found, retries)
            if wait is not None:
                return replace(
                    decision,
                    delay_s=wait,
                    reasons=(
                        *decision.reasons,
                        f"failover: retry {decision.backend} in {wait:.2f}s ({found.label})",
                    ),
                )
        return self.fallback(decision, found.label)

    def _backoff(self, found: Diagnosis, retries: int) -> float | None:
        """Jittered exponential backoff, never sooner than retry-after; None: do not wait."""
        base = self.policy.backoff_s * (2**retries)
        wait = random.uniform(base / 2, base)
        if found.retry_after_s is not None:
            if found.retry_after_s > self.policy.max_retry_after_s:
                return None
            wait = max(wait, found.retry_after_s)
        elif found.cause == Cause.RATE_LIMITED:
            return None  # no hint how long: fail over now rather than guess
        return wait

    def fallback(self, decision: Decision, why: str) -> Decision | None:
        """The other side's default, if privacy allows and it is not the failing backend."""
        other = Side.LOCAL if decision.side is Side.CLOUD else Side.CLOUD
        classification = decision.classification
        if other is Side.CLOUD and classification is not None and classification.local_only:
            return None  # sensitive work never fails over to the cloud
        target = self.config.side_default(other)
        if target.backend == decision.backend:
            return None
        return Decision(
            other,
            target.backend,
            target.model,
            reasons=(*decision.reasons, f"failover: {decision.side} {why} -> {other}"),
            classification=classification,
        )
