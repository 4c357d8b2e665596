"""Verdicts, the per-request preflight in the pipeline, and the probe cache."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from devpulse import (
    Decision,
    DeviceMemory,
    Labels,
    LoadedModel,
    PreflightRefused,
    PrivacyLevel,
    Request,
    Response,
    Router,
    Side,
    TaskClass,
    hookimpl,
)
from devpulse.core.inline import WouldBlock, on_loop
from devpulse.plugins.preflight.probes import NvidiaProbe
from tests.plugins.preflight.recorded import H200_HELD, H200_IDLE, LOST, RecordedNvml
from tests.support import router_with


class FixedMemory:
    """A probe reporting one device with a given budget (replaces nothing: adds a GPU)."""

    def __init__(self, budget_mb: int) -> None:
        self.budget_mb = budget_mb
        self.calls = 0

    @hookimpl
    def probe_memory(self) -> list[DeviceMemory]:
        self.calls += 1
        return [DeviceMemory("gpu:test", "nvidia", 24576, self.budget_mb, self.budget_mb)]


class Secret:
    @hookimpl
    def classify(self, request: Request) -> Labels:
        return Labels(privacy_level=PrivacyLevel.SECRET)


class Answers:
    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        return Response("ok", decision.model, decision.backend, decision.side)


NEEDS = {"preflight": {"models": {"default": {"need_mb": 5600}}}}


def preflight(verdict_budget: int):
    from devpulse.plugins.preflight.memory import Memory  # noqa: PLC0415

    router = router_with(NEEDS, plugins=[FixedMemory(verdict_budget)])
    memory: Memory = router.pm.get_plugin("devpulse.preflight").memory
    return router, memory


@pytest.mark.parametrize(
    ("budget", "verdict"),
    [
        (10000, "fits"),
        (6589, "fits"),
        (6588, "tight"),
        (6000, "tight"),
        (5600, "tight"),
        (5000, "no_fit"),
    ],
)
def test_verdict_thresholds(budget: int, verdict: str) -> None:
    _, memory = preflight(budget)
    result = memory.judge(5600, with_reclaimable=False)
    assert result.verdict == verdict
    assert result.device.device == "gpu:test"  # an accelerator beats host RAM


def test_a_local_model_that_fits_is_left_alone() -> None:
    router, _ = preflight(20000)
    decision = router.route("summarize this changelog")
    assert decision.side is Side.LOCAL
    assert decision.verdict is not None
    assert (decision.verdict.action, decision.verdict.details["verdict"]) == ("pass", "fits")


def test_no_fit_reroutes_public_work_to_the_cloud() -> None:
    router = router_with(NEEDS, plugins=[FixedMemory(1000), Answers()])
    decision = router.route("summarize this changelog")
    assert (decision.side, decision.backend) == (Side.CLOUD, "anthropic")
    assert decision.verdict is not None
    assert decision.verdict.details["verdict"] == "no_fit"
    assert decision.verdict.details["need_mb"] == 5600
    assert any("does not fit" in r for r in decision.reasons)
    assert router.invoke("summarize this changelog").side is Side.CLOUD


def test_no_fit_refuses_sensitive_work_clearly() -> None:
    router = router_with(NEEDS, plugins=[FixedMemory(1000), Secret(), Answers()])
    with pytest.raises(PreflightRefused, match=r"does not fit in memory now.*local-only"):
        router.invoke("summarize this changelog")


def test_cloud_decisions_and_unknown_models_pass() -> None:
    router = router_with(plugins=[FixedMemory(10)])
    cloud = router.route(Request.from_prompt("x", task=TaskClass.REASONING))
    assert cloud.side is Side.CLOUD
    local = router.route("summarize this")  # "default": no server, no config -> unknown
    assert (local.side, local.verdict) == (Side.LOCAL, None)


def test_disabled_preflight_checks_nothing() -> None:
    config = {"preflight": {"enabled": False, "models": {"default": {"need_mb": 5600}}}}
    router = router_with(config, plugins=[FixedMemory(10)])
    assert router.route("summarize this").side is Side.LOCAL


def test_readings_are_cached_for_the_ttl() -> None:
    probe = FixedMemory(20000)
    router = router_with(NEEDS, plugins=[probe])
    for _ in range(50):
        router.route("summarize this changelog")
    assert probe.calls == 1
    memory = router.pm.get_plugin("devpulse.preflight").memory
    memory.clock = lambda: 1e12  # far in the future: the reading is stale
    router.route("summarize this changelog")
    assert probe.calls == 2


class HeldMemory(FixedMemory):
    """A probe that answers only once `go` is set, and says in which thread it ran."""

    def __init__(self, budget_mb: int) -> None:
        super().__init__(budget_mb)
        self.go = threading.Event()
        self.go.set()
        self.threads: list[str] = []

    @hookimpl
    def probe_memory(self) -> list[DeviceMemory]:
        self.threads.append(threading.current_thread().name)
        assert self.go.wait(10)
        return super().probe_memory()


def budget_of(memory: Any) -> int:
    return memory.target().budget_mb


def test_on_the_loop_a_just_stale_reading_is_used_while_one_thread_takes_a_new_one() -> None:
    """Probing there would send the whole decision to a thread (hundreds of ms with the loop
    busy); one TTL late, the last reading is still used, and a refresh runs behind it."""
    probe = HeldMemory(20000)
    router = router_with(NEEDS, plugins=[probe])
    memory = router.pm.get_plugin("devpulse.preflight").memory
    now = [0.0]
    memory.clock = lambda: now[0]
    ttl = router.config.preflight.cache_ttl_s
    assert budget_of(memory) == 20000
    assert probe.calls == 1

    probe.budget_mb, probe.go = 3000, threading.Event()
    now[0] = 1.5 * ttl
    for _ in range(3):  # one refresh, however many ask while it runs
        assert on_loop(lambda: budget_of(memory)) == 20000
    probe.go.set()
    memory._behind.wait(10)
    assert probe.calls == 2
    assert probe.threads[-1] == "devpulse-refresh"
    assert on_loop(lambda: budget_of(memory)) == 3000  # the new reading, taken at 1.5 TTL

    now[0] = 1.5 * ttl + 2.5 * ttl  # too old to use: the decision goes to a thread
    with pytest.raises(WouldBlock):
        on_loop(lambda: budget_of(memory))
    assert budget_of(memory) == 3000
    assert probe.calls == 3


def test_on_the_loop_a_just_stale_estimate_is_used_while_one_thread_makes_a_new_one() -> None:
    from devpulse.plugins.preflight.memory import ESTIMATE_TTL_S  # noqa: PLC0415

    router = router_with(NEEDS, plugins=[FixedMemory(20000)])
    memory = router.pm.get_plugin("devpulse.preflight").memory
    now = [0.0]
    memory.clock = lambda: now[0]
    made: list[int] = []
    estimate = memory._estimate

    def counted(spec: str, ctx: int | None, backend: str | None) -> Any:
        made.append(ctx or 0)
        return estimate(spec, ctx, backend)

    memory._estimate = counted
    assert memory.estimate_for("default").need_mb == 5600
    assert len(made) == 1
    now[0] = 1.5 * ESTIMATE_TTL_S
    memory.devices(fresh=True)  # a reading, so that only the estimate is stale
    assert on_loop(lambda: memory.estimate_for("default")).need_mb == 5600
    memory._behind.wait(10)
    assert len(made) == 2
    now[0] = 4 * ESTIMATE_TTL_S
    memory.devices(fresh=True)
    with pytest.raises(WouldBlock):
        on_loop(lambda: memory.estimate_for("default"))


def test_an_async_request_is_decided_on_the_loop_when_its_reading_has_just_gone_stale() -> None:
    probe = HeldMemory(20000)
    router = router_with(NEEDS, plugins=[probe, Answers()])
    memory = router.pm.get_plugin("devpulse.preflight").memory
    now = [0.0]
    memory.clock = lambda: now[0]

    async def ask() -> Response:
        return await router.ainvoke("summarize this changelog")

    assert asyncio.run(ask()).text == "ok"
    now[0] = 1.5 * router.config.preflight.cache_ttl_s
    assert asyncio.run(ask()).text == "ok"
    memory._behind.wait(10)
    # The stale reading was not taken in the decision's thread: a refresh took it behind.
    assert probe.threads[1:] == ["devpulse-refresh"]


def test_the_verdict_follows_a_process_that_takes_the_gpu() -> None:
    """NVML's answers as recorded on an H200 (bench/nvml_live.py): a 71,577 MB model fits
    while the GPU is idle; once another process holds 96 GiB, the next reading after the TTL
    sends public work to the cloud."""

    nvml = RecordedNvml([H200_IDLE])
    config = {"preflight": {"models": {"default": {"need_mb": 71577}}}}
    router = router_with(config, plugins=[NvidiaProbe(nvml), Answers()])
    idle = router.route("summarize this changelog")
    assert idle.verdict is not None
    assert (idle.side, idle.verdict.details["verdict"]) == (Side.LOCAL, "fits")
    assert idle.verdict.details["device"] == "cuda:0 NVIDIA H200"

    nvml.devices = [H200_HELD]
    router.pm.get_plugin("devpulse.preflight").memory.clock = lambda: 1e12  # past the TTL
    held = router.route("summarize this changelog")
    assert held.verdict is not None
    assert (held.side, held.verdict.details["verdict"]) == (Side.CLOUD, "no_fit")
    assert held.verdict.details["budget_mb"] == 44233


def test_a_lost_gpu_does_not_fail_routing() -> None:
    """NVML lists a GPU it cannot read: preflight judges what the other probes see."""

    router = router_with(NEEDS, plugins=[NvidiaProbe(RecordedNvml([LOST])), Answers()])
    decision = router.route("summarize this changelog")
    assert decision.verdict is not None
    assert decision.verdict.details["device"] == "cpu"  # host RAM: the GPU could not be read
    assert router.invoke("summarize this changelog").text == "ok"


class Broken:
    """A team's own probe with a bug in it."""

    @hookimpl
    def probe_memory(self) -> list[DeviceMemory]:
        raise RuntimeError("the vendor tool printed something new")


