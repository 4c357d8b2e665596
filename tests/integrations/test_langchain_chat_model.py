"""DevPulseChatModel over the real Router, with in-process backends scripted per test.

The backends here are plugins like any other (the `dispatch` hook); what is under test is
the mapping both ways, the routing hints, tools, streaming and the restart policy. The
same model against the rig is in test_langchain_chat_model_rig.py.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from devpulse import Router
from devpulse.core.errors import DevPulseError, StreamIncomplete, UnsupportedRequest
from devpulse.core.types import (
    Chunk,
    Decision,
    Request,
    Response,
    Side,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    replay,
)
from devpulse.hookspecs import hookimpl
from devpulse.integrations.langchain import (
    AnswerRestarted,
    DevPulseCallbackHandler,
    DevPulseChatModel,
)
from devpulse.integrations.langchain.messages import to_request


class Scripted:
    """Backends `cloudy` (cloud) and `steady` (local) answering from a script.

    `answers[backend]` is a list of Responses or "cut" (stream text, then break); every
    request a backend receives is kept in `seen[backend]`.
    """

    def __init__(self, **answers: list[Response | str]) -> None:
        self.answers = answers
        self.seen: dict[str, list[Request]] = {}

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Iterator[Chunk] | None:
        if decision.backend not in self.answers:
            return None
        self.seen.setdefault(decision.backend, []).append(request)
        script = self.answers[decision.backend]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if answer == "cut":
            return _cut()
        if answer == "cut while thinking":
            return _cut_while_thinking()
        assert isinstance(answer, Response)
        return replay(answer)


def _cut() -> Iterator[Chunk]:
    yield Chunk("block_start", 0, block=TextBlock(""))
    yield Chunk("text_delta", 0, text="Half an ans")
    raise StreamIncomplete("cloudy: the connection broke")


def _cut_while_thinking() -> Iterator[Chunk]:
    yield Chunk("block_start", 0, block=ThinkingBlock(""))
    yield Chunk("thinking_delta", 0, text="Let me think")
    raise StreamIncomplete("cloudy: the connection broke")


def answer(content: Any, backend: str = "cloudy", stop: str = "end_turn") -> Response:
    side = Side.CLOUD if backend == "cloudy" else Side.LOCAL
    return Response(content, f"{backend}-model", backend, side, Usage(7, 5), stop_reason=stop)


@pytest.fixture
def build(make_router: Callable[..., Router], tmp_path: Path) -> Callable[..., DevPulseChatModel]:
    def make(backends: Scripted, **model: Any) -> DevPulseChatModel:
        router = make_router(
            {
                "local": {"backend": "steady", "model": "steady-model"},
                "cloud": {"backend": "cloudy", "model": "cloudy-model"},
                "backends": {"steady": {"side": "local"}, "cloudy": {"side": "cloud"}},
                "routing": {"quick_qa": {"side": "cloud"}, "reasoning": {"side": "cloud"}},
                "prices": {"cloudy-model": {"input": 3.0, "output": 15.0}},
                "preflight": {"enabled": False},
                "failover": {"backoff_s": 0.0},
                "ledger": {"path": str(tmp_path / "ledger.sqlite3")},
            },
            plugins=[backends],
        )
        return DevPulseChatModel(router=router, **model)

    return make


def test_a_conversation_maps_to_blocks_with_ids_kept_and_results_grouped() -> None:
    call = {"name": "read", "args": {"path": "a"}, "id": "toolu_1", "type": "tool_call"}
    call2 = {"name": "read", "args": {"path": "b"}, "id": "toolu_2", "type": "tool_call"}
    request = to_request(
        [
            SystemMessage("Be brief."),
            HumanMessage("Read a and b."),
            AIMessage("Reading.", tool_calls=[call, call2]),
            ToolMessage("A's text", tool_call_id="toolu_1"),
            ToolMessage("no such file", tool_call_id="toolu_2", status="error"),
            HumanMessage([{"type": "text", "text": "Now?"}]),
        ]
    )
    assert [b.text for b in request.system] == ["Be brief."]
    roles = [m.role for m in request.messages]
    assert roles == ["user", "assistant", "user", "user"]
    assistant = request.messages[1]
    assert assistant.content[0] == TextBlock("Reading.")
    assert [(b.id, dict(b.input)) for b in assistant.tool_uses] == [
        ("toolu_1", {"path": "a"}),
        ("toolu_2", {"path": "b"}),
    ]
    results = request.messages[2].content
    assert all(isinstance(r, ToolResultBlock) for r in results)
    assert [(r.tool_use_id, r.text, r.is_error) for r in results] == [  # type: ignore[union-attr]
        ("toolu_1", "A's text", False),
        ("toolu_2", "no such file", True),
    ]


def test_invoke_answers_through_the_router_and_says_who_answered(build) -> None:
    backends = Scripted(cloudy=[answer("Paris.")])
    message = build(backends, model_name="my-model").invoke("What is the capital of France?")
    assert message.content == "Paris."
    assert message.usage_metadata == {"input_tokens": 7, "output_tokens": 5, "total_tokens": 12}
    meta = message.response_metadata
    assert (meta["side"], meta["backend"], meta["model_name"]) == (
        "cloud",
        "cloudy",
        "cloudy-model",
    )
    assert meta["stop_reason"] == "end_turn"
    assert any(r.endswith("-> cloud") for r in meta["reasons"])  # why it went there
    (sent,) = backends.seen["cloudy"]
    assert sent.metadata["model"] == "my-model"


def test_usage_counts_the_cached_prompt_in_the_input_as_langchain_does(build) -> None:
    cached = Response("ok", "cloudy-model", "cloudy", Side.CLOUD, Usage(10, 5, 100, 20))
    message = build(Scripted(cloudy=[cached])).invoke("Hello?")
    assert message.usage_metadata == {
        "input_tokens": 130,
        "output_tokens": 5,
        "total_tokens": 135,
        "input_token_details": {"cache_read": 100, "cache_creation": 20},
    }


def test_a_secret_stays_local_whatever_the_table_says(build) -> None:
    backends = Scripted(cloudy=[answer("no")], steady=[answer("ok", "steady")])
    message = build(backends).invoke("rotate AKIAZ3MXQ7PLR2VWK4TN today")
    assert message.response_metadata["side"] == "local"
    assert "cloudy" not in backends.seen


def test_hints_come_from_run_metadata_and_bound_kwargs(build) -> None:
    backends = Scripted(cloudy=[answer("ok")], steady=[answer("ok", "steady")])
    model = build(backends, task="drafting")
    model.invoke("hello", config={"metadata": {"session_id": "s-1", "user_id": "u-9"}})
    (sent,) = backends.seen["steady"]  # drafting is local in the table
    assert (sent.metadata["session_id"], sent.metadata["user_id"]) == ("s-1", "u-9")
    model.bind(task="reasoning").invoke("hello")
    (sent,) = backends.seen["cloudy"]
    assert sent.task is not None
    assert sent.task.value == "reasoning"


def test_an_unknown_task_hint_fails_as_devpulse_error_before_any_dispatch(build) -> None:
    backends = Scripted(cloudy=[answer("ok")], steady=[answer("ok", "steady")])
    with pytest.raises(DevPulseError, match="unknown task 'reasonning'"):
        build(backends).bind(task="reasonning").invoke("hello")
    assert not backends.seen


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_bound_tools_reach_the_backend_and_tool_calls_come_back_with_ids(build) -> None:
    call = ToolUseBlock("toolu_42", "get_weather", {"city": "Oslo"})
    backends = Scripted(cloudy=[answer([call], stop="tool_use")])
    message = build(backends).bind_tools([get_weather], tool_choice="any").invoke("Oslo?")
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "Oslo"}, "id": "toolu_42", "type": "tool_call"}
    ]
    (sent,) = backends.seen["cloudy"]
    assert [t.name for t in sent.tools] == ["get_weather"]
    assert sent.tools[0].input_schema["properties"]["city"]["type"] == "string"
    assert sent.tool_choice is not None
    assert sent.tool_choice.type == "any"


def test_parallel_tool_calls_off_and_tool_choice_false_are_honoured(build) -> None:
    backends = Scripted(cloudy=[answer("ok")])
    model = build(backends)
    model.bind_tools([get_weather], parallel_tool_calls=False).invoke("Oslo?")
    model.bind_tools([get_weather], tool_choice="any", parallel_tool_calls=False).invoke("Oslo?")
    model.bind_tools([get_weather], tool_choice=False).invoke("Oslo?")
    first, second, third = (sent.tool_choice for sent in backends.seen["cloudy"])
    assert first == ToolChoice("auto", parallel=False)
    assert second == ToolChoice("any", parallel=False)
    assert third is None  # unset, as LangChain's own models read False


NOTES = "deploy window: Tuesday 14:00 UTC"


@pytest.mark.parametrize(
    "part",
    [
        {"type": "text-plain", "text": NOTES, "mime_type": "text/plain"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": NOTES}},
        {
            "type": "file",
            "base64": base64.b64encode(NOTES.encode()).decode(),
            "mime_type": "text/markdown",
        },
    ],
)
def test_a_text_attachment_reaches_the_backend_as_text(build, part: dict[str, Any]) -> None:
    backends = Scripted(cloudy=[answer("Tuesday.")])
    build(backends).invoke([HumanMessage([{"type": "text", "text": "When?"}, part])])
    (sent,) = backends.seen["cloudy"]
    assert [b.text for b in sent.messages[0].content] == ["When?", NOTES]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "file", "base64": "JVBERi0xLjQK", "mime_type": "application/pdf"},
        {"type": "audio", "base64": "UklGRg==", "mime_type": "audio/wav"},
        {"type": "file", "file_id": "file-abc123"},
    ],
)
def test_an_attachment_that_cannot_be_sent_is_refused_not_dropped(
    build, part: dict[str, Any]
) -> None:
    backends = Scripted(cloudy=[answer("ok")])
    with pytest.raises(UnsupportedRequest, match=f"a {part['type']!r} content part"):
        build(backends).invoke([HumanMessage([{"type": "text", "text": "What is it?"}, part])])
    assert backends.seen == {}


class Weather(BaseModel):
    city: str
    celsius: float


def test_structured_output_goes_through_tool_calling(build) -> None:
    call = ToolUseBlock("toolu_7", "Weather", {"city": "Oslo", "celsius": -3.5})
    backends = Scripted(cloudy=[answer([call], stop="tool_use")])
    result = build(backends).with_structured_output(Weather).invoke("Weather in Oslo?")
    assert result == Weather(city="Oslo", celsius=-3.5)
    (sent,) = backends.seen["cloudy"]
    assert [t.name for t in sent.tools] == ["Weather"]
    assert sent.tool_choice is not None
    assert sent.tool_choice.type == "any"  # the model must call the one tool there is


def test_streamed_chunks_add_up_to_the_whole_answer_tool_calls_included(build) -> None:
    content = [TextBlock("Checking."), ToolUseBlock("toolu_3", "get_weather", {"city": "Rome"})]
    backends = Scripted(cloudy=[answer(content, stop="tool_use")])
    chunks = list(build(backends).bind_tools([get_weather]).stream("Rome?"))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.content == "Checking."
    assert whole.tool_calls == [
        {"name": "get_weather", "args": {"city": "Rome"}, "id": "toolu_3", "type": "tool_call"}
    ]
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] == 5
    assert whole.response_metadata["backend"] == "cloudy"


def test_a_restart_after_the_first_chunk_raises_by_default(build) -> None:
    backends = Scripted(cloudy=["cut"], steady=[answer("Whole answer.", "steady")])
    with pytest.raises(AnswerRestarted, match="buffer"):
        list(build(backends).stream("Tell me something."))


def test_a_restart_before_anything_was_handed_out_is_invisible(build) -> None:
    """The answer broke while the model was still thinking (never handed to LangChain):
    the fallback's answer streams as if it had been the first."""
    backends = Scripted(cloudy=["cut while thinking"], steady=[answer("Whole answer.", "steady")])
    chunks = list(build(backends).stream("Tell me something."))
    assert "".join(str(c.content) for c in chunks) == "Whole answer."
    assert chunks[-1].response_metadata["side"] == "local"


