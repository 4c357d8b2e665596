"""The LangChain callback handler over langchain-core's own fake chat models.

The fakes are real LangChain models (the callback machinery, chains and batching are
LangChain's own); only the answer is canned. A model the handler does not recognise counts
as a cloud model, so the fakes stand in for ChatAnthropic and friends here.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, Field

from devpulse import Router
from devpulse.core.errors import PrivacyBlocked
from devpulse.integrations.langchain import DevPulseCallbackHandler
from devpulse.integrations.langchain.guard import BACKEND_PREFIX

SECRET_PROMPT = "deploy it with aws_access_key_id=AKIAZ3MXQ7PLR2VWK4TN please"
CLEAN_PROMPT = "summarize: the build is green"
ANSWER = AIMessage(
    "All green.", usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14}
)


@pytest.fixture
def router(make_router: Callable[..., Router], tmp_path: Path) -> Router:
    return make_router({"ledger": {"path": str(tmp_path / "ledger.sqlite3")}})


def fake(*answers: AIMessage) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(answers or [ANSWER] * 8))


def rows(router: Router) -> list[dict[str, Any]]:
    ledger = router.ledger
    assert ledger is not None
    return ledger.rows()


def test_a_secret_bound_for_a_cloud_model_is_refused_and_booked_refused(router: Router) -> None:
    handler = DevPulseCallbackHandler(router)
    with pytest.raises(PrivacyBlocked, match=r"secret prompt .* cloud model.*aws-access-key-id"):
        fake().invoke(SECRET_PROMPT, config={"callbacks": [handler]})
    (row,) = rows(router)
    assert (row["outcome"], row["side"], row["privacy_level"]) == ("refused", "cloud", "secret")
    assert "AKIA" not in repr(row)


def test_a_clean_call_is_answered_and_booked_once_with_its_usage(router: Router) -> None:
    handler = DevPulseCallbackHandler(router)
    answer = fake().invoke(CLEAN_PROMPT, config={"callbacks": [handler]})
    assert answer.content == "All green."
    (row,) = rows(router)
    assert (row["outcome"], row["side"]) == ("answered", "cloud")
    assert row["backend"] == f"{BACKEND_PREFIX}:genericfakechatmodel"
    assert (row["input_tokens"], row["output_tokens"]) == (11, 3)
    assert handler._calls == {}  # nothing kept after the call


def test_cached_prompt_tokens_are_booked_apart_from_the_input(router: Router) -> None:
    """LangChain's input tokens include the cached part; the books price it apart."""
    cached = AIMessage(
        "All green.",
        usage_metadata={
            "input_tokens": 130,
            "output_tokens": 3,
            "total_tokens": 133,
            "input_token_details": {"cache_read": 100, "cache_creation": 20},
        },
    )
    fake(cached).invoke(CLEAN_PROMPT, config={"callbacks": [DevPulseCallbackHandler(router)]})
    (row,) = rows(router)
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        10,
        100,
        20,
    )


WAYS = ("invoke", "ainvoke", "stream", "astream", "batch", "abatch")


def call(way: str, prompt: str, handler: DevPulseCallbackHandler) -> int:
    """Call a fake model one of LangChain's ways; a batch sends a clean prompt first."""
    config: Any = {"callbacks": [handler]}
    model = fake()
    prompts = [CLEAN_PROMPT, prompt]
    ways: dict[str, Callable[[], Any]] = {
        "invoke": lambda: model.invoke(prompt, config=config),
        "ainvoke": lambda: asyncio.run(model.ainvoke(prompt, config=config)),
        "stream": lambda: list(model.stream(prompt, config=config)),
        "astream": lambda: asyncio.run(_collect(model.astream(prompt, config=config))),
        "batch": lambda: model.batch(prompts, config=config),
        "abatch": lambda: asyncio.run(model.abatch(prompts, config=config)),
    }
    ways[way]()
    return 2 if way.endswith("batch") else 1


@pytest.mark.parametrize("way", WAYS)
def test_every_way_of_calling_a_model_is_guarded(router: Router, way: str) -> None:
    with pytest.raises(PrivacyBlocked):
        call(way, SECRET_PROMPT, DevPulseCallbackHandler(router))
    assert "refused" in {r["outcome"] for r in rows(router)}


