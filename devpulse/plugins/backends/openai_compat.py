"""OpenAI-compatible APIs (`/v1/chat/completions`): local servers (llama-server, LM Studio,
vLLM) and, with ``side = "cloud"`` and ``api_key_env``, hosted ones (OpenAI, OpenRouter).

Every request streams (`stream: true`), so the core's first-token and stall limits apply to
local generation as to the cloud. Errors carry the HTTP status, the server's error type
(llama-server: ``exceed_context_size_error``; OpenAI: ``context_length_exceeded``) and its
Retry-After.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from devpulse.core.config import BackendConfig, Limits
from devpulse.core.errors import BackendError, Cause, StreamIncomplete
from devpulse.core.types import Chunk, Decision, LoadedModel, Request, Side
from devpulse.plugins.backends import llama_host
from devpulse.plugins.backends.base import (
    Backend,
    cause_for_status,
    context_error,
    function_tools,
    retry_after,
    timed_out,
)

if TYPE_CHECKING:
    import httpx

CONTEXT_TYPES = {"exceed_context_size_error", "context_length_exceeded"}


class OpenAICompatBackend(Backend):
    accepts_images = True

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        super().__init__(name, config, limits)
        self.url = f"{(config.base_url or '').rstrip('/')}/chat/completions"

    def make_client(self) -> httpx.Client:
        import httpx  # noqa: PLC0415  # on first use, not at start-up

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return httpx.Client(timeout=timeout, headers=self.auth_headers())

    def auth_headers(self) -> dict[str, str]:
        """The bearer key from `api_key_env`, read now and never kept anywhere else.

        A cloud API (OpenAI, OpenRouter) without its key fails before anything is sent, as
        a backend this machine has not set up (the work fails over); a local server usually
        needs none.
        """
        env = self.config.api_key_env
        key = os.environ.get(env) if env else None
        if not key and self.config.side is Side.CLOUD:
            where = (
                f"set {env} in the environment" if env else f"set backends.{self.name}.api_key_env"
            )
            raise BackendError(f"{self.name}: no API key ({where})", cause=Cause.NO_CREDENTIALS)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def body(self, request: Request, decision: Decision) -> dict[str, Any]:
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
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = function_tools(request)
        return body

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        import httpx  # noqa: PLC0415  # loaded with the client

        first: list[float] = []
        try:
            yield from self._stream(request, decision, first)
        except httpx.ReadTimeout:
            raise timed_out(self.name, first[0] if first else None, self.limits) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise BackendError(
                f"{self.name}: nothing answers at {self.url} ({exc})", cause=Cause.CONNECTION
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise StreamIncomplete(f"{self.name}: the connection broke ({exc})") from None
        except json.JSONDecodeError as exc:
            raise BackendError(
                f"{self.name}: a stream event is not JSON ({exc})", cause=Cause.MALFORMED_STREAM
            ) from None

    def list_loaded(self) -> list[LoadedModel] | None:
        """What llama-server lists at `GET /models` (LM Studio and vLLM list no status).

        None for a cloud API: its model list is a catalogue, not models held in memory here.
        """
        if self.config.side is Side.CLOUD:
            return None
        try:
            return llama_host.loaded(self.name, self.config)
        except llama_host.UNREACHABLE as exc:
            raise self.unreachable(exc) from None

    def unload(self, model: str) -> bool | None:
        """llama-server in router mode: `POST /models/unload`; None for a cloud API."""
        if self.config.side is Side.CLOUD:
            return None
        try:
            return llama_host.unload(self.config, model)
        except llama_host.UNREACHABLE as exc:
            raise self.unreachable(exc) from None

    def _open(self, stack: contextlib.ExitStack[Any], body: dict[str, Any]) -> httpx.Response:
        """Send the request; once more at once if a kept-alive connection turned out closed.

        llama-server may close a connection after a streamed answer while the pool still
        holds it: the request never reached the server, so this is no failure of the backend.
        """
        import httpx  # noqa: PLC0415  # loaded with the client

        client: httpx.Client = self.client
        try:
            return stack.enter_context(client.stream("POST", self.url, json=body))
        except httpx.RemoteProtocolError:
            return stack.enter_context(client.stream("POST", self.url, json=body))

    def _stream(
        self, request: Request, decision: Decision, first_token: list[float]
    ) -> Iterator[Chunk]:
        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage: dict[str, int] = {}
        finish = model = None
        done = False
        with contextlib.ExitStack() as stack:
            reply = self._open(stack, self.body(request, decision))
            if reply.status_code >= 400:
                reply.read()
                raise status_error(self.name, reply)
            for payload in _events(reply.iter_lines()):
                if payload == "[DONE]":
                    done = True
                    break
                event = json.loads(payload)
                if "error" in event:
                    raise _error(self.name, event, 200, None)
                model = event.get("model") or model
                usage = event.get("usage") or usage
                for choice in event.get("choices") or ():
                    finish = choice.get("finish_reason") or finish
                    delta = choice.get("delta") or {}
                    for call in delta.get("tool_calls") or ():
                        _merge_call(calls, call)
                    text = delta.get("content")
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
                tool_calls=tuple(
                    {"name": c["name"], "arguments": c["arguments"]}
                    for _, c in sorted(calls.items())
                ),
            ),
        )


def _events(lines: Iterator[str]) -> Iterator[str]:
    """Server-sent events' data, each dispatched at its blank line: an event the connection
    cut before its end is never read (the stream then lacks [DONE], and counts as cut)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def _merge_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Tool calls arrive in pieces: a name first, then the arguments' JSON in fragments."""
    entry = calls.setdefault(int(delta.get("index", 0)), {"name": "", "arguments": ""})
    function = delta.get("function") or {}
    entry["name"] += function.get("name") or ""
    entry["arguments"] += function.get("arguments") or ""


def status_error(name: str, reply: httpx.Response) -> BackendError:
    """The error an HTTP error response describes, its fields kept."""
    try:
        body = reply.json()
    except ValueError:
        body = {"error": reply.text[:200]}
    return _error(name, body if isinstance(body, dict) else {}, reply.status_code, reply.headers)


def _error(name: str, body: dict[str, Any], status: int, headers: Any) -> BackendError:
    inner = body.get("error")
    if isinstance(inner, dict):
        kind = inner.get("type") or None
        code = inner.get("code")
        message = str(inner.get("message") or "")
        if status == 200 and isinstance(code, int):
            status = code  # an error inside a stream names its status in the body
    else:
        inner, kind, code, message = {}, None, None, str(inner or "")
    cause = _cause(status, {kind, code if isinstance(code, str) else None}, message)
    if cause is Cause.CONTEXT_LENGTH:  # llama-server names both sizes in its error body
        return context_error(
            name,
            message,
            status=status,
            request_tokens=inner.get("n_prompt_tokens"),
            context_tokens=inner.get("n_ctx"),
            provider_type=kind,
        )
    detail = " ".join(message.split())[:200]
    return BackendError(
        f"{name} answered HTTP {status}: {detail}" if detail else f"{name} answered HTTP {status}",
        cause=cause,
        status=status,
        retry_after_s=retry_after(headers),
        provider_type=kind,
    )


def _cause(status: int, kinds: set[str | None], message: str) -> Cause:
    if status == 429 and "insufficient_quota" in kinds:
        return Cause.SPEND_LIMIT  # OpenAI's code for a used-up quota
    # vLLM names no type for it: its message ("maximum context length") is all there is.
    if status in (400, 413) and (kinds & CONTEXT_TYPES or "maximum context length" in message):
        return Cause.CONTEXT_LENGTH
    return cause_for_status(status)
