"""No input stalls classification: pathological inputs for every pattern family finish.

DESIGN.md's "Bounded" invariant: untrusted text only meets RE2, or patterns that cannot
backtrack. A regex stuck in a backtracking engine cannot be interrupted from Python, so the
inputs (tests/plugins/privacy/pathological.py) run in a subprocess, killed at a ceiling far
above their cost (4 s on a quiet 2-core machine, 2.5 of them importing devpulse; 8 s on a
slower one), and far below what one backtracking pattern costs (27 s for 62 characters). This
asserts that they finish, never how fast: bench/privacy_bench.py reports the times.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from devpulse.plugins.privacy.checks import CODE_EXPRESSION, REFERENCE
from devpulse.plugins.privacy.pii import NON_PERSONAL_EMAIL
from devpulse.plugins.privacy.rules import packaged_rules
from devpulse.plugins.privacy.spans import search_text
from tests.plugins.privacy import pathological

ROOT = Path(__file__).resolve().parents[3]
CEILING_S = 60


def test_pathological_inputs_all_finish() -> None:
    command = [sys.executable, "-m", "tests.plugins.privacy.pathological"]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=CEILING_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""  # bytes here, whatever `text` says
        lines = (out.decode("utf-8", "replace") if isinstance(out, bytes) else out).splitlines()
        pytest.fail(f"still running after {CEILING_S} s, on {lines[-1] if lines else 'import'}")
    assert done.returncode == 0, done.stderr[-3000:]
    finished = [line for line in done.stdout.splitlines() if line.startswith("done: ")]
    assert len(finished) == len(pathological.GROUPS), done.stdout[-3000:]


def test_every_trigger_rule_has_a_lead_in_that_runs_it() -> None:
    """Rules without keywords run only when their trigger matches: the inputs must pass it."""
    triggered = {r.id: r for r in packaged_rules() if r.trigger and not r.keywords}
    assert set(pathological.TRIGGER_LEADS) == set(triggered)
    options = re2.Options()
    options.case_sensitive = False
    for rule_id, leads in pathological.TRIGGER_LEADS.items():
        trigger = re2.compile(triggered[rule_id].trigger, options)
        for lead, closer in leads:
            texts = (lead + run + closer for _, run in pathological.runs(64))
            assert any(trigger.search(text) for text in texts), (rule_id, lead)


# The patterns as they were on Python's `re`: the RE2 ones must mean the same (on inputs
# short enough that the old ones cannot take long).
OLD_SEGMENT = r"(?:[a-z_][a-z0-9_]*|[A-Z_][A-Z0-9_]*|[A-Z][a-z]+(?:[A-Z][a-z]+)*)"
OLD = {
    "code expression": re.compile(
        # stop 32: optional chaining (?.) and TypeScript's non-null assertion (!.) are code;
        # stop 43: so is the assertion at the end after a lower-case name and two members
        rf"^{OLD_SEGMENT}(?:[?!]?\.{OLD_SEGMENT})+$|^[a-z_$][A-Za-z0-9_$]*(?:\.{OLD_SEGMENT}){{2,}}!$"
        r"|^[A-Za-z_][\w.]*\(|^[a-z]+(?:[_-][a-z]+)+$"
    ),
    "reference": re.compile(
        r"^[a-z][a-z0-9+.-]*://|^(?:/|\./|\.\./|~/)[\w.-]+/|^\$(?:\{|\(|[A-Za-z_]\w*$)|^ENC\["
        r"|^#\{|^\{[A-Za-z_][\w.]*\}$|^:[A-Za-z_]\w*$|^@@[A-Za-z_]\w*$|^@[A-Za-z_]\w*\.[\w.]+$"
        r"|^arn:aws[a-z-]*:[a-z0-9-]+:"
        # stop 23: PowerShell's $env:X, cmd.exe's %X% and !X! named in one case
        r"|^\$env:[A-Za-z_]\w*$|^%(?:[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*)%$"
        r"|^!(?:[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*)!$"
    ),
    "non-personal email": re.compile(
        r"(?i)^(?:git|no-?reply|donotreply|mailer-daemon|postmaster|hello|info|support|contact"
        r"|sales|billing|ops|ci|admin|root|team|digest|newsletter|notifications?|alerts?"
        r"|security|abuse|webmaster|bot|builds?)@|@(?:[\w-]+\.)*(?:gserviceaccount\.com"
        r"|users\.noreply\.github\.com|noreply\.github\.com)$"
    ),
}
NEW = {
    "code expression": CODE_EXPRESSION,
    "reference": REFERENCE,
    "non-personal email": NON_PERSONAL_EMAIL,
}
PIECES = [
    *"aAzZ_09.-/:$({[\né!@ ~%",
    *(
        "Ab",
        "os",
        "ENC[",
        "#{",
        "op://",
        "$env:",
        "git@",
        "@x.",
        "gserviceaccount.com",
        "noreply.github.com",
    ),
]


@pytest.mark.parametrize("name", sorted(OLD))
@settings(max_examples=600, deadline=None)
@given(text=st.lists(st.sampled_from(PIECES), max_size=10).map("".join))
def test_the_rewritten_patterns_keep_their_meaning(name: str, text: str) -> None:
    """What the `re` patterns matched, their RE2 rewrites match. Later stops widened them
    (subscripts by name after a dotted path, `$$VAR`, `vault:` paths): those texts match the
    new ones only, so the check goes one way."""
    if OLD[name].search(text) is not None:
        assert search_text(NEW[name], text) is not None


@pytest.mark.parametrize("segments", [3, 26])
def test_the_reported_prompt_is_read_as_code_whatever_its_length(segments: int) -> None:
    # Its "!" at the end reads as TypeScript's non-null assertion since stop 43 (a lower-case
    # name, then two members or more); two do not.
    assert search_text(CODE_EXPRESSION, "_." * segments + "_!!") is None
    assert search_text(CODE_EXPRESSION, "_." * segments + "_!") is not None
    assert search_text(CODE_EXPRESSION, "_." * segments + "_") is not None
