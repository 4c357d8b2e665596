"""Text as the rules should read it: the characters that hide a secret from a pattern while
it still works, or still reads the same to a model, read as what they stand for.

Text pasted from chat apps, web pages and word processors carries them: a no-break or thin
space around the `=` of an assignment, a fullwidth at sign or digits, a zero-width space or a
soft hyphen inside a token. A pattern written for ASCII misses each.
- Unicode spaces are read as a space, and fullwidth ASCII forms (U+FF01-U+FF5E) as the
  ASCII character: one character for one, so offsets stand.
- Invisible characters (zero-width space, joiners, word joiner, byte-order mark, soft
  hyphen) are read as nothing: offsets then shift, and `plain_text` says where each
  character it kept came from.
"""

from __future__ import annotations

import re2

from devpulse.plugins.privacy.spans import search_text

_SPACES = (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
_INVISIBLE = (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD)
_AS_READ: dict[int, int | None] = {
    **dict.fromkeys(_SPACES, ord(" ")),
    **{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)},
}
_HIDING = re2.compile("[" + "".join(chr(c) for c in (*_SPACES, *_INVISIBLE)) + "\uff01-\uff5e]")


def plain_text(text: str) -> tuple[str, list[int] | None]:
    """`text` as the rules read it, and for each of its characters the index in `text` it
    came from; None where that is the same index (nothing invisible was dropped)."""
    if text.isascii() or search_text(_HIDING, text) is None:
        return text, None
    read = text.translate(_AS_READ)
    if not any(chr(code) in read for code in _INVISIBLE):
        return read, None
    kept = [i for i, c in enumerate(read) if ord(c) not in _INVISIBLE]
    return "".join(read[i] for i in kept), kept


def original_span(span: tuple[int, int], kept: list[int], size: int) -> tuple[int, int]:
    """A span of the plain text as a span of the text it came from (`size` characters)."""
    start, end = span
    first = kept[start] if start < len(kept) else size
    last = kept[end - 1] + 1 if end > start else first
    return first, last
