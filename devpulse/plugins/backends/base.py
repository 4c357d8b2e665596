"""What every backend shares: owning its decisions, timing answers, building responses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

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
    """

    accepts_images = False

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        self.name = name
        self.config = config
        self.limits = limits or DEFAULT_LIMITS
        self._client: Any = None
        self._lock = threading.Lock()

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

    @hookimpl
    def prepare_dispatch(self, decision: Decision) -> None:
        """Build the client, importing its SDK, before the first-token limit starts."""
        if decision.backend == self.name:
            _ = self.client

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response | Iterator[Chunk] | None:
        if decision.backend != self.name:
            return None
        if request.has_images and not (self.accepts_images and self.config.images):
            raise UnsupportedRequest(
                f"backend {self.name!r} does not accept images (backends.{self.name}.images)"
            )
        if request.stream:
            return self.stream(request, decision)
        return self.complete(request, decision)

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
