"""`DevPulseChatModel`: a LangChain chat model whose every call goes through the DevPulse
router (classify, route, preflight, dispatch, failover), so a LangChain app gets hybrid
routing by swapping one model object.

    from devpulse.integrations.langchain import DevPulseChatModel

    model = DevPulseChatModel()                      # Router() from the usual config
    model.invoke("summarize this changelog")         # routed: local or cloud
    model.bind_tools([get_weather]).invoke("...")    # tool calls with stable ids
    model.invoke("...", config={"metadata": {"task": "reasoning", "session_id": "s1"}})

Routing hints come from bound kwargs or the run's metadata: ``task`` (a task class, which
wins over the classifiers), ``session_id`` and ``user_id`` (the ledger splits spend by them).

Streams: before the first chunk a failover is invisible. LangChain has no way to take back
chunks already handed out, so when an answer breaks after its first chunk and a fallback
starts it again, ``on_restart="raise"`` (the default) raises `AnswerRestarted`, and
``on_restart="buffer"`` holds every chunk until the answer is complete, so that only a
whole answer is ever streamed. Two answers are never spliced together.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import ConfigDict, Field, PrivateAttr

from devpulse.core.errors import DevPulseError
from devpulse.core.types import (
    META_MODEL,
    META_SESSION,
    META_USER,
    Chunk,
    Request,
    Response,
    ToolChoice,
    ToolUseBlock,
)
from devpulse.integrations.langchain.messages import (
    response_metadata,
    to_ai_message,
    to_request,
    to_tool,
    to_tool_choice,
    usage_metadata,
)

HINTS = ("task", META_SESSION, META_USER)
# Held while a model builds its default router: a batch's threads all ask for it at once,
# and each would otherwise build its own (its own breakers, its own ledger connection).
_DEFAULT_ROUTER_LOCK = threading.Lock()


class AnswerRestarted(DevPulseError):
    """An answer broke after it had started streaming, and a fallback started it again."""


class DevPulseChatModel(BaseChatModel):
    """A LangChain chat model answered by the DevPulse router."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    router: Any = Field(default=None, exclude=True)
    """The `devpulse.Router` to answer through; a default one, built on first use, if None."""
    model_name: str = "devpulse"
    """The caller's own name for this model, kept in the request's metadata."""
    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    task: str | None = None
    """A task class for every call (``reasoning``, ``drafting``...): wins over the classifiers."""
    on_restart: Literal["raise", "buffer"] = "raise"

    _router: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "devpulse"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "task": self.task, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # "devpulse" tells DevPulseCallbackHandler that the router guards and books this
        # model itself.
        params = LangSmithParams(
            ls_provider="devpulse", ls_model_name=self.model_name, ls_model_type="chat"
        )
        if stop:
            params["ls_stop"] = stop
        return params

    @property
    def devpulse_router(self) -> Any:
        """The router calls go through."""
        if self.router is not None:
            return self.router
        if self._router is None:
            with _DEFAULT_ROUTER_LOCK:
                if self._router is None:
                    from devpulse.core.pipeline import Router  # noqa: PLC0415  # loads the plugins

                    self._router = Router()
        return self._router

    # -- tools --------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer `tools` (BaseTools, functions, Pydantic classes or schemas) on every call.

        `tool_choice`: "auto", "any"/"required" (must call one), "none", or a tool's name
        (False, as for LangChain's own models, leaves it unset). `parallel_tool_calls=False`
        asks for at most one call per turn.
        """
        choice = to_tool_choice(None if tool_choice is False else tool_choice)
        if parallel_tool_calls is False:
            choice = dataclasses.replace(choice or ToolChoice("auto"), parallel=False)
        return self.bind(tools=[to_tool(t) for t in tools], tool_choice=choice, **kwargs)

    # -- calls --------------------------------------------------------------------------

    def _request(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> Request:
        """The DevPulse request for one call: the conversation, tools, sampling and hints."""
        hints = {k: v for k, v in (metadata or {}).items() if k in HINTS and v}
        hints.update({k: kwargs.pop(k) for k in HINTS if kwargs.get(k)})
        task = hints.pop("task", None) or self.task
        meta = {META_MODEL: self.model_name, **{k: str(v) for k, v in hints.items()}}
        return to_request(
            messages,
            task=task or None,  # a name: `Request` checks it (an unknown one is a DevPulseError)
            tools=tuple(kwargs.pop("tools", ()) or ()),
            tool_choice=kwargs.pop("tool_choice", None),
            max_tokens=int(kwargs.pop("max_tokens", self.max_tokens)),
            temperature=kwargs.pop("temperature", self.temperature),
            top_p=kwargs.pop("top_p", self.top_p),
            stop_sequences=tuple(stop or ()),
            metadata=meta,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._request(messages, stop, _metadata(run_manager), kwargs)
        return _result(self.devpulse_router.invoke(request))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._request(messages, stop, _metadata(run_manager), kwargs)
        return _result(await self.devpulse_router.ainvoke(request))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._request(messages, stop, _metadata(run_manager), kwargs)
        told = _Teller(self.on_restart)
        for chunk in self.devpulse_router.stream(request):
            for out in told(chunk):
                if run_manager is not None and isinstance(out.message.content, str):
                    run_manager.on_llm_new_token(out.message.content, chunk=out)
                yield out

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._request(messages, stop, _metadata(run_manager), kwargs)
        told = _Teller(self.on_restart)
        async for chunk in self.devpulse_router.astream(request):
            for out in told(chunk):
                if run_manager is not None and isinstance(out.message.content, str):
                    await run_manager.on_llm_new_token(out.message.content, chunk=out)
                yield out


def _metadata(run_manager: Any) -> dict[str, Any] | None:
    return getattr(run_manager, "metadata", None)


def _result(response: Response) -> ChatResult:
    message = to_ai_message(response, response.reasons)
    return ChatResult(generations=[ChatGeneration(message=message)])


class _Teller:
    """DevPulse chunks as LangChain chunks, applying the restart policy.

    `started` says whether a chunk has been handed to LangChain: a restart before that (the
    answer broke while the model was still thinking, which is never handed out) is as
    invisible as a failover before the first chunk.
    """

    def __init__(self, on_restart: Literal["raise", "buffer"]) -> None:
        self.buffer = on_restart == "buffer"
        self.held: list[ChatGenerationChunk] = []
        self.started = False

    def __call__(self, chunk: Chunk) -> list[ChatGenerationChunk]:
        if chunk.type == "restart":
            if self.buffer or not self.started:  # nothing handed out yet: nothing to take back
                self.held.clear()
                return []
            raise AnswerRestarted(
                "the answer broke off after it had started streaming and a fallback started "
                "it again; LangChain cannot take back chunks already handed out (set "
                'on_restart="buffer" to stream only whole answers)'
            )
        out = _as_langchain(chunk)
        if out is None:
            return []
        self.started = True
        if not self.buffer:
            return [out]
        self.held.append(out)
        if chunk.type != "message_stop":
            return []
        held, self.held = self.held, []
        return held


def _as_langchain(chunk: Chunk) -> ChatGenerationChunk | None:
    """One DevPulse delta as LangChain's: text, tool-call chunks, usage, the last chunk."""
    message: AIMessageChunk | None = None
    if chunk.type == "text_delta":
        message = AIMessageChunk(content=chunk.text)
    elif chunk.type == "block_start" and isinstance(chunk.block, ToolUseBlock):
        call = {"name": chunk.block.name, "args": "", "id": chunk.block.id, "index": chunk.index}
        message = AIMessageChunk(content="", tool_call_chunks=[call])  # type: ignore[list-item]
    elif chunk.type == "tool_input_delta":
        call = {"name": None, "args": chunk.partial_json, "id": None, "index": chunk.index}
        message = AIMessageChunk(content="", tool_call_chunks=[call])  # type: ignore[list-item]
    elif chunk.type == "message_stop" and chunk.response is not None:
        response = chunk.response
        message = AIMessageChunk(
            content="",
            usage_metadata=usage_metadata(response.usage),  # type: ignore[arg-type]
            response_metadata=response_metadata(response, response.reasons),
            chunk_position="last",
        )
    return ChatGenerationChunk(message=message) if message is not None else None
