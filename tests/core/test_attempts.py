"""The attempt state machine: breaker gating, budgets, cancellation, truncation, verdicts.

Small in-process backends stand in for providers here; what real servers do is covered in
tests/plugins/failover and tests/plugins/backends.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devpulse import (
    BackendError,
    BudgetExhausted,
    Cause,
    Chunk,
    CircuitOpen,
    Decision,
    DispatchFailed,
    FirstTokenTimeout,
    PreflightRefused,
    Request,
    Response,
    Router,
    Side,
    StreamIncomplete,
    StreamStalled,
    TaskClass,
    Usage,
    Verdict,
    hookimpl,
)
from devpulse.core import abounded, bounded, drivers
from devpulse.core.attempts import run
from devpulse.core.bounded import Cancellation
from devpulse.core.config import Limits
from devpulse.core.drivers import drive
from devpulse.core.errors import Cancelled
from devpulse.plugins.backends.base import retry_after
from tests.support import router_with

CLOUD_WORK = {"task": TaskClass.REASONING}  # the table sends it to "anthropic"
LOCAL_WORK = {"task": TaskClass.DRAFTING}  # the table sends it to "llama_server"


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """Owns every backend. Each backend answers by its script: a cause to fail with, "ok",
    "no_final" (text but no final response), "hang" (blocks until released), "stall" (one
    chunk, then blocks), "drip" (a chunk every 10 ms until released), or a whole answer
    and then "reset_after" (an error) or "stall_after" (blocks until released)."""

    def __init__(self, **scripts: list[str]) -> None:
        self.scripts = scripts
        self.calls: list[str] = []
        self.closed: list[str] = []
        self.release = threading.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        self.calls.append(decision.backend)
        script = self.scripts.get(decision.backend, ["ok"])
        step = script[min(self.calls.count(decision.backend) - 1, len(script) - 1)]
        return self._answer(step, decision)

    def _answer(self, step: str, decision: Decision) -> Iterator[Chunk]:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if step == "hang":
                self.release.wait(30)
            if step == "stall":
                yield Chunk("text_delta", text="an ")
                self.release.wait(30)
            if step == "drip":
                while not self.release.is_set():
                    yield Chunk("text_delta", text="x")
                    time.sleep(0.01)
            if step in Cause.__members__.values():
                raise BackendError(f"{decision.backend} failed: {step}", cause=Cause(step))
            yield Chunk("text_delta", text="an ")
            yield Chunk("text_delta", text="answer")
            if step != "no_final":
                yield Chunk(
                    "message_stop",
                    response=Response("an answer", decision.model, decision.backend, decision.side),
                )
            if step == "reset_after":  # the connection breaks after the last event
                raise BackendError(f"{decision.backend}: connection reset", cause=Cause.STREAM_CUT)
            if step == "stall_after":  # the server keeps the connection open after it
                self.release.wait(30)
        finally:
            with self._lock:
                self.in_flight -= 1
            self.closed.append(decision.backend)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(scripted: Scripted, tmp_path: Path, clock: Clock | None = None, **failover) -> Router:
    router = router_with(
        {
            "ledger": {"path": str(tmp_path / "ledger.sqlite3")},
            "failover": {"backoff_s": 0.001, **failover},
        },
        plugins=[scripted],
    )
    if clock is not None:
        router.breakers.clock = clock
    return router


def outcomes(router: Router) -> list[str]:
    return [row["outcome"] for row in router.ledger.rows()]


def attempts(router: Router) -> list[tuple[str, str, str | None]]:
    router.ledger.flush()  # the books are written behind the requests
    with sqlite3.connect(router.ledger.path) as db:
        return db.execute("SELECT backend, outcome, cause FROM attempts ORDER BY rowid").fetchall()


# -- the breaker is gated and counted where requests are sent ------------------------------


def test_routing_never_uses_up_the_half_open_probe(tmp_path, clock) -> None:
    scripted = Scripted(anthropic=["overloaded", "overloaded", "overloaded", "ok"])
    router = make(scripted, tmp_path, clock, breaker_threshold=3, breaker_cooldown_s=30.0)
    for _ in range(3):
        assert router.invoke("x", **CLOUD_WORK).backend == "llama_server"  # failed over
    assert router.breakers.states()["anthropic"]["state"] == "open"
    clock.now += 31
    for _ in range(100):
        assert router.route("x", **CLOUD_WORK).backend == "anthropic"
    assert router.breakers.states()["anthropic"]["state"] == "half_open"
    assert router.invoke("x", **CLOUD_WORK).backend == "anthropic"  # the probe goes, and heals
    assert router.breakers.states() == {}


def test_an_open_circuit_is_skipped_without_an_attempt_and_booked(tmp_path, clock) -> None:
    scripted = Scripted(anthropic=["server_error"])
    router = make(scripted, tmp_path, clock, breaker_threshold=2, retries=0)
    router.invoke("x", **CLOUD_WORK)
    router.invoke("x", **CLOUD_WORK)
    calls = scripted.calls.count("anthropic")
    assert router.invoke("x", **CLOUD_WORK).backend == "llama_server"
    assert scripted.calls.count("anthropic") == calls  # not asked
    assert attempts(router)[-2:] == [
        ("anthropic", "skipped", "circuit_open"),
        ("llama_server", "answered", None),
    ]


def test_a_skipped_backend_is_not_counted_as_an_attempt(tmp_path, clock) -> None:
    # a spend limit opens anthropic's circuit at once; llama_server's takes three failures
    scripted = Scripted(anthropic=["spend_limit"], llama_server=["ok", "server_error"])
    router = make(scripted, tmp_path, clock, breaker_threshold=3, retries=0, max_attempts=2)
    assert router.invoke("x", **CLOUD_WORK).backend == "llama_server"
    with pytest.raises(DispatchFailed) as info:
        router.invoke("x", **CLOUD_WORK)  # anthropic skipped, llama_server fails
    # one sent to llama_server, anthropic's skip counted apart; and the fallback does not
    # go back to anthropic, which this request has already tried
    assert str(info.value).startswith("no answer after 1 attempt(s) (1 skipped: circuit open): ")
    assert scripted.calls == ["anthropic", "llama_server", "llama_server"]


def test_with_every_circuit_open_each_backend_is_named_once(tmp_path, clock) -> None:
    scripted = Scripted(anthropic=["server_error"], llama_server=["server_error"])
    router = make(scripted, tmp_path, clock, breaker_threshold=1, retries=0)
    with pytest.raises((DispatchFailed, CircuitOpen)):
        router.invoke("x", **CLOUD_WORK)  # both fail, and both circuits open
    with pytest.raises(CircuitOpen) as info:
        router.invoke("x", **CLOUD_WORK)
    message = str(info.value)
    assert message.count("anthropic's circuit is open") == 1
    assert message.count("llama_server's circuit is open") == 1


@pytest.mark.parametrize("cause", ["bad_request", "auth", "content_policy", "context_length"])
def test_the_callers_own_errors_never_open_a_circuit(tmp_path, clock, cause) -> None:
    scripted = Scripted(llama_server=[cause, cause, cause, cause, "ok"])
    router = make(scripted, tmp_path, clock, breaker_threshold=3)
    for _ in range(4):
        with pytest.raises(BackendError):
            router.invoke("x", **LOCAL_WORK)
    assert router.breakers.states() == {}
    assert router.invoke("x", **LOCAL_WORK).backend == "llama_server"


def test_a_new_router_starts_from_the_circuits_the_ledger_remembers(tmp_path, clock) -> None:
    scripted = Scripted(anthropic=["overloaded"])
    first = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=30.0)
    first.invoke("x", **CLOUD_WORK)
    calls = scripted.calls.count("anthropic")
    second = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=30.0)
    assert second.breakers.states()["anthropic"]["state"] == "open"
    assert second.invoke("x", **CLOUD_WORK).backend == "llama_server"
    assert scripted.calls.count("anthropic") == calls
    clock.now += 31  # the cool-down ends for every process alike
    third = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=30.0)
    assert third.breakers.states()["anthropic"]["state"] == "half_open"


def test_a_remembered_circuit_stays_open_no_longer_than_the_cool_down(tmp_path, clock) -> None:
    scripted = Scripted(anthropic=["overloaded"])
    make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=3600.0).invoke(
        "x", **CLOUD_WORK
    )
    shorter = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=5.0)
    assert shorter.breakers.states()["anthropic"]["retry_in_s"] == 5.0


class AsksToWait:
    """The cloud answers 503 with a retry-after of `seconds` (as its header said it)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Iterator[Chunk] | None:
        if decision.backend != "anthropic":
            return None
        raise BackendError("busy", cause=Cause.SERVER_ERROR, retry_after_s=self.seconds)


