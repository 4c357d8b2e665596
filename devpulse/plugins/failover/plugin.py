"""The failover plugin: what to do after a failed attempt, by its cause; `devpulse status`.

- `on_failure`: retry the same backend (bounded, jittered backoff, never sooner than
  retry-after), fail over to the next backend of its side in `failover.order`, then to the
  other side's default (cloud -> local; local -> cloud only when the request is not
  local-only), move to a larger-context model, or surface the error. A fallback never goes
  back to a model this request has already tried: one that failed (or asked for a
  retry-after longer than we wait) gets no second request from a fail-over.
- An open circuit (the core's breaker, gated at dispatch) arrives here as a `CircuitOpen`
  failure and goes straight to the fallback.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection
from dataclasses import replace
from typing import Any

import click

from devpulse.core.config import Config, SideDefault
from devpulse.core.errors import Cause, Diagnosis, diagnose
from devpulse.core.types import Decision, Request, Side
from devpulse.hookspecs import hookimpl

# Causes no other attempt can fix: the caller must hear about them. A key the provider
# rejects (auth) surfaces; a key that is not set at all (no_credentials) says only that this
# machine has no cloud side, so the work fails over to local like any capacity problem.
SURFACE = {Cause.CONTENT_POLICY, Cause.AUTH, Cause.BAD_REQUEST}
# Causes worth one more try on the same backend before failing over.
RETRY_SAME = {
    Cause.SERVER_ERROR,
    Cause.CONNECTION,
    Cause.MALFORMED_STREAM,
    Cause.RATE_LIMITED,
    Cause.STREAM_CUT,
}


class Failover:
    def __init__(self, config: Config, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.policy = config.failover
        self.rng = rng or random.Random()

    @hookimpl(trylast=True)
    def on_failure(
        self,
        request: Request,
        decision: Decision,
        error: BaseException,
        attempt: int,
        retries: int,
        tried: tuple[tuple[str, str], ...],
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
        return self.fallback(decision, found.label, tried)

    def _backoff(self, found: Diagnosis, retries: int) -> float | None:
        """Jittered exponential backoff, never sooner than retry-after; None: do not wait."""
        base = self.policy.backoff_s * (2**retries)
        wait = self.rng.uniform(base / 2, base)
        if found.retry_after_s is not None:
            if found.retry_after_s > self.policy.max_retry_after_s:
                return None
            wait = max(wait, found.retry_after_s)
        elif found.cause == Cause.RATE_LIMITED:
            return None  # no hint how long: fail over now rather than guess
        return wait

    def fallback(
        self, decision: Decision, why: str, tried: Collection[tuple[str, str]] = ()
    ) -> Decision | None:
        """The next backend of the same side in `failover.order`, else the other side's
        default (or, once that was tried, the first of its order not tried yet) if privacy
        allows; never the failing backend nor a model in `tried` (the (backend, model)s this
        request has already tried: another model on a tried server may answer, as a model
        can fail alone). None: nowhere left to go."""
        classification = decision.classification
        tried = {*tried, (decision.backend, decision.model)}
        following = self.next_in_order(decision, tried)
        if following is not None:
            return Decision(
                decision.side,
                following.backend,
                following.model,
                reasons=(
                    *decision.reasons,
                    f"failover: {decision.backend} {why} -> {following.backend}",
                ),
                classification=classification,
            )
        other = Side.LOCAL if decision.side is Side.CLOUD else Side.CLOUD
        if other is Side.CLOUD and classification is not None and classification.local_only:
            return None  # sensitive work never fails over to the cloud
        candidates = (self.config.side_default(other), *self.policy.order.get(other, ()))
        target = next((t for t in candidates if (t.backend, t.model) not in tried), None)
        if target is None:
            return None
        return Decision(
            other,
            target.backend,
            target.model,
            reasons=(*decision.reasons, f"failover: {decision.side} {why} -> {other}"),
            classification=classification,
        )

    def next_in_order(
        self, decision: Decision, tried: Collection[tuple[str, str]] = ()
    ) -> SideDefault | None:
        """The entry after the failing backend in its side's order (the first entry when
        the order does not name it), skipping entries on that same backend or in `tried`."""
        order = self.policy.order.get(decision.side, ())
        named = [i for i, t in enumerate(order) if t.backend == decision.backend]
        rest = order[named[0] + 1 :] if named else order
        return next(
            (
                t
                for t in rest
                if t.backend != decision.backend and (t.backend, t.model) not in tried
            ),
            None,
        )

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        cli.add_command(status_command)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status_command(app: Any, as_json: bool) -> None:
    """Circuit state per backend, as the ledger records it for every process.

    Exit codes: 0 shown, 2 usage or config error (an unwritable ledger).
    """
    circuits = app.router.breakers.states()
    if as_json:
        click.echo(json.dumps({"status": "ok", "circuits": circuits}))
        return
    if not circuits:
        click.echo("every circuit is closed (no failures recorded)")
    for name, c in circuits.items():
        wait = f", next probe in {c['retry_in_s']:g}s" if c["state"] == "open" else ""
        click.echo(
            f"{name}: {c['state']} ({c['consecutive_failures']} failure(s) in a row,"
            f" last {c['last_cause'] or 'ok'}{wait})"
        )
