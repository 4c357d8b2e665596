"""`devpulse scan`: redacted findings per file, exit codes, and no secret ever printed."""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import pytest

from devpulse.cli import main
from tests.plugins.privacy import secrets_factory as make

RNG = random.Random(11)
KEY_ID, KEY_SECRET = make.aws_key_id(RNG), make.aws_secret(RNG)
DB_PASSWORD = "Wq7!rTz92xLp"
EMAIL = "jane.doe@fastmail.com"
SECRETS = (KEY_ID, KEY_SECRET, DB_PASSWORD, EMAIL)


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    path = tmp_path / "settings.env"
    path.write_text(
        f"AWS_ACCESS_KEY_ID={KEY_ID}\nAWS_SECRET_ACCESS_KEY={KEY_SECRET}\n"
        f"DATABASE_URL=postgres://billing:{DB_PASSWORD}@db.acme.io:5432/prod\n"
        f"contact: {EMAIL}\n"
    )
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_three_redacted_findings_and_exit_1(capsys, leaky: Path) -> None:
    code, out, err = run(capsys, "-v", "scan", str(leaky))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{leaky}: secret (3 finding(s))"
    assert [line.split()[1] for line in lines[1:]] == [
        "aws-key-pair",
        "credentials-in-url",
        "email-address",
    ]
    for secret in SECRETS:
        assert secret not in out
        assert secret not in err
        assert secret[:6] not in out.replace("AKIA", "")


def test_json_lists_each_file(capsys, leaky: Path, tmp_path: Path) -> None:
    clean = tmp_path / "notes.md"
    clean.write_text("Nothing to see here, just notes about sorting algorithms.\n")
    code, out, _ = run(capsys, "scan", "--json", str(leaky), str(clean))
    payload = json.loads(out)
    assert (code, payload["status"], payload["sensitive"]) == (1, "ok", True)
    first, second = payload["files"]
    assert (first["path"], first["level"], len(first["findings"])) == (str(leaky), "secret", 3)
    assert first["findings"][0]["line"] == 1
    assert (second["level"], second["findings"]) == ("public", [])
    for secret in SECRETS:
        assert secret not in out


def test_clean_files_exit_0(capsys, tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("api_key = 'YOUR_API_KEY'\n")
    assert run(capsys, "scan", str(path)) == (0, f"{path}: clean\n", "")


def test_stdin(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"mail {EMAIL}\n"))
    code, out, _ = run(capsys, "scan", "-")
    assert code == 1
    assert out.startswith("<stdin>: confidential (1 finding(s))")


def test_folders_are_scanned_recursively_skipping_vcs(capsys, tmp_path: Path, leaky: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("fine\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(f"token = {make.github_token(RNG)}\n")
    code, out, _ = run(capsys, "scan", "--json", str(tmp_path))
    paths = [f["path"] for f in json.loads(out)["files"]]
    assert code == 1
    assert str(tmp_path / "sub" / "b.txt") in paths
    assert str(leaky) in paths
    assert not any(".git" in p for p in paths)


def test_unreadable_path_exits_2_after_scanning_the_rest(capsys, leaky: Path) -> None:
    code, out, err = run(capsys, "scan", "/nonexistent/file.txt", str(leaky))
    assert code == 2
    assert err == "devpulse: error: cannot read /nonexistent/file.txt: No such file or directory\n"
    assert out.startswith(f"{leaky}: secret")


def test_a_path_named_after_a_secret_is_said_redacted_on_one_line(capsys, leaky: Path) -> None:
    """`scan $(cat .env)` names files after each word: the error says them redacted."""
    token = make.github_token(RNG)
    code, out, err = run(capsys, "scan", "--json", f"GITHUB_TOKEN={token}", "one\ntwo")
    assert code == 2
    assert token[4:] not in out + err
    assert err.count("\n") == 2  # one line for each path
    assert "cannot read one two: " in err
    files = json.loads(out)["files"]
    assert all(token[4:] not in f["path"] + f["error"] for f in files)


def test_a_rule_that_lists_its_most_findings_says_the_file_may_hold_more(
    capsys, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("".join(f"line {i}: token {make.github_token(RNG)}\n" for i in range(150)))
    code, out, _ = run(capsys, "scan", "--json", str(path))
    assert code == 1
    report = json.loads(out)["files"][0]
    assert sum(f["rule_id"] == "github-token" for f in report["findings"]) == 100
    assert report["truncated"] == ["github-token"]
    code, out, _ = run(capsys, "scan", str(path))
    assert out.startswith(f"{path}: secret (")
    assert "+ finding(s))" in out.splitlines()[0]
    assert "github-token: its first 100 listed; the file may hold more" in out
    few = tmp_path / "few.txt"
    few.write_text(f"token {make.github_token(RNG)}\n")
    code, out, _ = run(capsys, "scan", "--json", str(few))
    assert "truncated" not in json.loads(out)["files"][0]


def test_no_paths_is_a_usage_error(capsys) -> None:
    code, _, err = run(capsys, "scan")
    assert code == 2
    assert err.startswith("devpulse: error: Missing argument")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_file_in_utf16_or_utf32_is_read_not_skipped(capsys, tmp_path: Path, encoding) -> None:
    """Windows PowerShell 5.1's `>` writes UTF-16 (review 26: read as UTF-8, its NULs made it
    binary, skipped, and the scan passed)."""
    wide = tmp_path / "settings.env"
    wide.write_bytes(
        f"AWS_ACCESS_KEY_ID={KEY_ID}\nAWS_SECRET_ACCESS_KEY={KEY_SECRET}\n".encode(encoding)
    )
    code, out, _ = run(capsys, "scan", "--json", str(wide))
    (report,) = json.loads(out)["files"]
    assert (code, report["level"]) == (1, "secret")
    assert [f["rule_id"] for f in report["findings"]] == ["aws-key-pair"]
