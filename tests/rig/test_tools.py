"""A tool round trip against real servers, through every bundled backend, streamed and not.

The servers are real: llama-server's OpenAI (`/v1/chat/completions`) and Anthropic
(`/v1/messages`) endpoints with a tool-capable chat template, and the Ollama-protocol rig in
front of the same server. SmolLM2 135M calls a tool only when asked in words it happens to follow
("Use the get_weather tool for Lisbon." works; "Call get_weather for Lisbon." mostly gets
prose), says a sentence first, and repeats the call until `max_tokens`: the stop sequence
`</tool_call>` ends the answer after the first call. The model is greedy (`--temp 0`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from devpulse import (
    Message,
    Request,
    TaskClass,
    Tool,
    ToolResultBlock,
    ToolUseBlock,
)
from devpulse.core.types import Chunk, Response
from tests.support import router_with

WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ASK = Message("user", "Use the get_weather tool for Lisbon.")
BACKENDS = ("openai", "anthropic", "ollama")


@pytest.fixture(scope="module")
def routers(llama_tools, ollama_tools) -> dict[str, Any]:
    """One router per backend kind, each sending drafting work to its backend."""
    tables = {
        "openai": {"kind": "openai_compat", "base_url": f"{llama_tools.base_url}/v1"},
        "anthropic": {"kind": "anthropic", "base_url": llama_tools.base_url},
        "ollama": {"kind": "ollama", "base_url": ollama_tools.base_url},
    }
    model = {"openai": "tools", "anthropic": "tools", "ollama": "smollm2:135m"}
    return {
        name: router_with(
            {
                "backends": {"rig": {"side": "local", **table}},
                "routing": {"drafting": {"side": "local", "backend": "rig", "model": model[name]}},
                "ledger": {"enabled": False},
                "failover": {"enabled": False, "stall_timeout_s": 120.0, "budget_s": 600.0},
                "preflight": {"enabled": False},
            }
        )
        for name, table in tables.items()
    }


def ask(router: Any, request: Request, mode: str | bool) -> tuple[Response, list[Chunk]]:
    """Answer `request` one of the router's ways: invoke, stream (True), or astream."""
    if not mode or mode == "invoke":
        return router.invoke(request), []
    if mode == "astream":

        async def collect() -> list[Chunk]:
            return [chunk async for chunk in router.astream(request)]

        chunks = asyncio.run(collect())
    else:
        chunks = list(router.stream(request))
    assert chunks[-1].response is not None
    return chunks[-1].response, chunks


def shape(chunks: list[Chunk]) -> list[tuple[str, int]]:
    """The sequence, with runs of one delta counted once (servers split text apart)."""
    out: list[tuple[str, int]] = []
    for c in chunks:
        key = (c.type, c.index)
        if not out or out[-1] != key or not c.type.endswith("_delta"):
            out.append(key)
    return out


def first_turn(**kwargs: Any) -> Request:
    return Request(
        messages=(ASK,),
        tools=(WEATHER,),
        task=TaskClass.DRAFTING,
        max_tokens=64,
        stop_sequences=("</tool_call>",),
        **kwargs,
    )


def second_turn(call: Response, result: str) -> Request:
    results = tuple(ToolResultBlock(use.id, result) for use in call.tool_uses)
    return Request(
        messages=(ASK, call.as_message(), Message("user", results)),
        tools=(WEATHER,),
        task=TaskClass.DRAFTING,
        max_tokens=24,
    )


@pytest.mark.parametrize("mode", ["invoke", "stream", "astream"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tool_round_trip(routers, backend: str, mode: str) -> None:
    router = routers[backend]
    stream = mode != "invoke"
    call, chunks = ask(router, first_turn(), mode)
    (use,) = call.tool_uses
    assert use.name == "get_weather"
    assert use.input == {"city": "Lisbon"}
    assert use.id  # the server's id (OpenAI, Anthropic), or one DevPulse made (Ollama)
    assert call.stop_reason in ("tool_use", "stop_sequence")
    if stream:
        start = next(
            c
            for c in chunks
            if c.type == "block_start" and c.block == use.__class__(use.id, use.name)
        )
        assert start.block == ToolUseBlock(use.id, "get_weather")  # the same id, streamed
        streamed = "".join(c.partial_json for c in chunks if c.type == "tool_input_delta")
        assert json.loads(streamed) == {"city": "Lisbon"}

    # The result goes back, tied to the call by its id; the model answers from it. A longer
    # result makes a longer prompt: proof that the server put the result in it.
    short, _ = ask(router, second_turn(call, "Sunny."), mode)
    long, _ = ask(router, second_turn(call, "Sunny, 24 C, light wind from the north. " * 8), mode)
    for answer in (short, long):
        assert answer.content
        assert answer.stop_reason in ("end_turn", "max_tokens", "tool_use")

    def prompt(r: Response) -> int:
        return r.usage.input_tokens + r.usage.cache_read_tokens

    assert prompt(long) > prompt(short) + 40


def test_every_backend_streams_the_same_sequence(routers) -> None:
    """The same answer shape, the same chunks: a tool call, and plain text."""
    tool_shapes = {name: shape(ask(r, first_turn(), True)[1]) for name, r in routers.items()}
    assert tool_shapes["openai"] == [
        ("block_start", 0),
        ("text_delta", 0),
        ("block_stop", 0),
        ("block_start", 1),
        ("tool_input_delta", 1),
        ("block_stop", 1),
        ("usage", 0),
        ("message_stop", 0),
    ]
    assert tool_shapes["anthropic"] == tool_shapes["ollama"] == tool_shapes["openai"]
    # The async path streams the same sequence.
    async_shapes = {name: shape(ask(r, first_turn(), "astream")[1]) for name, r in routers.items()}
    assert async_shapes == tool_shapes

    text = Request(messages=(Message("user", "Say hello."),), task=TaskClass.DRAFTING, max_tokens=8)
    text_shapes = {name: shape(ask(r, text, True)[1]) for name, r in routers.items()}
    assert text_shapes["openai"] == [
        ("block_start", 0),
        ("text_delta", 0),
        ("block_stop", 0),
        ("usage", 0),
        ("message_stop", 0),
    ]
    assert text_shapes["anthropic"] == text_shapes["ollama"] == text_shapes["openai"]
