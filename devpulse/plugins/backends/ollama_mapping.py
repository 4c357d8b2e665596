"""Ollama's `/api/chat`, both ways, without I/O: the request and a stream decoder.

Ollama gives tool calls no ids and sends each call whole, its arguments as an object. The
decoder gives every call an id of its own (kept for the rest of the answer) and tells it
as if it had streamed, so the chunks are the ones every backend sends. A tool result
goes back as a `tool` message with the tool's name, which Ollama matches instead of an id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from devpulse.core.deltas import Assembler, Respond
from devpulse.core.errors import UnsupportedRequest
from devpulse.core.types import (
    Chunk,
    ImageBlock,
    Message,
    Request,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    Usage,
)
from devpulse.plugins.backends.openai_mapping import function_tools, new_tool_id

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def ollama_payload(
    request: Request, model: str, *, keep_alive: Any = None, name: str = "ollama"
) -> dict[str, Any]:
    """The keyword arguments of the `ollama` client's `chat` (streaming) for `request`."""
    names = {b.id: b.name for m in request.messages for b in m.tool_uses}
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system_text})
    for m in request.messages:
        messages.extend(_messages(m, names, name))
    options: dict[str, Any] = {"num_predict": request.max_tokens}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.stop_sequences:
        options["stop"] = list(request.stop_sequences)
    params: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "options": options,
    }
    if keep_alive is not None:
        params["keep_alive"] = keep_alive
    # Ollama has no tool choice; "none" is honoured by offering no tools.
    if request.tools and (request.tool_choice is None or request.tool_choice.type != "none"):
        params["tools"] = function_tools(request)
    return params


def _messages(message: Message, names: Mapping[str, str], backend: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    entry: dict[str, Any] = {"role": message.role, "content": ""}
    texts: list[str] = []
    images: list[str] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            result: dict[str, Any] = {"role": "tool", "content": block.text}
            if block.tool_use_id in names:
                result["tool_name"] = names[block.tool_use_id]
            out.append(result)
            images += [_image(b, backend) for b in block.content if isinstance(b, ImageBlock)]
        elif isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(_image(block, backend))
        elif isinstance(block, ThinkingBlock) and block.thinking:
            entry["thinking"] = block.thinking
    entry["content"] = "".join(texts)
    if images:
        entry["images"] = images
    calls = [{"function": {"name": b.name, "arguments": dict(b.input)}} for b in message.tool_uses]
    if calls:
        entry["tool_calls"] = calls
    if texts or images or calls or message.role == "assistant":
        out.append(entry)
    return out


def _image(block: ImageBlock, backend: str) -> str:
    if not block.data:
        raise UnsupportedRequest(f"{backend}: Ollama takes images as data, not by URL")
    return block.data


class OllamaDecoder:
    """`/api/chat` stream parts (dicts) in, canonical chunks out; the Response at `done`."""

    def __init__(
        self, name: str, respond: Respond, new_id: Callable[[], str] = new_tool_id
    ) -> None:
        self.out = Assembler(name, respond)
        self.new_id = new_id

    @property
    def finished(self) -> bool:
        return self.out.finished

    def feed(self, part: Mapping[str, Any]) -> list[Chunk]:
        message = part.get("message") or {}
        out: list[Chunk] = []
        if message.get("thinking"):
            out += self.out.thinking(message["thinking"])
        out += self.out.text(message.get("content") or "")
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            out += self.out.tool_whole(
                str(call.get("id") or self.new_id()),
                str(function.get("name") or ""),
                function.get("arguments"),
            )
        if part.get("done"):
            reason = part.get("done_reason")
            out += self.out.finish(
                stop_reason=STOP_REASONS.get(reason, reason) if reason else None,
                usage=Usage(
                    input_tokens=part.get("prompt_eval_count") or 0,
                    output_tokens=part.get("eval_count") or 0,
                ),
                model=part.get("model"),
            )
        return out

    def end(self) -> None:
        self.out.require_finished("done")
