"""The `loaded_models` and `unload_model` hooks of the bundled backends, on real servers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devpulse import BackendError, Cause, LoadedModel
from tests.rig.llama_server import free_port
from tests.rig.ollama_server import OllamaRig
from tests.rig.two_models import TwoModels
from tests.support import router_with


def hosts_at(llama_url: str, ollama_url: str | None = None):  # type: ignore[no-untyped-def]
    backends = {"llama_server": {"base_url": f"{llama_url}/v1"}}
    if ollama_url:
        backends["ollama"] = {"base_url": ollama_url}
    return router_with({"backends": backends}).pm.hook


def test_llama_router_lists_and_unloads_its_models(fresh: TwoModels) -> None:
    hook = hosts_at(fresh.base_url)
    assert hook.loaded_models(backend="llama_server") == []
    fresh.load("alpha")
    (listed,) = hook.loaded_models(backend="llama_server")
    assert (listed.backend, listed.model, listed.unloadable) == ("llama_server", "alpha", True)
    assert listed.size_mb > 200  # the model file: llama-server reports no memory per model
    child = fresh.process("alpha")
    assert child is not None
    assert hook.unload_model(backend="llama_server", model="alpha") is True
    fresh.wait("alpha", "unloaded")
    assert not child.is_running()
    assert hook.unload_model(backend="llama_server", model="no-such-model") is False


def test_only_the_owner_answers_and_the_cloud_hosts_nothing(fresh: TwoModels) -> None:
    hook = hosts_at(fresh.base_url)
    assert hook.loaded_models(backend="anthropic") is None
    assert hook.loaded_models(backend="not-configured") is None
    assert hook.unload_model(backend="anthropic", model="claude-sonnet-4-6") is None


def test_a_server_that_does_not_answer_raises_a_connection_error() -> None:
    hook = hosts_at(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    for backend in ("llama_server", "ollama"):
        with pytest.raises(BackendError) as raised:
            hook.loaded_models(backend=backend)
        assert raised.value.cause is Cause.CONNECTION
        with pytest.raises(BackendError):
            hook.unload_model(backend=backend, model="x")


GARBAGE = [
    "<html>a captive portal</html>",
    "[1, 2]",
    '{"models": "none", "data": "none"}',
    '{"models": [1], "data": [1]}',
    '{"models": [{"size": "big"}], "data": [{"meta": {"size": [1]}, "status": "x"}]}',
]


@pytest.fixture(params=GARBAGE)
def garbage_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server that answers 200 and `request.param` to everything."""
    body = request.param.encode()

    class Garbage(BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_answers_garbage_is_not_answering(garbage_server: str) -> None:
    hook = hosts_at(garbage_server, garbage_server)
    for backend in ("llama_server", "ollama"):
        with pytest.raises(BackendError) as raised:
            hook.loaded_models(backend=backend)
        assert raised.value.cause is Cause.CONNECTION
        # Any JSON object is a valid answer to an unload (all its fields are optional): the
        # babysitter then sees the memory not come back. Anything else is not answering.
        with contextlib.suppress(BackendError):
            assert hook.unload_model(backend=backend, model="x") in (True, False)


def test_ollama_lists_ps_and_unloads_with_keep_alive_zero(ollama_rig: OllamaRig) -> None:
    hook = hosts_at(f"http://127.0.0.1:{free_port()}", ollama_rig.base_url)
    ollama_rig.load("gemma3:270m")
    try:
        (listed,) = hook.loaded_models(backend="ollama")
        assert isinstance(listed, LoadedModel)
        assert (listed.model, listed.vram_mb) == ("gemma3:270m", 0)
        assert listed.size_mb > 100  # the runner's resident memory, as /api/ps says
        assert listed.expires_at is not None
        child = ollama_rig.loaded()["gemma3:270m"]
        ollama_rig.requests.clear()
        assert hook.unload_model(backend="ollama", model="gemma3:270m") is True
        (sent,) = [body for what, body in ollama_rig.requests if what == "POST /api/generate"]
        assert sent["model"] == "gemma3:270m"
        assert sent["keep_alive"] == 0
        assert not sent.get("prompt")
        child.wait(timeout=10)
        assert hook.loaded_models(backend="ollama") == []
        assert hook.unload_model(backend="ollama", model="nope") is False
    finally:
        if "gemma3:270m" in ollama_rig.loaded():
            ollama_rig.unload("gemma3:270m")
