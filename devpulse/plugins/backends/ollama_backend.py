"""Ollama through the real `ollama` client: chat, streaming, keep_alive, token counts.

The request and the stream's decoding are `ollama_mapping`'s, free of I/O; this module
sends and reads. Every request streams. The client drops an error response's headers, so a
response hook keeps the Retry-After of the error the request received.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devpulse.core.errors import BackendError, Cause, StreamIncomplete
from devpulse.core.types import Chunk, Decision, LoadedModel, Request
from devpulse.plugins.backends.base import (
    Backend,
    ServerSettings,
    cause_for_status,
    context_error,
    retry_after,
    timed_out,
)
from devpulse.plugins.backends.ollama_mapping import OllamaDecoder, ollama_payload
from devpulse.plugins.backends.stoppable import stop_hook

if TYPE_CHECKING:
    import httpx
    import ollama

MB = 1024 * 1024
HOST_TIMEOUT_S = 1.0  # listing loaded models: a server that takes longer is not answering
UNLOAD_TIMEOUT_S = 10.0  # Ollama answers an unload once the runner has stopped


def host_failures() -> tuple[type[Exception], ...]:
    """What a model-host call raises when no Ollama answers: nothing listens, it is too
    slow, or what answers is not Ollama (HTML, or JSON of another shape: the client's
    `json()` and its pydantic models raise ValueError, a JSON list TypeError). The client
    turns only a refused connection into ConnectionError: a read timeout or a dropped
    connection is an `httpx.TransportError`, which is not an OSError."""
    import httpx  # noqa: PLC0415  # loaded with the client

    return (ConnectionError, OSError, ValueError, TypeError, httpx.TransportError)


@dataclass(frozen=True, slots=True)
class OllamaSettings(ServerSettings):
    """Ollama's keys add how long it keeps a model loaded after a request ("5m")."""

    keep_alive: str | None = None


# The Retry-After of the error response a request got, which the client's exception drops:
# kept by the response hook for the code that reads the exception. Per context, so per
# request: each runs in a task of its own on the async path (one thread for all) and in a
# copy of its caller's context on the sync path's worker threads.
_RETRY_AFTER: ContextVar[float | None] = ContextVar("devpulse_ollama_retry_after", default=None)


