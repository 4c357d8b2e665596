"""LangChain messages as DevPulse content blocks, and DevPulse answers as LangChain messages.

Both directions follow the Anthropic Messages API, which DevPulse's blocks mirror:

- a system message becomes the request's system blocks;
- a human message becomes a user turn (text, and images from LangChain's ``image_url`` and
  standard ``image`` parts);
- an AI message becomes an assistant turn: its text, its thinking (kept opaque so that it
  round-trips) and one tool-use block per tool call, with the call's own id;
- a tool message becomes a tool-result block in a user turn; consecutive results share one.

`lossless=True` keeps every other content part as text, for the privacy guard: a model the
guard watches sends parts DevPulse would not, and the classifiers must read them all (and a
message's `name`, its provider fields, an AI message's invalid tool calls, and the text in a
base64 file).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from devpulse.core.blocks import block_text, leaves
from devpulse.core.errors import UnsupportedRequest
from devpulse.core.types import (
    Block,
    ImageBlock,
    Message,
    Request,
    Response,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage, BaseMessage

# How much of a base64 payload is decoded for the classifiers: more than any provider takes
# in one request.
DECODED_LIMIT = 64 * 1024 * 1024
# MIME types, besides text/*, whose payload is text.
TEXT_MEDIA = ("json", "xml", "yaml", "javascript", "toml")
# Content parts that carry the caller's data in a form DevPulse cannot send (but as text).
MEDIA_PARTS = frozenset({"file", "document", "audio", "video", "input_audio", "text-plain"})
# The fields of a content part that its block holds, or that name its kind; a provider may
# send the rest (a text part's citations, which quote their source), which `lossless` reads.
BLOCK_FIELDS = frozenset(
    {"type", "text", "thinking", "signature", "data", "image_url", "source", "base64", "url"}
    | {"mime_type", "media_type", "source_type", "id", "cache_control"}
)


def to_request(
    messages: Sequence[BaseMessage], *, lossless: bool = False, **fields: Any
) -> Request:
    """One DevPulse request holding a LangChain conversation; `fields` go to `Request`."""
    system: list[TextBlock] = []
    turns: list[Message] = []
    for message in messages:
        if kind_of(message) == "system":
            system.extend(
                b for b in content_blocks(message.content, lossless) if isinstance(b, TextBlock)
            )
            if lossless:
                system.extend(_sent_beside(message))
            continue
        turn = to_message(message, lossless)
        if turns and turn.role == "user" and _only_results(turn) and _only_results(turns[-1]):
            turns[-1] = Message("user", (*turns[-1].content, *turn.content))
        else:
            turns.append(turn)
    return Request(messages=tuple(turns), system=(*system, *fields.pop("system", ())), **fields)


def prompts_request(prompts: Iterable[str]) -> Request:
    """A completion model's prompts as one request."""
    return Request(messages=tuple(Message("user", p) for p in prompts))


# A message chunk's type names its class (AIMessageChunk), where a whole message's is short
# ("ai"); a provider sends a chunk in a history as the message it is part of.
CHUNK_KINDS = {
    "AIMessageChunk": "ai",
    "HumanMessageChunk": "human",
    "SystemMessageChunk": "system",
    "ToolMessageChunk": "tool",
    "ChatMessageChunk": "chat",
    "FunctionMessageChunk": "function",
}


def kind_of(message: BaseMessage) -> str:
    """A message's type, a chunk's as its whole message's: a history built from a stream
    (`full += chunk`, an agent's streamed turns) holds AIMessageChunks, whose tool calls a
    provider sends as any AI message's (review 26: the guard read them as a user's text)."""
    return CHUNK_KINDS.get(message.type, message.type)


def to_message(message: BaseMessage, lossless: bool = False) -> Message:
    """One LangChain message as a DevPulse turn (system messages are the caller's to hoist)."""
    blocks = content_blocks(message.content, lossless)
    if lossless:
        blocks.extend(_sent_beside(message))
    kind = kind_of(message)
    if kind == "ai":
        calls = [
            ToolUseBlock(
                str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                str(call["name"]),
                dict(call.get("args") or {}),
            )
            for call in getattr(message, "tool_calls", None) or ()
        ]
        return Message("assistant", [*blocks, *calls])
    if kind == "tool":
        parts = [b for b in blocks if isinstance(b, TextBlock | ImageBlock)]
        if lossless:  # a result's other blocks (a sub-agent's thinking) go out as its text
            others = [b for b in blocks if not isinstance(b, TextBlock | ImageBlock)]
            parts += [TextBlock(t) for b in others for t in block_text(b)]
        error = getattr(message, "status", "success") == "error"
        result = ToolResultBlock(str(getattr(message, "tool_call_id", "")), parts, error)
        return Message("user", [result])
    role = getattr(message, "role", "user") if kind == "chat" else "user"
    return Message("assistant" if role == "assistant" else "user", blocks)


