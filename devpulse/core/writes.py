"""The ledger's writes: group-committed, and written behind the request that made them.

A request's rows (its attempts' busy marks and its books) are queued with `submit`, which
returns at once: a thread of this queue's own commits them, every write that waited in one
transaction. So no request waits for SQLite, and no event loop blocks on it. A write that
must be committed before its caller goes on (a circuit breaker's state, a caller's own
`Ledger.record`) uses `write`, which queues behind the same writes and waits for its own.

Nothing queued is lost on a normal exit: `flush` waits until everything queued before it is
committed, the ledger's reads call it first, and at interpreter exit (a normal end, or
Ctrl-C's `KeyboardInterrupt` reaching the top) every queue still holding writes is flushed.
What a process killed outright (SIGKILL, a crash, `os._exit`) had queued but not committed
is lost: the rows of the last few milliseconds, or, while another process holds the
file's write lock (up to the busy timeout), of that long.

A commit that finds the file locked past the busy timeout loses no submitted write: those
stay queued (up to `MAX_HELD`; more are dropped, logged once) and go with the next commit,
so they are written once the lock is released. A `write` caller hears of the failure.

Two kinds of process commit each write as it is submitted, with no thread behind it: a child
made by `fork` (multiprocessing's workers end with `os._exit`, so no exit hook runs there,
and the parent's writer thread does not exist in the child), and a process past its exit
flush (a write then would find no thread to commit it). A Ctrl-C that interrupts a commit
leaves its writes queued, not failed: the next committer, or the exit flush, commits them.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from devpulse.core.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")
Job = tuple[Callable[[Any], Any], "Outcome"]
# Commits every batch it is given, settling each job's outcome (`Ledger._commit`); raises,
# setting none, when the transaction failed as a whole.
Commit = Callable[[list[Job]], None]

# How long the writing thread waits for more work before it ends (the next write starts
# another); long enough that a steady trickle of requests never pays a thread start.
IDLE_S = 10.0
# How long the writing thread lets a write wait before committing it (see `_work`): on the
# sync path it woke just as the request handed its answer to a worker thread, and the two
# contended for the GIL (0.1 ms of the router's own time per request).
LINGER_S = 0.002
# The most submitted writes kept queued while the file stays locked (a request's rows are
# a few hundred bytes); beyond it the newest are dropped, and that is logged once.
MAX_HELD = 10_000


class Outcome(Protocol):
    """How a queued write's outcome is settled: a `Future` (`write`, whose caller waits for
    it) or a `_Submitted` (`submit`, whose caller has gone on)."""

    def done(self) -> bool: ...

    def set_result(self, result: Any) -> None: ...

    def set_exception(self, exception: BaseException) -> None: ...

    def cancel(self) -> bool: ...


class _Submitted:
    """A submitted write's outcome: nobody waits for it, so a locked file keeps it queued,
    and a failure is logged. Not a `Future`: a Future's condition and lock, made and set for
    each of a request's three writes, cost more of the request's own time than the rest of
    its hand-off to this queue."""

    __slots__ = ("_done",)

    def __init__(self) -> None:
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any) -> None:
        self._done = True

    def set_exception(self, exception: BaseException) -> None:
        self._done = True
        log.warning("ledger.write_failed", error=type(exception).__name__, detail=str(exception))

    def cancel(self) -> bool:
        """Dropped (the file stayed locked and too many writes were held): logged apart."""
        self._done = True
        return True


def _never(error: BaseException) -> bool:
    return False


class Writes:
    """A queue of writes that one committer at a time drains, in the order they came.

    The committer is this queue's thread for submitted writes, or the caller of `write`
    when nobody is committing. Whoever commits takes every write waiting, so concurrent
    writes share one transaction.
    """

    def __init__(
        self,
        commit: Commit,
        key: str,
        name: str = "devpulse-ledger",
        *,
        retry: Callable[[BaseException], bool] = _never,
        max_held: int = MAX_HELD,
    ) -> None:
        self._commit = commit
        self.key = key  # what it writes to: queues with the same key are flushed together
        self._name = name
        self._retry = retry  # whether a failed commit is worth another (the file was locked)
        self._max_held = max_held
        self._pending: list[Job] = []
        self._held: list[Job] = []  # submitted writes a locked file refused: the next commit's
        self._dropping = False  # writes were dropped (logged) since the last commit went through
        self._committing = False
        self._thread: threading.Thread | None = None
        # Taken with `with self._lock`, never `with self._cond`: in CPython a C lock's `with`
        # is not interrupted between taking the lock and guarding it, while Condition's
        # __enter__ is Python code, after which a Ctrl-C could leave the lock taken (and
        # the next `with`, in _drain's handler or the exit flush, wait for it forever).
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # its waits and notifies, same lock

    def submit(self, fn: Callable[[Any], object]) -> None:
        """Queue `fn` (called with the connection, in a transaction); returns at once.

        An error it raises is logged, and spoils no other write.
        """
        outcome = _Submitted()
        if _synchronous:  # a forked child, or past the exit flush: no thread to rely on
            try:
                self.write(fn)
            except Exception as exc:
                outcome.set_exception(exc)
            return
        with self._lock:
            self._pending.append((fn, outcome))
            if self._thread is not None:
                self._cond.notify()
                return
            thread = threading.Thread(target=self._work, daemon=True, name=self._name)
            self._thread = thread
        _watch(self)
        try:
            thread.start()
        except RuntimeError:  # no new threads at interpreter shutdown: commit it here
            with self._lock:
                self._thread = None
            self.flush()

    def write(self, fn: Callable[[Any], T]) -> T:
        """Queue `fn` and wait until it is committed; returns what it returned."""
        future: Future[T] = Future()
        with self._lock:
            self._pending.append((fn, future))
            lead = not self._committing
            self._committing = True
        while not lead:
            try:
                return future.result(timeout=0.05)
            except TimeoutError:
                with self._lock:  # a committer that died leaves its followers to commit
                    lead = not self._committing
                    self._committing = True
        self._drain()
        return future.result()

    @property
    def held(self) -> int:
        """How many submitted writes wait for the next commit because the file was locked."""
        with self._lock:
            return len(self._held)

    def flush(self) -> None:
        """Return once every write queued before this call is committed (or has failed, or
        is kept queued for the next commit because the file is locked)."""
        with self._lock:
            if not self._pending and not self._held and not self._committing:
                return
        try:
            self.write(_nothing)
        except Exception as exc:
            if not self._retry(exc):
                raise

    def _drain(self) -> None:
        """Commit batches until none is waiting; the caller holds the committer's role."""
        try:
            while True:
                with self._lock:
                    if not self._pending:  # held writes wait for new work: no busy loop
                        self._committing = False
                        self._cond.notify_all()
                        return
                    batch, self._pending, self._held = self._held + self._pending, [], []
                try:
                    self._commit(batch)
                except Exception as exc:  # the transaction failed: every write in it did
                    self._failed(batch, exc)
                else:
                    self._dropping = False
        except BaseException:
            with self._lock:
                # A commit interrupted (Ctrl-C in the thread that led it) left its writes
                # unsettled: they go back to the front of the queue, for the next committer.
                self._pending[:0] = [job for job in batch if not job[1].done()]
                self._committing = False
                self._cond.notify_all()
            raise

    def _failed(self, batch: list[Job], error: Exception) -> None:
        """Settle the writes of a failed commit; if the file was locked, the submitted ones
        stay queued for the next commit, as many as `max_held` allows."""
        keep = self._retry(error)
        held: list[Job] = []
        for job in batch:
            outcome = job[1]
            if outcome.done():
                continue
            if keep and isinstance(outcome, _Submitted):
                held.append(job)
            else:
                outcome.set_exception(error)
        if not held:
            return
        dropped = held[self._max_held :]
        for _, outcome in dropped:  # the newest: what is kept keeps its order
            outcome.cancel()
        if dropped and not self._dropping:
            self._dropping = True
            log.warning("ledger.writes_dropped", held=self._max_held, error=str(error))
        with self._lock:
            self._held[:0] = held[: self._max_held]
        log.warning("ledger.commit_deferred", writes=len(held) - len(dropped), error=str(error))

    def _work(self) -> None:
        """The writing thread: commit what is submitted, end after `IDLE_S` without work.

        Woken by a write, it first waits `LINGER_S`: the request that queued it goes on
        without this thread taking the GIL from it, and what else arrives meanwhile shares
        the commit. A `flush` in between does not wait for it: it commits at once.
        """
        try:
            while True:
                with self._lock:
                    while not self._pending or self._committing:
                        if not self._cond.wait(IDLE_S) and not self._pending:
                            return
                time.sleep(LINGER_S)
                with self._lock:
                    if self._committing or not self._pending:
                        continue  # a flush took them
                    self._committing = True
                self._drain()
        finally:  # idle, or a commit failed beyond a write's own error: the next submit
            with self._lock:  # starts another thread
                self._thread = None

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's lock state, thread and queue are not this
        process's (the parent commits what it had queued)."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending = []
        self._held = []
        self._committing = False
        self._thread = None


