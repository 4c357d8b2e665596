"""Anthropic's Messages API through the real `anthropic` SDK (or any compatible server).

The request body and the stream's decoding are `anthropic_mapping`'s, free of I/O; this
module sends and reads. `max_retries=0`: DevPulse owns retries and failover. The key comes
from the environment variable the config names, never from the config file itself. The
SDK's errors become `BackendError`s with their cause read from Anthropic's error type
(``rate_limit_error``, ``overloaded_error``, ...), the HTTP status and the retry-after
headers.
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
from devpulse.core.types import Chunk, Decision, Request
from devpulse.plugins.backends.anthropic_mapping import AnthropicDecoder, anthropic_payload
from devpulse.plugins.backends.base import (
    Backend,
    cause_for_status,
    context_error,
    retry_after,
    timed_out,
    without_credentials,
)
from devpulse.plugins.backends.stoppable import stop_hook

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

    def prepare(self) -> None:
        """As every backend's, but with no key for Anthropic's API the request fails before
        anything is sent (`params`): the SDK, a second to import, is not loaded for that."""
        if not self.missing_key:
            super().prepare()

    @property
    def prepared(self) -> bool:
        return self.missing_key or super().prepared

    def make_client(self) -> anthropic.Anthropic:
        import anthropic  # noqa: PLC0415  # on first use: it takes seconds to import
        import httpx2  # noqa: PLC0415  # loaded with the client

        return anthropic.Anthropic(
            api_key=self.key or "not-needed-for-a-local-server",
            base_url=self.config.base_url or ANTHROPIC_API,
            max_retries=0,
            timeout=anthropic.Timeout(self.limits.first_token_s, connect=self.limits.connect_s),
            # `ping` events make no chunk: each read sees the core's stop (stoppable.py).
            http_client=anthropic.DefaultHttpxClient(
                event_hooks={"response": [stop_hook(httpx2.SyncByteStream)]}
            ),
        )

    def params(self, request: Request, decision: Decision) -> dict[str, Any]:
        if self.missing_key:
            raise BackendError(
                f"{self.name}: no API key (set {self.config.api_key_env} in the environment)",
                cause=Cause.NO_CREDENTIALS,
            )
        return anthropic_payload(request, decision.model)

    def make_async_client(self) -> anthropic.AsyncAnthropic:
        import anthropic  # noqa: PLC0415  # on first use: it takes seconds to import

        return anthropic.AsyncAnthropic(
            api_key=self.key or "not-needed-for-a-local-server",
            base_url=self.config.base_url or ANTHROPIC_API,
            max_retries=0,
            timeout=anthropic.Timeout(self.limits.first_token_s, connect=self.limits.connect_s),
        )

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        first: list[float] = []
        decoder = AnthropicDecoder(self.name, self.responder(decision, time.perf_counter(), first))
        try:
            with contextlib.ExitStack() as stack:
                events = self._open(stack, self.params(request, decision))
                for event in events:
                    yield from self._step(decoder, event, first)
                decoder.end()  # the SDK ends a cut stream quietly: message_stop must be there
        except Exception as exc:
            raise self._failure(exc, first) from None

    async def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]:
        """`stream` on this event loop's `AsyncAnthropic`; only the I/O differs. Closing it
        closes the response, so the server sees the disconnect."""
        first: list[float] = []
        decoder = AnthropicDecoder(self.name, self.responder(decision, time.perf_counter(), first))
        try:
            params = self.params(request, decision)
            client = await self.aclient()
            try:
                events = await client.messages.create(**params, stream=True)
            except Exception as exc:
                if not _reused_and_closed(exc):
                    raise
                events = await client.messages.create(**params, stream=True)  # as `_open`
            try:
                async for event in events:
                    for chunk in self._step(decoder, event, first):
                        yield chunk
            finally:
                await events.close()
            decoder.end()
        except Exception as exc:
            raise self._failure(exc, first) from None

    @staticmethod
    def _step(decoder: AnthropicDecoder, event: Any, first: list[float]) -> list[Chunk]:
        chunks = decoder.feed(event.to_dict())
        if chunks and not first:
            first.append(time.perf_counter())
        return chunks

    def _failure(self, exc: Exception, first: list[float]) -> Exception:
        """What an error of the SDK means, as a `BackendError` with its cause."""
        if isinstance(exc, BackendError):
            return exc  # ours, raised before the SDK was needed: a missing key loads none
        import anthropic  # noqa: PLC0415  # loaded with the client
        import httpx2  # noqa: PLC0415  # loaded with the client

        # anthropic 2.x runs on httpx2, whose errors surface raw while a stream is read, and
        # wrapped in APIConnectionError or APITimeoutError (`__cause__`) before it.
        where = self.config.shown_url or ANTHROPIC_API
        underneath = exc.__cause__ if isinstance(exc, anthropic.APIConnectionError) else exc
        if isinstance(underneath, httpx2.ConnectTimeout):
            return BackendError(
                f"{self.name}: cannot reach {where} (no connection within "
                f"{self.limits.connect_s:g}s)",
                cause=Cause.CONNECTION,
            )
        if isinstance(exc, anthropic.APITimeoutError | httpx2.ReadTimeout):
            return timed_out(self.name, first[0] if first else None, self.limits)
        if isinstance(exc, anthropic.APIStatusError):
            return self._status_error(exc)
        if first and isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            # The answer had begun: the connection broke under it (a reset, a cut body).
            return StreamIncomplete(f"{self.name}: the connection broke ({underneath or exc})")
        if isinstance(exc, anthropic.APIConnectionError):
            return BackendError(
                f"{self.name}: cannot reach {where} ({exc})", cause=Cause.CONNECTION
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
        # a key the server quotes back is taken out first (`without_credentials`)
        said = without_credentials(str(inner.get("message") or exc.message), exc.request.headers)
        message = " ".join(said.split())[:200]
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
        try:
            return stack.enter_context(self.client.messages.create(**params, stream=True))
        except Exception as exc:
            if not _reused_and_closed(exc):
                raise
            return stack.enter_context(self.client.messages.create(**params, stream=True))


def _reused_and_closed(exc: Exception) -> bool:
    """Whether sending failed because the server had closed the kept-alive connection it was
    sent on ("Server disconnected without sending a response"): it never reached the server."""
    import anthropic  # noqa: PLC0415  # loaded with the client
    import httpx2  # noqa: PLC0415  # loaded with the client

    return (
        isinstance(exc, anthropic.APIConnectionError)
        and not isinstance(exc, anthropic.APITimeoutError)
        and isinstance(exc.__cause__, httpx2.RemoteProtocolError)
    )
