"""The example backend kind, installed for real and found through its entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples import installed
from tests.examples.installed import install

ROOT = installed.ROOT

PLUGIN = ROOT / "examples" / "command_backend_plugin"
UPPER = "import sys; print(sys.stdin.read().upper())"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin built and installed into a folder of its own, as pip would install it."""
    target = install(PLUGIN, tmp_path_factory.mktemp("site"))
    assert list(target.glob("devpulse_command_backend-*.dist-info"))
    return target


def devpulse(
    site: Path, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The CLI with the plugin installed, over this checkout's DevPulse (the one under test,
    whichever DevPulse the environment has installed)."""
    return installed.devpulse(site, tmp_path, *args, **env, PYTHONPATH=f"{site}:{ROOT}")


def config(tmp_path: Path, command: object) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        '[local]\nbackend = "shell"\nmodel = "upper"\n'
        '[backends.shell]\nside = "local"\nkind = "command"\n'
        f"command = {json.dumps(command)}\n"
        f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n'
    )
    return path


def test_it_is_listed_with_its_kind(site: Path, tmp_path: Path) -> None:
    plugins = json.loads(devpulse(site, tmp_path, "plugins", "--json").stdout)["plugins"]
    (entry,) = [p for p in plugins if p["name"] == "command_backend"]
    assert (entry["source"], entry["distribution"]) == ("installed", "devpulse-command-backend")
    assert entry["hooks"] == ["register_backend_kinds"]
    assert entry["backend_kinds"] == ["command"]


def test_ask_gets_its_answer(site: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path, [sys.executable, "-c", UPPER])
    result = devpulse(site, tmp_path, "--config", str(cfg), "ask", "what is a tuple?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "WHAT IS A TUPLE?"
    streamed = devpulse(site, tmp_path, "--config", str(cfg), "ask", "--stream", "hi there")
    assert streamed.stdout.strip() == "HI THERE"
    plugins = json.loads(devpulse(site, tmp_path, "--config", str(cfg), "plugins", "--json").stdout)
    names = {p["name"] for p in plugins["plugins"]}
    assert "devpulse.backend.shell" in names


def test_its_table_is_checked_by_dotted_key(site: Path, tmp_path: Path) -> None:
    bad = devpulse(site, tmp_path, "--config", str(config(tmp_path, "python")), "ask", "hi")
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith("backends.shell.command: expected a list, got a string")
    assert bad.stderr.count("\n") == 1


def test_without_it_the_kind_is_unknown(site: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path, [sys.executable, "-c", UPPER])
    off = devpulse(site, tmp_path, "--config", str(cfg), "ask", "hi", DEVPULSE_LOAD_PLUGINS="")
    assert off.returncode == 2
    assert "backends.shell.kind: unknown kind 'command' (registered kinds: anthropic" in off.stderr