def content_blocks(content: str | list[Any], lossless: bool = False) -> list[Block]:
    """A LangChain message's content (a string, or a list of parts) as blocks."""
    if isinstance(content, str):
        return [TextBlock(content)] if content else []
    blocks: list[Block] = []
    for part in content:
        media = isinstance(part, Mapping) and part.get("type") in MEDIA_PARTS
        block = _part(part)
        if block is not None and not (lossless and media):
            blocks.append(block)
            if lossless and isinstance(part, Mapping):  # a text part's citations quote
                beside = {k: v for k, v in part.items() if k not in BLOCK_FIELDS}
                blocks.extend(TextBlock(s) for s in _strings(beside) if s)
        elif lossless:  # every string it holds, a text file's decoded text among them
            blocks.extend(TextBlock(s) for s in _strings(part) if s)
        elif media:
            # The caller's own data, which no bundled backend could send: never dropped
            # silently (the model would answer as if nothing had been attached).
            raise UnsupportedRequest(
                f"a {part.get('type')!r} content part cannot be sent through DevPulse: only "
                "text, images, tool calls and text documents can; give its text instead"
            )
    return blocks


def _part(part: Any) -> Block | None:
    """One content part as a block; None for a part DevPulse does not send."""
    if isinstance(part, str):
        return TextBlock(part) if part else None
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    if kind == "text":
        return TextBlock(str(part.get("text", "")))
    if kind == "thinking":
        return ThinkingBlock(str(part.get("thinking", "")), str(part.get("signature", "")))
    if kind == "redacted_thinking":
        return ThinkingBlock(redacted=str(part.get("data", "")))
    if kind == "image_url":
        url = part.get("image_url")
        return _image_from_url(str(url.get("url") if isinstance(url, Mapping) else url or ""))
    if kind == "image":
        return _image(part)
    if kind == "text-plain":
        return TextBlock(str(part.get("text") or "")) if part.get("text") else _document(part)
    if kind in ("file", "document"):
        return _document(part)
    return None  # tool_use parts repeat `tool_calls`; other kinds are not sent


def _document(part: Mapping[str, Any]) -> TextBlock | None:
    """A document or file part whose content is text (Anthropic's text source, or base64 of
    a text MIME type), as the text it holds; None for any other (a PDF, a file id)."""
    source = part.get("source")
    if isinstance(source, Mapping):  # Anthropic's own shape
        if source.get("type") == "text":
            return TextBlock(str(source.get("data") or ""))
        media, data = str(source.get("media_type") or ""), source.get("data")
    else:
        media, data = str(part.get("mime_type") or ""), part.get("base64") or part.get("data")
    if not isinstance(data, str) or not _text_media(media):
        return None
    return next((TextBlock(text) for text in _decoded(data, media)), None)


def _image(part: Mapping[str, Any]) -> ImageBlock | None:
    """LangChain's standard image part (``base64``/``data`` or ``url``), or Anthropic's."""
    source = part.get("source")
    if isinstance(source, Mapping):  # Anthropic's own shape
        if source.get("type") == "url":
            return ImageBlock(str(source.get("media_type", "")), url=str(source.get("url")))
        return ImageBlock(str(source.get("media_type", "")), str(source.get("data", "")))
    media = str(part.get("mime_type") or part.get("media_type") or "")
    data = part.get("base64") or (part.get("data") if part.get("source_type") != "url" else None)
    if data:
        return ImageBlock(media, str(data))
    url = part.get("url")
    return _image_from_url(str(url)) if url else None


def _image_from_url(url: str) -> ImageBlock | None:
    """An image URL; a ``data:`` URL carries the image itself."""
    if not url:
        return None
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return ImageBlock(head, data)
    return ImageBlock("", url=url)


def _sent_beside(message: BaseMessage) -> list[TextBlock]:
    """What a provider sends with a message besides its content, as text for the
    classifiers: the message's `name`, the provider fields LangChain keeps beside the
    content, and an AI message's invalid tool calls (ChatOpenAI sends them back as calls)."""
    beside = [message.name, message.additional_kwargs]
    beside.append(getattr(message, "invalid_tool_calls", None))
    beside.append(getattr(message, "tool_call_chunks", None))  # a chunk's calls as streamed
    return [TextBlock(s) for s in _strings(beside) if s]


def _strings(value: Any) -> Iterator[str]:
    """Every string inside `value`, depth first, a mapping's under its key (`key: value`)
    and its key with a number, a flag or an empty list or mapping under it, as `leaves`
    reads them (a tool call's input may name a key after a token: `{"ghp_...": []}`).
    An image's bytes are read where they are text (`block_text`). A base64 file's text is
    read decoded too (`_decoded`)."""
    if isinstance(value, str):
        yield value
        yield from _data_url(value)
    elif isinstance(value, Mapping):
        if value.get("type") in ("image", "image_url"):
            image = _part(value)
            yield from block_text(image) if image is not None else ()
            return
        media = str(value.get("mime_type") or value.get("media_type") or "")
        for key, item in value.items():
            if isinstance(item, str):
                yield f"{key}: {item}"  # as a tool's input reads (`leaves`): its key too
                yield from _data_url(item)
            elif item is None or isinstance(item, bool | int | float) or item in ([], {}, ()):
                yield from leaves(item, str(key))
            else:
                yield from _strings(item)
            if key in ("base64", "data") and isinstance(item, str):
                yield from _decoded(item, media)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _data_url(value: str) -> Iterator[str]:
    """The text a ``data:`` URL's base64 holds (`_decoded`); nothing for any other string."""
    if value.startswith("data:") and ";base64," in value[:256]:
        media, data = value[5:].split(";base64,", 1)
        yield from _decoded(data, media)


