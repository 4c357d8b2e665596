"""OpenAI-compatible local servers: llama-server, LM Studio, vLLM (`/v1/chat/completions`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx

from devpulse.core.config import BackendConfig
from devpulse.core.errors import BackendError, StreamIncomplete
from devpulse.core.types import Chunk, Decision, Request, Response
from devpulse.plugins.backends.base import Backend, Limits, function_tools, timed_out


class OpenAICompatBackend(Backend):
    accepts_images = True

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        super().__init__(name, config, limits)
        self.url = f"{(config.base_url or '').rstrip('/')}/chat/completions"

    def make_client(self) -> httpx.Client:
        timeout = httpx.Timeout(self.limits.read_s, connect=self.limits.connect_s)
        env = self.config.api_key_env
        key = os.environ.get(env) if env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(timeout=timeout, headers=headers)

    def body(self, request: Request, decision: Decision, stream: bool) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            if m.images:
                parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}]
                parts += [
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:{i.media_type};base64,{i.data}"},
                    }
                    for i in m.images
                ]
                messages.append({"role": m.role, "content": parts})
            else:
                messages.append({"role": m.role, "content": m.content})
        body: dict[str, Any] = {
            "model": decision.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if request.tools:
            body["tools"] = function_tools(request)
        return body

    def complete(self, request: Request, decision: Decision) -> Response:
        started = time.perf_counter()
        try:
            reply = self.client.post(self.url, json=self.body(request, decision, stream=False))
        except httpx.ConnectError as exc:
            raise BackendError(f"{self.name}: nothing answers at {self.url} ({exc})") from exc
        _raise_for_status(self.name, reply)
        data = reply.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        calls = tuple(
            {"name": c["function"]["name"], "arguments": c["function"].get("arguments")}
            for c in choice["message"].get("tool_calls") or ()
        )
        return self.response(
            decision,
            started,
            text=choice["message"].get("content") or "",
            model=data.get("model"),
            input_tokens=usage.get("prompt_tokens", 0),
            output_tokens=usage.get("completion_tokens", 0),
            stop_reason=choice.get("finish_reason"),
            tool_calls=calls,
        )

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        first: list[float] = []
        try:
            yield from self._stream(request, decision, first)
        except httpx.ReadTimeout as exc:
            raise timed_out(
                self.name, first[0] if first else None, self.limits.read_s, exc
            ) from exc

    def _stream(
        self, request: Request, decision: Decision, first_token: list[float]
    ) -> Iterator[Chunk]:
        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        usage: dict[str, int] = {}
        finish = model = None
        done = False
        body = self.body(request, decision, stream=True)
        with self.client.stream("POST", self.url, json=body) as reply:
            if reply.status_code >= 400:
                reply.read()
                _raise_for_status(self.name, reply)
            for line in reply.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    break
                event = json.loads(payload)
                model = event.get("model") or model
                usage = event.get("usage") or usage
                for choice in event.get("choices") or ():
                    finish = choice.get("finish_reason") or finish
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        if first is None:
                            first = time.perf_counter()
                            first_token.append(first)
                        parts.append(text)
                        yield Chunk(text)
        if not done:
            raise StreamIncomplete(f"{self.name}: the stream ended without [DONE]")
        yield Chunk(
            "",
            self.response(
                decision,
                started,
                text="".join(parts),
                model=model,
                first_token=first,
                input_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
                stop_reason=finish,
            ),
        )


def _raise_for_status(name: str, reply: httpx.Response) -> None:
    if reply.status_code >= 400:
        detail = reply.text[:200].replace("\n", " ")
        raise BackendError(f"{name} answered HTTP {reply.status_code}: {detail}")
