"""OpenAI's chat completions format, both ways, without I/O: the body and a stream decoder.

llama-server, LM Studio, vLLM and OpenAI itself speak it. Blocks map as OpenAI's own
clients do: tool uses become an assistant message's `tool_calls` (arguments as a JSON
string), each tool result its own `tool` message right after it, images `image_url`
parts. Thinking is not sent back (the format has no place for it), and a tool result's
error flag has no field either: its text says so or nothing does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from devpulse.core.deltas import Assembler, Respond
from devpulse.core.types import (
    META_USER,
    Chunk,
    ImageBlock,
    Message,
    Request,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    Usage,
    opaque_user_id,
)

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}


def new_tool_id() -> str:
    """An id for a tool call whose provider gave none, in OpenAI's style."""
    return f"call_{uuid.uuid4().hex[:24]}"


def openai_payload(request: Request, model: str) -> dict[str, Any]:
    """The `/chat/completions` body for `request`; it always streams, usage included."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system_text})
    for m in request.messages:
        messages.extend(openai_messages(m))
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools and (request.tool_choice is None or request.tool_choice.type != "none"):
        body["tools"] = function_tools(request)
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
            if not request.tool_choice.parallel:
                body["parallel_tool_calls"] = False
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences)
    if request.metadata.get(META_USER):
        body["user"] = opaque_user_id(request.metadata[META_USER])
    return body


def openai_messages(message: Message) -> Iterator[dict[str, Any]]:
    """One message as OpenAI messages: tool results first, each its own `tool` message."""
    if message.role == "assistant":
        text = message.text
        out: dict[str, Any] = {"role": "assistant", "content": text}
        calls = [
            {
                "id": b.id,
                "type": "function",
                "function": {"name": b.name, "arguments": json.dumps(dict(b.input))},
            }
            for b in message.tool_uses
        ]
        if calls:
            out["tool_calls"] = calls
            out["content"] = text or None
        yield out
        return
    parts: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            yield {"role": "tool", "tool_call_id": block.tool_use_id, "content": block.text}
            parts += [_part(b) for b in block.content if isinstance(b, ImageBlock)]
        elif isinstance(block, TextBlock | ImageBlock):
            parts.append(_part(block))
    if not parts:
        return
    if all(p["type"] == "text" for p in parts):
        yield {"role": message.role, "content": "".join(p["text"] for p in parts)}
    else:
        yield {"role": message.role, "content": parts}


def function_tools(request: Request) -> list[dict[str, Any]]:
    """Tool definitions as OpenAI (and Ollama) function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.input_schema),
            },
        }
        for t in request.tools
    ]


def _tool_choice(choice: ToolChoice) -> Any:
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def _part(block: TextBlock | ImageBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    url = block.url or f"data:{block.media_type};base64,{block.data}"
    return {"type": "image_url", "image_url": {"url": url}}


class OpenAIDecoder:
    """Chat completion chunks (dicts) in, canonical chunks out; the Response at `[DONE]`.

    Tool calls arrive in pieces keyed by their index: the id and name first, then the
    arguments' JSON in fragments. Servers send them one call after another.
    """

    def __init__(
        self, name: str, respond: Respond, new_id: Callable[[], str] = new_tool_id
    ) -> None:
        self.out = Assembler(name, respond)
        self.new_id = new_id
        self.model: str | None = None
        self.usage: Mapping[str, Any] = {}
        self.finish_reason: str | None = None
        self._tool_index: int | None = None  # the call being streamed: its index and id
        self._tool_id = ""

    @property
    def finished(self) -> bool:
        return self.out.finished

    def feed(self, event: Mapping[str, Any]) -> list[Chunk]:
        """One `data:` event, parsed (an event with an `error` is the transport's to raise)."""
        self.model = event.get("model") or self.model
        self.usage = event.get("usage") or self.usage
        out: list[Chunk] = []
        for choice in event.get("choices") or ():
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):  # llama-server's and DeepSeek's thinking
                out += self.out.thinking(delta["reasoning_content"])
            out += self.out.text(delta.get("content") or "")
            for call in delta.get("tool_calls") or ():
                out += self._tool_call(call)
        return out

    def done(self) -> list[Chunk]:
        """`data: [DONE]`: the answer is complete."""
        usage = self.usage
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") or 0
        reason = self.finish_reason
        return self.out.finish(
            stop_reason=STOP_REASONS.get(reason, reason) if reason else None,
            # OpenAI's prompt_tokens include the cached ones; `Usage` counts them apart, as
            # the Messages API does, so that they are priced once.
            usage=Usage(
                input_tokens=max(0, (usage.get("prompt_tokens") or 0) - cached),
                output_tokens=usage.get("completion_tokens", 0),
                cache_read_tokens=cached,
            ),
            model=self.model,
        )

    def end(self) -> None:
        """The connection's stream ended: it must have said `[DONE]`."""
        self.out.require_finished("[DONE]")

    def _tool_call(self, call: Mapping[str, Any]) -> list[Chunk]:
        """One call's delta. A new call starts at a new index, or at a new id: some servers
        (Gemini's OpenAI-compatible endpoint) send each of several calls whole, with an id
        and no index."""
        given = call.get("index")
        index = given if isinstance(given, int) else self._tool_index or 0
        call_id = str(call.get("id") or "")
        function = call.get("function") or {}
        out: list[Chunk] = []
        new_index = index != self._tool_index or self._tool_index is None
        if new_index or (call_id and call_id != self._tool_id):
            self._tool_index, self._tool_id = index, call_id or self.new_id()
            out += self.out.tool_start(self._tool_id, str(function.get("name") or ""))
        out += self.out.tool_json(function.get("arguments") or "")
        return out
