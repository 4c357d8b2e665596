"""Ollama through the real `ollama` client: chat, streaming, keep_alive, token counts.

Every request streams. The client drops an error response's headers, so a response hook
keeps the Retry-After of the last error this thread (or task) received.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from devpulse.core.errors import BackendError, Cause, StreamIncomplete
from devpulse.core.types import Chunk, Decision, LoadedModel, Request
from devpulse.plugins.backends.base import (
    Backend,
    cause_for_status,
    context_error,
    function_tools,
    retry_after,
    timed_out,
)

if TYPE_CHECKING:
    import httpx
    import ollama

MB = 1024 * 1024
HOST_TIMEOUT_S = 1.0  # listing loaded models: a server that takes longer is not answering
UNLOAD_TIMEOUT_S = 10.0  # Ollama answers an unload once the runner has stopped


# The Retry-After of the last error response this thread or task received.
_RETRY_AFTER: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "ollama_retry_after", default=None
)


class OllamaBackend(Backend):
    accepts_images = True
    native_async = True

    def make_client(self) -> ollama.Client:
        import httpx  # noqa: PLC0415  # on first use, not at start-up
        import ollama  # noqa: PLC0415  # on first use, not at start-up

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return ollama.Client(
            host=self.config.base_url,
            timeout=timeout,
            event_hooks={"response": [self._remember_retry_after]},
        )

    def _remember_retry_after(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            _RETRY_AFTER.set(retry_after(response.headers))

    def params(self, request: Request, decision: Decision) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            entry: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.images:
                entry["images"] = [i.data for i in m.images]
            messages.append(entry)
        params: dict[str, Any] = {
            "model": decision.model,
            "messages": messages,
            "stream": True,
            "options": {"num_predict": request.max_tokens},
        }
        if self.config.keep_alive is not None:
            params["keep_alive"] = self.config.keep_alive
        if request.tools:
            params["tools"] = function_tools(request)
        return params

    def make_async_client(self) -> ollama.AsyncClient:
        import httpx  # noqa: PLC0415  # on first use, not at start-up
        import ollama  # noqa: PLC0415  # on first use, not at start-up

        async def remember(response: httpx.Response) -> None:
            self._remember_retry_after(response)

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return ollama.AsyncClient(
            host=self.config.base_url, timeout=timeout, event_hooks={"response": [remember]}
        )

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        reply = _Reply(self, decision)
        try:
            for part in self.client.chat(**self.params(request, decision)):
                yield from reply.feed(part)
                if reply.done:
                    return
        except Exception as exc:
            raise self._failure(exc, reply.first) from None
        raise StreamIncomplete(f"{self.name}: the stream ended before done")

    async def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]:
        reply = _Reply(self, decision)
        params = self.params(request, decision)
        client = await self.aclient()
        parts = None
        try:
            parts = await client.chat(**params)
            async for part in parts:
                for chunk in reply.feed(part):
                    yield chunk
                if reply.done:
                    return
        except Exception as exc:
            raise self._failure(exc, reply.first) from None
        finally:
            if parts is not None:  # closes the response, and with it the connection
                await parts.aclose()
        raise StreamIncomplete(f"{self.name}: the stream ended before done")

    def _failure(self, exc: Exception, first: float | None) -> Exception:
        """What an error of the client means, as a `BackendError` with its cause."""
        import httpx  # noqa: PLC0415  # loaded with the client
        import ollama  # noqa: PLC0415  # loaded with the client

        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, ollama.ResponseError):
            return self._response_error(exc)
        # The client's word for "nothing listens there"; its async stream raises httpx's own.
        if isinstance(exc, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
            return BackendError(
                f"{self.name}: nothing answers at {self.config.base_url} ({exc})",
                cause=Cause.CONNECTION,
            )
        if isinstance(exc, httpx.ReadTimeout):
            return timed_out(self.name, first, self.limits)
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
        except (ConnectionError, OSError, ollama.ResponseError) as exc:
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
        except (ConnectionError, OSError) as exc:
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


class _Reply:
    """One answer's parts, as Ollama's client decodes them, turned into chunks."""

    def __init__(self, backend: OllamaBackend, decision: Decision) -> None:
        self.backend = backend
        self.decision = decision
        self.started = time.perf_counter()
        self.first: float | None = None
        self.parts: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.done = False

    def feed(self, part: Any) -> list[Chunk]:
        """The chunks one part carries: its text, and the final one when it is done."""
        out = []
        text = part.message.content or ""
        self.calls += [
            {"name": c.function.name, "arguments": dict(c.function.arguments)}
            for c in part.message.tool_calls or ()
        ]
        if text:
            self.first = self.first or time.perf_counter()
            self.parts.append(text)
            out.append(Chunk(text))
        if part.done:
            self.done = True
            response = self.backend.response(
                self.decision,
                self.started,
                text="".join(self.parts),
                model=part.model,
                first_token=self.first,
                input_tokens=part.prompt_eval_count or 0,
                output_tokens=part.eval_count or 0,
                stop_reason=part.done_reason,
                tool_calls=tuple(self.calls),
            )
            out.append(Chunk("", response))
        return out
