"""Bounded attempts on the event loop: each read of an async answer ends by its limit.

The async twin of `bounded`: the first chunk within the first-token limit, each next one
within the stall limit, never past the request's deadline, all with `asyncio.timeout`.
Closing the source (or cancelling the task reading it) closes the backend's stream, and with
it the connection. A backend with only a sync stream is read in a worker thread, as on the
sync path, and handed over to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from devpulse.core.bounded import AFTER_ANSWER_S, CHUNK, END, ERROR, Stop, expired, produce
from devpulse.core.config import Limits
from devpulse.core.types import Chunk, Response, replay


class AsyncBounded:
    """The chunks of one async answer, each read within its time limit."""

    def __init__(
        self,
        chunks: AsyncIterator[Chunk],
        *,
        name: str,
        limits: Limits,
        deadline: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chunks = chunks
        self._name = name
        self._limits = limits
        self._deadline = deadline
        self._clock = clock
        self._received = False
        self._answered = False  # the final response is in: what follows is protocol
        self._done = False

    async def next(self) -> Chunk | None:
        """The next chunk, or None once the answer has ended.

        Raises `FirstTokenTimeout`, `StreamStalled` or `BudgetExhausted` when a read runs
        past its limit, and whatever the backend raises.
        """
        if self._done:
            return None
        limit = self._limits.stall_s if self._received else self._limits.first_token_s
        if self._answered:
            limit = min(limit, AFTER_ANSWER_S)
        left = self._deadline - self._clock()
        timeout = asyncio.timeout(max(0.0, min(limit, left)))
        try:
            async with timeout:
                chunk = await anext(self._chunks)
        except StopAsyncIteration:
            self._done = True
            return None
        except TimeoutError:
            self._done = True
            if timeout.expired():
                raise expired(self._name, self._received, limit, budget=left <= limit) from None
            raise
        except BaseException:
            self._done = True
            raise
        self._received = True
        self._answered = chunk.response is not None
        return chunk

    async def aclose(self) -> None:
        """Close the backend's stream (and its connection) if it is still open."""
        self._done = True
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


async def single(answer: Awaitable[Response]) -> AsyncIterator[Chunk]:
    """A whole `Response`, awaited, told as the deltas of a stream."""
    for chunk in replay(await answer):
        yield chunk


async def in_thread(
    answer: Callable[[], Response | Iterator[Chunk]], name: str
) -> AsyncIterator[Chunk]:
    """A sync answer read in a worker thread, its chunks handed to the event loop.

    The worker stops and closes the sync stream at its next step once this is closed; a read
    it is blocked in ends by the backend's own read timeout, as on the sync path.
    """
    loop = asyncio.get_running_loop()
    handoff: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    stop = Stop()

    def put(item: tuple[int, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(handoff.put_nowait, item)

    context = contextvars.copy_context()
    worker = threading.Thread(
        target=context.run, args=(produce, answer, put, stop), daemon=True, name=name
    )
    worker.start()
    try:
        while True:
            kind, value = await handoff.get()
            if kind == CHUNK:
                yield value
            elif kind == END:
                if value is not None:  # a whole Response: told as the deltas of a stream
                    for chunk in replay(value):
                        yield chunk
                return
            elif kind == ERROR:
                raise value
    finally:
        stop.set()