def _nothing(db: Any) -> None:
    """The write `flush` waits for: it is committed only after everything queued before."""


_queues: weakref.WeakSet[Writes] = weakref.WeakSet()
_queues_lock = threading.Lock()
_registered = False
_synchronous = False  # commit each write as it comes: see the module's docstring


def _watch(writes: Writes) -> None:
    """Flush `writes` at interpreter exit (a queue that is gone has nothing left)."""
    global _registered  # noqa: PLW0603  # one exit hook per process, made on first use
    with _queues_lock:
        _queues.add(writes)
        if not _registered:
            atexit.register(_flush_at_exit)
            _registered = True


def _flush_at_exit() -> None:
    """The exit hook: what comes later is committed as it comes (no thread would)."""
    global _synchronous  # noqa: PLW0603
    _synchronous = True
    flush_all()
    with _queues_lock:
        queues = list(_queues)
    for writes in queues:
        if writes.held:  # the file stayed locked to the end
            log.warning("ledger.writes_lost", key=writes.key, writes=writes.held)


def _after_fork_in_child() -> None:
    global _queues_lock, _synchronous  # noqa: PLW0603  # the parent's lock may be held
    _queues_lock = threading.Lock()
    _synchronous = True
    for writes in list(_queues):
        writes._reset_after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def flush_all(key: str | None = None) -> None:
    """Commit every queued write of this process (at interpreter exit), or of every queue
    writing to `key`: a read then sees what any router of this process wrote before it."""
    with _queues_lock:
        queues = [q for q in _queues if key is None or q.key == key]
    for writes in queues:
        try:
            writes.flush()
        except Exception as exc:  # one ledger that cannot be written must not stop the rest
            log.warning("ledger.flush_failed", error=type(exc).__name__, detail=str(exc))
