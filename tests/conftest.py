"""Shared fixtures: routers built from scratch (no installed plugins) and the local model rig."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from devpulse import Router
from tests.rig.llama_server import LlamaServer, RigPaths, require_rig
from tests.rig.ollama_server import OllamaRig
from tests.rig.two_models import MODELS, TwoModels
from tests.support import router_with

RIG_FIXTURES = frozenset(
    {"rig", "llama_server", "llama_instruct", "llama_tools", "llama_router", "ollama_rig"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the rig `rig`, so `-m "not rig"` deselects them all.

    `fixturenames` is the closure of what a test requests, so a fixture built on top of a rig
    fixture marks its tests too.
    """
    for item in items:
        if RIG_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.rig)


@pytest.fixture(autouse=True)
def isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads the developer's own config file or plugin selection."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    for name in ("DEVPULSE_CONFIG", "DEVPULSE_LOAD_PLUGINS", "DEVPULSE_TRACE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_machine_gpus(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees this machine's GPUs unless marked `machine_gpus`.

    Preflight and babysit watch the accelerator with the largest budget, so on an NVIDIA
    machine or a Mac the bundled probes' real GPU would outrank the device a test's own probe
    reports (on an H200, two babysit tests watched its 140 GB instead of their fake host).
    The probes given recorded answers (tests/plugins/preflight/recorded.py) are unaffected.
    """
    if request.node.get_closest_marker("machine_gpus"):
        return
    from devpulse.plugins.preflight import probes  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` fails: no NVML
    monkeypatch.setattr(
        probes, "platform", SimpleNamespace(system=lambda: "Test", machine=platform.machine)
    )


@pytest.fixture
def make_router() -> Callable[..., Router]:
    """Build a Router over the bundled plugins plus `plugins`, with no entry points loaded."""
    return router_with


@pytest.fixture(scope="session")
def rig() -> RigPaths:
    """The built llama-server and the rig's models; fails under CI=true when missing."""
    return require_rig()


@pytest.fixture(scope="session")
def llama_server(rig: RigPaths) -> Iterator[LlamaServer]:
    """A real llama-server serving Gemma 3 270M on a free loopback port."""
    with LlamaServer.single_model(rig) as server:
        yield server


@pytest.fixture(scope="session")
def llama_instruct(rig: RigPaths) -> Iterator[LlamaServer]:
    """A real llama-server serving SmolLM2 135M Instruct: answers that stop by themselves."""
    with LlamaServer.instruct(rig) as server:
        yield server


@pytest.fixture(scope="session")
def llama_tools(rig: RigPaths) -> Iterator[LlamaServer]:
    """A real llama-server whose chat template offers tools (SmolLM2 135M Instruct)."""
    with LlamaServer.tools(rig) as server:
        yield server


@pytest.fixture(scope="session")
def ollama_tools(llama_tools: LlamaServer) -> Iterator[OllamaRig]:
    """The Ollama API in front of the tool-calling server: `smollm2:135m` is its model."""
    with OllamaRig(llama_tools, {"smollm2:135m": llama_tools.rig.instruct_model}) as rig:
        yield rig


@pytest.fixture(scope="session")
def llama_router(rig: RigPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A real llama-server in router mode: loads models from a folder on demand."""
    with LlamaServer.router_mode(rig, tmp_path_factory.mktemp("models")) as server:
        yield server


@pytest.fixture(scope="session")
def ollama_rig(llama_router: LlamaServer) -> Iterator[OllamaRig]:
    """The Ollama API, served in front of the router: `gemma3:270m` is the rig's model."""
    models_dir = Path(llama_router.args[llama_router.args.index("--models-dir") + 1])
    with OllamaRig(llama_router, {"gemma3:270m": models_dir / llama_router.rig.model.name}) as rig:
        yield rig


@pytest.fixture(scope="session")
def two_models(rig: RigPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoModels]:
    """A llama-server router with two models, `alpha` and `beta` (the rig's Gemma twice)."""
    folder = tmp_path_factory.mktemp("two-models")
    for name in MODELS:
        (folder / f"{name}.gguf").symlink_to(rig.model)
    with LlamaServer(rig, ["--models-dir", str(folder), "-c", "2048"]) as server:
        yield TwoModels(server)


@pytest.fixture
def fresh(two_models: TwoModels) -> Iterator[TwoModels]:
    """The two-model router with nothing loaded, before and after the test."""
    two_models.unload_all()
    yield two_models
    two_models.unload_all()
