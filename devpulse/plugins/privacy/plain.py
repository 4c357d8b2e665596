"""Text as the rules should read it: the characters that hide a secret from a pattern while
it still works, or still reads the same to a model, read as what they stand for.

Text pasted from chat apps, web pages and word processors carries them: a no-break or thin
space around the `=` of an assignment, a fullwidth at sign or digits, a zero-width space or a
soft hyphen inside a token. A pattern written for ASCII misses each.
- Unicode spaces are read as a space, fullwidth ASCII forms (U+FF01-U+FF5E) as the ASCII
  character, and typographic quotes as ASCII's: curly quotes, low-9 quotes, guillemets, and
  Chinese's and Japanese's corner brackets, which a word processor or a writer's language
  puts around a value where a developer types " or '. One character for one, so offsets
  stand.
- Invisible characters (zero-width space, joiners, word joiner, byte-order mark, soft
  hyphen) are read as nothing: offsets then shift, and `Origins` says where each character
  that was kept came from.

Text an agent hands over often holds a whole document escaped into one string: a tool's JSON
result, a log line with the request body, `kubectl`'s last-applied configuration, a cloud
secret's `SecretString`. There, `{\\"password\\": \\"...\\"}` reads to a model as the JSON it
is, but every pattern written for a quoted value misses it. `unescaped` gives the lines that
hold such escapes with their escapes read (`\\"` as `"`, `\\n` as a line break), for the
rules to read as well. `url_decoded` does the same for URL encoding, which access logs, form
bodies and redirect URLs carry (`user=jane%40gmx.de`, `From=%2B14155550123`).
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator

import re2

from devpulse.plugins.privacy.spans import search_spans

_SPACES = (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
_INVISIBLE = (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD)
_INVISIBLE_CHARS = frozenset(map(chr, _INVISIBLE))
_FULLWIDTH = range(0xFF01, 0xFF5F)
# Curly and low-9 double quotes, guillemets (double and single), corner brackets (white and
# black) and CJK double primes; curly and low-9 single quotes.
_DOUBLE_QUOTES = (
    *range(0x201C, 0x2020),
    0xAB,
    0xBB,
    0x2039,
    0x203A,
    *range(0x300C, 0x3010),
    *range(0x301D, 0x3020),
)
_SINGLE_QUOTES = tuple(range(0x2018, 0x201C))
_READ_AS_ANOTHER = (*_SPACES, *_DOUBLE_QUOTES, *_SINGLE_QUOTES)
_AS_READ: dict[int, int | None] = {
    **dict.fromkeys(_SPACES, ord(" ")),
    **dict.fromkeys(_DOUBLE_QUOTES, ord('"')),
    **dict.fromkeys(_SINGLE_QUOTES, ord("'")),
    **{code: code - 0xFEE0 for code in _FULLWIDTH},
    **dict.fromkeys(_INVISIBLE),
}
_HIDING = re2.compile(
    "[" + "".join(chr(c) for c in (*_READ_AS_ANOTHER, *_INVISIBLE)) + "\uff01-\uff5e]"
)
# Runs of the characters read as another, and of those read as nothing. Each is one
# character class repeated: it cannot backtrack.
_SUBSTITUTED = re.compile("[" + "".join(chr(c) for c in _READ_AS_ANOTHER) + "\uff01-\uff5e]+")
_INVISIBLE_RUN = re.compile("[" + "".join(chr(c) for c in _INVISIBLE) + "]+")
# Above this many runs in a text, each run is no longer worth its Python: the whole text is
# read at once (`_dense`).
MAX_RUNS = 5_000
# The characters read as another, and what each is read as: in `_dense`, a text that holds
# more of them than this is translated whole rather than replaced a character at a time.
_READ_AS = {chr(code): chr(read) for code, read in _AS_READ.items() if read is not None}
MAX_REPLACES = 16

# What an escape stands for, after its backslash. Others (`\\u`, `\\x`, a Windows path's
# `\\d`) are left as they are.
_ESCAPED = {'"': '"', "'": "'", "/": "/", "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
# Split at each escape, its letter kept: runs of text and letters, one after another. Two
# characters, no repetition: it cannot backtrack.
_ESCAPE_SPLIT = re.compile(r"\\([\"'/\\nrt])")
# The escapes that mark a line as an escaped document: an escaped quote, JSON's escaped
# slash, an escaped line break or tab.
_MARK = re2.compile(rb'\\["/nrt]')
# The same, for text that is not ASCII. Two characters, no repetition: it cannot backtrack.
_MARK_TEXT = re.compile(r'\\["/nrt]')
# A line that holds none of them: each backslash run ends in another character, or the line.
_MARKLESS_LINE = re2.compile(rb'(?m)^(?:[^\\\n]|\\+[^\\"/nrt\n])*\\*$')
# URL encoding: a line holding an escape of a URL's reserved characters (space, quotes, !#$&'
# ()*+,/:;=?@[]{|}) is read again with every escape of printable ASCII read. Fixed widths,
# no repetition: neither can backtrack.
_PERCENT_MARK = re.compile(r"%(?:2[0-9A-Fa-f]|3[A-Fa-f]|40|5[BbDd]|7[B-Db-d])")
_PERCENT_SPLIT = re.compile(r"%([2-7][0-9A-Ea-e]|[2-6][Ff])")
# At most this many escapes are read in one text; the rest stay as they are (the text as
# given is read whole in any case). 1 MB of nothing but escapes costs about 0.3 s of Python
# here, so this bounds that to a few tens of ms.
MAX_ESCAPES = 50_000
# ...in at most this many stretches of escaped lines (the Python steps are a stretch's): a
# document escaped into a string is one line or a few, and a megabyte of short escaped lines
# between unescaped ones (14,000 stretches) took 110 ms to read, 30 ms with this.
MAX_STRETCHES = 4_000
# ...and this many URL escapes, on at most this many lines (a Python step each): about 200 KB
# of an access log's encoded query strings. A megabyte whose every line holds both kinds of
# escape then costs 10 ms more, not 80.
MAX_URL_ESCAPES = 20_000
MAX_URL_LINES = 4_000
# ...and of this many characters in all (a line of a megabyte is one line): a second full
# scan of a megabyte of dense tokens and escapes took 75 ms more than the first alone.
MAX_URL_CHARS = 1 << 17


class Origins:
    """Where each character of a text read from another came from: an index shift that
    changes at given positions (after a dropped character, across a skipped stretch).

    An escape's character came from the escape's last character; a span that starts with
    one starts at the escape (`%2B1415...`: at its %), `lead` characters before."""

    __slots__ = ("_at", "_lead", "_letters", "_shift")

    def __init__(self, lead: int = 0) -> None:
        self._at: list[int] = [0]
        self._shift: list[int] = [0]
        self._lead = lead
        self._letters: list[int] = []  # where the escapes' characters are in the read text

    def shift_from(self, at: int, shift: int) -> None:
        """From position `at` of the read text on, index `i` came from `i + shift`."""
        if self._at[-1] == at:
            self._shift[-1] = shift
        else:
            self._at.append(at)
            self._shift.append(shift)

    def shifts_from(self, ats: Iterable[int], shifts: Iterable[int]) -> None:
        """`shift_from` for each position and shift, the positions in increasing order;
        with a `lead`, each position is an escape's character."""
        ats, shifts = list(ats), list(shifts)
        if self._lead:
            self._letters += ats
        if ats and ats[0] == self._at[-1]:
            self._at.pop()
            self._shift.pop()
        self._at += ats
        self._shift += shifts

    def index(self, at: int) -> int:
        return at + self._shift[bisect_right(self._at, at) - 1]

    def span(self, span: tuple[int, int], size: int) -> tuple[int, int]:
        """A span of the read text as a span of the text it came from (`size` characters)."""
        start, end = span
        first = min(self.index(start), size)
        at = bisect_left(self._letters, start)
        if at < len(self._letters) and self._letters[at] == start:
            first -= self._lead  # the escape's first character, not its last
        last = min(self.index(end - 1) + 1, size) if end > start else first
        return first, last


