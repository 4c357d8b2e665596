"""The values that flow through the pipeline: frozen, so no stage can change another's input."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


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


@dataclass(frozen=True, slots=True)
class Image:
    """An image attached to a message, base64-encoded."""

    media_type: str
    data: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    """One call to a model, as the caller asked for it.

    `task` set by the caller always wins over the inferred task class. `suffix` is the text
    after the cursor for fill-in-the-middle completion. `tools` are tool definitions in the
    Anthropic shape (`name`, `description`, `input_schema`). `stream` is set by
    `Router.stream()`: a backend may then answer with an iterator of `Chunk`.
    """

    messages: tuple[Message, ...]
    task: TaskClass | None = None
    suffix: str | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    max_tokens: int = 1024
    stream: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_prompt(cls, prompt: str, *, task: TaskClass | None = None, **kwargs: Any) -> Request:
        """A single-turn request with one user message."""
        return cls(messages=(Message("user", prompt),), task=task, **kwargs)

    def text(self) -> str:
        """All the text a backend would receive, for classifiers to read."""
        parts = [m.content for m in self.messages]
        if self.suffix:
            parts.append(self.suffix)
        return "\n".join(parts)

    @property
    def has_images(self) -> bool:
        return any(m.images for m in self.messages)


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
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer, from whichever backend served it."""

    text: str
    model: str
    backend: str
    side: Side
    usage: Usage = Usage()
    latency_s: float = 0.0
    first_token_s: float | None = None
    stop_reason: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "model": self.model,
            "backend": self.backend,
            "side": self.side.value,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
            "latency_s": round(self.latency_s, 4),
            "first_token_s": None if self.first_token_s is None else round(self.first_token_s, 4),
            "stop_reason": self.stop_reason,
        }
        if self.tool_calls:
            out["tool_calls"] = [dict(c) for c in self.tool_calls]
        return out


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed answer; the last chunk of a stream carries `response`.

    A chunk with `restart` set says the stream broke mid-answer and a fallback starts the
    answer again from the beginning: discard the text received so far.
    """

    text: str
    response: Response | None = None
    restart: bool = False


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
    """

    backend: str
    model: str
    size_mb: int
    vram_mb: int | None = None
    expires_at: str | None = None
    unloadable: bool = True

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "model": self.model,
            "size_mb": self.size_mb,
            "unloadable": self.unloadable,
        }
        if self.vram_mb is not None:
            out["vram_mb"] = self.vram_mb
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out