class OllamaBackend(Backend):
    accepts_images = True
    native_async = True
    settings = OllamaSettings

    def make_client(self) -> ollama.Client:
        import httpx  # noqa: PLC0415  # on first use, not at start-up
        import ollama  # noqa: PLC0415  # on first use, not at start-up

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return ollama.Client(
            host=self.config.base_url,
            timeout=timeout,
            event_hooks={"response": [self._remember_retry_after, stop_hook(httpx.SyncByteStream)]},
        )

    @staticmethod
    def _remember_retry_after(response: httpx.Response) -> None:
        if response.status_code >= 400:
            _RETRY_AFTER.set(retry_after(response.headers))

    def params(self, request: Request, decision: Decision) -> dict[str, Any]:
        return ollama_payload(
            request, decision.model, keep_alive=self.config.keep_alive, name=self.name
        )

    def make_async_client(self) -> ollama.AsyncClient:
        import httpx  # noqa: PLC0415  # on first use, not at start-up
        import ollama  # noqa: PLC0415  # on first use, not at start-up

        async def remember_retry_after(response: httpx.Response) -> None:
            self._remember_retry_after(response)

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return ollama.AsyncClient(
            host=self.config.base_url,
            timeout=timeout,
            event_hooks={"response": [remember_retry_after]},
        )

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        first: list[float] = []
        decoder = OllamaDecoder(self.name, self.responder(decision, time.perf_counter(), first))
        try:
            for part in self.client.chat(**self.params(request, decision)):
                yield from self._step(decoder, part, first)
                if decoder.finished:
                    return
        except Exception as exc:
            raise self._failure(exc, first) from None
        decoder.end()

    async def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]:
        """`stream` on this event loop's `ollama.AsyncClient`; only the I/O differs. Closing
        it closes the response, so the server sees the disconnect."""
        first: list[float] = []
        decoder = OllamaDecoder(self.name, self.responder(decision, time.perf_counter(), first))
        try:
            client = await self.aclient()
            parts = await client.chat(**self.params(request, decision))
            try:
                async for part in parts:
                    for chunk in self._step(decoder, part, first):
                        yield chunk
                    if decoder.finished:
                        return
            finally:
                await parts.aclose()
        except Exception as exc:
            raise self._failure(exc, first) from None
        decoder.end()

    @staticmethod
    def _step(decoder: OllamaDecoder, part: Any, first: list[float]) -> list[Chunk]:
        chunks = decoder.feed(part.model_dump(exclude_none=True))
        if chunks and not first:
            first.append(time.perf_counter())
        return chunks

    def _failure(self, exc: Exception, first: list[float]) -> Exception:
        """What an error of the client means, as a `BackendError` with its cause."""
        import httpx  # noqa: PLC0415  # loaded with the client
        import ollama  # noqa: PLC0415  # loaded with the client

        if isinstance(exc, ollama.ResponseError):
            return self._response_error(exc)
        if isinstance(exc, ConnectionError):  # the client's word for "nothing listens there"
            return BackendError(
                f"{self.name}: nothing answers at {self.config.shown_url} ({exc})",
                cause=Cause.CONNECTION,
            )
        if isinstance(exc, httpx.ReadTimeout):
            return timed_out(self.name, first[0] if first else None, self.limits)
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return StreamIncomplete(f"{self.name}: the connection broke ({exc})")
        return exc

    def host_client(self, timeout_s: float) -> Any:
        """A short-timeout client for the model-host calls (listing, unloading)."""
        import ollama  # noqa: PLC0415  # the SDK loads only where it is used

        return ollama.Client(host=self.config.base_url, timeout=timeout_s)

    def list_loaded(self) -> list[LoadedModel]:
        """Ollama's `/api/ps`: each model's memory, its VRAM part and when it expires."""
        import ollama  # noqa: PLC0415

        try:
            found = self.host_client(HOST_TIMEOUT_S).ps().models
        except ollama.ResponseError as exc:
            raise self.unreachable(exc) from None
        except host_failures() as exc:
            raise self.unreachable(exc) from None
        return [
            LoadedModel(
                self.name,
                m.model or m.name or "?",
                int(m.size or 0) // MB,
                vram_mb=int(m.size_vram) // MB if m.size_vram is not None else None,
                expires_at=m.expires_at.isoformat() if m.expires_at else None,
            )
            for m in found
        ]

    def unload(self, model: str) -> bool:
        """Unload the way Ollama documents it: a request with `keep_alive: 0` and no prompt."""
        import ollama  # noqa: PLC0415

        try:
            self.host_client(UNLOAD_TIMEOUT_S).generate(model=model, keep_alive=0)
        except ollama.ResponseError:
            return False  # no such model
        except host_failures() as exc:
            raise self.unreachable(exc) from None
        return True

    def _response_error(self, exc: ollama.ResponseError) -> BackendError:
        status = exc.status_code
        wait = _RETRY_AFTER.get() if status >= 400 else None
        _RETRY_AFTER.set(None)
        message = " ".join(str(exc.error).split())[:200]
        if status in (400, 413) and "context" in message.lower():
            # Ollama's word for it: "input length exceeds the context length" and the like.
            return context_error(self.name, message, status=status)
        return BackendError(
            f"{self.name}: {message} (HTTP {status})" if status > 0 else f"{self.name}: {message}",
            # Ollama's errors carry a status and a message, no type: the status decides.
            cause=cause_for_status(status),
            status=status if status > 0 else None,
            retry_after_s=wait,
        )
