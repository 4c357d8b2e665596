"""What every backend shares: owning its decisions, timing answers, building responses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from devpulse.core.config import BackendConfig, FailoverConfig
from devpulse.core.errors import BackendError, FirstTokenTimeout, StreamStalled, UnsupportedRequest
from devpulse.core.types import Chunk, Decision, Request, Response, Usage
from devpulse.hookspecs import hookimpl


@dataclass(frozen=True, slots=True)
class Limits:
    """Seconds to connect, and for each read: the first token and every gap after it."""

    connect_s: float = 3.0
    read_s: float = 120.0

    @classmethod
    def for_backend(cls, config: BackendConfig, failover: FailoverConfig | None = None) -> Limits:
        if config.timeout_s is not None:
            read = config.timeout_s
        elif failover is not None:
            read = (
                failover.cloud_timeout_s
                if config.side.value == "cloud"
                else failover.local_timeout_s
            )
        else:
            read = 120.0
        connect = failover.connect_timeout_s if failover is not None else 3.0
        return cls(connect_s=min(connect, read), read_s=read)


def timed_out(name: str, first: float | None, limit: float, error: BaseException) -> BackendError:
    """A read timeout, named for what it means: no first token, or a stall mid-answer."""
    if first is None:
        return FirstTokenTimeout(f"{name}: no first token within {limit:g}s")
    return StreamStalled(f"{name}: the stream stalled for more than {limit:g}s")


class Backend:
    """A `dispatch` plugin for one configured backend; it answers only decisions naming it.

    Subclasses implement `complete` and `stream`; clients are built once and reused, and
    are safe to share between threads.
    """

    accepts_images = False

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        self.name = name
        self.config = config
        self.limits = limits or Limits.for_backend(config)
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (most commands never dispatch) and then shared."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.make_client()
        return self._client

    def make_client(self) -> Any:
        raise NotImplementedError

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response | Iterator[Chunk] | None:
        if decision.backend != self.name:
            return None
        if request.has_images and not (self.accepts_images and self.config.images):
            raise UnsupportedRequest(
                f"backend {self.name!r} does not accept images (backends.{self.name}.images)"
            )
        if request.stream:
            return self.stream(request, decision)
        return self.complete(request, decision)

    def complete(self, request: Request, decision: Decision) -> Response:
        raise NotImplementedError

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        raise NotImplementedError

    def response(
        self,
        decision: Decision,
        started: float,
        *,
        text: str,
        model: str | None,
        input_tokens: int,
        output_tokens: int,
        first_token: float | None = None,
        stop_reason: str | None = None,
        tool_calls: tuple[dict[str, Any], ...] = (),
    ) -> Response:
        now = time.perf_counter()
        return Response(
            text=text,
            model=model or decision.model,
            backend=self.name,
            side=decision.side,
            usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            latency_s=now - started,
            first_token_s=(first_token - started) if first_token is not None else None,
            stop_reason=stop_reason,
            tool_calls=tool_calls,
        )


def function_tools(request: Request) -> list[dict[str, Any]]:
    """Tool definitions (Anthropic's shape) as OpenAI/Ollama function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t.get("input_schema", {"type": "object"}),
            },
        }
        for t in request.tools
    ]


def system_and_turns(request: Request) -> tuple[str | None, list[Any]]:
    """System messages joined apart; the rest as they are."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system") or None
    return system, [m for m in request.messages if m.role != "system"]
