"""`devpulse ai` and `devpulse models`, in-process and as a shell script would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from devpulse.cli import main
from tests.plugins.preflight import recorded
from tests.rig.llama_server import RigPaths
from tests.rig.ollama_server import OllamaRig

# `devpulse ai` as a user runs it: whatever devices this machine has, GPUs included.
pytestmark = pytest.mark.machine_gpus

DEVPULSE = Path(sys.executable).parent / "devpulse"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_before_load_1000_fits_with_the_memory_it_saw(capsys) -> None:
    code, out, _ = run(capsys, "ai", "--before-load", "1000", "--json")
    payload = json.loads(out)
    listing = json.loads(run(capsys, "ai", "--json")[1])
    devices = {d["device"]: d for d in listing["devices"]}
    assert (code, payload["status"], payload["verdict"]) == (0, "ok", "fits")
    assert payload["need_mb"] == 1000
    # the device models load on, whichever this machine has: a GPU, Apple Silicon or the CPU
    assert payload["device"] == listing["target"]
    assert abs(payload["free_mb"] - devices[payload["device"]]["free_mb"]) < 1024
    assert 0 <= payload["budget_mb"] <= payload["free_mb"]
    (host,) = [d for d in listing["devices"] if d["kind"] == "host"]  # every machine has one
    available = psutil.virtual_memory().available // 2**20
    assert abs(host["free_mb"] - available) < 1024
    assert host["budget_mb"] == host["free_mb"] - 1024


def test_before_load_far_too_much_is_no_fit_exit_20(capsys) -> None:
    code, out, _ = run(capsys, "ai", "--before-load", "100000000", "--json")
    assert (code, json.loads(out)["verdict"]) == (20, "no_fit")


def test_tight_is_exit_10(capsys) -> None:
    budget = json.loads(run(capsys, "ai", "--before-load", "1", "--json")[1])["budget_mb"]
    code, out, _ = run(capsys, "ai", "--before-load", str(int(budget * 0.95)), "--json")
    assert (code, json.loads(out)["verdict"]) == (10, "tight")


def test_the_shell_pattern_from_the_product_page(tmp_path: Path) -> None:
    script = (
        f'if "{DEVPULSE}" ai --before-load 1000; then echo use_local; else echo use_cloud; fi\n'
        f'if "{DEVPULSE}" ai --before-load 100000000; then echo use_local; else echo use_cloud;'
        " fi\n"
        f'"{DEVPULSE}" ai --before-load 1000 --json | python3 -c '
        "\"import json,sys; print(json.load(sys.stdin)['verdict'])\"\n"
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, check=True
    )
    decisions = [line for line in result.stdout.splitlines() if line in ("use_local", "use_cloud")]
    assert decisions == ["use_local", "use_cloud"]
    assert result.stdout.splitlines()[-1] == "fits"


def test_a_gguf_file_at_32k_context(capsys, rig: RigPaths) -> None:
    code, out, _ = run(capsys, "ai", "--before-load", str(rig.model), "--ctx", "32768", "--json")
    payload = json.loads(out)
    est = payload["estimate"]
    assert code == 0
    assert est["ctx"] == 32768
    # as `llama-server -m FILE -c 32768` holds it (4 slots in one cache, its log: 96 MiB
    # for the full layers, 37.5 for the window layers), and said to be assumed
    assert (est["slots"], est["kv_unified"], est["slots_known"]) == (4, True, False)
    assert est["kv_cache_mb"] == 133.5
    assert est["sliding_window_layers"] == 15
    assert 400 < payload["need_mb"] < 520  # llama-server's measured RSS: ~455 MiB


def test_an_explicit_ctx_wins_over_the_configured_one(capsys, rig: RigPaths, tmp_path) -> None:
    """`[preflight.models.gemma] ctx` is the default for that model; --ctx asks for another."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[preflight.models.gemma]\ngguf = "{rig.model}"\nctx = 2048\n')
    before_load = ("--config", str(cfg), "ai", "--before-load", "gemma", "--json")
    asked = json.loads(run(capsys, *before_load, "--ctx", "32768")[1])
    configured = json.loads(run(capsys, *before_load)[1])
    assert (asked["estimate"]["ctx"], configured["estimate"]["ctx"]) == (32768, 2048)


def test_llama_fit_params_cross_check_when_installed(capsys, rig: RigPaths, monkeypatch) -> None:
    monkeypatch.setenv("PATH", f"{rig.bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, out, _ = run(capsys, "ai", "--before-load", str(rig.model), "--ctx", "8192", "--json")
    cross = json.loads(out)["llama_fit_params"]
    assert code == 0
    assert cross["context_mb"] == 39  # llama.cpp's own KV figure: our estimate's too
    assert cross["model_mb"] >= 222


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchmodel", "unknown model 'nosuchmodel'"),
        ("-5", "not a positive number"),
        ("/nonexistent/model.gguf", "no such file"),
    ],
)
def test_bad_input_is_exit_2_with_one_line(capsys, spec: str, message: str) -> None:
    code, _, err = run(capsys, "ai", "--before-load", spec)
    assert code == 2
    assert err.count("\n") == 1
    assert message in err


