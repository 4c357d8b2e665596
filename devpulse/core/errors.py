"""Errors DevPulse raises on purpose; each carries the exit code the CLI turns it into."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from devpulse.core.exitcodes import ExitCode


class Cause(enum.StrEnum):
    """Why a backend could not answer; the failover policy acts on this, never on message text."""

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
    NO_CREDENTIALS = "no_credentials"  # no key configured here: that side is not set up
    BAD_REQUEST = "bad_request"
    MODEL_NOT_LOADED = "model_not_loaded"
    OUT_OF_MEMORY = "out_of_memory"
    CIRCUIT_OPEN = "circuit_open"
    UNKNOWN = "unknown"


# Causes that say the caller asked for something no retry can fix: the caller must hear
# about them, and they say nothing about the backend's health (the breaker ignores them).
CALLER_ERRORS = frozenset(
    {
        Cause.BAD_REQUEST,
        Cause.AUTH,
        Cause.NO_CREDENTIALS,
        Cause.CONTENT_POLICY,
        Cause.CONTEXT_LENGTH,
    }
)


class DevPulseError(Exception):
    """Base class: a clear, one-line explanation of what went wrong."""

    exit_code: ExitCode = ExitCode.PROBLEM


class ConfigError(DevPulseError):
    """The configuration file or a setting is invalid; the message names the key."""

    exit_code = ExitCode.USAGE


class RoutingError(DevPulseError):
    """No `route` implementation produced a decision."""


class PrivacyBlocked(DevPulseError):
    """A local-only request was about to reach a backend marked cloud, and was stopped."""


class PreflightRefused(DevPulseError):
    """A preflight check refused the decision and offered nowhere else to go."""


class NoBackend(DevPulseError):
    """No `dispatch` implementation owns the backend a decision names."""


class BackendError(DevPulseError):
    """A backend could not answer: unreachable, refused, or sent something unusable.

    Backends fill in what they know, so the failover policy reads fields, not text:
    `cause`, the HTTP `status`, the `retry_after_s` the server asked for, and the provider's
    own error type (`provider_type`, such as Anthropic's ``overloaded_error``).
    """

    cause: Cause = Cause.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        cause: Cause | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        provider_type: str | None = None,
    ) -> None:
        super().__init__(message)
        if cause is not None:
            self.cause = cause
        self.status = status
        self.retry_after_s = retry_after_s
        self.provider_type = provider_type


class UnsupportedRequest(BackendError):
    """The request asks for something the backend cannot do (images to a text-only server)."""

    cause = Cause.BAD_REQUEST


class StreamIncomplete(BackendError):
    """A stream ended before its terminating event: the answer may be cut short."""

    cause = Cause.STREAM_CUT


class FirstTokenTimeout(BackendError):
    """The backend accepted the request but sent no token within the time limit."""

    cause = Cause.NO_FIRST_TOKEN


class StreamStalled(BackendError):
    """The backend stopped sending in the middle of an answer for longer than the limit."""

    cause = Cause.STALLED


class CircuitOpen(BackendError):
    """The backend's circuit breaker is open: it failed repeatedly and is being left alone."""

    cause = Cause.CIRCUIT_OPEN


class BudgetExhausted(DevPulseError):
    """The request's overall time budget ran out before any backend answered."""


class Cancelled(DevPulseError):
    """The caller cancelled the request; the attempt in flight was stopped."""


class DispatchFailed(DevPulseError):
    """The request got no answer; `attempts` lists each backend tried and how it failed."""

    def __init__(self, message: str, attempts: list[str]) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Why an attempt failed, and how long the server asked us to wait, if it said."""

    cause: Cause
    retry_after_s: float | None = None

    @property
    def label(self) -> str:
        wait = f", retry after {self.retry_after_s:g}s" if self.retry_after_s is not None else ""
        return f"{self.cause}{wait}"


# Exception types of the HTTP libraries third-party backends are built on, by name, so that
# diagnosing an error never imports them.
_HTTP_LIBRARIES = ("httpx", "httpx2", "httpcore", "requests", "urllib3", "aiohttp")
_BY_TYPE_NAME = {
    "ConnectError": Cause.CONNECTION,
    "ConnectTimeout": Cause.CONNECTION,
    "RemoteProtocolError": Cause.STREAM_CUT,
    "ReadError": Cause.STREAM_CUT,
    "ChunkedEncodingError": Cause.STREAM_CUT,
    "ReadTimeout": Cause.TIMEOUT,
    "PoolTimeout": Cause.TIMEOUT,
    "WriteTimeout": Cause.TIMEOUT,
}


def diagnose(error: BaseException) -> Diagnosis:
    """The cause of `error`: what the backend said it was, else what the error's type says.

    The bundled backends raise `BackendError` with the cause, status and retry-after filled
    in from the provider's response; exceptions from other backends are read by type only,
    never by their message text.
    """
    if isinstance(error, BackendError):
        return Diagnosis(error.cause, error.retry_after_s)
    if isinstance(error, json.JSONDecodeError):
        return Diagnosis(Cause.MALFORMED_STREAM)
    if isinstance(error, TimeoutError):
        return Diagnosis(Cause.TIMEOUT)
    if isinstance(error, ConnectionError):
        return Diagnosis(Cause.CONNECTION)
    for cls in type(error).__mro__:
        if cls.__module__.split(".")[0] in _HTTP_LIBRARIES and cls.__name__ in _BY_TYPE_NAME:
            return Diagnosis(_BY_TYPE_NAME[cls.__name__])
    return Diagnosis(Cause.UNKNOWN)
