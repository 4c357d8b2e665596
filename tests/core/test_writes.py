"""The ledger's rows are written behind the requests: nothing queued is ever lost to a reader
or to the process ending, however it ends short of being killed outright."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devpulse import Decision, Ledger, Request, Response, Usage, hookimpl
from devpulse.core import writes
from devpulse.core.ledger import Attempt, RequestRecord
from devpulse.core.writes import Writes
from tests.support import router_with

ROOT = Path(__file__).resolve().parents[2]


class Answer:
    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        return Response("ok", decision.model, decision.backend, decision.side, Usage(10, 2))


def entry(tag: str) -> RequestRecord:
    attempt = Attempt("local", "b", "m", "answered", None, 0.01)
    return RequestRecord("drafting", "public", [tag], "answered", [attempt])


def count(path: Path, table: str = "requests") -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_submitted_write_returns_before_it_is_committed_and_flush_waits_for_it() -> None:
    held, committed = threading.Event(), []

    def commit(batch: list[Any]) -> None:
        held.wait()
        for fn, future in batch:
            committed.append(fn(None))
            future.set_result(None)

    queue = Writes(commit, key="test")
    queue.submit(lambda db: 1)
    queue.submit(lambda db: 2)
    assert committed == []  # the commit is held, and yet both submits returned
    flushed = threading.Thread(target=queue.flush)
    flushed.start()
    flushed.join(0.05)
    assert flushed.is_alive()  # flush waits for the writes queued before it
    held.set()
    flushed.join()
    assert committed == [1, 2, None]  # in order, then flush's own empty write


def test_rows_queued_from_many_threads_are_each_committed_once(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: ledger.queue_record(entry(f"t{i}")), range(400)))
    rows = ledger.rows()  # a read waits for what was queued before it
    assert sorted(r["reasons"] for r in rows) == sorted(f'["t{i}"]' for i in range(400))
    assert count(path, "attempts") == 400


def test_a_write_that_fails_is_logged_and_spoils_no_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.queue_record(entry("before"))
    ledger._writes.submit(lambda db: db.execute("INSERT INTO nowhere VALUES (1)"))
    ledger.queue_record(entry("after"))
    assert [r["reasons"] for r in ledger.rows()] == ['["before"]', '["after"]']
    assert "ledger.write_failed" in caplog.text
    assert "OperationalError" in caplog.text


def test_a_busy_mark_is_finished_even_when_both_wait_in_one_batch(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    use = ledger.queue_begin_use("ollama", "a")
    assert ledger.in_flight(60.0) == {("ollama", "a")}
    ledger.queue_end_use(use)
    assert use.id is not None
    assert ledger.in_flight(60.0) == set()
    both = ledger.queue_begin_use("ollama", "b")
    ledger.queue_end_use(both)
    assert ledger.in_flight(60.0) == set()
    assert set(ledger.last_used()) == {("ollama", "a"), ("ollama", "b")}


def test_a_read_through_another_ledger_on_the_same_file_sees_the_queued_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.sqlite3"
    router = router_with({"ledger": {"path": str(path)}}, plugins=[Answer()])
    for _ in range(5):
        router.invoke("summarize the launch plan")
    assert len(Ledger(path).rows()) == 5


def test_close_commits_the_rows_for_readers_in_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    with router_with({"ledger": {"path": str(path)}}, plugins=[Answer()]) as router:
        for _ in range(5):
            router.invoke("summarize the launch plan")
    assert count(path) == 5
    router.invoke("summarize the launch plan")  # still usable after close

    async def many() -> None:
        async with router_with({"ledger": {"path": str(path)}}, plugins=[Answer()]) as arouter:
            await asyncio.gather(*(arouter.ainvoke("summarize it") for _ in range(20)))
        router.close()

    asyncio.run(many())
    assert count(path) == 26


def test_the_writing_thread_ends_when_idle_and_a_later_write_starts_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes, "IDLE_S", 0.01)
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.queue_record(entry("one"))
    first = ledger._writes._thread
    assert first is not None
    first.join()  # idle: it ends
    assert ledger._writes._thread is None
    ledger.queue_record(entry("two"))
    assert [r["reasons"] for r in ledger.rows()] == ['["one"]', '["two"]']


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from devpulse import Response, Usage, hookimpl
    from tests.support import router_with

    path, mode = sys.argv[1], sys.argv[2]

    class Answer:
        calls = 0

        @hookimpl
        def dispatch(self, request, decision):
            Answer.calls += 1
            if mode == "interrupt" and Answer.calls == 21:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the answer is awaited
                time.sleep(60)
            return Response("ok", decision.model, decision.backend, decision.side, Usage(10, 2))

    router = router_with({"ledger": {"path": path}}, plugins=[Answer()])
    for _ in range(20):
        router.invoke("summarize the launch plan")
    if mode == "interrupt":
        router.invoke("summarize the launch plan")
    # no close(): the process ends with rows still queued
    """
)


