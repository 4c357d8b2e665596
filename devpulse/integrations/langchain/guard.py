"""`DevPulseCallbackHandler`: keep sensitive prompts off cloud models, and book every call.

Attach it to any LangChain chat model, chain or agent. When a model call starts, the
handler classifies every message (tool calls and tool results included), and every text
parameter sent with the call (bound tools, stop sequences, a structured-output schema, a
bound system prompt), with the DevPulse classifiers; works out which side the
model runs on (`sides.model_side`); and raises the core's `PrivacyBlocked` before a
local-only prompt can reach a cloud model. When the call ends, it books the model that
answered, its usage and its cost in the DevPulse ledger.

It is a synchronous handler with ``raise_error = True`` and ``run_inline = True``: that is
the combination LangChain honours on every path (invoke, ainvoke, stream, astream, batch,
inside chains and agents), so the refusal reaches the caller instead of being logged and
dropped. The bookkeeping never raises into the caller's chain.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from devpulse.core.blocks import leaves
from devpulse.core.errors import PrivacyBlocked
from devpulse.core.logs import get_logger
from devpulse.core.types import (
    Classification,
    Decision,
    Request,
    Response,
    Side,
    TextBlock,
    Usage,
)
from devpulse.integrations.langchain.messages import prompts_request, to_request
from devpulse.integrations.langchain.sides import model_names, model_side

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult

    from devpulse.core.pipeline import Router

log = get_logger(__name__)

BACKEND_PREFIX = "langchain"


# Keys of a call's parameters that name the model or LangChain's own bookkeeping: never
# content. Every other string the parameters hold is read.
NOT_SENT = frozenset({"_type", "model", "model_name"})
# A model's own fields that it sends with every call but that LangChain's invocation_params
# leave out (ChatAnthropic's stop_sequences): read from its serialized constructor
# arguments. Only these: the rest are settings, or URLs and keys that go to the provider but
# not to its model. (Its mcp_servers are serialized masked, as a secret: not readable here.)
CONSTRUCTED_SENT = frozenset(
    {"stop", "stop_sequences", "system", "container", "context_management"}
)
# How deep the parameters are walked; anything deeper is read as its repr.
PARAMETER_DEPTH = 16


def _sent_with(
    request: Request, callback_kwargs: Mapping[str, Any], serialized: Mapping[str, Any] | None
) -> Request:
    """`request` with the text its call's parameters send too (LangChain passes them to the
    callback as `invocation_params`), so that the classifiers read it: a secret in a bound
    tool's description, a structured-output schema (``response_format``, ``output_config``),
    a bound ``system`` or ``model_kwargs`` is sent like one in a message. Providers put what
    they send in different keys, so every string is read but the model's own name. The
    request is only classified. The model's own fields in CONSTRUCTED_SENT are read from
    `serialized` too."""
    params = callback_kwargs.get("invocation_params")
    params = dict(params) if isinstance(params, Mapping) else {}
    constructed = (serialized or {}).get("kwargs")
    if isinstance(constructed, Mapping):
        params.update((f"model.{k}", v) for k, v in constructed.items() if k in CONSTRUCTED_SENT)
    sent = _text_of({k: v for k, v in params.items() if k not in NOT_SENT})
    lines = list(leaves(sent)) if sent is not None else []
    if not lines:
        return request
    return dataclasses.replace(request, system=(*request.system, TextBlock("\n".join(lines))))


def _text_of(value: Any, depth: int = 0) -> Any:
    """The text in a parameter's value, as strings in mappings and lists for `leaves`; None
    when it holds none (numbers and flags are settings, not text).

    A class (a Pydantic model or TypedDict bound as ``response_format``) is sent as its JSON
    schema, so it is read as one; any other object as its repr.
    """
    if isinstance(value, str):
        return value or None
    if value is None or isinstance(value, bool | int | float):
        return None
    if depth >= PARAMETER_DEPTH:
        return repr(value)
    if isinstance(value, Mapping):
        items = {str(k): _text_of(v, depth + 1) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not None} or None
    if isinstance(value, list | tuple | set | frozenset):
        return [t for t in (_text_of(v, depth + 1) for v in value) if t is not None] or None
    if isinstance(value, type):
        from langchain_core.utils.function_calling import (  # noqa: PLC0415
            convert_to_json_schema,
        )

        try:
            return _text_of(convert_to_json_schema(value), depth + 1)
        except Exception:  # not a schema LangChain knows: its name and docstring, then
            return f"{value.__qualname__}: {value.__doc__ or ''}"
    dump = getattr(value, "model_dump", None)  # a Pydantic object
    if callable(dump):
        return _text_of(dump(), depth + 1)
    return repr(value)


@dataclass(frozen=True, slots=True)
class _Call:
    """What the handler remembers about one model call between its start and its end."""

    classification: Classification
    decision: Decision
    started: float


class DevPulseCallbackHandler(BaseCallbackHandler):
    """Guard and books for LangChain model calls.

    `router` supplies the configuration, the classifiers and the ledger (a default `Router`
    when omitted). `local` and `cloud` fix the side of model classes or providers by name
    (``local=["ChatAnthropic"]`` for an Anthropic-compatible server of your own);
    `unknown_side` is the side of a model the handler does not recognise (cloud: guarded).
    `guard=False` only books; `book=False` only guards.
    """

    raise_error = True
    run_inline = True

    def __init__(
        self,
        router: Router | None = None,
        *,
        local: Collection[str] = (),
        cloud: Collection[str] = (),
        unknown_side: Side = Side.CLOUD,
        guard: bool = True,
        book: bool = True,
    ) -> None:
        if router is None:
            from devpulse.core.pipeline import Router  # noqa: PLC0415  # loads the plugins

            router = Router()
        self.router = router
        self.local = tuple(local)
        self.cloud = tuple(cloud)
        self.unknown_side = unknown_side
        self.guard = guard
        self.book = book
        self._calls: dict[UUID, _Call] = {}
        self._lock = threading.Lock()

    # -- the start of a call: the guard ------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        chat = [m for conversation in messages for m in conversation]
        request = _sent_with(to_request(chat, lossless=True), kwargs, serialized)
        self._start(request, serialized, metadata, run_id)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        request = _sent_with(prompts_request(prompts), kwargs, serialized)
        self._start(request, serialized, metadata, run_id)

    def _start(
        self,
        request: Request,
        serialized: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        run_id: UUID,
    ) -> None:
        side = model_side(
            serialized,
            metadata,
            local=self.local,
            cloud=self.cloud,
            unknown_side=self.unknown_side,
        )
        if side is None:
            return  # a DevPulseChatModel: its router guards and books the call itself
        name, provider = model_names(serialized, metadata)
        classification = self.router.classify(request)
        model = str((metadata or {}).get("ls_model_name") or name or "unknown")
        decision = Decision(
            side=side,
            backend=f"{BACKEND_PREFIX}:{provider or name or 'model'}",
            model=model,
            reasons=(f"a LangChain {name or 'model'} call, watched by DevPulseCallbackHandler",),
            classification=classification,
        )
        if self.guard and classification.local_only and side is Side.CLOUD:
            error = self._blocked(classification, name or provider or "model")
            if self.book:
                self.router.record(classification, decision, error=error)
            raise error
        if self.book:
            with self._lock:
                self._calls[run_id] = _Call(classification, decision, time.perf_counter())

    def _blocked(self, classification: Classification, model: str) -> PrivacyBlocked:
        rules = sorted({f.rule_id for f in classification.findings})
        threshold = self.router.config.privacy.local_only_at.label
        return PrivacyBlocked(
            f"refused to send a {classification.privacy_level.label} prompt to {model} "
            f"(a cloud model): prompts at or above {threshold} stay local"
            + (f" [{', '.join(rules)}]" if rules else "")
        )

    # -- the end of a call: the books ---------------------------------------------------

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._pop(run_id)
        if call is None:
            return
        try:
            answer = _response(response, call, time.perf_counter() - call.started)
            self.router.record(
                call.classification, call.decision, response=answer, latency_s=answer.latency_s
            )
        except Exception as exc:  # the books must never break the caller's chain
            log.warning("langchain.call_not_recorded", error=type(exc).__name__)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._pop(run_id)
        if call is None:
            return
        try:
            self.router.record(
                call.classification,
                call.decision,
                error=error,
                latency_s=time.perf_counter() - call.started,
            )
        except Exception as exc:
            log.warning("langchain.call_not_recorded", error=type(exc).__name__)

    def _pop(self, run_id: UUID) -> _Call | None:
        with self._lock:
            return self._calls.pop(run_id, None)


def _response(result: LLMResult, call: _Call, latency_s: float) -> Response:
    """What LangChain says the model answered: its name and usage, as a DevPulse Response.

    Usage comes from the message's ``usage_metadata`` (the standard field), else from the
    provider's ``llm_output`` (``usage`` or ``token_usage``, in either naming). LangChain's
    input tokens include the cached part, which its details name; DevPulse counts that apart
    (`Usage`), so that the books price it at the cache's rates.
    """
    tokens_in = tokens_out = cache_read = cache_write = 0
    model: str | None = None
    found_usage = False
    for generation in _generations(result):
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if usage:
            details = usage.get("input_token_details") or {}
            read = int(details.get("cache_read") or 0)
            write = int(details.get("cache_creation") or 0)
            tokens_in += max(0, int(usage.get("input_tokens") or 0) - read - write)
            cache_read += read
            cache_write += write
            tokens_out += int(usage.get("output_tokens") or 0)
            found_usage = True
        meta = getattr(message, "response_metadata", None) or {}
        model = model or meta.get("model_name") or meta.get("model")
    output = result.llm_output or {}
    if not found_usage:
        usage = output.get("usage") or output.get("token_usage") or {}
        if isinstance(usage, dict):
            tokens_in = int(usage.get("input_tokens") or usage.get("prompt_tokens") or 0)
            tokens_out = int(usage.get("output_tokens") or usage.get("completion_tokens") or 0)
    model = model or output.get("model_name") or output.get("model") or call.decision.model
    return Response(
        "",  # the books never hold the text
        model=str(model),
        backend=call.decision.backend,
        side=call.decision.side,
        usage=Usage(tokens_in, tokens_out, cache_read, cache_write),
        latency_s=latency_s,
    )


def _generations(result: LLMResult) -> Sequence[Any]:
    return [g for batch in result.generations for g in batch]
