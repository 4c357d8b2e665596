"""LangChain messages as DevPulse requests, for the classifiers to read.

Privacy must see everything that would leave the machine, so every string a message
carries goes in: text parts, tool-call names and arguments, tool results, and the provider
fields LangChain keeps in ``additional_kwargs``. Only image data is left out (a classifier
reads text).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from devpulse.core.types import Message, Request

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool", "function": "tool"}
IMAGE_KEYS = frozenset({"image_url", "source", "data", "base64"})


def as_request(messages: Sequence[BaseMessage]) -> Request:
    """One DevPulse request holding all of a chat's messages, as text."""
    return Request(messages=tuple(as_message(m) for m in messages))


def prompts_request(prompts: Iterable[str]) -> Request:
    """A completion model's prompts as one request."""
    return Request(messages=tuple(Message("user", p) for p in prompts))


def as_message(message: BaseMessage) -> Message:
    role = ROLES.get(message.type)
    if role is None:  # a ChatMessage with a role of its own
        role = {"system": "system", "assistant": "assistant"}.get(
            str(getattr(message, "role", "")), "user"
        )
    parts = list(strings(message.content))
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(str(call.get("name", "")))
        parts.append(json.dumps(call.get("args", {}), ensure_ascii=False, default=str))
    parts.extend(strings(message.additional_kwargs))
    return Message(role, "\n".join(p for p in parts if p))  # type: ignore[arg-type]


def strings(value: Any) -> Iterator[str]:
    """Every string inside `value`, depth first, skipping image payloads."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if value.get("type") in ("image", "image_url"):
            return
        for key, item in value.items():
            if key not in IMAGE_KEYS or not _looks_like_image(value):
                yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)
    elif value is not None and not isinstance(value, bool | int | float):
        yield str(value)


def _looks_like_image(block: dict[str, Any]) -> bool:
    media = str(block.get("media_type") or block.get("mime_type") or "")
    return media.startswith("image/") or block.get("type") in ("base64", "image")
