"""DevPulseChatModel against the rig: streaming, failover from a failing cloud, tool turns.

The local side is llama-server with a tool-capable chat template (`llama_tools`); the cloud
side is the fault server speaking Anthropic's protocol and answering 529 (overloaded).
SmolLM2 135M calls a tool when asked in words it follows ("Use the get_weather tool for
Lisbon."), and repeats the call until `max_tokens`: the stop sequence `</tool_call>` ends
the answer after one call (see tests/rig/test_tools.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from devpulse import Router
from devpulse.integrations.langchain import DevPulseChatModel
from tests.rig.fault_server import FaultServer
from tests.rig.llama_server import LlamaServer
from tests.support import router_with

STOP = ["</tool_call>"]


@pytest.fixture
def cloud() -> Iterator[FaultServer]:
    with FaultServer(lambda n: "529") as server:
        yield server


@pytest.fixture
def router(llama_tools: LlamaServer, cloud: FaultServer, tmp_path: Path) -> Router:
    return router_with(
        {
            "local": {"backend": "rig", "model": "tools"},
            "cloud": {"backend": "cloud", "model": "claude-sonnet-4-6"},
            "backends": {
                "rig": {
                    "side": "local",
                    "kind": "openai_compat",
                    "base_url": f"{llama_tools.base_url}/v1",
                },
                "cloud": {"side": "cloud", "kind": "anthropic", "base_url": cloud.base_url},
            },
            "routing": {"drafting": {"side": "local"}, "reasoning": {"side": "cloud"}},
            "preflight": {"enabled": False},
            "failover": {"stall_timeout_s": 120.0, "budget_s": 600.0, "backoff_s": 0.05},
            "ledger": {"path": str(tmp_path / "ledger.sqlite3")},
        }
    )


def test_it_streams_from_the_rig_and_names_the_model_that_answered(router: Router) -> None:
    model = DevPulseChatModel(router=router, task="drafting", max_tokens=12)
    chunks = list(model.stream("Say hello to the team."))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert len(chunks) > 2
    assert str(whole.content).strip()
    meta = whole.response_metadata
    assert (meta["side"], meta["backend"]) == ("local", "rig")
    assert meta["model_name"]
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] > 0
    assert [r["outcome"] for r in router.ledger.rows()] == ["answered"]


def test_astream_answers_natively_from_the_rig(router: Router) -> None:
    model = DevPulseChatModel(router=router, task="drafting", max_tokens=12)

    async def collect() -> list[Any]:
        return [chunk async for chunk in model.astream("Say hello to the team.")]

    chunks = asyncio.run(collect())
    assert "".join(str(c.content) for c in chunks).strip()
    assert chunks[-1].response_metadata["backend"] == "rig"


def test_an_overloaded_cloud_fails_over_to_the_rig_and_says_so(
    router: Router, cloud: FaultServer
) -> None:
    model = DevPulseChatModel(router=router, task="reasoning", max_tokens=12)
    answer = model.invoke("Plan the next step.")
    meta = answer.response_metadata
    assert (meta["side"], meta["backend"]) == ("local", "rig")
    assert any(r.startswith("failover: cloud overloaded") for r in meta["reasons"])
    assert len(cloud.bodies) >= 1  # the cloud was asked first
    (row,) = router.ledger.rows()
    assert (row["outcome"], row["side"]) == ("answered", "local")


@tool
def get_weather(city: str) -> str:
    """Weather for a city"""
    return f"{city}: 21 C and sunny"


def test_a_tool_call_round_trips_through_the_rig(router: Router) -> None:
    """The real model calls the tool; its result goes back with the call's id, and the
    answer to that turn is read with the result in the prompt."""
    model = DevPulseChatModel(router=router, task="drafting", max_tokens=48).bind_tools(
        [get_weather]
    )
    history: list[Any] = [HumanMessage("Use the get_weather tool for Lisbon.")]
    reply = model.invoke(history, stop=STOP)
    assert isinstance(reply, AIMessage)
    (call,) = reply.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Lisbon"})
    assert call["id"]
    history += [reply, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    answer = model.invoke(history, stop=STOP)
    assert reply.usage_metadata is not None
    assert answer.usage_metadata is not None
    # The second prompt holds the call and its result: the server counted them.
    assert answer.usage_metadata["input_tokens"] > reply.usage_metadata["input_tokens"] + 20


def test_an_agent_loop_runs_three_tool_turns(tmp_path: Path) -> None:
    """A LangGraph-free loop of three tool turns, each carrying the earlier calls and
    results with their ids. SmolLM2 135M makes one tool call and then imitates the
    tool-response markup instead of calling again, so the model here is the fault server's
    scripted one, over the same OpenAI protocol, transport and mapping."""
    with FaultServer(lambda n: "tool_call") as server:
        router = router_with(
            {
                "local": {"backend": "scripted", "model": "scripted"},
                "backends": {
                    "scripted": {
                        "side": "local",
                        "kind": "openai_compat",
                        "base_url": f"{server.base_url}/v1",
                    }
                },
                "routing": {"drafting": {"side": "local"}},
                "preflight": {"enabled": False},
                "ledger": {"path": str(tmp_path / "ledger.sqlite3")},
            }
        )
        model = DevPulseChatModel(router=router, task="drafting").bind_tools([get_weather])
        history: list[Any] = []
        for city in ("Lisbon", "Porto", "Faro"):
            history.append(HumanMessage(f"Use the get_weather tool for {city}."))
            reply = model.invoke(history)
            (call,) = reply.tool_calls
            assert call["args"] == {"city": city}
            history += [
                reply,
                ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]),
            ]
        bodies = server.bodies
    assert [m.tool_calls[0]["id"] for m in history if isinstance(m, AIMessage)] == [
        "call_1",
        "call_2",
        "call_3",
    ]
    last = bodies[-1]["messages"]
    sent_calls = [c["id"] for m in last if m["role"] == "assistant" for c in m["tool_calls"]]
    sent_results = [m["tool_call_id"] for m in last if m["role"] == "tool"]
    assert sent_calls == sent_results == ["call_1", "call_2"]
    assert [t["function"]["name"] for t in bodies[-1]["tools"]] == ["get_weather"]
    assert len(router.ledger.rows()) == 3
