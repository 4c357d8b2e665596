"""Secrets taken out of a line about to be shown: an error a server sent back may echo a
request's API key (a 401 quoting the header it refused) or a secret of its prompt."""

from __future__ import annotations

import functools
import string

from devpulse.core.config import config_from_mapping
from devpulse.plugins.privacy.scanner import Scanner

# What may be a secret: a word naming one, user info in a URL, or a long run of a token's
# characters mixing letters and digits. Anything else is shown as it is, without building the
# scanner (a fifth of a second) for every error a command reports.
_NAMES = ("key", "token", "secret", "pass", "pwd", "auth", "bearer", "@", "credential")
_TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_-+/=.~")
_SPLIT = {c: " " for c in range(128) if chr(c) not in _TOKEN_CHARACTERS}
MIN_TOKEN = 16


def redact(text: str, scanner: Scanner | None = None) -> str:
    """`text` with every secret `scanner` finds in it (the packaged rules' by default)
    replaced by its preview (a vendor's public prefix at most, and the length)."""
    if not _may_hold_secret(text):
        return text
    out, last = [], 0
    for finding in (scanner or _scanner()).scan(text):
        if finding.category != "secret":
            continue
        start, end = finding.span
        out += [text[last:start], finding.preview]
        last = end
    return "".join([*out, text[last:]])


def _may_hold_secret(text: str) -> bool:
    lower = text.lower()
    if any(name in lower for name in _NAMES):
        return True
    return any(
        len(word) >= MIN_TOKEN and not word.isalpha() and not word.isdigit()
        for word in text.translate(_SPLIT).split()
    )


@functools.cache
def _scanner() -> Scanner:
    return Scanner(config_from_mapping({}).privacy)