def test_a_probe_that_raises_is_left_out_with_one_warning(caplog) -> None:
    router = router_with(NEEDS, plugins=[FixedMemory(20000), Broken(), Answers()])
    decision = router.route("summarize this changelog")
    assert decision.verdict is not None
    assert decision.verdict.details["device"] == "gpu:test"  # the other probes still count
    memory = router.pm.get_plugin("devpulse.preflight").memory
    memory.clock = lambda: 1e12  # past the TTL: probed again
    assert router.invoke("summarize this changelog").text == "ok"
    warned = [r for r in caplog.records if "preflight.probe_failed" in r.getMessage()]
    assert len(warned) == 1
    assert "RuntimeError: the vendor tool printed something new" in warned[0].getMessage()


def test_bad_preflight_config() -> None:
    from devpulse import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError, match=r"preflight\.models\.x: give exactly one of"):
        router_with({"preflight": {"models": {"x": {}}}})
    with pytest.raises(ConfigError, match=r"preflight\.fit_ratio"):
        router_with({"preflight": {"fit_ratio": 1.5}})


class OllamaHolding:
    """An Ollama server holding `models` on one GPU, as `/api/ps` lists them: with their tag.
    Unloading one frees its memory. As `backend`, another server: a llama-server router
    lists `aliases` beside a model's id."""

    def __init__(
        self,
        models: dict[str, int],
        free_mb: int,
        backend: str = "ollama",
        aliases: dict[str, tuple[str, ...]] | None = None,
        vram: dict[str, int] | None = None,
    ) -> None:
        self.models = dict(models)
        self.free_mb = free_mb
        self.backend = backend
        self.aliases = aliases or {}
        self.vram = vram or {}  # /api/ps size_vram: the part of a model on the GPU
        self.unloaded: list[str] = []

    @hookimpl(tryfirst=True)
    def probe_memory(self) -> list[DeviceMemory]:
        return [DeviceMemory("gpu:test", "nvidia", 24000, self.free_mb, self.free_mb)]

    @hookimpl(tryfirst=True)
    def loaded_models(self, backend: str) -> list[LoadedModel] | None:
        if backend != self.backend:
            return []
        return [
            LoadedModel(
                backend,
                name,
                size,
                vram_mb=self.vram.get(name),
                aliases=self.aliases.get(name, ()),
            )
            for name, size in self.models.items()
        ]

    @hookimpl(tryfirst=True)
    def unload_model(self, backend: str, model: str) -> bool | None:
        if backend != self.backend:
            return None
        self.unloaded.append(model)
        size = self.models.pop(model)
        self.free_mb += self.vram.get(model, size)  # the GPU gets back the part it held
        return True