@pytest.mark.parametrize("way", WAYS)
def test_clean_calls_pass_every_way_and_are_booked_once_each(router: Router, way: str) -> None:
    calls = call(way, "and the tests?", DevPulseCallbackHandler(router))
    booked = rows(router)
    assert len(booked) == calls
    assert {r["outcome"] for r in booked} == {"answered"}


def test_a_chain_with_the_handler_in_its_config_is_guarded(router: Router) -> None:
    handler = DevPulseCallbackHandler(router)
    chain = (
        ChatPromptTemplate.from_messages([("system", "You review configs."), ("human", "{text}")])
        | fake()
        | StrOutputParser()
    )
    assert chain.invoke({"text": CLEAN_PROMPT}, config={"callbacks": [handler]}) == "All green."
    with pytest.raises(PrivacyBlocked):
        chain.invoke({"text": SECRET_PROMPT}, config={"callbacks": [handler]})
    with pytest.raises(PrivacyBlocked):
        asyncio.run(chain.ainvoke({"text": SECRET_PROMPT}, config={"callbacks": [handler]}))
    assert [r["outcome"] for r in rows(router)].count("answered") == 1


def test_a_secret_a_tool_read_keeps_the_next_agent_turn_off_the_cloud(router: Router) -> None:
    """The agent case: a tool reads `.env`, and the turn that carries its result is stopped."""
    handler = DevPulseCallbackHandler(router)
    call = {"name": "read_file", "args": {"path": ".env"}, "id": "call_1", "type": "tool_call"}
    model = fake(AIMessage("", tool_calls=[call]), ANSWER).with_config(callbacks=[handler])
    tools = {"read_file": lambda path: "STRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n"}

    history: list[Any] = [HumanMessage("Check the deploy settings in .env")]

    def agent_loop() -> int:
        for turn in range(3):
            reply = model.invoke(history)
            history.append(reply)
            if not reply.tool_calls:
                return turn + 1
            for tool_call in reply.tool_calls:
                result = tools[tool_call["name"]](**tool_call["args"])
                history.append(ToolMessage(result, tool_call_id=tool_call["id"]))
        return 3

    with pytest.raises(PrivacyBlocked, match="stripe-key"):
        agent_loop()
    turns = sum(isinstance(m, AIMessage) for m in history)
    assert turns == 1  # the first turn went out; the one holding the tool's result did not
    assert [r["outcome"] for r in rows(router)] == ["answered", "refused"]


def test_secrets_in_tool_call_arguments_are_seen_too(router: Router) -> None:
    handler = DevPulseCallbackHandler(router)
    call = {
        "name": "deploy",
        "args": {"env": {"AWS_ACCESS_KEY_ID": "AKIAZ3MXQ7PLR2VWK4TN"}},
        "id": "call_9",
        "type": "tool_call",
    }
    history = [HumanMessage("deploy"), AIMessage("", tool_calls=[call]), HumanMessage("again")]
    with pytest.raises(PrivacyBlocked):
        fake().invoke(history, config={"callbacks": [handler]})


