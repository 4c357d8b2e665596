"""Babysit against real servers: llama-server in router mode with two models, and the
Ollama-protocol rig. Free memory is what an injected probe computes from the real model
processes (a base less the router's children's RSS), so unloading really raises it."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import pytest

from devpulse import DeviceMemory, Router, TaskClass, hookimpl
from devpulse.cli import App, build_cli, main
from devpulse.core.plugins import make_plugin_manager
from devpulse.plugins.babysit import Babysitter
from tests.rig.llama_server import LlamaServer, RigPaths, free_port
from tests.rig.ollama_server import OllamaRig
from tests.rig.two_models import TwoModels
from tests.support import router_with

ROOT = Path(__file__).resolve().parents[3]
BASE_MB = 100_000
PROMPT = "summarize this changelog"


class RigMemory:
    """A device whose free memory is a base less what the model processes hold now: a GPU,
    or (`kind="host"`) the RAM those processes really hold their models in."""

    def __init__(self, rss_mb: Any, kind: Literal["nvidia", "host"] = "nvidia") -> None:
        self.rss_mb = rss_mb
        self.kind = kind

    @hookimpl
    def probe_memory(self) -> list[DeviceMemory]:
        free = BASE_MB - self.rss_mb()
        return [DeviceMemory("gpu:test", self.kind, BASE_MB, free, free)]


def settings(llama_url: str, model: str = "alpha", **extra: Any) -> dict[str, Any]:
    return {
        "local": {"backend": "llama_server", "model": model},
        "backends": {
            "llama_server": {"base_url": f"{llama_url}/v1"},
            "ollama": {"base_url": f"http://127.0.0.1:{free_port()}"},
        },
        "babysit": {"hysteresis_mb": 0},
        **extra,
    }


def use(router: Router, max_tokens: int = 4) -> None:
    router.invoke(PROMPT, task=TaskClass.DRAFTING, max_tokens=max_tokens)


def free_now(router: Router) -> int:
    (device,) = [d for d in router.pm.hook.probe_memory() if d and d[0].device == "gpu:test"]
    return int(device[0].free_mb)


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def test_babysit_once_unloads_the_least_recently_used_model(
    fresh: TwoModels, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = RigMemory(fresh.rss_mb)
    alpha = router_with(settings(fresh.base_url, "alpha"), plugins=[probe])
    beta = router_with(settings(fresh.base_url, "beta"), plugins=[probe])
    use(alpha)
    use(beta)  # alpha is now the least recently used
    child = fresh.process("alpha")
    assert child is not None
    assert fresh.process("beta") is not None
    target = free_now(alpha) + 200
    config = alpha.config
    app = App(config=config, pm=make_plugin_manager(config, entry_points=False, extra=[probe]))
    args = ["babysit", "--once", "--json", "--target-free-mb", str(target)]
    build_cli(app).main(args=args, standalone_mode=False)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all("status" in e and "ts" in e for e in events)
    events = [e for e in events if e["event"] != "host_unreachable"]  # the unused ollama
    assert kinds(events) == ["start", "sample", "pressure", "unload", "unload_confirmed", "stop"]
    unload, confirmed = events[3], events[4]
    assert (unload["backend"], unload["model"]) == ("llama_server", "alpha")
    assert confirmed["model"] == "alpha"
    assert confirmed["freed_mb"] >= 200  # what the model's process held
    assert not child.is_running()  # the OS agrees: alpha's process is gone
    assert fresh.states() == {"alpha": "unloaded", "beta": "loaded"}


def test_a_model_serving_a_request_is_never_unloaded(fresh: TwoModels) -> None:
    probe = RigMemory(fresh.rss_mb)
    alpha = router_with(settings(fresh.base_url, "alpha"), plugins=[probe])
    beta = router_with(settings(fresh.base_url, "beta"), plugins=[probe])
    use(alpha)
    use(beta)  # alpha would go first, but it is about to serve a long answer
    answer = alpha.stream(PROMPT, task=TaskClass.DRAFTING, max_tokens=4000)
    try:
        next(answer)  # alpha is streaming now
        events: list[dict[str, Any]] = []
        sitter = Babysitter.beside(
            alpha, target_free_mb=free_now(alpha) + 200, on_event=events.append
        )
        sitter.run(once=True)
        unloaded = [e["model"] for e in events if e["event"] == "unload"]
        assert unloaded == ["beta"]
        assert fresh.states()["alpha"] == "loaded"
    finally:
        answer.close()


def test_a_model_serving_a_request_under_its_alias_is_never_unloaded(
    rig: RigPaths, tmp_path: Path
) -> None:
    """A router preset gives the model an alias: `/models` lists it as `gem` with
    `"aliases": ["writer"]`, while the ledger books the request under `writer`."""
    preset = tmp_path / "preset.ini"
    preset.write_text(f"[gem]\nmodel = {rig.model}\nalias = writer\nc = 2048\n")
    with LlamaServer(rig, ["--models-preset", str(preset)]) as server:

        def rss_mb() -> int:
            return sum(c.memory_info().rss for c in server.children()) // (1024 * 1024)

        router = router_with(settings(server.base_url, "writer"), plugins=[RigMemory(rss_mb)])
        answer = router.stream(PROMPT, task=TaskClass.DRAFTING, max_tokens=4000)
        try:
            next(answer)  # gem is streaming now, asked for as `writer`
            events: list[dict[str, Any]] = []
            sitter = Babysitter.beside(
                router, target_free_mb=free_now(router) + 200, on_event=events.append
            )
            sitter.run(once=True)
        finally:
            answer.close()
    (sample,) = [e for e in events if e["event"] == "sample"]
    (listed,) = [m for m in sample["loaded"] if m["backend"] == "llama_server"]
    assert (listed["model"], listed["aliases"]) == ("gem", ["writer"])
    assert "pressure" in kinds(events)
    assert [e for e in events if e["event"] == "unload"] == []


def test_a_pinned_model_is_never_unloaded(fresh: TwoModels) -> None:
    probe = RigMemory(fresh.rss_mb)
    alpha = router_with(settings(fresh.base_url, "alpha"), plugins=[probe])
    beta = router_with(settings(fresh.base_url, "beta"), plugins=[probe])
    use(alpha)
    use(beta)
    events: list[dict[str, Any]] = []
    sitter = Babysitter.beside(
        alpha, target_free_mb=free_now(alpha) + 200, pins=["alpha"], on_event=events.append
    )
    sitter.run(once=True)
    assert [e["model"] for e in events if e["event"] == "unload"] == ["beta"]
    assert fresh.states() == {"alpha": "loaded", "beta": "unloaded"}


def test_a_dry_run_unloads_nothing(fresh: TwoModels) -> None:
    probe = RigMemory(fresh.rss_mb)
    alpha = router_with(settings(fresh.base_url, "alpha"), plugins=[probe])
    fresh.load("alpha")
    fresh.load("beta")
    events: list[dict[str, Any]] = []
    sitter = Babysitter.beside(
        alpha, target_free_mb=free_now(alpha) + 200, dry_run=True, on_event=events.append
    )
    sitter.run(once=True)
    planned = [e for e in events if e["event"] == "unload"]
    assert planned
    assert all(e["dry_run"] for e in planned)
    assert "unload_confirmed" not in kinds(events)
    assert fresh.states() == {"alpha": "loaded", "beta": "loaded"}


def test_when_unloading_is_not_enough_the_biggest_processes_are_named(fresh: TwoModels) -> None:
    probe = RigMemory(fresh.rss_mb)
    alpha = router_with(settings(fresh.base_url, "alpha"), plugins=[probe])
    events: list[dict[str, Any]] = []
    sitter = Babysitter.beside(alpha, target_free_mb=BASE_MB * 2, on_event=events.append)
    sitter.run(once=True)
    hogs = [e for e in events if e["event"] == "hog"]
    assert len(hogs) == 3
    assert all(h["rss_mb"] > 0 and h["pid"] > 0 for h in hogs)
    assert hogs[0]["rss_mb"] >= hogs[-1]["rss_mb"]


def test_ollama_models_are_unloaded_with_keep_alive_zero(
    ollama_rig: OllamaRig, llama_router: LlamaServer
) -> None:
    def rss_mb() -> int:
        return sum(c.memory_info().rss for c in llama_router.children()) // (1024 * 1024)

    cfg = settings(f"http://127.0.0.1:{free_port()}")
    cfg["backends"]["ollama"] = {"base_url": ollama_rig.base_url}
    cfg["local"] = {"backend": "ollama", "model": "gemma3:270m"}
    # The rig's models run on the CPU (/api/ps size_vram 0): what unloading frees is RAM,
    # so the watched device is the host, this test's in place of the machine's own.
    router = router_with(cfg, plugins=[RigMemory(rss_mb, kind="host")])
    router.pm.unregister(name="devpulse.probe.host")
    ollama_rig.load("gemma3:270m")
    child = ollama_rig.loaded()["gemma3:270m"]
    ollama_rig.requests.clear()
    events: list[dict[str, Any]] = []
    sitter = Babysitter.beside(
        router, target_free_mb=free_now(router) + 100, on_event=events.append
    )
    sitter.run(once=True)
    (down,) = [e for e in events if e["event"] == "host_unreachable"]
    assert down["backend"] == "llama_server"  # nothing listens there: said once, no crash
    assert [e["model"] for e in events if e["event"] == "unload_confirmed"] == ["gemma3:270m"]
    (sent,) = [body for what, body in ollama_rig.requests if what == "POST /api/generate"]
    assert (sent["model"], sent["keep_alive"]) == ("gemma3:270m", 0)
    assert not child.is_running()


def test_a_host_that_goes_away_is_reported_once_and_the_loop_goes_on(
    two_models: TwoModels,
) -> None:
    folder = two_models.server.args[two_models.server.args.index("--models-dir") + 1]
    server = LlamaServer(two_models.server.rig, ["--models-dir", folder])
    server.start()
    router = router_with(settings(server.base_url), plugins=[RigMemory(lambda: 0)])
    events: list[dict[str, Any]] = []
    naps: list[float] = []
    sitter: Babysitter

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            server.stop()  # the host goes away mid-run
        if len(naps) == 5:
            sitter.stop()

    sitter = Babysitter.beside(router, target_free_mb=0, on_event=events.append, sleep=sleep)
    try:
        sitter.run()
    finally:
        server.stop()
    down = [e for e in events if e["event"] == "host_unreachable"]
    assert [e["backend"] for e in down] == ["ollama", "llama_server"]  # each once
    assert kinds(events)[-1] == "stop"
    assert len(naps) == 5  # it kept sampling after the host went


def test_once_in_json_prints_start_sample_stop(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    dead = f"http://127.0.0.1:{free_port()}"
    cfg.write_text(
        f'[backends.llama_server]\nbase_url = "{dead}/v1"\n[backends.ollama]\nbase_url = "{dead}"\n'
    )
    code = main(["--config", str(cfg), "babysit", "--once", "--json", "--target-free-mb", "0"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert kinds(events) == ["start", "host_unreachable", "host_unreachable", "sample", "stop"]
    assert events[3]["free_mb"] > 0
    assert events[3]["target_mb"] == 0


class FullDisk(io.StringIO):
    """A stdout on a full disk (``> /dev/full``): every write fails with ENOSPC."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_an_unwritable_stdout_is_exit_1_and_one_line(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    dead = f"http://127.0.0.1:{free_port()}"
    cfg.write_text(
        f'[backends.llama_server]\nbase_url = "{dead}/v1"\n[backends.ollama]\nbase_url = "{dead}"\n'
    )
    for extra in (["--json"], []):
        monkeypatch.setattr(sys, "stdout", FullDisk())
        code = main(["--config", str(cfg), "babysit", "--once", *extra])
        err = capsys.readouterr().err
        assert (code, err) == (1, "devpulse: error: No space left on device\n"), extra


