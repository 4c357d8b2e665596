"""Python-aware checks: walk the syntax tree of code in a prompt, and its comments.

Finds credentials hard-coded in assignments, keyword arguments and defaults (bandit's
B105-B107 idea, but checking the value too), connection strings built in code, imports of
internal packages, and proprietary licence headers in comments. Source that does not parse
yields nothing here; the regex rules still run over it.

The pass runs last, after the regex rules and the syntax readers, and parses a block only
for what they left: parsing costs more than the rest of a scan, and the readers see most of
the assignments it would (`worth_parsing`).
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import re2

from devpulse.core.types import PrivacyLevel
from devpulse.plugins.privacy.checks import (
    credential_name_strength,
    is_placeholder,
    looks_like_credential,
    name_words,
    names_a_look_alike,
    names_a_paging_token,
    public_by_design,
    spaced_password,
)
from devpulse.plugins.privacy.spans import (
    NOTHING_REPORTED,
    Reported,
    Spans,
    TwoPass,
    match_spans,
    search_parsed,
    search_spans,
    search_text,
)

# Parsing costs ~0.3 ms per KB: past this much code in one block, or in one text, the regex
# rules alone cover it (their generic credential rules see the same assignments). In bytes.
MAX_SOURCE_BYTES = 128 * 1024
MAX_PARSED_PER_TEXT = 256 * 1024
# A block with more clues than this (a pasted log of f-strings, a run built to stall the
# clue loop) is parsed rather than weighed clue by clue: each clue costs about 2 us.
MAX_CLUES = 256
MAX_JUDGED_BYTES = 4096  # a literal is judged by its first this many bytes

# Every pattern here reads request text (names, literals, comments, whole blocks): RE2.
CREDENTIAL_NAME = re2.compile(
    r"(?i)(pass(?:word|wd|phrase)?|pwd|secret|token|api_?key|apikey|access_?key|auth_?key"
    r"|private_?key|client_?secret|credentials?|conn(?:ection)?_?str(?:ing)?|dsn)"
)
# Names that describe a credential rather than hold one: TOKEN_URL, password_field, ... and
# in camelCase (apiKeyId, tokenUrl: a JSON log's field, a JavaScript object's key).
# (`\n?$` is the `$` of Python's `re`, which also matches before a final newline.)
METADATA_SUFFIX = re2.compile(
    r"(?i)_(?:url|uri|endpoint|path|file|name|type|field|len(?:gth)?|min|max|policy|prompt"
    r"|label|header|env|var|id|count|expiry|expires|ttl|regex|pattern|hash|format|prefix"
    r"|encryption|policies|permissions?|complexity|strength)\n?$"
    r"|[a-z0-9](?-i:Url|URL|Uri|URI|Endpoint|Path|File|Name|Type|Field|Length|Id|ID|Count"
    r"|Expiry|Expires|Ttl|TTL|Header|Prefix|Hash|Format|Label|Policy|Env|Var)\n?$"
)
PROPRIETARY_COMMENT = re2.compile(
    r"(?i)all rights reserved|proprietary|confidential|internal use only"
    r"|do not (?:distribute|disclose)|unauthori[sz]ed copying"
)
# Calls whose second and later positional arguments are credentials.
CREDENTIAL_CALLS = frozenset(
    {
        "login",
        "authenticate",
        "auth",
        "connect",
        "set_password",
        "HTTPBasicAuth",
        "HTTPDigestAuth",
        "BasicAuth",
        "basic_auth",
        "sign_in",
        "signin",
        "username_pw_set",  # paho-mqtt's client.username_pw_set(user, password)
    }
)
OPEN_SOURCE_GRANT = re2.compile(
    r"(?i)redistribution and use|permission is hereby granted|licensed under the|SPDX-License"
    r"|GNU (?:Lesser )?General Public License|MIT License|Apache License|Mozilla Public"
)
URL_WITH_USERINFO = re2.compile(r"(?i)^[a-z][a-z0-9+.-]*://")
# What could make a parse worth its cost (see `worth_parsing`), one group for each clue: an
# f-string (a URL with user info may be built in it, or in a literal joined to it); a call
# whose later positional arguments are credentials (CREDENTIAL_CALLS); an import of an
# internal package ({names}); and a credential-like name bound to a string literal, perhaps
# after an annotation (`x: str = "..."`) or another target (`a = b = "..."`), in a dict
# (`"password": "..."`) or a comparison, with the literal's text when a quote closes it on
# its line (dq or sq), else just its opening quote. Blanks may hold a backslash that
# continues the line; `[\pL\pN_]` is Python's `\w` (RE2's is ASCII).
CLUES = (
    r"(?P<fstring>\b(?i:f|rf|fr)[\"'])"
    r"|(?P<call>\b(?:login|authenticate|auth|connect|set_password|HTTPBasicAuth|HTTPDigestAuth"
    r"|BasicAuth|basic_auth|sign_in|signin|username_pw_set)(?:\s|\\)*\()"
    r"|\b(?:import|from)(?:\s|\\)+\.*(?P<module>(?:{names})[\w.]*)"
    r"|(?i:(?P<name>(?:pass(?:word|wd|phrase)?|pwd|secret|token|api_?key|apikey"
    r"|access_?key|auth_?key|private_?key|client_?secret|credentials?"
    r"|conn(?:ection)?_?str(?:ing)?|dsn)[\pL\pN_]*)"
    r"['\"\]]*(?:\s|\\)*(?:[:=]|==|!=)(?:\s|\\)*(?:[\w.\[\], |]+=(?:\s|\\)*)*[(\[]?(?:\s|\\)*"
    r"[rbuRBU]{0,2}"
    r"(?:\"(?P<dq>(?:[^\"\\\n\r]|\\(?s:.))*)\"|'(?P<sq>(?:[^'\\\n\r]|\\(?s:.))*)'|[\"']))"
)
_FSTRING, _CALL, _MODULE, _NAME, _DQ, _SQ = range(1, 7)
NOTHING = r"[^\x00-\x{10FFFF}]"  # a class that matches no character: no internal packages
LICENCE_COMMENT = re2.compile(
    r"(?i)#[^\n\r]*(?:rights reserved|proprietary|confidential|internal use"
    r"|do not (?:distribute|disclose)|unauthori[sz]ed)"
)
# A string literal after a comma: a positional argument past the first.
LATER_ARGUMENT = re2.compile(r",(?:[\s(\\]|#[^\n\r]*)*[rbuRBU]{0,2}[\"']")
# An argument list with no string, comment or nested call in it: its first `)` ends it.
PLAIN_ARGUMENTS = re2.compile(r"[^()\"'#]*\)")
# What follows a literal, read within AFTER_LITERAL_BYTES: blanks, line ends, backslashes
# and comments, then perhaps what makes the literal something other than a whole value (a
# literal Python joins to it, "abc" "def", or a third quote, """; or an `=`, which makes
# the literal an annotation, `password: "str" = ...`).
AFTER_LITERAL = re2.compile(r"(?:\s|\\|#[^\n\r]*)*(?P<more>[rbufRBUF]{0,2}[\"']|=(?:[^=]|$))?")
AFTER_LITERAL_BYTES = 256
# The first statement of a text, after blank and comment lines: either a character that no
# statement starts with, or a name with what follows it (a name, number or string after
# blanks; or a colon that ends the line). `[\pL\pN_]` is Python's `\w` (RE2's is ASCII).
# Lines end as Python's tokenizer ends them: at \n, \r\n or a lone \r.
FIRST_STATEMENT = re2.compile(
    r"(?m)\A(?:[ \t]*(?:#[^\n\r]*)?(?:\r\n?|\n))*[ \t]*"
    r"(?:[$?!><=,;)\]}|&^%/:`]"
    r"|(?P<name>[A-Za-z_][\pL\pN_]*)(?:[ \t]+(?P<follower>[A-Za-z_][\pL\pN_]*|[0-9\"'])"
    r"|(?P<quote>[\"'])|(?P<colon>[ \t]*:[ \t]*(?:#[^\n\r]*)?(?:$|\r))))"
)
STRING_PREFIXES = frozenset({"r", "u", "f", "b", "br", "rb", "fr", "rf"})
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "example.com", "example.org")
# A fence's opening line; the block runs to the next ``` or the end of the text.
FENCE_OPENER = re2.compile(rb"```[ \t]*(\w*)[^\n]*\n")  # RE2: linear on any input
PYTHON_TAGS = frozenset({b"", b"python", b"py", b"python3", b"ipython"})