class _Kept(Origins):
    """Origins as a list: the index each character came from (a text full of drops)."""

    __slots__ = ("_kept",)

    def __init__(self, kept: list[int]) -> None:
        super().__init__()
        self._kept = kept

    def index(self, at: int) -> int:
        if at < len(self._kept):
            return self._kept[at]
        return (self._kept[-1] + 1 if self._kept else 0) + at - len(self._kept)


def plain_text(text: str, data: bytes | None = None) -> tuple[str, Origins | None]:
    """`text` as the rules read it, and where each of its characters came from; None where
    that is the same index (nothing invisible was dropped). `data`: `text`'s UTF-8, if the
    caller has it (10 MB take 10 ms to encode). `text` itself where nothing is read
    otherwise."""
    if text.isascii():
        return text, None
    if data is None:
        data = text.encode("utf-8", "surrogatepass")
    if search_spans(_HIDING, data, 0) is None:
        return text, None
    runs = [m.span() for m in itertools.islice(_INVISIBLE_RUN.finditer(text), MAX_RUNS + 1)]
    substituted = itertools.islice(_SUBSTITUTED.finditer(text), MAX_RUNS + 1)
    if len(runs) > MAX_RUNS or sum(1 for _ in substituted) > MAX_RUNS:
        return _dense(text)
    text = _SUBSTITUTED.sub(lambda m: m[0].translate(_AS_READ), text)
    if not runs:
        return text, None
    parts: list[str] = []
    origins = Origins()
    taken = dropped = 0
    for start, end in runs:
        parts.append(text[taken:start])
        dropped += end - start
        origins.shift_from(end - dropped, dropped)
        taken = end
    parts.append(text[taken:])
    return "".join(parts), origins


