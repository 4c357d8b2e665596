"""Route by prompt size: short prompts local, long ones to the cloud, all local on battery."""

from __future__ import annotations

import psutil

from devpulse import Classification, Config, ConfigError, Decision, Request, Side, hookimpl

NAME = "custom_policy"
_settings = {"max_local_tokens": 2000}
_sides: dict[Side, tuple[str, str]] = {}


@hookimpl
def configure(config: Config) -> None:
    """Read [plugins.custom_policy] and the default backend and model of each side."""
    table = dict(config.plugins.get(NAME, {}))
    limit = table.pop("max_local_tokens", 2000)
    if table:
        raise ConfigError(f"plugins.{NAME}.{sorted(table)[0]}: unknown key")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError(f"plugins.{NAME}.max_local_tokens: expected a non-negative integer")
    _settings["max_local_tokens"] = limit
    for side in Side:
        default = config.side_default(side)
        _sides[side] = (default.backend, default.model)


def on_battery() -> bool:
    battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    return battery is not None and not battery.power_plugged


@hookimpl
def route(request: Request, classification: Classification) -> Decision:
    tokens = len(request.text()) // 4
    limit = _settings["max_local_tokens"]
    if classification.local_only:
        side, why = Side.LOCAL, "sensitive content stays local"
    elif on_battery():
        side, why = Side.LOCAL, "on battery power"
    elif tokens > limit:
        side, why = Side.CLOUD, f"~{tokens} tokens > {limit}"
    else:
        side, why = Side.LOCAL, f"~{tokens} tokens <= {limit}"
    backend, model = _sides[side]
    return Decision(side=side, backend=backend, model=model, reasons=(f"{NAME}: {why}",))
