"""Property-based: a planted secret is found anywhere, and no input breaks the scanner."""

from __future__ import annotations

import itertools
import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devpulse import PrivacyLevel, config_from_mapping
from devpulse.plugins.privacy import Scanner, plain
from devpulse.plugins.privacy import scanner as scanner_module
from devpulse.plugins.privacy.checks import PUBLIC_PREFIX, has_alnum
from devpulse.plugins.privacy.plain import (
    _AS_READ,
    _ESCAPED,
    plain_text,
    string_lines,
    unescaped,
    url_decoded,
    without_gutters,
)
from devpulse.plugins.privacy.readers import read_all
from tests.plugins.privacy import secrets_factory as make
from tests.support import router_with

SCANNER = Scanner(config_from_mapping({}).privacy)
ROUTER = router_with()


# A secret of each standalone kind, planted between two texts.
PLANTED = {
    "before": make.AROUND,
    "after": make.AROUND,
    "kind": st.sampled_from(make.STANDALONE),
    "seed": st.integers(0, 2**32),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**PLANTED)
def test_a_planted_secret_is_found_anywhere(before, after, kind, seed) -> None:
    secret = kind(random.Random(seed))
    text = f"{before}\n{secret}\n{after}"
    start, end = len(before) + 1, len(before) + 1 + len(secret)
    findings = SCANNER.scan(text)
    covering = [
        f for f in findings if f.category == "secret" and f.span[0] < end and f.span[1] > start
    ]
    assert covering, f"{kind.__name__} not found"
    for finding in findings:
        shown = finding.preview.split("…")[0]
        assert shown == "" or PUBLIC_PREFIX.fullmatch(shown), finding.preview


@settings(max_examples=200, deadline=None)
@given(**PLANTED)
def test_a_planted_secret_always_routes_local(before, after, kind, seed) -> None:
    prompt = f"{before}\nDesign a multi-step plan using {kind(random.Random(seed))}\n{after}"
    decision = ROUTER.route(prompt)
    assert decision.classification is not None
    assert decision.classification.privacy_level is PrivacyLevel.SECRET
    assert decision.side.value == "local"


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=2000) | st.binary(max_size=2000).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_never_crashes_and_spans_are_valid(text) -> None:
    for finding in SCANNER.scan(text):
        start, end = finding.span
        assert 0 <= start < end <= len(text)
        assert finding.preview.endswith(" chars]")