def ollama_router(
    model: str, need_mb: int, host: OllamaHolding, ledger: Path | None = None, **extra: Any
) -> Router:
    ledger_cfg = {"enabled": False} if ledger is None else {"path": str(ledger)}
    config = {
        "local": {"backend": "ollama", "model": model},
        "preflight": {"models": {model: {"need_mb": need_mb}}},
        "ledger": ledger_cfg,
        **extra,
    }
    return router_with(config, plugins=[host, Answers()])


def test_an_untagged_ollama_model_listed_with_its_latest_tag_is_already_loaded() -> None:
    host = OllamaHolding({"gemma3:latest": 5800}, free_mb=1000)
    decision = ollama_router("gemma3", 6000, host).route("summarize this changelog")
    assert decision.verdict is not None
    assert decision.verdict.details["verdict"] == "fits"
    assert "ollama/gemma3:latest is already loaded" in decision.verdict.reason
    assert host.unloaded == []


def assert_sent_to_the_cloud_counting_only(reclaimable_mb: int, router: Router, host: Any) -> None:
    """The request goes to the cloud as no_fit, counting only `reclaimable_mb` as freeable,
    and auto-clean unloads nothing for a request it cannot make fit."""
    decision = router.route("summarize this changelog")
    assert decision.side is Side.CLOUD
    assert decision.verdict is not None
    assert decision.verdict.details["verdict"] == "no_fit"
    assert decision.verdict.details["reclaimable_mb"] == reclaimable_mb
    assert host.unloaded == []


