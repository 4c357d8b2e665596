"""What the async path may run on the event loop: deciding a short request, once warm.

A call sent from a busy event loop to a thread is not cheap: it waits for a free thread,
for the GIL (which the loop hands over only every switch interval, 5 ms, while it has work),
and for the loop to take its result back. With hundreds of requests in flight that trip,
not the work, was most of the router's own time. So classify, route and preflight (about
0.1 ms of pure CPU for a short prompt, with warm caches) run inline on the loop, when:

- every plugin implementing those hooks says it is safe there (a class attribute
  ``loop_safe = True``). The bundled ones do; an installed plugin that does not say so may
  do I/O, and the call goes to a thread as before;
- the request is short (`INLINE_CHARS` of text): classifying a long paste is CPU work of
  milliseconds, which a thread at least interleaves with the other requests;
- nothing would block: a loop-safe plugin that must do I/O first (a cache gone stale: the
  memory probe, a server's model list, a client not built yet) calls `must_not_block`,
  which raises `WouldBlock` there, and the call is made again in a thread. Deciding changes
  nothing (no circuit, no ledger row), so starting again is safe; the work done before the
  plugin stopped (the privacy scan, a debug log line) is simply done again.

A cache that has only just gone stale need not send the call to a thread: there, the thread
waits for the GIL, which a busy loop hands over only every switch interval at each of the
probe's system calls, and then for the loop again (hundreds of milliseconds with 500
requests in flight). So a loop-safe plugin may, on the loop, use such a value once more and
have `Behind` fetch the new one in a thread of its own (`on_the_loop` tells where it runs).

On the sync path, and in threads, `must_not_block` does nothing.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

from devpulse.core.logs import get_logger

T = TypeVar("T")
log = get_logger(__name__)

# Requests with more text than this are decided in a thread (0.3 ms of classifying a 2 KB
# prompt is the most the loop should spend on one request's decision).
INLINE_CHARS = 2048
_on_loop: ContextVar[bool] = ContextVar("devpulse_on_loop", default=False)


class WouldBlock(BaseException):  # a signal to the driver, not an error
    """A loop-safe plugin found it must do I/O first; the driver runs the call in a thread.

    A BaseException, so that no plugin's ``except Exception`` mistakes it for a failure.
    """


def must_not_block(what: str) -> None:
    """Call before blocking I/O in a loop-safe plugin: raises `WouldBlock` on the loop."""
    if _on_loop.get():
        raise WouldBlock(what)


def on_the_loop() -> bool:
    """Whether this call runs on the event loop, where `must_not_block` raises."""
    return _on_loop.get()


def on_loop(fn: Callable[[], T]) -> T:
    """`fn()` run on the event loop: `must_not_block` raises inside it."""
    token = _on_loop.set(True)
    try:
        return fn()
    finally:
        _on_loop.reset(token)


def loop_safe(pm: Any, hooks: Iterable[str]) -> bool:
    """Whether every implementation of `hooks` belongs to a plugin marked ``loop_safe``."""
    return all(
        getattr(impl.plugin, "loop_safe", False)
        for name in hooks
        for impl in getattr(pm.hook, name).get_hookimpls()
    )


class Behind:
    """Refreshes that run behind the requests, each in a thread of its own, one per key at a
    time: a second ask while one runs is the same refresh."""

    def __init__(self) -> None:
        self._running: dict[Hashable, threading.Thread] = {}
        self._lock = threading.Lock()
        _everyone.add(self)

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's refreshes are not running here."""
        self._running = {}
        self._lock = threading.Lock()

    def refresh(self, key: Hashable, fn: Callable[[], object]) -> None:
        """Start `fn()` in a thread, unless the refresh of `key` is running already."""
        with self._lock:
            if key in self._running:
                return
            thread = threading.Thread(
                target=self._run, args=(key, fn), daemon=True, name="devpulse-refresh"
            )
            self._running[key] = thread
        thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the refreshes running now (tests; a clean shutdown)."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout)

    def _run(self, key: Hashable, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as exc:  # once the value is too old to use, the next call
            # fetches it in the request's own thread, where the error is told
            log.debug("refresh.failed", key=str(key), error=str(exc))
        finally:
            with self._lock:
                self._running.pop(key, None)


_everyone: weakref.WeakSet[Behind] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for behind in list(_everyone):
        behind._reset_after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