@settings(max_examples=100, deadline=None)
@given(code=st.text(alphabet=st.sampled_from(list("abc_=:'\"()\n [],.#xyz0189")), max_size=300))
def test_arbitrary_code_fences_never_crash(code) -> None:
    SCANNER.scan(f"```python\n{code}\n```")
    SCANNER.scan(code)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab_.-!'\"é1Z \u2603\u0663\u00b2\x00"), max_size=12)
    | st.text()
)
def test_has_alnum_agrees_with_isalnum(text: str) -> None:
    assert has_alnum(text) == any(map(str.isalnum, text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**PLANTED, depth=st.integers(1, 2))
def test_a_planted_secret_is_found_in_an_escaped_document(before, after, kind, seed, depth) -> None:
    """A tool's JSON result that holds the text as a string (in a string, at depth 2)."""
    secret = kind(random.Random(seed))
    text = f"{before}\n{secret}\n{after}"
    for _ in range(depth):
        text = json.dumps({"content": text})
    findings = SCANNER.scan(text)
    assert any(f.category == "secret" for f in findings), f"{kind.__name__} not found"


CORPUS_TEXTS = [
    json.loads(line)["text"]
    for line in (Path(__file__).resolve().parents[2] / "data/privacy/corpus.jsonl").open()
]


# What only a long_prefilter rule finds, each in its own words.
LONG_RULE_TEXTS = [
    "list 8f14e45fceea167a5a36dedd4bea2543-us14",
    "sq0atp-Xm4Rt9Lq2Vw8Kp3Zn7Bc5H",
    "sqlcmd -S db01 -U sa -P Qm8xRt2Vw9Lp3Kz -Q 'select 1'",
    "define('DB_PASSWORD', 'Qm8xRt2Vw9Lp3Kz');",
    "born on 1984-03-12",
    "resident number 880321-1362416",
    "call me on 139-1234-5678 tomorrow",
    'variable "db_password" {\n  default = "Qm8xRt2Vw9Lp3Kz"\n}',
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(CORPUS_TEXTS) - 1), min_size=20, max_size=60),
    planted=st.lists(st.sampled_from(LONG_RULE_TEXTS), max_size=3),
    kind=st.sampled_from(make.STANDALONE),
    seed=st.integers(0, 2**32),
    where=st.floats(0, 1),
)
def test_a_long_text_reads_the_same_with_or_without_its_long_prefilter(
    picks, planted, kind, seed, where
) -> None:
    """The long_prefilter set only spares rules that would find nothing: a long text of the
    corpus's texts (secrets, personal data, near misses) with a secret and what only those
    rules find planted in it has the same findings as when every enabled rule reads it."""
    parts = [CORPUS_TEXTS[i] for i in picks]
    for text in (kind(random.Random(seed)), *planted):
        parts.insert(int(where * len(parts)), text)
    text = "\n".join(parts)
    text = (text + "\n") * (scanner_module.LONG_TEXT_BYTES // len(text) + 1)
    with_set = SCANNER.scan(text)
    with mock.patch.object(scanner_module, "LONG_TEXT_BYTES", len(text) + 1):
        assert SCANNER.scan(text) == with_set


PLAIN_ALPHABET = st.sampled_from(
    list("ab=: \n\u00a0\u2009\u200b\u00ad\ufeff\uff21\uff10\u3000«»“”‘’『」")
)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=PLAIN_ALPHABET, max_size=300))
def test_every_character_read_plain_comes_from_the_text(text) -> None:
    read, origins = plain_text(text)
    if origins is None:
        assert len(read) == len(text)
        return
    for i, char in enumerate(read):
        assert text[origins.index(i)].translate(_AS_READ) == char


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=PLAIN_ALPHABET, max_size=300), replaces=st.sampled_from([0, 16]))
def test_text_full_of_hiding_characters_reads_as_translated(text, replaces) -> None:
    """Past MAX_RUNS runs the text is read whole (`plain._dense`), invisible characters
    dropped first, the others replaced one by one or, past MAX_REPLACES of them, translated:
    the same reading as one `str.translate`, each character traced back."""
    with (
        mock.patch.object(plain, "MAX_RUNS", 0),
        mock.patch.object(plain, "MAX_REPLACES", replaces),
    ):
        read, origins = plain_text(text)
    assert read == text.translate(_AS_READ)
    for i, char in enumerate(read):
        at = i if origins is None else origins.index(i)
        assert text[at].translate(_AS_READ) == char


ESCAPED_ALPHABET = st.sampled_from(list('ab="\\/\n\t: {}\u00e9'))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.text(alphabet=ESCAPED_ALPHABET, max_size=40), max_size=6))
def test_every_character_read_unescaped_comes_from_its_escape(values) -> None:
    """Also `\\u00e9` (json.dumps's é), which is left as it is, and Windows paths' `\\d`."""
    text = "\n".join(json.dumps({"v": json.dumps({"k": v + "C:\\dir"})}) for v in values)
    view = unescaped(text)
    if view is None:
        assert '\\"' not in text
        return
    read, origins = view
    for i, char in enumerate(read):
        at = origins.index(i)
        if text[at] != char:  # an escape's letter, its backslash dropped
            assert text[at - 1] == "\\"
            assert json.loads(f'"\\{text[at]}"') == char


# What marks a line as URL-encoded: an escape of punctuation a URL reserves or quotes.
_RESERVED = frozenset(
    map(chr, [*range(0x20, 0x30), *range(0x3A, 0x41), 0x5B, 0x5D, 0x7B, 0x7C, 0x7D])
)