def _decoded(data: str, media: str) -> Iterator[str]:
    """The text a base64 payload (a file or document part) holds, for the classifiers: a
    provider decodes it and the model reads it as text. Nothing when it is not base64, or
    not text: a text-like MIME type is decoded whatever its bytes, any other only when it is
    UTF-8 (a ``.env`` sent as application/octet-stream). The raw string is read anyway."""
    compact = "".join(data[:DECODED_LIMIT].split())
    try:
        raw = base64.b64decode(compact[: len(compact) - len(compact) % 4], validate=True)
    except (binascii.Error, ValueError):
        return
    text_like = _text_media(media)
    decoder = codecs.getincrementaldecoder("utf-8")("replace" if text_like else "strict")
    try:
        text = decoder.decode(raw, final=False)  # a cut payload may end inside a character
    except UnicodeDecodeError:
        return
    if text:
        yield text


def _text_media(media: str) -> bool:
    """Whether a MIME type's content is text."""
    media = media.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or any(t in media for t in TEXT_MEDIA)


def _only_results(turn: Message) -> bool:
    return bool(turn.content) and all(isinstance(b, ToolResultBlock) for b in turn.content)


# -- tools --------------------------------------------------------------------------------


def to_tool(tool: Any) -> Tool:
    """A LangChain tool (a BaseTool, a function, a Pydantic class or a dict) as a Tool."""
    from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: PLC0415

    function = convert_to_openai_tool(tool)["function"]
    return Tool(
        str(function["name"]),
        str(function.get("description") or ""),
        function.get("parameters") or {"type": "object", "properties": {}},
    )


def to_tool_choice(choice: Any) -> ToolChoice | None:
    """LangChain's ``tool_choice`` spellings as Anthropic's."""
    if choice is None or choice == "auto":
        return ToolChoice("auto") if choice else None
    if choice in ("any", "required", True):
        return ToolChoice("any")
    if choice == "none":
        return ToolChoice("none")
    if isinstance(choice, str):
        return ToolChoice("tool", choice)
    if isinstance(choice, Mapping):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        if name:
            return ToolChoice("tool", str(name))
        return to_tool_choice(choice.get("type"))
    raise ValueError(f"unsupported tool_choice {choice!r}")


# -- answers ------------------------------------------------------------------------------


def usage_metadata(usage: Usage) -> dict[str, Any]:
    """DevPulse usage in LangChain's standard shape: its `input_tokens` are the whole
    prompt, the cached part included (as langchain-anthropic counts them), where DevPulse's
    are the part read neither from nor into the cache; the cache counts go in the details."""
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    out: dict[str, Any] = {
        "input_tokens": prompt,
        "output_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
    }
    details = {
        k: v
        for k, v in (
            ("cache_read", usage.cache_read_tokens),
            ("cache_creation", usage.cache_write_tokens),
        )
        if v
    }
    if details:
        out["input_token_details"] = details
    return out


def response_metadata(response: Response, reasons: Sequence[str] = ()) -> dict[str, Any]:
    """Which side, backend and model answered, why it ended, and why it was routed there."""
    return {
        "model_name": response.model,
        "model_provider": "devpulse",
        "side": response.side.value,
        "backend": response.backend,
        "stop_reason": response.stop_reason,
        "reasons": list(reasons),
    }


def to_ai_message(response: Response, reasons: Sequence[str] = ()) -> AIMessage:
    """A DevPulse answer as LangChain's AIMessage: text, tool calls, usage, metadata."""
    from langchain_core.messages import AIMessage  # noqa: PLC0415

    thinking = [b for b in response.content if isinstance(b, ThinkingBlock)]
    content: str | list[str | dict[str, Any]] = response.text
    if thinking:  # keep it, so that it goes back to the provider on the next turn
        content = [_thinking_part(b) for b in thinking]
        if response.text:
            content.append({"type": "text", "text": response.text})
    return AIMessage(
        content=content,
        tool_calls=[
            {"name": b.name, "args": dict(b.input), "id": b.id, "type": "tool_call"}
            for b in response.tool_uses
        ],
        usage_metadata=usage_metadata(response.usage),
        response_metadata=response_metadata(response, reasons),
    )


def _thinking_part(block: ThinkingBlock) -> dict[str, Any]:
    if block.redacted is not None:
        return {"type": "redacted_thinking", "data": block.redacted}
    return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
