"""Content blocks: what a message holds, in the shape of Anthropic's Messages API.

A message is a sequence of typed blocks (text, image, tool use, tool result, thinking) rather
than a string, so an agent's conversation (a tool call, its result, the answer) keeps its
structure through routing, and every backend maps the same blocks to its own wire format.
A plain string still works wherever a message is built: it becomes one text block.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal


@dataclass(frozen=True, slots=True)
class TextBlock:
    text: str
    type: ClassVar[Literal["text"]] = "text"


@dataclass(frozen=True, slots=True)
class ImageBlock:
    """An image: base64 `data` with its media type, or a `url` the provider fetches itself."""

    media_type: str
    data: str = ""
    url: str | None = None
    type: ClassVar[Literal["image"]] = "image"

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str) -> ImageBlock:
        return cls(media_type, base64.b64encode(raw).decode("ascii"))

    @property
    def raw(self) -> bytes:
        """The image's bytes (empty for an image given by URL)."""
        return base64.b64decode(self.data) if self.data else b""


Image = ImageBlock  # the name an image had before messages held blocks


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """The model asks for a tool call; `id` ties the call to its result, on every backend."""

    id: str
    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    type: ClassVar[Literal["tool_use"]] = "tool_use"


@dataclass(frozen=True, slots=True, init=False)
class ToolResultBlock:
    """What a tool returned for the call `tool_use_id`; a string is one text block."""

    tool_use_id: str
    content: tuple[TextBlock | ImageBlock, ...]
    is_error: bool
    type: ClassVar[Literal["tool_result"]] = "tool_result"

    def __init__(
        self,
        tool_use_id: str,
        content: str | Iterable[TextBlock | ImageBlock] = (),
        is_error: bool = False,
    ) -> None:
        blocks = (TextBlock(content),) if isinstance(content, str) else tuple(content)
        object.__setattr__(self, "tool_use_id", tool_use_id)
        object.__setattr__(self, "content", blocks)
        object.__setattr__(self, "is_error", is_error)

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """A model's reasoning, kept opaque so that it goes back to the provider unchanged.

    `signature` is the provider's proof that the thinking is its own; `redacted` holds the
    encrypted data of a redacted thinking block (then `thinking` is empty).
    """

    thinking: str = ""
    signature: str = ""
    redacted: str | None = None
    type: ClassVar[Literal["thinking"]] = "thinking"


Block = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock
Role = Literal["system", "user", "assistant"]


def as_blocks(content: str | Iterable[Block]) -> tuple[Block, ...]:
    """A string as one text block (none if empty); blocks as they are."""
    if isinstance(content, str):
        return (TextBlock(content),) if content else ()
    return tuple(content)


@dataclass(frozen=True, slots=True, init=False)
class Message:
    """One turn of a conversation: `Message("user", "hi")`, or a role and its blocks.

    `images` (the older way to attach images) are put before the text, as Anthropic
    recommends. Tool results go in a user message, tool uses in an assistant one.
    """

    role: Role
    content: tuple[Block, ...]

    def __init__(
        self,
        role: Role,
        content: str | Iterable[Block] = (),
        images: Iterable[ImageBlock] = (),
    ) -> None:
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "content", (*images, *as_blocks(content)))

    @property
    def text(self) -> str:
        """The message's text blocks, joined."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def images(self) -> tuple[ImageBlock, ...]:
        return tuple(b for b in self.content if isinstance(b, ImageBlock))

    @property
    def tool_uses(self) -> tuple[ToolUseBlock, ...]:
        return tuple(b for b in self.content if isinstance(b, ToolUseBlock))

    @property
    def tool_results(self) -> tuple[ToolResultBlock, ...]:
        return tuple(b for b in self.content if isinstance(b, ToolResultBlock))


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call: its name, what it does, and its input's JSON schema."""

    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})

    @classmethod
    def of(cls, value: Tool | Mapping[str, Any]) -> Tool:
        """A tool from its Anthropic-shaped mapping (`name`, `description`, `input_schema`)."""
        if isinstance(value, Tool):
            return value
        return cls(
            str(value["name"]),
            str(value.get("description") or ""),
            value.get("input_schema") or {"type": "object"},
        )


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Which tools the model may call, as Anthropic puts it.

    `auto`: it decides; `any`: it must call one; `tool`: it must call `name`; `none`: no
    tool. `parallel=False` asks for at most one call per turn.
    """

    type: Literal["auto", "any", "tool", "none"] = "auto"
    name: str | None = None
    parallel: bool = True


def leaves(value: Any, path: str = "") -> Iterator[str]:
    """A tool input's keys and values as lines of text, strings raw (not JSON-escaped): each
    leaf under its path of keys, an empty list or mapping too (`{"ghp_...": []}`: a key
    with nothing under it still goes out).

    Classifiers read these: a key written into a tool's input with its newlines escaped
    would hide a private key's line structure from them. A key is read in its path, not on
    a line of its own: a map keyed by random ids (Firestore's, nanoid's) then reads as ids.
    """
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple) and value:
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]")
    elif isinstance(value, str):
        yield f"{path}: {value}" if path else value
    else:
        shown = "{}" if isinstance(value, Mapping) else json.dumps(value, default=repr)
        yield f"{path}: {shown}" if path else shown


def joined_text(content: Sequence[Block]) -> Iterator[str]:
    """The text of blocks that a provider's body runs together: a message's text blocks,
    and a tool result's, each joined with nothing between, where there are several."""
    texts = [b.text for b in content if isinstance(b, TextBlock)]
    if len(texts) > 1:
        yield "".join(texts)
    for block in content:
        if isinstance(block, ToolResultBlock):
            yield from joined_text(block.content)


