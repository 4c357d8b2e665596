"""Babysit: from pressure detected to free memory back at the target, and CPU while idle.

Against the real rig: llama-server in router mode with two models (Gemma 3 270M under two
names). Free memory is a base less what the model processes hold (RSS), so an unload frees
what the OS frees. Targets: median < 1.5 s from pressure to free >= target (p95 reported);
< 36 CPU seconds an hour idle at the default interval (1% of one core).
Run: `python bench/babysit.py [--rounds N] [--idle-s S]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devpulse import Babysitter, DeviceMemory, config_from_mapping, hookimpl
from devpulse.core.plugins import make_plugin_manager
from tests.rig.llama_server import LlamaServer, find_rig
from tests.rig.two_models import MODELS, TwoModels

BASE_MB = 100_000
TARGET_MEDIAN_S = 1.5
TARGET_IDLE_CPU_S_PER_H = 36.0


class RigMemory:
    def __init__(self, models: TwoModels) -> None:
        self.models = models

    @hookimpl
    def probe_memory(self) -> list[DeviceMemory]:
        free = BASE_MB - self.models.rss_mb()
        return [DeviceMemory("gpu:bench", "nvidia", BASE_MB, free, free)]


def sitter_for(models: TwoModels, data: str, **kwargs: Any) -> Babysitter:
    config = config_from_mapping(
        {
            "backends": {
                "llama_server": {"base_url": f"{models.base_url}/v1"},
                "ollama": {"side": "cloud"},  # not on this machine here: not a host
            },
            "ledger": {"path": os.path.join(data, "ledger.sqlite3")},
            "babysit": {"hysteresis_mb": 0},
        }
    )
    pm = make_plugin_manager(config, entry_points=False, extra=[RigMemory(models)])
    return Babysitter(config, pm.hook, **kwargs)


class Stopwatch:
    """Marks the `pressure` event, then the first event at which free memory is at target."""

    def __init__(self, probe: RigMemory, target: int, marks: dict[str, float]) -> None:
        self.probe, self.target, self.marks = probe, target, marks

    def __call__(self, event: dict[str, Any]) -> None:
        if event["event"] == "pressure":
            self.marks["pressure"] = time.perf_counter()
        waiting = "pressure" in self.marks and "done" not in self.marks
        if waiting and self.probe.probe_memory()[0].free_mb >= self.target:
            self.marks["done"] = time.perf_counter()


def relief(models: TwoModels, data: str, rounds: int) -> list[float]:
    """Seconds from the `pressure` event to free memory at the target, per round."""
    took = []
    for _ in range(rounds):
        for name in MODELS:
            models.load(name)
        time.sleep(0.5)  # let the new processes settle
        marks: dict[str, float] = {}
        probe = RigMemory(models)
        target = probe.probe_memory()[0].free_mb + 200
        sitter = sitter_for(
            models, data, target_free_mb=target, on_event=Stopwatch(probe, target, marks)
        )
        sitter.run(once=True)
        if "done" not in marks:
            while probe.probe_memory()[0].free_mb < target:
                time.sleep(0.01)
            marks["done"] = time.perf_counter()
        took.append(marks["done"] - marks["pressure"])
        models.unload_all()
    return took


def idle_cpu(models: TwoModels, data: str, seconds: float) -> float:
    """CPU seconds per hour of this process while babysit watches at the default interval."""
    sitter = sitter_for(models, data, target_free_mb=0)
    before_cpu, before = time.process_time(), time.monotonic()
    thread = sitter.start()
    time.sleep(seconds)
    sitter.stop()
    thread.join()
    used = time.process_time() - before_cpu
    return used / (time.monotonic() - before) * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--idle-s", type=float, default=60.0)
    args = parser.parse_args()
    rig, missing = find_rig()
    if rig is None:
        sys.exit(f"the rig is not ready: {missing}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        for name in MODELS:
            (folder / f"{name}.gguf").symlink_to(rig.model)
        with LlamaServer(rig, ["--models-dir", str(folder), "-c", "2048"]) as server:
            models = TwoModels(server)
            took = sorted(relief(models, tmp, args.rounds))
            cpu = idle_cpu(models, tmp, args.idle_s)
    p95 = took[max(0, round(0.95 * len(took)) - 1)]
    print(
        json.dumps(
            {
                "pressure_to_target_median_s": round(statistics.median(took), 3),
                "pressure_to_target_p95_s": round(p95, 3),
                "target_median_s": TARGET_MEDIAN_S,
                "rounds": len(took),
                "idle_cpu_s_per_hour": round(cpu, 2),
                "idle_window_s": args.idle_s,
                "target_idle_cpu_s_per_hour": TARGET_IDLE_CPU_S_PER_H,
                "interval_s": 2.0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
