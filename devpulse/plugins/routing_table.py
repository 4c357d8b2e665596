"""The bundled routing policy: a table from task class to side, backend and model."""

from __future__ import annotations

from devpulse.core.config import Config
from devpulse.core.types import Classification, Decision, Request, Side
from devpulse.hookspecs import hookimpl


class RoutingTable:
    """Route by task class; local-only requests always go to the local side.

    Registered ``trylast``: any other `route` implementation pre-empts it.
    """

    loop_safe = True  # a table lookup: the async path may route on its loop

    def __init__(self, config: Config) -> None:
        self._config = config

    @hookimpl(trylast=True)
    def route(self, request: Request, classification: Classification) -> Decision:
        task = classification.task_class
        target = self._config.routing[task]
        reasons = [f"task class {task} ({classification.task_rule}) -> {target.side}"]
        side = target.side
        if classification.local_only:
            rules = sorted({f.rule_id for f in classification.findings})
            reasons.append(
                f"privacy level {classification.privacy_level.label} is local-only"
                + (f" ({', '.join(rules)})" if rules else "")
                + " -> local"
            )
            side = Side.LOCAL
        default = self._config.side_default(side)
        use_target = side is target.side
        backend = (target.backend if use_target else None) or default.backend
        model = (target.model if use_target else None) or default.model
        return Decision(side=side, backend=backend, model=model, reasons=tuple(reasons))