def _read_by_hand(
    text: str,
    budget: int,
    marked: Callable[[str], bool],
    escape_at: Callable[[int, int], tuple[str, int] | None],
) -> tuple[str, list[int]] | None:
    """A reading one character at a time: the lines that `marked` says hold an escape, one
    after another, each escape (`escape_at(i, end)`: its character and width, or None) read
    as its character, which came from the escape's last character, at most `budget` of them;
    and where each character came from."""
    read: list[str] = []
    came_from: list[int] = []
    start = 0
    for line in text.split("\n"):
        end = start + len(line)
        if marked(line):
            if read:
                read.append("\n")
                came_from.append(came_from[-1] + 1)  # the line break after the last one
            i = start
            while i < end:
                found = escape_at(i, end) if budget else None
                if found is not None:
                    read.append(found[0])
                    came_from.append(i + found[1] - 1)
                    budget -= 1
                    i += found[1]
                else:
                    read.append(text[i])
                    came_from.append(i)
                    i += 1
        start = end + 1
    return ("".join(read), came_from) if read else None


def _assert_reads_as(view: tuple[str, Any] | None, expected: tuple[str, list[int]] | None) -> None:
    if expected is None:
        assert view is None
        return
    assert view is not None
    read, origins = view
    assert read == expected[0]
    assert [origins.index(i) for i in range(len(read))] == expected[1]


def _url_decoded_by_hand(text: str, budget: int) -> tuple[str, list[int]] | None:
    def escape_at(i: int, end: int) -> tuple[str, int] | None:
        char = _escape_in(text[:end], i)
        return (char, 3) if char is not None and " " <= char <= "~" else None

    def marked(line: str) -> bool:
        return any(
            (found := _escape_in(line, i)) is not None and found in _RESERVED
            for i in range(len(line))
        )

    return _read_by_hand(text, budget, marked, escape_at)


def _escape_in(line: str, i: int) -> str | None:
    """The character that a percent escape at `line[i]` stands for, or None."""
    digits = line[i + 1 : i + 3]
    if line[i] != "%" or len(digits) != 2 or not all(c in string.hexdigits for c in digits):
        return None
    return chr(int(digits, 16))


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("%%%2345670BbCdFz\n\u00e9")), max_size=80),
    budget=st.sampled_from([0, 1, 2, 5, 50_000]),
)
@example(text="bob%40mail.se", budget=50_000)  # the only mark: the e-mail's at sign
@example(text="a%7Cb%41\n%C3%A9%7F\n%2B1%20", budget=3)
def test_url_decoded_reads_as_one_escape_at_a_time(text, budget) -> None:
    """A line with an escape of a reserved character (%40, %2B, %3A) is read with every
    escape of printable ASCII read, one character for three; %C3 and %7F stay as they are."""
    with mock.patch.object(plain, "MAX_URL_ESCAPES", budget):
        view = url_decoded(text)
    _assert_reads_as(view, _url_decoded_by_hand(text, budget))


