"""Every backend's decoder tells the same answer as the same chunks (recorded events).

The events are each provider's documented stream shapes; tests/rig/test_tools.py checks the
same against real servers.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from devpulse import (
    BackendError,
    Response,
    Side,
    StreamIncomplete,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)
from devpulse.core.types import Chunk, replay
from devpulse.plugins.backends.anthropic_mapping import AnthropicDecoder
from devpulse.plugins.backends.ollama_mapping import OllamaDecoder
from devpulse.plugins.backends.openai_mapping import OpenAIDecoder


def respond(**fields: Any) -> Response:
    return Response(
        fields["content"],
        fields.get("model") or "m",
        "x",
        Side.LOCAL,
        usage=fields["usage"],
        stop_reason=fields["stop_reason"],
    )


def anthropic_events(text: list[str], tool: tuple[str, str, list[str]] | None) -> list[dict]:
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {"model": "m", "usage": {"input_tokens": 9, "cache_read_input_tokens": 3}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
            for t in text
        ),
        {"type": "content_block_stop", "index": 0},
    ]
    if tool:
        tool_id, name, parts = tool
        events.append(
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
            }
        )
        events += [
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            for p in parts
        ]
        events.append({"type": "content_block_stop", "index": 1})
    stop = "tool_use" if tool else "end_turn"
    events += [
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    return events


def openai_events(text: list[str], tool: tuple[str, str, list[str]] | None) -> list[Any]:
    def event(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    events: list[Any] = [event({"role": "assistant", "content": ""})]
    events += [event({"content": t}) for t in text]
    if tool:
        tool_id, name, parts = tool
        head = {"index": 0, "id": tool_id, "type": "function", "function": {"name": name}}
        events.append(event({"tool_calls": [head]}))
        events += [
            event({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in parts
        ]
    events.append(event({}, "tool_calls" if tool else "stop"))
    events.append(
        {"model": "m", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}}
    )
    events.append("[DONE]")
    return events


def ollama_events(text: list[str], tool: tuple[str, str, list[str]] | None) -> list[dict]:
    events: list[dict[str, Any]] = [
        {"model": "m", "message": {"role": "assistant", "content": t}, "done": False} for t in text
    ]
    if tool:
        _, name, parts = tool
        call = {"function": {"name": name, "arguments": json.loads("".join(parts) or "{}")}}
        events.append(
            {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [call]}}
        )
    events.append(
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 9,
            "eval_count": 5,
        }
    )
    return events


def decode(kind: str, events: list[Any]) -> list[Chunk]:
    ids = (f"gen_{i}" for i in itertools.count())
    if kind == "anthropic":
        decoder: Any = AnthropicDecoder("x", respond)
    elif kind == "openai":
        decoder = OpenAIDecoder("x", respond, new_id=lambda: next(ids))
    else:
        decoder = OllamaDecoder("x", respond, new_id=lambda: next(ids))
    chunks: list[Chunk] = []
    for event in events:
        chunks += decoder.done() if event == "[DONE]" else decoder.feed(event)
    decoder.end()
    return chunks


SOURCES = {"anthropic": anthropic_events, "openai": openai_events, "ollama": ollama_events}
TOOL = ("call_1", "get_weather", ['{"ci', 'ty": "Lis', 'bon"}'])


def shape(chunks: list[Chunk]) -> list[tuple[str, int]]:
    """The sequence, with runs of the same delta counted once (providers split text apart)."""
    out: list[tuple[str, int]] = []
    for c in chunks:
        key = (c.type, c.index)
        if not out or out[-1] != key or not c.type.endswith("_delta"):
            out.append(key)
    return out


NO_INPUT = ("call_2", "get_time", [])  # a tool without arguments: no input delta is streamed


@pytest.mark.parametrize("tool", [None, TOOL, NO_INPUT], ids=["text", "tool_use", "no_input"])
def test_every_backend_streams_the_same_sequence(tool) -> None:
    decoded = {
        kind: decode(kind, make(["Let me ", "look."], tool)) for kind, make in SOURCES.items()
    }
    shapes = {kind: shape(chunks) for kind, chunks in decoded.items()}
    expected = [("block_start", 0), ("text_delta", 0), ("block_stop", 0)]
    if tool:
        expected += [("block_start", 1), ("tool_input_delta", 1), ("block_stop", 1)]
        if not tool[2]:
            expected.remove(("tool_input_delta", 1))
    expected += [("usage", 0), ("message_stop", 0)]
    assert shapes == dict.fromkeys(SOURCES, expected)
    for kind, chunks in decoded.items():
        final = chunks[-1].response
        assert final is not None
        assert final.text == "Let me look."
        assert final.stop_reason == ("tool_use" if tool else "end_turn")
        assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 5)
        assert shape(list(replay(final))) == expected, kind  # a whole Response, told the same
        if tool:
            (call,) = final.tool_uses
            given = {"city": "Lisbon"} if tool[2] else {}
            assert (call.name, dict(call.input)) == (tool[1], given)
            start = next(c for c in chunks if c.type == "block_start" and c.index == 1)
            assert start.block == ToolUseBlock(call.id, tool[1])  # the id from the start
            streamed = "".join(c.partial_json for c in chunks if c.type == "tool_input_delta")
            assert json.loads(streamed or "{}") == given


def test_ids_are_the_providers_where_given_and_made_once_where_not() -> None:
    anthropic = decode("anthropic", anthropic_events([], TOOL))[-1].response
    openai = decode("openai", openai_events([], TOOL))[-1].response
    ollama = decode("ollama", ollama_events([], TOOL))[-1].response
    assert anthropic is not None
    assert openai is not None
    assert ollama is not None
    assert anthropic.tool_uses[0].id == openai.tool_uses[0].id == "call_1"
    assert ollama.tool_uses[0].id == "gen_0"
    assert ollama.content == (ToolUseBlock("gen_0", "get_weather", {"city": "Lisbon"}),)


def openai_calls(*calls: dict[str, Any]) -> list[Any]:
    """One event per tool-call delta, then the end."""
    events: list[Any] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]}
        for call in calls
    ]
    return [
        *events,
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "[DONE]",
    ]


def test_openai_calls_sent_whole_without_an_index_stay_apart() -> None:
    """Gemini's OpenAI-compatible endpoint sends each of several calls whole, with an id
    and no index (or an index of null)."""
    events = openai_calls(
        {"id": "fc-1", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "fc-2", "index": None, "function": {"name": "get_time", "arguments": "{}"}},
    )
    final = decode("openai", events)[-1].response
    assert final is not None
    assert final.content == (
        ToolUseBlock("fc-1", "get_weather", {"city": "Paris"}),
        ToolUseBlock("fc-2", "get_time", {}),
    )
    # the usual shape: the id once, then the arguments in pieces under the same index
    pieces = openai_calls(
        {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": '{"ci'}},
        {"index": 0, "function": {"arguments": 'ty": "Lisbon"}'}},
        {"index": 1, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}},
    )
    final = decode("openai", pieces)[-1].response
    assert final is not None
    assert [(c.id, dict(c.input)) for c in final.tool_uses] == [
        ("call_1", {"city": "Lisbon"}),
        ("call_2", {}),
    ]


def test_no_empty_text_block_on_any_backend() -> None:
    for kind, make in SOURCES.items():
        final = decode(kind, make([], TOOL))[-1].response
        assert final is not None
        assert [type(b) for b in final.content] == [ToolUseBlock], kind


def test_anthropic_cache_tokens_and_thinking_round_trip() -> None:
    events = [
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 2}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hm"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "s1"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": "enc"},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {
                "output_tokens": 1,
                "cache_read_input_tokens": 7,
                "cache_creation_input_tokens": 4,
            },
        },
        {"type": "message_stop"},
    ]
    chunks = decode("anthropic", events)
    final = chunks[-1].response
    assert final is not None
    assert [c.type for c in chunks][:3] == ["block_start", "thinking_delta", "block_stop"]
    assert final.content[0] == ThinkingBlock("hm", "s1")
    assert final.content[1] == ThinkingBlock(redacted="enc")
    assert final.content[2] == TextBlock("ok")
    assert (final.usage.cache_read_tokens, final.usage.cache_write_tokens) == (7, 4)


@pytest.mark.parametrize("kind", list(SOURCES))
def test_a_stream_without_its_end_is_incomplete(kind) -> None:
    events = SOURCES[kind](["cut"], None)[:-1]
    with pytest.raises(StreamIncomplete):
        decode(kind, events)


def test_a_tool_input_that_is_not_json_fails_unless_cut_at_max_tokens() -> None:
    broken = ("call_1", "get_weather", ['{"city": "Lis'])
    events = openai_events([], broken)
    with pytest.raises(BackendError, match="not a JSON object"):
        decode("openai", events)
    cut = [
        e
        if not (isinstance(e, dict) and e.get("choices") and e["choices"][0]["finish_reason"])
        else {"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
        for e in events
    ]
    final = decode("openai", cut)[-1].response
    assert final is not None
    assert final.stop_reason == "max_tokens"
    assert final.tool_uses[0].input == {}


def test_openai_cached_prompt_tokens_are_not_counted_twice() -> None:
    """OpenAI counts cached tokens inside prompt_tokens; `Usage` counts them apart, as the
    Messages API does (its input_tokens exclude them): so they are priced once."""
    events = openai_events(["ok"], None)
    events[-2]["usage"] = {
        "prompt_tokens": 9,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 6},
    }
    final = decode("openai", events)[-1].response
    assert final is not None
    assert (final.usage.input_tokens, final.usage.cache_read_tokens) == (3, 6)