class Hit(NamedTuple):
    """A raw finding: which rule, where (byte offsets in the text) and the value.

    A tuple rather than a dataclass: a scan makes many, and a frozen dataclass takes four
    times as long to build.
    """

    rule_id: str
    category: str
    level: PrivacyLevel
    start: int
    end: int
    value: str


def code_blocks(data: bytes) -> list[tuple[int, bytes]]:
    """Fenced Python (or untagged) blocks with their byte offsets; else the whole text.

    Works on the UTF-8 bytes the scanner already holds: finding the fences in a str would
    cost a conversion of every offset.
    """
    if b"```" not in data:
        return [(0, data)]
    blocks = []
    pos = 0
    while (opener := search_spans(FENCE_OPENER, data, pos)) is not None:
        (_, start), (tag_start, tag_end) = opener
        close = data.find(b"```", start)
        end = len(data) if close < 0 else close
        if data[tag_start:tag_end].lower() in PYTHON_TAGS:
            blocks.append((start, data[start:end]))
        if close < 0:
            break
        pos = close + 3
    return blocks


# The ids of the checks' findings, which `privacy.disabled_rules` may name.
RULE_IDS = (
    "py-hardcoded-credential",
    "py-credential-argument",
    "py-credential-default",
    "py-connection-string",
    "py-internal-import",
    "py-proprietary-header",
    "py-unverified",  # code past the parse's limits, with something the parse would weigh
)


