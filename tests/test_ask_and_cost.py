"""`devpulse ask` answered by the rig, and `devpulse cost` over what it recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devpulse.cli import main
from tests.rig.fault_server import FaultServer
from tests.rig.llama_server import LlamaServer


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def rig_config(llama_server: LlamaServer, tmp_path: Path) -> Path:
    """The local side is the rig, reached through the Anthropic SDK (an Anthropic-compatible
    local server is a valid local backend)."""
    path = tmp_path / "devpulse.toml"
    path.write_text(
        f'[local]\nbackend = "local_anthropic"\nmodel = "gemma-3-270m"\n'
        f'[backends.local_anthropic]\nside = "local"\nkind = "anthropic"\n'
        f'base_url = "{llama_server.base_url}"\n'
        f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n'
    )
    return path


@pytest.mark.rig
def test_ask_json_then_cost_json(capsys, rig_config: Path) -> None:
    code, out, err = run(
        capsys,
        "--config",
        str(rig_config),
        "ask",
        "--json",
        "--max-tokens",
        "16",
        "summarize this changelog: fixed two bugs",
    )
    payload = json.loads(out)
    assert (code, payload["status"]) == (0, "ok")
    answer = payload["answer"]
    assert (answer["backend"], answer["side"]) == ("local_anthropic", "local")
    assert answer["text"]
    assert answer["usage"]["input_tokens"] > 0
    assert 0 < answer["usage"]["output_tokens"] <= 16
    assert payload["cost_usd"] == 0.0
    expected = (answer["usage"]["input_tokens"] * 3 + answer["usage"]["output_tokens"] * 15) / 1e6
    assert payload["counterfactual_usd"] == pytest.approx(expected, abs=1e-6)
    assert payload["decision"]["task_class"] == "quick_qa"  # easy: by difficulty
    assert "local -> local_anthropic/gemma-3-270m" in err

    code, out, _ = run(
        capsys,
        "--config",
        str(rig_config),
        "ask",
        "--stream",
        "--json",
        "--max-tokens",
        "8",
        "summarize: the build is green",
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    deltas = [line["text"] for line in lines if line["type"] == "text_delta"]
    assert len(deltas) > 1  # it really streamed
    kinds = [line["type"] for line in lines]
    assert kinds[:2] == ["block_start", "text_delta"]
    assert kinds[-4:] == ["text_delta", "block_stop", "usage", "result"]  # no restart
    assert "".join(deltas) == lines[-1]["answer"]["text"]

    code, out, _ = run(capsys, "--config", str(rig_config), "cost", "--json")
    report = json.loads(out)
    assert (code, report["status"], report["answered"]) == (0, "ok", 2)
    assert report["by_side"]["local"]["requests"] == 2
    assert report["local_share_by_requests"] == 1.0
    assert report["spend_usd"] == 0.0
    assert report["savings_usd"] == pytest.approx(report["all_cloud_usd"])
    assert report["by_task_class"]["quick_qa"]["requests"] == 2
    code, out, _ = run(
        capsys, "--config", str(rig_config), "cost", "--since", "2999-01-01", "--json"
    )
    assert json.loads(out)["requests"] == 0


def test_simulate_matches_the_prices_in_config(capsys) -> None:
    code, out, _ = run(
        capsys,
        "cost",
        "--simulate",
        "--requests-per-day",
        "2000",
        "--avg-in-tokens",
        "1500",
        "--avg-out-tokens",
        "400",
        "--local-share",
        "0.7",
        "--cloud-model",
        "claude-sonnet-4-5",
        "--json",
    )
    result = json.loads(out)
    per_request = (1500 * 3.0 + 400 * 15.0) / 1e6
    assert code == 0
    assert result["blended_monthly_usd"] == pytest.approx(2000 * 30 * 0.3 * per_request)
    assert result["all_cloud_monthly_usd"] == pytest.approx(2000 * 30 * per_request)
    assert result["savings_pct"] == pytest.approx(70.0)
    assert [p["local_share"] for p in result["series"]][:3] == [0.0, 0.1, 0.2]


def test_simulate_defaults_to_the_configured_cloud_share(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[routing]\ncloud_share = 0.25\n")
    argv = ["cost", "--simulate", "--requests-per-day", "100", "--avg-in-tokens", "1000"]
    argv += ["--avg-out-tokens", "0", "--json"]
    _, out, _ = run(capsys, "--config", str(cfg), *argv)
    assert json.loads(out)["savings_pct"] == pytest.approx(75.0)
    _, out, _ = run(capsys, *argv)  # the packaged default: 0.3 to the cloud
    assert json.loads(out)["savings_pct"] == pytest.approx(70.0)


def test_a_local_rate_makes_local_work_cost_something(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ledger]\nlocal_usd_per_million_tokens = 0.5\n")
    _, out, _ = run(
        capsys,
        "--config",
        str(cfg),
        "cost",
        "--simulate",
        "--requests-per-day",
        "1000",
        "--avg-in-tokens",
        "1000",
        "--avg-out-tokens",
        "0",
        "--local-share",
        "1",
        "--json",
    )
    assert json.loads(out)["blended_monthly_usd"] == pytest.approx(1000 * 30 * 1000 * 0.5 / 1e6)


# A valid `cost --simulate` line that each bad-input case below extends.
SIMULATE = (
    *("cost", "--simulate", "--requests-per-day", "1"),
    *("--avg-in-tokens", "1", "--avg-out-tokens", "1"),
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cost", "--simulate", "--requests-per-day", "10"], "--simulate needs --avg-in-tokens"),
        (["cost", "--since", "last tuesday"], "is not a date"),
        ([*SIMULATE, "--local-share", "1.5"], "--local-share"),
        ([*SIMULATE, "--local-share", "nan"], "'nan' is not a number"),
        # numbers past any real use, which would overflow the arithmetic (inf, nan in JSON)
        ([*SIMULATE, "--requests-per-day", "9" * 300], "--requests-per-day"),
        ([*SIMULATE, "--avg-in-tokens", "99999999999"], "--avg-in-tokens"),
        (["models", "--ctx", "9" * 400], "--ctx"),
        (["ai", "--ctx", "9" * 400], "--ctx"),
        (["ai", "--ctx", "4096"], "--ctx goes with --before-load"),
        (["--config=", "route", "hi"], "--config: give a file"),
        (["babysit", "--once", "--interval", "nan"], "'nan' is not a number"),
        (["babysit", "--once", "--interval", "1e20"], "--interval"),
        (["ask", "--max-tokens", "9" * 30, "hi"], "--max-tokens"),
        ([*SIMULATE, "--local-share", "0.5", "--cloud-model", "gpt-9"], "no price for 'gpt-9'"),
        (["ask"], "give exactly one of PROMPT"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args: list[str], message: str) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1
    assert message in err


def test_ask_without_a_local_server_is_a_clear_error(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[backends.llama_server]\nside = "local"\nkind = "openai_compat"\n'
        'base_url = "http://127.0.0.1:9/v1"\n'
    )
    code, _, err = run(capsys, "--config", str(cfg), "ask", "summarize this")
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("devpulse: error: no answer after 3 attempt(s)")
    assert "llama_server: nothing answers at http://127.0.0.1:9/v1" in last
    assert "anthropic: no API key" in last


def fault_config(tmp_path: Path, fault: FaultServer, ledger: Path | None = None) -> Path:
    """The cloud is `fault`; nothing listens on the local side."""
    cfg = tmp_path / "fault.toml"
    cfg.write_text(
        f'[cloud]\nbackend = "cloud"\nmodel = "claude-sonnet-4-6"\n'
        f'[backends.cloud]\nside = "cloud"\nkind = "anthropic"\nbase_url = "{fault.base_url}"\n'
        f'[ledger]\npath = "{ledger or tmp_path / "ledger.sqlite3"}"\n'
        f"[failover]\nbackoff_s = 0.01\n"
    )
    return cfg


def test_ask_stream_shows_a_restart_and_never_splices(capsys, tmp_path: Path) -> None:
    with FaultServer(["cut", "ok"]) as fault:
        cfg = fault_config(tmp_path, fault)
        code, out, err = run(
            capsys, "--config", str(cfg), "ask", "--stream", "--task", "reasoning", "x"
        )
    assert code == 0
    assert out.splitlines() == ["Cloud ", "Cloud answer. "]  # the cut text ends its own line
    assert "the answer broke off; starting again" in err


def test_ask_stream_json_is_one_object_per_line(capsys, tmp_path: Path) -> None:
    with FaultServer(["cut", "ok"]) as fault:
        cfg = fault_config(tmp_path, fault)
        code, out, _ = run(
            capsys, "--config", str(cfg), "ask", "--stream", "--json", "--task", "reasoning", "x"
        )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert {line["status"] for line in lines} == {"ok"}
    kinds = [line["type"] for line in lines]
    assert kinds[:2] == ["block_start", "text_delta"]
    assert kinds.count("restart") == 1
    assert kinds[-1] == "result"
    after = kinds.index("restart")
    texts = [line["text"] for line in lines[after + 1 : -1] if line["type"] == "text_delta"]
    assert "".join(texts) == lines[-1]["answer"]["text"]


def test_ask_with_an_unwritable_ledger_sends_nothing(capsys, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with FaultServer(["ok"]) as fault:
        cfg = fault_config(tmp_path, fault, ledger=tmp_path / "file" / "ledger.sqlite3")
        code, _, err = run(capsys, "--config", str(cfg), "ask", "--task", "reasoning", "x")
        assert fault.bodies == []
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("devpulse: error: cannot write the ledger at ")
    assert "(set ledger.path or XDG_DATA_HOME)" in err


def test_library_use_prints_nothing_on_stdout(tmp_path: Path) -> None:
    """Failures are logged through stdlib logging; a host program's stdout stays its own."""
    script = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from devpulse import Router, config_from_mapping, DevPulseError\n"
        "cfg = config_from_mapping({'backends': {'llama_server': {'side': 'local',"
        " 'kind': 'openai_compat', 'base_url': 'http://127.0.0.1:9/v1'}},"
        f" 'ledger': {{'path': {str(tmp_path / 'l.sqlite3')!r}}},"
        " 'preflight': {'models': {'default': {'need_mb': 10**9}}}})\n"
        "for prompt in ('summarize this', 'x'):\n"
        "    try:\n"
        "        Router(cfg).invoke(prompt)\n"
        "    except DevPulseError:\n"
        "        pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout == ""
    assert "dispatch.failed backend=anthropic" in done.stderr  # where the host sent it


