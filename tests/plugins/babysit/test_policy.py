"""Babysit's pure logic with fakes: which models go first, and when pressure starts and ends."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import time
from typing import Any

import pytest

from devpulse import (
    Babysitter,
    DeviceMemory,
    LoadedModel,
    config_from_mapping,
    hookimpl,
    make_plugin_manager,
)
from devpulse.cli import OutputClosed, _Group
from devpulse.plugins.babysit import Unloader
from devpulse.plugins.babysit.command import _describe, babysit_command
from devpulse.plugins.babysit.policy import Gauge, frees_mb, victims
from devpulse.plugins.babysit.watchdog import hogs
from tests.rig.llama_server import free_port


def model(name: str, size: int, backend: str = "ollama", unloadable: bool = True) -> LoadedModel:
    return LoadedModel(backend, name, size, unloadable=unloadable)


def test_least_recently_used_goes_first_and_larger_first_on_ties() -> None:
    loaded = [model("a", 100), model("b", 300), model("c", 200), model("d", 500)]
    last = {("ollama", "a"): 50.0, ("ollama", "b"): 10.0, ("ollama", "c"): 10.0}
    order = victims(loaded, busy=set(), pins=(), last_used=last)
    # d was never used (oldest); b and c tie at 10: the larger first; a was used last
    assert [m.model for m in order] == ["d", "b", "c", "a"]


def test_busy_pinned_and_unloadable_models_never_go() -> None:
    loaded = [
        model("busy", 100),
        model("pinned", 100),
        model("scoped", 100, backend="llama"),
        model("single", 100, unloadable=False),
        model("idle", 100),
    ]
    order = victims(
        loaded, busy={("ollama", "busy")}, pins=("pinned", "llama/scoped"), last_used={}
    )
    assert [m.model for m in order] == ["idle"]


def test_an_untagged_name_is_its_latest_tag_for_busy_pins_and_last_use() -> None:
    """The config and the ledger keep `gemma3` as written; Ollama's /api/ps lists it as
    `gemma3:latest`. Both name one model; another tag names another."""
    loaded = [model("gemma3:latest", 3300), model("qwen3:8b", 5000)]
    idle = loaded[1:]
    assert victims(loaded, busy={("ollama", "gemma3")}, pins=(), last_used={}) == idle
    assert victims(loaded, busy=set(), pins=("gemma3",), last_used={}) == idle
    assert victims(loaded, busy=set(), pins=("ollama/gemma3",), last_used={}) == idle
    assert victims(loaded, busy=set(), pins=("gemma3:270m",), last_used={}) == [
        loaded[1],
        loaded[0],
    ]
    last = {("ollama", "gemma3"): 50.0, ("ollama", "qwen3:8b"): 10.0}
    order = victims(loaded, busy=set(), pins=(), last_used=last)
    assert [m.model for m in order] == ["qwen3:8b", "gemma3:latest"]


def test_a_model_busy_or_pinned_under_one_of_its_aliases_never_goes() -> None:
    """llama-server lists a router model by its id (`gem`) with its aliases beside it; the
    ledger books a request under the name it gave (`writer`)."""
    gem = LoadedModel("llama_server", "gem", 300, aliases=("writer",))
    other = model("other", 100, backend="llama_server")
    assert victims([gem, other], busy={("llama_server", "writer")}, pins=(), last_used={}) == [
        other
    ]
    assert victims([gem, other], busy=set(), pins=("writer",), last_used={}) == [other]
    last = {("llama_server", "writer"): 50.0, ("llama_server", "other"): 10.0}
    assert victims([gem, other], busy=set(), pins=(), last_used=last) == [other, gem]


def test_a_model_frees_only_its_part_on_the_device_under_pressure() -> None:
    """Ollama's /api/ps says how much of a model is in VRAM (size_vram): a CPU-only model frees
    no VRAM, a GPU-only one no RAM; where the split is unknown, the whole size counts."""
    cpu_only = LoadedModel("ollama", "cpu-only", 3000, vram_mb=0)
    split = LoadedModel("ollama", "split", 1000, vram_mb=400)
    unknown = LoadedModel("llama_server", "unknown", 500)
    loaded = [cpu_only, split, unknown]
    assert [frees_mb(m, "nvidia") for m in loaded] == [0, 400, 500]
    assert [frees_mb(m, "host") for m in loaded] == [3000, 600, 500]
    assert [frees_mb(m, "apple") for m in loaded] == [3000, 1000, 500]  # unified memory
    on_gpu = victims(loaded, busy=set(), pins=(), last_used={}, kind="nvidia")
    assert on_gpu == [unknown, split]  # never used: the one that frees more first
    on_host = victims(loaded, busy=set(), pins=(), last_used={}, kind="host")
    assert on_host == [cpu_only, split, unknown]


def test_pressure_needs_two_samples_and_ends_above_the_hysteresis() -> None:
    gauge = Gauge(target_mb=1000, hysteresis_mb=200)
    assert gauge.observe(900) is False  # one sample below: not yet
    assert gauge.observe(1100) is False  # back above: the count starts again
    assert gauge.observe(900) is False
    assert gauge.observe(900) is True  # two in a row: pressure
    assert gauge.observe(1100) is True  # above target, below target + hysteresis: go on
    assert gauge.observe(1200) is False  # at the goal: the episode ends
    assert gauge.episode is False
    assert gauge.observe(1100) is False


def test_one_sample_is_enough_with_once() -> None:
    gauge = Gauge(target_mb=1000, hysteresis_mb=0, samples=1)
    assert gauge.observe(999) is True


class FakeHosts:
    """A host whose models free their size in a fake memory reading when unloaded."""

    def __init__(self, models: list[LoadedModel], free: int) -> None:
        self.models = {m.model: m for m in models}
        self.free = free
        self.unloaded: list[str] = []

    def loaded_models(self, backend: str) -> list[LoadedModel] | None:
        return [m for m in self.models.values() if m.backend == backend]

    def unload_model(self, backend: str, model: str) -> bool:
        self.unloaded.append(model)
        self.free += self.models.pop(model).size_mb
        return True


def unloader(hosts: FakeHosts, events: list[dict[str, Any]]) -> Unloader:
    config = config_from_mapping({})
    return Unloader(
        config,
        hosts,
        None,
        emit=lambda event, **f: events.append({"event": event, **f}),
        pause=lambda s: None,
    )


def test_unloads_until_the_goal_and_confirms_each() -> None:
    hosts = FakeHosts([model("a", 300), model("b", 200), model("c", 100)], free=500)
    events: list[dict[str, Any]] = []
    done = unloader(hosts, events).free_until(lambda: hosts.free, 900)
    # a (300) then b (200): 1000 >= 900, c stays
    assert hosts.unloaded == ["a", "b"]
    assert [(u.model, u.freed_mb, u.confirmed) for u in done] == [
        ("a", 300, True),
        ("b", 200, True),
    ]
    assert [e["event"] for e in events] == ["unload", "unload_confirmed"] * 2


def test_one_backend_that_fails_leaves_the_others_looked_after() -> None:
    hosts = FakeHosts([model("a", 300)], free=500)
    listed = hosts.loaded_models

    def loaded_models(backend: str) -> list[LoadedModel] | None:
        if backend == "llama_server":
            raise ValueError("Expecting value: line 1 column 1 (char 0)")  # it answered HTML
        return listed(backend)

    hosts.loaded_models = loaded_models  # type: ignore[method-assign]
    events: list[dict[str, Any]] = []
    config = config_from_mapping(
        {"backends": {"llama_server": {"base_url": "http://127.0.0.1:1/v1"}}}
    )
    sitter = Unloader(
        config, hosts, None, emit=lambda event, **f: events.append({"event": event, **f})
    )
    sitter.pause = lambda s: None
    sitter.free_until(lambda: hosts.free, 700)
    assert hosts.unloaded == ["a"]
    (down,) = [e for e in events if e["event"] == "host_unreachable"]
    assert down["backend"] == "llama_server"
    assert down["error"] == "ValueError: Expecting value: line 1 column 1 (char 0)"


def test_a_dry_run_unloads_nothing_but_says_what_it_would() -> None:
    hosts = FakeHosts([model("a", 300), model("b", 200)], free=500)
    events: list[dict[str, Any]] = []
    done = unloader(hosts, events).free_until(lambda: hosts.free, 700, dry_run=True)
    assert hosts.unloaded == []
    assert [(e["event"], e["model"], e["dry_run"]) for e in events] == [("unload", "a", True)]
    assert [u.dry_run for u in done] == [True]


def test_memory_that_never_comes_back_is_reported_stuck() -> None:
    hosts = FakeHosts([model("a", 300)], free=500)
    hosts.unload_model = lambda backend, model: True  # type: ignore[method-assign]
    events: list[dict[str, Any]] = []
    clock = iter(range(100))
    sitter = unloader(hosts, events)
    sitter.clock = lambda: float(next(clock))
    (done,) = sitter.free_until(lambda: hosts.free, 900)
    assert not done.confirmed
    assert events[-1]["event"] == "unload_stuck"


class StartsLater:
    """A ledger that sees a request start on `gemma3` (untagged) after the first look."""

    def __init__(self) -> None:
        self.looks = 0

    def in_flight(self, budget_s: float) -> set[tuple[str, str]]:
        self.looks += 1
        return set() if self.looks == 1 else {("ollama", "gemma3")}

    def last_used(self) -> dict[tuple[str, str], float]:
        return {}


def test_a_model_a_request_starts_on_after_the_listing_is_kept_whatever_its_tag() -> None:
    hosts = FakeHosts([model("gemma3:latest", 300)], free=500)
    events: list[dict[str, Any]] = []
    sitter = unloader(hosts, events)
    sitter.ledger = StartsLater()  # type: ignore[assignment]  # a fake with the two reads
    assert sitter.free_until(lambda: hosts.free, 900) == []
    assert hosts.unloaded == []


class BusyThrough:
    """A ledger with one request in flight, booked under `key`."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key

    def in_flight(self, budget_s: float) -> set[tuple[str, str]]:
        return {self.key}

    def last_used(self) -> dict[tuple[str, str], float]:
        return {}


