"""What every backend shares: owning its decisions, timing answers, building responses."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import re2

from devpulse.core.config import BackendConfig, Limits
from devpulse.core.errors import (
    BackendError,
    Cause,
    FirstTokenTimeout,
    StreamIncomplete,
    StreamStalled,
    UnsupportedRequest,
)
from devpulse.core.types import Chunk, Decision, LoadedModel, Request, Response, Usage
from devpulse.hookspecs import hookimpl

DEFAULT_LIMITS = Limits(connect_s=3.0, first_token_s=120.0, stall_s=120.0)


def timed_out(name: str, first: float | None, limits: Limits) -> BackendError:
    """A read timeout of the client itself, named for what it means.

    The core's own limits usually fire first; this is the backstop that ends the worker's
    blocked read.
    """
    if first is None:
        return FirstTokenTimeout(f"{name}: no first token within {limits.first_token_s:g}s")
    return StreamStalled(f"{name}: the stream stalled for more than {limits.first_token_s:g}s")


def cause_for_status(status: int) -> Cause:
    """What an HTTP status says on its own; backends refine it with the provider's error type."""
    if status == 429:
        return Cause.RATE_LIMITED
    if status == 529:
        return Cause.OVERLOADED
    if status in (401, 403):
        return Cause.AUTH
    if status == 413:
        return Cause.CONTEXT_LENGTH
    if status in (400, 422):
        return Cause.BAD_REQUEST
    if status == 404:
        return Cause.MODEL_NOT_LOADED  # "model 'x' not found", from every provider
    return Cause.SERVER_ERROR if status >= 500 else Cause.UNKNOWN


# How servers word a context overflow, for the numbers in it. On RE2, like every pattern
# that may meet text a server echoes back from a request.
# - llama-server: "request (5024 tokens) exceeds the available context size (4096 tokens)"
# - Anthropic: "prompt is too long: 250000 tokens > 200000 maximum"
# - OpenAI and vLLM: "maximum context length is 8192 tokens. However, your messages resulted
#   in 9000 tokens" / "you requested 9000 tokens"
_REQUEST_TOKENS = re2.compile(
    r"request \((\d+) tokens\)|(\d+) tokens > \d+|resulted in (\d+) tokens|requested (\d+) tokens"
)
_CONTEXT_TOKENS = re2.compile(
    r"context (?:size|length|window)(?: is)? \(?(\d+)|(\d+) maximum|(\d+)-token context"
)


def context_error(
    name: str,
    message: str,
    *,
    status: int | None = None,
    request_tokens: Any = None,
    context_tokens: Any = None,
    provider_type: str | None = None,
) -> BackendError:
    """A context overflow, said in one line: the model's context, and the request's size
    when the server gave it (as fields, like llama-server, or in its message)."""
    found_request = _first_number(_REQUEST_TOKENS, message)
    found_context = _first_number(_CONTEXT_TOKENS, message)
    asked = request_tokens if isinstance(request_tokens, int) else found_request
    context = context_tokens if isinstance(context_tokens, int) else found_context
    size = f" ({asked} tokens)" if asked is not None else ""
    if context is not None:
        limit = f"{context} tokens"
    else:
        detail = " ".join(message.split())[:200]
        limit = f"HTTP {status}: {detail}" if status else detail or "size unknown"
    return BackendError(
        f"{name}: the request{size} does not fit the model's context ({limit})",
        cause=Cause.CONTEXT_LENGTH,
        status=status,
        provider_type=provider_type,
    )


