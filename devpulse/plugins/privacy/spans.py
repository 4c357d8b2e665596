"""Match spans straight from RE2, without building match objects.

google-re2's public `search()` wraps every call in a generator and a `_Match` object, and on
a 2 KB prompt that wrapping costs more than the search itself (about 3.2 us against 1.3 us
on the bench machine). The scanner's inner loop needs only the spans of each match, so it
asks the binding underneath for them: `_re2.RE2.Match(anchor, buffer, pos, endpos)`, which
the public API itself calls for bytes and which google-re2 has kept since 1.0. Should a
release drop it, `search_spans` falls back to the public API and
tests/plugins/privacy/test_spans.py fails, so that the slower path is noticed.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

import re2

Spans = list[tuple[int, int]]  # the whole match, then each group; (-1, -1) for a group unset

try:
    _UNANCHORED = re2._Anchor.UNANCHORED
    _ANCHOR_START = re2._Anchor.ANCHOR_START
    re2.compile(b"probe")._regexp.Match(_UNANCHORED, b"probe", 0, 5)
    FAST = True
except (AttributeError, TypeError):  # pragma: no cover - only with a changed google-re2
    FAST = False


def search_spans(
    regex: re2._Regexp, data: bytes, pos: int, endpos: int | None = None
) -> Spans | None:
    """The spans of the first match of `regex` in `data[pos:endpos]`, or None."""
    end = len(data) if endpos is None else endpos
    if FAST:
        spans: Spans = regex._regexp.Match(_UNANCHORED, data, pos, end)
        return None if spans[0][0] < 0 else spans
    match = regex.search(data, pos, end)  # pragma: no cover - only with a changed google-re2
    return None if match is None else [match.span(i) for i in range(regex.groups + 1)]


def first_set(spans: Spans, groups: Iterable[int]) -> tuple[int, int] | None:
    """The span of the first of `groups` that took part in the match, or None."""
    for group in groups:
        span = spans[group]
        if span[0] >= 0:
            return span
    return None


class PatternSet:
    """Which of several patterns match somewhere in a text, in one RE2 pass over it.

    The set's last pattern matches every text. Should the set's DFA give up (out of memory on
    a long text), its answer lacks that one too, and `matching` says so: the caller then asks
    each pattern alone, or runs everything.
    """

    def __init__(self, patterns: Iterable[str | bytes], *, max_mem: int | None = None) -> None:
        options = re2.Options()
        options.log_errors = False
        if max_mem is not None:  # else RE2's default, 8 MB
            options.max_mem = max_mem
        self._set = re2.Set.SearchSet(options)
        self.size = 0
        for pattern in patterns:
            if self._set.Add(pattern) != self.size:  # pragma: no cover - each compiled alone
                raise ValueError(f"pattern {self.size} is not valid in an RE2 set")
            self.size += 1
        self._set.Add(rb"\A")  # matches every text
        self._set.Compile()

    def matching(self, data: bytes) -> list[int] | None:
        """The indices of the patterns that match `data`, or None if the set gave up."""
        found: list[int] = self._set.Match(data) or []  # the binding answers None for none
        if self.size not in found:
            return None
        found.remove(self.size)  # a new list each call
        return found


def found_in(regex: re2._Regexp, data: bytes) -> bool:
    """Whether `regex` matches anywhere in `data`."""
    return search_spans(regex, data, 0) is not None


def search_text(regex: re2._Regexp, text: str) -> Spans | None:
    """`search_spans` from the start of `text`'s UTF-8 bytes; spans count bytes.

    Lone surrogates (a prompt's JSON may carry them) pass through rather than raise, as
    they do wherever the scanner encodes text.
    """
    return search_spans(regex, text.encode("utf-8", "surrogatepass"), 0)


# RE2 finds where a match lies with its DFAs, linear and fast, then reads the groups with a
# slower engine over the match: a backtracker with a bitmap (BitState) while the match is
# short enough for its bitmap (about 256 K bits over the program's size), else the NFA, a
# few MB/s. A 1 MB quoted value made one reader's search take 200 ms. So a pattern with
# groups is compiled twice: without them to find each match, and with them to read a match
# only when it is this short. Longer ones are read within their first this many bytes.
MAX_PARSED_BYTES = 1024
# A match is read within its first this many bytes first, and within MAX_PARSED_BYTES only if
# that reading fails: a long unquoted value reads as well cut short (the readers cut it at
# 200 bytes anyway), and a flood of such matches then costs a quarter of the reading.
FIRST_PARSED_BYTES = 256
# A match too long for either reading (a private key or a token of thousands of bytes, quoted
# in JSON) may be read once more with its middle cut out: its first FIRST_PARSED_BYTES and
# its last SPLICED_TAIL_BYTES, joined. What ends a value (a closing quote, `</`) is short.
SPLICED_TAIL_BYTES = 32
_NAMED_GROUP = re2.compile(rb"\(\?P<\w+>")


@dataclass(frozen=True, slots=True)
class TwoPass:
    """A pattern with groups, and the same pattern with its groups made non-capturing."""

    find: re2._Regexp
    parse: re2._Regexp

    @classmethod
    def compile(cls, pattern: bytes) -> TwoPass:
        """`pattern` may name its groups, `(?P<name>...)`, but not number them."""
        bare = _NAMED_GROUP.sub(b"(?:", pattern)
        find = re2.compile(bare)
        if find.groups:
            raise ValueError("TwoPass patterns name every group")
        return cls(find, re2.compile(pattern))


def search_parsed(
    pattern: TwoPass, data: bytes, pos: int, *, splice: bool = False
) -> tuple[int, int, Spans | None] | None:
    """The first match of `pattern` in `data` at or after `pos`: its start, its end, and its
    spans.

    The spans are those `search_spans(pattern.parse, ...)` gives for a match of up to
    FIRST_PARSED_BYTES. A longer match is read as far as its first FIRST_PARSED_BYTES go,
    and if it cannot be read so, as far as its first MAX_PARSED_BYTES go: a value that runs
    on past them is cut there, and a match whose fixed parts (a name and an operator, a
    closing quote) lie beyond them has no spans (None), unless `splice`: then it is read
    once more, its middle cut out (`_spliced_spans`). None for no match.
    """
    whole = search_spans(pattern.find, data, pos)
    if whole is None:
        return None
    start, end = whole[0]
    if end - start > FIRST_PARSED_BYTES:
        spans = match_spans(pattern.parse, data, start, start + FIRST_PARSED_BYTES)
        if spans is not None:
            return start, end, spans
    spans = match_spans(pattern.parse, data, start, min(end, start + MAX_PARSED_BYTES))
    if spans is None and splice and end - start > MAX_PARSED_BYTES:
        spans = _spliced_spans(pattern, data, start, end)
    return start, end, spans


def _spliced_spans(pattern: TwoPass, data: bytes, start: int, end: int) -> Spans | None:
    """The spans of the match data[start:end] read with its middle cut out: its first
    FIRST_PARSED_BYTES and its last SPLICED_TAIL_BYTES, joined, read as one match, each
    offset in the tail mapped back to where it lies in `data`. A group that runs across the
    cut (a long quoted value) then spans all of the value; None if the joined bytes do not
    read whole as a match.
    """
    cut = FIRST_PARSED_BYTES
    tail = end - SPLICED_TAIL_BYTES
    joined = data[start : start + cut] + data[tail:end]
    spans = match_spans(pattern.parse, joined, 0, len(joined))
    if spans is None or spans[0][1] != len(joined):
        return None
    shift = tail - start - cut  # how far the tail lies past the cut

    def back(offset: int) -> int:
        return start + offset + (shift if offset >= cut else 0)

    return [(back(s), back(e)) if s >= 0 else (s, e) for s, e in spans]


def match_spans(regex: re2._Regexp, data: bytes, start: int, stop: int) -> Spans | None:
    """The spans of a match of `regex` that starts at `start` and ends by `stop`, or None."""
    if FAST:
        spans: Spans = regex._regexp.Match(_ANCHOR_START, data, start, stop)
        return None if spans[0][0] < 0 else spans
    match = regex.match(data, start, stop)  # pragma: no cover - only with a changed google-re2
    return None if match is None else [match.span(i) for i in range(regex.groups + 1)]


class Reported:
    """What earlier passes found, as (start, end, category) byte spans, asked whether a span
    lies inside one of a category: by a look at each while they are few (a prompt's
    handful), in O(log n) through an index once they are many (a 10 MB text's thousands)."""

    FEW = 32

    def __init__(self, spans: Iterable[tuple[int, int, str]]) -> None:
        self._spans = list(spans)
        self._index: dict[str, tuple[list[int], list[int]]] | None = None

    def __len__(self) -> int:
        return len(self._spans)

    def extended(self, spans: Iterable[tuple[int, int, str]]) -> Reported:
        """These spans and `spans`."""
        return Reported([*self._spans, *spans])

    def index(self) -> None:
        """Builds the index now if there are enough spans for one (it is otherwise built by
        the first question), so that threads asking at once need not each build it."""
        if len(self._spans) > self.FEW and self._index is None:
            self._index = self._indexed()

    def holds(self, start: int, end: int, category: str) -> bool:
        """Whether a reported span of `category` holds [start, end)."""
        if len(self._spans) <= self.FEW:
            for s, e, c in self._spans:  # noqa: SIM110  # any() over a generator: twice the time
                if s <= start and end <= e and c == category:
                    return True
            return False
        if self._index is None:
            self._index = self._indexed()
        starts, reach = self._index.get(category, ((), ()))
        i = bisect_right(starts, start)
        return i > 0 and reach[i - 1] >= end

    def overlaps(self, start: int, end: int, category: str) -> bool:
        """Whether a reported span of `category` shares a byte with [start, end)."""
        if len(self._spans) <= self.FEW:
            for s, e, c in self._spans:  # noqa: SIM110  # as in holds()
                if s < end and start < e and c == category:
                    return True
            return False
        if self._index is None:
            self._index = self._indexed()
        starts, reach = self._index.get(category, ((), ()))
        i = bisect_left(starts, end)
        return i > 0 and reach[i - 1] > start

    def _indexed(self) -> dict[str, tuple[list[int], list[int]]]:
        """For each category, its spans' starts in order, and the furthest end of the spans
        that start at or before each."""
        by_category: dict[str, list[tuple[int, int]]] = {}
        for start, end, category in self._spans:
            by_category.setdefault(category, []).append((start, end))
        index = {}
        for category, found in by_category.items():
            found.sort()
            reach = list(itertools.accumulate((end for _, end in found), max))
            index[category] = ([start for start, _ in found], reach)
        return index


NOTHING_REPORTED = Reported(())