def block_text(block: Block) -> Iterator[str]:
    """The text a block sends to a provider, for classifiers: an image's media type and URL,
    and its data where that is text (`decoded_text`); a thinking block's signature and
    redacted data, each under a name that says what it is (the scanner took a random
    signature alone for a token one time in 40, but none after `signature:` or `content:`
    in 2,000)."""
    if isinstance(block, TextBlock):
        yield block.text
    elif isinstance(block, ImageBlock):
        if block.media_type:
            yield str(block.media_type)
        if block.url:
            yield str(block.url)
        if isinstance(block.data, str):
            yield from decoded_text(block.data)
    elif isinstance(block, ToolUseBlock):
        yield f"tool call {block.name}"
        yield f"tool use id: {generated_part(str(block.id))}"
        yield from leaves(dict(block.input))
    elif isinstance(block, ToolResultBlock):
        yield f"tool use id: {generated_part(str(block.tool_use_id))}"
        for inner in block.content:
            yield from block_text(inner)
    else:
        if block.thinking:
            yield block.thinking
        if block.signature:
            yield f"signature: {block.signature}"
        if block.redacted:
            yield f"redacted thinking content: {block.redacted}"


# The prefixes of the tool-use ids providers make: Anthropic's (its server tools' too),
# OpenAI's chat completions' and responses', and DevPulse's own for Ollama's calls.
ID_PREFIXES = ("toolu_", "srvtoolu_", "call_", "fc_")


def generated_part(tool_use_id: str) -> str:
    """A tool-use id without the prefix a provider gives its ids, for classifiers. Read
    whole, an id whose random part is 32 letters and digits (`call_` and 32: some SDKs'
    and tools' own) read as a vendor's prefixed token, 399 times in 400, where the
    providers' (`toolu_01` and 22, `call_` and 24) did not; its random part alone, under a
    name that says it is an id, none of 3,000. A token a caller put there (`ghp_...`) is
    read whole."""
    for prefix in ID_PREFIXES:
        if tool_use_id.startswith(prefix):
            return tool_use_id[len(prefix) :]
    return tool_use_id


# The first bytes of image files: PNG, JPEG, GIF, TIFF and ICO. Data that starts so is an
# image, and is decoded no further (`_is_image`: WebP, BMP, AVIF and HEIC say so later on).
IMAGE_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x01\x00",
)


def _is_image(head: bytes) -> bool:
    """Whether `head`, a file's first 12 bytes, starts an image. A text's first letters
    must not pass for one (a `.env` whose first line is `BMW_API_KEY=...`): BMP's `BM` counts
    only before its header's zeros, RIFF only as WebP's."""
    return (
        head.startswith(IMAGE_MAGIC)
        or (head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00")
        or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
        or head[4:8] == b"ftyp"  # AVIF, HEIC
    )


def decoded_text(data: str) -> Iterator[str]:
    """What base64 `data` spells, unless it is an image's bytes (`_is_image`, read from its
    first characters alone: a 5 MB image is not decoded whole): a file sent as an image (a
    `.env` labelled text/plain, an SVG) is read as the provider would read it, with a
    replacement character for each byte that is not UTF-8 (Latin-1, a stray byte, UTF-16's
    NULs: `without_nuls` reads those)."""
    if not data:
        return
    head = _base64_bytes("".join(data[:64].split())[:16])
    if not head or _is_image(head):
        return
    raw = _base64_bytes("".join(data.split()))  # MIME's line breaks out
    if raw:
        yield raw.decode("utf-8", "replace")


def _base64_bytes(data: str) -> bytes | None:
    """`data` decoded as base64, padded if it is not; None if it is not base64."""
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except ValueError:  # binascii.Error is one
        return None
