"""Anthropic's Messages API through the real `anthropic` SDK (or any compatible server).

`max_retries=0`: DevPulse owns retries and failover. The key comes from the environment
variable the config names, never from the config file itself. The SDK's errors become
`BackendError`s with their cause read from Anthropic's error type (``rate_limit_error``,
``overloaded_error``, ...), the HTTP status and the retry-after headers.
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
from devpulse.core.types import Chunk, Decision, Request, Response
from devpulse.plugins.backends.base import (
    Backend,
    cause_for_status,
    context_error,
    retry_after,
    system_and_turns,
    timed_out,
)

if TYPE_CHECKING:
    import anthropic

# Anthropic's error types (docs: "Errors"), by what they mean for failover.
ERROR_TYPES = {
    "rate_limit_error": Cause.RATE_LIMITED,
    "overloaded_error": Cause.OVERLOADED,
    "api_error": Cause.SERVER_ERROR,
    "authentication_error": Cause.AUTH,
    "permission_error": Cause.AUTH,
    "billing_error": Cause.SPEND_LIMIT,
    "not_found_error": Cause.MODEL_NOT_LOADED,
    "request_too_large": Cause.CONTEXT_LENGTH,
    "invalid_request_error": Cause.BAD_REQUEST,
    # llama-server's Anthropic-compatible endpoint names a context overflow its own way.
    "exceed_context_size_error": Cause.CONTEXT_LENGTH,
}

ANTHROPIC_API = "https://api.anthropic.com"


class AnthropicBackend(Backend):
    accepts_images = True
    native_async = True

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        super().__init__(name, config, limits)
        self.key = os.environ.get(config.api_key_env) if config.api_key_env else None
        official = (config.base_url or ANTHROPIC_API).rstrip("/") == ANTHROPIC_API
        self.missing_key = official and not self.key

    def make_client(self) -> anthropic.Anthropic:
        import anthropic  # noqa: PLC0415  # on first use: it takes seconds to import

        return anthropic.Anthropic(
            api_key=self.key or "not-needed-for-a-local-server",
            base_url=self.config.base_url or ANTHROPIC_API,
            max_retries=0,
            timeout=anthropic.Timeout(self.limits.first_token_s, connect=self.limits.connect_s),
        )

    def params(self, request: Request, decision: Decision) -> dict[str, Any]:
        if self.missing_key:
            raise BackendError(
                f"{self.name}: no API key (set {self.config.api_key_env} in the environment)",
                cause=Cause.AUTH,
            )
        system, turns = system_and_turns(request)
        messages = []
        for m in turns:
            if m.images:
                blocks: list[dict[str, Any]] = [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": i.media_type, "data": i.data},
                    }
                    for i in m.images
                ]
                messages.append(
                    {"role": m.role, "content": [*blocks, {"type": "text", "text": m.content}]}
                )
            else:
                messages.append({"role": m.role, "content": m.content})
        params: dict[str, Any] = {
            "model": decision.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if system:
            params["system"] = system
        if request.tools:
            params["tools"] = [dict(t) for t in request.tools]
        return params

    def make_async_client(self) -> anthropic.AsyncAnthropic:
        import anthropic  # noqa: PLC0415  # on first use: it takes seconds to import

        return anthropic.AsyncAnthropic(
            api_key=self.key or "not-needed-for-a-local-server",
            base_url=self.config.base_url or ANTHROPIC_API,
            max_retries=0,
            timeout=anthropic.Timeout(self.limits.first_token_s, connect=self.limits.connect_s),
        )

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        started = time.perf_counter()
        text = _Text()
        try:
            with contextlib.ExitStack() as stack:
                events = self._open(stack, self.params(request, decision))
                for event in events:
                    chunk = text.feed(event)
                    if chunk is not None:
                        yield chunk
                text.check(self.name)
                message = events.get_final_message()
        except Exception as exc:
            raise self._failure(exc, text.first) from None
        yield Chunk("", self._response(decision, started, message, text.first))

    async def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]:
        import anthropic  # noqa: PLC0415  # loaded with the client
        import httpx2  # noqa: PLC0415  # loaded with the client

        started = time.perf_counter()
        text = _Text()
        params = self.params(request, decision)
        client: anthropic.AsyncAnthropic = await self.aclient()
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    events = await stack.enter_async_context(client.messages.stream(**params))
                except anthropic.APIConnectionError as exc:
                    if not _closed_keep_alive(exc, anthropic, httpx2):
                        raise
                    events = await stack.enter_async_context(client.messages.stream(**params))
                async for event in events:
                    chunk = text.feed(event)
                    if chunk is not None:
                        yield chunk
                text.check(self.name)
                message = await events.get_final_message()
        except Exception as exc:
            raise self._failure(exc, text.first) from None
        yield Chunk("", self._response(decision, started, message, text.first))

    def _failure(self, exc: Exception, first: float | None) -> Exception:
        """What an error of the SDK means, as a `BackendError` with its cause."""
        import anthropic  # noqa: PLC0415  # loaded with the client
        import httpx2  # noqa: PLC0415  # loaded with the client

        # anthropic 2.x runs on httpx2, whose errors surface raw while a stream is read.
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, anthropic.APITimeoutError | httpx2.ReadTimeout):
            return timed_out(self.name, first, self.limits)
        if isinstance(exc, anthropic.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, anthropic.APIConnectionError):
            return BackendError(
                f"{self.name}: cannot reach {self.config.base_url or ANTHROPIC_API} ({exc})",
                cause=Cause.CONNECTION,
            )
        if isinstance(exc, httpx2.RemoteProtocolError | httpx2.ReadError):
            return StreamIncomplete(f"{self.name}: the connection broke ({exc})")
        if isinstance(exc, json.JSONDecodeError):
            return BackendError(
                f"{self.name}: a stream event is not JSON ({exc})", cause=Cause.MALFORMED_STREAM
            )
        return exc

    def _status_error(self, exc: anthropic.APIStatusError) -> BackendError:
        """An HTTP error, or an error event inside a 200 stream, with its fields kept."""
        body = exc.body if isinstance(exc.body, dict) else {}
        inner = body.get("error", body)
        inner = inner if isinstance(inner, dict) else {}
        kind = inner.get("type") if isinstance(inner.get("type"), str) else None
        message = " ".join(str(inner.get("message") or exc.message).split())[:200]
        status = exc.status_code
        cause = ERROR_TYPES.get(kind or "") or cause_for_status(status)
        if cause is Cause.RATE_LIMITED and "spend limit" in message.lower():
            # Anthropic reports a reached spend limit as a rate_limit_error; only its message
            # tells it apart, and it does not lift with a retry.
            cause = Cause.SPEND_LIMIT
        if cause is Cause.BAD_REQUEST and message.lower().startswith("prompt is too long"):
            cause = Cause.CONTEXT_LENGTH  # Anthropic's wording for a context overflow
        if cause is Cause.CONTEXT_LENGTH:
            return context_error(
                self.name,
                message,
                status=status,
                request_tokens=inner.get("n_prompt_tokens"),
                context_tokens=inner.get("n_ctx"),
                provider_type=kind,
            )
        where = "in the stream" if status == 200 else f"HTTP {status}"
        return BackendError(
            f"{self.name} answered {where}: {kind or 'error'}: {message}",
            cause=cause,
            status=status,
            retry_after_s=retry_after(getattr(exc.response, "headers", None)),
            provider_type=kind,
        )

    def _open(self, stack: contextlib.ExitStack[Any], params: dict[str, Any]) -> Any:
        """Send the request; once more at once if a kept-alive connection turned out closed.

        A server may close an idle keep-alive connection just as it is reused ("Server
        disconnected without sending a response"): the request never reached it, so this is
        no failure of the backend and not worth a failover.
        """
        import anthropic  # noqa: PLC0415  # loaded with the client
        import httpx2  # noqa: PLC0415  # loaded with the client

        try:
            return stack.enter_context(self.client.messages.stream(**params))
        except anthropic.APIConnectionError as exc:
            if not _closed_keep_alive(exc, anthropic, httpx2):
                raise
            return stack.enter_context(self.client.messages.stream(**params))

    def _response(
        self, decision: Decision, started: float, message: Any, first: float | None
    ) -> Response:
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = tuple(
            {"name": b.name, "arguments": b.input, "id": b.id}
            for b in message.content
            if b.type == "tool_use"
        )
        return self.response(
            decision,
            started,
            text=text,
            model=message.model,
            first_token=first,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            stop_reason=message.stop_reason,
            tool_calls=calls,
        )


def _closed_keep_alive(exc: Exception, anthropic: Any, httpx2: Any) -> bool:
    """Whether a connection error is a kept-alive connection the server had closed."""
    return not isinstance(exc, anthropic.APITimeoutError) and isinstance(
        exc.__cause__, httpx2.RemoteProtocolError
    )


class _Text:
    """The text deltas of one answer's events, and whether it ended with message_stop."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.stopped = False

    def feed(self, event: Any) -> Chunk | None:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            self.first = self.first or time.perf_counter()
            return Chunk(event.delta.text)
        if event.type == "message_stop":
            self.stopped = True
        return None

    def check(self, name: str) -> None:
        if not self.stopped:  # the SDK reports end_turn even for a cut stream
            raise StreamIncomplete(f"{name}: the stream ended without message_stop")