@pytest.mark.parametrize(
    ("asked", "open_for"), [(600.0, 600.0), (1e9, 3600.0), (5.0, 30.0), (None, 30.0)]
)
def test_a_retry_after_keeps_a_circuit_open_that_long_within_the_longest_wait(
    tmp_path, clock, asked, open_for
) -> None:
    router = router_with(
        {
            "ledger": {"path": str(tmp_path / "ledger.sqlite3")},
            "failover": {"breaker_threshold": 1, "breaker_cooldown_s": 30.0, "retries": 0},
        },
        plugins=[Scripted(), AsksToWait(asked)],  # the last registered answers first
    )
    router.breakers.clock = clock
    assert router.invoke("x", **CLOUD_WORK).backend == "llama_server"
    state = router.breakers.states()["anthropic"]
    assert (state["state"], state["retry_in_s"]) == ("open", open_for)
    json.dumps(state, allow_nan=False)  # what `devpulse status --json` prints


@pytest.mark.parametrize("header", ["inf", "-inf", "nan", "1e400", "soon"])
def test_a_retry_after_that_is_no_finite_number_is_not_a_wait(header) -> None:
    assert retry_after({"retry-after": header}) is None
    assert retry_after({"retry-after-ms": header, "retry-after": "3"}) == 3.0


