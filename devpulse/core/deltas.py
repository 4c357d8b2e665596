"""One way to tell an answer as deltas, whichever provider streamed it.

Each backend's decoder reads its provider's events and tells an `Assembler` what it saw:
text, thinking, a tool call starting, a fragment of its input's JSON, the end. The
assembler alone decides the chunks (when a block starts and stops, its index) and builds
the final blocks, so every backend streams the same sequence for the same answer: a
consumer needs no per-backend code. It does no I/O and reads no clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from devpulse.core.errors import BackendError, Cause, StreamIncomplete
from devpulse.core.types import (
    Block,
    Chunk,
    Response,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)

# Builds the final `Response` from what the stream said; the backend adds its name, side
# and timings (it owns the clock).
Respond = Callable[..., Response]


@dataclass(slots=True)
class _Open:
    """The block being streamed: its kind and what has arrived of it so far."""

    kind: Literal["text", "thinking", "tool_use"]
    parts: list[str] = field(default_factory=list)
    tool_id: str = ""
    name: str = ""
    signature: str = ""


class Assembler:
    """Chunks and final blocks from what a decoder reads, in the one canonical order.

    Empty text never opens a block, so an answer has no empty text blocks on any backend.
    """

    def __init__(self, name: str, respond: Respond) -> None:
        self.name = name
        self.respond = respond
        self.blocks: list[Block] = []
        self._open: _Open | None = None
        self._unparsed: dict[int, str] = {}  # tool inputs that were not JSON, by index
        self.finished = False

    @property
    def index(self) -> int:
        """The index of the block being streamed (or of the next one)."""
        return len(self.blocks)

    @property
    def has_tool_use(self) -> bool:
        open_tool = self._open is not None and self._open.kind == "tool_use"
        return open_tool or any(isinstance(b, ToolUseBlock) for b in self.blocks)

    def text(self, text: str) -> list[Chunk]:
        if not text:
            return []
        out = self._ensure("text")
        assert self._open is not None
        self._open.parts.append(text)
        out.append(Chunk("text_delta", self.index, text=text))
        return out

    def thinking(self, text: str = "", signature: str = "") -> list[Chunk]:
        """Thinking text and/or its signature; opens a thinking block if none is open."""
        out = self._ensure("thinking")
        assert self._open is not None
        self._open.signature += signature
        if text:
            self._open.parts.append(text)
            out.append(Chunk("thinking_delta", self.index, text=text))
        return out

    def redacted_thinking(self, data: str) -> list[Chunk]:
        """A redacted thinking block arrives whole: start and stop."""
        out = self.close()
        block = ThinkingBlock(redacted=data)
        out.append(Chunk("block_start", self.index, block=block))
        self.blocks.append(block)
        out.append(Chunk("block_stop", self.index - 1))
        return out

    def tool_start(self, tool_id: str, name: str) -> list[Chunk]:
        out = self.close()
        self._open = _Open("tool_use", tool_id=tool_id, name=name)
        out.append(Chunk("block_start", self.index, block=ToolUseBlock(tool_id, name)))
        return out

    def tool_json(self, fragment: str) -> list[Chunk]:
        if not fragment:
            return []
        if self._open is None or self._open.kind != "tool_use":
            raise BackendError(
                f"{self.name}: tool input arrived outside a tool call",
                cause=Cause.MALFORMED_STREAM,
            )
        self._open.parts.append(fragment)
        return [Chunk("tool_input_delta", self.index, partial_json=fragment)]

    def tool_whole(self, tool_id: str, name: str, arguments: Any) -> list[Chunk]:
        """A tool call that arrives in one piece (Ollama): told as if it had streamed."""
        out = self.tool_start(tool_id, name)
        if arguments:  # as a streamed call without arguments: no input delta
            out += self.tool_json(json.dumps(arguments))
        out += self.close()
        return out

    def close(self) -> list[Chunk]:
        """End the block being streamed, if any."""
        current, self._open = self._open, None
        if current is None:
            return []
        index = self.index
        joined = "".join(current.parts)
        if current.kind == "text":
            self.blocks.append(TextBlock(joined))
        elif current.kind == "thinking":
            self.blocks.append(ThinkingBlock(joined, current.signature))
        else:
            self.blocks.append(ToolUseBlock(current.tool_id, current.name, self._input(joined)))
            if joined.strip() and not isinstance(_parse(joined), dict):
                self._unparsed[index] = joined
        return [Chunk("block_stop", index)]

    def finish(self, *, stop_reason: str | None, usage: Usage, **fields: Any) -> list[Chunk]:
        """The end: the open block stops, then usage, then `message_stop` with the Response.

        A tool input that is not a JSON object fails the answer, unless the answer was cut
        at `max_tokens` (then the call's input is left empty, as Anthropic's API does).
        """
        out = self.close()
        if self._unparsed and stop_reason != "max_tokens":
            raise BackendError(
                f"{self.name}: a tool call's input is not a JSON object",
                cause=Cause.MALFORMED_STREAM,
            )
        if stop_reason == "end_turn" and self.has_tool_use:
            stop_reason = "tool_use"  # servers that say "stop" for a tool call mean this
        response = self.respond(
            content=tuple(self.blocks), stop_reason=stop_reason, usage=usage, **fields
        )
        self.finished = True
        out.append(Chunk("usage", usage=usage))
        out.append(Chunk("message_stop", response=response))
        return out

    def require_finished(self, what: str) -> None:
        """Raise `StreamIncomplete` if the stream ended before its last event (`what`)."""
        if not self.finished:
            raise StreamIncomplete(f"{self.name}: the stream ended without {what}")

    def _ensure(self, kind: Literal["text", "thinking"]) -> list[Chunk]:
        if self._open is not None and self._open.kind == kind:
            return []
        out = self.close()
        self._open = _Open(kind)
        block: Block = TextBlock("") if kind == "text" else ThinkingBlock()
        out.append(Chunk("block_start", self.index, block=block))
        return out

    @staticmethod
    def _input(joined: str) -> dict[str, Any]:
        parsed = _parse(joined) if joined.strip() else {}
        return parsed if isinstance(parsed, dict) else {}


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
