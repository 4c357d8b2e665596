"""The values that flow through the pipeline: frozen, so no stage can change another's input."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from devpulse.core.blocks import (
    Block,
    Image,
    ImageBlock,
    Message,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    as_blocks,
    block_text,
    leaves,
)
from devpulse.core.errors import DevPulseError

# Public names, the content blocks among them: they are values that flow through the pipeline too.
__all__ = [
    "CONTENT_CHUNKS",
    "META_MODEL",
    "META_SESSION",
    "META_USER",
    "STOP_REASONS",
    "Block",
    "Chunk",
    "ChunkType",
    "Classification",
    "Decision",
    "DeviceMemory",
    "Finding",
    "Image",
    "ImageBlock",
    "Labels",
    "LoadedModel",
    "Message",
    "PrivacyLevel",
    "Request",
    "Response",
    "Side",
    "StopReason",
    "TaskClass",
    "TextBlock",
    "ThinkingBlock",
    "Tool",
    "ToolChoice",
    "ToolResultBlock",
    "ToolUseBlock",
    "Usage",
    "Verdict",
    "block_dict",
    "choices",
    "opaque_user_id",
    "replay",
]


class Side(enum.StrEnum):
    """Where a backend runs: on this machine or in someone else's cloud."""

    LOCAL = "local"
    CLOUD = "cloud"


