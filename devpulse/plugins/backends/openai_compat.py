"""OpenAI-compatible local servers: llama-server, LM Studio, vLLM (`/v1/chat/completions`).

Every request streams (`stream: true`), so the core's first-token and stall limits apply to
local generation as to the cloud. Errors carry the HTTP status, the server's error type
(llama-server: ``exceed_context_size_error``; OpenAI: ``context_length_exceeded``) and its
Retry-After.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from devpulse.core.config import BackendConfig, Limits
from devpulse.core.errors import BackendError, Cause, StreamIncomplete
from devpulse.core.types import Chunk, Decision, LoadedModel, Request
from devpulse.plugins.backends import llama_host
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

CONTEXT_TYPES = {"exceed_context_size_error", "context_length_exceeded"}


class OpenAICompatBackend(Backend):
    accepts_images = True
    native_async = True

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        super().__init__(name, config, limits)
        self.url = f"{(config.base_url or '').rstrip('/')}/chat/completions"

    def make_client(self) -> httpx.Client:
        import httpx  # noqa: PLC0415  # on first use, not at start-up

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return httpx.Client(timeout=timeout, headers=self._headers())

    def _headers(self) -> dict[str, str]:
        env = self.config.api_key_env
        key = os.environ.get(env) if env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def body(self, request: Request, decision: Decision) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            if m.images:
                parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}]
                parts += [
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:{i.media_type};base64,{i.data}"},
                    }
                    for i in m.images
                ]
                messages.append({"role": m.role, "content": parts})
            else:
                messages.append({"role": m.role, "content": m.content})
        body: dict[str, Any] = {
            "model": decision.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = function_tools(request)
        return body

    def make_async_client(self) -> httpx.AsyncClient:
        import httpx  # noqa: PLC0415  # on first use, not at start-up

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return httpx.AsyncClient(timeout=timeout, headers=self._headers())

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        import httpx_sse  # noqa: PLC0415  # loaded with the client

        decoder = _Decoder(self, decision)
        try:
            with contextlib.ExitStack() as stack:
                reply = self._open(stack, self.body(request, decision))
                if reply.status_code >= 400:
                    reply.read()
                    raise status_error(self.name, reply)
                for event in httpx_sse.EventSource(reply).iter_sse():
                    chunk = decoder.feed(event.data)
                    if chunk is not None:
                        yield chunk
                    if decoder.done:
                        break
        except Exception as exc:
            raise self._failure(exc, decoder.first) from None
        yield decoder.finish()

    async def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]:
        import httpx  # noqa: PLC0415  # loaded with the client
        import httpx_sse  # noqa: PLC0415  # loaded with the client

        decoder = _Decoder(self, decision)
        body = self.body(request, decision)
        client: httpx.AsyncClient = await self.aclient()
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    reply = await stack.enter_async_context(
                        client.stream("POST", self.url, json=body)
                    )
                except httpx.RemoteProtocolError:  # as `_open`: a kept-alive connection closed
                    reply = await stack.enter_async_context(
                        client.stream("POST", self.url, json=body)
                    )
                if reply.status_code >= 400:
                    await reply.aread()
                    raise status_error(self.name, reply)
                async for event in httpx_sse.EventSource(reply).aiter_sse():
                    chunk = decoder.feed(event.data)
                    if chunk is not None:
                        yield chunk
                    if decoder.done:
                        break
        except Exception as exc:
            raise self._failure(exc, decoder.first) from None
        yield decoder.finish()

    def _failure(self, exc: Exception, first: float | None) -> Exception:
        """What an error of the client means, as a `BackendError` with its cause."""
        import httpx  # noqa: PLC0415  # loaded with the client
        import httpx_sse  # noqa: PLC0415  # loaded with the client

        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, httpx.ReadTimeout):
            return timed_out(self.name, first, self.limits)
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return BackendError(
                f"{self.name}: nothing answers at {self.url} ({exc})", cause=Cause.CONNECTION
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return StreamIncomplete(f"{self.name}: the connection broke ({exc})")
        if isinstance(exc, json.JSONDecodeError | httpx_sse.SSEError):
            return BackendError(
                f"{self.name}: a stream event is not JSON ({exc})", cause=Cause.MALFORMED_STREAM
            )
        return exc

    def list_loaded(self) -> list[LoadedModel]:
        """What llama-server lists at `GET /models` (LM Studio and vLLM list no status)."""
        try:
            return llama_host.loaded(self.name, self.config)
        except llama_host.UNREACHABLE as exc:
            raise self.unreachable(exc) from None

    def unload(self, model: str) -> bool:
        """llama-server in router mode: `POST /models/unload`."""
        try:
            return llama_host.unload(self.config, model)
        except llama_host.UNREACHABLE as exc:
            raise self.unreachable(exc) from None

    def _open(self, stack: contextlib.ExitStack[Any], body: dict[str, Any]) -> httpx.Response:
        """Send the request; once more at once if a kept-alive connection turned out closed.

        llama-server may close a connection after a streamed answer while the pool still
        holds it: the request never reached the server, so this is no failure of the backend.
        """
        import httpx  # noqa: PLC0415  # loaded with the client

        client: httpx.Client = self.client
        try:
            return stack.enter_context(client.stream("POST", self.url, json=body))
        except httpx.RemoteProtocolError:
            return stack.enter_context(client.stream("POST", self.url, json=body))


class _Decoder:
    """One answer's server-sent events, decoded one `data` field at a time, with no I/O."""

    def __init__(self, backend: OpenAICompatBackend, decision: Decision) -> None:
        self.backend = backend
        self.decision = decision
        self.started = time.perf_counter()
        self.first: float | None = None
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, int] = {}
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.done = False

    def feed(self, payload: str) -> Chunk | None:
        """The text chunk one event carries, if any; ``[DONE]`` ends the answer."""
        if payload == "[DONE]":
            self.done = True
            return None
        event = json.loads(payload)
        if "error" in event:
            raise _error(self.backend.name, event, 200, None)
        self.model = event.get("model") or self.model
        self.usage = event.get("usage") or self.usage
        text = ""
        for choice in event.get("choices") or ():
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            delta = choice.get("delta") or {}
            for call in delta.get("tool_calls") or ():
                _merge_call(self.calls, call)
            text += delta.get("content") or ""
        if not text:
            return None
        if self.first is None:
            self.first = time.perf_counter()
        self.parts.append(text)
        return Chunk(text)

    def finish(self) -> Chunk:
        """The final chunk, with the whole `Response`; a stream cut before [DONE] is not one."""
        if not self.done:
            raise StreamIncomplete(f"{self.backend.name}: the stream ended without [DONE]")
        return Chunk(
            "",
            self.backend.response(
                self.decision,
                self.started,
                text="".join(self.parts),
                model=self.model,
                first_token=self.first,
                input_tokens=self.usage.get("prompt_tokens", 0),
                output_tokens=self.usage.get("completion_tokens", 0),
                stop_reason=self.finish_reason,
                tool_calls=tuple(
                    {"name": c["name"], "arguments": c["arguments"]}
                    for _, c in sorted(self.calls.items())
                ),
            ),
        )