def test_a_pinned_model_is_not_reclaimable_so_a_model_that_needs_it_goes_to_the_cloud() -> None:
    """Only the idle 900 MB model could go: 1000 + 900 MB is far from 20000, so no_fit, and
    auto-clean unloads nothing for a request it cannot make fit."""
    host = OllamaHolding({"qwen3:32b": 19000, "gemma3:latest": 900}, free_mb=1000)
    router = ollama_router("big", 20000, host, babysit={"pins": ["qwen3:32b"]})
    assert_sent_to_the_cloud_counting_only(900, router, host)


def test_a_model_serving_a_request_is_not_reclaimable(tmp_path: Path) -> None:
    host = OllamaHolding({"qwen3:32b": 19000, "gemma3:latest": 900}, free_mb=1000)
    router = ollama_router("big", 20000, host, ledger=tmp_path / "ledger.sqlite3")
    assert router.ledger is not None
    router.ledger.begin_use("ollama", "qwen3:32b")  # another process's request, in flight
    assert_sent_to_the_cloud_counting_only(900, router, host)


def test_deciding_unloads_nothing_and_sending_makes_room() -> None:
    """`Router.route` (``devpulse route``) only says where a request would go: it names the
    auto-clean it would do; the dispatch does it."""
    host = OllamaHolding({"qwen3:32b": 19000, "gemma3:latest": 900}, free_mb=1000)
    router = ollama_router("mid", 6000, host)  # fits once the idle qwen3 goes
    decision = router.route("summarize this changelog")
    assert (decision.side, host.unloaded) == (Side.LOCAL, [])
    assert decision.verdict is not None
    assert decision.verdict.details["verdict"] == "tight"
    assert "auto-clean would unload idle models" in decision.verdict.reason
    answer = router.invoke("summarize this changelog")
    assert (answer.side, host.unloaded) == (Side.LOCAL, ["qwen3:32b"])
    assert any("auto-clean unloaded ollama/qwen3:32b" in r for r in answer.reasons)


# The same server as the default `ollama` backend, through its OpenAI-compatible /v1.
SAME_SERVER = {
    "ollama_v1": {"side": "local", "kind": "openai_compat", "base_url": "http://127.0.0.1:11434/v1"}
}