def test_bare_ai_lists_devices_and_servers(capsys) -> None:
    code, out, _ = run(capsys, "ai", "--json")
    payload = json.loads(out)
    assert (code, payload["status"]) == (0, "ok")
    assert payload["target"] in {d["device"] for d in payload["devices"]}
    (host,) = [d for d in payload["devices"] if d["kind"] == "host"]
    assert host["total_mb"] == psutil.virtual_memory().total // 2**20
    assert any("did not answer" in n for n in payload["notes"])  # no Ollama on :11434 here


def test_ollama_model_names_and_loaded_models(capsys, ollama_rig: OllamaRig, tmp_path) -> None:
    """The real ollama client against the rig: /api/show metadata, /api/ps sizes."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[backends.ollama]\nside = "local"\nkind = "ollama"\nbase_url = "{ollama_rig.base_url}"\n'
    )
    code, out, _ = run(
        capsys,
        "--config",
        str(cfg),
        "ai",
        "--before-load",
        "gemma3:270m",
        "--ctx",
        "8192",
        "--json",
    )
    est = json.loads(out)["estimate"]
    assert (code, est["kv_cache_mb"], est["layers"]) == (0, 39.0, 18)
    code, _, err = run(capsys, "--config", str(cfg), "ai", "--before-load", "gemma3:27b")
    assert code == 2
    assert "has no model 'gemma3:27b'" in err
    ollama_rig.load("gemma3:270m")
    try:
        payload = json.loads(run(capsys, "--config", str(cfg), "ai", "--json")[1])
        (loaded,) = [m for m in payload["loaded"] if m["backend"] == "ollama"]
        assert loaded["model"] == "gemma3:270m"
        assert loaded["size_mb"] > 250  # the real llama-server process's resident memory
        assert loaded["vram_mb"] == 0  # the rig's models run on the CPU
        target = payload["target"]
        on_gpu = any(d["kind"] == "nvidia" for d in payload["devices"] if d["device"] == target)
        budget = json.loads(
            run(capsys, "--config", str(cfg), "ai", "--before-load", "1", "--json")[1]
        )["budget_mb"]
        code, out, _ = run(
            capsys, "--config", str(cfg), "ai", "--before-load", str(budget + 100), "--json"
        )
        payload = json.loads(out)
        if on_gpu:  # unloading a model that holds no VRAM frees nothing on the GPU
            assert (code, payload["verdict"], payload["reclaimable_mb"]) == (20, "no_fit", 0)
        else:
            assert (code, payload["verdict"]) == (10, "tight")  # fits after unloading gemma
            assert payload["reclaimable_mb"] == loaded["size_mb"]
    finally:
        ollama_rig.unload("gemma3:270m")


def test_a_gpu_as_an_h200_answered_while_another_process_held_it(capsys, monkeypatch) -> None:
    """NVML's recorded answers (bench/nvml_live.py on an H200) through the whole command:
    free memory, the process holding the GPU, and the verdict it leads to."""
    held = recorded.RecordedNvml([recorded.H200_HELD])
    monkeypatch.setitem(sys.modules, "pynvml", held)  # what `import pynvml` finds
    code, out, _ = run(capsys, "ai")
    assert code == 0
    assert "cuda:0 NVIDIA H200: 44233 MB free of 143771 MB, budget 44233 MB" in out
    assert "  pid 523: 98914 MB" in out
    assert "models load on: cuda:0 NVIDIA H200" in out
    listing = json.loads(run(capsys, "ai", "--json")[1])
    assert listing["devices"][0]["processes"] == [{"pid": 523, "used_mb": 98914}]
    code, out, _ = run(capsys, "ai", "--before-load", "71577", "--json")
    assert (code, json.loads(out)["verdict"]) == (20, "no_fit")


def test_models_catalog(capsys) -> None:
    code, out, _ = run(capsys, "models", "--json")
    payload = json.loads(out)
    rows = {r["model"]: r for r in payload["models"]}
    assert code == 0
    q4 = {name: r["quantizations"]["Q4_K_M"]["weights_mb"] / 1024 for name, r in rows.items()}
    assert 18.5 < q4["Qwen3 32B"] < 19.5  # "~19 GB"
    assert 38 < q4["Llama 3.3 70B"] < 42  # "~42 GB" with its KV cache
    assert 4.2 < q4["Llama 3.1 8B"] < 5  # "~5.5 GB" with KV and runtime
    assert rows["Llama 3.1 8B"]["kv_mb_per_1k_tokens"] == 128.0
    assert rows["Qwen3 4B"]["quantizations"]["Q4_K_M"]["fits_now"] == "fits"
    # Verdicts against this machine's memory (an H200 holds a 70B at F16, a laptop does not):
    # clear of the margins, each follows the budget, and a larger need is never judged better.
    budget = json.loads(run(capsys, "ai", "--before-load", "1", "--json")[1])["budget_mb"]
    severity = {"fits": 0, "tight": 1, "no_fit": 2}
    for row in rows.values():
        by_need = sorted(row["quantizations"].values(), key=lambda q: q["need_mb"])
        ranks = [severity[q["fits_now"]] for q in by_need]
        assert ranks == sorted(ranks), row["model"]
        for q in by_need:
            if q["need_mb"] > budget * 1.05:
                assert q["fits_now"] == "no_fit", (row["model"], q)
            elif q["need_mb"] < budget * 0.8:  # under preflight.fit_ratio (0.85) of it
                assert q["fits_now"] == "fits", (row["model"], q)
    assert {r["workload"] for r in rows.values()} == {
        "frontier_reasoning",
        "volume",
        "long_context",
        "edge",
    }