def test_a_retry_after_is_read_in_seconds_or_milliseconds() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "7"}) == 1.5
    assert retry_after({"retry-after": "-5"}) == 0.0
    assert retry_after({}) is None


def test_an_abandoned_probe_lets_the_next_request_probe(tmp_path, clock) -> None:
    scripted = Scripted(anthropic=["overloaded", "ok"])
    router = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=10.0)
    router.invoke("x", **CLOUD_WORK)
    clock.now += 11
    chunks = router.stream("x", **CLOUD_WORK)
    assert next(chunks).text == "an "  # the probe is under way...
    chunks.close()  # ...and the caller walks away: it proved nothing
    assert router.breakers.states()["anthropic"]["state"] == "half_open"
    assert router.invoke("x", **CLOUD_WORK).backend == "anthropic"
    assert outcomes(router)[-2:] == ["abandoned", "answered"]


def test_a_caller_who_stops_at_the_restart_lets_the_next_request_probe(tmp_path, clock) -> None:
    # llama_server's circuit opens; then the cloud's answer breaks mid-way and its fallback,
    # llama_server (half-open), is let through as the probe: the caller stops reading at the
    # restart chunk that announces it, before it is sent.
    scripted = Scripted(llama_server=["overloaded", "ok"], anthropic=["ok", "no_final"])
    router = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=10.0)
    assert router.invoke("x", **LOCAL_WORK).backend == "anthropic"
    clock.now += 11
    chunks = router.stream("x", **CLOUD_WORK)
    assert [next(chunks).type for _ in range(3)] == ["text_delta", "text_delta", "restart"]
    chunks.close()
    assert router.breakers.states()["llama_server"]["state"] == "half_open"
    assert router.invoke("x", **LOCAL_WORK).backend == "llama_server"  # the next one probes
    assert scripted.calls == ["llama_server", "anthropic", "anthropic", "llama_server"]


def test_a_machine_whose_driver_is_gone_still_books_the_request(tmp_path, clock) -> None:
    """An event loop that shuts down with an `astream` unfinished closes the attempt machine
    where it stands (`GeneratorExit`), with no driver left to perform its last actions: the
    books are queued in place, and a probe it held is released."""
    scripted = Scripted(llama_server=["overloaded", "stall"])
    router = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=10.0)
    router.invoke("x", **LOCAL_WORK)  # llama_server's circuit opens
    clock.now += 11
    machine = run(router, Request.from_prompt("x", **LOCAL_WORK))
    chunks = drive(router, machine, Cancellation())
    try:
        assert next(chunks).text == "an "  # the probe is under way
        machine.close()  # raised "generator ignored GeneratorExit", booking nothing
    finally:
        scripted.release.set()
        chunks.close()
    assert outcomes(router) == ["answered", "abandoned"]
    assert attempts(router)[-1] == ("llama_server", "abandoned", None)
    assert router.breakers.states()["llama_server"]["state"] == "half_open"
    assert router.invoke("x", **LOCAL_WORK).backend == "llama_server"  # the next one probes


class Slow:
    """A plugin whose preflight of one backend takes `seconds` of the router's clock."""

    def __init__(self, clock: Clock, backend: str, seconds: float) -> None:
        self.clock, self.backend, self.seconds = clock, backend, seconds

    @hookimpl
    def preflight(self, request: Request, decision: Decision) -> None:
        if decision.backend == self.backend:
            self.clock.now += self.seconds


