"""Python-aware checks: walk the syntax tree of code in a prompt, and its comments.

Finds credentials hard-coded in assignments, keyword arguments and defaults (bandit's
B105-B107 idea, but checking the value too), connection strings built in code, imports of
internal packages, and proprietary licence headers in comments. Source that does not parse
yields nothing here; the regex rules still run over it.
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import re2

from devpulse.core.types import PrivacyLevel
from devpulse.plugins.privacy.checks import looks_like_credential
from devpulse.plugins.privacy.spans import search_spans, search_text

# Parsing costs ~0.3 ms per KB: past this much code in one block, or in one text, the regex
# rules alone cover it (their generic credential rules see the same assignments). In bytes.
MAX_SOURCE_BYTES = 128 * 1024
MAX_PARSED_PER_TEXT = 256 * 1024

# Every pattern here reads request text (names, literals, comments, whole blocks): RE2.
CREDENTIAL_NAME = re2.compile(
    r"(?i)(pass(?:word|wd|phrase)?|pwd|secret|token|api_?key|apikey|access_?key|auth_?key"
    r"|private_?key|client_?secret|credentials?|conn(?:ection)?_?str(?:ing)?|dsn)"
)
# Names that describe a credential rather than hold one: TOKEN_URL, password_field, ...
# (`\n?$` is the `$` of Python's `re`, which also matches before a final newline.)
METADATA_SUFFIX = re2.compile(
    r"(?i)_(?:url|uri|endpoint|path|file|name|type|field|len(?:gth)?|min|max|policy|prompt"
    r"|label|header|env|var|id|count|expiry|expires|ttl|regex|pattern|hash|format|prefix)\n?$"
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
    }
)
OPEN_SOURCE_GRANT = re2.compile(
    r"(?i)redistribution and use|permission is hereby granted|licensed under the|SPDX-License"
    r"|GNU (?:Lesser )?General Public License|MIT License|Apache License|Mozilla Public"
)
URL_WITH_USERINFO = re2.compile(r"(?i)^[a-z][a-z0-9+.-]*://")
# The first statement of a text, after blank and comment lines: either a character that no
# statement starts with, or a name with what follows it (a name, number or string after
# blanks; or a colon that ends the line). `[\pL\pN_]` is Python's `\w` (RE2's is ASCII).
FIRST_STATEMENT = re2.compile(
    r"(?m)\A(?:[ \t]*(?:#[^\n]*)?\n)*[ \t]*"
    r"(?:[$?!><=,;)\]}|&^%/:`]"
    r"|(?P<name>[A-Za-z_][\pL\pN_]*)(?:[ \t]+(?P<follower>[A-Za-z_][\pL\pN_]*|[0-9\"'])"
    r"|(?P<quote>[\"'])|(?P<colon>[ \t]*:[ \t]*(?:#[^\n]*)?$)))"
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


def scan_python(data: bytes, internal_packages: Sequence[str]) -> list[Hit]:
    """Every Python-aware hit in the code blocks of `data` (UTF-8), with byte offsets.

    A block is parsed only when a cheap RE2 pass says a check could fire in it (a
    credential-like name bound to a string literal, a login-like call, an import, a URL
    with user info, a comment with a licence marker) and its first line does not rule
    Python out: parsing costs far more than either.
    """
    hits: list[Hit] = []
    worth_parsing = _worth_parsing(internal_packages)
    budget = MAX_PARSED_PER_TEXT
    for offset, block in code_blocks(data):
        if len(block) > min(MAX_SOURCE_BYTES, budget) or not search_spans(worth_parsing, block, 0):
            continue
        budget -= len(block)
        source = block.decode("utf-8", "surrogatepass")
        if opens_with_prose(source):
            continue
        try:
            with warnings.catch_warnings():  # a prompt's odd code is not our warning to print
                warnings.simplefilter("ignore")
                tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        lines = Lines(block, offset)
        hits.extend(_TreeWalker(lines, tuple(internal_packages)).walk(tree))
        if b"#" in block and search_spans(PROPRIETARY_COMMENT, block, 0):  # tokenize is slow
            hits.extend(_comments(source, lines))
    return hits


def opens_with_prose(source: str) -> bool:
    """Whether the first statement rules out Python, which the parser takes ~25 us to say.

    Only what the grammar forbids at the start of a module counts: a character no statement
    starts with ("$ ls", "> quote", "}"), a name followed by another name, a number or a
    string ("Refactor this", "May 21", "export X", "What's") unless a keyword is involved
    (`import os`, `x if y`) or the name is a string prefix (`rb"..."`), or a lone `name:`
    ("services:" in YAML).
    """
    data = source.encode("utf-8", "surrogatepass")
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


def _worth_parsing(internal_packages: Sequence[str]) -> Any:
    key = tuple(internal_packages)
    if key not in _WORTH_PARSING:
        imports = "|".join(re2.escape(p) for p in key)
        _WORTH_PARSING[key] = re2.compile(
            (
                r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api_?key|apikey|access_?key"
                r"|auth_?key|private_?key|client_?secret|credentials?|conn(?:ection)?_?str(?:ing)?|dsn)"
                # ...bound to a string literal, perhaps after an annotation: x: str = "..."
                r"\w*['\"\]]*\s*(?:[:=]|==|!=)\s*(?:[\w.\[\], |]+=\s*)?[(\[]?\s*[rbuRBU]{0,2}['\"]"
                r"|\b(?:login|auth\w*|connect|set_password|\w*BasicAuth|\w*DigestAuth|sign_?in)\s*\("
                r"|://[^\s]*\{|#[^\n]*(?:rights reserved|proprietary|confidential|internal use"
                r"|do not (?:distribute|disclose)|unauthori[sz]ed)"
                + (rf"|(?:import|from)\s+(?:{imports})" if imports else "")
            ).encode()
        )
    return _WORTH_PARSING[key]


_WORTH_PARSING: dict[tuple[str, ...], Any] = {}


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
            if looks_like_credential(text):
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


def is_credential_name(name: str) -> bool:
    data = name.encode("utf-8", "surrogatepass")
    if search_spans(CREDENTIAL_NAME, data, 0) is None:
        return False
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
