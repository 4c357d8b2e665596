"""The preflight on llama-server backends: described by `/props` and `/models`, or one warning.

The claims run against the real llama-server rig; a dead port is a real closed socket, and the
one fake (a server without `/props`, as LM Studio and vLLM are) only stands in for a protocol.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devpulse import Router, Side, config_from_mapping, hookimpl
from devpulse.cli import main
from devpulse.plugins.preflight.estimator import ModelUnknown
from devpulse.plugins.preflight.memory import ESTIMATE_TTL_S, Memory
from devpulse.plugins.preflight.servers import llama_server_model
from tests.plugins.preflight.test_preflight import FixedMemory, before_load
from tests.rig.fault_server import ANSWER, FaultServer
from tests.rig.llama_server import LlamaServer, RigPaths, free_port
from tests.rig.ollama_server import OllamaRig
from tests.support import recording_server, router_with

PROMPT = "summarize this changelog"  # a local task class under the default routing table
PREFLIGHT_LOGGER = "devpulse.plugins.preflight"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def llama_at(base_url: str, model: str = "default", **extra: Any) -> dict[str, Any]:
    """The packaged defaults with the `llama_server` backend at `base_url`."""
    return {
        "local": {"backend": "llama_server", "model": model},
        "backends": {"llama_server": {"base_url": f"{base_url}/v1"}},
        **extra,
    }


def memory_of(router: Router) -> Memory:
    memory: Memory = router.pm.get_plugin("devpulse.preflight").memory
    return memory


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [r.devpulse_fields for r in caplog.records if getattr(r, "devpulse_event", None) == name]


def test_the_default_backend_is_described_by_its_server(
    llama_server: LlamaServer, rig: RigPaths, caplog: pytest.LogCaptureFixture
) -> None:
    """`llama_server` with model "default": the preflight runs on the file the server serves."""
    caplog.set_level(logging.DEBUG, logger=PREFLIGHT_LOGGER)
    router = router_with(llama_at(llama_server.base_url))
    decision = router.route(PROMPT)
    assert (decision.side, decision.backend) == (Side.LOCAL, "llama_server")
    assert decision.verdict is not None
    assert decision.verdict.action == "pass"
    (checked,) = events(caplog, "preflight.checked")
    assert (checked["backend"], checked["model"], checked["verdict"]) == (
        "llama_server",
        "default",
        "fits",
    )
    assert events(caplog, "preflight.unknown_model") == []
    est = memory_of(router).estimate_for("default", backend="llama_server").as_dict()
    assert (est["served_by"], est["served_model"], est["gguf"]) == (
        "llama_server",
        "gemma-3-270m",
        str(rig.model),
    )
    # -c 4096 -np 2, two separate caches: /props reports a slot's 2048 cells, the command
    # line that the slots do not share them. llama-server's log: 12 MiB for the 3 full
    # layers (2 x 2048 cells) and 30 MiB for the 15 window layers (2 x 1024 cells).
    assert (est["ctx"], est["slots"], est["kv_unified"]) == (4096, 2, False)
    assert est["kv_cache_mb"] == 42.0
    assert checked["need_mb"] == est["need_mb"]


def test_route_json_runs_the_preflight_on_the_default_backend(
    llama_server: LlamaServer, tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=PREFLIGHT_LOGGER)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[backends.llama_server]\nbase_url = "{llama_server.base_url}/v1"\n')
    code = main(["--config", str(cfg), "route", "--json", PROMPT])
    decision = json.loads(capsys.readouterr().out)
    assert (code, decision["side"], decision["backend"]) == (0, "local", "llama_server")
    (checked,) = events(caplog, "preflight.checked")
    assert checked["verdict"] == "fits"
    assert checked["need_mb"] > 300  # Gemma 3 270M's weights, KV cache and runtime
    shown = decision["preflight"]  # the check ran, and says so: never a silent null
    assert (shown["action"], shown["verdict"]) == ("pass", "fits")
    assert shown["need_mb"] == checked["need_mb"]
    assert any(r.startswith("memory preflight: default fits") for r in decision["reasons"])


def test_a_loaded_single_model_is_never_rerouted_for_its_own_memory(
    llama_server: LlamaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """On a full device the model the server already holds needs no new memory."""
    caplog.set_level(logging.DEBUG, logger=PREFLIGHT_LOGGER)
    router = router_with(llama_at(llama_server.base_url), plugins=[FixedMemory(1)])
    assert router.route(PROMPT).side is Side.LOCAL
    (checked,) = events(caplog, "preflight.checked")
    assert checked["verdict"] == "fits"
    assert "llama_server/gemma-3-270m is already loaded" in checked["reason"]


def test_an_unloaded_router_model_that_does_not_fit_is_rerouted_with_its_estimate(
    ollama_rig: OllamaRig, llama_router: LlamaServer
) -> None:
    """Router mode: the file and context come from the model's launch arguments."""
    model = llama_router.rig.model.stem
    if "gemma3:270m" in ollama_rig.loaded():
        ollama_rig.unload("gemma3:270m")
    router = router_with(llama_at(llama_router.base_url, model), plugins=[FixedMemory(100)])
    decision = router.route(PROMPT)
    assert decision.side is Side.CLOUD
    shown = decision.as_dict()["preflight"]  # what `devpulse route --json` prints
    assert (shown["action"], shown["verdict"], shown["device"]) == ("reroute", "no_fit", "gpu:test")
    est = shown["estimate"]
    assert (est["served_by"], est["served_model"]) == ("llama_server", model)
    assert est["ctx"] == 32768  # no -c in the launch arguments: the trained context
    # no -np either: llama-server picks 4 slots in one cache, and its log says 96 MiB for
    # the full layers and 37.5 MiB for the window layers (512 x 4 + 512 cells)
    assert (est["slots"], est["kv_unified"]) == (4, True)
    assert est["kv_cache_mb"] == 133.5
    assert shown["need_mb"] == est["need_mb"] > 100
    ollama_rig.load("gemma3:270m")
    try:
        assert router.route(PROMPT).side is Side.LOCAL  # loaded now: nothing new to fit
    finally:
        ollama_rig.unload("gemma3:270m")


