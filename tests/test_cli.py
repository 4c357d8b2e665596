"""The `devpulse` command line: output, --json, exit codes and one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devpulse import ExitCode, __version__
from devpulse.cli import main

REASONING = (
    "A train travels 180 km in 2 hours, then 240 km in 3 hours. H"
    "ow many km per hour did it average over the whole trip?"
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_route_prints_the_side(capsys) -> None:
    code, out, err = run(capsys, "route", "summarize this changelog")
    assert (code, out) == (0, "local\n")
    # Nothing serves the default local model here: the preflight says so, once, on stderr.
    (warning,) = err.splitlines()
    assert json.loads(warning)["event"] == "preflight.unknown_model"
    assert run(capsys, "route", REASONING)[:2] == (0, "cloud\n")


def test_route_json_carries_the_whole_decision(capsys) -> None:
    code, out, _ = run(capsys, "route", "--json", REASONING)
    assert code == ExitCode.OK
    payload = json.loads(out)
    assert payload["status"] == "ok"
    assert payload["side"] == "cloud"
    assert payload["backend"] == "anthropic"
    assert payload["task_class"] == "reasoning"
    assert payload["task_rule"].startswith("difficult (")
    assert payload["difficulty"] >= 0.7
    assert any(n.startswith("difficulty ") for n in payload["classifier_notes"])
    assert payload["privacy"]["level"] == "public"
    assert any("reasoning" in reason for reason in payload["reasons"])


def test_route_reads_stdin_and_files(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(REASONING))
    assert run(capsys, "route", "-")[:2] == (0, "cloud\n")
    prompt = tmp_path / "p.txt"
    prompt.write_text("summarize this changelog")
    assert run(capsys, "route", "--file", str(prompt))[:2] == (0, "local\n")


def test_explicit_task_wins(capsys) -> None:
    code, out, _ = run(capsys, "route", "--json", "--task", "reasoning", "summarize this")
    assert (code, json.loads(out)["task_rule"]) == (0, "explicit")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["route", "--task", "bogus", "x"], "'bogus' is not one of"),
        (["route"], "give exactly one of PROMPT"),
        (["route", "x", "--file", "/nonexistent/prompt.txt"], "No such file"),
        (["route", "--bogus-flag", "x"], "No such option"),
        (["nonsense"], "No such command"),
        (["--config"], "--config needs a value"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, args: list[str], expected: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == ExitCode.USAGE
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("devpulse: error: ")
    assert expected in err
    assert "Traceback" not in err


def test_bad_config_is_one_line_exit_2_naming_the_key(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[routing]\nsummarize = { side = 'local' }\n")
    code, _, err = run(capsys, "--config", str(bad), "route", "x")
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1
    assert "routing.summarize: unknown task class 'summarize'" in err
    code, _, err = run(capsys, "--config", str(tmp_path / "none.toml"), "route", "x")
    assert (code, "cannot read config" in err) == (ExitCode.USAGE, True)


def test_the_last_config_given_counts_as_click_has_it(capsys, tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("")
    bad = tmp_path / "bad.toml"
    bad.write_text("[routing]\nsummarize = { side = 'local' }\n")
    code, _, err = run(capsys, "--config", str(good), "--config", str(bad), "route", "x")
    assert (code, "routing.summarize" in err) == (ExitCode.USAGE, True)
    code, _, _ = run(capsys, f"--config={bad}", "--config", str(good), "route", "x")
    assert code == ExitCode.OK


def test_errors_under_json_are_json_too(capsys) -> None:
    code, out, err = run(capsys, "route", "--json", "--task", "bogus", "x")
    assert code == ExitCode.USAGE
    payload = json.loads(out)
    assert payload["status"] == "error"
    assert "bogus" in payload["error"]
    assert err.startswith("devpulse: error:")


def test_config_changes_the_routing(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[routing]\nreasoning = { side = "local", model = "qwen3:32b" }\n')
    code, out, _ = run(capsys, "--config", str(cfg), "route", "--json", REASONING)
    payload = json.loads(out)
    assert (code, payload["side"], payload["model"]) == (0, "local", "qwen3:32b")


def test_plugins_lists_the_bundled_plugins_and_their_hooks(capsys) -> None:
    code, out, _ = run(capsys, "plugins", "--json")
    payload = json.loads(out)
    assert (code, payload["status"]) == (0, "ok")
    by_name = {p["name"]: p for p in payload["plugins"]}
    assert by_name["devpulse.routing_table"]["hooks"] == ["route"]
    assert by_name["devpulse.task_classifier"]["hooks"] == ["classify"]
    assert {p["source"] for p in payload["plugins"]} == {"bundled"}
    code, out, _ = run(capsys, "plugins")
    assert "devpulse.routing_table (bundled): route" in out


def test_version(capsys) -> None:
    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"devpulse, version {__version__}")


def test_trace_prints_hook_calls_but_never_the_prompt(capsys, monkeypatch) -> None:
    monkeypatch.setenv("DEVPULSE_TRACE_PLUGINS", "1")
    code, _, err = run(capsys, "route", "summarize hunter2-very-private")
    assert code == 0
    (classify,) = [
        line for line in err.splitlines() if line.startswith("devpulse trace: classify ->")
    ]
    assert "devpulse.privacy" in classify
    assert "devpulse.task_classifier" in classify
    assert "devpulse trace: route <- Decision" in err
    assert "hunter2" not in err


def test_console_script_and_shell_exit_codes(tmp_path: Path) -> None:
    """The installed `devpulse` script, as a shell script would use it."""
    script = Path(sys.executable).parent / "devpulse"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    ok = subprocess.run(
        [script, "route", "summarize this changelog"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (ok.returncode, ok.stdout) == (0, "local\n")
    bad = subprocess.run(
        [script, "route", "--task", "bogus", "x"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution `badplug` whose `devpulse` entry point fails to import."""
    site = tmp_path / "site"
    info = site / "badplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[devpulse]\nbad_import = badplug_boom\n")
    (site / "badplug_boom.py").write_text('raise RuntimeError("boom at import")\n')
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("DEVPULSE_LOAD_PLUGINS", raising=False)


