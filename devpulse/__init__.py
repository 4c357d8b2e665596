"""DevPulse: route each LLM request to the right side of a hybrid local/cloud stack."""

from importlib.metadata import PackageNotFoundError, version

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
    Labels,
    LoadedModel,
    Message,
    PrivacyLevel,
    Request,
    Response,
    Side,
    TaskClass,
    Usage,
    Verdict,
)
from devpulse.hookspecs import hookimpl
from devpulse.plugins.babysit import Babysitter

try:
    __version__ = version("devpulse")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
    "UnsupportedRequest",
    "Usage",
    "Verdict",
    "__version__",
    "config_from_mapping",
    "hookimpl",
    "load_config",
    "make_plugin_manager",
]
