"""The example scripts, run as a user runs them, against the rig's llama-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rig.llama_server import LlamaServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def example_env(llama_instruct: LlamaServer, tmp_path: Path) -> dict[str, str]:
    """The environment `python -m tests.rig.serve` gives the examples, on the rig's port."""
    config = tmp_path / "devpulse.toml"
    config.write_text(
        f'[backends.llama_server]\nbase_url = "{llama_instruct.base_url}/v1"\n'
        f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n'
        # The shared test machine may be loaded; budgets are tested elsewhere.
        "[failover]\nbudget_s = 600.0\nlocal_timeout_s = 300.0\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        DEVPULSE_CONFIG=str(config),
        ANTHROPIC_BASE_URL=llama_instruct.base_url,
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
    )
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def test_langchain_guard_blocks_the_secret_and_answers_the_clean_prompt(
    example_env: dict[str, str], tmp_path: Path
) -> None:
    done = run([sys.executable, str(EXAMPLES / "langchain_guard.py")], example_env, tmp_path)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sensitive prompt: blocked before it left:")
    assert "aws-access-key-id" in lines[0]
    assert "AKIA" not in done.stdout + done.stderr  # the secret is never printed
    assert lines[1].startswith("clean prompt: answered (")
    assert lines[2].endswith("1 refused, 1 answered")


def test_router_in_shell_routes_checks_memory_and_runs_babysit_beside_it(
    example_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "babysit.jsonl"
    env = dict(example_env, BABYSIT_LOG=str(log), MODEL_MB="200")
    done = run(["sh", str(EXAMPLES / "router_in_shell.sh")], env, tmp_path)
    assert "== local: Summarize" in done.stdout
    assert "== cloud: A train leaves" in done.stdout
    # With no API key, the cloud prompt fails over to the rig and is answered there.
    assert "queued for later" not in done.stdout
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events[0] == "start"
    assert events[-1] == "stop"  # stopped cleanly by the script's trap


def test_frontier_driver_with_no_key_fails_over_and_still_fans_out_locally(
    example_env: dict[str, str], tmp_path: Path
) -> None:
    done = run(
        [sys.executable, str(EXAMPLES / "frontier_driver_local_subagents.py")],
        example_env,
        tmp_path,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("driver: answered on the local side by llama_server/")
    assert sum(line.startswith("subagent (local): ") for line in lines) == 3
    assert any(line.split()[:3] == ["local", "4", "requests"] for line in lines)
    assert lines[-1].startswith("spend $0.000000 vs all-cloud $")
    assert "saved" in lines[-1]


def test_local_driver_consults_the_frontier_only_on_the_hard_step(
    example_env: dict[str, str], tmp_path: Path
) -> None:
    done = run(
        [sys.executable, str(EXAMPLES / "local_driver_frontier_advisor.py")], example_env, tmp_path
    )
    steps = [line for line in done.stdout.splitlines() if "routed" in line]
    assert len(steps) == 4
    hard = [line for line in steps if line.startswith("hard")]
    assert len(hard) == 1
    assert "A job queue" in hard[0]
    assert "routed cloud, answered local" in hard[0]  # no key here: the hedge answered it
    assert all("routed local, answered local" in line for line in steps if line not in hard)
