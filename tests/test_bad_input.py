"""Bad input to the `devpulse` command: one line on stderr, a documented exit code, never a
traceback, and nothing lost on the way (issue 11, section 3)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import sqlite3
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devpulse import ExitCode
from devpulse.cli import STOP_AGAIN_AFTER_S, Terminated, main
from devpulse.commands.inputs import encoding_of
from tests.rig.fault_server import FaultServer

CLI = [sys.executable, "-c", "from devpulse.cli import run; run()"]
NOT_UTF8 = b"summarize caf\xe9 \xff\xfe and \xc3( please\n"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The one line an error leaves on stderr (log lines, JSON on a pipe, come before it)."""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("devpulse: error: ")
    assert [line for line in err.splitlines() if line.startswith("devpulse: error")] == [last]
    return last


def binary_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    """Stdin as a terminal or pipe gives it: bytes under a strict UTF-8 text layer."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdin", stream)


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devpulse.toml"
    path.write_text(text)
    return path


def fault_config(tmp_path: Path, fault: FaultServer) -> Path:
    """The cloud is `fault`; nothing listens on the local side."""
    return config(
        tmp_path,
        f'[cloud]\nbackend = "cloud"\nmodel = "claude-sonnet-4-6"\n'
        f'[backends.cloud]\nside = "cloud"\nkind = "anthropic"\nbase_url = "{fault.base_url}"\n'
        f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n',
    )


# -- invalid UTF-8 ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["route", "scan"])
def test_invalid_utf8_on_stdin_is_read_like_a_file(capsys, monkeypatch, command) -> None:
    binary_stdin(monkeypatch, NOT_UTF8)
    code, out, err = run(capsys, command, "--json", "-")
    assert code == 0
    assert json.loads(out)["status"] == "ok"
    assert "Traceback" not in err


def test_ask_sends_replacement_characters_never_surrogates(capsys, monkeypatch, tmp_path) -> None:
    binary_stdin(monkeypatch, NOT_UTF8)
    with FaultServer(["ok"]) as fault:
        code, _, _ = run(
            capsys,
            "--config",
            str(fault_config(tmp_path, fault)),
            "ask",
            "--task",
            "reasoning",
            "-",
        )
        (body,) = fault.bodies
    assert code == 0
    sent = body["messages"][0]["content"]
    assert sent == NOT_UTF8.decode("utf-8", "replace")
    assert "\ufffd" in sent


def test_an_argument_that_is_not_utf8_is_sent_as_text(capsys, tmp_path) -> None:
    prompt = NOT_UTF8.decode("utf-8", "surrogateescape")  # what Python makes of such argv
    with FaultServer(["ok"]) as fault:
        cfg = fault_config(tmp_path, fault)
        code, _, _ = run(capsys, "--config", str(cfg), "ask", "--task", "reasoning", prompt)
        (body,) = fault.bodies
    assert code == 0
    assert body["messages"][0]["content"] == NOT_UTF8.decode("utf-8", "replace")


def test_invalid_utf8_through_a_real_strict_stdin(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "XDG_CONFIG_HOME": str(tmp_path)}
    for command in ("route", "scan"):
        done = subprocess.run(
            [*CLI, command, "-"], input=NOT_UTF8, capture_output=True, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
        assert b"Traceback" not in done.stderr


# -- non-text config ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe[\x00l\x00o\x00c\x00a\x00l\x00]\x00",  # UTF-16 with its byte-order mark
        "[local]\nmodel = 'x'\n".encode("utf-16-le"),  # UTF-16, no mark: NULs
        b"GGUF\x03\x00\x00\x00" + bytes(range(256)),  # binary
    ],
)
def test_a_config_that_is_not_utf8_toml(capsys, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(data)
    code, _, err = run(capsys, "--config", str(path), "route", "x")
    assert code == ExitCode.USAGE
    assert one_error_line(err) == f"devpulse: error: cannot read config {path}: not UTF-8 TOML"


def test_a_config_with_a_utf8_byte_order_mark_is_fine(capsys, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf[classify]\nlong_context_tokens = 5\n")
    assert run(capsys, "--config", str(path), "route", "x")[0] == 0
    code, out, _ = run(capsys, "--config", str(path), "config")
    assert (code, "classify.long_context_tokens = 5  (file)" in out) == (0, True)


@pytest.mark.parametrize("name", ["/dev/zero", "."])
def test_a_config_that_is_endless_or_a_folder(capsys, name: str) -> None:
    code, _, err = run(capsys, "--config", name, "route", "x")
    assert code == ExitCode.USAGE
    assert f"cannot read config {name}:" in one_error_line(err)


# -- empty prompts and model names, zero and negative sizes -------------------------------


@pytest.mark.parametrize("command", ["route", "ask"])
@pytest.mark.parametrize("source", ["argument", "whitespace", "file", "stdin"])
def test_an_empty_prompt_is_a_usage_error(capsys, monkeypatch, tmp_path, command, source):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary_stdin(monkeypatch, b"")
    args = {
        "argument": [""],
        "whitespace": [" \n\t "],
        "file": ["--file", str(empty)],
        "stdin": ["-"],
    }[source]
    code, out, err = run(capsys, command, *args)
    assert (code, out) == (ExitCode.USAGE, "")
    assert one_error_line(err) == "devpulse: error: empty prompt"


def test_text_with_nul_separators_is_a_prompt(capsys, monkeypatch) -> None:
    """`find -print0` and `git log -z` separate their records with NULs: still text."""
    binary_stdin(monkeypatch, b"./src/app.py\0./src/util.py\0./README.md\0" * 20)
    code, out, _ = run(capsys, "route", "--json", "-")
    assert code == ExitCode.OK
    assert json.loads(out)["status"] == "ok"


@pytest.mark.parametrize("command", ["route", "ask"])
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_a_binary_prompt_is_a_usage_error(capsys, monkeypatch, tmp_path, command, source):
    """Random bytes (an image, an archive) read as text are noise, to either side."""
    data = random.Random(9).randbytes(2000) + b"\0"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(data)
    binary_stdin(monkeypatch, data)
    args = ["--file", str(blob)] if source == "file" else ["-"]
    code, out, err = run(capsys, command, "--json", *args)
    assert code == ExitCode.USAGE
    assert json.loads(out)["error"] == (
        "the prompt is binary (bytes that are no text in its first 8 KB): give text"
    )
    assert one_error_line(err).startswith("devpulse: error: the prompt is binary")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "--before-load: give a size in MB above 0, a model name or a FILE.gguf"),
        ("  ", "--before-load: give a size in MB above 0, a model name or a FILE.gguf"),
        ("0", "'0' is not a positive number of MB"),
        ("-0", "'-0' is not a positive number of MB"),
        ("0.0", "'0.0' is not a positive number of MB"),
        ("-5", "'-5' is not a positive number of MB"),
        ("nan", "'nan' is not a positive number of MB"),
    ],
)
def test_before_load_needs_something_that_takes_memory(capsys, spec: str, message: str) -> None:
    code, out, err = run(capsys, "ai", "--before-load", spec)
    assert (code, out) == (ExitCode.USAGE, "")
    assert one_error_line(err) == f"devpulse: error: {message}"


def test_a_name_the_ollama_client_refuses_is_an_unknown_model() -> None:
    from devpulse.core.config import BackendConfig  # noqa: PLC0415
    from devpulse.core.types import Side  # noqa: PLC0415
    from devpulse.plugins.preflight.estimator import ModelUnknown  # noqa: PLC0415
    from devpulse.plugins.preflight.servers import ollama_architecture  # noqa: PLC0415

    server = BackendConfig(Side.LOCAL, "ollama", options={"base_url": "http://127.0.0.1:9"})
    with pytest.raises(ModelUnknown, match="cannot describe ''"):
        ollama_architecture(server, "")


# -- endless and large input --------------------------------------------------------------


def test_route_file_dev_zero_stops_at_the_limit(capsys) -> None:
    code, out, err = run(capsys, "route", "--file", "/dev/zero")
    assert (code, out) == (ExitCode.USAGE, "")
    assert one_error_line(err) == (
        "devpulse: error: /dev/zero is larger than input.max_bytes (67108864 bytes); "
        "raise [input] max_bytes in the config to read it"
    )


def test_the_limit_is_configurable_and_covers_stdin_and_scan(capsys, monkeypatch, tmp_path):
    cfg = config(tmp_path, "[input]\nmax_bytes = 100\n")
    big = tmp_path / "big.txt"
    big.write_text("word " * 40)  # 200 bytes
    small = tmp_path / "small.txt"
    small.write_text("word " * 10)
    assert run(capsys, "--config", str(cfg), "route", "--file", str(small))[0] == 0
    code, _, err = run(capsys, "--config", str(cfg), "route", "--file", str(big))
    assert code == ExitCode.USAGE
    assert "big.txt is larger than input.max_bytes (100 bytes)" in one_error_line(err)
    binary_stdin(monkeypatch, b"word " * 40)
    code, _, err = run(capsys, "--config", str(cfg), "ask", "-")
    assert code == ExitCode.USAGE
    assert "stdin is larger than input.max_bytes (100 bytes)" in one_error_line(err)
    code, out, err = run(capsys, "--config", str(cfg), "scan", "--json", str(big), str(small))
    assert code == ExitCode.USAGE
    first, second = json.loads(out)["files"]
    assert "is larger than input.max_bytes" in first["error"]
    assert second["findings"] == []
    assert "big.txt is larger than input.max_bytes" in one_error_line(err)


@pytest.mark.parametrize("value", [0, -1])
def test_the_limit_must_be_positive(capsys, tmp_path: Path, value: int) -> None:
    cfg = config(tmp_path, f"[input]\nmax_bytes = {value}\n")
    code, _, err = run(capsys, "--config", str(cfg), "route", "x")
    assert code == ExitCode.USAGE
    assert "input.max_bytes: must be at least 1" in one_error_line(err)


# -- scan: binary files, folders, errors --------------------------------------------------

GITHUB_TOKEN = "ghp_" + "".join(
    random.Random(3).choices("abcdefghijkmnopqrstuvwxyz0123456789", k=36)
)


def test_scan_skips_binary_files_and_says_why(capsys, tmp_path: Path) -> None:
    # A GGUF file: a header with NULs, then tensor data that happens to hold token-like runs.
    (tmp_path / "model.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + f" {GITHUB_TOKEN} ".encode())
    (tmp_path / "latin1.txt").write_bytes(f"caf\xe9 token={GITHUB_TOKEN}\n".encode("latin-1"))
    (tmp_path / "notes.txt").write_text("plain notes\n")
    code, out, _ = run(capsys, "scan", "--json", str(tmp_path))
    assert code == 1
    payload = json.loads(out)
    by_name = {Path(f["path"]).name: f for f in payload["files"]}
    assert by_name["model.gguf"] == {
        "path": str(tmp_path / "model.gguf"),
        "skipped": "binary: NUL bytes in the first 8 KB",
    }
    # text in another encoding is read, and its secret found
    assert [f["rule_id"] for f in by_name["latin1.txt"]["findings"]] == ["github-token"]
    assert by_name["notes.txt"]["findings"] == []
    assert (payload["status"], payload["sensitive"], payload["scanned"]) == ("ok", True, 2)
    code, out, _ = run(capsys, "scan", str(tmp_path / "model.gguf"))
    assert (code, out) == (
        0,
        f"{tmp_path / 'model.gguf'}: skipped (binary: NUL bytes in the first 8 KB)\n",
    )


def test_a_long_scan_under_json_says_how_far_it_has_got(capsys, monkeypatch, tmp_path) -> None:
    from devpulse.plugins.privacy.command import Progress  # noqa: PLC0415

    monkeypatch.setattr(Progress, "LOG_EVERY_S", 0.0)  # every file counts as long here
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text("notes\n")
    code, out, err = run(capsys, "scan", "--json", str(tmp_path))
    assert code == 0
    assert json.loads(out)["scanned"] == 3
    assert err.splitlines() == [
        f"devpulse: scanning: {n} files, 0.0 MB of text so far" for n in (1, 2, 3)
    ]
    monkeypatch.setattr(Progress, "LOG_EVERY_S", 3600.0)
    _, _, err = run(capsys, "scan", "--json", str(tmp_path))
    assert err == ""  # a short scan says nothing


def test_scan_dev_zero_reads_one_block(capsys) -> None:
    code, out, err = run(capsys, "scan", "/dev/zero")
    assert code == 0
    assert out == "/dev/zero: skipped (binary: NUL bytes in the first 8 KB)\n"
    assert err == "devpulse: no files scanned (1 skipped)\n"


def test_scan_of_a_real_gguf_is_skipped(capsys, rig) -> None:
    code, out, _ = run(capsys, "scan", "--json", str(rig.model))
    (entry,) = json.loads(out)["files"]
    assert (code, entry["skipped"]) == (0, "binary: NUL bytes in the first 8 KB")


@pytest.mark.parametrize(
    "folder", [".git", ".venv", "venv", "node_modules", "__pycache__", "env-with-pyvenv-cfg"]
)
def test_scan_skips_vcs_virtualenvs_and_dependencies(capsys, tmp_path: Path, folder: str) -> None:
    inside = tmp_path / folder / "lib"
    inside.mkdir(parents=True)
    if folder == "env-with-pyvenv-cfg":
        (tmp_path / folder / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (inside / "leak.py").write_text(f"token = '{GITHUB_TOKEN}'\n")
    (tmp_path / "app.py").write_text("print('hello')\n")
    code, out, _ = run(capsys, "scan", "--json", str(tmp_path))
    assert code == 0
    assert [f["path"] for f in json.loads(out)["files"]] == [str(tmp_path / "app.py")]


def test_scan_errors_go_to_stderr(capsys, tmp_path: Path) -> None:
    clean = tmp_path / "a.txt"
    clean.write_text("fine\n")
    code, out, err = run(capsys, "scan", "nofile.txt", str(clean))
    assert code == ExitCode.USAGE
    assert out == f"{clean}: clean\n"
    assert err == "devpulse: error: cannot read nofile.txt: No such file or directory\n"
    code, out, err = run(capsys, "scan", "--json", "nofile.txt")
    assert code == ExitCode.USAGE
    assert json.loads(out)["files"] == [
        {"path": "nofile.txt", "error": "cannot read nofile.txt: No such file or directory"}
    ]
    assert one_error_line(err)


def test_scan_of_an_empty_folder_says_nothing_was_scanned(capsys, tmp_path: Path) -> None:
    code, out, err = run(capsys, "scan", str(tmp_path))
    assert (code, out, err) == (0, "", "devpulse: no files scanned\n")
    code, out, _ = run(capsys, "scan", "--json", str(tmp_path))
    assert code == 0
    assert json.loads(out) == {"status": "ok", "sensitive": False, "scanned": 0, "files": []}


def test_scan_skips_pipes_in_folders_and_refuses_an_empty_path(capsys, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # reading it would block for ever
    (tmp_path / "a.txt").write_text("fine\n")
    code, out, _ = run(capsys, "scan", "--json", str(tmp_path))
    assert code == 0
    assert json.loads(out)["files"] == [
        {"path": str(tmp_path / "a.txt"), "level": "public", "findings": []},
        {"path": str(tmp_path / "pipe"), "skipped": "not a regular file"},
    ]
    code, out, err = run(capsys, "scan", "")  # Path("") would be the current folder
    assert (code, out) == (ExitCode.USAGE, "")
    assert one_error_line(err) == "devpulse: error: cannot read '': an empty path"


def test_scan_lists_a_symlinked_folder_as_skipped(capsys, tmp_path: Path) -> None:
    shared, project = tmp_path / "shared-cfg", tmp_path / "proj"
    shared.mkdir()
    project.mkdir()
    (shared / "prod.env").write_text("contact: jane.doe@fastmail.com\n")
    (project / "main.py").write_text("x = 1\n")
    (project / "config").symlink_to(shared, target_is_directory=True)
    (project / "link.env").symlink_to(shared / "prod.env")  # a symlinked file is read
    code, out, err = run(capsys, "scan", str(project))
    assert (code, err) == (ExitCode.PROBLEM, "")
    assert out.splitlines()[0] == (
        f"{project / 'config'}: skipped (a symlink to a folder: not followed)"
    )
    assert out.splitlines()[1] == f"{project / 'link.env'}: confidential (1 finding(s))"
    (project / "link.env").unlink()
    code, out, _ = run(capsys, "scan", "--json", str(project))
    assert code == ExitCode.OK
    assert json.loads(out)["files"] == [
        {"path": str(project / "config"), "skipped": "a symlink to a folder: not followed"},
        {"path": str(project / "main.py"), "level": "public", "findings": []},
    ]


def test_scan_reports_a_folder_it_cannot_list(capsys, monkeypatch, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "a.txt").write_text("fine\n")
    real_scandir = os.scandir

    def scandir(path):  # root reads every folder; this stands for one it may not
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, out, err = run(capsys, "scan", str(tmp_path))
    assert code == ExitCode.USAGE
    assert out == f"{tmp_path / 'a.txt'}: clean\n"
    assert err == f"devpulse: error: cannot read {locked}: Permission denied\n"


def test_scan_reports_a_folder_it_cannot_look_into_and_scans_the_rest(
    capsys, monkeypatch, tmp_path: Path
) -> None:
    """Root reads every folder; `is_file` raising EACCES stands for a folder (chmod 000) whose
    pyvenv.cfg cannot be looked for, and for a file in a folder listed but not searchable."""
    for folder in ("data", "shelf", "src"):
        (tmp_path / folder).mkdir()
    (tmp_path / "shelf" / "hidden.txt").write_text("fine\n")
    (tmp_path / "src" / ".env").write_text("contact: jane.doe@fastmail.com\n")
    (tmp_path / "src" / "app.py").write_text("print('hi')\n")
    data, hidden = tmp_path / "data", tmp_path / "shelf" / "hidden.txt"
    denied = {data / "pyvenv.cfg", hidden}
    real_is_file = Path.is_file

    def is_file(self: Path) -> bool:
        if self in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    code, out, err = run(capsys, "scan", str(tmp_path))
    assert code == ExitCode.USAGE  # documented: a path could not be read
    lines = out.splitlines()
    assert lines[0] == f"{tmp_path / 'src' / '.env'}: confidential (1 finding(s))"
    assert lines[2:] == [f"{tmp_path / 'src' / 'app.py'}: clean"]
    assert err.splitlines() == [
        f"devpulse: error: cannot read {data}: Permission denied",  # the folder, no pyvenv.cfg
        f"devpulse: error: cannot read {hidden}: Permission denied",
    ]
    code, out, _ = run(capsys, "scan", "--json", str(tmp_path))
    payload = json.loads(out)
    assert (code, payload["status"], payload["sensitive"], payload["scanned"]) == (
        ExitCode.USAGE,
        "error",
        True,
        2,
    )
    assert [f for f in payload["files"] if "error" in f] == [
        {"path": str(data), "error": f"cannot read {data}: Permission denied"},
        {"path": str(hidden), "error": f"cannot read {hidden}: Permission denied"},
    ]


def test_scan_of_binary_stdin(capsys, monkeypatch) -> None:
    binary_stdin(monkeypatch, b"\x00\x01\x02" * 100)
    code, out, _ = run(capsys, "scan", "-")
    assert (code, out) == (0, "<stdin>: skipped (binary: NUL bytes in the first 8 KB)\n")


# -- config keys that name nothing --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[privacy]\ndisabled_rules = ["no-such-rule"]\n',
            "privacy.disabled_rules[0]: no rule has the id 'no-such-rule'",
        ),
        (
            '[privacy]\ndisabled_rules = ["email-adress"]\n',
            "(did you mean 'email-address'?)",
        ),
        (
            '[[privacy.rules]]\nid = "a"\ncategory = "secret"\npattern = "x"\n'
            "max_match_bytes = 0\n",
            "privacy.rules[0].max_match_bytes: must be at least 1",
        ),
        (
            '[[privacy.rules]]\nid = "a"\ncategory = "secret"\npattern = "x"\n'
            "max_text_bytes = -1\n",
            "privacy.rules[0].max_text_bytes: must be at least 1",
        ),
        (
            '[[privacy.rules]]\nid = "a"\ncategory = "secret"\npattern = "x"\nmax_candidates = 0\n',
            "privacy.rules[0].max_candidates: must be at least 1",
        ),
        ('source = "x"\n', "source: unknown key"),
        (
            '[backends.llama_server]\nbase_url = "not a url"\n',
            "backends.llama_server.base_url: 'not a url' is not an http(s) URL with a host",
        ),
        ('[backends.llama_server]\nbase_url = "ftp://host/v1"\n', "is not an http(s) URL"),
        ('[backends.llama_server]\nbase_url = "http:///v1"\n', "is not an http(s) URL"),
        ('[backends.llama_server]\nbase_url = "http://h:port/v1"\n', "is not an http(s) URL"),
        (
            '[privacy]\nallowlist = ["a(b"]\n',
            "privacy.allowlist[0]: not a valid RE2 pattern (missing ): a(b)",
        ),
        (
            '[[privacy.rules]]\nid = "x"\ncategory = "secret"\npattern = "(?<=a)b"\n',
            "privacy.rules[0].pattern: not a valid RE2 pattern (invalid perl operator: (?<=)",
        ),
        (
            '[[privacy.rules]]\nid = "x"\ncategory = "secret"\npattern = "a"\ntrigger = "(b"\n',
            "privacy.rules[0].trigger: not a valid RE2 pattern (missing ): (b)",
        ),
        ("[failover]\nbudget_s = inf\n", "failover.budget_s: expected a finite number, got inf"),
        ("[failover]\nbackoff_s = nan\n", "failover.backoff_s: expected a finite number"),
        ("[failover]\nretries = -1\n", "failover.retries: must be at least 0"),
        # past any real use, and past where a deadline still fits the platform's time type
        ("[failover]\nbudget_s = 1e300\n", "failover.budget_s: must be above 0 and at most"),
        ("[failover]\nbackoff_s = 1e300\n", "failover.backoff_s: must be at most 604800"),
        ("[babysit]\ninterval_s = 1e20\n", "babysit.interval_s: must be above 0 and at most"),
        ("[failover]\nmax_attempts = 1000\n", "failover.max_attempts: must be from 1 to 100"),
        (f"[failover]\nretries = {10**20}\n", "failover.retries: 1e+20 is out of range"),
        (
            "[backends.llama_server]\ntimeout_s = 1e12\n",
            "backends.llama_server.timeout_s: must be above 0 and at most",
        ),
        ("[failover]\nbreaker_threshold = 0\n", "failover.breaker_threshold: must be at least 1"),
        ("[preflight]\ndefault_ctx = 0\n", "preflight.default_ctx: must be at least 1"),
        ("[preflight]\nreserve_mb = -1\n", "preflight.reserve_mb: must be at least 0"),
        ("[classify]\nlong_context_tokens = -1\n", "classify.long_context_tokens: must be"),
        ('[preflight]\nkv_cache_type = "f17"\n', "preflight.kv_cache_type: unknown type 'f17'"),
        (
            "[preflight.models.m]\nneed_mb = 0\n",
            "preflight.models.m.need_mb: must be at least 1",
        ),
        (
            '[prices]\n"claude-sonnet-4" = { input = -3.0, output = 15.0 }\n',
            "prices.claude-sonnet-4: a price cannot be below 0",
        ),
        ('[local]\nmodel = ""\n', "local.model: give a model name, not an empty one"),
        (
            '[routing]\ndrafting = { side = "local", model = " " }\n',
            "routing.drafting.model: give a model name",
        ),
        (
            '[failover.larger_context]\n"claude-sonnet-4-6" = ""\n',
            "failover.larger_context.claude-sonnet-4-6: give a model name",
        ),
    ],
)
def test_config_keys_are_checked_against_what_exists(capsys, tmp_path, text, message) -> None:
    cfg = config(tmp_path, text)
    code, _, err = run(capsys, "--config", str(cfg), "route", "x")
    assert code == ExitCode.USAGE
    line = one_error_line(err)
    assert line.startswith(f"devpulse: error: config {cfg}: ")
    assert message in line
    assert "b'" not in line


def test_disabled_rules_may_name_user_and_configured_rules(capsys, tmp_path) -> None:
    cfg = config(
        tmp_path,
        '[privacy]\ndisabled_rules = ["mine", "client-name", "email-address"]\n'
        '[[privacy.rules]]\nid = "mine"\ncategory = "secret"\npattern = "zzz"\n',
    )
    assert run(capsys, "--config", str(cfg), "route", "x")[0] == 0


# -- cost options that would be ignored ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--requests-per-day", "10"], "--requests-per-day: only with --simulate"),
        (["--cloud-model", "claude-opus-4-7"], "--cloud-model: only with --simulate"),
        (["--simulate", "--cloud-model", ""], "--cloud-model: give a model name"),
        (["--cloud-model", " "], "--cloud-model: give a model name"),
        (
            [
                *("--simulate", "--requests-per-day", "1", "--avg-in-tokens", "1"),
                *("--avg-out-tokens", "1", "--local-share", "nan"),
            ],
            "Invalid value for '--local-share': 'nan' is not a number.",
        ),
        (
            [
                *("--simulate", "--since", "2026-01-01", "--requests-per-day", "1"),
                *("--avg-in-tokens", "1", "--avg-out-tokens", "1", "--local-share", "0.5"),
            ],
            "--since reads the ledger: it does not apply to --simulate",
        ),
    ],
)
def test_cost_options_that_would_be_ignored_are_usage_errors(capsys, args, message) -> None:
    code, out, err = run(capsys, "cost", *args)
    assert (code, out) == (ExitCode.USAGE, "")
    assert one_error_line(err) == f"devpulse: error: {message}"


# -- interrupts, closed pipes, and the last resort ----------------------------------------


@pytest.mark.parametrize(
    "where", ["devpulse.cli.load_config", "devpulse.core.plugins.make_plugin_manager"]
)
def test_an_interrupt_at_start_up_is_130(capsys, monkeypatch, where: str) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupted)
    code, out, err = run(capsys, "route", "x")
    assert (code, out, err) == (130, "", "devpulse: error: interrupted\n")


def test_an_interrupt_in_a_command_is_130(capsys, monkeypatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("devpulse.core.plugins.plugin_listing", interrupted)
    code, out, err = run(capsys, "plugins", "--json")
    assert code == ExitCode.INTERRUPTED
    assert json.loads(out) == {"status": "error", "error": "interrupted", "exit_code": 130}
    assert err == "devpulse: error: interrupted\n"


def test_sigterm_in_a_command_is_143(capsys, monkeypatch) -> None:
    def terminated(*args: object, **kwargs: object) -> None:
        raise Terminated  # as the console script's SIGTERM handler does

    monkeypatch.setattr("devpulse.core.plugins.plugin_listing", terminated)
    code, out, err = run(capsys, "plugins", "--json")
    assert code == ExitCode.TERMINATED
    assert json.loads(out) == {"status": "error", "error": "terminated", "exit_code": 143}
    assert err == "devpulse: error: terminated\n"


def test_main_leaves_its_hosts_signal_handlers_alone(capsys) -> None:
    """Only the console script (`run`) handles SIGINT and SIGTERM; `main` is callable."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run(capsys, "route", "--nope")  # an error exit, which ignores them under `run`
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_with_stderr_closed_a_scan_still_reports_on_stdout(tmp_path: Path) -> None:
    """`2>&-`: the console script holds fd 2 with /dev/null, so the error lines go nowhere
    and the report and the exit code are whole (the first file opened would get fd 2)."""
    leaky = tmp_path / "leaky.env"
    leaky.write_text("GITHUB_TOKEN=ghp_" + "".join(random.Random(8).choices(string.digits, k=36)))
    done = subprocess.run(
        [
            "bash",
            "-c",
            'exec "$@" 2>&-',
            "bash",
            *CLI,
            "scan",
            "--json",
            "/nonexistent",
            str(leaky),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == ExitCode.USAGE  # a path could not be read
    files = json.loads(done.stdout)["files"]
    assert [f["path"] for f in files] == ["/nonexistent", str(leaky)]
    assert files[1]["findings"][0]["rule_id"] == "github-token"


def test_an_error_naming_bytes_that_are_not_utf8_prints_under_json(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run(
        [*CLI, "ai", "--json", "--before-load", os.fsdecode(b"/nonexistent/\xff.gguf")],
        capture_output=True,
        env=env,
        check=False,
    )
    assert done.returncode == ExitCode.USAGE
    assert json.loads(done.stdout)["error"] == "no such file: /nonexistent/\ufffd.gguf"
    assert done.stderr.decode().count("\n") == 1


@pytest.mark.parametrize(
    ("redirect", "args", "code", "line"),
    [
        ("<&-", ["route", "-"], ExitCode.USAGE, "devpulse: error: stdin is closed"),
        ("<&-", ["scan", "-"], ExitCode.USAGE, "devpulse: error: stdin is closed"),
        (">/dev/full", ["plugins"], ExitCode.PROBLEM, "devpulse: error: No space left on device"),
        (">/dev/full", ["--version"], ExitCode.PROBLEM, "devpulse: error: No space left on device"),
        (">/dev/full", [], ExitCode.PROBLEM, "devpulse: error: No space left on device"),
        # the JSON cannot be written, the line on stderr still is
        (
            ">/dev/full",
            ["plugins", "--json"],
            ExitCode.PROBLEM,
            "devpulse: error: No space left on device",
        ),
        ("2>&-", ["route", ""], ExitCode.USAGE, None),
    ],
)
def test_closed_or_full_standard_streams(tmp_path: Path, redirect, args, code, line) -> None:
    """What a shell can do to the three streams before devpulse starts."""
    script = f'exec "$@" {redirect}'
    done = subprocess.run(
        ["bash", "-c", script, "bash", *CLI, *args],
        capture_output=redirect != "2>&-",
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == code
    if line is not None:
        assert one_error_line(done.stderr) == line
        assert "Exception ignored" not in done.stderr


def ask_a_faulty_cloud(
    capsys, tmp_path: Path, step: str, kind: str = "anthropic"
) -> tuple[int, str, str, list[str | None]]:
    """`ask --json` with the cloud a FaultServer running `step` (the key in CLOUD_KEY):
    the exit code, stdout, stderr and the keys the server was sent."""
    with FaultServer([step]) as fault:
        base = fault.base_url + ("/v1" if kind == "openai_compat" else "")
        cfg = config(
            tmp_path,
            f'[cloud]\nbackend = "cloud"\nmodel = "claude-sonnet-4-6"\n'
            f'[backends.cloud]\nside = "cloud"\nkind = "{kind}"\n'
            f'base_url = "{base}"\napi_key_env = "CLOUD_KEY"\n'
            f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n',
        )
        code, out, err = run(
            capsys, "--config", str(cfg), "ask", "--json", "--task", "reasoning", "x"
        )
    return code, out, err, fault.keys


def test_a_server_error_that_quotes_the_key_never_prints_it(capsys, monkeypatch, tmp_path) -> None:
    key = "sk-ant-api03-" + "".join(random.Random(5).choices(string.ascii_letters, k=93)) + "AA"
    monkeypatch.setenv("CLOUD_KEY", key)
    code, out, err, keys = ask_a_faulty_cloud(capsys, tmp_path, "401_echo")
    assert [key in (sent or "") for sent in keys] == [True]  # sent, and quoted back
    assert code == ExitCode.PROBLEM
    assert "invalid x-api-key: " in json.loads(out)["error"]
    assert key[:20] not in out + err
    assert one_error_line(err).startswith("devpulse: error: ")


@pytest.mark.parametrize(
    ("kind", "step"),
    [
        ("anthropic", "401_incorrect"),
        ("openai_compat", "401_incorrect"),
        ("openai_compat", "error_event_echo"),
    ],
)
@pytest.mark.parametrize(
    "key",
    [
        "".join(random.Random(6).choices(string.ascii_letters + string.digits, k=40)),
        "sk-" + "".join(random.Random(7).choices(string.ascii_letters, k=22)),  # LiteLLM's
    ],
)
def test_a_key_of_no_known_shape_that_a_server_quotes_is_never_printed(
    capsys, monkeypatch, tmp_path, kind: str, step: str, key: str
) -> None:
    """The backend takes the key it sent out of the server's message (`without_credentials`):
    a gateway's or a self-hosted server's key has no vendor's shape for redact() to know."""
    monkeypatch.setenv("CLOUD_KEY", key)
    code, out, err, keys = ask_a_faulty_cloud(capsys, tmp_path, step, kind)
    assert any(key in (sent or "") for sent in keys)  # sent, and quoted back
    assert code == ExitCode.PROBLEM
    assert f"…[{len(key)} chars]" in json.loads(out)["error"]
    assert key[:12] not in out + err


def test_a_password_in_a_server_url_is_never_printed(capsys, tmp_path) -> None:
    cfg = config(
        tmp_path,
        '[backends.llama_server]\nside = "local"\nkind = "openai_compat"\n'
        'base_url = "http://admin:Zr8pQ2vLx9mK@127.0.0.1:9/v1"\n'
        f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n',
    )
    for args in (["config", "--json"], ["doctor", "--json"], ["ask", "hi"], ["ai", "--json"]):
        _, out, err = run(capsys, "--config", str(cfg), *args)
        assert "Zr8pQ2vLx9mK" not in out + err, args
        assert "admin:***@127.0.0.1" in out + err, args


def test_a_key_pasted_as_the_name_of_its_variable_is_refused_unprinted(capsys, tmp_path) -> None:
    key = "sk-ant-api03-" + "".join(random.Random(6).choices(string.ascii_letters, k=95))
    cfg = config(
        tmp_path,
        f'[backends.anthropic]\nside = "cloud"\nkind = "anthropic"\napi_key_env = "{key}"\n',
    )
    code, out, err = run(capsys, "--config", str(cfg), "config")
    assert code == ExitCode.USAGE
    assert "api_key_env: not the name of an environment variable" in one_error_line(err)
    assert key[:16] not in out + err


def test_an_unexpected_error_is_one_line_asking_for_a_report(capsys, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("devpulse.core.plugins.plugin_listing", broken)
    code, _, err = run(capsys, "plugins")
    assert code == ExitCode.PROBLEM
    assert (
        err == "devpulse: error: internal error: RuntimeError: boom second line (please report)\n"
    )


def test_sigint_while_waiting_for_an_answer_is_130_and_booked(tmp_path: Path) -> None:
    with FaultServer(["silence"], hang_s=60) as fault:
        cfg = fault_config(tmp_path, fault)
        child = subprocess.Popen(
            [*CLI, "--config", str(cfg), "ask", "--task", "reasoning", "hello"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        )
        assert child.stderr is not None
        first = child.stderr.readline()  # the decision: the request is about to go out
        assert first.startswith("devpulse: cloud -> cloud/claude-sonnet-4-6")
        while not fault.bodies and child.poll() is None:  # until the server holds it
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    assert child.returncode == ExitCode.INTERRUPTED
    assert out == ""
    assert one_error_line(err) == "devpulse: error: interrupted"
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        assert db.execute("SELECT outcome FROM requests").fetchall() == [("cancelled",)]


def _asking(tmp_path: Path, fault: FaultServer, side: str = "cloud") -> subprocess.Popen[str]:
    """`devpulse ask --json` started, on `side`, and returned once `fault` holds its request."""
    cfg, task = fault_config(tmp_path, fault), "reasoning"
    if side == "local":  # a local attempt books its model busy (`uses`) while it runs
        cfg, task = (
            config(
                tmp_path,
                f'[local]\nbackend = "fault"\nmodel = "m"\n'
                f'[backends.fault]\nside = "local"\nkind = "openai_compat"\n'
                f'base_url = "{fault.base_url}/v1"\n'
                f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n',
            ),
            "drafting",
        )
    child = subprocess.Popen(
        [*CLI, "--config", str(cfg), "ask", "--json", "--task", task, "hello"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert child.stderr is not None
    line = child.stderr.readline()
    while line and not line.startswith("devpulse: "):  # log lines (the local model's size)
        line = child.stderr.readline()
    assert line.startswith(f"devpulse: {side} -> "), line  # the decision: about to go out
    while not fault.bodies and child.poll() is None:  # until the server holds it
        time.sleep(0.05)
    return child


def test_more_sigints_while_one_is_handled_are_ignored(tmp_path: Path) -> None:
    """`timeout -s INT` signals devpulse and then its process group: the second SIGINT
    lands while the first is handled (booking, closing, the error line), tens of ms in."""
    with FaultServer(["silence"], hang_s=60) as fault:
        child = _asking(tmp_path, fault)
        until = time.monotonic() + STOP_AGAIN_AFTER_S / 2  # within what counts as one signal
        while child.poll() is None and time.monotonic() < until:  # some land as it cleans up
            child.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.005)
        out, err = child.communicate(timeout=60)
    assert child.returncode == ExitCode.INTERRUPTED
    assert json.loads(out) == {"status": "error", "error": "interrupted", "exit_code": 130}
    assert one_error_line(err) == "devpulse: error: interrupted"
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        assert db.execute("SELECT outcome FROM requests").fetchall() == [("cancelled",)]


@pytest.mark.parametrize(("answers", "sig"), [(True, signal.SIGINT), (False, signal.SIGTERM)])
def test_a_signal_while_the_exit_waits_on_a_locked_ledger_stops_it_at_once(
    tmp_path: Path, answers: bool, sig: signal.Signals
) -> None:
    """The answer (or the error) is out, and the exit waits for another process's lock on
    the ledger (up to busy_timeout_s, here 300 s) to write the request's rows: a signal ends
    the wait, and what was printed is not lost with it."""
    ledger = tmp_path / "ledger.sqlite3"
    with FaultServer(["ok" if answers else "reset"]) as fault:
        cfg = config(
            tmp_path,
            '[local]\nbackend = "fault"\nmodel = "m"\n'
            '[backends.fault]\nside = "local"\nkind = "openai_compat"\n'
            f'base_url = "{fault.base_url}/v1"\n'
            f'[ledger]\npath = "{ledger}"\nbusy_timeout_s = 300\n',
        )
        ask = [*CLI, "--config", str(cfg), "ask", "--json", "--task", "drafting", "hello"]
        subprocess.run(ask, capture_output=True, check=False)  # the ledger made, unlocked
        with contextlib.closing(sqlite3.connect(ledger, isolation_level=None)) as holder:
            holder.execute("BEGIN EXCLUSIVE")  # another process writing, as long as it likes
            child = subprocess.Popen(ask, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert child.stdout is not None
            said = json.loads(child.stdout.readline())  # out before the wait
            with pytest.raises(subprocess.TimeoutExpired):  # held at exit by the lock
                child.wait(timeout=STOP_AGAIN_AFTER_S + 0.5)
            child.send_signal(sig)
            rest, err = child.communicate(timeout=60)  # not the 300 s of the busy timeout
    assert said["status"] == ("ok" if answers else "error")
    assert rest == b""
    word = "terminated" if sig == signal.SIGTERM else "interrupted"
    assert child.returncode == (143 if sig == signal.SIGTERM else 130)
    assert err.decode().splitlines()[-1] == (
        f"devpulse: error: {word} while writing the ledger: stopped at once"
    )


def test_sigterm_while_waiting_for_an_answer_is_143_booked_and_not_left_in_flight(
    tmp_path: Path,
) -> None:
    """What systemd, `docker stop`, `timeout` and a cancelled CI job send: handled as Ctrl-C
    is, so the model is not left looking busy to preflight and babysit."""
    with FaultServer(["silence"], hang_s=60) as fault:
        child = _asking(tmp_path, fault, "local")
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    assert child.returncode == ExitCode.TERMINATED == 143
    assert json.loads(out) == {"status": "error", "error": "terminated", "exit_code": 143}
    assert one_error_line(err) == "devpulse: error: terminated"
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        assert db.execute("SELECT outcome FROM requests").fetchall() == [("cancelled",)]
        assert db.execute("SELECT count(*) FROM uses WHERE finished IS NULL").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM uses").fetchone() == (1,)


@pytest.mark.parametrize("stream", [True, False])
def test_a_reader_that_goes_away_cuts_the_output_exit_1(tmp_path: Path, stream: bool) -> None:
    """`devpulse ask --stream | head -c 5`, with head gone before the first byte."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with FaultServer(["ok"]) as fault:
        cfg = fault_config(tmp_path, fault)
        args = ["ask", "--task", "reasoning", *(["--stream"] if stream else []), "hello"]
        done = subprocess.run(
            [*CLI, "--config", str(cfg), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
            timeout=60,
            check=False,
        )
    os.close(write_end)
    assert done.returncode == ExitCode.PROBLEM
    assert "Exception ignored" not in done.stderr
    assert one_error_line(done.stderr) == (
        "devpulse: error: the output was cut: stdout closed before the end"
    )


def test_the_group_help_documents_interrupts_and_cut_output(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "the output was cut by a closed pipe" in text
    assert "130 interrupted (Ctrl-C)" in text


# -- context length: one clear line from a real server ------------------------------------


@pytest.mark.parametrize(("kind", "suffix"), [("openai_compat", "/v1"), ("anthropic", "")])
def test_a_prompt_over_the_context_is_one_line_with_both_sizes(
    capsys, tmp_path: Path, llama_server, kind: str, suffix: str
) -> None:
    cfg = config(
        tmp_path,
        f'[local]\nbackend = "rig"\nmodel = "gemma-3-270m"\n'
        f'[backends.rig]\nside = "local"\nkind = "{kind}"\n'
        f'base_url = "{llama_server.base_url}{suffix}"\n'
        f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n',
    )
    prompt = tmp_path / "long.txt"
    prompt.write_text("summarize: " + "tokens " * 6000)  # more than a slot's 2048
    code, out, err = run(
        capsys, "--config", str(cfg), "ask", "--task", "drafting", "--file", str(prompt)
    )
    assert (code, out) == (ExitCode.PROBLEM, "")
    line = one_error_line(err)
    assert re.fullmatch(
        r"devpulse: error: rig: the request \(\d{4} tokens\) does not fit the model's context "
        r"\(2048 tokens\)",
        line,
    ), line


@pytest.mark.parametrize(
    ("args", "personal"),
    [
        (["route", "--task", "jane.doe@gmail.com", "x"], "jane.doe@gmail.com"),
        (["ai", "--before-load", "+1 415 555 0199"], "415 555 0199"),
        (["route", "--json", "--task", "DE89370400440532013000", "x"], "370400440532013000"),
    ],
)
def test_personal_data_an_error_quotes_from_an_argument_is_redacted(
    capsys, args: list[str], personal: str
) -> None:
    """An argument in the wrong place is quoted back: not a person's address or number."""
    code, out, err = run(capsys, *args)
    assert code == ExitCode.USAGE
    assert personal not in one_error_line(err)
    assert personal not in out
    assert "chars]" in err


@pytest.mark.parametrize(
    "args",
    [
        ["route", "--task", "nope", "--", "--json"],  # a prompt that reads --json
        ["--config", "--json", "route", "hi"],  # a config file named --json
    ],
)
def test_json_is_asked_by_the_flag_only(capsys, args: list[str]) -> None:
    code, out, err = run(capsys, *args)
    assert code == ExitCode.USAGE
    assert out == ""
    one_error_line(err)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_a_prompt_in_utf16_or_utf32_is_read_as_such(
    capsys, monkeypatch, tmp_path, encoding, source
):
    """Review 26: read as UTF-8, a UTF-16 file had a NUL after every character, and the
    secrets in it went to the cloud classified public."""
    env = (
        "AWS_ACCESS_KEY_ID=AKIAQ3EGT7XLUMN5BW2K\nAWS_SECRET_ACCESS_KEY="
        + "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"
    )
    data = f"Why does the deploy fail with these settings?\n{env}\n".encode(encoding)
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(data)
    binary_stdin(monkeypatch, data)
    args = ["--file", str(prompt)] if source == "file" else ["-"]
    code, out, _ = run(capsys, "route", "--json", "--task", "reasoning", *args)
    payload = json.loads(out)
    assert (code, payload["privacy"]["level"], payload["side"]) == (0, "secret", "local")


def test_nul_separated_records_are_not_read_as_utf16() -> None:
    """NULs between records (`find -print0`) stand anywhere, not at every other byte."""
    assert encoding_of(b"./src/app.py\0./src/util.py\0./README.md\0" * 20) == "utf-8"
    assert encoding_of("plain text".encode("utf-16-le")) == "utf-16-le"
    assert encoding_of("plain text".encode("utf-16-be")) == "utf-16-be"