def test_a_probe_let_through_but_never_sent_lets_the_next_request_probe(tmp_path, clock) -> None:
    scripted = Scripted(llama_server=["overloaded", "ok"], anthropic=["ok", "server_error"])
    router = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=10.0)
    router.clock = clock
    assert router.invoke("x", **LOCAL_WORK).backend == "anthropic"  # llama_server's opens
    clock.now += 11
    slow = Slow(clock, "llama_server", 100.0)
    router.pm.register(slow)
    # anthropic fails; its fallback, llama_server, is let through as the probe, and then its
    # preflight takes longer than the budget had left: it is never sent
    with pytest.raises(BudgetExhausted):
        router.invoke("x", **CLOUD_WORK)
    router.pm.unregister(slow)
    assert router.breakers.states()["llama_server"]["state"] == "half_open"
    assert router.invoke("x", **LOCAL_WORK).backend == "llama_server"  # the next one probes
    assert scripted.calls == ["llama_server", "anthropic", "anthropic", "llama_server"]


def test_a_cancel_while_the_circuits_are_read_leaves_no_probe_taken(tmp_path, clock) -> None:
    scripted = Scripted(llama_server=["overloaded", "ok"])
    first = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=10.0)
    first.invoke("x", **LOCAL_WORK)  # llama_server's circuit opens, and the ledger keeps it
    first.close()
    clock.now += 11
    router = make(scripted, tmp_path, clock, breaker_threshold=1, breaker_cooldown_s=10.0)
    reading, go = threading.Event(), threading.Event()
    load = router.ledger.load_circuits

    def slow_load():  # type: ignore[no-untyped-def]
        reading.set()
        go.wait(10)
        return load()

    router.ledger.load_circuits = slow_load  # type: ignore[method-assign]

    async def cancel_while_reading() -> Response:
        task = asyncio.ensure_future(router.ainvoke("x", **LOCAL_WORK))
        await asyncio.to_thread(reading.wait, 10)
        task.cancel()
        go.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await router.ainvoke("x", **LOCAL_WORK)

    assert asyncio.run(cancel_while_reading()).backend == "llama_server"


# -- an answer is whole at its final response ----------------------------------------------


@pytest.mark.parametrize("step", ["reset_after", "stall_after"])
def test_what_follows_the_final_response_fails_nothing(tmp_path, step) -> None:
    scripted = Scripted(anthropic=[step])
    router = make(scripted, tmp_path, retries=1, stall_timeout_s=0.2)
    chunks = list(router.stream("x", **CLOUD_WORK))
    assert [c.type for c in chunks].count("message_stop") == 1
    assert not any(c.restart for c in chunks)
    assert chunks[-1].response is not None
    assert chunks[-1].response.backend == "anthropic"
    assert router.invoke("x", **CLOUD_WORK).backend == "anthropic"
    scripted.release.set()
    assert scripted.calls == ["anthropic", "anthropic"]
    assert attempts(router) == [("anthropic", "answered", None)] * 2
    assert router.breakers.states() == {}


@pytest.mark.parametrize("path", ["stream", "astream"])
def test_a_body_held_open_after_the_answer_is_not_waited_for_up_to_the_stall_limit(
    tmp_path, monkeypatch, path
) -> None:
    monkeypatch.setattr(bounded, "AFTER_ANSWER_S", 0.05, raising=False)
    monkeypatch.setattr(abounded, "AFTER_ANSWER_S", 0.05, raising=False)
    scripted = Scripted(anthropic=["stall_after"])
    router = make(scripted, tmp_path, stall_timeout_s=600.0, cloud_timeout_s=600.0)

    async def astream() -> list[Chunk]:
        return [chunk async for chunk in router.astream("x", **CLOUD_WORK)]

    got: list[list[Chunk]] = []
    reader = threading.Thread(
        target=lambda: got.append(
            list(router.stream("x", **CLOUD_WORK)) if path == "stream" else asyncio.run(astream())
        ),
        daemon=True,
    )
    reader.start()
    reader.join(20)  # the stall limit is 600 s, the backend holds 30 s: the after-answer limit
    scripted.release.set()
    assert not reader.is_alive()
    assert got[0][-1].response is not None
    assert attempts(router) == [("anthropic", "answered", None)]


# -- retries belong to the backend they were made on ---------------------------------------


def test_a_fallback_does_not_inherit_the_other_backends_retries(tmp_path) -> None:
    scripted = Scripted(anthropic=["server_error"], llama_server=["server_error", "ok"])
    router = make(scripted, tmp_path, retries=1, max_attempts=4)
    assert router.invoke("x", **CLOUD_WORK).backend == "llama_server"
    assert scripted.calls == ["anthropic", "anthropic", "llama_server", "llama_server"]


# -- nothing truncated is ever a success ---------------------------------------------------


