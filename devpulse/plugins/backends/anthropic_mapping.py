"""Anthropic's Messages API, both ways, without I/O: the request body and a stream decoder.

`anthropic_payload` builds the keyword arguments of `messages.create` (the body, less
`stream`); `AnthropicDecoder` turns each raw stream event, as a dict, into chunks and at
`message_stop` the whole `Response`. The sync and async transports only move bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devpulse.core.deltas import Assembler, Respond
from devpulse.core.errors import BackendError, Cause
from devpulse.core.types import (
    META_USER,
    Block,
    Chunk,
    ImageBlock,
    Message,
    Request,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    opaque_user_id,
)


def anthropic_payload(request: Request, model: str) -> dict[str, Any]:
    """The Messages API body for `request` (without `stream`, which the transport sets)."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": m.role, "content": _content(m)} for m in request.messages],
    }
    if request.system:
        params["system"] = [{"type": "text", "text": b.text} for b in request.system]
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
            for t in request.tools
        ]
    if request.tool_choice is not None:
        params["tool_choice"] = tool_choice_param(request.tool_choice)
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop_sequences:
        params["stop_sequences"] = list(request.stop_sequences)
    if request.metadata.get(META_USER):
        params["metadata"] = {"user_id": opaque_user_id(request.metadata[META_USER])}
    return params


def _content(message: Message) -> str | list[dict[str, Any]]:
    """A message's blocks; a lone text block as a plain string, the API's short form.

    Thinking with no signature (a local model's reasoning, from llama-server or Ollama) is
    left out: Anthropic checks the signature of every thinking block it is sent and refuses
    the request otherwise, so a conversation a local model began could not go on in the
    cloud. A turn that was nothing but such thinking keeps it as text.
    """
    blocks = [b for b in message.content if not _unsigned_thinking(b)]
    if not blocks:
        blocks = [TextBlock(b.thinking) for b in message.content if isinstance(b, ThinkingBlock)]
    if len(blocks) == 1 and isinstance(blocks[0], TextBlock):
        return blocks[0].text
    return [block_param(b) for b in blocks]


def _unsigned_thinking(block: Block) -> bool:
    return isinstance(block, ThinkingBlock) and block.redacted is None and not block.signature


def block_param(block: Block) -> dict[str, Any]:
    """One content block in the Messages API's shape."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        source = (
            {"type": "url", "url": block.url}
            if block.url
            else {"type": "base64", "media_type": block.media_type, "data": block.data}
        )
        return {"type": "image", "source": source}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}
    if isinstance(block, ToolResultBlock):
        out: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": block.tool_use_id,
            "content": [block_param(b) for b in block.content],
        }
        if block.is_error:
            out["is_error"] = True
        return out
    if block.redacted is not None:
        return {"type": "redacted_thinking", "data": block.redacted}
    return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}


def tool_choice_param(choice: ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {"type": choice.type}
    if choice.type == "tool":
        out["name"] = choice.name
    if not choice.parallel and choice.type != "none":
        out["disable_parallel_tool_use"] = True
    return out


class AnthropicDecoder:
    """Raw Messages API stream events (dicts) in, chunks out; the Response at message_stop.

    Anthropic's own indices are not kept: an empty text block is dropped, so that the
    canonical sequence is the same as every other backend's.
    """

    def __init__(self, name: str, respond: Respond) -> None:
        self.out = Assembler(name, respond)
        self.model: str | None = None
        self.usage: dict[str, int] = {}
        self.stop_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.out.finished

    def feed(self, event: Mapping[str, Any]) -> list[Chunk]:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event.get("delta") or {})
        if kind == "content_block_start":
            return self._start(event.get("content_block") or {})
        if kind == "content_block_stop":
            return self.out.close()
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model") or self.model
            self._usage(message.get("usage"))
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            self._usage(event.get("usage"))
        elif kind == "message_stop":
            return self.out.finish(
                stop_reason=self.stop_reason, usage=self._totals(), model=self.model
            )
        elif kind == "error":
            error = event.get("error") or {}
            raise BackendError(
                f"{self.out.name} answered in the stream: {error.get('type', 'error')}: "
                f"{' '.join(str(error.get('message', '')).split())[:200]}",
                cause=Cause.SERVER_ERROR,
                provider_type=error.get("type"),
            )
        return []

    def end(self) -> None:
        """The connection's stream ended: it must have ended with message_stop."""
        self.out.require_finished("message_stop")

    def _start(self, block: Mapping[str, Any]) -> list[Chunk]:
        kind = block.get("type")
        if kind == "text":
            return self.out.text(block.get("text") or "")
        if kind == "tool_use":
            return self.out.tool_start(str(block.get("id")), str(block.get("name")))
        if kind == "thinking":
            return self.out.thinking(block.get("thinking") or "", block.get("signature") or "")
        if kind == "redacted_thinking":
            return self.out.redacted_thinking(str(block.get("data") or ""))
        return []  # a block kind DevPulse does not model (server tool results): skipped

    def _delta(self, delta: Mapping[str, Any]) -> list[Chunk]:
        kind = delta.get("type")
        if kind == "text_delta":
            return self.out.text(delta.get("text") or "")
        if kind == "input_json_delta":
            return self.out.tool_json(delta.get("partial_json") or "")
        if kind == "thinking_delta":
            return self.out.thinking(delta.get("thinking") or "")
        if kind == "signature_delta":
            return self.out.thinking(signature=delta.get("signature") or "")
        return []

    def _usage(self, usage: Mapping[str, Any] | None) -> None:
        for key, value in (usage or {}).items():
            if isinstance(value, int):
                self.usage[key] = value

    def _totals(self) -> Usage:
        return Usage(
            input_tokens=self.usage.get("input_tokens", 0),
            output_tokens=self.usage.get("output_tokens", 0),
            cache_read_tokens=self.usage.get("cache_read_input_tokens", 0),
            cache_write_tokens=self.usage.get("cache_creation_input_tokens", 0),
        )
