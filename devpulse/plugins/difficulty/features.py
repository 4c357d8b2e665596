"""Cheap features of a prompt that say how hard it is, whatever its topic.

Each feature describes a kind of work rather than a subject: how long the prompt is (in
tokens), how many quantities and conditions it carries, whether it is an arithmetic word
problem, how dense its jargon is (recall) against plain wording (reasoning), whether it is
code, and whether it asks for open-ended prose (which a small model writes about as well as
a large one). None of the word lists names a subject: they are the connectives and verbs of
a task's shape. (Counts of formal notation and of "derive" verbs were tried too: on MMLU
they came out with the wrong sign, so they are not here; docs/routing.md.)

Everything reads text with RE2 or plain string methods, and only a bounded window of it
(the head and the tail, where instructions sit), so a 100 KB paste costs about what a
2 KB prompt does.
"""

from __future__ import annotations

import math

import re2

from devpulse.core.tokens import estimate_tokens

HEAD_CHARS = 3072  # the start of a prompt: the question, or the context before it
TAIL_CHARS = 1024  # the end: where an instruction after a pasted text sits


def _words(*alternatives: str) -> re2._Regexp:
    """Any of `alternatives` as a whole word, in any case (RE2's `\\b` is ASCII-only)."""
    return re2.compile(r"(?:^|[^\pL\pN_])(?i:" + "|".join(alternatives) + r")(?:[^\pL\pN_]|$)")


# Conditions and constraints that a solution has to keep track of (whole words).
CONDITION_WORDS = frozenset(
    w.encode()
    for w in (
        "if",
        "suppose",
        "assume",
        "assuming",
        "given",
        "unless",
        "provided",
        "must",
        "least",
        "exactly",
        "each",
        "every",
        "remaining",
        "twice",
        "half",
        "times",
        "per",
    )
)
# Bytes tables for str-free counting in C: ASCII letters and digits stay (lower-cased), other
# ASCII becomes a space; bytes of other scripts stay, so their words stay whole.
_WORDS = bytes((c if chr(c).isalnum() else 32) if c < 128 else c for c in range(256)).translate(
    bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
)
_DIGIT_RUNS = bytes(49 if 48 <= c <= 57 else 32 for c in range(256))
# A question that asks for a quantity: with numbers in the text, an arithmetic word problem.
QUANTITY = _words(
    "how many",
    "how much",
    "how long",
    "how far",
    "how old",
    "how fast",
    "what is the (?:total|sum|difference|product|average|number|amount|cost|price|value)",
    "what percentage",
    "what fraction",
)
# An instruction to write open-ended prose, at the start of a sentence: a small model drafts,
# explains and role-plays about as well as a large one.
PROSE = re2.compile(
    r"(?:^|[.!?:]\s|\n)\s*(?i:(?:please |can you |could you |help me )?"
    r"(?:write|compose|draft|rewrite|rephrase|paraphrase|summari[sz]e|describe|imagine|"
    r"pretend|act as|role-?play|brainstorm|edit|proofread|translate|tell me|explain)"
    r")(?:[^\pL\pN_]|$)"
)
# Code, or a request for it.
CODE = re2.compile(
    r"(?m)```|[{};]\s*$|^\s*(?:def|class|return|import|for|while|#include|function|public|"
    r"SELECT|const|let|var)\b|(?i:\b(?:function|program|algorithm|implement|code|"
    r"regex|python|javascript|java|c\+\+|sql|html|api|bug)\b)"
)


def _window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def _count(pattern: re2._Regexp, text: str, cap: int) -> int:
    """Matches of `pattern` in `text`, up to `cap` (each match costs a call into RE2)."""
    found, pos = 0, 0
    while found < cap:
        match = pattern.search(text, pos)
        if match is None:
            break
        found += 1
        pos = max(match.end(), pos + 1)
    return found


def extract(text: str) -> dict[str, float]:
    """The features of `text`, each a small non-negative number (mostly log counts)."""
    window = _window(text)
    data = window.encode("utf-8", "surrogatepass")
    words = data.translate(_WORDS).split()
    numbers = len(data.translate(_DIGIT_RUNS).split())
    long_words = sum(len(w) >= 10 for w in words) / max(1, len(words))
    conditions = sum(map(CONDITION_WORDS.__contains__, words))
    code = _count(CODE, window, 2)
    return {
        "tokens": math.log2(1 + estimate_tokens(text)),
        "numbers": math.log1p(numbers),
        "conditions": math.log1p(conditions),
        "long_words": long_words,
        "word_problem": float(numbers >= 2 and QUANTITY.search(window) is not None),
        "code": code / 2,
        "prose": float(code == 0 and PROSE.search(window) is not None),
    }
