"""What each backend sends: blocks, tools, tool results and limits in its provider's shape."""

from __future__ import annotations

import json

import pytest

from devpulse import (
    Decision,
    Image,
    Message,
    Request,
    Side,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    UnsupportedRequest,
    config_from_mapping,
)
from devpulse.core.types import opaque_user_id
from devpulse.plugins.backends import KINDS
from devpulse.plugins.backends.ollama_mapping import ollama_payload

WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}},
)
REQUEST = Request(
    messages=(
        Message("system", "Be brief."),
        Message("user", "Weather in Lisbon?", (Image("image/png", "iVBORw0KGgo="),)),
    ),
    tools=(WEATHER,),
    max_tokens=64,
)
# A whole tool round trip: the call, its result, and the question that follows.
ROUND_TRIP = Request(
    messages=(
        Message("user", "Weather in Lisbon?"),
        Message(
            "assistant",
            (
                ThinkingBlock("The user wants weather.", signature="sig=="),
                TextBlock("Let me look."),
                ToolUseBlock("toolu_1", "get_weather", {"city": "Lisbon"}),
            ),
        ),
        Message(
            "user",
            (ToolResultBlock("toolu_1", "Sunny, 24 C"), TextBlock("And tomorrow?")),
        ),
    ),
    system=(TextBlock("Be brief."),),
    tools=(WEATHER,),
    tool_choice=ToolChoice("tool", "get_weather", parallel=False),
    temperature=0.2,
    top_p=0.9,
    stop_sequences=("END",),
    metadata={"user_id": "u-7", "session_id": "s-1"},
)


def backend(kind: str):
    config = config_from_mapping(
        {"backends": {"x": {"side": "local", "kind": kind, "base_url": "http://127.0.0.1:9"}}}
    )
    return KINDS[kind]("x", config.backends["x"])


DECISION = Decision(Side.LOCAL, "x", "some-model")


def test_a_string_is_one_text_block_and_system_messages_move_to_system() -> None:
    assert Message("user", "hi").content == (TextBlock("hi"),)
    assert REQUEST.system == (TextBlock("Be brief."),)
    assert [m.role for m in REQUEST.messages] == ["user"]
    assert REQUEST.messages[0].images == (Image("image/png", "iVBORw0KGgo="),)
    assert Request(messages=(), tools=({"name": "t"},)).tools == (Tool("t"),)


def test_anthropic_shape() -> None:
    params = backend("anthropic").params(REQUEST, DECISION)
    assert params["system"] == [{"type": "text", "text": "Be brief."}]
    assert params["max_tokens"] == 64
    (user,) = params["messages"]
    assert user["content"][0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert params["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": dict(WEATHER.input_schema),
        }
    ]


def test_anthropic_round_trip() -> None:
    params = backend("anthropic").params(ROUND_TRIP, DECISION)
    assistant, result = params["messages"][1:]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig=="},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}},
    ]
    assert result["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "Sunny, 24 C"}],
        },
        {"type": "text", "text": "And tomorrow?"},
    ]
    assert params["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    assert (params["temperature"], params["top_p"]) == (0.2, 0.9)
    assert params["stop_sequences"] == ["END"]
    # an opaque id, as Anthropic asks: the same for the same user, never the id itself
    assert params["metadata"] == {"user_id": opaque_user_id("u-7")}
    assert opaque_user_id("u-7") == opaque_user_id("u-7") != opaque_user_id("u-8")
    assert "u-7" not in opaque_user_id("u-7")


def test_anthropic_is_not_sent_thinking_no_provider_signed() -> None:
    """A local model's reasoning has no signature, which Anthropic refuses: it stays out."""
    local_turn = Message("assistant", (ThinkingBlock("The user greets me."), TextBlock("Hello!")))
    only_thinking = Message("assistant", (ThinkingBlock("Still thinking."),))
    request = Request(
        messages=(
            Message("user", "hi"),
            local_turn,
            Message("user", "and?"),
            only_thinking,
            Message("user", "go on"),
        ),
        max_tokens=8,
    )
    messages = backend("anthropic").params(request, DECISION)["messages"]
    assert messages[1]["content"] == "Hello!"
    assert messages[3]["content"] == "Still thinking."  # nothing else to send: as text
    redacted = Message("assistant", (ThinkingBlock(redacted="opaque=="), TextBlock("Hi")))
    kept = backend("anthropic").params(Request(messages=(redacted,), max_tokens=8), DECISION)
    assert kept["messages"][0]["content"][0] == {"type": "redacted_thinking", "data": "opaque=="}


def test_openai_shape() -> None:
    body = backend("openai_compat").body(REQUEST, DECISION)
    assert body["stream"] is True  # always: the core's first-token and stall limits apply
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }
    assert body["tools"][0]["function"]["parameters"] == WEATHER.input_schema
    assert body["stream_options"] == {"include_usage": True}


def test_openai_round_trip() -> None:
    body = backend("openai_compat").body(ROUND_TRIP, DECISION)
    assert body["messages"][1:] == [
        {"role": "user", "content": "Weather in Lisbon?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny, 24 C"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert (body["temperature"], body["top_p"], body["stop"]) == (0.2, 0.9, ["END"])
    assert body["user"] == opaque_user_id("u-7")


def test_ollama_shape() -> None:
    params = backend("ollama").params(REQUEST, DECISION)
    assert params["stream"] is True
    assert params["messages"][1]["images"] == ["iVBORw0KGgo="]
    assert params["options"] == {"num_predict": 64}
    assert params["tools"][0]["function"]["name"] == "get_weather"
    assert "keep_alive" not in params


def test_ollama_round_trip() -> None:
    params = backend("ollama").params(ROUND_TRIP, DECISION)
    assert params["messages"][2:] == [
        {
            "role": "assistant",
            "content": "Let me look.",
            "thinking": "The user wants weather.",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Lisbon"}}}],
        },
        # Ollama has no call ids: the result names its tool instead.
        {"role": "tool", "content": "Sunny, 24 C", "tool_name": "get_weather"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert params["options"] == {
        "num_predict": 1024,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }


def test_ollama_refuses_an_image_it_would_have_to_fetch() -> None:
    request = Request(messages=(Message("user", (Image("image/png", url="https://x/y.png"),)),))
    with pytest.raises(UnsupportedRequest, match="not by URL"):
        ollama_payload(request, "m")


def test_tool_choice_none_offers_no_tools_where_there_is_no_such_choice() -> None:
    request = Request.from_prompt("x", tools=(WEATHER,), tool_choice=ToolChoice("none"))
    assert "tools" not in backend("ollama").params(request, DECISION)
    assert "tools" not in backend("openai_compat").body(request, DECISION)
    assert backend("anthropic").params(request, DECISION)["tool_choice"] == {"type": "none"}


def test_tool_inputs_stay_json() -> None:
    body = backend("openai_compat").body(ROUND_TRIP, DECISION)
    arguments = body["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"city": "Lisbon"}