ENV = (
    "AWS_ACCESS_KEY_ID=AKIAZ3MXQ7PLR2VWK4TN\n"
    "AWS_SECRET_ACCESS_KEY=Zx9Qw2Er7Ty4Ui1Op6As3Df8Gh5Jk0Lz2Xc7Vb4N"
)
GITHUB = "ghp_" + "R7kQ2mX9pL4vT8wN3bY6cJ1hF5dS0aZeUo2i"
HISTORIES: dict[str, Callable[[], list[Any]]] = {
    # a history built from a stream holds chunks, whose tool calls go out as tool_use
    "tool call of an AIMessageChunk": lambda: [
        HumanMessage("deploy"),
        AIMessageChunk(
            "",
            tool_calls=[{"name": "deploy", "args": {"env": ENV}, "id": "c1", "type": "tool_call"}],
        ),
        ToolMessage("done", tool_call_id="c1"),
    ],
    "citation of a text part": lambda: [
        HumanMessage("what is in the settings?"),
        AIMessage(
            [
                {
                    "type": "text",
                    "text": "The file sets two keys.",
                    "citations": [
                        {"type": "char_location", "cited_text": ENV, "document_index": 0}
                    ],
                }
            ]
        ),
        HumanMessage("thanks"),
    ],
    "thinking in a tool result": lambda: [
        HumanMessage("ask the sub-agent"),
        AIMessage("", tool_calls=[{"name": "agent", "args": {}, "id": "c2", "type": "tool_call"}]),
        ToolMessage(
            [{"type": "thinking", "thinking": f"the key is {ENV}", "signature": "c2ln"}],
            tool_call_id="c2",
        ),
    ],
    "key of a tool_use part's input": lambda: [  # the part alone: no tool_calls repeat it
        HumanMessage("revoke"),
        AIMessage(
            [{"type": "tool_use", "id": "c3", "name": "revoke", "input": {"tokens": {GITHUB: []}}}]
        ),
        ToolMessage("revoked", tool_call_id="c3"),
    ],
}


HISTORIES["text sent as an image in a tool_result part"] = lambda: [
    HumanMessage("read it"),
    AIMessage("", tool_calls=[{"name": "read", "args": {}, "id": "c4", "type": "tool_call"}]),
    HumanMessage(
        [
            {
                "type": "tool_result",
                "tool_use_id": "c4",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "text/plain",
                            "data": base64.b64encode(ENV.encode()).decode(),
                        },
                    }
                ],
            }
        ]
    ),
]
HISTORIES["tool call of a ToolMessageChunk's history"] = lambda: [
    HumanMessage("deploy"),
    AIMessageChunk(
        "", tool_calls=[{"name": "deploy", "args": {}, "id": "c5", "type": "tool_call"}]
    ),
    ToolMessageChunk(ENV, tool_call_id="c5"),
]
HISTORIES["a SystemMessageChunk"] = lambda: [SystemMessageChunk(ENV), HumanMessage("go")]
HISTORIES["key of a tool_use part's input, a string under it"] = lambda: [
    HumanMessage("revoke"),
    AIMessage(
        [{"type": "tool_use", "id": "c6", "name": "revoke", "input": {GITHUB: "all-scopes"}}]
    ),
    ToolMessage("revoked", tool_call_id="c6"),
]


@pytest.mark.parametrize("history", HISTORIES)
def test_secrets_in_every_part_a_provider_sends_are_seen(router: Router, history: str) -> None:
    """Review 26: each of these went to ChatAnthropic's endpoint, the guard passing it."""
    handler = DevPulseCallbackHandler(router)
    with pytest.raises(PrivacyBlocked):
        fake().invoke(HISTORIES[history](), config={"callbacks": [handler]})


def test_a_models_own_stop_sequences_are_seen(router: Router) -> None:
    """ChatAnthropic sends its constructor's stop sequences, which invocation_params lack."""
    handler = DevPulseCallbackHandler(router)
    with pytest.raises(PrivacyBlocked, match="aws-access-key-id"):
        _anthropic(stop=[f"key {KEY}"]).invoke(CLEAN_PROMPT, config={"callbacks": [handler]})


@pytest.mark.parametrize("bound", ["tool", "stop"])
def test_secrets_in_what_is_bound_to_the_call_are_seen_too(router: Router, bound: str) -> None:
    """Bound tools and stop sequences are sent with the messages (`invocation_params`)."""
    handler = DevPulseCallbackHandler(router)
    key = "AKIAZ3MXQ7PLR2VWK4TN"
    tool = {"name": "deploy", "description": f"deploys with {key}", "input_schema": {}}
    model = fake().bind(tools=[tool]) if bound == "tool" else fake().bind(stop=[key])
    with pytest.raises(PrivacyBlocked, match="aws-access-key-id"):
        model.invoke(CLEAN_PROMPT, config={"callbacks": [handler]})
    assert fake().bind(stop=["END"]).invoke(CLEAN_PROMPT, config={"callbacks": [handler]})