NAMED = (
    "cannot load the installed devpulse plugin 'bad_import' (distribution badplug 0.1): "
    "RuntimeError: boom at import"
)


@pytest.mark.usefixtures("broken_plugin")
def test_a_plugin_that_fails_to_load_is_named_and_stops_routing(capsys) -> None:
    code, out, err = run(capsys, "route", "hi")
    assert (code, out) == (ExitCode.USAGE, "")
    assert err.startswith(f"devpulse: error: {NAMED}; ")
    assert "DEVPULSE_LOAD_PLUGINS" in err
    assert len(err.splitlines()) == 1
    from devpulse import Router, config_from_mapping  # noqa: PLC0415
    from devpulse.core.plugins import PluginLoadError  # noqa: PLC0415

    with pytest.raises(PluginLoadError, match=r"'bad_import' \(distribution badplug 0\.1\)"):
        Router(config_from_mapping({}))  # the library, too: never routes without it


@pytest.mark.usefixtures("broken_plugin")
def test_plugins_and_doctor_still_run_and_show_a_plugin_that_failed_to_load(capsys) -> None:
    code, out, _ = run(capsys, "plugins")
    assert code == ExitCode.PROBLEM
    assert out.splitlines()[-1] == (
        "bad_import (badplug 0.1): BROKEN, not loaded: RuntimeError: boom at import"
    )
    code, out, _ = run(capsys, "plugins", "--json")
    payload = json.loads(out)
    assert (code, payload["status"]) == (ExitCode.PROBLEM, "fail")
    assert payload["broken"] == [
        {
            "entry_point": "bad_import",
            "distribution": "badplug",
            "version": "0.1",
            "error": "RuntimeError: boom at import",
        }
    ]
    code, out, _ = run(capsys, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == ExitCode.PROBLEM
    assert checks["plugins.bad_import"]["result"] == "fail"
    assert checks["plugins.bad_import"]["detail"].startswith(NAMED)


@pytest.mark.usefixtures("broken_plugin")
def test_the_help_leaves_out_a_plugin_that_failed_to_load_and_says_so(
    capsys, tmp_path: Path
) -> None:
    """The user's config loaded: its help is shown (here without `scan`, which its
    config switches off), not the packaged defaults'."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[privacy]\nclassifier = false\n")
    code, out, err = run(capsys, "--config", str(cfg), "--help")
    assert code == ExitCode.OK
    assert "route" in out
    assert " scan " not in out
    assert err == f"devpulse: warning: {NAMED}; " + err.split("; ", 1)[1]
    assert err.endswith("(the help above leaves it out)\n")
    assert err.count("\n") == 1


@pytest.mark.usefixtures("broken_plugin")
def test_doctor_with_a_broken_config_still_names_a_plugin_that_failed_to_load(
    capsys, tmp_path: Path
) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("not = [valid toml\n")
    code, out, _ = run(capsys, "--config", str(cfg), "doctor", "--json")
    assert code == ExitCode.USAGE
    names = [c["name"] for c in json.loads(out)["checks"]]
    assert names == ["config", "plugins.bad_import"]
    code, out, err = run(capsys, "--config", str(cfg), "doctor", "--help")  # help, and why
    assert code == ExitCode.OK
    assert out.startswith("Usage: devpulse doctor")
    assert err.startswith(f"devpulse: warning: config {cfg} is not valid TOML")