def scan_python(
    data: bytes, internal_packages: Sequence[str], reported: Reported = NOTHING_REPORTED
) -> list[Hit]:
    """Every Python-aware hit in the code blocks of `data` (UTF-8), with byte offsets.

    A block is parsed only when a check could fire in it and add to what the other passes
    found, and its first line does not rule Python out (`worth_parsing`; `reported` holds
    what they found): parsing costs far more than either test.
    """
    hits: list[Hit] = []
    budget = MAX_PARSED_PER_TEXT
    for offset, block in code_blocks(data):
        too_long = len(block) > min(MAX_SOURCE_BYTES, budget)
        at = worth_parsing_at(block, offset, internal_packages, reported, unparsed=too_long)
        if at is None:
            continue
        if too_long:
            # Too much code to parse, and a check could fire in it: the regex rules do not
            # see all the parse does (a password passed to login() by position, a literal
            # split over lines), so the code is reported unchecked, never clean.
            hits.append(_unverified(block, offset, at))
            continue
        budget -= len(block)
        hits.extend(check_block(block, offset, internal_packages))
    return hits


def _whole(data: bytes, end: int) -> int:
    """`end`, or the start of the UTF-8 character it falls inside (a cut keeps whole ones)."""
    while 0 < end < len(data) and 0x80 <= data[end] < 0xC0:
        end -= 1
    return end


UNVERIFIED = "py-unverified"
MAX_UNVERIFIED_BYTES = 200  # the line shown for it: the clue's, cut short