KEY = "AKIAZ3MXQ7PLR2VWK4TN"


class Deploy(BaseModel):
    """Where to deploy."""

    region: str = Field(description=f"the region (creds: aws_access_key_id={KEY})")


def _deep(levels: int) -> dict[str, Any]:
    nested: dict[str, Any] = {"key": f"aws_access_key_id={KEY}"}
    for _ in range(levels):
        nested = {"n": nested}
    return nested


def _anthropic(**kwargs: Any) -> ChatAnthropic:
    """A real ChatAnthropic pointed at a closed port: the guard must stop it before it tries."""
    return ChatAnthropic(  # type: ignore[call-arg]
        model="claude-sonnet-4-5",
        base_url="http://127.0.0.1:9",
        api_key="k",
        max_retries=0,
        **kwargs,
    )


BOUND: dict[str, Callable[[], Any]] = {
    "response_format class": lambda: fake().bind(response_format=Deploy),
    "bound system": lambda: fake().bind(system=f"ops key aws_access_key_id={KEY}"),
    "extra_body": lambda: fake().bind(extra_body={"metadata": {"note": f"key {KEY}"}}),
    "deeper than the walk": lambda: fake().bind(extra_body=_deep(40)),
    "ChatAnthropic model_kwargs system": lambda: _anthropic(
        model_kwargs={"system": f"ops key aws_access_key_id={KEY}"}
    ),
    "ChatAnthropic json_schema output": lambda: _anthropic().with_structured_output(
        Deploy, method="json_schema"
    ),
}


@pytest.mark.parametrize("bound", BOUND)
def test_secrets_in_any_parameter_sent_with_the_call_are_seen(router: Router, bound: str) -> None:
    """Every string in `invocation_params` is sent somewhere: structured-output schemas,
    a bound system prompt, `model_kwargs`, `extra_body`, however deep."""
    handler = DevPulseCallbackHandler(router)
    with pytest.raises(PrivacyBlocked, match="aws-access-key-id"):
        BOUND[bound]().invoke(CLEAN_PROMPT, config={"callbacks": [handler]})


def test_settings_and_clean_schemas_in_the_parameters_pass(router: Router) -> None:
    class Summary(BaseModel):
        text: str = Field(description="one line")

    handler = DevPulseCallbackHandler(router)
    model = fake().bind(response_format=Summary, temperature=0.2, max_tokens=64, n=1, stop=None)
    assert model.invoke(CLEAN_PROMPT, config={"callbacks": [handler]}).content == "All green."


CREDENTIALS = f"[default]\naws_access_key_id = {KEY}\n"
DOC = base64.b64encode(CREDENTIALS.encode()).decode()
WRAPPED = "\n".join(DOC[i : i + 16] for i in range(0, len(DOC), 16))  # MIME-style lines
FILES: dict[str, dict[str, Any]] = {
    "standard, text/plain": {"type": "file", "base64": DOC, "mime_type": "text/plain"},
    "standard, wrapped lines": {"type": "file", "base64": WRAPPED, "mime_type": "text/plain"},
    "v0, application/json": {
        "type": "file",
        "source_type": "base64",
        "data": DOC,
        "mime_type": "application/json",
    },
    "anthropic document": {
        "type": "document",
        "source": {"type": "base64", "media_type": "text/plain", "data": DOC},
    },
    "openai file data URL": {
        "type": "file",
        "file": {"filename": "credentials", "file_data": f"data:text/plain;base64,{DOC}"},
    },
    "octet-stream that is UTF-8": {
        "type": "file",
        "base64": DOC,
        "mime_type": "application/octet-stream",
    },
    "not base64: read raw": {
        "type": "file",
        "base64": f"aws_access_key_id={KEY} !",
        "mime_type": "text/plain",
    },
}


@pytest.mark.parametrize("part", FILES)
def test_secrets_in_a_base64_text_file_are_read_decoded(router: Router, part: str) -> None:
    handler = DevPulseCallbackHandler(router)
    message = HumanMessage([{"type": "text", "text": "summarize the file"}, FILES[part]])
    with pytest.raises(PrivacyBlocked, match="aws-access-key-id"):
        fake().invoke([message], config={"callbacks": [handler]})