@pytest.mark.parametrize(
    ("environment", "args", "kv_mib"),
    [
        ({"LLAMA_ARG_N_PARALLEL": "4"}, [], 84.0),  # a cache per slot: 24 + 4 x 15 MiB
        ({"LLAMA_ARG_KV_UNIFIED": "1"}, ["-np", "4"], 61.5),  # one cache: 24 + 37.5 MiB
    ],
)
def test_slots_set_in_the_servers_environment_count(
    rig: RigPaths, environment: dict[str, str], args: list[str], kv_mib: float
) -> None:
    """llama-server reads its settings from LLAMA_ARG_ variables too; the figures are its
    log's for `-c 8192` on Gemma 3 270M."""
    launch = ["-m", str(rig.model), "-c", "8192", "--alias", "gemma-3-270m", *args]
    with LlamaServer(rig, launch, environment=environment) as server:
        router = router_with(llama_at(server.base_url))
        est = memory_of(router).estimate_for("default", backend="llama_server").as_dict()
    assert (est["ctx"], est["slots"], est["slots_known"]) == (8192, 4, True)
    assert est["kv_cache_mb"] == kv_mib


def test_slots_behind_a_process_that_is_not_llama_server_are_assumed() -> None:
    """What listens here is this test's own process, not llama-server (as a proxy in front of
    one would be): its command line says nothing of the slots, so llama-server's default is
    assumed and the estimate says it was."""
    props = {
        "model_path": "/models/m.gguf",
        "total_slots": 4,
        "default_generation_settings": {"n_ctx": 2048},
    }
    with recording_server(props) as (host, _):
        backend = config_from_mapping(llama_at(f"http://{host}")).backends["llama_server"]
        served = llama_server_model(backend, "m", any_name=True)
    assert (served.ctx, served.slots.count, served.slots.unified) == (2048, 4, True)
    assert not served.slots.known


def test_a_dead_server_warns_once_and_lets_the_request_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=PREFLIGHT_LOGGER)
    router = router_with(llama_at(f"http://127.0.0.1:{free_port()}"))
    for _ in range(3):
        decision = router.route(PROMPT)
        assert (decision.side, decision.verdict) == (Side.LOCAL, None)
    (warned,) = events(caplog, "preflight.unknown_model")
    assert (warned["backend"], warned["model"]) == ("llama_server", "default")
    assert "did not answer" in warned["reason"]
    (record,) = [r for r in caplog.records if r.name.startswith(PREFLIGHT_LOGGER)]
    assert record.levelno == logging.WARNING


def test_unknown_models_are_asked_again_after_the_ttl() -> None:
    clock = Clock()
    router = router_with(llama_at(f"http://127.0.0.1:{free_port()}"))
    memory = memory_of(router)
    memory.clock = clock
    with pytest.raises(ModelUnknown) as first:
        memory.estimate_for("default", backend="llama_server")
    clock.now += ESTIMATE_TTL_S
    with pytest.raises(ModelUnknown) as cached:
        memory.estimate_for("default", backend="llama_server")
    assert cached.value is first.value  # within the TTL: the server was not asked again
    clock.now += 1
    with pytest.raises(ModelUnknown) as asked:
        memory.estimate_for("default", backend="llama_server")
    assert asked.value is not first.value