def test_an_answer_without_its_final_response_fails_over(tmp_path) -> None:
    scripted = Scripted(anthropic=["no_final"])
    router = make(scripted, tmp_path, retries=0)
    chunks = list(router.stream("x", **CLOUD_WORK))
    assert sum(c.restart for c in chunks) == 1
    assert chunks[-1].response is not None
    assert chunks[-1].response.backend == "llama_server"
    assert attempts(router) == [
        ("anthropic", "failed", "stream_cut"),
        ("llama_server", "answered", None),
    ]


def test_an_answer_without_its_final_response_and_no_fallback_raises(tmp_path) -> None:
    scripted = Scripted(llama_server=["no_final"])
    router = make(scripted, tmp_path, enabled=False)
    with pytest.raises(DispatchFailed, match="without its final response"):
        router.invoke("x", **LOCAL_WORK)
    with pytest.raises(DispatchFailed, match="broke mid-answer"):
        list(router.stream("x", **LOCAL_WORK))
    assert outcomes(router) == ["failed", "failed"]


# -- every wait is bounded -----------------------------------------------------------------

GUARD_S = 10.0  # generous: these requests end in well under a second; a hang takes 30 s


@pytest.mark.parametrize("step", ["hang", "drip"])  # silent, or a chunk every 10 ms forever
def test_the_budget_bounds_a_backend_whatever_it_does(tmp_path, step) -> None:
    scripted = Scripted(llama_server=[step])
    router = make(scripted, tmp_path, budget_s=0.3)
    start = time.monotonic()
    with pytest.raises(BudgetExhausted, match=r"no answer within failover\.budget_s \(0\.3s\)"):
        router.invoke("x", **LOCAL_WORK)
    assert time.monotonic() - start < GUARD_S
    scripted.release.set()
    assert outcomes(router) == ["failed"]


def test_silence_and_stalls_end_at_their_limits(tmp_path) -> None:
    scripted = Scripted(llama_server=["hang", "stall"])
    router = make(scripted, tmp_path, enabled=False, local_timeout_s=0.2, stall_timeout_s=0.2)
    with pytest.raises(FirstTokenTimeout):
        router.invoke("x", **LOCAL_WORK)
    with pytest.raises(DispatchFailed, match="StreamStalled"):
        router.invoke("x", **LOCAL_WORK)
    scripted.release.set()
    assert attempts(router) == [
        ("llama_server", "failed", "no_first_token"),
        ("llama_server", "failed", "stalled"),
    ]


def _dripped(pause_s: float, then: str) -> Iterator[Chunk]:
    """A block's start, then twenty words `pause_s` apart; then the answer, or silence."""
    yield Chunk("block_start", index=0)
    for _ in range(20):
        yield Chunk("text_delta", text="word ")
        time.sleep(pause_s)
    if then == "answer":
        yield Chunk("message_stop", response=Response("word " * 20, "m", "b", Side.LOCAL))
    else:
        time.sleep(30)


def _read(pause_s: float, then: str, *, deltas: bool, stall_s: float = 1.0) -> list[Chunk]:
    return list(
        bounded.bounded(
            lambda: _dripped(pause_s, then),
            name="b",
            limits=Limits(connect_s=1.0, first_token_s=GUARD_S, stall_s=stall_s),
            deadline=time.monotonic() + 60,
            cancellation=Cancellation(),
            deltas=deltas,
        )
    )


def test_a_caller_who_reads_the_answer_whole_is_handed_only_what_the_machine_reads() -> None:
    assert len(_read(0, "answer", deltas=True)) == 22
    handed = _read(0, "answer", deltas=False)
    assert [c.type for c in handed] == ["block_start", "message_stop"]  # begun, and whole
    assert handed[-1].response is not None
    assert handed[-1].response.text == "word " * 20


def test_chunks_not_handed_over_still_keep_the_stall_limit_away() -> None:
    # 20 words 50 ms apart: a second of answer, past the 0.4 s stall limit but never
    # stalling, although the caller is handed only the first word and the answer
    assert _read(0.05, "answer", deltas=False, stall_s=0.4)[-1].response is not None
    with pytest.raises(StreamStalled):  # and silence after them is a stall, as ever
        _read(0.01, "silence", deltas=False, stall_s=0.4)


def test_a_first_chunk_that_is_not_content_starts_the_stall_limit_when_not_handed() -> None:
    # A usage chunk first (an input count, as a message_start tells it), then silence: the
    # stall limit (0.4 s) applies from it, not the first-token limit (GUARD_S), as it does
    # for a caller handed every chunk.
    def usage_then_silence() -> Iterator[Chunk]:
        time.sleep(0.1)  # the caller is waiting out the first-token limit by now
        yield Chunk("usage", usage=Usage(input_tokens=3))
        time.sleep(30)

    for deltas in (True, False):
        started = time.monotonic()
        with pytest.raises(StreamStalled):
            list(
                bounded.bounded(
                    usage_then_silence,
                    name="b",
                    limits=Limits(connect_s=1.0, first_token_s=GUARD_S, stall_s=0.4),
                    deadline=time.monotonic() + 60,
                    cancellation=Cancellation(),
                    deltas=deltas,
                )
            )
        assert time.monotonic() - started < GUARD_S / 2


