"""The scanner's direct route to RE2's spans agrees with google-re2's public API."""

from __future__ import annotations

import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from devpulse.plugins.privacy import spans
from devpulse.plugins.privacy.spans import (
    FIRST_PARSED_BYTES,
    MAX_PARSED_BYTES,
    Reported,
    TwoPass,
    search_parsed,
    search_spans,
)

PATTERNS = [
    re2.compile(rb"(?i)(pass(?:word)?)\s*=\s*(\w+)?"),
    re2.compile(rb"\b(\d{3})-(\d{2})-(\d{4})\b"),
    re2.compile("(é+)|(x)".encode()),
    re2.compile(rb"^|$"),
]


def test_the_fast_route_is_in_use() -> None:
    assert spans.FAST, (
        "google-re2 no longer has _re2.RE2.Match(anchor, buffer, pos, endpos): the privacy "
        "scanner fell back to its public API, about 2 us slower per search; update spans.py"
    )


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, len(PATTERNS) - 1),
    text=st.text(alphabet="password= 123-45-6789éx\n_", max_size=60),
    pos=st.integers(0, 70),
)
def test_spans_agree_with_the_public_api(index: int, text: str, pos: int) -> None:
    regex, data = PATTERNS[index], text.encode()
    pos = min(pos, len(data))
    match = regex.search(data, pos)
    expected = None if match is None else [match.span(i) for i in range(regex.groups + 1)]
    assert search_spans(regex, data, pos) == expected


def test_a_long_match_is_read_by_its_start_and_a_short_one_exactly() -> None:
    pattern = TwoPass.compile(rb"(?P<name>key)=(?P<value>[a-z]+)")
    short = b"x key=abc y"
    start, end, spans = search_parsed(pattern, short, 0) or (0, 0, None)
    assert (start, end) == (2, 9)
    assert spans == search_spans(pattern.parse, short, 0)
    long = b"key=" + b"a" * (4 * MAX_PARSED_BYTES)
    start, end, spans = search_parsed(pattern, long, 0) or (0, 0, None)
    assert (start, end) == (0, len(long))
    assert spans is not None
    assert spans[2] == (4, FIRST_PARSED_BYTES)  # read within its first bytes: cut there
    quoted = TwoPass.compile(rb'(?P<name>key)="(?P<value>[a-z]+)"')
    # a closing quote past the first reading: read again, as far as MAX_PARSED_BYTES
    middling = b'key="' + b"a" * (2 * FIRST_PARSED_BYTES) + b'"'
    found = search_parsed(quoted, middling, 0)
    assert found is not None
    assert found[2] is not None
    assert found[2][2] == (5, len(middling) - 1)
    found = search_parsed(quoted, b'key="' + b"a" * (4 * MAX_PARSED_BYTES) + b'"', 0)
    assert found is not None
    assert found[2] is None


def test_a_match_too_long_to_read_may_be_read_with_its_middle_cut_out() -> None:
    quoted = TwoPass.compile(rb'(?P<name>key)="(?P<value>[a-z]+)"')
    data = b'x key="' + b"a" * (4 * MAX_PARSED_BYTES) + b'" y'
    found = search_parsed(quoted, data, 0, splice=True)
    assert found is not None
    start, end, spans = found
    assert (start, end) == (2, len(data) - 2)
    assert spans == [(2, len(data) - 2), (2, 5), (7, len(data) - 3)]  # the value, whole
    # what does not read as a match once joined has no spans, as before
    sentence = TwoPass.compile(rb'(?P<name>key)="(?P<value>[a-z]+)" [a-z]{40}')
    data = b'key="' + b"a" * (4 * MAX_PARSED_BYTES) + b'" ' + b"b" * 40
    found = search_parsed(sentence, data, 0, splice=True)
    assert found is not None
    assert found[2] is None


# Spans as (start, length, category), and the same list repeated past Reported.FEW, so that
# each question is asked of the linear scan and of the index.
SPANS = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 20), st.sampled_from("ab")))


def _few_and_many(spans: list[tuple[int, int, str]]) -> tuple[Reported, Reported]:
    found = [(s, s + n, c) for s, n, c in spans]
    many = found * (Reported.FEW // max(1, len(found)) + 1)
    return Reported(found), Reported(many)


@settings(max_examples=500, deadline=None)
@given(spans=SPANS, start=st.integers(0, 60), length=st.integers(0, 10))
def test_reported_holds_a_span_as_a_scan_of_every_span_would_say(
    spans: list[tuple[int, int, str]], start: int, length: int
) -> None:
    end = start + length
    expected = any(s <= start and end <= s + n and c == "a" for s, n, c in spans)
    for reported in _few_and_many(spans):
        assert reported.holds(start, end, "a") == expected


@settings(max_examples=500, deadline=None)
@given(spans=SPANS, start=st.integers(0, 60), length=st.integers(1, 10))
def test_reported_overlaps_a_span_as_a_scan_of_every_span_would_say(
    spans: list[tuple[int, int, str]], start: int, length: int
) -> None:
    end = start + length
    expected = any(s < end and start < s + n and c == "a" for s, n, c in spans)
    for reported in _few_and_many(spans):
        assert reported.overlaps(start, end, "a") == expected