def test_cost_reads_the_ledger_while_another_process_writes(capsys, tmp_path: Path) -> None:
    import sqlite3  # noqa: PLC0415

    from devpulse import Ledger  # noqa: PLC0415

    path = tmp_path / "l.sqlite3"
    Ledger(path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{path}"\nbusy_timeout_s = 0\n')
    holder = sqlite3.connect(path, isolation_level=None)  # another process, mid-write
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, out, err = run(capsys, "--config", str(cfg), "cost", "--json")
    finally:
        holder.rollback()
        holder.close()
    assert (code, json.loads(out)["status"]) == (0, "ok"), err


def test_cost_counts_and_prices_prompt_cache_tokens(capsys, tmp_path: Path) -> None:
    from devpulse import Ledger  # noqa: PLC0415
    from devpulse.core.ledger import Attempt, RequestRecord  # noqa: PLC0415

    path = tmp_path / "l.sqlite3"
    attempt = Attempt("cloud", "anthropic", "claude-sonnet-4-5", "answered", None, 0.1)
    Ledger(path).record(
        RequestRecord(
            "reasoning",
            "public",
            [],
            "answered",
            [attempt],
            side="cloud",
            model="claude-sonnet-4-5",
            input_tokens=10,
            output_tokens=100,
            cache_read_tokens=100_000,
            cache_write_tokens=50_000,
            cost_usd=0.2,
            counterfactual_usd=0.2,
        )
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{path}"\n')
    code, out, _ = run(capsys, "--config", str(cfg), "cost", "--json")
    report = json.loads(out)
    assert code == 0
    cloud = report["by_side"]["cloud"]
    assert (cloud["cache_read_tokens"], cloud["cache_write_tokens"]) == (100_000, 50_000)
    assert report["cache_read_tokens"] == 100_000
    assert report["cache_write_tokens"] == 50_000
    code, out, _ = run(capsys, "--config", str(cfg), "cost")
    assert "100000 cache read" in out
