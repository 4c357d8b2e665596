"""What each backend sends: messages, images, tools and limits in its provider's shape."""

from __future__ import annotations

from devpulse import Decision, Image, Message, Request, Side, config_from_mapping
from devpulse.plugins.backends import KINDS

TOOLS = (
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
)
REQUEST = Request(
    messages=(
        Message("system", "Be brief."),
        Message("user", "Weather in Lisbon?", (Image("image/png", "iVBORw0KGgo="),)),
    ),
    tools=TOOLS,
    max_tokens=64,
)


def backend(kind: str):
    config = config_from_mapping(
        {"backends": {"x": {"side": "local", "kind": kind, "base_url": "http://127.0.0.1:9"}}}
    )
    return KINDS[kind]("x", config.backends["x"])


DECISION = Decision(Side.LOCAL, "x", "some-model")


def test_anthropic_shape() -> None:
    params = backend("anthropic").params(REQUEST, DECISION)
    assert params["system"] == "Be brief."
    assert params["max_tokens"] == 64
    (user,) = params["messages"]
    assert user["content"][0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert params["tools"] == [dict(TOOLS[0])]


def test_openai_shape() -> None:
    body = backend("openai_compat").body(REQUEST, DECISION)
    assert body["stream"] is True  # always: the core's first-token and stall limits apply
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }
    assert body["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]
    assert body["stream_options"] == {"include_usage": True}


def test_ollama_shape() -> None:
    params = backend("ollama").params(REQUEST, DECISION)
    assert params["stream"] is True
    assert params["messages"][1]["images"] == ["iVBORw0KGgo="]
    assert params["options"] == {"num_predict": 64}
    assert params["tools"][0]["function"]["name"] == "get_weather"
    assert "keep_alive" not in params