def _dense(text: str) -> tuple[str, Origins | None]:
    """`plain_text` of a text full of such characters, read whole.

    Each character that is there is replaced with one `str.replace`, the invisible ones
    first: `str.translate` reads a text outside ASCII at 40-70 ms a MB, where a replace
    takes 1-2 ms and asking whether a character is there at all a few microseconds. A text
    that holds many of them (fullwidth letters) is translated whole.
    """
    read = text
    for char in _INVISIBLE_CHARS:
        read = read.replace(char, "")
    if not read.isascii():
        there = [char for char in _READ_AS if char in read]
        if len(there) > MAX_REPLACES:
            read = read.translate(_AS_READ)
        else:
            for char in there:
                read = read.replace(char, _READ_AS[char])
    if len(read) == len(text):
        return read, None
    kept = [i for i, c in enumerate(text) if c not in _INVISIBLE_CHARS]
    return read, _Kept(kept)


def unescaped(text: str) -> tuple[str, Origins] | None:
    """The lines of `text` that hold an escaped quote, slash, line break or tab, one after
    another with their escapes read, and where each character came from; None if no line
    does.

    Lines that follow one another are read as one stretch, split at its escapes in one call
    (a megabyte of escapes, or of escaped lines, must not cost a Python step each): between
    two escapes, the text as it is; each escape read as its letter, from which on every
    index shifts by one more.
    """
    if "\\" not in text:
        return None  # most prompts: no escape, answered without a copy or a search
    return _read(
        text, _escaped_stretches(text), _ESCAPE_SPLIT, 2, _ESCAPED.__getitem__, MAX_ESCAPES
    )


def url_decoded(text: str) -> tuple[str, Origins] | None:
    """`unescaped` for URL encoding: the lines of `text` that hold a percent escape of a
    URL's reserved characters (`%40`, `%2B`, `%3A%2F%2F`: a query string, a form's body, a
    URL inside another) with the escapes of printable ASCII read, one character for three,
    and where each character came from; None if no line holds one. An escape of a byte
    outside ASCII (`%C3%A9`) stays as it is: one character for three is what keeps the
    shifts one per escape."""
    if "%" not in text:
        return None
    stretches = _within(_lines_joined(text, _PERCENT_MARK, MAX_URL_LINES), MAX_URL_CHARS)
    return _read(text, stretches, _PERCENT_SPLIT, 3, _PERCENT_LETTERS.__getitem__, MAX_URL_ESCAPES)


# The NULs `without_nuls` reads past at most: a megabyte of UTF-16 holds half a million, and
# each is an entry of the reading's `Origins` (1 MB of NULs: 175 ms read whole).
MAX_NULS = 1 << 16


def without_nuls(text: str) -> tuple[str, Origins] | None:
    """`text` with its NULs read as nothing, and where each character came from; None if it
    holds none. UTF-16 or UTF-32 decoded as if it were UTF-8 (a file read wrong, a tool's
    output on Windows) has a NUL after each ASCII character, and a secret spelt so still
    reads to a model (review 27: UTF-16 with no byte-order mark whose start is Chinese, or
    appended to a UTF-8 log). Up to the MAX_NULS-th NUL."""
    if "\0" not in text:
        return None
    parts = text.split("\0", MAX_NULS)
    if len(parts) > MAX_NULS and "\0" in parts[-1]:
        parts.pop()  # past the MAX_NULS-th NUL, the text is left to its first reading
    origins = Origins()
    origins.shifts_from(
        itertools.accumulate(len(part) for part in parts[:-1]), range(1, len(parts))
    )
    return "".join(parts), origins