@settings(max_examples=300, deadline=None)
@given(
    arrays=st.lists(
        st.lists(st.text(alphabet=st.sampled_from(list('ab é"\\\t/:=')), max_size=10), max_size=5),
        min_size=1,
        max_size=3,
    ),
    indent=st.sampled_from(["", " ", "       ", "\t"]),
)
@example(arrays=[["a", "b"]], indent=" ")
@example(arrays=[["a\\", "\\n"], ["x", "y"]], indent="")
def test_string_lines_reads_each_array_of_lines_as_its_lines(arrays, indent) -> None:
    """Jupyter's arrays of lines (one JSON string a line, each but the last ending in an
    escaped line break) are read as the lines they hold, an array's lines one after another
    and STRETCH_BREAK between two arrays; each line read maps back onto its JSON form."""
    parts = ['{\n "cells": [\n']
    for lines in arrays:
        strings = [json.dumps(line + "\n", ensure_ascii=False) for line in lines[:-1]]
        strings += [json.dumps(line, ensure_ascii=False) for line in lines[-1:]]
        parts.append('  "source": [\n')
        parts.append(",\n".join(f"{indent}{s}" for s in strings) + "\n  ],\n")
    text = "".join(parts) + " ]\n}\n"
    read_arrays = [lines for lines in arrays if len(lines) >= 2]
    view = string_lines(text)
    if not read_arrays:
        assert view is None
        return
    assert view is not None
    read, origins = view
    assert read == ("\n" + plain.STRETCH_BREAK).join("\n".join(lines) for lines in read_arrays)
    at = 0
    for i, lines in enumerate(read_arrays):
        for j, line in enumerate(lines):
            if line:
                start, end = origins.span((at, at + len(line)), len(text))
                assert text[start:end] == json.dumps(line, ensure_ascii=False)[1:-1]
            at += len(line) + (1 if j < len(lines) - 1 else 0)
        at += 1 + len(plain.STRETCH_BREAK) if i < len(read_arrays) - 1 else 0


@pytest.mark.parametrize(
    "text",
    [
        '["one\\n",\n"two\\n"]',  # two strings on one line are no lines of strings
        '"a",\n"b"\n',  # no escaped line break: a list of words, not a text's lines
        '"C:\\\\n",\n"D:\\\\n"\n',  # an escaped backslash, then an n
        '"key": "x\\n",\n"other": "y\\n"\n',  # a mapping's entries
    ],
)
def test_string_lines_reads_no_other_json(text) -> None:
    assert string_lines(text) is None


@settings(max_examples=500, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from(["", " ", "     ", "x"]),
            st.sampled_from(["", "1", "42", "1234567", "12345678"]),
            st.sampled_from(["", "\t", "→", "   │ ", " │", ":", " "]),
            st.text(alphabet=st.sampled_from(list("ab1\t →│")), max_size=8).map("a".__add__),
        ),
        max_size=12,
    )
)
@example(lines=[("     ", "1", "\t", "a"), ("     ", "2", "\t", "b")])
@example(lines=[("", "1", "\t", "a"), *[("", "", "", "b")] * 5, ("", "2", "\t", "c")] * 2)
def test_without_gutters_takes_off_only_a_tools_line_numbers(lines) -> None:
    """Each line is read without its number where a tool wrote one (blanks, digits, then a
    tab, an arrow, or blanks and a bar), from the first such line to the last, less the
    lines between two that lie more than MAX_GUTTER_GAP apart; every other character of
    what is read stays, and comes from where it stood."""
    text = "".join(f"{lead}{number}{mark}{rest}\n" for lead, number, mark, rest in lines)
    numbered = [
        bool(number)
        and len(lead) <= 10
        and len(number) <= 7
        and not lead.strip()
        and mark in ("\t", "→", "   │ ", " │")
        for lead, number, mark, _ in lines
    ]
    view = without_gutters(text)
    if sum(numbered) < 2:
        assert view is None
        return
    assert view is not None
    read, origins = view
    at_numbers = [i for i, cut in enumerate(numbered) if cut]
    kept_lines = set(at_numbers)
    breaks = set()  # the lines left out first, a STRETCH_BREAK read in their place
    for before, after in itertools.pairwise(at_numbers):
        if after - before - 1 <= plain.MAX_GUTTER_GAP:
            kept_lines.update(range(before, after))
        else:
            breaks.add(before + 1)
    expected, kept = "", []
    at = 0
    for i, ((lead, number, mark, rest), cut) in enumerate(zip(lines, numbered, strict=True)):
        line = f"{lead}{number}{mark}{rest}\n"
        skip = len(lead) + len(number) + len(mark) if cut else 0
        if i in breaks:
            expected += plain.STRETCH_BREAK
            kept += range(at, at + len(plain.STRETCH_BREAK))
        if i in kept_lines:
            expected += line[skip:]
            kept += range(at + skip, at + len(line))
        at += len(line)
    assert read == expected
    assert [origins.index(i) for i in range(len(read))] == kept


