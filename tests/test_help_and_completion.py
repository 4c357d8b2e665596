"""Every command's help states its exit codes; shell completion works through `run()`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from devpulse import ConfigError
from devpulse.cli import _refusing, main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    "route",
    "scan",
    "ai",
    "models",
    "ask",
    "cost",
    "status",
    "plugins",
    "config",
    "doctor",
]


def help_text(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main([*args, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_states_its_exit_codes(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = help_text(capsys, command)
    assert "Exit codes: 0 " in text
    assert "2 usage or config error" in text


def test_the_group_help_states_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert "Exit codes (devpulse.ExitCode): 0 ok" in help_text(capsys)


def test_ask_and_cost_explain_their_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--max-tokens INTEGER RANGE The most tokens the answer may have" in help_text(
        capsys, "ask"
    )
    cost = help_text(capsys, "cost")
    for flag in (
        "--requests-per-day",
        "--avg-in-tokens",
        "--avg-out-tokens",
        "--local-share",
        "--cloud-model",
    ):
        assert re.search(rf"{flag} [A-Z ]*With --simulate: ", cost), flag


def devpulse_env(**extra: str) -> dict[str, str]:
    """The environment a shell gives the `devpulse` script, importing this checkout."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("bash", "complete -o nosort -F _devpulse_completion devpulse"),
        ("zsh", "compdef _devpulse_completion devpulse"),
        ("fish", "complete --no-files --command devpulse"),
    ],
)
def test_the_completion_script_is_printed(shell: str, expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from devpulse.cli import run; run()"],
        capture_output=True,
        text=True,
        env=devpulse_env(_DEVPULSE_COMPLETE=f"{shell}_source"),
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "_devpulse_completion" in done.stdout
    assert expected in done.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_and_options(tmp_path: Path) -> None:
    """Source the script in a real bash and complete as the shell would, via `devpulse`."""
    script = tmp_path / "devpulse"
    script.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c "from devpulse.cli import run; run()" "$@"\n'
    )
    script.chmod(0o755)
    env = devpulse_env(PATH=f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    shell = """
        eval "$(_DEVPULSE_COMPLETE=bash_source devpulse)"
        complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
                               COMPREPLY=(); _devpulse_completion devpulse;
                           printf '%s\\n' "${COMPREPLY[@]}"; }
        complete_words devpulse do
        complete_words devpulse ask --max
        complete_words devpulse route --task reas
    """
    done = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["doctor", "--max-tokens", "reasoning"]


BROKEN = "not = [valid toml\n"
TOKEN = "ghp_R4nd0mT0k3nV4lu3Xq9Lm2Zp7Wc5Yb8Nd1Ks6"  # a config error may echo a value


@pytest.mark.parametrize("args", [["--help"], ["route", "--help"], ["scan", "-h"], []])
def test_the_help_shows_past_a_config_that_cannot_be_loaded(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(BROKEN)
    monkeypatch.setenv("DEVPULSE_CONFIG", str(broken))
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Usage: devpulse")
    assert err.count("\n") == 1, err
    assert err.startswith(f"devpulse: warning: config {broken} is not valid TOML")
    assert err.endswith("(the help above is the packaged defaults')\n")


def test_the_warning_redacts_a_secret_the_config_error_echoes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(f'[classify]\ndefault_task = "{TOKEN}"\n')
    assert main(["--config", str(broken), "--help"]) == 0
    _, err = capsys.readouterr()
    assert "classify.default_task: unknown task class" in err
    assert TOKEN[:4] in err
    assert TOKEN not in err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["route", "hello"], "is not valid TOML"),
        (["route", "--", "--help"], "is not valid TOML"),  # a prompt that reads --help
        (["route", "--file", "-h"], "is not valid TOML"),  # a file named -h: route would run
        (["cost", "--since", "--help"], "is not valid TOML"),  # a date that reads --help
        (["plugins"], "is not valid TOML"),
        (["--config"], "--config needs a value"),
    ],
)
def test_no_command_runs_on_the_defaults_in_place_of_a_broken_config(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    said: str,
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(BROKEN)
    (tmp_path / "-h").write_text("summarize this changelog\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEVPULSE_CONFIG", str(broken))
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("devpulse: error: "), err
    assert said in err


def test_a_plugins_group_of_commands_runs_nothing_on_the_defaults() -> None:
    """A group's own callback runs before its command's --help is read: it is refused too,
    and only the top level's doctor runs on a config that cannot be loaded."""
    ran: list[str] = []

    @click.group(name="devpulse")
    def top() -> None:
        ran.append("top")

    @top.group(name="team")
    def team() -> None:
        ran.append("team")

    @team.command(name="sync")
    def sync() -> None:
        ran.append("sync")

    @team.command(name="doctor")
    def team_doctor() -> None:
        ran.append("team doctor")

    error = ConfigError("config broken.toml is not valid TOML")
    refusing = _refusing(top, error)
    assert refusing.main(["team", "sync", "--help"], standalone_mode=False) == 0
    assert ran == ["top"]  # the top group's callback sets the app up: it stays
    for argv in (["team", "sync"], ["team", "doctor"]):
        with pytest.raises(ConfigError):
            refusing.main(argv, standalone_mode=False)
    assert "sync" not in ran
    assert "team doctor" not in ran
    assert team.callback is not None  # the plugin's own group is left as it was