def without_gutters(text: str) -> tuple[str, Origins] | None:
    """The numbered lines of `text` (at most MAX_GUTTER_LINES of them), with the line numbers
    a tool printed taken off, and where each character came from; None unless two lines or
    more hold one. `cat -n` and `nl` write `    12\t`, an agent's file-reading tool
    `    12→`, bat `  12   │ `, and a CI log (GitHub Actions') stamps each line with the
    time it was written, `2024-04-24T17:00:35.5044891Z `: a CSV's header, a private key's
    PEM lines, a .ppk's Private-Lines or what a command printed then start their lines
    again, where the rules and readers look for them.

    Numbered lines with at most MAX_GUTTER_GAP others between them are read as one stretch,
    those others with them (`nl` leaves blank lines unnumbered); the rest of the text is
    left to its first reading. A long text with numbered lines here and there (a day's
    prompts, some with a file listing) is not read twice. Between two stretches stands
    STRETCH_BREAK, so that a label at one's end and a line at the next one's start (two
    listings, a comment between) are not read as a label and its value."""
    if not ("\t" in text or "→" in text or "│" in text or "Z " in text):  # each gutter's end
        return None
    data = text.encode("utf-8", "surrogatepass")
    ascii_only = len(data) == len(text)
    at = [0, 0]  # a place in `data` and the same place in `text`

    def char(byte: int) -> int:  # the character at `byte`, the places asked in order
        if not ascii_only:
            at[1] += len(data[at[0] : byte].decode("utf-8", "surrogatepass"))
            at[0] = byte
            return at[1]
        return byte

    parts: list[str] = []
    origins = Origins()
    size = last = numbered = 0
    for found in itertools.islice(_GUTTER.finditer(data), MAX_GUTTER_LINES):
        start, end = char(found.start()), char(found.end())
        if numbered:  # the stretch goes on over the lines between, or ends with its line
            stop = text.find("\n", last, start) + 1  # the previous numbered line's end
            gap = start if text.count("\n", stop, start) <= MAX_GUTTER_GAP else stop
            parts.append(text[last:gap])
            size += gap - last
            if gap < start:  # a line no rule reads across, from the first line left out
                parts.append(STRETCH_BREAK)
                origins.shift_from(size, stop - size)
                size += len(STRETCH_BREAK)
        origins.shift_from(size, end - size)
        last = end
        numbered += 1
    if numbered < 2:
        return None
    stop = text.find("\n", last)
    parts.append(text[last : len(text) if stop < 0 else stop + 1])
    return "".join(parts), origins


def string_lines(text: str, most: int | None = None) -> tuple[str, Origins] | None:
    """The lines of `text` that are each one string of a JSON array of lines (at most
    MAX_STRING_LINES of them, and of `most` characters in all), read as the lines they
    hold, and where each character came from; None unless two lines that follow one
    another are such strings and one of them ends in an escaped line break.

    Jupyter writes a cell's source and each output's text so (`"text/plain": [` then
    `"   name         dob\\n",`, a line a string), and so do other tools' JSON with a
    text's lines in a list. A DataFrame printed in a notebook, a `.env` it printed, or a
    table's header and its rows then stand as lines again, where the readers and rules look
    for them. The escaped line break that ends a string is the line break between two, and
    JSON's other escapes are read as `unescaped` reads them (not `\\uXXXX`). Two arrays (a
    cell's source, then its output's) are read with STRETCH_BREAK between them, on a line
    of its own."""
    if '\\n",' not in text:
        return None
    parts: list[str] = []
    origins = Origins()
    size = 0  # of the read text so far
    for lines in _string_arrays(text, len(text) if most is None else most):
        if parts:  # no rule reads from one array's last line into the next's first:
            parts.append("\n" + STRETCH_BREAK)  # the break alone on its line
            size += 1 + len(STRETCH_BREAK)
        for i, (start, end) in enumerate(lines):
            if i:  # the line break that ended the string before: its escape's place
                parts.append("\n")
                size += 1
            origins.shift_from(size, start - size)
            parts.append(text[start:end])
            size += end - start
    if not parts:
        return None
    read = "".join(parts)
    if "\\" not in read:
        return read, origins
    inner = _read(read, [(0, len(read))], _ESCAPE_SPLIT, 2, _ESCAPED.__getitem__, MAX_ESCAPES)
    assert inner is not None  # one stretch read: never None
    return inner[0], _Then(origins, inner[1], len(read))