def test_an_invoke_is_handed_one_chunk_of_text_and_its_answer(tmp_path, monkeypatch) -> None:
    handed: list[Chunk] = []
    original = drivers._Sync.perform

    def perform(self: drivers._Sync, action: Any) -> Any:
        value = original(self, action)
        if isinstance(value, Chunk):
            handed.append(value)
        return value

    monkeypatch.setattr(drivers._Sync, "perform", perform)
    router = make(Scripted(), tmp_path)
    assert router.invoke("x", **LOCAL_WORK).text == "an answer"
    assert [c.text for c in handed] == ["an ", ""]
    handed.clear()
    assert [c.text for c in router.stream("x", **LOCAL_WORK)][:2] == ["an ", "answer"]
    assert [c.text for c in handed] == ["an ", "answer", ""]


def test_a_backoff_that_would_outlast_the_budget_is_not_slept(tmp_path) -> None:
    scripted = Scripted(llama_server=["server_error"])
    router = make(scripted, tmp_path, budget_s=0.5, backoff_s=100.0, retries=1)
    with pytest.raises(BudgetExhausted, match="before a retry"):
        router.invoke("x", **LOCAL_WORK)


class SlowSetUp(Scripted):
    """A backend whose set-up (a client library's first import, say) takes a while, or fails."""

    def __init__(self, set_up: str, **scripts: list[str]) -> None:
        super().__init__(**scripts)
        self.set_up = set_up
        self.threads: list[int] = []

    @hookimpl
    def prepare_dispatch(self, decision: Decision) -> None:
        self.threads.append(threading.get_ident())
        if self.set_up == "slow":
            time.sleep(0.4)
        elif decision.backend == "anthropic":
            raise BackendError("anthropic: no client", cause=Cause.SERVER_ERROR)


def test_set_up_before_a_dispatch_is_outside_its_first_token_limit(tmp_path) -> None:
    scripted = SlowSetUp("slow")
    router = make(scripted, tmp_path, enabled=False, local_timeout_s=0.2)
    assert router.invoke("x", **LOCAL_WORK).text == "an answer"
    assert scripted.threads == [threading.get_ident()]  # the caller's thread


def test_a_failed_set_up_fails_the_attempt_like_a_failed_dispatch(tmp_path) -> None:
    scripted = SlowSetUp("fail")
    router = make(scripted, tmp_path, retries=0)
    assert router.invoke("x", **CLOUD_WORK).backend == "llama_server"
    assert scripted.calls == ["llama_server"]
    assert attempts(router) == [
        ("anthropic", "failed", "server_error"),
        ("llama_server", "answered", None),
    ]
    assert router.breakers.states()["anthropic"]["consecutive_failures"] == 1


# -- cancellation --------------------------------------------------------------------------


def test_a_cancelled_ainvoke_stops_the_attempt_and_is_booked_cancelled(tmp_path) -> None:
    scripted = Scripted(llama_server=["drip"])
    router = make(scripted, tmp_path)

    async def cancel_soon() -> None:
        task = asyncio.ensure_future(router.ainvoke("x", **LOCAL_WORK))
        while not scripted.calls:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())
    assert outcomes(router) == ["cancelled"]
    for _ in range(500):  # the worker closes the backend's stream at its next chunk
        if scripted.closed:
            break
        time.sleep(0.01)
    assert scripted.closed == ["llama_server"]
    assert router.breakers.states() == {}  # a cancel says nothing about the backend


def test_a_request_the_caller_walks_away_from_books_the_attempt_in_flight(tmp_path) -> None:
    scripted = Scripted(anthropic=["server_error"])
    router = make(scripted, tmp_path, retries=0)
    chunks = router.stream("x", **CLOUD_WORK)
    assert next(chunks).text == "an "  # from llama_server, after anthropic failed
    chunks.close()

    async def walk_away() -> None:
        answer = router.astream("x", **LOCAL_WORK)
        assert (await anext(answer)).text == "an "
        await answer.aclose()

    asyncio.run(walk_away())
    assert outcomes(router) == ["abandoned", "abandoned"]
    assert attempts(router) == [
        ("anthropic", "failed", "server_error"),
        ("llama_server", "abandoned", None),
        ("llama_server", "abandoned", None),
    ]


