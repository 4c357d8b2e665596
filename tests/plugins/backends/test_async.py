"""The async path on real clients: answers from every bundled backend on the rig, and a
cancelled `astream` that closes the server's connection and is booked ``cancelled``.

The faults the sync path meets are met on the async path by the same tests, parametrised by
mode, in test_errors.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devpulse import Request, Response, Router, TaskClass
from tests.plugins.backends.test_backends import rig_config, to
from tests.rig.fault_server import FaultServer
from tests.rig.llama_server import LlamaServer
from tests.rig.ollama_server import OllamaRig
from tests.support import router_with

WAIT_S = 20.0  # how long a test waits for what must happen; never a measurement


def ask() -> Request:
    return Request.from_prompt("Name three colours.", task=TaskClass.DRAFTING, max_tokens=12)


def fault_config(fault: FaultServer, kind: str, tmp_path: Path) -> dict:
    path = {"openai_compat": "/v1", "anthropic": "", "ollama": ""}[kind]
    return {
        "backends": {"near": {"side": "local", "kind": kind, "base_url": fault.base_url + path}},
        # A model named by its size in MB: preflight asks the server nothing.
        "routing": {"drafting": {"side": "local", "backend": "near", "model": "100"}},
        "ledger": {"path": str(tmp_path / "l.sqlite3")},
    }


@pytest.mark.parametrize("kind", ["openai_compat", "anthropic", "ollama"])
def test_a_cancelled_astream_closes_the_connection_and_is_booked_cancelled(
    kind: str, tmp_path: Path
) -> None:
    with FaultServer(["drip"]) as fault:
        router = router_with(fault_config(fault, kind, tmp_path))
        first = asyncio.Event()

        async def read() -> None:
            async for chunk in router.astream(ask()):
                if chunk.text:
                    first.set()

        async def cancel_after_the_first_chunk() -> None:
            task = asyncio.ensure_future(read())
            await asyncio.wait_for(first.wait(), WAIT_S)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_after_the_first_chunk())
        assert fault.disconnected.wait(WAIT_S), "the server never saw the client hang up"
    rows = router.ledger.rows()
    assert [row["outcome"] for row in rows] == ["cancelled"]
    assert router.breakers.states() == {}  # a cancel says nothing about the backend


def test_an_astream_closed_early_is_booked_abandoned_and_hangs_up(tmp_path: Path) -> None:
    with FaultServer(["drip"]) as fault:
        router = router_with(fault_config(fault, "openai_compat", tmp_path))

        async def first_chunk_only() -> str:
            chunks = router.astream(ask())
            try:
                async for chunk in chunks:
                    if chunk.text:
                        return chunk.text
            finally:
                await chunks.aclose()
            return ""

        assert asyncio.run(first_chunk_only()).strip() == "Cloud"
        assert fault.disconnected.wait(WAIT_S)
    assert [row["outcome"] for row in router.ledger.rows()] == ["abandoned"]


# -- every bundled backend answers on its async client -----------------------------------


@pytest.fixture
def config(llama_server: LlamaServer, ollama_rig: OllamaRig, tmp_path: Path) -> dict:
    return rig_config(llama_server, ollama_rig, tmp_path / "ledger.sqlite3")


BACKENDS = [("llama_server", "gemma-3-270m"), ("local_anthropic", "gemma-3-270m")]
BACKENDS.append(("ollama", "gemma3:270m"))


@pytest.mark.parametrize(("backend", "model"), BACKENDS)
def test_ainvoke_answers_on_each_backend(config: dict, backend: str, model: str) -> None:
    router: Router = to(config, backend, model)
    response = asyncio.run(router.ainvoke(ask()))
    assert response.text.strip()
    assert (response.backend, response.usage.output_tokens > 0) == (backend, True)
    assert [row["outcome"] for row in router.ledger.rows()] == ["answered"]


@pytest.mark.parametrize(("backend", "model"), BACKENDS)
def test_astream_streams_on_each_backend(config: dict, backend: str, model: str) -> None:
    router: Router = to(config, backend, model)

    async def chunks() -> list:
        return [chunk async for chunk in router.astream(ask())]

    found = asyncio.run(chunks())
    final = found[-1].response
    assert final is not None
    assert final.backend == backend
    assert "".join(c.text for c in found[:-1]) == final.text
    assert len(found) > 2
    assert final.first_token_s is not None
    assert [row["outcome"] for row in router.ledger.rows()] == ["answered"]


def test_async_requests_share_one_client_per_event_loop(config: dict) -> None:
    router: Router = to(config, "llama_server")
    backend = router.pm.get_plugin("devpulse.backend.llama_server")

    async def three() -> int:
        await asyncio.gather(*(router.ainvoke(ask()) for _ in range(3)))
        return len(backend.backend._aclients)

    assert asyncio.run(three()) == 1
    assert len(router.ledger.rows()) == 3


def test_a_burst_on_a_new_event_loop_builds_one_client(tmp_path: Path) -> None:
    with FaultServer(["ok"]) as fault:
        fault._server.socket.listen(64)  # its default backlog of 5 may drop a burst of 20
        router = router_with(fault_config(fault, "openai_compat", tmp_path))
        backend = router.pm.get_plugin("devpulse.backend.near").backend
        built: list[object] = []
        make = backend.make_async_client
        backend.make_async_client = lambda: built.append(make()) or built[-1]

        async def burst() -> list[Response]:
            return await asyncio.gather(*(router.ainvoke(ask()) for _ in range(20)))

        assert len(asyncio.run(burst())) == 20
        assert len(built) == 1  # the other 19 waited for the first one's client
        assert len(asyncio.run(burst())) == 20
        assert len(built) == 2  # a new loop gets its own