@pytest.mark.parametrize("mode", ["exit", "interrupt"])
def test_a_process_that_ends_without_close_keeps_every_row(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "l.sqlite3"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), mode],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if mode == "exit":
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == -signal.SIGINT, done.stderr
        assert "KeyboardInterrupt" in done.stderr
    with sqlite3.connect(path) as db:
        outcomes = [o for (o,) in db.execute("SELECT outcome FROM requests ORDER BY id")]
        uses = db.execute("SELECT count(*), count(finished) FROM uses").fetchone()
    expected = ["answered"] * 20 + (["cancelled"] if mode == "interrupt" else [])
    assert outcomes == expected
    assert uses == (len(expected), len(expected))  # every busy mark started and finished


def _queue_in_child(path: str, tag: str) -> None:
    Ledger(path).queue_record(entry(tag))  # the worker then ends with os._exit


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork is POSIX")
@pytest.mark.parametrize("parent_wrote_first", [False, True])
def test_rows_queued_in_forked_workers_are_kept(tmp_path: Path, parent_wrote_first: bool) -> None:
    """multiprocessing's fork workers end with os._exit: no exit hook, and no writer thread
    of their own (a parent's recent write left it looking started)."""
    import multiprocessing  # noqa: PLC0415

    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    if parent_wrote_first:
        ledger.queue_record(entry("parent"))
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_queue_in_child, args=(str(path), f"w{i}")) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    ledger.flush()
    assert count(path) == 4 + parent_wrote_first


def _record_in_child(path: str, ledger: Ledger) -> None:
    Ledger(path).queue_record(entry("new ledger"))
    ledger.queue_record(entry("inherited ledger"))  # its connection is the parent's


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork is POSIX")
def test_a_fork_in_the_middle_of_a_transaction_leaves_the_child_able_to_write(
    tmp_path: Path,
) -> None:
    """SQLite's lock state lives in per-process memory that a child inherits: forked while
    another thread was inside a transaction, a child's writes waited for ever (CI saw the
    forked-workers test hang). The fork now waits for the transaction to end."""
    import multiprocessing  # noqa: PLC0415

    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    inside, go_on = threading.Event(), threading.Event()

    def hold_a_transaction() -> None:
        with ledger._transaction() as db:
            db.execute("SELECT count(*) FROM requests").fetchone()
            inside.set()
            go_on.wait(0.3)  # the fork is asked for meanwhile, and waits for the commit

    holder = threading.Thread(target=hold_a_transaction)
    holder.start()
    inside.wait()
    child = multiprocessing.get_context("fork").Process(
        target=_record_in_child, args=(str(path), ledger)
    )
    child.start()
    holder.join()
    child.join(60)  # a ceiling for a hang, not a timing: the child takes milliseconds
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
    assert count(path) == 2