class PrivacyLevel(enum.IntEnum):
    """How sensitive a request is; the merged level is the highest any classifier reports."""

    PUBLIC = 0
    INTERNAL = 1  # internal hosts, package names, "confidential" markers
    CONFIDENTIAL = 2  # personal data
    SECRET = 3  # credentials, private keys

    @classmethod
    def parse(cls, name: str) -> PrivacyLevel:
        """Look a level up by its lower-case name (`"internal"`)."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(
                f"unknown privacy level {name!r} (expected one of {', '.join(choices(cls))})"
            ) from None

    @property
    def label(self) -> str:
        return self.name.lower()


class TaskClass(enum.StrEnum):
    """What kind of work a request is; the routing table maps each class to a side."""

    AUTOCOMPLETE = "autocomplete"
    DRAFTING = "drafting"
    REFACTOR = "refactor"
    CODE_REVIEW = "code_review"
    QUICK_QA = "quick_qa"
    REASONING = "reasoning"
    DOMAIN_EXPERT = "domain_expert"
    MULTIMODAL = "multimodal"
    AGENTIC = "agentic"
    LONG_CONTEXT = "long_context"


def choices(enum_type: type[enum.Enum]) -> list[str]:
    """The spellings a user may type for an enum: lower-case names or string values."""
    return [m.value if isinstance(m.value, str) else m.name.lower() for m in enum_type]


# Well-known `Request.metadata` keys: the caller's own name for the model it asked for, and
# the user or session the request belongs to (the ledger splits spend by them).
META_MODEL = "model"
META_USER = "user_id"
META_SESSION = "session_id"


def opaque_user_id(user: Any) -> str:
    """What a provider is told of the caller's user id: a hash of it. Anthropic asks for an
    opaque id (its abuse checks need only tell users apart), and a caller's own id is often
    an e-mail address, which would otherwise leave the machine as it is. The same id always
    gives the same hash; the ledger keeps the id itself."""
    return "u-" + hashlib.sha256(str(user).encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Request:
    """One call to a model, as the caller asked for it.

    `task` (a `TaskClass` or its name) set by the caller always wins over the inferred task
    class. `suffix` is the text after the cursor for fill-in-the-middle completion. `system`
    holds the system prompt as blocks; a message with role ``system`` is moved there.
    `tools` are tool definitions (Anthropic-shaped mappings are accepted too), `tool_choice`
    says which the model may call. `stream` is set by `Router.stream()`: a backend may then
    answer with an iterator of `Chunk`. `metadata` carries the caller's own names
    (`META_MODEL`, `META_USER`, `META_SESSION`); of them only the user id is sent, and only
    as `opaque_user_id`.
    """

    messages: tuple[Message, ...]
    task: TaskClass | None = None
    suffix: str | None = None
    tools: tuple[Tool, ...] = ()
    max_tokens: int = 1024
    stream: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    system: tuple[TextBlock, ...] = ()
    tool_choice: ToolChoice | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.task is not None and not isinstance(self.task, TaskClass):
            # A task named by its string ("drafting"): every stage after this one, the
            # books included, reads `task.value`. An unknown name fails here, before any
            # backend is paid for an answer that could not be booked.
            try:
                object.__setattr__(self, "task", TaskClass(self.task))
            except ValueError:
                raise DevPulseError(
                    f"unknown task {self.task!r} (expected one of {', '.join(choices(TaskClass))})"
                ) from None
        system = [m for m in self.messages if m.role == "system"]
        if system:
            hoisted = [b for m in system for b in m.content if isinstance(b, TextBlock)]
            object.__setattr__(self, "system", (*self.system, *hoisted))
            object.__setattr__(
                self, "messages", tuple(m for m in self.messages if m.role != "system")
            )
        if any(not isinstance(t, Tool) for t in self.tools):
            object.__setattr__(self, "tools", tuple(Tool.of(t) for t in self.tools))

    @classmethod
    def from_prompt(
        cls,
        prompt: str,
        *,
        task: TaskClass | None = None,
        system: str | None = None,
        **kwargs: Any,
    ) -> Request:
        """A single-turn request with one user message (and a system prompt, if given)."""
        if system:
            kwargs["system"] = (TextBlock(system),)
        return cls(messages=(Message("user", prompt),), task=task, **kwargs)

    def text(self) -> str:
        """All the text a backend would receive, for classifiers to read.

        That is everything that leaves this machine: the system prompt, the tools'
        definitions and the tool choice, every message's blocks (`block_text`), the suffix
        and the stop sequences. (The caller's user id goes out only as `opaque_user_id`.)
        """
        parts = [b.text for b in self.system]
        for tool in self.tools:
            parts.append(f"tool {tool.name}: {tool.description}")
            parts.extend(leaves(dict(tool.input_schema)))
        for message in self.messages:
            parts.extend(t for block in message.content for t in block_text(block))
        if self.suffix:
            parts.append(self.suffix)
        if self.tool_choice is not None and self.tool_choice.name:
            parts.append(f"tool choice {self.tool_choice.name}")
        parts.extend(self.stop_sequences)
        return "\n".join(parts)

    @property
    def system_text(self) -> str:
        return "\n\n".join(b.text for b in self.system)

    @property
    def has_images(self) -> bool:
        return any(
            isinstance(b, ImageBlock)
            or (
                isinstance(b, ToolResultBlock) and any(isinstance(i, ImageBlock) for i in b.content)
            )
            for m in self.messages
            for b in m.content
        )

    @property
    def tool_results(self) -> tuple[ToolResultBlock, ...]:
        return tuple(r for m in self.messages for r in m.tool_results)


@dataclass(frozen=True, slots=True)
class Finding:
    """Something sensitive in a request. Never holds the matched text, only where it is."""

    rule_id: str
    category: Literal["secret", "pii", "internal"]
    level: PrivacyLevel
    span: tuple[int, int]
    preview: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "category": self.category,
            "level": self.level.label,
            "span": list(self.span),
            "preview": self.preview,
        }


@dataclass(frozen=True, slots=True)
class Labels:
    """What one `classify` implementation says about a request; any field may be left unset."""

    task_class: TaskClass | None = None
    rule: str | None = None
    privacy_level: PrivacyLevel | None = None
    findings: tuple[Finding, ...] = ()
    reasons: tuple[str, ...] = ()
    difficulty: float | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """All classifiers' labels merged by the core.

    `local_only` is true when `privacy_level` is at or above the configured threshold: such a
    request must never reach a backend marked cloud. `difficulty`, in [0, 1], is how hard
    the prompt looks next to typical traffic (0.7: harder than about 70% of it), or None when
    no classifier scored it.
    """

    task_class: TaskClass
    task_rule: str
    privacy_level: PrivacyLevel
    local_only: bool
    findings: tuple[Finding, ...] = ()
    reasons: tuple[str, ...] = ()
    difficulty: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_class": self.task_class.value,
            "task_rule": self.task_rule,
            "difficulty": None if self.difficulty is None else round(self.difficulty, 4),
            "privacy": {
                "level": self.privacy_level.label,
                "local_only": self.local_only,
                "rules": sorted({f.rule_id for f in self.findings}),
                "findings": [f.as_dict() for f in self.findings],
            },
            "classifier_notes": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request goes. Plugins fill the first four fields; the core adds the rest."""

    side: Side
    backend: str
    model: str
    reasons: tuple[str, ...] = ()
    classification: Classification | None = None
    verdict: Verdict | None = None
    delay_s: float = 0.0  # wait this long before dispatching (a retry's backoff)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "side": self.side.value,
            "backend": self.backend,
            "model": self.model,
            "reasons": list(self.reasons),
        }
        if self.classification is not None:
            out.update(self.classification.as_dict())
        out["preflight"] = self.verdict.as_dict() if self.verdict else None
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a preflight found: refuse the decision, reroute it to `decision`, or let it pass
    with a note (`"pass"`: the check ran and the decision stands, for `route --json`)."""

    action: Literal["refuse", "reroute", "pass"]
    reason: str
    decision: Decision | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, **self.details}


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens an answer cost; the cache counts where the provider reports them.

    As the Messages API counts them: `input_tokens` are the prompt's tokens read neither
    from nor into the prompt cache, so the three together are the whole prompt.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        out = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cache_read_tokens:
            out["cache_read_tokens"] = self.cache_read_tokens
        if self.cache_write_tokens:
            out["cache_write_tokens"] = self.cache_write_tokens
        return out


# Why an answer ended, in Anthropic's words; every backend maps its own to these.
StopReason = Literal["end_turn", "max_tokens", "tool_use", "stop_sequence"]
STOP_REASONS: frozenset[str] = frozenset(("end_turn", "max_tokens", "tool_use", "stop_sequence"))


@dataclass(frozen=True, slots=True, init=False)
class Response:
    """A complete answer, from whichever backend served it: blocks, stop reason, usage.

    `reasons` are the router's: why the answer came from where it did (the decision that
    was dispatched, failovers included); the core fills them in.

    `Response("text", ...)` holds one text block; `text` joins the answer's text blocks.
    """

    content: tuple[Block, ...]
    model: str
    backend: str
    side: Side
    usage: Usage
    latency_s: float
    first_token_s: float | None
    stop_reason: str | None
    reasons: tuple[str, ...]

    def __init__(
        self,
        content: str | Iterable[Block],
        model: str,
        backend: str,
        side: Side,
        usage: Usage = Usage(),
        latency_s: float = 0.0,
        first_token_s: float | None = None,
        stop_reason: str | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        for name, value in (
            ("content", as_blocks(content)),
            ("model", model),
            ("backend", backend),
            ("side", side),
            ("usage", usage),
            ("latency_s", latency_s),
            ("first_token_s", first_token_s),
            ("stop_reason", stop_reason),
            ("reasons", tuple(reasons)),
        ):
            object.__setattr__(self, name, value)

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> tuple[ToolUseBlock, ...]:
        return tuple(b for b in self.content if isinstance(b, ToolUseBlock))

    def as_message(self) -> Message:
        """The answer as the assistant turn of the next request (thinking included)."""
        return Message("assistant", self.content)

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "content": [block_dict(b) for b in self.content],
            "model": self.model,
            "backend": self.backend,
            "side": self.side.value,
            "usage": self.usage.as_dict(),
            "latency_s": round(self.latency_s, 4),
            "first_token_s": None if self.first_token_s is None else round(self.first_token_s, 4),
            "stop_reason": self.stop_reason,
        }


def block_dict(block: Block) -> dict[str, Any]:
    """A block as JSON (for `--json` output): Anthropic's field names."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}
    if isinstance(block, ThinkingBlock):
        if block.redacted is not None:
            return {"type": "redacted_thinking", "data": block.redacted}
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if isinstance(block, ImageBlock):
        return {"type": "image", "media_type": block.media_type, "url": block.url}
    return {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": [block_dict(b) for b in block.content],
        "is_error": block.is_error,
    }


