"""Secrets and personal data taken out of a line about to be shown: an error a server sent
back may echo a request's API key (a 401 quoting the header it refused) or a secret of its
prompt, and one of ours may quote an argument (`--task jane.doe@gmail.com`)."""

from __future__ import annotations

import functools
import string

from devpulse.core.config import config_from_mapping
from devpulse.plugins.privacy.scanner import Scanner

# What may be a secret or personal data: a word naming a secret, an @ (user info in a URL, an
# e-mail address), a long run of a token's characters mixing letters and digits, or as many
# digits as a phone number or an id holds. Anything else is shown as it is, without asking
# the scanner for every error a command reports.
_NAMES = ("key", "token", "secret", "pass", "pwd", "auth", "bearer", "@", "credential")
_TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_-+/=.~")
_SPLIT = {c: " " for c in range(128) if chr(c) not in _TOKEN_CHARACTERS}
MIN_TOKEN = 16
MIN_DIGITS = 7
_SHOWN = frozenset({"secret", "pii"})  # internal names are the user's own to see


def redact(text: str, scanner: Scanner | None = None) -> str:
    """`text` with every secret and piece of personal data `scanner` finds in it (the
    packaged rules' by default) replaced by its preview (a vendor's public prefix at most,
    and the length)."""
    if not _may_hold_secret(text):
        return text
    out, last = [], 0
    for finding in (scanner or _scanner()).scan(text):
        if finding.category not in _SHOWN:
            continue
        start, end = finding.span
        out += [text[last:start], finding.preview]
        last = end
    return "".join([*out, text[last:]])


def _may_hold_secret(text: str) -> bool:
    lower = text.lower()
    if any(name in lower for name in _NAMES) or sum(map(str.isdigit, text)) >= MIN_DIGITS:
        return True
    return any(
        len(word) >= MIN_TOKEN and not word.isalpha() and not word.isdigit()
        for word in text.translate(_SPLIT).split()
    )


@functools.cache
def _scanner() -> Scanner:
    return Scanner(config_from_mapping({}).privacy, eager=False)  # a few rules for one line
