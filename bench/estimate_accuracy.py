"""Memory estimator vs reality, and the preflight's latency.

Starts the real llama-server rig with Gemma 3 270M at several context sizes, measures the
server's resident memory once the model is loaded and after one request, and prints the
estimator's need next to it (target: error <= 5% or 64 MiB, whichever is larger), with
llama.cpp's own projection (llama-fit-params) for reference. Then times the per-request
preflight: cold (first memory probe) and warm (cached reading), as medians.

Run: `python bench/estimate_accuracy.py` (needs the rig: `tests/rig/setup.sh`).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devpulse import Decision, Request, Side, config_from_mapping, make_plugin_manager
from devpulse.plugins.preflight.estimator import (
    LLAMA_SERVER_DEFAULT,
    estimate,
    llama_fit_params,
    read_gguf,
)
from tests.rig.llama_server import LlamaServer, find_rig

CONTEXTS = (2048, 8192, 32768)
MIB = 1024 * 1024


def measure(ctx: int) -> dict[str, float]:
    rig, missing = find_rig()
    if rig is None:
        sys.exit(f"the rig is not installed ({missing}); run tests/rig/setup.sh")
    server = LlamaServer(rig, ["-m", str(rig.model), "-c", str(ctx)])
    with server:
        proc = psutil.Process(server.pid)
        loaded = proc.memory_info().rss / MIB
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
        req = urllib.request.Request(
            f"{server.base_url}/v1/chat/completions",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=60).read()
        answered = proc.memory_info().rss / MIB
    return {"rss_loaded_mib": loaded, "rss_answered_mib": answered}


def preflight_latency(rounds: int = 2000) -> dict[str, float]:
    config = config_from_mapping({"preflight": {"models": {"m": {"need_mb": 500}}}})
    pm = make_plugin_manager(config, entry_points=False)
    plugin = pm.get_plugin("devpulse.preflight")
    request = Request.from_prompt("hello")
    decision = Decision(Side.LOCAL, "ollama", "m")
    cold = []
    for _ in range(20):
        plugin.memory._devices = None  # forget the reading: the next call probes
        start = time.perf_counter_ns()
        plugin.preflight(request=request, decision=decision, dispatching=True)
        cold.append((time.perf_counter_ns() - start) / 1e6)
    warm = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        plugin.preflight(request=request, decision=decision, dispatching=True)
        warm.append((time.perf_counter_ns() - start) / 1e6)
    return {"cold_median_ms": statistics.median(cold), "warm_median_ms": statistics.median(warm)}


def main() -> None:
    rig, missing = find_rig()
    if rig is None:
        sys.exit(f"the rig is not installed ({missing}); run tests/rig/setup.sh")
    os.environ["PATH"] = f"{rig.bin_dir}{os.pathsep}{os.environ['PATH']}"
    arch = read_gguf(rig.model)
    overhead = config_from_mapping({}).preflight.runtime_overhead_mb
    print(f"estimate vs llama-server (Gemma 3 270M Q4_K_M, CPU, {os.cpu_count()} cores)")
    print(
        f"{'ctx':>6} {'estimate':>9} {'rss loaded':>11} {'rss answered':>13} {'error':>8} "
        f"{'target':>7} {'llama-fit-params':>17}"
    )
    worst_ok = True
    for ctx in CONTEXTS:
        # no -np: llama-server picks 4 slots sharing one cache
        need = estimate(
            arch, ctx, cache_type="f16", overhead_mb=overhead, slots=LLAMA_SERVER_DEFAULT
        ).need_mb
        real = measure(ctx)
        error = need - real["rss_answered_mib"]
        allowed = max(0.05 * real["rss_answered_mib"], 64)
        worst_ok &= abs(error) <= allowed
        cross = llama_fit_params(str(rig.model), ctx) or {}
        print(
            f"{ctx:>6} {need:>7} MiB {real['rss_loaded_mib']:>7.0f} MiB "
            f"{real['rss_answered_mib']:>9.0f} MiB {error:>+6.0f} MiB {allowed:>4.0f} MiB "
            f"{cross.get('total_mb', '-'):>12} MiB"
        )
    print(
        f"  target (|error| <= max(5%, 64 MiB)) at every context: {'met' if worst_ok else 'MISSED'}"
    )
    latency = preflight_latency()
    print(
        f"preflight latency: cold {latency['cold_median_ms']:.3f} ms median (target < 50), "
        f"warm {latency['warm_median_ms'] * 1000:.1f} us median (target < 50 us)"
    )


if __name__ == "__main__":
    main()
