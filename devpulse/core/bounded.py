"""Bounded attempts: every read of every backend ends by its limit, the budget or a cancel.

A backend's answer is produced in a worker thread and handed over through a queue, so the
caller's wait is what is bounded, whatever the backend's SDK does: a server that never sends
a byte, one that stalls mid-answer or drips a byte every few seconds, or a blocking
third-party client with no timeout at all. The caller waits at most the first-token limit
for the first chunk, the stall limit for each next one, and never past the request's
deadline. The worker is told to stop and closes the backend's stream at its next step; a
read it is blocked in ends by the backend's own read timeout. Bytes that make no chunk (a
server's keep-alive pings or comments) would keep such a read going for ever: a backend's
client sees the stop at each read through `stopping()` (the bundled HTTP clients do, with
`plugins/backends/stoppable.py`), and drops the connection there.
"""

from __future__ import annotations

import contextvars
import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from devpulse.core.config import Limits
from devpulse.core.errors import (
    BudgetExhausted,
    Cancelled,
    FirstTokenTimeout,
    StreamStalled,
)
from devpulse.core.types import Chunk, Response, replay

CHUNK, END, ERROR, _CANCEL = range(4)
# How long the stream's end may take once the final response is in: the answer is whole, and
# what follows is protocol (the SDK reads the body to its end, so the connection is kept
# alive). A server that holds the body open past it is not waited for up to the stall limit.
AFTER_ANSWER_S = 1.0

# The stop flag of the attempt that the current worker thread produces for. Set in the
# attempt's own copy of its caller's context, so each attempt sees its own.
_STOP: contextvars.ContextVar[Stop | None] = contextvars.ContextVar(
    "devpulse_attempt_stop", default=None
)


class Stop:
    """An attempt's stop: set by its caller once it stops reading, polled by the worker's
    reads; and until when the stream's end may still be read once the answer is whole
    (`AFTER_ANSWER_S`): read to its end, the connection goes back to the client's pool, to
    be kept alive for the next request, although the caller has already stopped reading.

    A flag, not a `threading.Event`: nobody waits for it, and an Event's condition and lock,
    made and set for every attempt, cost the request more than the flag's whole use."""

    __slots__ = ("drain_until", "stopped")

    def __init__(self) -> None:
        self.stopped = False
        self.drain_until: float | None = None

    def set(self) -> None:
        self.stopped = True

    def is_set(self) -> bool:
        if not self.stopped:
            return False
        return self.drain_until is None or time.monotonic() > self.drain_until


def stopping() -> bool | None:
    """Whether the caller of the attempt this thread reads for has stopped reading (a limit,
    the budget, a cancel or a close): then a read loop should give up and close its
    connection. None outside the core's worker threads (the async path closes its iterators
    itself)."""
    stop = _STOP.get()
    return None if stop is None else stop.is_set()


class Stopped(Exception):
    """Raised in a worker's read once its caller has stopped reading: it ends the backend's
    read loop, so that its connection closes. No caller sees it."""


