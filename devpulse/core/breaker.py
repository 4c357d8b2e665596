"""Circuit breakers, one per backend, gated and counted where requests are sent.

closed --(`failover.breaker_threshold` failures in a row, or one spend-limit
failure)--> open: every request skips the backend for the cool-down (longer if the server's
retry-after says so) --> half-open: the next dispatch is the one probe. Its answer closes the
circuit, its failure opens it again, and a probe that proves nothing (cancelled, abandoned,
out of budget) lets the next request probe instead.

Only the dispatch path changes a circuit: deciding where a request would go never does.
Errors the caller must hear about (bad request, auth, content policy, context length) say
nothing about a backend's health and are not counted. Every change is written to the
ledger, so a new process (the next `devpulse ask`, `devpulse status`) starts from what the
last one saw, bounded by the cool-down.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from devpulse.core.config import FailoverConfig
from devpulse.core.errors import CALLER_ERRORS, Cause, Diagnosis
from devpulse.core.logs import get_logger

log = get_logger(__name__)

# One failure of these is enough: a spend limit does not lift in seconds.
LONG_OUTAGES = frozenset({Cause.SPEND_LIMIT})


@dataclass(frozen=True, slots=True)
class Circuit:
    """One backend's circuit; `open_until` is a Unix time, 0 while the circuit is closed."""

    failures: int = 0
    open_until: float = 0.0
    last_cause: str | None = None


class CircuitStore(Protocol):
    """Where circuits outlive a process (the ledger implements it)."""

    def load_circuits(self) -> dict[str, Circuit]: ...

    def save_circuit(self, backend: str, circuit: Circuit, at: float) -> None: ...


class Breakers:
    """The circuits of every backend one Router sends to; thread-safe."""

    def __init__(
        self,
        policy: FailoverConfig,
        *,
        store: Callable[[], CircuitStore | None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self._store = store
        self._circuits: dict[str, Circuit] = {}
        self._probing: set[str] = set()
        self._loaded = False
        self._lock = threading.Lock()

    # -- the dispatch path ------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether the circuits the store remembers have been read (asking reads them)."""
        return self._loaded

    def is_tracked(self, backend: str) -> bool:
        """Whether `backend` has a circuit to change: only then does `success` write."""
        return backend in self._circuits

    def admit(self, backend: str) -> bool:
        """Whether a request may be sent to `backend` now; after the cool-down, one probe may.

        A True answer must be followed by exactly one of `success`, `failure` or `release`.
        """
        self._load()
        with self._lock:
            circuit = self._circuits.get(backend)
            if circuit is None or not circuit.open_until:
                return True
            if self.clock() < circuit.open_until or backend in self._probing:
                return False
            self._probing.add(backend)
            return True

    def success(self, backend: str) -> None:
        """The backend answered: close its circuit."""
        with self._lock:
            self._probing.discard(backend)
            if backend not in self._circuits:
                return
            del self._circuits[backend]
        self._save(backend, Circuit())

    def failure(self, backend: str, diagnosis: Diagnosis) -> None:
        """The backend failed: count it, and open the circuit at the threshold."""
        if diagnosis.cause in CALLER_ERRORS:
            self.release(backend)
            return
        with self._lock:
            was_probing = backend in self._probing
            self._probing.discard(backend)
            circuit = self._circuits.get(backend, Circuit())
            circuit = replace(circuit, failures=circuit.failures + 1, last_cause=diagnosis.label)
            long_outage = diagnosis.cause in LONG_OUTAGES
            if was_probing or long_outage or circuit.failures >= self.policy.breaker_threshold:
                circuit = replace(circuit, open_until=self.clock() + self._wait(diagnosis))
            self._circuits[backend] = circuit
        self._save(backend, circuit)

    def release(self, backend: str) -> None:
        """The attempt proved nothing either way: if it was the probe, let another probe."""
        with self._lock:
            self._probing.discard(backend)

    # -- reading ----------------------------------------------------------------------------

    def states(self) -> dict[str, dict[str, Any]]:
        """Each known backend's circuit: state, failures in a row, last cause, seconds left."""
        self._load()
        now = self.clock()
        with self._lock:
            return {name: _state(c, now) for name, c in sorted(self._circuits.items())}

    # -- persistence ------------------------------------------------------------------------

    def _wait(self, diagnosis: Diagnosis) -> float:
        """How long the circuit stays open: the cool-down, or the server's retry-after when
        longer, but never past the longest wait the policy knows (the spend limit's)."""
        cooldown, longest = self.policy.breaker_cooldown_s, self.policy.spend_limit_cooldown_s
        if diagnosis.cause in LONG_OUTAGES:
            return longest
        asked = diagnosis.retry_after_s or 0.0
        return max(cooldown, min(asked, longest) if math.isfinite(asked) else cooldown)

    def _longest_wait(self, cause: str | None) -> float:
        long_outage = any(cause and cause.startswith(c.value) for c in LONG_OUTAGES)
        return self.policy.spend_limit_cooldown_s if long_outage else self.policy.breaker_cooldown_s

    def load(self) -> None:
        """Read the circuits the store remembers, if not yet read (`admit` then does no I/O)."""
        self._load()

    def _load(self) -> None:
        """Start from the circuits the store remembers, each open no longer than its cool-down."""
        if self._loaded:
            return
        store = self._store()
        found = store.load_circuits() if store is not None else {}
        now = self.clock()
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for name, circuit in found.items():
                if name in self._circuits or not (circuit.failures or circuit.open_until):
                    continue
                bound = now + self._longest_wait(circuit.last_cause)
                self._circuits[name] = replace(circuit, open_until=min(circuit.open_until, bound))

    def _save(self, backend: str, circuit: Circuit) -> None:
        """Write the circuit's new state; a store that fails (a ledger another process has
        locked) is logged: it must not replace the dispatch's own error, nor stop failover."""
        try:
            store = self._store()
            if store is not None:
                store.save_circuit(backend, circuit, self.clock())
        except Exception as exc:
            log.warning(
                "breaker.save_failed", backend=backend, error=type(exc).__name__, detail=str(exc)
            )


def _state(circuit: Circuit, now: float) -> dict[str, Any]:
    if not circuit.open_until:
        state = "closed"
    elif now < circuit.open_until:
        state = "open"
    else:
        state = "half_open"
    return {
        "state": state,
        "consecutive_failures": circuit.failures,
        "last_cause": circuit.last_cause,
        "retry_in_s": round(max(0.0, circuit.open_until - now), 1) if circuit.open_until else 0,
    }
