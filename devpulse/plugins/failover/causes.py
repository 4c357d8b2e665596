"""Why an attempt failed: what the SDKs and servers raise, mapped to a handful of causes.

The anthropic SDK (2.x, on httpx2) raises its own `APIStatusError` family for HTTP errors,
but faults inside a stream come out raw: httpx2's RemoteProtocolError or ReadTimeout for a
cut or a stall, json.JSONDecodeError for a malformed event, and a base APIStatusError with
`status_code == 200` for an error event inside a 200 stream. Each is recognised here.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import httpx2  # the anthropic SDK's own HTTP library from 2.x on

from devpulse.core.errors import (
    BackendError,
    FirstTokenTimeout,
    StreamIncomplete,
    StreamStalled,
    UnsupportedRequest,
)


class Cause(enum.StrEnum):
    RATE_LIMITED = "rate_limited"
    SPEND_LIMIT = "spend_limit"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    NO_FIRST_TOKEN = "no_first_token"
    STALLED = "stalled"
    STREAM_CUT = "stream_cut"
    MALFORMED_STREAM = "malformed_stream"
    CONTEXT_LENGTH = "context_length"
    CONTENT_POLICY = "content_policy"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    MODEL_NOT_LOADED = "model_not_loaded"
    OUT_OF_MEMORY = "out_of_memory"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    cause: Cause
    retry_after_s: float | None = None

    @property
    def label(self) -> str:
        wait = f", retry after {self.retry_after_s:g}s" if self.retry_after_s is not None else ""
        return f"{self.cause}{wait}"


CONNECTION_ERRORS = (
    anthropic.APIConnectionError,
    httpx.ConnectError,
    httpx2.ConnectError,
    ConnectionError,
)
CUT_ERRORS = (httpx.RemoteProtocolError, httpx2.RemoteProtocolError, StreamIncomplete)
READ_TIMEOUTS = (httpx.ReadTimeout, httpx2.ReadTimeout, anthropic.APITimeoutError)


def diagnose(error: BaseException) -> Diagnosis:
    """The cause of `error`, with the wait the server asked for when it named one."""
    if isinstance(error, FirstTokenTimeout):
        return Diagnosis(Cause.NO_FIRST_TOKEN)
    if isinstance(error, StreamStalled):
        return Diagnosis(Cause.STALLED)
    if isinstance(error, json.JSONDecodeError):
        return Diagnosis(Cause.MALFORMED_STREAM)
    if isinstance(error, CUT_ERRORS):
        return Diagnosis(Cause.STREAM_CUT)
    if isinstance(error, anthropic.APIStatusError):
        return _status(error.status_code, _error_text(error.body), error.response)
    if isinstance(error, READ_TIMEOUTS):
        return Diagnosis(Cause.TIMEOUT)
    if isinstance(error, CONNECTION_ERRORS):
        return Diagnosis(Cause.CONNECTION)
    if isinstance(error, UnsupportedRequest):
        return Diagnosis(Cause.BAD_REQUEST)
    if isinstance(error, BackendError):
        return _backend_error(str(error).lower())
    return Diagnosis(Cause.UNKNOWN)


def _backend_error(text: str) -> Diagnosis:
    """DevPulse's own backend errors (openai_compat, ollama) carry the cause in their text."""
    if "nothing answers" in text or "connect" in text:
        return Diagnosis(Cause.CONNECTION)
    if "out of memory" in text or "failed to allocate" in text:
        return Diagnosis(Cause.OUT_OF_MEMORY)
    if "not found" in text and "model" in text:
        return Diagnosis(Cause.MODEL_NOT_LOADED)
    status = _http_status(text)
    return _status(status, text, None) if status is not None else Diagnosis(Cause.UNKNOWN)


def _status(status: int, text: str, response: Any) -> Diagnosis:
    if status == 429:
        if "spend" in text and "limit" in text:
            return Diagnosis(Cause.SPEND_LIMIT)
        return Diagnosis(Cause.RATE_LIMITED, _retry_after(response))
    if status == 529 or "overloaded" in text:
        return Diagnosis(Cause.OVERLOADED, _retry_after(response))
    if status in (401, 403):
        return Diagnosis(Cause.AUTH)
    if status in {400, 413}:
        if "context" in text or "too long" in text or "prompt is too long" in text:
            return Diagnosis(Cause.CONTEXT_LENGTH)
        if "policy" in text or "safety" in text or "harm" in text:
            return Diagnosis(Cause.CONTENT_POLICY)
        return Diagnosis(Cause.BAD_REQUEST)
    if status == 404 and "model" in text:
        return Diagnosis(Cause.MODEL_NOT_LOADED)
    if status >= 500:
        if "out of memory" in text:
            return Diagnosis(Cause.OUT_OF_MEMORY)
        return Diagnosis(Cause.SERVER_ERROR, _retry_after(response))
    return Diagnosis(Cause.UNKNOWN)


def _error_text(body: object) -> str:
    """The error's type, code and message, lower-cased, from an Anthropic error body."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return " ".join(
                str(inner.get(k, "")) for k in ("type", "error_code", "message")
            ).lower()
    return str(body or "").lower()


def _retry_after(response: Any) -> float | None:
    """retry-after-ms, else retry-after (seconds), from the response headers."""
    headers = getattr(response, "headers", None)
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


def _http_status(text: str) -> int | None:
    marker = text.find("http ")
    if marker < 0:
        return None
    digits = text[marker + 5 : marker + 8]
    return int(digits) if digits.isdigit() else None