ChunkType = Literal[
    "block_start",
    "text_delta",
    "thinking_delta",
    "tool_input_delta",
    "block_stop",
    "usage",
    "message_stop",
    "restart",
]
CONTENT_CHUNKS = frozenset(
    ("block_start", "text_delta", "thinking_delta", "tool_input_delta", "block_stop")
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One event of a streamed answer; every backend streams the same sequence of them.

    For each content block in order: ``block_start`` (with `index` and `block`: the block's
    kind, and a tool call's id and name), its deltas (``text_delta`` or ``thinking_delta``
    with `text`, ``tool_input_delta`` with `partial_json`), ``block_stop``. Then one
    ``usage`` and a ``message_stop`` that carries the whole `response`. A ``restart`` says
    the stream broke mid-answer and a fallback starts the answer again from the beginning:
    discard what was received so far.
    """

    type: ChunkType
    index: int = 0
    text: str = ""
    partial_json: str = ""
    block: Block | None = None
    usage: Usage | None = None
    response: Response | None = None

    @property
    def restart(self) -> bool:
        return self.type == "restart"

    @property
    def is_content(self) -> bool:
        """Whether the chunk is part of the answer itself (a restart must then be told)."""
        return self.type in CONTENT_CHUNKS


def replay(response: Response) -> Iterator[Chunk]:
    """The chunks a stream of `response` consists of: a whole answer, told as deltas."""
    for index, block in enumerate(response.content):
        if isinstance(block, TextBlock):
            yield Chunk("block_start", index, block=TextBlock(""))
            if block.text:
                yield Chunk("text_delta", index, text=block.text)
        elif isinstance(block, ToolUseBlock):
            yield Chunk("block_start", index, block=ToolUseBlock(block.id, block.name))
            if block.input:  # as a live stream: no input, no delta
                yield Chunk("tool_input_delta", index, partial_json=json.dumps(dict(block.input)))
        elif isinstance(block, ThinkingBlock):
            yield Chunk("block_start", index, block=ThinkingBlock(redacted=block.redacted))
            if block.thinking:
                yield Chunk("thinking_delta", index, text=block.thinking)
        else:
            yield Chunk("block_start", index, block=block)
        yield Chunk("block_stop", index)
    yield Chunk("usage", usage=response.usage)
    yield Chunk("message_stop", response=response)


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    """One memory pool a local model could be loaded into, as a probe saw it just now.

    `budget_mb` is what a new model may take now: free VRAM on NVIDIA; free memory within
    the GPU's share of unified memory on Apple Silicon; available RAM less a safety reserve
    on the CPU.
    """

    device: str
    kind: Literal["nvidia", "apple", "host"]
    total_mb: int
    free_mb: int
    budget_mb: int
    notes: tuple[str, ...] = ()
    processes: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device": self.device,
            "kind": self.kind,
            "total_mb": self.total_mb,
            "free_mb": self.free_mb,
            "budget_mb": self.budget_mb,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        if self.processes:
            out["processes"] = [dict(p) for p in self.processes]
        return out


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model a local server holds in memory now, as the server reports it.

    `size_mb` is the memory it holds (Ollama's `size`; for llama-server, which reports no
    memory, the model file's size); `vram_mb` the part on the accelerator where the server
    says; `expires_at` when the server will unload it by itself (ISO 8601), if it says.
    `unloadable` is False for a model the server cannot let go (a single-model llama-server).
    `aliases` are the other names the server answers to for it (llama-server's `--alias`,
    or a preset's `alias`): a request may name the model by any of them.
    """

    backend: str
    model: str
    size_mb: int
    vram_mb: int | None = None
    expires_at: str | None = None
    unloadable: bool = True
    aliases: tuple[str, ...] = ()

    def named(self, name: str) -> bool:
        """Whether `name` names this model: its id or one of its aliases (`same_model`)."""
        return same_model(name, self.model) or any(same_model(name, a) for a in self.aliases)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "model": self.model,
            "size_mb": self.size_mb,
            "unloadable": self.unloadable,
        }
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.vram_mb is not None:
            out["vram_mb"] = self.vram_mb
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out


def same_model(a: str, b: str) -> bool:
    """Whether two model names name the same model, a name without a tag meaning `:latest`.

    Ollama reads `gemma3` as `gemma3:latest` and lists loaded models with their tag, while
    the config, pins and the ledger keep the name as the user wrote it. Other servers never
    list both spellings of one name, so the rule holds for every backend.
    """
    return _tagged(a) == _tagged(b)


def _tagged(name: str) -> str:
    # The tag follows the last colon of the last path part: a registry's port is no tag
    # (`localhost:5000/gemma3` is `localhost:5000/gemma3:latest`).
    return name if ":" in name.rpartition("/")[2] else f"{name}:latest"