def test_a_model_busy_through_another_backend_at_the_same_server_is_kept() -> None:
    """`ollama` and `ollama_v1` (its OpenAI-compatible /v1) are one server: a request through
    one keeps the model its listing under the other shows."""
    hosts = FakeHosts([model("qwen3:8b", 300), model("gemma3:latest", 200)], free=500)
    config = config_from_mapping(
        {
            "backends": {
                "ollama": {"base_url": "http://127.0.0.1:11434"},
                "ollama_v1": {
                    "side": "local",
                    "kind": "openai_compat",
                    "base_url": "http://127.0.0.1:11434/v1/",
                },
            }
        }
    )
    sitter = Unloader(config, hosts, BusyThrough(("ollama_v1", "qwen3:8b")), pause=lambda s: None)  # type: ignore[arg-type]  # a fake with the two reads
    sitter.free_until(lambda: hosts.free, 10_000)
    assert hosts.unloaded == ["gemma3:latest"]


def test_a_stop_ends_the_wait_for_memory_that_is_not_coming_back() -> None:
    hosts = FakeHosts([model("a", 300), model("b", 200)], free=500)
    hosts.unload_model = lambda backend, model: hosts.unloaded.append(model) or True  # type: ignore[method-assign,func-returns-value]
    events: list[dict[str, Any]] = []
    pauses: list[float] = []
    sitter = unloader(hosts, events)
    sitter.pause = pauses.append
    sitter.stopped = lambda: bool(hosts.unloaded)  # the signal came during the first unload
    (done,) = sitter.free_until(lambda: hosts.free, 900)
    assert hosts.unloaded == ["a"]
    assert (done.model, done.confirmed) == ("a", False)
    assert pauses == []  # no wait for a confirmation nobody will see
    assert [e["event"] for e in events] == ["unload"]


