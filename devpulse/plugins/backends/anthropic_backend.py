"""Anthropic's Messages API through the real `anthropic` SDK (or any compatible server).

`max_retries=0`: DevPulse owns retries and failover. The key comes from the environment
variable the config names, never from the config file itself.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2

from devpulse.core.config import BackendConfig
from devpulse.core.errors import BackendError, StreamIncomplete
from devpulse.core.types import Chunk, Decision, Request, Response
from devpulse.plugins.backends.base import Backend, Limits, system_and_turns, timed_out

# anthropic 2.x runs on httpx2, whose timeouts surface raw while a stream is read.
READ_TIMEOUTS = (anthropic.APITimeoutError, httpx2.ReadTimeout)

ANTHROPIC_API = "https://api.anthropic.com"


class AnthropicBackend(Backend):
    accepts_images = True

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        super().__init__(name, config, limits)
        self.key = os.environ.get(config.api_key_env) if config.api_key_env else None
        official = (config.base_url or ANTHROPIC_API).rstrip("/") == ANTHROPIC_API
        self.missing_key = official and not self.key

    def make_client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            api_key=self.key or "not-needed-for-a-local-server",
            base_url=self.config.base_url or ANTHROPIC_API,
            max_retries=0,
            timeout=anthropic.Timeout(self.limits.read_s, connect=self.limits.connect_s),
        )

    def params(self, request: Request, decision: Decision) -> dict[str, Any]:
        if self.missing_key:
            raise BackendError(
                f"{self.name}: no API key (set {self.config.api_key_env} in the environment)"
            )
        system, turns = system_and_turns(request)
        messages = []
        for m in turns:
            if m.images:
                blocks: list[dict[str, Any]] = [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": i.media_type, "data": i.data},
                    }
                    for i in m.images
                ]
                messages.append(
                    {"role": m.role, "content": [*blocks, {"type": "text", "text": m.content}]}
                )
            else:
                messages.append({"role": m.role, "content": m.content})
        params: dict[str, Any] = {
            "model": decision.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if system:
            params["system"] = system
        if request.tools:
            params["tools"] = [dict(t) for t in request.tools]
        return params

    def complete(self, request: Request, decision: Decision) -> Response:
        """Streamed underneath, so a silent server is caught by the first-token limit rather
        than by a read timeout that must also allow for a long generation."""
        for chunk in self.stream(request, decision):
            if chunk.response is not None:
                return chunk.response
        raise StreamIncomplete(f"{self.name}: no final message")  # pragma: no cover

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        started = time.perf_counter()
        first: float | None = None
        stopped = False
        try:
            with contextlib.ExitStack() as stack:
                events = self._open(stack, self.params(request, decision))
                for event in events:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        first = first or time.perf_counter()
                        yield Chunk(event.delta.text)
                    elif event.type == "message_stop":
                        stopped = True
                if not stopped:  # the SDK reports end_turn even for a cut stream
                    raise StreamIncomplete(f"{self.name}: the stream ended without message_stop")
                message = events.get_final_message()
        except READ_TIMEOUTS as exc:
            raise timed_out(self.name, first, self.limits.read_s, exc) from exc
        yield Chunk("", self._response(decision, started, message, first))

    def _open(self, stack: contextlib.ExitStack[Any], params: dict[str, Any]) -> Any:
        """Send the request; once more at once if a kept-alive connection turned out closed.

        A server may close an idle keep-alive connection just as it is reused ("Server
        disconnected without sending a response"): the request never reached it, so this is
        no failure of the backend and not worth a failover.
        """
        try:
            return stack.enter_context(self.client.messages.stream(**params))
        except anthropic.APIConnectionError as exc:
            if not isinstance(exc.__cause__, httpx2.RemoteProtocolError):
                raise
            return stack.enter_context(self.client.messages.stream(**params))

    def _response(
        self, decision: Decision, started: float, message: Any, first: float | None
    ) -> Response:
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = tuple(
            {"name": b.name, "arguments": b.input, "id": b.id}
            for b in message.content
            if b.type == "tool_use"
        )
        return self.response(
            decision,
            started,
            text=text,
            model=message.model,
            first_token=first,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            stop_reason=message.stop_reason,
            tool_calls=calls,
        )
