"""`devpulse scan FILE... | -`: redacted privacy findings per file."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from devpulse.commands.inputs import (
    PROBE_BYTES,
    InputError,
    InputTooLarge,
    as_text,
    binary_reason,
    read_bounded,
    read_stdin,
    without_surrogates,
)
from devpulse.core.exitcodes import ExitCode
from devpulse.core.types import Finding, PrivacyLevel
from devpulse.plugins.privacy.redact import redact
from devpulse.plugins.privacy.scanner import MAX_FINDINGS_PER_RULE, Scanner

# Folders a recursive scan never enters: version control, dependencies and caches, which
# hold other people's code and test keys, not yours. A folder with a `pyvenv.cfg` is a
# virtualenv whatever its name.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)

SYMLINKED_DIR = "a symlink to a folder: not followed"


@dataclass(frozen=True, slots=True)
class Source:
    """One input: its text, or why it was skipped, or why it could not be read."""

    name: str
    text: str | None = None
    skipped: str | None = None
    error: str | None = None


def scan_command(scanner: Scanner, max_bytes: int) -> click.Command:
    @click.command("scan")
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def scan(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> None:
        """Scan files (folders recursively, '-' for stdin) for secrets, PII and internal data.

        Binary files (NUL bytes in the first 8 KB) are skipped and listed as skipped; text
        that is not UTF-8 is read with replacement characters, as a prompt is. Folders skip
        version control, virtualenvs, node_modules and caches, and do not follow a symlink to a
        folder (it is listed as skipped; scan its target by name). Each file may hold at most
        input.max_bytes. Findings are redacted: the matched text is never printed. A rule
        lists at most its first 100 findings in a file; one that reaches 100 is named under
        "truncated" (--json) or on a line of its own, as the file may hold more.

        A file or folder that cannot be read (permission denied) is reported as an error
        entry with its reason, on stderr and in the --json document's "files", and the rest
        is still scanned and reported.

        Exit codes: 0 everything scanned clean (or nothing to scan), 1 anything sensitive,
        2 usage or config error, or a path could not be read (the scan is incomplete: this
        wins over 1, and the findings made are still reported).
        """
        # People see each file's report as it is made; under --json the one document comes
        # at the end, so a long scan says on stderr how far it has got.
        progress = Progress() if as_json else None
        reports = []
        for source in _inputs(paths, max_bytes):
            reports.append(_report(scanner, source))
            _print(reports[-1], as_json)
            if progress is not None:
                progress.step(len(source.text or ""))
        if progress is not None:
            progress.close()
        sensitive = any(r.get("findings") for r in reports)
        failed = any("error" in r for r in reports)
        scanned = sum("findings" in r for r in reports)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "status": "error" if failed else "ok",
                        "sensitive": sensitive,
                        "scanned": scanned,
                        "files": reports,
                    }
                )
            )
        if not scanned and not failed:
            skipped = len(reports)
            click.echo(
                "devpulse: no files scanned" + (f" ({skipped} skipped)" if skipped else ""),
                err=True,
            )
        code = ExitCode.USAGE if failed else ExitCode.PROBLEM if sensitive else ExitCode.OK
        ctx.exit(int(code))

    return scan


class Progress:
    """How far a long scan has got, on stderr: on a terminal one line rewritten in place
    every TERMINAL_EVERY_S, elsewhere (a log) one line every LOG_EVERY_S; nothing at all
    for a scan that ends sooner."""

    TERMINAL_EVERY_S = 0.25
    LOG_EVERY_S = 10.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.terminal = sys.stderr is not None and sys.stderr.isatty()
        self.every = self.TERMINAL_EVERY_S if self.terminal else self.LOG_EVERY_S
        self.files = self.chars = 0
        self.next = clock() + self.every
        self.shown = False

    def step(self, chars: int) -> None:
        self.files += 1
        self.chars += chars
        now = self.clock()
        if now < self.next:
            return
        self.next = now + self.every
        line = f"devpulse: scanning: {self.files} files, {self.chars / 1e6:.1f} MB of text so far"
        if self.terminal:
            click.echo(f"\r{line}\x1b[K", err=True, nl=False)
        else:
            click.echo(line, err=True)
        self.shown = True

    def close(self) -> None:
        if self.terminal and self.shown:
            click.echo("\r\x1b[K", err=True, nl=False)  # the line is cleared for what follows


def _inputs(paths: tuple[str, ...], max_bytes: int) -> Iterator[Source]:
    """Each file to scan, read or judged."""
    for name in paths:
        if name == "-":
            yield _read_stdin(max_bytes)
            continue
        if not name:  # Path("") is the current folder: never scan that unasked
            yield Source("", error="cannot read '': an empty path")
            continue
        path = Path(name)
        try:
            is_dir = path.is_dir()
        except OSError as exc:  # a parent folder that may not be searched: EACCES
            yield _unreadable(path, exc)
            continue
        if not is_dir:
            yield _read(path, max_bytes)
            continue
        files, unreadable = _walk(path)
        yield from unreadable
        for file in files:
            yield _file(file, max_bytes)


def _file(path: Path, max_bytes: int) -> Source:
    """A file found in a folder: read, or skipped if it is not a regular file (a pipe, a
    device, a symlink to a folder)."""
    try:
        regular = path.is_file()
        linked_dir = not regular and path.is_symlink() and path.is_dir()
    except OSError as exc:  # a folder listed but not searchable (r-- without x): EACCES
        return _unreadable(path, exc)
    if regular:
        return _read(path, max_bytes)
    if linked_dir:
        # Not followed: it may lead out of the tree, or back into it. Listed, so that a scan
        # that left it out never reads as complete.
        return Source(_shown(path), skipped=SYMLINKED_DIR)
    # a pipe or device inside a folder could block or never end
    return Source(_shown(path), skipped="not a regular file")


def _walk(root: Path) -> tuple[list[Path], list[Source]]:
    """The files under `root`, sorted, outside the folders a scan skips; and the folders
    that could not be listed or looked into, as errors (a scan never silently leaves part
    out: one unreadable folder is one error entry, and the rest is still scanned)."""
    found: list[Path] = []
    unreadable: list[Source] = []

    def failed(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        unreadable.append(_unreadable(where, exc))

    def entered(path: Path) -> bool:
        try:
            if path.name in SKIP_DIRS:
                return False
            if path.is_symlink():  # listed by `_file` as skipped, not followed
                found.append(path)
                return False
            return not _skipped_dir(path)
        except OSError as exc:  # its pyvenv.cfg cannot be looked for: the folder is unreadable
            unreadable.append(_unreadable(path, exc))
            return False

    for folder, dirs, names in os.walk(root, onerror=failed):
        dirs[:] = sorted(d for d in dirs if entered(Path(folder) / d))
        found.extend(Path(folder) / n for n in names)
    return sorted(found), unreadable


def _skipped_dir(path: Path) -> bool:
    """A folder a scan never enters. Raises OSError when it cannot be looked into."""
    return path.name in SKIP_DIRS or (path / "pyvenv.cfg").is_file()


def _unreadable(path: Path, exc: OSError) -> Source:
    """`path` as an error entry: it, not a file inside it that the error may name."""
    where = _shown(path)
    return Source(where, error=f"cannot read {where}: {exc.strerror or exc}")


def _read(path: Path, max_bytes: int) -> Source:
    """A file's text, unless it is binary, too large or unreadable; never more than read."""
    name = _shown(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(PROBE_BYTES)
            reason = binary_reason(head)
            if reason is not None:
                return Source(name, skipped=reason)
            data = head + read_bounded(fh, max_bytes, name, already=len(head))
    except InputTooLarge as exc:
        return Source(name, error=str(exc))
    except OSError as exc:
        return Source(name, error=f"cannot read {name}: {exc.strerror or exc}")
    # Text is read as a prompt is (`as_text`): UTF-16 and UTF-32 as such, and in an
    # encoding that says nothing of itself (Latin-1, Windows-1252) the bytes that are not
    # UTF-8 become replacement characters, and the secrets around them are still found
    # (skipped, such a file passed for clean).
    return Source(name, text=as_text(data))


def _read_stdin(max_bytes: int) -> Source:
    """Stdin's text, decoded with replacement characters as a prompt from stdin is; unless
    it is binary (NUL bytes)."""
    try:
        text = read_stdin(max_bytes)
    except InputError as exc:
        return Source("<stdin>", error=str(exc))
    reason = binary_reason(text[:PROBE_BYTES].encode())
    if reason is not None:
        return Source("<stdin>", skipped=reason)
    return Source("<stdin>", text=text)


def _shown(path: Path) -> str:
    """A path as printable text: bytes of the name that are not UTF-8 shown as U+FFFD."""
    return without_surrogates(str(path))


def _report(scanner: Scanner, source: Source) -> dict[str, Any]:
    """A file's report. Its name and an error's reason are what the command line gave
    (`scan $(cat .env)` names files after a secret): said on one line, with any secret in
    them redacted. A rule lists its first MAX_FINDINGS_PER_RULE findings in a file: one that
    reaches that many is named under "truncated", as it may hold more."""
    name = _said(scanner, source.name)
    if source.error is not None:
        return {"path": name, "error": _said(scanner, source.error)}
    if source.text is None:
        return {"path": name, "skipped": source.skipped}
    findings = scanner.scan(source.text)
    level = max((f.level for f in findings), default=PrivacyLevel.PUBLIC)
    report = {
        "path": name,
        "level": level.label,
        "findings": [_located(source.text, f) for f in findings],
    }
    counts = Counter(f.rule_id for f in findings)
    truncated = sorted(rule for rule, n in counts.items() if n >= MAX_FINDINGS_PER_RULE)
    if truncated:
        report["truncated"] = truncated
    return report


def _said(scanner: Scanner, text: str) -> str:
    """`text` on one line (its line breaks as blanks), any secret the command's own
    `scanner` finds in it redacted (no second scanner built for a path's word `token`)."""
    return redact(" ".join(text.splitlines()), scanner)


def _located(text: str, finding: Finding) -> dict[str, Any]:
    start = finding.span[0]
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return {**finding.as_dict(), "line": line, "column": column}


def _print(report: dict[str, Any], as_json: bool) -> None:
    """A report for people; an error goes to stderr as one line, with --json too."""
    if "error" in report:
        click.echo(f"devpulse: error: {report['error']}", err=True)
        return
    if as_json:
        return
    if "skipped" in report:
        click.echo(f"{report['path']}: skipped ({report['skipped']})")
        return
    findings = report["findings"]
    if not findings:
        click.echo(f"{report['path']}: clean")
        return
    more = "+" if "truncated" in report else ""
    click.echo(f"{report['path']}: {report['level']} ({len(findings)}{more} finding(s))")
    for f in findings:
        click.echo(f"  {f['line']}:{f['column']}  {f['rule_id']}  {f['category']}  {f['preview']}")
    for rule in report.get("truncated", ()):
        click.echo(f"  {rule}: its first {MAX_FINDINGS_PER_RULE} listed; the file may hold more")