def _unverified(block: bytes, offset: int, at: int) -> Hit:
    """The hit for code too long to parse: at the first clue that made it worth parsing."""
    end = block.find(b"\n", at)
    end = _whole(block, min(len(block) if end < 0 else end, at + MAX_UNVERIFIED_BYTES))
    line = block[at:end].decode("utf-8", "surrogatepass")
    return Hit(UNVERIFIED, "secret", PrivacyLevel.SECRET, offset + at, offset + end, line)


def check_block(block: bytes, offset: int, internal_packages: Sequence[str]) -> list[Hit]:
    """The checks' hits in one block of code at `offset` in the text; none if it is not
    Python. (`worth_parsing` has already asked the cheap first-line test.)"""
    source = block.decode("utf-8", "surrogatepass")
    try:
        with warnings.catch_warnings():  # a prompt's odd code is not our warning to print
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    lines = Lines(block, offset)
    hits = _TreeWalker(lines, tuple(internal_packages)).walk(tree)
    if b"#" in block and search_spans(PROPRIETARY_COMMENT, block, 0):  # tokenize is slow
        hits.extend(_comments(source, lines))
    return hits


def worth_parsing(
    block: bytes,
    offset: int,
    internal_packages: Sequence[str],
    reported: Reported = NOTHING_REPORTED,
) -> bool:
    """Whether a check could fire in `block`: see `worth_parsing_at`."""
    return worth_parsing_at(block, offset, internal_packages, reported) is not None


def worth_parsing_at(
    block: bytes,
    offset: int,
    internal_packages: Sequence[str],
    reported: Reported = NOTHING_REPORTED,
    *,
    unparsed: bool = False,
) -> int | None:
    """Whether a check could fire in `block` (at `offset` in the text) and find something
    that the other passes did not, as one RE2 pass over the block's clues can tell.

    `reported` holds what the other passes found, with byte offsets in the text. The
    syntax readers see the same assignments as the parse and the `internal-package` rule the
    same imports, so on most prompts they have found what it would, and it is skipped:
    - a licence marker in a comment always is worth a parse;
    - an f-string, if the block has `://` and `@` (a connection string built in code) or
      escapes;
    - a login-like call, if a string literal may follow a comma in its arguments
      (`login(u, "pw")`);
    - an import of an internal package, if no internal finding holds its name;
    - a credential-like name bound to a string literal, if no secret finding overlaps the
      literal and it could pass the parse's own test (`is_credential_name`,
      `looks_like_credential`); a literal with escapes, joined to the next one or followed
      by `=` (an annotation) always is. A quote that no literal closes on its line opens
      none: it lies in a comment or a string, or the block does not parse.

    None is, either, when the block's first line rules Python out (`opens_with_prose`): that
    is asked first, as it reads only the block's first lines (half the bench's prompts
    open with prose).

    Each clue costs one search from the last; the licence comment, a literal after a comma
    and the f-string's URL are each looked for once, in the whole block. Past MAX_CLUES
    clues the block is parsed.

    The answer is where in the block the clue that decided it starts (the licence comment,
    or the first clue, where past MAX_CLUES), or None where no check could fire.

    A block that will not be parsed, whatever the answer (`unparsed`: too long, or past
    what one text may have parsed), only reported, has its clues read as the syntax readers
    read their matches (`spans.search_parsed`): a clue is found by its extent, and its
    groups read within its first bytes, so that a megabyte-long literal costs what a short
    one does; a clue that cannot be read so counts.
    """
    if _opens_with_prose(block):
        return None
    licence = search_spans(LICENCE_COMMENT, block, 0) if b"#" in block else None
    if licence is not None:
        return licence[0][0]
    search = _clue_search(block, internal_packages, long=unparsed)
    found = search(0)
    if found is None:
        return None
    return _clues_worth_parsing(block, offset, search, found, reported)


def _clue_search(
    block: bytes, internal_packages: Sequence[str], *, long: bool
) -> Callable[[int], Spans | None]:
    """The search for the next clue in `block` from a position: its spans, or None. In a
    long block a clue too long to read has its whole match's span alone (`_UNREAD`)."""
    if not long:
        clues = _clues(internal_packages)
        return lambda pos: search_spans(clues, block, pos)
    bounded = _bounded_clues(internal_packages)

    def search(pos: int) -> Spans | None:
        found = search_parsed(bounded, block, pos)
        if found is None:
            return None
        start, end, spans = found
        return spans if spans is not None else [(start, end), *_UNREAD]

    return search


_UNREAD = [(-1, -1)] * _SQ  # a clue's groups where they could not be read


def _clues_worth_parsing(
    block: bytes,
    offset: int,
    search: Callable[[int], Spans | None],
    found: Spans | None,
    reported: Reported,
) -> int | None:
    """The clue loop of `worth_parsing_at`, from its first clue, `found`: where the clue
    that makes the block worth parsing starts, or None."""
    first = found[0][0] if found is not None else 0
    # Whether an f-string could build a URL with user info, or escapes could make one.
    built_url = b"\\" in block or (b"://" in block and b"@" in block)
    later_argument: list[bool] = []  # whether a literal follows a comma: asked at most once
    for _ in range(MAX_CLUES):
        if found is None:
            return None
        start, pos = found[0]  # no clue is empty
        if found[1:] == _UNREAD:
            return start  # too long to read: it may be anything, so it counts
        if found[_FSTRING][0] >= 0:
            if built_url:
                return start
        elif found[_CALL][0] >= 0:
            if _call_worth_parsing(block, pos, later_argument):
                return start
        elif found[_MODULE][0] >= 0:
            module_start, module_end = found[_MODULE]
            if not reported.holds(offset + module_start, offset + module_end, "internal"):
                return start
        elif _bound_literal_worth_parsing(block, offset, found, reported):
            return start
        else:
            pos = found[_NAME][1]  # the next clue may start past the name (`a = dsn = "..."`)
        found = search(pos)
    return first  # too many clues to weigh: the parse, bounded by MAX_PARSED_PER_TEXT, decides


def _call_worth_parsing(block: bytes, pos: int, later_argument: list[bool]) -> bool:
    """For a CLUES match of a login-like call ending at `pos`: see `worth_parsing`.
    `later_argument` caches, for the block, whether a literal follows a comma anywhere."""
    if match_spans(PLAIN_ARGUMENTS, block, pos, len(block)) is not None:
        return False
    if not later_argument:
        later_argument.append(search_spans(LATER_ARGUMENT, block, 0) is not None)
    return later_argument[0]


def _bound_literal_worth_parsing(
    block: bytes, offset: int, found: Spans, reported: Reported
) -> bool:
    """For a CLUES match of a name bound to a literal: see `worth_parsing`."""
    value = found[_DQ] if found[_DQ][0] >= 0 else found[_SQ]
    if value[0] < 0:
        return False  # a quote that no literal closes on its line: in a comment or a string
    if reported.overlaps(offset + value[0], offset + value[1], "secret"):
        return False  # its secret is reported: the parse would tell it again
    end = found[0][1]
    stop = min(len(block), end + AFTER_LITERAL_BYTES)
    after = match_spans(AFTER_LITERAL, block, end, stop)
    if after is None or after[1][0] >= 0 or (after[0][1] == stop and stop < len(block)):
        return True  # joined to more, an annotation, or too far to tell
    # judged by its first bytes, as the scanner judges values (a 1 MB literal's entropy alone
    # took 70 ms)
    end = _whole(block, min(value[1], value[0] + MAX_JUDGED_BYTES))
    literal = block[value[0] : end].decode("utf-8", "surrogatepass")
    if "\\" in literal:
        return True  # its value is what the escapes make it: the parse reads them
    name = block[slice(*found[_NAME])].decode("utf-8", "surrogatepass")
    # as `_credential` judges it: a passphrase with blanks too
    return is_credential_name(name) and (
        looks_like_credential(literal) or spaced_password(name, literal)
    )


