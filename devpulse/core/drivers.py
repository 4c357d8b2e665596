"""The two drivers of the attempt state machine (`attempts.run`): one sync, one async.

Each performs the machine's actions and nothing else: the sync driver in the caller's thread
(reads through `bounded`'s worker thread), the async driver on the event loop (blocking calls
in a thread, reads through `AsyncBounded`). Neither decides anything.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

from devpulse.core.abounded import AsyncBounded, in_thread, single
from devpulse.core.attempts import (
    Abandoned,
    Action,
    Call,
    Close,
    Emit,
    Machine,
    Open,
    Read,
    Sleep,
)
from devpulse.core.bounded import Cancellation, bounded
from devpulse.core.errors import Cancelled, NoBackend
from devpulse.core.inline import WouldBlock, on_loop
from devpulse.core.types import Chunk, Response

if TYPE_CHECKING:
    from devpulse.core.pipeline import Router


def _nobody(open_: Open) -> NoBackend:
    return NoBackend(
        f"no backend plugin owns {open_.decision.backend!r} "
        f"(model {open_.decision.model!r}); install or enable one"
    )


def _sync_answer(router: Router, open_: Open) -> Callable[[], Response | Iterator[Chunk]]:
    def answer() -> Response | Iterator[Chunk]:
        found = router.pm.hook.dispatch(request=open_.request, decision=open_.decision)
        if found is None:
            raise _nobody(open_)
        return cast("Response | Iterator[Chunk]", found)

    return answer


class _Sync:
    """The sync driver's I/O: everything but handing chunks to the caller."""

    def __init__(self, router: Router, cancellation: Cancellation) -> None:
        self.router = router
        self.cancellation = cancellation
        self.source: Iterator[Chunk] | None = None

    def perform(self, action: Action) -> Any:
        if isinstance(action, Read):
            assert self.source is not None
            return next(self.source, None)
        if isinstance(action, Call):
            return action.fn()
        if isinstance(action, Open):
            self.cancellation.check()
            self.source = bounded(
                _sync_answer(self.router, action),
                name=action.decision.backend,
                limits=self.router.config.limits(action.decision.backend),
                deadline=action.deadline,
                cancellation=self.cancellation,
                clock=self.router.clock,
                deltas=action.deltas,
            )
        elif isinstance(action, Close):
            source, self.source = self.source, None
            close = getattr(source, "close", None)
            if close is not None:
                close()
        elif isinstance(action, Sleep):
            self.cancellation.sleep(action.seconds)
        return None


def drive(
    router: Router, machine: Machine, cancellation: Cancellation
) -> Generator[Chunk, None, None]:
    """Perform `machine`'s actions in this thread; yields the chunks it emits.

    Closing this iterator tells the machine the caller walked away (`Abandoned`).
    """
    io = _Sync(router, cancellation)
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            action = machine.send(value) if error is None else machine.throw(error)
        except (StopIteration, Abandoned):
            return
        value = error = None
        if isinstance(action, Emit):
            try:
                yield action.chunk
            except GeneratorExit:
                error = Abandoned()
            continue
        try:
            value = io.perform(action)
        except BaseException as exc:  # the machine decides what every error means
            error = exc


def _async_source(router: Router, open_: Open) -> AsyncIterator[Chunk]:
    """The owner's native async answer (`adispatch`), else its sync one read in a thread.

    Plugins are asked in `dispatch`'s order, so the same plugin owns a backend on both
    paths: a sync-only plugin that comes first (a team's own backend, registered after the
    bundled ones) is read in a thread rather than passed over for a bundled async one.
    """
    kwargs = {"request": open_.request, "decision": open_.decision}
    natives = {id(impl.plugin): impl for impl in router.pm.hook.adispatch.get_hookimpls()}
    for impl in reversed(router.pm.hook.dispatch.get_hookimpls()):
        native = natives.get(id(impl.plugin))
        if native is None:
            break  # a sync-only plugin may own it: ask `dispatch` in a thread
        found = native.function(*(kwargs[name] for name in native.argnames))
        if found is None:
            continue
        if isinstance(found, Response):
            return single(asyncio.sleep(0, found))
        if hasattr(found, "__aiter__"):
            return cast("AsyncIterator[Chunk]", found)
        return single(cast("Awaitable[Response]", found))
    return in_thread(_sync_answer(router, open_), open_.decision.backend)


