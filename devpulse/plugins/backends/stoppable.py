"""Sync HTTP reads that end once the core stops reading, keep-alives or not.

The core reads a sync backend in a worker thread and, when it stops (a time limit, the
budget, a cancel, the caller closing the stream), the worker closes the backend's stream at
its next chunk. A server that keeps sending bytes that make no chunk (Anthropic's ``ping``
events, SSE comments such as OpenRouter's ``: PROCESSING``) never lets that happen, nor
does the client's read timeout ever fire. `stop_hook` makes a client's response body look
at the core's stop flag (`devpulse.core.bounded.stopping`) at each read from the network: once
it is set, the body is closed (so the connection drops and the server sees it) and the read
raises `Stopped`, ending the backend's loop. Within one keep-alive of the stop, then.

Used as a response event hook of an httpx-family client (httpx, and httpx2 under the
anthropic SDK): ``Client(event_hooks={"response": [stop_hook(httpx.SyncByteStream)]})``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from devpulse.core.bounded import Stopped, stopping


def stop_hook(byte_stream: type[Any]) -> Callable[[Any], None]:
    """A response event hook that makes each response body of a sync client stop when the
    core does. ``byte_stream``: the client library's ``SyncByteStream`` class (a response
    body must be one)."""

    class StoppableStream(byte_stream):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __iter__(self) -> Iterator[bytes]:
            for data in self._inner:
                if stopping():
                    self._inner.close()
                    raise Stopped("the caller stopped reading: the connection is closed")
                yield data

        def close(self) -> None:
            self._inner.close()

    def hook(response: Any) -> None:
        if stopping() is not None:  # read by the core's worker: a sync dispatch
            response.stream = StoppableStream(response.stream)

    return hook