def test_buffered_streams_hand_out_only_the_whole_fallback_answer(build) -> None:
    backends = Scripted(cloudy=["cut"], steady=[answer("Whole answer.", "steady")])
    chunks = list(build(backends, on_restart="buffer").stream("Tell me something."))
    assert "".join(str(c.content) for c in chunks) == "Whole answer."
    assert chunks[-1].response_metadata["side"] == "local"


def test_ainvoke_astream_and_batch(build) -> None:
    backends = Scripted(cloudy=[answer("Yes.")])
    model = build(backends)

    async def both() -> tuple[Any, list[Any]]:
        one = await model.ainvoke("Is it?")
        streamed = [c async for c in model.astream("Is it?")]
        return one, streamed

    one, streamed = asyncio.run(both())
    assert one.content == "Yes."
    assert "".join(str(c.content) for c in streamed) == "Yes."
    assert [m.content for m in model.batch(["a?", "b?", "c?"])] == ["Yes."] * 3


def test_the_guard_leaves_it_to_the_router_so_each_call_is_booked_once(build) -> None:
    backends = Scripted(cloudy=[answer("Yes.")])
    model = build(backends)
    model.invoke("Is it?", config={"callbacks": [DevPulseCallbackHandler(model.router)]})
    assert len(model.router.ledger.rows()) == 1


def test_the_default_router_is_built_once_however_many_threads_ask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[object] = []
    second = threading.Event()

    class SlowRouter:
        """Holds the first build open until another starts (or a while has passed)."""

        def __init__(self) -> None:
            built.append(self)
            if len(built) == 1:
                second.wait(timeout=1.0)
            else:
                second.set()

    monkeypatch.setattr("devpulse.core.pipeline.Router", SlowRouter)
    model = DevPulseChatModel()
    handed: list[object] = []
    threads = [
        threading.Thread(target=lambda: handed.append(model.devpulse_router)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert {id(r) for r in handed} == {id(built[0])}
