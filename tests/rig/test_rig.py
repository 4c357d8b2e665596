"""The rig itself: a real llama-server answers the real SDK; router mode really frees memory."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import anthropic
import pytest

from devpulse import Router, Side
from tests.rig.llama_server import LlamaServer, RigPaths, free_port

pytestmark = pytest.mark.rig

# Chat-template markers of ChatML, Gemma and Llama 2: none belongs in an answer's text.
TEMPLATE_MARKERS = ("<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "</s>")


def _client(server: LlamaServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="rig", max_retries=0, timeout=60)


def test_anthropic_sdk_gets_an_answer_from_the_rig(llama_server: LlamaServer) -> None:
    message = _client(llama_server).messages.create(
        model="gemma-3-270m",
        max_tokens=16,
        messages=[{"role": "user", "content": "Name one colour."}],
    )
    text = "".join(block.text for block in message.content if block.type == "text")
    assert text.strip()
    assert message.usage.input_tokens > 0
    assert 0 < message.usage.output_tokens <= 16
    assert message.stop_reason in ("end_turn", "max_tokens")


def test_anthropic_sdk_streams_from_the_rig(llama_server: LlamaServer) -> None:
    with _client(llama_server).messages.stream(
        model="gemma-3-270m",
        max_tokens=16,
        messages=[{"role": "user", "content": "Count to five."}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == "".join(b.text for b in final.content if b.type == "text")
    assert final.usage.output_tokens > 0


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def _status(server: LlamaServer) -> str:
    with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as resp:
        (model,) = json.load(resp)["data"]
    return model["status"]["value"]


def test_router_mode_loads_on_demand_and_unload_frees_memory(llama_router: LlamaServer) -> None:
    model = llama_router.rig.model.stem
    assert _status(llama_router) == "unloaded"
    assert llama_router.children() == []
    answer = _post(
        f"{llama_router.base_url}/v1/chat/completions",
        {"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer["usage"]["completion_tokens"] > 0
    assert _status(llama_router) == "loaded"
    (child,) = llama_router.children()
    assert child.memory_info().rss > 150 * 2**20  # the weights are really in memory
    assert _post(f"{llama_router.base_url}/models/unload", {"model": model})["success"]
    deadline = time.monotonic() + 10
    while llama_router.children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert llama_router.children() == []
    assert _status(llama_router) == "unloaded"


def _instruct_router(make_router: Callable[..., Router], server: LlamaServer) -> Router:
    """DevPulse's defaults, the `llama_server` backend pointed at `server`."""
    return make_router({"backends": {"llama_server": {"base_url": f"{server.base_url}/v1"}}})


def test_instruct_model_answers_through_devpulse_and_stops_by_itself(
    llama_instruct: LlamaServer, make_router: Callable[..., Router]
) -> None:
    response = _instruct_router(make_router, llama_instruct).invoke(
        "Say hello in one short sentence.", max_tokens=256
    )
    assert (response.backend, response.side) == ("llama_server", Side.LOCAL)
    assert response.stop_reason in ("stop", "end_turn")
    assert 0 < response.usage.output_tokens < 256
    assert response.text.strip()
    assert [m for m in TEMPLATE_MARKERS if m in response.text] == []


def test_instruct_model_streams_through_devpulse_and_stops_by_itself(
    llama_instruct: LlamaServer, make_router: Callable[..., Router]
) -> None:
    chunks = list(
        _instruct_router(make_router, llama_instruct).stream(
            "Summarize in one line: DevPulse routes LLM requests between local and cloud.",
            max_tokens=256,
        )
    )
    response = chunks[-1].response
    assert response is not None
    assert not any(chunk.restart for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == response.text
    assert response.stop_reason in ("stop", "end_turn")
    assert 0 < response.usage.output_tokens < 256
    assert [m for m in TEMPLATE_MARKERS if m in response.text] == []


def test_each_start_has_its_own_log_and_a_failure_names_it(
    rig: RigPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVPULSE_RIG_LOGS", str(tmp_path / "logs"))
    port = free_port()
    first = LlamaServer(rig, ["-m", str(tmp_path / "first.gguf")], port=port)
    with pytest.raises(RuntimeError, match="exited") as failed:
        first.start()
    assert first.log is not None
    assert f"(log: {first.log})" in str(failed.value)
    second = LlamaServer(rig, ["-m", str(tmp_path / "second.gguf")], port=port)
    with pytest.raises(RuntimeError, match="exited") as failed:
        second.start()
    assert second.log is not None
    assert f"(log: {second.log})" in str(failed.value)
    assert second.log != first.log
    assert "first.gguf" in first.log.read_text()  # the second start did not overwrite it
    assert "second.gguf" in second.log.read_text()