class HostPlugin(FakeHosts):
    """The fake host as a plugin: a `loaded_models`/`unload_model` owner and a memory probe."""

    @hookimpl
    def loaded_models(self, backend: str) -> list[LoadedModel] | None:
        return super().loaded_models(backend) if backend == "ollama" else None

    @hookimpl
    def unload_model(self, backend: str, model: str) -> bool | None:
        return super().unload_model(backend, model) if backend == "ollama" else None

    @hookimpl
    def probe_memory(self) -> list[DeviceMemory]:
        return [DeviceMemory("gpu:fake", "nvidia", 10_000, self.free, self.free)]


def sitter_over(
    host: HostPlugin, events: list[dict[str, Any]], target_free_mb: int = 600
) -> Babysitter:
    config = config_from_mapping(
        {
            "ledger": {"enabled": False},
            "backends": {"llama_server": {"base_url": f"http://127.0.0.1:{free_port()}/v1"}},
            "babysit": {"hysteresis_mb": 0, "interval_s": 0.01},
        }
    )
    pm = make_plugin_manager(config, entry_points=False, extra=[host])
    return Babysitter(config, pm.hook, target_free_mb=target_free_mb, on_event=events.append)


def test_the_babysitter_runs_in_a_thread_beside_the_caller() -> None:
    host = HostPlugin([model("a", 300), model("b", 200)], free=500)
    events: list[dict[str, Any]] = []
    sitter = sitter_over(host, events)
    thread = sitter.start()
    deadline = time.monotonic() + 30
    while "unload_confirmed" not in [e["event"] for e in events]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sitter.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert host.unloaded == ["a"]  # never used, and the larger: 800 MB free >= 600
    assert events[0]["event"] == "start"
    assert events[-1]["event"] == "stop"