def _string_arrays(text: str, left: int) -> Iterator[list[tuple[int, int]]]:
    """The arrays of string lines in `text`: for each, the (start, end) of each line's
    string, less the escaped line break that ends it; two lines or more, one of them
    ending so. At most MAX_STRING_LINES lines looked at, of `left` characters in all.

    An array is found by its first line's end (`\\n",`: str.find, no copy of the text to
    UTF-8), then read line by line to the first line that is no string."""
    stretch: list[tuple[int, int, bool]] = []
    pos = looked = 0
    while looked < MAX_STRING_LINES:
        looked += 1
        if not stretch:  # on to the next array's first line
            mark = text.find('\\n",', pos)
            if mark < 0:
                break
            pos = max(pos, text.rfind("\n", 0, mark) + 1)
        line_end = text.find("\n", pos)
        if line_end < 0:
            line_end = len(text)
        string = _string_of(text, pos, line_end)
        if string is None:  # the array, if any, ended on the line before
            yield from _an_array(stretch)
            stretch = []
            pos = line_end + 1
            continue
        start, end, _ = string
        left -= end - start + 1 + len(STRETCH_BREAK)
        if left < 0:
            break
        stretch.append(string)
        pos = line_end + 1
        if pos > len(text):
            break
    yield from _an_array(stretch)


def _an_array(stretch: list[tuple[int, int, bool]]) -> Iterator[list[tuple[int, int]]]:
    """The run of string lines as an array's lines: two or more, one ending in an escaped
    line break; else nothing."""
    if len(stretch) >= 2 and any(ends for _, _, ends in stretch):
        yield [(start, end) for start, end, _ in stretch]


def _string_of(text: str, start: int, end: int) -> tuple[int, int, bool] | None:
    """Where the string that `text[start:end]` is, a line of a JSON array, holds its text
    (less an escaped line break at its end, and whether there was one); None if the line is
    no such string (a key and its value, a bracket, two strings)."""
    line = text[start:end]
    body = line.lstrip(" \t")
    tail = body.rstrip(" \t\r")
    tail = tail.removesuffix(",").rstrip(" \t") if tail.endswith(",") else tail
    if len(tail) < 2 or not tail.startswith('"') or not tail.endswith('"'):
        return None
    inner = tail[1:-1]
    if search_spans(_JSON_STRING_BODY, inner.encode("utf-8", "surrogatepass"), 0) is None:
        return None
    first = start + len(line) - len(body) + 1
    last = first + len(inner)
    ends = inner.endswith("\\n") and (len(inner) - len(inner[:-1].rstrip("\\")) - 1) % 2 == 1
    return (first, last - 2 if ends else last, ends)


class _Then(Origins):
    """Where each character of a reading of a reading came from: `second` says where in the
    first reading (`size` characters), `first` where in the text."""

    __slots__ = ("_first", "_second", "_size")

    def __init__(self, first: Origins, second: Origins, size: int) -> None:
        super().__init__()
        self._first, self._second, self._size = first, second, size

    def index(self, at: int) -> int:
        return self._first.index(self._second.index(at))

    def span(self, span: tuple[int, int], size: int) -> tuple[int, int]:
        return self._first.span(self._second.span(span, self._size), size)


# What a JSON string holds between its quotes: no quote but an escaped one (`_string_of`
# reads a line of an array, indented, quoted, and a comma after it but for the last).
_JSON_STRING_BODY = re2.compile(rb'^(?:[^"\\]|\\.)*$')
# The lines looked at for arrays of strings, at most: a notebook of a few hundred cells'
# lines. Each is a Python step, and what they hold is read again: 1 MB of them outside ASCII
# took 120 ms to scan with 4,000 (review 28).
MAX_STRING_LINES = 2_000

# A line's start that is a tool's line number (up to ten blanks, up to seven digits, then a
# tab, an arrow, or blanks and a bar and the blank after it), or a UTC time stamp and a
# blank. RE2, over the text's UTF-8 (its arrow and bar written as they are: RE2 reads a
# pattern as UTF-8).
_STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z "
_GUTTER = re2.compile(f"(?m)^(?:{_STAMP}| {{0,10}}[0-9]{{1,7}}(?:\t|→| {{1,8}}│ ?))".encode())
# The numbered lines read again, at most: an agent's tool shows 2,000 at a time.
MAX_GUTTER_LINES = 4_000
# Lines without a number that may lie between two numbered lines of one stretch.
MAX_GUTTER_GAP = 4
# The line between two stretches read: a control character (ASCII's record separator),
# which no rule takes for a value or a label, alone on its line.
STRETCH_BREAK = "\x1e\n"


