"""Routing quality on RouteLLM's per-prompt results: runs the shared scorer on this checkout.

For every development prompt (29 MMLU subjects) the data say whether a strong (cloud) and a
weak (local) model got it right; the scorer routes each prompt with DevPulse and prints cloud
share, PGR, APGR and CPT50/CPT80 of the difficulty curve against random and longest-first
routers, with breakdowns by rule and subject. Then the cloud share each `routing.cloud_share`
setting reaches. Run: `python bench/routing_quality.py [--data DIR] [--scorer FILE]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARES = (0.1, 0.2, 0.3, 0.5)


def score(scorer: Path, data: Path, config: str | None, out: Path, quiet: bool) -> dict:
    argv = [sys.executable, str(scorer), "--data", str(data), "--json", str(out)]
    if config:
        argv += ["--config", config]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's devpulse, not an install
    done = subprocess.run(argv, env=env, capture_output=quiet, text=True, check=True)
    del done
    figures: dict = json.loads(out.read_text())["benchmarks"]
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "routing")
    ap.add_argument("--scorer", type=Path, default=SHARED / "tools" / "routing_eval.py")
    args = ap.parse_args()
    if not args.scorer.is_file() or not (args.data / "mmlu").is_dir():
        print(f"routing_quality: needs {args.scorer} and {args.data}/mmlu; skipped")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        full = score(args.scorer, args.data, None, Path(tmp) / "default.json", quiet=False)
        print("\nrouting.cloud_share -> measured cloud share (MMLU development half)")
        for share in SHARES:
            config = Path(tmp) / f"share-{share}.toml"
            config.write_text(f"[routing]\ncloud_share = {share}\n")
            mmlu = score(args.scorer, args.data, str(config), Path(tmp) / "s.json", True)["mmlu"]
            print(
                f"  {share:4.2f} -> {100 * mmlu['cloud_share']:5.1f}%"
                f"   PGR {mmlu['pgr_router']:.3f} (longest-first at that share"
                f" {mmlu['pgr_length']:.3f})"
            )
    for name, b in full.items():
        if "apgr_router_curve" in b:
            print(
                f"summary {name}: APGR {b['apgr_router_curve']:.3f} (longest-first"
                f" {b['apgr_length']:.3f}), CPT50 {100 * b['cpt50_router']:.1f}%"
                f" (longest-first {100 * b['cpt50_length']:.1f}%), CPT80"
                f" {100 * b['cpt80_router']:.1f}%, cloud share at default"
                f" {100 * b['cloud_share']:.1f}%"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
