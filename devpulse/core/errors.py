"""Errors DevPulse raises on purpose; each carries the exit code the CLI turns it into."""

from __future__ import annotations

from devpulse.core.exitcodes import ExitCode


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
    """A backend could not answer: unreachable, refused, or sent something unusable."""


class UnsupportedRequest(BackendError):
    """The request asks for something the backend cannot do (images to a text-only server)."""


class StreamIncomplete(BackendError):
    """A stream ended before its terminating event: the answer may be cut short."""


class FirstTokenTimeout(BackendError):
    """The backend accepted the request but sent no token within the time limit."""


class StreamStalled(BackendError):
    """The backend stopped sending in the middle of an answer for longer than the limit."""


class BudgetExhausted(DevPulseError):
    """The request's overall time budget ran out before any backend answered."""


class DispatchFailed(DevPulseError):
    """The request got no answer; `attempts` lists each backend tried and how it failed."""

    def __init__(self, message: str, attempts: list[str]) -> None:
        super().__init__(message)
        self.attempts = attempts
