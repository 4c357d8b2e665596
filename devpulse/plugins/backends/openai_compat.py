"""OpenAI-compatible APIs (`/v1/chat/completions`): local servers (llama-server, LM Studio,
vLLM) and, with ``side = "cloud"`` and ``api_key_env``, hosted ones (OpenAI, OpenRouter).

The body and the stream's decoding are `openai_mapping`'s, free of I/O; this module sends
the request and reads its server-sent events (httpx-sse). Every request streams (`stream:
true`), so the core's first-token and stall limits apply to local generation as to the
cloud. Errors carry the HTTP status, the server's error type (llama-server:
``exceed_context_size_error``; OpenAI: ``context_length_exceeded``) and its Retry-After.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from devpulse.core.config import BackendConfig, Limits, endpoint, shown_url
from devpulse.core.errors import BackendError, Cause, StreamIncomplete
from devpulse.core.types import Chunk, Decision, LoadedModel, Request, Side
from devpulse.plugins.backends import llama_host
from devpulse.plugins.backends.base import (
    Backend,
    cause_for_status,
    context_error,
    retry_after,
    timed_out,
    without_credentials,
)
from devpulse.plugins.backends.openai_mapping import OpenAIDecoder, openai_payload
from devpulse.plugins.backends.stoppable import stop_hook

if TYPE_CHECKING:
    import httpx

CONTEXT_TYPES = {"exceed_context_size_error", "context_length_exceeded"}


class OpenAICompatBackend(Backend):
    accepts_images = True
    native_async = True

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        super().__init__(name, config, limits)
        self.url = endpoint(config.base_url or "", "/chat/completions")  # before a ?query

    def make_client(self) -> httpx.Client:
        import httpx  # noqa: PLC0415  # on first use, not at start-up

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return httpx.Client(
            timeout=timeout,
            headers=self.auth_headers(),
            # A server's keep-alives (SSE comments) make no chunk: each read sees the stop.
            event_hooks={"response": [stop_hook(httpx.SyncByteStream)]},
        )

    def auth_headers(self) -> dict[str, str]:
        """The bearer key from `api_key_env`, read now and never kept anywhere else.

        A cloud API (OpenAI, OpenRouter) without its key fails before anything is sent, as
        a backend this machine has not set up (the work fails over); a local server usually
        needs none.
        """
        env = self.config.api_key_env
        key = os.environ.get(env) if env else None
        if not key and self.config.side is Side.CLOUD:
            where = (
                f"set {env} in the environment" if env else f"set backends.{self.name}.api_key_env"
            )
            raise BackendError(f"{self.name}: no API key ({where})", cause=Cause.NO_CREDENTIALS)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def body(self, request: Request, decision: Decision) -> dict[str, Any]:
        return openai_payload(request, decision.model)

    def make_async_client(self) -> httpx.AsyncClient:
        import httpx  # noqa: PLC0415  # on first use, not at start-up

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return httpx.AsyncClient(timeout=timeout, headers=self.auth_headers())

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        first: list[float] = []
        try:
            yield from self._stream(request, decision, first)
        except Exception as exc:
            raise self._failure(exc, first) from None

    async def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]:
        first: list[float] = []
        try:
            # Closed here, not left to the garbage collector: closing this stream must close
            # the response (and so the connection) before it returns.
            async with contextlib.aclosing(self._astream(request, decision, first)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except Exception as exc:
            raise self._failure(exc, first) from None

    def _failure(self, exc: Exception, first: list[float]) -> Exception:
        """What an error of the HTTP client means, as a `BackendError` with its cause."""
        import httpx  # noqa: PLC0415  # loaded with the client
        import httpx_sse  # noqa: PLC0415  # loaded with the client

        if isinstance(exc, httpx.ReadTimeout):
            return timed_out(self.name, first[0] if first else None, self.limits)
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return BackendError(
                f"{self.name}: nothing answers at {shown_url(self.url)} ({exc})",
                cause=Cause.CONNECTION,
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return StreamIncomplete(f"{self.name}: the connection broke ({exc})")
        if isinstance(exc, json.JSONDecodeError):
            return BackendError(
                f"{self.name}: a stream event is not JSON ({exc})", cause=Cause.MALFORMED_STREAM
            )
        if isinstance(exc, httpx_sse.SSEError):
            return BackendError(
                f"{self.name}: the answer is not a server-sent event stream ({exc})",
                cause=Cause.MALFORMED_STREAM,
            )
        return exc

    def list_loaded(self) -> list[LoadedModel] | None:
        """What llama-server lists at `GET /models` (LM Studio and vLLM list no status).

        None for a cloud API: its model list is a catalogue, not models held in memory here.
        """
        if self.config.side is Side.CLOUD:
            return None
        try:
            return llama_host.loaded(self.name, self.config)
        except llama_host.UNREACHABLE as exc:
            raise self.unreachable(exc) from None

    def unload(self, model: str) -> bool | None:
        """llama-server in router mode: `POST /models/unload`; None for a cloud API."""
        if self.config.side is Side.CLOUD:
            return None
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

    def _stream(
        self, request: Request, decision: Decision, first_token: list[float]
    ) -> Iterator[Chunk]:
        from httpx_sse import EventSource  # noqa: PLC0415  # loaded with the client

        started = time.perf_counter()
        decoder = OpenAIDecoder(self.name, self.responder(decision, started, first_token))
        with contextlib.ExitStack() as stack:
            reply = self._open(stack, self.body(request, decision))
            if reply.status_code >= 400:
                reply.read()
                raise status_error(self.name, reply)
            # An event the connection cut before its blank line is never dispatched: the
            # stream then lacks [DONE], and counts as cut.
            for sse in EventSource(reply).iter_sse():
                yield from self._step(decoder, sse.data, first_token, reply.request.headers)
                if decoder.finished:
                    break
        decoder.end()

    async def _astream(
        self, request: Request, decision: Decision, first_token: list[float]
    ) -> AsyncGenerator[Chunk, None]:
        """`_stream` on this event loop's client; only the I/O differs."""
        import httpx  # noqa: PLC0415  # loaded with the client
        from httpx_sse import EventSource  # noqa: PLC0415  # loaded with the client

        started = time.perf_counter()
        decoder = OpenAIDecoder(self.name, self.responder(decision, started, first_token))
        body = self.body(request, decision)
        client: httpx.AsyncClient = await self.aclient()
        async with contextlib.AsyncExitStack() as stack:
            try:
                reply = await stack.enter_async_context(client.stream("POST", self.url, json=body))
            except httpx.RemoteProtocolError:  # as `_open`: a kept-alive connection had closed
                reply = await stack.enter_async_context(client.stream("POST", self.url, json=body))
            if reply.status_code >= 400:
                await reply.aread()
                raise status_error(self.name, reply)
            async with contextlib.aclosing(EventSource(reply).aiter_sse()) as events:
                async for sse in events:
                    for chunk in self._step(decoder, sse.data, first_token, reply.request.headers):
                        yield chunk
                    if decoder.finished:
                        break
        decoder.end()

    def _step(
        self,
        decoder: OpenAIDecoder,
        data: str,
        first_token: list[float],
        sent: Mapping[str, str],
    ) -> list[Chunk]:
        """The chunks one event's `data` field tells; ``[DONE]`` ends the answer. `sent`:
        the request's headers, whose credential an error event's message must not quote."""
        if data == "[DONE]":
            chunks = decoder.done()
        else:
            event = json.loads(data)
            if "error" in event:
                raise _error(self.name, event, 200, None, sent)
            chunks = decoder.feed(event)
        if chunks and not first_token:
            first_token.append(time.perf_counter())
        return chunks


def status_error(name: str, reply: httpx.Response) -> BackendError:
    """The error an HTTP error response describes, its fields kept."""
    try:
        body = reply.json()
    except ValueError:
        # the key out before the cut: one across it would leave its start in the clear
        body = {"error": without_credentials(reply.text, reply.request.headers)[:200]}
    body = body if isinstance(body, dict) else {}
    return _error(name, body, reply.status_code, reply.headers, reply.request.headers)


def _error(
    name: str, body: dict[str, Any], status: int, headers: Any, sent: Mapping[str, str]
) -> BackendError:
    """The BackendError a server's error `body` says; `sent`, the request's headers, whose
    credential the message must not quote (`without_credentials`)."""
    inner = body.get("error")
    if isinstance(inner, dict):
        kind = inner.get("type") or None
        code = inner.get("code")
        message = without_credentials(str(inner.get("message") or ""), sent)
        if status == 200 and isinstance(code, int):
            status = code  # an error inside a stream names its status in the body
    else:
        inner, kind, code, message = {}, None, None, without_credentials(str(inner or ""), sent)
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