_blocking: ThreadPoolExecutor | None = None
_blocking_lock = threading.Lock()


def blocking_pool() -> ThreadPoolExecutor:
    """The async path's threads for blocking calls (preflight probes, server queries), its own: in
    the loop's default executor (a handful of threads) 500 concurrent requests would queue
    behind each other and behind whatever else the application runs there. (Ledger rows
    no longer come here: the ledger's own thread writes them, `core/writes.py`.)"""
    global _blocking  # noqa: PLW0603  # one pool per process, made on first use
    with _blocking_lock:
        if _blocking is None:
            _blocking = ThreadPoolExecutor(max_workers=64, thread_name_prefix="devpulse-blocking")
        return _blocking


def _forget_blocking_pool() -> None:
    """In a forked child: the parent's pool counts threads this process does not have, and
    would queue every call for them."""
    global _blocking, _blocking_lock
    _blocking, _blocking_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_blocking_pool)


class _Async:
    """The async driver's I/O: everything but handing chunks to the caller.

    `cancelled` keeps the first cancel of the task; a cancel during a blocking call waits
    for the call to end, so the books are never half-written.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.loop = asyncio.get_running_loop()
        self.source: AsyncBounded | None = None
        self.cancelled: asyncio.CancelledError | None = None

    async def perform(self, action: Action) -> Any:
        if isinstance(action, Read):
            assert self.source is not None
            return await self.source.next()
        if isinstance(action, Call):
            if not action.blocking:
                return action.fn()
            if action.inline is not None and action.inline():
                try:
                    return on_loop(action.fn)
                except WouldBlock:
                    pass  # it must do I/O first: in a thread, from the start
            return await self.call(action)
        if isinstance(action, Open):
            backend = action.decision.backend
            self.source = AsyncBounded(
                _async_source(self.router, action),
                name=backend,
                limits=self.router.config.limits(backend),
                deadline=action.deadline,
                clock=self.router.clock,
            )
        elif isinstance(action, Close):
            source, self.source = self.source, None
            if source is not None:
                await source.aclose()
        elif isinstance(action, Sleep):
            await asyncio.sleep(action.seconds)
        return None

    async def call(self, action: Call) -> Any:
        future = self.loop.run_in_executor(
            blocking_pool(), contextvars.copy_context().run, action.fn
        )
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError as exc:
                if future.cancelled():
                    raise
                self.cancelled = self.cancelled or exc


async def adrive(router: Router, machine: Machine) -> AsyncGenerator[Chunk, None]:
    """Perform `machine`'s actions on the event loop; yields the chunks it emits.

    Blocking calls run in a thread. Cancelling the task that reads this stops the attempt,
    closes its connection and books the request ``cancelled``; then `CancelledError`
    propagates. Closing this iterator early tells the machine the caller walked away.
    """
    io = _Async(router)
    told = False  # whether the machine has been told to stop (Cancelled or Abandoned)
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            action = machine.send(value) if error is None else machine.throw(error)
        except (StopIteration, Abandoned, Cancelled) as exc:
            if io.cancelled is not None:
                raise io.cancelled from None
            if isinstance(exc, Cancelled):
                raise
            return
        value = error = None
        if isinstance(action, Emit):
            try:
                yield action.chunk
            except GeneratorExit:
                error, told = Abandoned(), True
            continue
        try:
            value = await io.perform(action)
        except asyncio.CancelledError as exc:
            io.cancelled = io.cancelled or exc
        except BaseException as exc:  # the machine decides what every error means
            error = exc
        if io.cancelled is not None and not told:
            error, told = Cancelled("the request was cancelled"), True