def test_sigterm_stops_the_watchdog_cleanly(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    dead = f"http://127.0.0.1:{free_port()}"
    cfg.write_text(
        f'[backends.llama_server]\nbase_url = "{dead}/v1"\n[backends.ollama]\nbase_url = "{dead}"\n'
    )
    # a target no machine meets: it is under pressure, with nothing to unload, when killed
    args = ["--config", str(cfg), "babysit", "--json", "--interval", "0.1"]
    args += ["--target-free-mb", str(10**9)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from devpulse.cli import run; run()", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DEVPULSE_LOAD_PLUGINS": ""},
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(json.loads(line)["event"])
        if "pressure" in seen:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    events = [json.loads(line) for line in rest.splitlines()]
    assert proc.returncode == 0
    assert events[-1]["event"] == "stop"
    assert events[-1]["status"] == "ok"


class ListedMemory:
    """Free memory as the router's state implies: a base less each loaded model's file."""

    def __init__(self, models: TwoModels, base_mb: int) -> None:
        self.models = models
        self.base_mb = base_mb
        self.file_mb = models.server.rig.model.stat().st_size // (1024 * 1024)

    @hookimpl
    def probe_memory(self) -> list[DeviceMemory]:
        held = sum(self.file_mb for s in self.models.states().values() if s == "loaded")
        free = self.base_mb - held
        return [DeviceMemory("gpu:test", "nvidia", self.base_mb, free, free)]


def test_auto_clean_unloads_an_idle_model_so_a_tight_request_is_answered(
    fresh: TwoModels,
) -> None:
    """beta fits only once idle alpha goes: the preflight unloads alpha, then beta answers."""
    probe = ListedMemory(fresh, 0)
    router = router_with(settings(fresh.base_url, "beta"), plugins=[probe])
    memory = router.pm.get_plugin("devpulse.preflight").memory
    need = memory.estimate_for("beta", backend="llama_server")
    probe.base_mb = need.need_mb + 20  # with alpha loaded beta does not fit; without, it does
    fresh.load("alpha")
    memory.devices(fresh=True)  # the reading the estimate took had no base yet
    answer = router.invoke(PROMPT, task=TaskClass.DRAFTING, max_tokens=4)
    assert answer.backend == "llama_server"
    assert fresh.states()["alpha"] == "unloaded"
    assert router.ledger is not None
    (row,) = router.ledger.rows()
    assert row["outcome"] == "answered"
    assert "auto-clean unloaded llama_server/alpha" in row["reasons"]


def test_auto_clean_can_be_switched_off(fresh: TwoModels) -> None:
    probe = ListedMemory(fresh, 0)
    cfg = settings(fresh.base_url, "beta")
    cfg["babysit"]["auto_clean"] = False
    router = router_with(cfg, plugins=[probe])
    memory = router.pm.get_plugin("devpulse.preflight").memory
    need = memory.estimate_for("beta", backend="llama_server")
    probe.base_mb = need.need_mb + 20
    fresh.load("alpha")
    memory.devices(fresh=True)
    decision = router.route(PROMPT, task=TaskClass.DRAFTING)
    assert decision.verdict is not None
    assert "fits after unloading idle models" in decision.verdict.reason
    assert fresh.states()["alpha"] == "loaded"