def test_a_server_that_starts_later_is_described_after_the_ttl(
    rig: RigPaths, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=PREFLIGHT_LOGGER)
    port = free_port()
    clock = Clock()
    router = router_with(llama_at(f"http://127.0.0.1:{port}"))
    memory_of(router).clock = clock
    router.route(PROMPT)
    with LlamaServer.single_model(rig, port=port):
        router.route(PROMPT)  # within the TTL: still unknown, and no second warning
        assert len(events(caplog, "preflight.unknown_model")) == 1
        assert events(caplog, "preflight.checked") == []
        clock.now += ESTIMATE_TTL_S + 1
        router.route(PROMPT)
        (checked,) = events(caplog, "preflight.checked")
        assert checked["verdict"] == "fits"
    clock.now += ESTIMATE_TTL_S + 1
    router.route(PROMPT)  # gone again after it was described: say so again
    assert len(events(caplog, "preflight.unknown_model")) == 2


def test_a_server_with_an_api_key_is_asked_with_the_backends_key(
    rig: RigPaths, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """llama-server started with --api-key wants the key for /props and /models too."""
    caplog.set_level(logging.DEBUG, logger=PREFLIGHT_LOGGER)
    monkeypatch.setenv("DEVPULSE_TEST_LLAMA_KEY", "sekrit")
    with LlamaServer(rig, ["-m", str(rig.model), "-c", "2048", "--api-key", "sekrit"]) as server:
        keyless = router_with(llama_at(server.base_url))
        keyless.route(PROMPT)
        (warned,) = events(caplog, "preflight.unknown_model")
        assert "answered HTTP 401" in warned["reason"]
        config = llama_at(server.base_url)
        config["backends"]["llama_server"]["api_key_env"] = "DEVPULSE_TEST_LLAMA_KEY"
        router = router_with(config, plugins=[FixedMemory(1)])  # full: asks /models too
        assert router.route(PROMPT).side is Side.LOCAL
        (checked,) = events(caplog, "preflight.checked")
        assert checked["reason"].endswith("gemma-3-270m-q4_k_m.gguf is already loaded")
    assert "sekrit" not in caplog.text


class NoProps(BaseHTTPRequestHandler):
    """An OpenAI-compatible server without llama-server's `/props` (LM Studio, vLLM)."""

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            body = json.dumps({"object": "list", "data": [{"id": "qwen3-8b"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def no_props_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NoProps)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_without_props_is_unknown_and_passes(
    no_props_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=PREFLIGHT_LOGGER)
    router = router_with(llama_at(no_props_server, "qwen3-8b"))
    assert router.route(PROMPT).side is Side.LOCAL
    (warned,) = events(caplog, "preflight.unknown_model")
    assert "answered HTTP 404 (no /props: not a llama-server?)" in warned["reason"]


def test_bare_ai_lists_the_single_model_servers_model(
    llama_server: LlamaServer, tmp_path: Path, capsys
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[backends.llama_server]\nbase_url = "{llama_server.base_url}/v1"\n')
    assert main(["--config", str(cfg), "ai", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (loaded,) = [m for m in payload["loaded"] if m["backend"] == "llama_server"]
    # /v1/models meta.size: the weights, 246587904 bytes for the rig's Gemma 3 270M Q4_K_M
    assert loaded == {
        "backend": "llama_server",
        "model": "gemma-3-270m",
        "size_mb": 235,
        "unloadable": False,
    }
    assert main(["--config", str(cfg), "ai"]) == 0
    assert "loaded: llama_server/gemma-3-270m 235 MB" in capsys.readouterr().out


class BrokenListing:
    """A third-party backend plugin whose listing of loaded models has a bug."""

    @hookimpl
    def loaded_models(self, backend: str) -> list[Any]:
        raise RuntimeError("listing bug")


def test_a_listing_that_fails_some_other_way_is_a_note_not_a_crash() -> None:
    from devpulse.core.config import config_from_mapping  # noqa: PLC0415
    from devpulse.core.plugins import make_plugin_manager  # noqa: PLC0415
    from devpulse.plugins.preflight.servers import loaded_models  # noqa: PLC0415

    config = config_from_mapping({})
    manager = make_plugin_manager(config, entry_points=False, extra=[BrokenListing()])
    loaded, notes = loaded_models(config, manager.hook)
    assert loaded == []
    assert any("did not answer: RuntimeError: listing bug" in note for note in notes)


def silent_ollama_config(silent: FaultServer, cloud: FaultServer, ledger: Path) -> dict[str, Any]:
    """The local side an Ollama at `silent`, the cloud the fault server `cloud`."""
    return {
        "cloud": {"backend": "cloud", "model": "claude-sonnet-4-6"},
        "local": {"backend": "ollama", "model": "llama3.1:8b"},
        "backends": {
            "cloud": {"side": "cloud", "kind": "anthropic", "base_url": cloud.base_url},
            "ollama": {"base_url": silent.base_url},
        },
        "ledger": {"path": str(ledger)},
        "failover": {"local_timeout_s": 0.5, "connect_timeout_s": 0.5, "backoff_s": 0.05},
    }


# The server holds each request this long, then hangs up without a word: with the preflight's
# client waiting less, a read timeout; with it waiting longer, a dropped connection.
SILENT_HANG_S = 1.0


@pytest.mark.parametrize(
    ("client_wait_s", "error"), [(0.1, "ReadTimeout"), (10.0, "RemoteProtocolError")]
)
def test_a_silent_ollama_is_unknown_and_the_request_fails_over_with_its_row(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    client_wait_s: float,
    error: str,
) -> None:
    """An Ollama that accepts and never answers (or hangs up) is like a down one: the model
    cannot be described, so the request goes on to dispatch, which times out and fails over;
    and the finding is kept like any unknown model, so the next request does not wait again."""
    from devpulse.plugins.preflight import servers  # noqa: PLC0415

    monkeypatch.setattr(servers, "TIMEOUT_S", client_wait_s / 3)  # /api/show waits 3x this
    caplog.set_level(logging.WARNING, logger=PREFLIGHT_LOGGER)
    with (
        FaultServer(["silence"], hang_s=SILENT_HANG_S) as silent,
        FaultServer(["ok"]) as cloud,
    ):
        router = router_with(silent_ollama_config(silent, cloud, tmp_path / "l.sqlite3"))
        response = router.invoke(PROMPT, max_tokens=4)
        asked = len(silent.bodies)  # /api/show, then the dispatch's /api/chat
        assert router.invoke(PROMPT, max_tokens=4).side is Side.CLOUD
        shows = [b for b in silent.bodies[asked:] if "messages" not in b]
    assert (response.side, response.text.strip()) == (Side.CLOUD, ANSWER)
    assert asked == 2
    assert shows == []  # the second request's preflight did not ask the silent server again
    (warned,) = events(caplog, "preflight.unknown_model")
    assert f"Ollama at {silent.base_url} did not answer ({error}" in warned["reason"]
    assert router.ledger is not None
    router.ledger.flush()
    rows = router.ledger.rows()
    assert [r["outcome"] for r in rows] == ["answered", "answered"]


def test_ai_before_load_on_a_silent_ollama_is_exit_2_naming_the_server(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devpulse.plugins.preflight import servers  # noqa: PLC0415

    monkeypatch.setattr(servers, "TIMEOUT_S", 0.05)
    with FaultServer(["silence"], hang_s=SILENT_HANG_S) as silent:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[backends.ollama]\nbase_url = "{silent.base_url}"\n')
        code = main(["--config", str(cfg), "ai", "--before-load", "llama3.1:8b"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert f"Ollama at {silent.base_url} did not answer (ReadTimeout" in err


@pytest.mark.parametrize("name", ["default", "gemma-3-270m"])
def test_ai_before_load_looks_a_name_up_as_the_router_does(
    llama_server: LlamaServer, name: str
) -> None:
    """`default` is the model the local route names: the router sends it to the single-model
    server, which answers any name with its one model, so `ai` asks that server too. Either
    name, on a full device, is its loaded model: fits, as the router's preflight says."""
    config = llama_at(llama_server.base_url)
    code, shown = before_load(config, [FixedMemory(1)], name)
    assert (code, shown["verdict"]) == (0, "fits")
    assert shown["reasons"][0].endswith("llama_server/gemma-3-270m is already loaded")
    assert shown["estimate"]["served_by"] == "llama_server"


def test_a_routers_relative_models_dir_is_read_from_the_servers_working_directory(
    rig: RigPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`llama-server --models-dir models` reports `--model models/x.gguf` as given: the file
    is found from the server's working directory (its process on this machine), not ours."""
    home = tmp_path / "server"
    (home / "models").mkdir(parents=True)
    (home / "models" / rig.model.name).symlink_to(rig.model)
    monkeypatch.chdir(tmp_path)  # DevPulse runs elsewhere: models/ does not exist here
    with LlamaServer(rig, ["--models-dir", "models"], cwd=home) as server:
        router = router_with(llama_at(server.base_url, rig.model.stem))
        est = memory_of(router).estimate_for(rig.model.stem, backend="llama_server").as_dict()
    assert est["gguf"] == str(home / "models" / rig.model.name)
    assert est["served_model"] == rig.model.stem
