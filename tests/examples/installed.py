"""Example plugin packages installed for real, and the CLI run with them on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install(package: Path, target: Path) -> Path:
    """`package` built and installed into `target`, as pip would install it (no network)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(package),
        ],
        check=True,
        capture_output=True,
    )
    return target


def devpulse(
    site: Path, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The `devpulse` command with `site` on the path and no DEVPULSE_ settings inherited."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DEVPULSE_")}
    full_env = {**base, "PYTHONPATH": str(site), "XDG_CONFIG_HOME": str(tmp_path), **env}
    return subprocess.run(
        [Path(sys.executable).parent / "devpulse", *args],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )
