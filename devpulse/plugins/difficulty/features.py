"""Cheap features of a prompt that say how hard it is, whatever its topic.

Each feature describes a kind of work rather than a subject: how long the prompt is (in
tokens), how many quantities and conditions it carries, whether it is an arithmetic word
problem, how dense its jargon is (recall) against plain wording (reasoning), whether it is
code, and whether it asks for open-ended prose (which a small model writes about as well as
a large one) or for a fact to be recalled. Then the kinds of work a short request can ask
for: to derive, prove, solve or design (rather than recall), to write code (rather than read
it), to hold several steps or constraints together, and formal notation. None of the word
lists names a subject: they are the connectives and verbs of a task's shape.

MMLU, where the fitted weights come from, barely contains such requests, and where it does
(computations in college-level subjects) both models fail alike; so those features carry
weights set by hand (bench/fit_difficulty.py, docs/routing.md). They describe open requests:
whether the prompt offers answer options to choose from (`options`) decides whether they
count at all (model.py).

Everything reads text with RE2 or plain string methods, and only a bounded window of it
(the head and the tail, where instructions sit), so a 100 KB paste costs about what a
2 KB prompt does.
"""

from __future__ import annotations

import math

import re2

from devpulse.core.tokens import estimate_tokens
from devpulse.plugins.privacy.spans import PatternSet, search_spans

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
# Number words: a quantity spelt out ("three services", "twice as many") is still a quantity.
NUMBER_WORDS = frozenset(
    w.encode()
    for w in [
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "fifteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "hundred",
        "thousand",
        "million",
        "dozen",
        "twice",
        "double",
        "triple",
        "half",
        "third",
        "quarter",
        "percent",
    ]
)
# The words of either list: one pass in C keeps a prompt's listed words (few), and only those
# are sorted into the two counts.
_LISTED_WORDS = CONDITION_WORDS | NUMBER_WORDS
LONG_WORD = 10  # letters and digits: a long word is jargon more often than not

