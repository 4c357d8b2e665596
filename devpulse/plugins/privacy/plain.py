"""Text as the rules should read it: the characters that hide a secret from a pattern while
it still works, or still reads the same to a model, read as what they stand for.

Text pasted from chat apps, web pages and word processors carries them: a no-break or thin
space around the `=` of an assignment, a fullwidth at sign or digits, a zero-width space or a
soft hyphen inside a token. A pattern written for ASCII misses each.
- Unicode spaces are read as a space, and fullwidth ASCII forms (U+FF01-U+FF5E) as the
  ASCII character: one character for one, so offsets stand.
- Invisible characters (zero-width space, joiners, word joiner, byte-order mark, soft
  hyphen) are read as nothing: offsets then shift, and `Origins` says where each character
  that was kept came from.

Text an agent hands over often holds a whole document escaped into one string: a tool's JSON
result, a log line with the request body, `kubectl`'s last-applied configuration, a cloud
secret's `SecretString`. There, `{\\"password\\": \\"...\\"}` reads to a model as the JSON it
is, but every pattern written for a quoted value misses it. `unescaped` gives the lines that
hold such escapes with their escapes read (`\\"` as `"`, `\\n` as a line break), for the
rules to read as well.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right

import re2

from devpulse.plugins.privacy.spans import search_text

_SPACES = (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
_INVISIBLE = (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD)
_INVISIBLE_CHARS = frozenset(map(chr, _INVISIBLE))
_FULLWIDTH = range(0xFF01, 0xFF5F)
_AS_READ: dict[int, int | None] = {
    **dict.fromkeys(_SPACES, ord(" ")),
    **{code: code - 0xFEE0 for code in _FULLWIDTH},
    **dict.fromkeys(_INVISIBLE),
}
_HIDING = re2.compile("[" + "".join(chr(c) for c in (*_SPACES, *_INVISIBLE)) + "\uff01-\uff5e]")
# Runs of the characters read as another, and of those read as nothing. Each is one
# character class repeated: it cannot backtrack.
_SUBSTITUTED = re.compile("[" + "".join(chr(c) for c in _SPACES) + "\uff01-\uff5e]+")
_INVISIBLE_RUN = re.compile("[" + "".join(chr(c) for c in _INVISIBLE) + "]+")
# Above this many runs in a text, each run is no longer worth its Python: the whole text is
# translated at once (about 70 ms a MB here, where finding a few runs costs a few ms).
MAX_RUNS = 5_000

# What an escape stands for, after its backslash. Others (`\\u`, `\\x`, a Windows path's
# `\\d`) are left as they are. Two characters, no repetition: it cannot backtrack.
_ESCAPED = {'"': '"', "'": "'", "/": "/", "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = re.compile(r"\\[\"'/\\nrt]")
# The escapes that mark a line as an escaped document: an escaped quote, JSON's escaped
# slash, an escaped line break or tab. Two characters, no repetition: it cannot backtrack.
_MARK = re.compile(r'\\["/nrt]')
# At most this many escapes are read in one text; the rest stay as they are (the text as
# given is read whole in any case). 1 MB of nothing but escapes costs about 0.3 s of Python
# here, so this bounds that to a few tens of ms.
MAX_ESCAPES = 50_000


class Origins:
    """Where each character of a text read from another came from: an index shift that
    changes at given positions (after a dropped character, across a skipped stretch)."""

    __slots__ = ("_at", "_shift")

    def __init__(self) -> None:
        self._at: list[int] = [0]
        self._shift: list[int] = [0]

    def shift_from(self, at: int, shift: int) -> None:
        """From position `at` of the read text on, index `i` came from `i + shift`."""
        if self._at[-1] == at:
            self._shift[-1] = shift
        else:
            self._at.append(at)
            self._shift.append(shift)

    def index(self, at: int) -> int:
        return at + self._shift[bisect_right(self._at, at) - 1]

    def span(self, span: tuple[int, int], size: int) -> tuple[int, int]:
        """A span of the read text as a span of the text it came from (`size` characters)."""
        start, end = span
        first = min(self.index(start), size)
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


def plain_text(text: str) -> tuple[str, Origins | None]:
    """`text` as the rules read it, and where each of its characters came from; None where
    that is the same index (nothing invisible was dropped)."""
    if text.isascii() or search_text(_HIDING, text) is None:
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
    """`plain_text` of a text full of such characters: translated whole."""
    read = text.translate(_AS_READ)
    if len(read) == len(text):
        return read, None
    kept = [i for i, c in enumerate(text) if c not in _INVISIBLE_CHARS]
    return read, _Kept(kept)


def unescaped(text: str) -> tuple[str, Origins] | None:
    """The lines of `text` that hold an escaped quote, slash, line break or tab, one after
    another with their escapes read, and where each character came from; None if no line
    does."""
    lines = _escaped_lines(text)
    if not lines:
        return None
    parts: list[str] = []
    origins = Origins()
    size = 0  # of the read text so far
    left = MAX_ESCAPES
    for start, end in lines:
        if parts:  # the line break between two lines read: the first one's own
            parts.append("\n")
            size += 1
        origins.shift_from(size, start - size)
        taken = start
        for escape in itertools.islice(_ESCAPE.finditer(text, start, end), left):
            at = escape.start()
            parts.append(text[taken:at])
            parts.append(_ESCAPED[text[at + 1]])
            size += at - taken + 1
            origins.shift_from(size - 1, at + 1 - (size - 1))  # the escape: its letter
            left -= 1
            taken = at + 2
        parts.append(text[taken:end])
        size += end - taken
    return "".join(parts), origins


def _escaped_lines(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each line of `text` that holds one of `_MARK`, in order."""
    found: list[tuple[int, int]] = []
    mark = _MARK.search(text)
    while mark is not None:
        start = text.rfind("\n", 0, mark.start()) + 1
        end = text.find("\n", mark.end())
        if end == -1:
            found.append((start, len(text)))
            return found
        found.append((start, end))
        mark = _MARK.search(text, end)  # one pass in all: each line is looked at once
    return found
