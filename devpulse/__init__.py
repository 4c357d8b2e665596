"""DevPulse: route each LLM request to the right side of a hybrid local/cloud stack.

The public API is imported on first use (PEP 562), so `devpulse --version` and the short
commands load only what they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devpulse.core.config import Config, config_from_mapping, load_config
    from devpulse.core.errors import (
        BackendError,
        BudgetExhausted,
        Cancelled,
        Cause,
        CircuitOpen,
        ConfigError,
        DevPulseError,
        DispatchFailed,
        FirstTokenTimeout,
        NoBackend,
        PreflightRefused,
        PrivacyBlocked,
        RoutingError,
        StreamIncomplete,
        StreamStalled,
        UnsupportedRequest,
    )
    from devpulse.core.exitcodes import ExitCode
    from devpulse.core.ledger import Ledger
    from devpulse.core.pipeline import Router
    from devpulse.core.plugins import make_plugin_manager
    from devpulse.core.types import (
        Chunk,
        Classification,
        Decision,
        DeviceMemory,
        Finding,
        Image,
        ImageBlock,
        Labels,
        LoadedModel,
        Message,
        PrivacyLevel,
        Request,
        Response,
        Side,
        TaskClass,
        TextBlock,
        ThinkingBlock,
        Tool,
        ToolChoice,
        ToolResultBlock,
        ToolUseBlock,
        Usage,
        Verdict,
    )
    from devpulse.hookspecs import hookimpl
    from devpulse.plugins.babysit import Babysitter

    __version__: str

# Where each public name lives; `__getattr__` imports it from there on first use.
_HOMES = {
    "devpulse.core.config": ("Config", "config_from_mapping", "load_config"),
    "devpulse.core.errors": (
        "BackendError",
        "BudgetExhausted",
        "Cancelled",
        "Cause",
        "CircuitOpen",
        "ConfigError",
        "DevPulseError",
        "DispatchFailed",
        "FirstTokenTimeout",
        "NoBackend",
        "PreflightRefused",
        "PrivacyBlocked",
        "RoutingError",
        "StreamIncomplete",
        "StreamStalled",
        "UnsupportedRequest",
    ),
    "devpulse.core.exitcodes": ("ExitCode",),
    "devpulse.core.ledger": ("Ledger",),
    "devpulse.core.pipeline": ("Router",),
    "devpulse.core.plugins": ("make_plugin_manager",),
    "devpulse.core.types": (
        "Chunk",
        "Classification",
        "Decision",
        "DeviceMemory",
        "Finding",
        "Image",
        "ImageBlock",
        "Labels",
        "LoadedModel",
        "Message",
        "PrivacyLevel",
        "Request",
        "Response",
        "Side",
        "TaskClass",
        "TextBlock",
        "ThinkingBlock",
        "Tool",
        "ToolChoice",
        "ToolResultBlock",
        "ToolUseBlock",
        "Usage",
        "Verdict",
    ),
    "devpulse.hookspecs": ("hookimpl",),
    "devpulse.plugins.babysit": ("Babysitter",),
}
_EXPORTS = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "Babysitter",
    "BackendError",
    "BudgetExhausted",
    "Cancelled",
    "Cause",
    "Chunk",
    "CircuitOpen",
    "Classification",
    "Config",
    "ConfigError",
    "Decision",
    "DevPulseError",
    "DeviceMemory",
    "DispatchFailed",
    "ExitCode",
    "Finding",
    "FirstTokenTimeout",
    "Image",
    "ImageBlock",
    "Labels",
    "Ledger",
    "LoadedModel",
    "Message",
    "NoBackend",
    "PreflightRefused",
    "PrivacyBlocked",
    "PrivacyLevel",
    "Request",
    "Response",
    "Router",
    "RoutingError",
    "Side",
    "StreamIncomplete",
    "StreamStalled",
    "TaskClass",
    "TextBlock",
    "ThinkingBlock",
    "Tool",
    "ToolChoice",
    "ToolResultBlock",
    "ToolUseBlock",
    "UnsupportedRequest",
    "Usage",
    "Verdict",
    "__version__",
    "config_from_mapping",
    "hookimpl",
    "load_config",
    "make_plugin_manager",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it."""
    if name == "__version__":
        value: Any = _version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415  # when asked

    try:
        return version("devpulse")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