class Deciding:
    """A preflight that does I/O (not loop-safe, so it runs in a thread) and waits for `go`."""

    def __init__(self) -> None:
        self.entered, self.go = threading.Event(), threading.Event()

    @hookimpl
    def preflight(self, request: Request, decision: Decision) -> None:
        self.entered.set()
        self.go.wait(10)


def test_an_ainvoke_cancelled_while_it_is_decided_is_booked_cancelled(tmp_path) -> None:
    scripted = Scripted()
    router = make(scripted, tmp_path)
    deciding = Deciding()
    router.pm.register(deciding)

    async def cancel_while_deciding() -> None:
        task = asyncio.ensure_future(router.ainvoke("x", **LOCAL_WORK))
        await asyncio.to_thread(deciding.entered.wait, 10)
        task.cancel()
        deciding.go.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_deciding())
    assert outcomes(router) == ["cancelled"]
    assert scripted.calls == []


def test_ainvoke_runs_requests_at_the_same_time(tmp_path) -> None:
    scripted = Scripted()
    barrier = threading.Barrier(5, timeout=20)
    inner = scripted._answer

    def meet(step: str, decision: Decision) -> Iterator[Chunk]:
        barrier.wait()  # only passes once five requests are in flight together
        yield from inner(step, decision)

    scripted._answer = meet  # type: ignore[method-assign]
    router = make(scripted, tmp_path)

    async def five() -> list[Response]:
        return await asyncio.gather(*(router.ainvoke(f"x{i}", **LOCAL_WORK) for i in range(5)))

    assert len(asyncio.run(five())) == 5
    assert outcomes(router) == ["answered"] * 5


# -- preflight: every objection, every decision, applied in one place ----------------------


class Objects:
    def __init__(self, backend: str, verdict: Verdict) -> None:
        self.backend, self.verdict = backend, verdict
        self.seen: list[str] = []

    @hookimpl
    def preflight(self, request: Request, decision: Decision) -> Verdict | None:
        self.seen.append(decision.backend)
        return self.verdict if decision.backend == self.backend else None


def test_every_objection_is_heard(tmp_path) -> None:
    memory = Objects("llama_server", Verdict("refuse", "no memory"))
    battery = Objects("llama_server", Verdict("refuse", "on battery"))
    router = router_with({}, plugins=[memory, battery])
    with pytest.raises(PreflightRefused, match=r"on battery; no memory|no memory; on battery"):
        router.route("x", **LOCAL_WORK)


def test_a_fallback_passes_preflight_before_it_is_sent(tmp_path) -> None:
    scripted = Scripted(anthropic=["overloaded"])
    refuse_local = Objects("llama_server", Verdict("refuse", "local model does not fit"))
    router = router_with(
        {"ledger": {"path": str(tmp_path / "l.sqlite3")}}, plugins=[scripted, refuse_local]
    )
    with pytest.raises(DispatchFailed, match="local model does not fit"):
        router.invoke("x", **CLOUD_WORK)
    assert scripted.calls == ["anthropic"]  # the refused fallback was never sent
    assert refuse_local.seen == ["anthropic", "llama_server"]


def test_an_open_circuits_fallback_passes_preflight(tmp_path, clock) -> None:
    scripted = Scripted(anthropic=["overloaded"])
    watch = Objects("nothing", Verdict("refuse", "never"))
    router = router_with(
        {
            "ledger": {"path": str(tmp_path / "l.sqlite3")},
            "failover": {"breaker_threshold": 1},
        },
        plugins=[scripted, watch],
    )
    router.breakers.clock = clock
    router.invoke("x", **CLOUD_WORK)
    watch.seen.clear()
    assert router.invoke("x", **CLOUD_WORK).backend == "llama_server"
    assert watch.seen == ["anthropic", "llama_server"]  # the skip's fallback was checked


def test_a_reroute_is_checked_again(tmp_path) -> None:
    cloud = Decision(Side.CLOUD, "anthropic", "claude-haiku-4-5", ("cloud has room",))
    reroute = Objects("llama_server", Verdict("reroute", "too big", decision=cloud))
    refuse_cloud = Objects("anthropic", Verdict("refuse", "cloud is off today"))
    router = router_with({}, plugins=[reroute, refuse_cloud])
    with pytest.raises(PreflightRefused, match="cloud is off today"):
        router.route("x", **LOCAL_WORK)


# -- the books -----------------------------------------------------------------------------