# A question that asks for a quantity (or a time) to be worked out: with two quantities in
# the text, an arithmetic word problem, however short its phrasing. "When did" and "when was"
# ask for a date to be recalled, so only the present and future tenses count.
QUANTITY = _words(
    "how (?:many|much|long|far|old|fast|soon|often|tall|big|large|heavy|high)",
    "(?:at )?what (?:time|age|speed|rate|price|cost|percentage|fraction|distance)",
    "what(?:'s| is| was| will be| are| were) (?:the|their|his|her|its|our|my|your) "
    "(?:[\\pL-]+ )?(?:total|sum|difference|product|average|mean|number|amount|cost|price|"
    "value|ratio|speed|area|volume|probability|distance|time|age|share|profit)",
    "when (?:does|will|do|would|should|can)",
    "(?:find|calculate|compute|determine|work out|figure out)",
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


# A request to work something out rather than recall or restate it: to prove, derive, solve,
# compute, implement or design. Only as an instruction (at the start of a sentence, perhaps
# after "please" or "can you"), so a question that merely mentions a proof does not count;
# "step by step" and "show that" count anywhere.
DERIVE = re2.compile(
    r"(?:(?:^|[.!?:;]\s|\n)\s*(?i:(?:please |now |then |also |so |can you |could you |"
    r"would you |help me |i need (?:you )?to |let's |try to |we need to |how (?:do|can|would|"
    r"should) (?:i|we|you) )?(?:prove|derive|deduce|show|solve|compute|calculate|determine|"
    r"simplify|integrate|differentiate|factori[sz]e|implement|design|architect|devise|"
    r"formulate|optimi[sz]e|debug|work out|figure out|construct|verify))"
    r"|(?i:step[- ]by[- ]step|show that|prove that|show your work|justify))(?:[^\pL\pN_]|$)"
)
# Code to be written, as opposed to code shown: a writing verb, then (within the sentence) a
# thing made of code.
CODE_REQUEST = re2.compile(
    r"(?i:(?:write|implement|build|create|code|program|develop|generate|fix|refactor|"
    r"optimi[sz]e|make)[^.?!\n]{0,60}(?:function|method|class|script|program|algorithm|query|"
    r"endpoint|api|regex|parser|module|library|cli|server|test|data structure|cache|queue|"
    r"in (?:python|java|javascript|typescript|go|rust|c|c\+\+|c#|sql|bash|ruby|kotlin|swift)))"
    r"(?:[^\pL\pN_]|$)"
)
# A short question that asks to recall a fact or a definition, as the whole request: who,
# where, when was, what does X mean / stand for, define. Both models know such things.
RECALL = re2.compile(
    r"^\s*(?i:(?:who (?:is|was|were|are|wrote|invented|discovered|founded|painted)|"
    r"where (?:is|was|are|do|does)|when (?:was|did|were)|what (?:does|do) [^?\n]{1,40} "
    r"(?:mean|stand for)|define|what is the (?:capital|meaning|definition|name)|"
    r"what year|which (?:country|city|year))[^\n]{0,80})$"
)
# Several steps or constraints to hold together: sequencing words, limits and goals.
STRUCTURE = _words(
    "multi-?step",
    "steps?",
    "stages?",
    "phases?",
    "then",
    "after that",
    "finally",
    "across",
    "without",
    "while (?:keeping|ensuring|preserving|maintaining|minimi[sz]ing|avoiding)",
    "such that",
    "so that",
    "subject to",
    "constraints?",
    "ensur(?:e|ing)",
    "at (?:most|least)",
    "no more than",
    "no fewer than",
    "minimi[sz]e",
    "maximi[sz]e",
    "trade-?offs?",
    "edge cases?",
    "in (?:o|O)\\(",
)
# Formal notation: operators between symbols, powers and indices, LaTeX, f(x), and the
# Unicode blocks of mathematical operators and arrows (with the plus-minus, times and
# division signs).
FORMAL = re2.compile(
    r"[\pL\pN)\]]\s*(?:[=<>^]|<=|>=|!=|\*\*)\s*[\pL\pN(\-]|[\pL\pN]_\{?[\pL\pN]"
    r"|\\(?:frac|sqrt|sum|int|prod|lim|cdot|leq|geq|neq|infty|mathbb|binom)"
    r"|[\x{2200}-\x{22FF}\x{2190}-\x{21FF}\x{B1}\x{D7}\x{F7}]|\b[a-zA-Z]\([a-z](?:,\s*[a-z])*\)"
)


# Answer options: a line labelled A and one labelled B ("A. ...", "B) ...", "(A) ...") make
# the prompt a choice among offered answers rather than an open request. Plain substring
# tests: a multi-line RE2 pattern cost a sixth of the whole feature extraction.
OPTION_LABELS = tuple((f"\n{c}.", f"\n{c})", f"\n({c})") for c in "AB")


def _window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def _count(pattern: re2._Regexp, data: bytes, cap: int) -> int:
    """Matches of `pattern` in `data`, up to `cap` (each match costs a call into RE2)."""
    found, pos = 0, 0
    while found < cap:
        spans = search_spans(pattern, data, pos)
        if spans is None:
            break
        found += 1
        pos = max(spans[0][1], pos + 1)
    return found


# The patterns, in one RE2 set: one pass says which of them match at all, so a pattern that
# does not costs no search of its own (each is a pass over the window).
_PATTERNS = (QUANTITY, PROSE, RECALL, DERIVE, CODE_REQUEST, CODE, STRUCTURE, FORMAL)
_PATTERN_SET = PatternSet(pattern.pattern for pattern in _PATTERNS)


def _matching(data: bytes) -> frozenset[re2._Regexp]:
    """The patterns that match somewhere in `data` (all of them, if the set gave up)."""
    matched = _PATTERN_SET.matching(data)
    if matched is None:
        return frozenset(_PATTERNS)
    return frozenset(_PATTERNS[i] for i in matched)


# A word's length (up to 255) to 1 if the word is long, else 0.
_IS_LONG = bytes(int(n >= LONG_WORD) for n in range(256))


def _long_words(words: list[bytes]) -> int:
    """How many of `words` are LONG_WORD characters or more, counted in C."""
    try:
        return bytes(map(len, words)).translate(_IS_LONG).count(1)
    except ValueError:  # a word of 256 characters or more: counted one by one
        return sum(len(w) >= LONG_WORD for w in words)


def extract(text: str, tokens: int | None = None) -> dict[str, float]:
    """The features of `text`, each a small non-negative number (mostly log counts).
    `tokens` is `estimate_tokens(text)` where the caller has it already."""
    window = _window(text)
    data = window.encode("utf-8", "surrogatepass")
    words = data.translate(_WORDS).split()
    numbers = len(data.translate(_DIGIT_RUNS).split())
    listed = [*filter(_LISTED_WORDS.__contains__, words)]  # in C: few words are listed
    quantities = numbers + sum(map(NUMBER_WORDS.__contains__, listed))
    conditions = sum(map(CONDITION_WORDS.__contains__, listed))
    long_words = _long_words(words) / max(1, len(words))
    matching = _matching(data)
    code = _count(CODE, data, 2) if CODE in matching else 0
    code_request = CODE_REQUEST in matching
    return {
        "tokens": math.log2(1 + (estimate_tokens(text) if tokens is None else tokens)),
        "numbers": math.log1p(numbers),
        "conditions": math.log1p(conditions),
        "long_words": long_words,
        "word_problem": float(quantities >= 2 and QUANTITY in matching),
        "code": code / 2,
        "prose": float(code == 0 and not code_request and PROSE in matching),
        "recall": float(RECALL in matching),
        "derive": float(DERIVE in matching),
        "code_request": float(code_request),
        "structure": min(_count(STRUCTURE, data, 3), 3) / 3 if STRUCTURE in matching else 0.0,
        "formal": _count(FORMAL, data, 4) / 4 if FORMAL in matching else 0.0,
        "options": float(all(any(m in window for m in marks) for marks in OPTION_LABELS)),
    }
