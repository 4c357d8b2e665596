"""The memory preflight against a real NVIDIA GPU: what NVML says, what it costs, and whether
the verdict follows memory that another process takes.

Needs a machine with an NVIDIA driver, `nvidia-ml-py` (`pip install 'devpulse[nvidia]'`) and,
for the allocation step, PyTorch or CuPy with CUDA. It prints, per GPU:

- the probe's total and free MB beside `nvidia-smi`'s, and the difference;
- what one probe costs (the first, with nvmlInit, and the median and p95 of the rest);
- free memory and the verdict of `devpulse ai --before-load MB` before, while and after a
  separate process holds `--hold-gib` of the GPU's memory: the CLI runs as a user runs it,
  in its own process, so each run reads the GPU afresh;
- while it holds that memory, what `devpulse babysit --once` says with a target above free
  memory: with no idle model to unload, it names the processes holding the most, and the
  holder should come first, by its GPU memory.

`--record FILE` writes NVML's raw answers (the readings `tests/plugins/preflight/recorded.py`
replays) as JSON. Run: `python bench/nvml_live.py [--hold-gib 96] [--record h200.json]`.
Exits 1 with a one-line reason where no NVIDIA GPU is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from devpulse.plugins.preflight.probes import NvidiaProbe

MB = 1024 * 1024

# Holds `gib` of GPU 0 until its stdin closes: a separate process, as a model server would be.
HOLDER = r"""
import sys
gib = float(sys.argv[1])
n = int(gib * 2**30)
try:
    import torch
    block = torch.empty(n, dtype=torch.uint8, device="cuda:0")
    block.fill_(1)
    torch.cuda.synchronize()
except ImportError:
    import cupy
    block = cupy.ones(n, dtype=cupy.uint8)
    cupy.cuda.runtime.deviceSynchronize()
print("held", flush=True)
sys.stdin.read()
"""


def smi() -> list[dict[str, Any]]:
    fields = "index,name,memory.total,memory.reserved,memory.used,memory.free,driver_version"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.strip().splitlines():
        index, name, total, reserved, used, free, driver = (v.strip() for v in line.split(","))
        rows.append(
            {
                "index": int(index),
                "name": name,
                "total_mib": int(total),
                "reserved_mib": int(reserved),
                "used_mib": int(used),
                "free_mib": int(free),
                "driver": driver,
            }
        )
    return rows


def raw_nvml(nvml: Any) -> list[dict[str, Any]]:
    """NVML's answers as recorded.RecordedNvml replays them."""
    devices = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        entry: dict[str, Any] = {"name": name.decode() if isinstance(name, bytes) else name}
        try:
            v2 = nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2)
            entry["memory"] = {k: getattr(v2, k) for k in ("total", "reserved", "free", "used")}
        except Exception as exc:  # the recording says what the driver answered
            entry["memory_v2_error"] = repr(exc)
        try:
            v1 = nvml.nvmlDeviceGetMemoryInfo(handle)
            entry["memory_v1"] = {k: getattr(v1, k) for k in ("total", "free", "used")}
        except Exception as exc:
            entry["memory_v1_error"] = repr(exc)
        try:
            procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            entry["procs"] = [[p.pid, p.usedGpuMemory] for p in procs]
        except Exception as exc:
            entry["procs_error"] = repr(exc)
        devices.append(entry)
    return devices


def devpulse(*args: str) -> subprocess.CompletedProcess[str]:
    """The `devpulse` command in a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "devpulse", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # exit 10 and 20 are verdicts, not failures
    )


def before_load(mb: int) -> dict[str, Any]:
    """`devpulse ai --before-load MB --json`."""
    done = devpulse("ai", "--before-load", str(mb), "--json")
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        answer = {"stdout": done.stdout[-400:], "stderr": done.stderr[-400:]}
    return {"exit_code": done.returncode, **answer}


def babysit_hogs(target_mb: int) -> list[dict[str, Any]]:
    """The `hog` events of `devpulse babysit --once --json` with a target above free memory."""
    done = devpulse("babysit", "--once", "--json", "--target-free-mb", str(target_mb))
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == "hog"]


def probe_costs(rounds: int) -> dict[str, float]:
    probe = NvidiaProbe()
    start = time.perf_counter()
    probe.probe_memory()
    first = (time.perf_counter() - start) * 1000
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        probe.probe_memory()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "first_ms_with_init": round(first, 3),
        "median_ms": round(statistics.median(samples), 4),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 4),
    }


def stage(name: str, need_mb: int) -> dict[str, Any]:
    gpus = NvidiaProbe().probe_memory() or []
    verdict = before_load(need_mb)
    free = [g.free_mb for g in gpus]
    procs = [list(g.processes) for g in gpus]
    print(
        f"{name:>8}: free {free} MB; processes {procs}; before-load {need_mb} MB -> "
        f"{verdict.get('verdict', '?')} (exit {verdict['exit_code']}, "
        f"device {verdict.get('device', '?')!r}, budget {verdict.get('budget_mb', '?')} MB)"
    )
    return {"stage": name, "free_mb": free, "processes": procs, "before_load": verdict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hold-gib", type=float, default=96.0)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--record", help="write NVML's raw answers and the figures here")
    args = parser.parse_args()

    gpus = NvidiaProbe().probe_memory()
    if not gpus:
        sys.exit("nvml_live: no NVIDIA GPU visible (no driver, or nvidia-ml-py not installed)")
    import pynvml  # noqa: PLC0415  # present: the probe above just used it

    rows = smi()
    print(f"driver {rows[0]['driver'] if rows else '?'}; pid {os.getpid()}")
    for gpu in gpus:
        index = int(gpu.device.split()[0].removeprefix("cuda:"))
        row = next((r for r in rows if r["index"] == index), None)
        seen = f"nvidia-smi total {row['total_mib']}, free {row['free_mib']}" if row else "-"
        print(f"{gpu.device}: probe total {gpu.total_mb}, free {gpu.free_mb} MB; {seen} MiB")
    costs = probe_costs(args.rounds)
    print(f"probe cost over {args.rounds} calls: {costs}")

    free0 = gpus[0].free_mb
    need_mb = free0 // 2  # fits while the GPU is idle, cannot once --hold-gib is taken
    report: dict[str, Any] = {
        "smi": rows,
        "nvml": raw_nvml(pynvml),
        "probe_cost": costs,
        "need_mb": need_mb,
    }
    stages = [stage("idle", need_mb)]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(args.hold_gib)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if holder.stdout is None or holder.stdout.readline().strip() != "held":
            sys.exit("nvml_live: the holder process could not take GPU memory")
        stages.append(stage("held", need_mb))
        report["nvml_held"] = raw_nvml(pynvml)
        report["holder_pid"] = holder.pid
        report["hogs"] = hogs = babysit_hogs(free0)
        for hog in hogs:
            mine = " (the holder)" if hog["pid"] == holder.pid else ""
            print(
                f"babysit hog: pid {hog['pid']}{mine} {hog['name']}: {hog['rss_mb']} MB RAM, "
                f"{hog.get('vram_mb', '-')} MB GPU"
            )
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=60)
    stages.append(stage("released", need_mb))
    report["stages"] = stages
    drop = stages[0]["free_mb"][0] - stages[1]["free_mb"][0]
    held_mb = int(args.hold_gib * 1024)
    print(f"free dropped {drop} MB while {held_mb} MB were held ({drop / held_mb:.3f} of it)")
    report["free_drop_mb"] = drop
    if args.record:
        with open(args.record, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