def test_a_reading_stops_after_its_most_lines() -> None:
    """Each stretch of escaped lines costs Python steps: past MAX_STRETCHES stretches (and
    MAX_URL_LINES encoded lines) the rest of the text is left to its first reading."""
    with mock.patch.object(plain, "MAX_STRETCHES", 3):
        view = unescaped('a\\"b\nplain\n' * 10)
    assert view is not None
    assert view[0] == 'a"b\na"b\na"b'
    with mock.patch.object(plain, "MAX_STRETCHES", 3):
        view = unescaped('\u00e9\\"b\nplain\n' * 10)  # not ASCII: read line by line
    assert view is not None
    assert view[0].count("\n") == 2
    with mock.patch.object(plain, "MAX_URL_LINES", 2):
        view = url_decoded("a%40b\n" * 5)
    assert view is not None
    assert view[0] == "a@b\na@b"


def _unescaped_by_hand(text: str, budget: int) -> tuple[str, list[int]] | None:
    def escape_at(i: int, end: int) -> tuple[str, int] | None:
        if text[i] == "\\" and i + 1 < end and text[i + 1] in _ESCAPED:
            return _ESCAPED[text[i + 1]], 2
        return None

    def marked(line: str) -> bool:
        return any(a == "\\" and b in '"/nrt' for a, b in itertools.pairwise(line))

    return _read_by_hand(text, budget, marked, escape_at)


@settings(max_examples=500, deadline=None)
@given(
    # ASCII text is searched by RE2, other text line by line: the same reading both ways
    text=st.text(alphabet=st.sampled_from(list("ab\\\"/nrt'\n")), max_size=80)
    | st.text(alphabet=st.sampled_from(list("ab\\\"/nrt'\n\u00e9\ud800")), max_size=80),
    budget=st.sampled_from([0, 1, 2, 5, 50_000]),
)
def test_unescaped_reads_as_one_escape_at_a_time(text, budget) -> None:
    """Lines read a stretch at a time, split at every escape at once, read as they would be
    one character at a time; past MAX_ESCAPES escapes, the rest as they are."""
    with mock.patch.object(plain, "MAX_ESCAPES", budget):
        view = unescaped(text)
    _assert_reads_as(view, _unescaped_by_hand(text, budget))


# Pieces of the commands that store a secret, and of what breaks them up.
_KEY = "q8xb2lm9tz4rw7kp1vn6hs3jd5fg0ycx"
_COMMAND_PIECES = [
    *("kubectl create secret generic app", "gh secret set X", "vault kv put p", "fly secrets set"),
    *(" --from-literal=", " --body ", " -b", " --value=", " k=", " signal=", "=", _KEY),
    *(" ", "'", '"', "\\\n", "\n", ";", " #", "$X", "@f", "-", "é", ")"),
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_COMMAND_PIECES), max_size=14).map("".join))
@example("gh secret set X --body '='kubectl create secret generic app")  # a quote, glued on
def test_every_value_a_reader_reports_is_the_text_at_its_span(text: str) -> None:
    data = text.encode()
    for found in read_all(data):
        assert data[found.start : found.end].decode() == found.value
        assert found.value
        if found.rule_id == "secret-command-value":  # no quote, expansion or file
            assert not found.value.startswith(("'", '"', "$", "@"))


@given(
    st.sampled_from(
        ["kubectl create secret generic app --from-literal=signal=", "fly secrets set k="]
    ),
    st.sampled_from(["", "'", '"']),
    st.sampled_from(["", " --dry-run", " \\\n  --namespace prod", "; echo done"]),
)
def test_a_key_given_to_a_secret_command_is_found_however_quoted(
    command: str, quote: str, after: str
) -> None:
    data = f"{command}{quote}{_KEY}{quote}{after}".encode()
    assert [f.value for f in read_all(data) if f.rule_id == "secret-command-value"] == [_KEY]
