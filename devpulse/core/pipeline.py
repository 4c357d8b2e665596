"""The Router: classify -> route -> preflight -> dispatch, with on_failure between attempts.

The privacy partition is enforced here, in the core, immediately before every dispatch:
no plugin can send a local-only request to a backend marked cloud.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pluggy
import structlog

from devpulse.core.config import Config, load_config
from devpulse.core.errors import (
    DevPulseError,
    DispatchFailed,
    NoBackend,
    PreflightRefused,
    PrivacyBlocked,
    RoutingError,
)
from devpulse.core.plugins import make_plugin_manager
from devpulse.core.types import (
    Chunk,
    Classification,
    Decision,
    Labels,
    PrivacyLevel,
    Request,
    Response,
    Side,
    Verdict,
)

log = structlog.get_logger(__name__)


class Router:
    """Route requests to the right side and answer them through the installed plugins.

    Build one per process and reuse it. `plugin_manager` defaults to a fresh one with the
    bundled plugins and installed entry points (see `make_plugin_manager`).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
    ) -> None:
        self.config = config if config is not None else load_config()
        self.pm = plugin_manager or make_plugin_manager(self.config)

    def classify(self, request: Request) -> Classification:
        """Run every classifier and merge their labels; the highest privacy level wins."""
        labels: list[Labels] = [
            lab for lab in self.pm.hook.classify(request=request) if lab is not None
        ]
        levels = [lab.privacy_level for lab in labels if lab.privacy_level is not None]
        findings = tuple(f for lab in labels for f in lab.findings)
        level = max([*levels, *(f.level for f in findings)], default=PrivacyLevel.PUBLIC)
        if request.task is not None:
            task, rule = request.task, "explicit"
        else:
            named = next((lab for lab in labels if lab.task_class is not None), None)
            if named is not None and named.task_class is not None:
                task, rule = named.task_class, named.rule or "unnamed rule"
            else:
                task, rule = self.config.classify.default_task, "no classifier named one"
        return Classification(
            task_class=task,
            task_rule=rule,
            privacy_level=level,
            local_only=level >= self.config.privacy.local_only_at,
            findings=findings,
            reasons=tuple(r for lab in labels for r in lab.reasons),
        )

    def route(self, request: Request | str, **kwargs: Any) -> Decision:
        """Decide where a request goes (classify, route, preflight) without sending it."""
        request = as_request(request, **kwargs)
        classification = self.classify(request)
        decision: Decision | None = self.pm.hook.route(
            request=request, classification=classification
        )
        if decision is None:
            raise RoutingError("no route plugin returned a decision")
        decision = dataclasses.replace(decision, classification=classification)
        self.enforce_privacy(decision)
        verdict: Verdict | None = self.pm.hook.preflight(request=request, decision=decision)
        if verdict is None:
            return decision
        if verdict.action == "refuse" or verdict.decision is None:
            raise PreflightRefused(f"preflight refused {decision.backend}: {verdict.reason}")
        rerouted = dataclasses.replace(
            verdict.decision,
            reasons=(*decision.reasons, verdict.reason, *verdict.decision.reasons),
            classification=classification,
            verdict=verdict,
        )
        self.enforce_privacy(rerouted)
        return rerouted

    def enforce_privacy(self, decision: Decision) -> None:
        """Raise `PrivacyBlocked` if `decision` would send local-only work off this machine.

        A backend counts as local only when the config declares it ``side = "local"`` and the
        decision agrees; anything cloud or undeclared is refused for local-only requests.
        """
        classification = decision.classification
        if classification is None:
            raise RoutingError("decision carries no classification; build it with Router")
        if not classification.local_only:
            return
        declared = self.config.backend_side(decision.backend)
        if decision.side is Side.LOCAL and declared is Side.LOCAL:
            return
        rules = sorted({f.rule_id for f in classification.findings})
        raise PrivacyBlocked(
            f"refused to send a {classification.privacy_level.label} request to "
            f"{decision.backend!r} ({declared or 'undeclared'} backend): requests at or above "
            f"{self.config.privacy.local_only_at.label} stay local"
            + (f" [{', '.join(rules)}]" if rules else "")
        )

    def invoke(self, request: Request | str, **kwargs: Any) -> Response:
        """Answer a request, failing over through `on_failure` as plugins decide."""
        for chunk in self._attempts(as_request(request, **kwargs)):
            if chunk.response is not None:
                return chunk.response
        raise DispatchFailed("the backend's stream ended without a complete response", [])

    async def ainvoke(self, request: Request | str, **kwargs: Any) -> Response:
        """`invoke` for async callers; runs the blocking pipeline in a worker thread."""
        return await asyncio.to_thread(self.invoke, request, **kwargs)

    def stream(self, request: Request | str, **kwargs: Any) -> Iterator[Chunk]:
        """Answer a request as chunks; the last chunk carries the complete `Response`."""
        request = dataclasses.replace(as_request(request, **kwargs), stream=True)
        yield from self._attempts(request)

    def _attempts(self, request: Request) -> Iterator[Chunk]:
        decision = self.route(request)
        tried: list[str] = []
        for attempt in range(1, self.config.failover.max_attempts + 1):
            self.enforce_privacy(decision)
            delivered = False
            try:
                for chunk in self._dispatch(request, decision):
                    delivered = True
                    yield chunk
            except PrivacyBlocked:
                raise
            except Exception as exc:
                if delivered:  # never splice a second answer onto a cut one
                    raise DispatchFailed(
                        f"{decision.backend} stream broke mid-answer: {_describe(exc)}",
                        [*tried, f"{decision.backend}/{decision.model}: {_describe(exc)}"],
                    ) from exc
                tried.append(f"{decision.backend}/{decision.model}: {_describe(exc)}")
                log.warning(
                    "dispatch.failed",
                    backend=decision.backend,
                    attempt=attempt,
                    error=type(exc).__name__,
                )
                following = None
                if attempt < self.config.failover.max_attempts:
                    following = self.pm.hook.on_failure(
                        request=request, decision=decision, error=exc, attempt=attempt
                    )
                if following is None:
                    if len(tried) == 1 and isinstance(exc, DevPulseError):
                        raise
                    raise DispatchFailed(
                        f"no answer after {len(tried)} attempt(s): {'; '.join(tried)}", tried
                    ) from exc
                decision = dataclasses.replace(following, classification=decision.classification)
            else:
                return

    def _dispatch(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        answer = self.pm.hook.dispatch(request=request, decision=decision)
        if answer is None:
            raise NoBackend(
                f"no backend plugin owns {decision.backend!r} "
                f"(model {decision.model!r}); install or enable one"
            )
        if isinstance(answer, Response):
            yield Chunk(text=answer.text, response=answer)
        else:
            yield from answer


def as_request(request: Request | str, **kwargs: Any) -> Request:
    """Accept a bare prompt wherever a `Request` is expected."""
    if isinstance(request, Request):
        return dataclasses.replace(request, **kwargs) if kwargs else request
    return Request.from_prompt(request, **kwargs)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