def test_an_unwritable_ledger_stops_the_request_before_it_is_sent(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    scripted = Scripted()
    router = router_with({"ledger": {"path": str(blocker / "ledger.sqlite3")}}, plugins=[scripted])
    with pytest.raises(Exception, match=r"cannot write the ledger at .*ledger\.sqlite3 \(set"):
        router.invoke("x", **LOCAL_WORK)
    assert scripted.calls == []


def test_the_stream_cut_cause_is_recorded(tmp_path) -> None:
    scripted = Scripted(llama_server=["no_final"])
    router = make(scripted, tmp_path, enabled=False)
    with pytest.raises(DispatchFailed) as failed:
        router.invoke("x", **LOCAL_WORK)
    assert isinstance(failed.value.__cause__, StreamIncomplete)
    assert attempts(router) == [("llama_server", "failed", "stream_cut")]


class _Answers:
    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        return Response("ok", decision.model, decision.backend, decision.side)


_FORKED = {"ledger": {"enabled": False}, "preflight": {"enabled": False}}


def _answer_in_child(results: Any) -> None:
    router = router_with({**_FORKED, "failover": {"budget_s": 20}}, plugins=[_Answers()])
    try:
        sync = router.invoke("summarize this").text
        from_loop = asyncio.run(router.ainvoke("x" * 3000)).text  # decided in a thread
        results.put((sync, from_loop))
    except Exception as exc:  # the parent shows it
        results.put((type(exc).__name__, str(exc)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_answers_on_both_paths() -> None:
    """The parent's idle attempt worker and blocking-call threads do not exist in a child made
    by fork (multiprocessing's default on Linux); its requests must not queue for them."""
    parent = router_with(_FORKED, plugins=[_Answers()])
    assert parent.invoke("summarize this").text == "ok"  # leaves an idle worker
    assert asyncio.run(parent.ainvoke("x" * 3000)).text == "ok"  # and a blocking pool
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_answer_in_child, args=(results,))
    child.start()
    try:
        assert results.get(timeout=120) == ("ok", "ok")
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()


def test_a_close_elsewhere_up_the_stack_does_not_stop_the_machine_closing_its_stream(
    tmp_path, monkeypatch
) -> None:
    """Router.stream driven from a caller's `finally` while the caller's own generator is
    being closed: that GeneratorExit is the caller's, and the machine still has its driver
    close the attempt's stream (it settles in place only when it is itself being closed)."""
    performed: list[str] = []
    perform = drivers._Sync.perform

    def watched(self: drivers._Sync, action: Any) -> Any:
        performed.append(type(action).__name__)
        return perform(self, action)

    monkeypatch.setattr(drivers._Sync, "perform", watched)
    router = make(Scripted(), tmp_path)
    got: list[list[str]] = []

    def session() -> Iterator[int]:
        try:
            yield 1
        finally:
            got.append([c.type for c in router.stream("x", **LOCAL_WORK)])

    caller = session()
    next(caller)
    caller.close()
    assert got[0][-1] == "message_stop"
    assert "Close" in performed
    assert outcomes(router) == ["answered"]


class ReadToItsEnd:
    """An answer whose stream has a little more to read after its final response (what
    keeps a connection alive for the next request): `drained` once it was read to its end."""

    def __init__(self) -> None:
        self.caller_left = threading.Event()
        self.drained = threading.Event()

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        response = Response("an answer", decision.model, decision.backend, decision.side)
        yield Chunk("text_delta", text="an answer")
        yield Chunk("message_stop", response=response)
        self.caller_left.wait(WAIT_S)
        yield Chunk("usage")  # the protocol's last bytes, read after the caller has gone
        self.drained.set()


WAIT_S = 20.0  # how long a test waits for what must happen; never a measurement


def test_the_streams_end_is_still_read_after_the_caller_has_its_answer(tmp_path) -> None:
    backend = ReadToItsEnd()
    router = router_with({"ledger": {"path": str(tmp_path / "l.sqlite3")}}, plugins=[backend])
    assert router.invoke("x", **LOCAL_WORK).text == "an answer"
    backend.caller_left.set()  # the caller has closed its attempt: the worker is told to stop
    assert backend.drained.wait(WAIT_S)  # ...but reads the stream's end first


def test_a_cancel_ends_a_backoff_sleep_whether_it_comes_before_or_during_it() -> None:
    before = Cancellation()
    before.cancel()
    with pytest.raises(Cancelled):
        before.sleep(60)  # the sleep's event is made after the cancel: it is set at once
    during = Cancellation()
    timer = threading.Timer(0.05, during.cancel)
    timer.start()
    try:
        with pytest.raises(Cancelled):
            during.sleep(60)
    finally:
        timer.cancel()
    assert before.cancelled
    assert during.cancelled