def _first_number(pattern: Any, message: str) -> int | None:
    found = pattern.search(message[:1000])
    if found is None:
        return None
    return int(next(g for g in found.groups() if g is not None))


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """retry-after-ms, else retry-after in seconds (an HTTP date is not honoured), if sent."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


class Backend:
    """A `dispatch` plugin for one configured backend; it answers only decisions naming it.

    Subclasses implement `stream`, which raises `BackendError` with the cause filled in;
    `complete` reads the same stream, so every request streams underneath. Clients, and the
    SDKs they come from, are loaded on first use (`prepare_dispatch`), reused, and safe to
    share between threads. Their read timeout is the first-token limit: the core bounds
    every wait itself, this only ends a blocked read.

    A kind with an async client sets `native_async` and implements `astream` (and
    `make_async_client`): `Router.ainvoke`/`astream` then run on it. Async clients belong to
    one event loop, so each loop gets its own, built in a thread on its first request. A kind
    without one is still served on the async path, its sync stream read in a thread.
    """

    accepts_images = False
    native_async = False

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        self.name = name
        self.config = config
        self.limits = limits or DEFAULT_LIMITS
        self._client: Any = None
        self._lock = threading.Lock()
        self._aclients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (most commands never dispatch) and then shared."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.make_client()
        return self._client

    def make_client(self) -> Any:
        raise NotImplementedError

    def make_async_client(self) -> Any:
        raise NotImplementedError

    async def aclient(self) -> Any:
        """This event loop's async client, built on its first request (in a thread: building
        one may read certificates from disk) and then shared by its requests."""
        import asyncio  # noqa: PLC0415  # only the async path needs it

        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            built = await asyncio.to_thread(self.make_async_client)
            client = self._aclients.setdefault(loop, built)
        return client

    @hookimpl
    def prepare_dispatch(self, decision: Decision) -> None:
        """Build the client, importing its SDK, before the first-token limit starts."""
        if decision.backend == self.name:
            _ = self.client

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response | Iterator[Chunk] | None:
        if decision.backend != self.name:
            return None
        self.check(request)
        if request.stream:
            return self.stream(request, decision)
        return self.complete(request, decision)

    @hookimpl
    def adispatch(self, request: Request, decision: Decision) -> AsyncIterator[Chunk] | None:
        """The async answer; None for a kind without an async client (read in a thread)."""
        if decision.backend != self.name or not self.native_async:
            return None
        self.check(request)
        if request.stream:
            return self.astream(request, decision)
        return _one(self.acomplete(request, decision))

    def check(self, request: Request) -> None:
        """Refuse what this backend cannot take, before anything is sent."""
        if request.has_images and not (self.accepts_images and self.config.images):
            raise UnsupportedRequest(
                f"backend {self.name!r} does not accept images (backends.{self.name}.images)"
            )

    @hookimpl
    def loaded_models(self, backend: str) -> list[LoadedModel] | None:
        return self.list_loaded() if backend == self.name else None

    @hookimpl
    def unload_model(self, backend: str, model: str) -> bool | None:
        return self.unload(model) if backend == self.name else None

    def list_loaded(self) -> list[LoadedModel] | None:
        """The models this backend's server holds now; None: not a model host (the cloud)."""
        return None

    def unload(self, model: str) -> bool | None:
        """Ask the server to let `model` go; None: not a model host."""
        return None

    def unreachable(self, exc: BaseException) -> BackendError:
        """The error a model-host call raises when the server does not answer."""
        return BackendError(
            f"{self.name}: nothing answers at {self.config.base_url} ({type(exc).__name__})",
            cause=Cause.CONNECTION,
        )

    def complete(self, request: Request, decision: Decision) -> Response:
        """The whole answer, read from the stream."""
        for chunk in self.stream(request, decision):
            if chunk.response is not None:
                return chunk.response
        raise StreamIncomplete(f"{self.name}: the stream ended without a final message")

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        raise NotImplementedError

    async def acomplete(self, request: Request, decision: Decision) -> Response:
        """The whole answer, read from the async stream."""
        chunks = self.astream(request, decision)
        try:
            async for chunk in chunks:
                if chunk.response is not None:
                    return chunk.response
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # an async generator
        raise StreamIncomplete(f"{self.name}: the stream ended without a final message")

    def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]:
        raise NotImplementedError

    def response(
        self,
        decision: Decision,
        started: float,
        *,
        text: str,
        model: str | None,
        input_tokens: int,
        output_tokens: int,
        first_token: float | None = None,
        stop_reason: str | None = None,
        tool_calls: tuple[dict[str, Any], ...] = (),
    ) -> Response:
        now = time.perf_counter()
        return Response(
            text=text,
            model=model or decision.model,
            backend=self.name,
            side=decision.side,
            usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            latency_s=now - started,
            first_token_s=(first_token - started) if first_token is not None else None,
            stop_reason=stop_reason,
            tool_calls=tool_calls,
        )


async def _one(answer: Any) -> AsyncIterator[Chunk]:
    response = await answer
    yield Chunk(response.text, response=response)


def function_tools(request: Request) -> list[dict[str, Any]]:
    """Tool definitions (Anthropic's shape) as OpenAI/Ollama function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t.get("input_schema", {"type": "object"}),
            },
        }
        for t in request.tools
    ]


def system_and_turns(request: Request) -> tuple[str | None, list[Any]]:
    """System messages joined apart; the rest as they are."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system") or None
    return system, [m for m in request.messages if m.role != "system"]