@pytest.mark.parametrize(
    ("backend", "aliases", "busy", "backends"),
    [
        ("llama_server", {"qwen3-32b": ("coder",)}, ("llama_server", "coder"), {}),
        ("ollama", {}, ("ollama_v1", "qwen3-32b"), SAME_SERVER),
    ],
    ids=["by-an-alias", "through-another-backend-at-the-same-server"],
)
def test_auto_clean_keeps_a_model_serving_a_request_whatever_it_was_called(
    tmp_path: Path,
    backend: str,
    aliases: dict[str, tuple[str, ...]],
    busy: tuple[str, str],
    backends: dict[str, Any],
) -> None:
    """The ledger books a request under the backend and name it gave; the server lists the
    model by its id (with its aliases), under each backend that points at it. Never used
    and the larger, qwen3-32b would be unloaded first if it were not seen as busy."""
    host = OllamaHolding(
        {"qwen3-32b": 19000, "gemma3:latest": 900}, free_mb=1000, backend=backend, aliases=aliases
    )
    router = ollama_router("small", 1500, host, ledger=tmp_path / "l.sqlite3", backends=backends)
    assert router.ledger is not None
    router.ledger.begin_use(*busy)  # another process's request, in flight
    answer = router.invoke("summarize this changelog")  # auto-clean acts when it is sent
    assert host.unloaded == ["gemma3:latest"]
    assert answer.side is Side.LOCAL
    assert any("auto-clean unloaded" in reason for reason in answer.reasons)


def test_a_model_asked_for_by_its_alias_is_already_loaded() -> None:
    host = OllamaHolding(
        {"qwen3-32b": 19000},
        free_mb=1000,
        backend="llama_server",
        aliases={"qwen3-32b": ("coder",)},
    )
    config = {
        "local": {"backend": "llama_server", "model": "coder"},
        "preflight": {"models": {"coder": {"need_mb": 19000}}},
        "ledger": {"enabled": False},
    }
    decision = router_with(config, plugins=[host, Answers()]).route("summarize this changelog")
    assert decision.verdict is not None
    assert decision.verdict.details["verdict"] == "fits"
    assert "llama_server/qwen3-32b is already loaded" in decision.verdict.reason
    assert host.unloaded == []


def before_load(config: dict[str, Any], plugins: list[object], *args: str) -> tuple[int, Any]:
    """`devpulse ai --before-load ... --json` over `config` and `plugins`: exit code, JSON."""
    import contextlib  # noqa: PLC0415
    import io  # noqa: PLC0415
    import json  # noqa: PLC0415

    from devpulse.cli import App, build_cli  # noqa: PLC0415
    from devpulse.core.config import config_from_mapping  # noqa: PLC0415
    from devpulse.core.plugins import make_plugin_manager  # noqa: PLC0415

    cfg = config_from_mapping(config)
    app = App(config=cfg, pm=make_plugin_manager(cfg, entry_points=False, extra=plugins))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = build_cli(app).main(["ai", "--before-load", *args, "--json"], standalone_mode=False)
    return code, json.loads(out.getvalue())


@pytest.mark.parametrize("pins", [[], ["llama3.1:8b"]])
def test_ai_before_load_judges_a_loaded_model_as_the_router_does(pins: list[str]) -> None:
    """Ollama holds llama3.1:8b on a nearly full GPU: the router's preflight and `devpulse ai`
    both say it fits, already loaded, pinned or not; nothing offers to unload it."""
    config = {
        "local": {"backend": "ollama", "model": "llama3.1:8b"},
        "preflight": {"models": {"llama3.1:8b": {"need_mb": 5935}}},
        "babysit": {"pins": pins, "auto_clean": False},
        "ledger": {"enabled": False},
    }
    host = OllamaHolding({"llama3.1:8b": 6200}, free_mb=1500)
    routed = router_with(config, plugins=[host, Answers()]).route("summarize this changelog")
    code, shown = before_load(config, [host], "llama3.1:8b")
    assert routed.verdict is not None
    assert routed.verdict.details["verdict"] == shown["verdict"] == "fits"
    assert code == 0
    assert shown["reasons"][0].endswith("ollama/llama3.1:8b is already loaded")
    assert shown["reclaimable_mb"] == 0


def test_only_the_vram_part_of_a_loaded_model_is_reclaimable_on_a_gpu() -> None:
    """Ollama holds an idle llama3.3:70b, 40000 MB of which only 3000 MB in VRAM: unloading it
    would leave 5000 MB on the GPU, short of 5935, so no_fit, and auto-clean does not evict
    a 70B model for nothing."""
    host = OllamaHolding({"llama3.3:70b": 40000}, free_mb=2000, vram={"llama3.3:70b": 3000})
    router = ollama_router("llama3.1:8b", 5935, host)
    assert_sent_to_the_cloud_counting_only(3000, router, host)
