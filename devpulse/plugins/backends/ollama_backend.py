"""Ollama through the real `ollama` client: chat, streaming, keep_alive, token counts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import ollama

from devpulse.core.errors import BackendError, StreamIncomplete
from devpulse.core.types import Chunk, Decision, Request, Response
from devpulse.plugins.backends.base import Backend, function_tools


class OllamaBackend(Backend):
    accepts_images = True

    def make_client(self) -> ollama.Client:
        timeout = httpx.Timeout(self.limits.read_s, connect=self.limits.connect_s)
        return ollama.Client(host=self.config.base_url, timeout=timeout)

    def params(self, request: Request, decision: Decision, stream: bool) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            entry: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.images:
                entry["images"] = [i.data for i in m.images]
            messages.append(entry)
        params: dict[str, Any] = {
            "model": decision.model,
            "messages": messages,
            "stream": stream,
            "options": {"num_predict": request.max_tokens},
        }
        if self.config.keep_alive is not None:
            params["keep_alive"] = self.config.keep_alive
        if request.tools:
            params["tools"] = function_tools(request)
        return params

    def complete(self, request: Request, decision: Decision) -> Response:
        started = time.perf_counter()
        try:
            reply = self.client.chat(**self.params(request, decision, stream=False))
        except ollama.ResponseError as exc:
            raise BackendError(f"{self.name}: {exc.error} (HTTP {exc.status_code})") from exc
        calls = tuple(
            {"name": c.function.name, "arguments": dict(c.function.arguments)}
            for c in reply.message.tool_calls or ()
        )
        return self.response(
            decision,
            started,
            text=reply.message.content or "",
            model=reply.model,
            input_tokens=reply.prompt_eval_count or 0,
            output_tokens=reply.eval_count or 0,
            stop_reason=reply.done_reason,
            tool_calls=calls,
        )

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        try:
            for part in self.client.chat(**self.params(request, decision, stream=True)):
                text = part.message.content or ""
                if text:
                    first = first or time.perf_counter()
                    parts.append(text)
                    yield Chunk(text)
                if part.done:
                    yield Chunk(
                        "",
                        self.response(
                            decision,
                            started,
                            text="".join(parts),
                            model=part.model,
                            first_token=first,
                            input_tokens=part.prompt_eval_count or 0,
                            output_tokens=part.eval_count or 0,
                            stop_reason=part.done_reason,
                        ),
                    )
                    return
        except ollama.ResponseError as exc:
            raise BackendError(f"{self.name}: {exc.error} (HTTP {exc.status_code})") from exc
        raise StreamIncomplete(f"{self.name}: the stream ended before done")