class Cancellation:
    """Lets another thread (or an event loop) stop a request: its waits and its reads.

    The event a backoff's sleep waits on is made by the first sleep: every request has a
    Cancellation, few ever sleep, and an Event's condition and lock are not free."""

    def __init__(self) -> None:
        self._cancelled = False
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            event = self._event
            callbacks = list(self._callbacks)
        if event is not None:
            event.set()
        for callback in callbacks:
            callback()

    def sleep(self, seconds: float) -> None:
        """Sleep, unless cancelled first: then raise `Cancelled`."""
        with self._lock:
            if self._event is None:
                self._event = threading.Event()
                if self._cancelled:
                    self._event.set()
            event = self._event
        if event.wait(seconds):
            raise Cancelled("the request was cancelled")

    def check(self) -> None:
        if self._cancelled:
            raise Cancelled("the request was cancelled")

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` on cancel (at once if already cancelled); returns an unregister."""
        with self._lock:
            if not self._cancelled:
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


def bounded(
    answer: Callable[[], Response | Iterator[Chunk]],
    *,
    name: str,
    limits: Limits,
    deadline: float,
    cancellation: Cancellation,
    clock: Callable[[], float] = time.monotonic,
    deltas: bool = True,
) -> Iterator[Chunk]:
    """The chunks of `answer()` (a Response counts as one), each within its time limit.

    `deltas`: whether the caller reads every chunk. A caller that reads only the whole
    answer (a request that is not streamed) gets only what the attempt's machine reads: the
    first chunk of content, which says the answer has begun, and the final response (and the
    first chunk of all, where that is not content: from it on, the stall limit applies). The
    chunks between are progress against the stall limit, heard but not handed over: one
    hand-off from the worker thread per answer rather than one per token, each of which
    woke the caller's thread (about 20 us of CPU, more on a machine the model keeps busy).

    Raises `FirstTokenTimeout`, `StreamStalled`, `BudgetExhausted` or `Cancelled` in the
    caller's thread; whatever `answer` raises is raised here too.
    """
    handoff: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
    stop = Stop()
    context = contextvars.copy_context()
    forget = cancellation.on_cancel(lambda: handoff.put((_CANCEL, None)))
    sparse = None if deltas else Sparse(handoff.put)
    put = handoff.put if sparse is None else sparse
    WORKERS.run(functools.partial(context.run, produce, answer, put, stop))
    received = answered = False
    try:
        while True:
            heard = None if sparse is None else sparse.heard
            received = received or heard is not None
            limit = limits.stall_s if received else limits.first_token_s
            if answered:
                limit = min(limit, AFTER_ANSWER_S)
            left = deadline - clock()
            wait = limit if heard is None else limit - (time.monotonic() - heard)
            try:
                kind, value = handoff.get(timeout=max(0.0, min(wait, left)))
            except queue.Empty:
                if left > wait and sparse is not None and sparse.heard != heard:
                    continue  # chunks came that it is not handed: the limit runs from the last
                raise expired(name, received, limit, budget=left <= wait) from None
            if kind == CHUNK:
                received = True
                answered = value.response is not None
                yield value
            elif kind == END:
                if value is not None:  # a whole Response: told as the deltas of a stream
                    yield from replay(value)
                return
            elif kind == ERROR:
                raise value
            else:
                raise Cancelled("the request was cancelled")
    finally:
        stop.set()
        forget()


class Sparse:
    """The hand-off of an answer whose caller reads it only whole (`bounded`'s `deltas`):
    passes on the first chunk of any kind (the caller, waiting out the first-token limit,
    must learn that the answer has started, so that the stall limit applies from then on),
    the first chunk of content, the final response, the end and any error; of every chunk,
    notes when it came (`heard`, monotonic seconds), which is all the caller's stall limit
    needs of the chunks it is not handed."""

    __slots__ = ("content", "heard", "put")

    def __init__(self, put: Callable[[tuple[int, Any]], None]) -> None:
        self.put = put
        self.heard: float | None = None
        self.content = False

    def __call__(self, item: tuple[int, Any]) -> None:
        kind, chunk = item
        if kind == CHUNK:
            first = self.heard is None
            self.heard = time.monotonic()
            if chunk.response is None:
                if chunk.is_content and not self.content:
                    self.content = True
                elif not first:
                    return
        self.put(item)


class Workers:
    """Threads kept for the next attempt: starting a thread per attempt costs more than the
    router's own work. A worker idle for `idle_s` ends. A busy one (a read blocked in a
    stalled backend) is never waited for: a new one is started instead."""

    def __init__(self, idle_s: float = 30.0) -> None:
        self.idle_s = idle_s
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0  # workers waiting for a job, less the jobs queued for them
        self._lock = threading.Lock()

    def run(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._jobs.put(job)
                return
        threading.Thread(
            target=self._work, args=(job,), daemon=True, name="devpulse-attempt"
        ).start()

    def _work(self, job: Callable[[], None]) -> None:
        while True:
            job()
            with self._lock:
                self._idle += 1
            try:
                job = self._jobs.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    try:
                        job = self._jobs.get_nowait()  # queued for us as we timed out
                    except queue.Empty:
                        self._idle -= 1
                        return

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's idle workers are not this process's threads (a job
        queued for one would wait for ever), nor are its lock's and queue's states."""
        self._jobs = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()


WORKERS = Workers()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=WORKERS._reset_after_fork)


def expired(name: str, received: bool, limit: float, *, budget: bool) -> Exception:
    """The error for a wait that ran out: the budget's (`budget`: the request's deadline
    came first), the stall limit's or the first token's."""
    if budget:
        return BudgetExhausted(f"{name}: the request's time budget ran out while waiting for it")
    if received:
        return StreamStalled(f"{name}: the stream stalled for more than {limit:g}s")
    return FirstTokenTimeout(f"{name}: no first token within {limit:g}s")


def produce(
    answer: Callable[[], Response | Iterator[Chunk]],
    handoff: Callable[[tuple[int, Any]], None],
    stopped: Stop,
) -> None:
    """The worker: run the backend, hand over each chunk, close its stream when told (once
    the answer is whole, after reading the stream's end for up to AFTER_ANSWER_S)."""
    _STOP.set(stopped)  # in this attempt's copy of the caller's context
    try:
        result = answer()
        if isinstance(result, Response):
            handoff((END, result))
            return
        chunks = iter(result)
        try:
            for chunk in chunks:
                handoff((CHUNK, chunk))
                if chunk.response is not None:
                    stopped.drain_until = time.monotonic() + AFTER_ANSWER_S
                    # The caller's answer: let it take the GIL now, rather than once this
                    # thread's Python work closing the stream lets it go (up to the 5 ms
                    # switch interval; 0.1-0.2 ms of the router's own time per request).
                    time.sleep(0)
                if stopped.is_set():
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        handoff((END, None))
    except BaseException as exc:  # handed to the caller, who decides what it means
        handoff((ERROR, exc))