def opens_with_prose(source: str) -> bool:
    """Whether the first statement rules out Python, which the parser takes ~25 us to say.

    Only what the grammar forbids at the start of a module counts: a character no statement
    starts with ("$ ls", "> quote", "}"), a name followed by another name, a number or a
    string ("Refactor this", "May 21", "export X", "What's") unless a keyword is involved
    (`import os`, `x if y`) or the name is a string prefix (`rb"..."`), or a lone `name:`
    ("services:" in YAML).
    """
    return _opens_with_prose(source.encode("utf-8", "surrogatepass"))


def _opens_with_prose(data: bytes) -> bool:
    """`opens_with_prose` of the source whose UTF-8 bytes are `data`."""
    first = search_spans(FIRST_STATEMENT, data, 0)
    if first is None:
        return False
    _, (name_start, name_end), follower, quote, colon = first
    if name_start < 0:
        return True  # a character that cannot start a statement
    name = data[name_start:name_end].decode()  # RE2 matched whole UTF-8 characters
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return False
    if colon[0] >= 0:
        return True
    if quote[0] >= 0:  # What's, but not the prefixes of r"", b'', f"", ...
        return name.lower() not in STRING_PREFIXES
    return follower[0] >= 0 and not keyword.iskeyword(data[slice(*follower)].decode())


def _clues(internal_packages: Sequence[str]) -> Any:
    """CLUES with the internal packages' imports filled in."""
    key = tuple(internal_packages)
    if key not in _CLUES:
        names = "|".join(re2.escape(p) for p in key) or NOTHING
        _CLUES[key] = re2.compile(CLUES.replace("{names}", names))
    return _CLUES[key]


_CLUES: dict[tuple[str, ...], Any] = {}


def _bounded_clues(internal_packages: Sequence[str]) -> TwoPass:
    """CLUES as `_clues` has them, compiled to be found without groups first."""
    key = tuple(internal_packages)
    if key not in _BOUNDED_CLUES:
        names = "|".join(re2.escape(p) for p in key) or NOTHING
        _BOUNDED_CLUES[key] = TwoPass.compile(CLUES.replace("{names}", names).encode())
    return _BOUNDED_CLUES[key]


_BOUNDED_CLUES: dict[tuple[str, ...], TwoPass] = {}


class Lines:
    """Maps the parser's (line, UTF-8 byte column) positions to byte offsets in the text.

    Lines end as Python's tokenizer ends them: at \\n, \\r\\n or \\r.
    """

    def __init__(self, block: bytes, offset: int) -> None:
        self.block = block
        self.starts = [offset]
        for line in block.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        return self.starts[min(lineno, len(self.starts)) - 1] + col

    def span(self, node: ast.expr, value: str | None = None) -> tuple[int, int]:
        """The node's span; with `value`, narrowed to that text inside it (no quotes)."""
        start = self.offset(node.lineno, node.col_offset)
        end_line = node.end_lineno or node.lineno
        end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
        end = self.offset(end_line, end_col)
        if value:
            needle = value.encode("utf-8", "surrogatepass")
            base = self.starts[0]
            inner = self.block.find(needle, start - base, end - base)
            if inner >= 0:
                return base + inner, base + inner + len(needle)
        return start, end