def test_a_commit_interrupted_by_ctrl_c_leaves_its_writes_queued_for_the_next(
    tmp_path: Path,
) -> None:
    calls: list[int] = []

    def commit(batch: list[Any]) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise KeyboardInterrupt  # the Ctrl-C lands in the thread leading the commit
        for fn, future in batch:
            future.set_result(fn(None))

    queue = Writes(commit, key="ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        queue.write(lambda db: "first")
    assert queue.write(lambda db: "second") == "second"
    assert calls == [1, 2]  # the interrupted write went again, ahead of the next


def test_a_busy_mark_left_with_a_rolled_back_id_finishes_no_other_attempt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    other = ledger.begin_use("b", "other")  # another attempt's mark holds that row id
    use = ledger.queue_begin_use("b", "m")
    ledger.flush()
    assert use.id is not None
    with sqlite3.connect(path) as db:  # as if the begin's commit had been rolled back
        db.execute("DELETE FROM uses WHERE id = ?", (use.id,))
    use.id = other
    ledger.queue_end_use(use)
    ledger.flush()
    with sqlite3.connect(path) as db:
        finished = db.execute("SELECT finished FROM uses WHERE id = ?", (other,)).fetchone()[0]
    assert finished is None


# -- another process holds the write lock past the busy timeout ---------------------------


class Locked(Exception):
    """What a commit raises while another process holds the file's write lock."""


def test_writes_whose_commit_found_the_file_locked_go_with_the_next_commit() -> None:
    locked, committed = [True], []

    def commit(batch: list[Any]) -> None:
        if locked[0]:
            raise Locked  # the transaction failed as a whole: no future settled
        for fn, future in batch:
            committed.append(fn(None))
            future.set_result(None)

    queue = Writes(commit, key="locked", retry=lambda exc: isinstance(exc, Locked))
    queue.submit(lambda db: "a")
    queue.submit(lambda db: "b")
    queue.flush()  # the commit failed: the writes stay queued (a flush does not raise)
    assert committed == []
    locked[0] = False
    queue.submit(lambda db: "c")
    queue.flush()
    assert [c for c in committed if c] == ["a", "b", "c"]  # each once, in order


def test_a_write_waiting_for_its_commit_hears_that_the_file_was_locked() -> None:
    def commit(batch: list[Any]) -> None:
        raise Locked

    queue = Writes(commit, key="locked-wait", retry=lambda exc: isinstance(exc, Locked))
    with pytest.raises(Locked):  # its caller decides; it is not written behind its back
        queue.write(lambda db: "now")
    assert queue.held == 0


def test_writes_held_for_a_locked_file_are_capped_and_the_drop_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    locked, written = [True], []

    def commit(batch: list[Any]) -> None:
        if locked[0]:
            raise Locked
        for job, outcome in batch:
            written.append(job(None))
            outcome.set_result(None)

    queue = Writes(commit, key="capped", retry=lambda exc: isinstance(exc, Locked), max_held=2)
    for n in range(3):
        queue.submit(lambda db, n=n: n)
    queue.flush()
    queue.submit(lambda db: 3)
    queue.flush()
    assert queue.held == 2
    assert caplog.text.count("ledger.writes_dropped") == 1
    locked[0] = False  # the lock is released: what was held is written with the next commit
    queue.flush()
    assert queue.held == 0
    assert written == [0, 1, None]  # the oldest two, then flush's own; the newest went


def test_rows_queued_while_another_process_holds_the_lock_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path, busy_timeout_s=0)  # each commit gives up at once
    holder = sqlite3.connect(path, isolation_level=None)  # another process, mid-write
    holder.execute("BEGIN IMMEDIATE")
    try:
        ledger.queue_record(entry("while locked"))
        ledger.flush()  # the commit found the file locked: the row stays queued
    finally:
        holder.rollback()
        holder.close()
    ledger.queue_record(entry("after"))
    assert [r["reasons"] for r in ledger.rows()] == ['["while locked"]', '["after"]']


class InterruptedCondition(threading.Condition):
    """A condition whose `with` raises Ctrl-C's KeyboardInterrupt just after taking the
    lock, as CPython does with a SIGINT that arrives while Python-level `__enter__` runs."""

    armed = 0

    def __enter__(self) -> bool:
        got = super().__enter__()
        if InterruptedCondition.armed:
            InterruptedCondition.armed -= 1
            if InterruptedCondition.armed == 0:
                raise KeyboardInterrupt
        return got


def test_a_ctrl_c_while_taking_the_queue_lock_cannot_leave_it_taken(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    queue = ledger._writes
    queue._lock = threading.Lock()
    queue._cond = InterruptedCondition(queue._lock)
    InterruptedCondition.armed = 2  # write() takes the lock once, then its commit does

    def record() -> None:
        with contextlib.suppress(KeyboardInterrupt):
            ledger.record(entry("x"))

    caller = threading.Thread(target=record, daemon=True)
    caller.start()
    caller.join(10)  # a ceiling for a hang, not a timing: the record takes milliseconds
    assert not caller.is_alive()
    assert [r["reasons"] for r in ledger.rows()] == ['["x"]']