def test_under_gpu_pressure_a_model_that_holds_no_vram_is_left_loaded() -> None:
    """A CPU-only model (size_vram 0) frees nothing on the GPU: unloading it, though it is the
    larger and never used, would only cost its next load."""
    cpu_only = LoadedModel("ollama", "cpu-only", 3000, vram_mb=0)
    on_gpu = LoadedModel("ollama", "on-gpu", 200, vram_mb=200)
    host = HostPlugin([cpu_only, on_gpu], free=500)
    events: list[dict[str, Any]] = []
    sitter_over(host, events).run(once=True)
    assert host.unloaded == ["on-gpu"]


def test_an_event_sink_that_fails_does_not_stop_the_unloads() -> None:
    host = HostPlugin([model("a", 300), model("b", 200)], free=500)

    def closed(event: dict[str, Any]) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    sitter = sitter_over(host, [])
    sitter.on_event = closed
    sitter.run(once=True)
    assert host.unloaded == ["a"]


class ClosedAfter(io.StringIO):
    """A stdout whose reader goes away after `lines` lines (``| head -2``)."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.lines = lines

    def write(self, text: str) -> int:
        if self.getvalue().count("\n") >= self.lines:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_closed_stdout_ends_babysit_once_the_unloads_it_decided_on_are_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = HostPlugin([model("a", 300), model("b", 200)], free=500)
    made: list[Babysitter] = []
    slept: list[float] = []

    def nap(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) >= 20:  # a bound for the test: babysit should have ended long before
            made[0].stop()

    def factory(*args: Any, **kwargs: Any) -> Babysitter:
        made.append(Babysitter(*args, sleep=nap, **kwargs))
        return made[0]

    config = sitter_over(host, []).config
    pm = make_plugin_manager(config, entry_points=False, extra=[host])
    cli = _Group()  # the CLI's group: a closed stdout is OutputClosed ("cut", exit 1)
    cli.add_command(babysit_command(config, pm.hook, factory=factory))
    # start, host_unreachable (the configured llama_server), the first sample
    monkeypatch.setattr(sys, "stdout", ClosedAfter(lines=3))
    args = ["babysit", "--json", "--target-free-mb", "600", "--interval", "1"]
    with pytest.raises(OutputClosed):
        cli.main(args, standalone_mode=False)
    # The second sample saw the pressure; its unload went ahead with nobody to tell.
    assert host.unloaded == ["a"]
    assert len(slept) == 1


class SignalledHost(HostPlugin):
    """SIGTERM arrives while the first unload is under way."""

    sitter: Babysitter | None = None

    @hookimpl
    def unload_model(self, backend: str, model: str) -> bool | None:
        if self.sitter is not None:
            self.sitter.stop()
        return super().unload_model(backend, model)


def test_a_stop_during_an_unloading_pass_ends_it_before_the_next_model() -> None:
    host = SignalledHost([model("a", 300), model("b", 200), model("c", 100)], free=500)
    events: list[dict[str, Any]] = []
    sitter = host.sitter = sitter_over(host, events, target_free_mb=10_000)
    sitter.run(once=True)
    assert host.unloaded == ["a"]
    assert [e["event"] for e in events][-1] == "stop"


def test_the_babysitter_runs_as_an_asyncio_task() -> None:
    host = HostPlugin([model("a", 300)], free=500)
    events: list[dict[str, Any]] = []
    sitter = sitter_over(host, events)

    async def main() -> None:
        task = asyncio.create_task(sitter.arun())
        while "unload_confirmed" not in [e["event"] for e in events]:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert host.unloaded == ["a"]
    assert events[-1]["event"] == "stop"


def test_gpu_memory_counts_when_naming_the_processes_that_hold_the_most() -> None:
    """NVML's per-process figure (as an H200 reported a process holding 96 GiB) ranks a
    process with little RAM first and is named in the report."""
    me = os.getpid()
    gpu = DeviceMemory(
        "cuda:0 NVIDIA H200",
        "nvidia",
        143771,
        44233,
        44233,
        processes=({"pid": me, "used_mb": 98914},),
    )
    first, *rest = hogs(gpu)
    assert (first["pid"], first["vram_mb"], first["device"]) == (me, 98914, "cuda:0 NVIDIA H200")
    assert all("vram_mb" not in h for h in rest)
    line = _describe({"event": "hog", **first})
    assert line.endswith("MB RAM, 98914 MB on cuda:0 NVIDIA H200")
    assert _describe({"event": "hog", **rest[0]}).endswith(" MB RAM")