class _TreeWalker:
    """Visits every node once (ast.walk) and hands the interesting ones to their check."""

    def __init__(self, lines: Lines, internal_packages: tuple[str, ...]) -> None:
        self.lines = lines
        self.internal_packages = internal_packages
        self.hits: list[Hit] = []

    def walk(self, tree: ast.AST) -> list[Hit]:
        checks = {
            ast.Assign: self.visit_Assign,
            ast.AnnAssign: self.visit_AnnAssign,
            ast.Dict: self.visit_Dict,
            ast.Compare: self.visit_Compare,
            ast.Call: self.visit_Call,
            ast.FunctionDef: self.visit_FunctionDef,
            ast.AsyncFunctionDef: self.visit_FunctionDef,
            ast.JoinedStr: self.visit_JoinedStr,
            ast.Import: self.visit_Import,
            ast.ImportFrom: self.visit_ImportFrom,
        }
        stack: list[ast.AST] = [tree]  # depth first; ast.walk's queue costs twice as much
        while stack:
            node = stack.pop()
            check = checks.get(type(node))
            if check is not None:
                check(node)  # type: ignore[operator]  # each check takes its own node type
            for field in node._fields:
                child = getattr(node, field, None)
                if isinstance(child, ast.AST):
                    stack.append(child)
                elif isinstance(child, list):
                    stack.extend(item for item in child if isinstance(item, ast.AST))
        return self.hits

    def _credential(self, rule_id: str, name: str | None, value: ast.expr | None) -> None:
        if name is None or value is None or not is_credential_name(name):
            return
        if isinstance(value, ast.Constant) and isinstance(value.value, str | bytes):
            text = value.value if isinstance(value.value, str) else value.value.decode("latin-1")
            if _settings_without_credential(text):
                return
            # a passphrase with blanks, as the syntax readers judge one: Google's app
            # passwords are four groups of four letters (smtp.login(user, "abcd efgh ..."))
            if looks_like_credential(text) or spaced_password(name, text):
                start, end = self.lines.span(value, text)
                self.hits.append(Hit(rule_id, "secret", PrivacyLevel.SECRET, start, end, text))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._credential("py-hardcoded-credential", target_name(target), node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._credential("py-hardcoded-credential", target_name(node.target), node.value)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self._credential("py-hardcoded-credential", key.value, value)

    def visit_Compare(self, node: ast.Compare) -> None:
        if len(node.comparators) == 1 and isinstance(node.ops[0], ast.Eq | ast.NotEq):
            self._credential("py-hardcoded-credential", target_name(node.left), node.comparators[0])

    def visit_Call(self, node: ast.Call) -> None:
        for kw in node.keywords:
            self._credential("py-credential-argument", kw.arg, kw.value)
        if call_name(node) in CREDENTIAL_CALLS:  # smtp.login(user, "pw"), HTTPBasicAuth(u, "pw")
            for arg in node.args[1:]:
                self._credential("py-credential-argument", "password", arg)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        pairs = list(
            zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
        )
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d]
        for arg, default in pairs:
            self._credential("py-credential-default", arg.arg, default)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        """f"postgresql://{user}:{password}@db.prod:5432/app" builds a connection string."""
        literal = "".join(
            "\0" if isinstance(v, ast.FormattedValue) else str(v.value)
            for v in node.values
            if isinstance(v, ast.FormattedValue | ast.Constant)
        )
        if "@" in literal and search_text(URL_WITH_USERINFO, literal):
            host = literal.split("@", 1)[1].split("/", 1)[0].split(":", 1)[0]
            if host != "\0" and not host.startswith(LOCAL_HOSTS):
                start, end = self.lines.span(node)
                self.hits.append(
                    Hit(
                        "py-connection-string",
                        "internal",
                        PrivacyLevel.INTERNAL,
                        start,
                        end,
                        literal.replace("\0", "{}"),
                    )
                )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._internal_import(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module:
            self._internal_import(node, node.module)

    def _internal_import(self, node: ast.stmt, module: str) -> None:
        if self.internal_packages and module.startswith(self.internal_packages):
            start = self.lines.offset(node.lineno, node.col_offset)
            end = self.lines.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
            self.hits.append(
                Hit("py-internal-import", "internal", PrivacyLevel.INTERNAL, start, end, module)
            )


def call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def target_name(node: ast.expr) -> str | None:
    """The name a value is bound to: `x`, `self.x`, `cfg["x"]`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        key = node.slice.value
        return key if isinstance(key, str) else None
    return None


def _settings_without_credential(text: str) -> bool:
    """A connection string of `name=value` settings between `;` (ADO.NET's, Azure's) none
    of which is a credential by its name and its value: `InstrumentationKey=...;
    IngestionEndpoint=...` (Application Insights') says where telemetry goes, and
    Azurite's well-known AccountKey opens a local emulator. Its name (conn_str,
    ConnectionString) says it may hold one; its settings say whether it does."""
    settings = [part.partition("=") for part in text.split(";") if part.strip()]
    if len(settings) < 2 or not all(equals for _, equals, _ in settings):
        return False  # another shape: a URL, a DSN, a token
    return not any(
        _setting_names_a_credential(name.strip())
        and looks_like_credential(value)
        and not is_placeholder(value)
        for name, _, value in settings
    )


# A connection string's settings name their secret in words that a variable's name seldom
# uses alone: PrimaryKey, SharedAccessSignature, Sig, Jwt.
_SETTING_SECRET_WORDS = frozenset(
    {"key", "keys", "secret", "token", "signature", "sig", "jwt", "password", "pwd", "passwd"}
)


def _setting_names_a_credential(name: str) -> bool:
    """Whether a connection string's setting `name` may hold a credential: any name that
    says so, or one with a key's, a signature's or a token's word, but a key that is public
    by design (InstrumentationKey)."""
    if credential_name_strength(name) > 0:
        return True
    words = name_words(name)
    public = public_by_design().key_kinds
    return any(
        word in _SETTING_SECRET_WORDS and not (word == "key" and i and words[i - 1] in public)
        for i, word in enumerate(words)
    )


# Words before "hashed" that say the value is not hashed yet: not_hashed_password,
# password_to_be_hashed (where "hashed" ends the name, it names no digest either).
_NOT_YET_HASHED = frozenset({"not", "non", "un", "be", "before", "pre", "unless"})


def _names_a_digest(words: list[str]) -> bool:
    """hashed_secret, hashedPassword, user_hashed_pw: "hashed" before the credential's word,
    and nothing before it that says the value is not hashed yet."""
    for i, word in enumerate(words[:-1]):
        if word == "hashed":
            return not any(w in _NOT_YET_HASHED for w in words[:i])
    return False


def is_credential_name(name: str) -> bool:
    data = name.encode("utf-8", "surrogatepass")
    if search_spans(CREDENTIAL_NAME, data, 0) is None or names_a_look_alike(name):
        return False
    words = name_words(name)
    if names_a_paging_token(words):
        return False  # nextPageToken, ClientRequestToken: an API's cursor (checks.py)
    if _names_a_digest(words):
        return False  # hashed_secret, hashedPassword: a digest of it (detect-secrets' baseline)
    return search_spans(METADATA_SUFFIX, data, 0) is None


def _comments(source: str, lines: Lines) -> Iterator[Hit]:
    """Proprietary licence headers and confidentiality notes in comments.

    "All rights reserved" also heads open-source licences (BSD, MIT): comments that carry an
    open-source grant are not proprietary.
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source, newline="").readline))
    except (tokenize.TokenError, SyntaxError):
        return
    comments = "\n".join(t.string for t in tokens if t.type == tokenize.COMMENT)
    if search_text(OPEN_SOURCE_GRANT, comments):
        return
    for tok in tokens:
        if tok.type == tokenize.COMMENT and search_text(PROPRIETARY_COMMENT, tok.string):
            row, col = tok.start  # col counts characters; Lines counts bytes
            start = lines.offset(row, len(tok.line[:col].encode("utf-8", "surrogatepass")))
            yield Hit(
                "py-proprietary-header",
                "internal",
                PrivacyLevel.INTERNAL,
                start,
                start + len(tok.string.encode("utf-8", "surrogatepass")),
                tok.string,
            )
