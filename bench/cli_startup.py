"""CLI start-up: wall time of short `devpulse` commands beside `python -c pass`.

Each command runs as a fresh process (`python -m devpulse ...` from this checkout, so the
checkout's devpulse is the one imported), the commands in turn so that a busy spell slows
them all alike, after one untimed warm-up run each. The warm-up also writes the bytecode
cache an installed package has (PYTHONDONTWRITEBYTECODE is dropped, or every run would
compile devpulse from source again). Prints the median and the minimum per command and the
median's ratio to `python -c pass`. The config is the packaged default (a scratch
XDG_CONFIG_HOME); `route` asks the default local server (127.0.0.1:8080) for its model, so
run it with nothing listening there, as on a fresh install. Targets, on a quiet 2-core
machine: `--version` under 0.15 s; `--help`, `route`, `ai --before-load 1000` and `scan` of
a 2 KB file under 0.3 s.

Run: `python bench/cli_startup.py [--runs N] [--json]` (`make bench` runs every benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARAGRAPH = (
    "The release adds streaming retries, fixes a race in the session cache, and renames the "
    "`fetch_all` helper to `fetch_pages`. Configuration keys under [server] are unchanged. "
)
TARGETS_S = {"--version": 0.15, "--help": 0.3, "route": 0.3, "ai": 0.3, "scan": 0.3}


def commands(scan_file: Path) -> dict[str, list[str]]:
    devpulse = [sys.executable, "-m", "devpulse"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "--version": [*devpulse, "--version"],
        "--help": [*devpulse, "--help"],
        "route": [*devpulse, "route", "summarize this changelog"],
        "ai": [*devpulse, "ai", "--before-load", "1000"],
        "scan": [*devpulse, "scan", str(scan_file)],
    }


def time_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=False)
    return time.perf_counter() - start, done.returncode


def measure(
    argvs: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, dict[str, float | int]]:
    """Each command's median and minimum over `runs` rounds, and its exit code."""
    codes = {label: time_once(argv, env)[1] for label, argv in argvs.items()}  # warm-up
    samples: dict[str, list[float]] = {label: [] for label in argvs}
    for _ in range(runs):
        for label, argv in argvs.items():
            elapsed, codes[label] = time_once(argv, env)
            samples[label].append(elapsed)
    return {
        label: {
            "median_s": statistics.median(xs),
            "min_s": min(xs),
            "exit_code": codes[label],
        }
        for label, xs in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        # As installed: no DEVPULSE_* settings, and bytecode cached (the warm-up writes it).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DEVPULSE_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env |= {"XDG_CONFIG_HOME": scratch, "XDG_DATA_HOME": scratch}
        scan_file = Path(scratch, "changelog.md")
        scan_file.write_text((PARAGRAPH * 12)[:2048], encoding="utf-8")
        results = measure(commands(scan_file), env, args.runs)
    base = float(results["python -c pass"]["median_s"])
    for r in results.values():
        r["ratio"] = float(r["median_s"]) / base
    if args.json:
        print(json.dumps(results))
        return
    print(
        f"devpulse start-up, {args.runs} runs each, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    for label, r in results.items():
        target = TARGETS_S.get(label)
        verdict = ""
        if target is not None:
            verdict = f"   target < {target} s -> {'met' if r['median_s'] < target else 'MISSED'}"
        print(
            f"  {label:>15}: median {r['median_s']:.3f} s   min {r['min_s']:.3f} s   "
            f"x{r['ratio']:.1f}   exit {r['exit_code']}{verdict}"
        )


if __name__ == "__main__":
    main()
