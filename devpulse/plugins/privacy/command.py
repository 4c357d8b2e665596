"""`devpulse scan FILE... | -`: redacted privacy findings per file."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from devpulse.core.exitcodes import ExitCode
from devpulse.core.types import Finding, PrivacyLevel
from devpulse.plugins.privacy.scanner import Scanner

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".tox"}


def scan_command(scanner: Scanner) -> click.Command:
    @click.command("scan")
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def scan(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> None:
        """Scan files (folders recursively, '-' for stdin) for secrets, PII and internal data.

        Findings are redacted: the matched text is never printed.

        Exit codes: 0 everything clean, 1 anything sensitive, 2 usage or config error, or a
        path could not be read.
        """
        reports = [_report(scanner, name, text, error) for name, text, error in _inputs(paths)]
        sensitive = any(r.get("findings") for r in reports)
        failed = any("error" in r for r in reports)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "status": "error" if failed else "ok",
                        "sensitive": sensitive,
                        "files": reports,
                    }
                )
            )
        else:
            for report in reports:
                _print(report)
        code = ExitCode.USAGE if failed else ExitCode.PROBLEM if sensitive else ExitCode.OK
        ctx.exit(int(code))

    return scan


def _inputs(paths: tuple[str, ...]) -> Iterator[tuple[str, str | None, str | None]]:
    """(name, text, error) for each file to scan."""
    for name in paths:
        if name == "-":
            yield "<stdin>", sys.stdin.read(), None
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(
                Path(root) / f
                for root, dirs, names in os.walk(path)
                if not (
                    dirs.__setitem__(slice(None), sorted(d for d in dirs if d not in SKIP_DIRS))
                )
                for f in names
            )
            for file in files:
                yield _read(file)
        else:
            yield _read(path)


def _read(path: Path) -> tuple[str, str | None, str | None]:
    try:
        return str(path), path.read_bytes().decode("utf-8", "replace"), None
    except OSError as exc:
        return str(path), None, exc.strerror or str(exc)


def _report(scanner: Scanner, name: str, text: str | None, error: str | None) -> dict[str, Any]:
    if text is None:
        return {"path": name, "error": error}
    findings = scanner.scan(text)
    level = max((f.level for f in findings), default=PrivacyLevel.PUBLIC)
    return {
        "path": name,
        "level": level.label,
        "findings": [_located(text, f) for f in findings],
    }


def _located(text: str, finding: Finding) -> dict[str, Any]:
    start = finding.span[0]
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return {**finding.as_dict(), "line": line, "column": column}


def _print(report: dict[str, Any]) -> None:
    if "error" in report:
        click.echo(f"{report['path']}: error: {report['error']}")
        return
    findings = report["findings"]
    if not findings:
        click.echo(f"{report['path']}: clean")
        return
    click.echo(f"{report['path']}: {report['level']} ({len(findings)} finding(s))")
    for f in findings:
        click.echo(f"  {f['line']}:{f['column']}  {f['rule_id']}  {f['category']}  {f['preview']}")