def _merge_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Tool calls arrive in pieces: a name first, then the arguments' JSON in fragments."""
    entry = calls.setdefault(int(delta.get("index", 0)), {"name": "", "arguments": ""})
    function = delta.get("function") or {}
    entry["name"] += function.get("name") or ""
    entry["arguments"] += function.get("arguments") or ""


def status_error(name: str, reply: httpx.Response) -> BackendError:
    """The error an HTTP error response describes, its fields kept."""
    try:
        body = reply.json()
    except ValueError:
        body = {"error": reply.text[:200]}
    return _error(name, body if isinstance(body, dict) else {}, reply.status_code, reply.headers)


def _error(name: str, body: dict[str, Any], status: int, headers: Any) -> BackendError:
    inner = body.get("error")
    if isinstance(inner, dict):
        kind = inner.get("type") or None
        code = inner.get("code")
        message = str(inner.get("message") or "")
        if status == 200 and isinstance(code, int):
            status = code  # an error inside a stream names its status in the body
    else:
        inner, kind, code, message = {}, None, None, str(inner or "")
    cause = _cause(status, {kind, code if isinstance(code, str) else None}, message)
    if cause is Cause.CONTEXT_LENGTH:  # llama-server names both sizes in its error body
        return context_error(
            name,
            message,
            status=status,
            request_tokens=inner.get("n_prompt_tokens"),
            context_tokens=inner.get("n_ctx"),
            provider_type=kind,
        )
    detail = " ".join(message.split())[:200]
    return BackendError(
        f"{name} answered HTTP {status}: {detail}" if detail else f"{name} answered HTTP {status}",
        cause=cause,
        status=status,
        retry_after_s=retry_after(headers),
        provider_type=kind,
    )


def _cause(status: int, kinds: set[str | None], message: str) -> Cause:
    if status == 429 and "insufficient_quota" in kinds:
        return Cause.SPEND_LIMIT  # OpenAI's code for a used-up quota
    # vLLM names no type for it: its message ("maximum context length") is all there is.
    if status in (400, 413) and (kinds & CONTEXT_TYPES or "maximum context length" in message):
        return Cause.CONTEXT_LENGTH
    return cause_for_status(status)
