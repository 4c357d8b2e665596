"""Library logging: structlog's key-value API over the standard library's loggers.

DevPulse never configures output and never writes to stdout: each event goes to
``logging.getLogger("devpulse....")``, so the application embedding DevPulse decides where
lines go (unconfigured, Python prints warnings and above to stderr). The event name and
its values are kept apart on the record (`record.devpulse_event`, `record.devpulse_fields`)
for handlers that want them structured; the message itself reads ``event key=value ...``.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog


def get_logger(name: str) -> Any:
    """A structlog logger for module `name` that emits through stdlib logging."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[_to_stdlib],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def _to_stdlib(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    event = str(event_dict.pop("event", ""))
    fields = dict(event_dict)
    message = " ".join([event, *(f"{k}={v}" for k, v in fields.items())])
    return {"msg": message, "extra": {"devpulse_event": event, "devpulse_fields": fields}}