def _after(at: int, run: int) -> int:
    """Where the letter after a run of `run` characters lies, the last one at `at`."""
    return at + run + 1


# Each escape's two hex digits, in either case, and the character they stand for.
_PERCENT_LETTERS = {
    f"{code:02{case}}": chr(code) for code in range(0x20, 0x7F) for case in ("x", "X")
}


def _read(
    text: str,
    stretches: list[tuple[int, int]],
    split: re.Pattern[str],
    width: int,
    letter: Callable[[str], str],
    most: int,
) -> tuple[str, Origins] | None:
    """The `stretches` of `text` one after another, a line break between two, each escape
    that `split` finds (`width` characters, its group what `letter` reads) read as its
    letter, at most `most` of them; and where each character came from."""
    if not stretches:
        return None
    parts: list[str] = []
    dropped = width - 1  # characters an escape loses
    origins = Origins(lead=dropped)
    size = 0  # of the read text so far
    left = most
    for start, end in stretches:
        if parts:  # the line break between two stretches read: the first one's own
            parts.append("\n")
            size += 1
        origins.shift_from(size, start - size)
        # runs of text, each escape's letter between two: [run, letter, run, ..., run]
        pieces = split.split(text[start:end], left) if left else [text[start:end]]
        runs, letters = pieces[0::2], pieces[1::2]
        if letters:
            # The k-th letter (from 0) lies in the read text after the runs before it and
            # the k letters before it, and came from (k + 1) * dropped characters further
            # on than the stretch's start did (its escape's others and the k before).
            positions = itertools.accumulate(map(len, runs[:-1]), _after, initial=size - 1)
            next(positions)
            shift = start - size + dropped
            origins.shifts_from(positions, range(shift, shift + dropped * len(letters), dropped))
            pieces[1::2] = map(letter, letters)
            left -= len(letters)
        parts += pieces
        size += end - start - dropped * len(letters)
    return "".join(parts), origins


def _escaped_stretches(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each line of `text` that holds one of `_MARK`, in order, lines
    that follow one another joined in one stretch (the line break between them in it).

    An ASCII text (JSON's own escapes keep it so) is searched by RE2: a stretch's first
    mark, then the first line after it with none, two searches a stretch however many
    lines it holds (a log of a request body a line: 1 MB of them took 30 ms a reading line
    by line). Other text is read line by line, without the copy to UTF-8 and the offsets
    counted back (20 ms for 10 MB, where a few escaped lines cost microseconds).
    """
    if not text.isascii():
        return _escaped_lines_joined(text)
    data = text.encode()
    found: list[tuple[int, int]] = []
    pos = 0
    while len(found) < MAX_STRETCHES and (mark := search_spans(_MARK, data, pos)) is not None:
        start = data.rfind(b"\n", 0, mark[0][0]) + 1
        markless = search_spans(_MARKLESS_LINE, data, mark[0][1])
        if markless is None:
            found.append((start, len(data)))
            break
        found.append((start, markless[0][0] - 1))  # up to the line break before that line
        pos = markless[0][1]
    return found


def _escaped_lines_joined(text: str) -> list[tuple[int, int]]:
    """`_escaped_stretches`, one line at a time."""
    return _lines_joined(text, _MARK_TEXT, MAX_STRETCHES)


def _within(stretches: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """The first of `stretches`, cut where together they reach `most` characters."""
    kept: list[tuple[int, int]] = []
    for start, end in stretches:
        if end - start >= most:
            kept.append((start, start + most))
            break
        kept.append((start, end))
        most -= end - start
    return kept


def _lines_joined(
    text: str, marks: re.Pattern[str], most: int | None = None
) -> list[tuple[int, int]]:
    """The (start, end) of each line of `text` that holds a match of `marks`, in order,
    lines that follow one another joined in one stretch; of the first `most` such lines, if
    given."""
    found: list[tuple[int, int]] = []
    mark = marks.search(text)
    left = -1 if most is None else most
    while mark is not None and left != 0:
        left -= 1
        start = text.rfind("\n", 0, mark.start()) + 1
        end = text.find("\n", mark.end())
        if end == -1:
            end = len(text)
        if found and found[-1][1] + 1 == start:
            start = found.pop()[0]
        found.append((start, end))
        mark = marks.search(text, end)  # one pass in all: each line is looked at once
    return found