ODD = ["%%% not base64 %%%", "QUJD", "//79/A==", base64.b64encode(b"all green, ok")[:-3].decode()]


@pytest.mark.parametrize("data", ODD)
@pytest.mark.parametrize("media", ["text/plain", "application/pdf", "text/markdown"])
def test_odd_base64_files_never_break_the_call(router: Router, data: str, media: str) -> None:
    """Bad base64, a binary payload, a cut one: read as well as can be, and no error."""
    handler = DevPulseCallbackHandler(router)
    part = {"type": "file", "base64": data, "mime_type": media}
    message = HumanMessage([{"type": "text", "text": "summarize"}, part])
    assert fake().invoke([message], config={"callbacks": [handler]}).content == "All green."


def test_secrets_in_invalid_tool_calls_are_seen(router: Router) -> None:
    """ChatOpenAI sends an AI message's invalid tool calls back, name and raw arguments."""
    handler = DevPulseCallbackHandler(router)
    bad = {
        "type": "invalid_tool_call",
        "id": "c1",
        "name": "deploy",
        "args": '{"aws_key": "' + KEY + '", ',
        "error": None,
    }
    history = [
        HumanMessage("deploy"),
        AIMessage("", invalid_tool_calls=[bad]),  # type: ignore[list-item]
        ToolMessage("bad args", tool_call_id="c1"),
    ]
    with pytest.raises(PrivacyBlocked, match="aws-access-key-id"):
        fake().invoke(history, config={"callbacks": [handler]})


@pytest.mark.parametrize("kind", ["human", "system", "ai", "tool"])
def test_secrets_in_a_message_name_are_seen(router: Router, kind: str) -> None:
    handler = DevPulseCallbackHandler(router)
    named: dict[str, Any] = {
        "human": HumanMessage("hi", name=KEY),
        "system": SystemMessage("be brief", name=KEY),
        "ai": AIMessage("hello", name=KEY),
        "tool": ToolMessage("done", tool_call_id="c1", name=KEY),
    }
    history = [named[kind]] if kind in ("human", "system") else [HumanMessage("hi"), named[kind]]
    with pytest.raises(PrivacyBlocked, match="aws-access-key-id"):
        fake().invoke(history, config={"callbacks": [handler]})


def test_a_model_named_local_is_not_guarded_but_still_booked(router: Router) -> None:
    handler = DevPulseCallbackHandler(router, local=["GenericFakeChatModel"])
    fake().invoke(SECRET_PROMPT, config={"callbacks": [handler]})
    (row,) = rows(router)
    assert (row["outcome"], row["side"], row["privacy_level"]) == ("answered", "local", "secret")


def test_an_error_in_the_model_is_booked_as_a_failure(router: Router) -> None:
    handler = DevPulseCallbackHandler(router)
    with pytest.raises(StopIteration):  # the fake has no answer left
        GenericFakeChatModel(messages=iter([])).invoke(
            CLEAN_PROMPT, config={"callbacks": [handler]}
        )
    (row,) = rows(router)
    assert row["outcome"] == "failed"


def test_books_that_cannot_be_written_never_break_the_call(router: Router, tmp_path: Path) -> None:
    handler = DevPulseCallbackHandler(router)
    assert fake().invoke(CLEAN_PROMPT, config={"callbacks": [handler]}).content == "All green."
    ledger_file = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(ledger_file) as db:
        db.execute("DROP TABLE requests")  # every later write fails
    assert fake().invoke(CLEAN_PROMPT, config={"callbacks": [handler]}).content == "All green."


def test_concurrent_calls_are_booked_once_each(router: Router) -> None:
    handler = DevPulseCallbackHandler(router)
    prompts = [f"summarize note {i}" for i in range(24)]
    model = GenericFakeChatModel(messages=iter([ANSWER] * len(prompts)))
    model.batch(prompts, config={"callbacks": [handler], "max_concurrency": 8})
    assert len(rows(router)) == len(prompts)
    assert handler._calls == {}


async def _collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]
