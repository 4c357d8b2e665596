"""The Python-aware checks: credentials in code, built connection strings, imports, headers."""

from __future__ import annotations

import ast
import keyword
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from devpulse import config_from_mapping
from devpulse.plugins.privacy import Scanner
from devpulse.plugins.privacy import scanner as scanner_module
from devpulse.plugins.privacy.pyast import (
    MAX_SOURCE_BYTES,
    check_block,
    code_blocks,
    opens_with_prose,
    scan_python,
    worth_parsing,
)
from devpulse.plugins.privacy.spans import NOTHING_REPORTED, Reported


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(config_from_mapping({"privacy": {"internal_packages": ["acme_"]}}).privacy)


def fenced(code: str) -> str:
    return f"Refactor this:\n```python\n{code}\n```\nThanks!"


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("DB_PASSWORD = 'x9$Kq2mPz!7vLr'", "py-hardcoded-credential"),
        ("DB_PASSWORD = 'x9$Kq2...'", "py-hardcoded-credential"),
        ("self.api_token: str = 'f8Kq2Lm9Xz3Rt7Wv'", "py-hardcoded-credential"),
        ("settings['client_secret'] = 'Zq4!mX8pR2vT'", "py-hardcoded-credential"),
        ("CONFIG = {'password': 'Hh7$kLq2Wz9m'}", "py-hardcoded-credential"),
        ("if password == 'Rt5#vXq9Lm2z':\n    login()", "py-hardcoded-credential"),
        ("conn = psycopg.connect(host=h, password='Jk8@pQ3zXw7v')", "py-credential-argument"),
        ("def login(user, password='Mn4%tR8qLx2z'):\n    pass", "py-credential-default"),
        ("async def f(*, token='Pq9!zX3mKw7r'):\n    pass", "py-credential-default"),
        ("url = f'postgresql://{user}:{pw}@billing-db.prod:5432/ledger'", "py-connection-string"),
        ("import acme_billing", "py-internal-import"),
        ("from acme_auth.tokens import issue", "py-internal-import"),
        ("# Copyright 2024 Acme Corp. All rights reserved.\nx = 1", "py-proprietary-header"),
    ],
)
def test_python_rules(scanner: Scanner, code: str, rule: str) -> None:
    """The check itself fires, and the scanner reports the value, by this pass or another."""
    text = fenced(code)
    assert rule in {h.rule_id for h in scan_python(text.encode(), ["acme_"])}
    category = "secret" if rule.endswith(("credential", "argument", "default")) else "internal"
    assert category in {f.category for f in scanner.scan(text)}


@pytest.mark.parametrize(
    "code",
    [
        "password = os.environ['DB_PASSWORD']",
        "password = getpass.getpass()",
        "api_key = 'YOUR_API_KEY'",
        "token = ''",
        "password = 'password'",
        "TOKEN_URL = 'https://auth.example.net/oauth/token'",
        "password_field = 'user_password_input'",
        "def login(user, password=None):\n    pass",
        "connect(password=settings.DB_PASSWORD)",
        "url = f'postgresql://{user}:{pw}@localhost:5432/test'",
        "import json\nfrom collections import Counter",
        "# This function is internal to the parser.\nx = 1",
        "bypass = 'Xk2fj39Qm7Lp'",  # words that only end in "pass"
        "compass_heading = 'Nw7kQ2xZ9pL4'",
        "lowpass = 'Hz4kQ9xZ2pL7'",
    ],
)
def test_python_look_alikes(scanner: Scanner, code: str) -> None:
    assert scanner.scan(fenced(code)) == []


def test_a_credential_found_by_several_passes_is_one_finding(scanner: Scanner) -> None:
    text = fenced("DB_PASSWORD = 'x9$Kq2mPz!7vLr'")
    (finding,) = scanner.scan(text)
    assert text[slice(*finding.span)] == "x9$Kq2mPz!7vLr"


def test_the_ast_rule_wins_over_the_generic_regex_on_the_same_value() -> None:
    scanner = Scanner(config_from_mapping({}).privacy)
    code = "smtp.login(user, 'x9$Kq2mPz!7vLr')"  # only the parse reads a positional password
    assert [f.rule_id for f in scanner.scan(fenced(code))] == ["py-credential-argument"]


def test_a_password_given_to_paho_mqtts_username_pw_set_is_found(scanner: Scanner) -> None:
    code = 'c = mqtt.Client()\nc.username_pw_set("sensor-gw", "Orchid2002.juniper")\n'
    assert [f.rule_id for f in scanner.scan(code)] == ["py-credential-argument"]
    assert scanner.scan('c.username_pw_set("sensor-gw", password)\n') == []


def test_a_specific_rule_wins_over_the_ast_rule(scanner: Scanner) -> None:
    code = "GITHUB_TOKEN = 'ghp_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5" + "'"
    assert [f.rule_id for f in scanner.scan(fenced(code))] == ["github-token"]


def test_span_points_at_the_value_inside_the_quotes(scanner: Scanner) -> None:
    text = fenced("x = 1\nDB_PASSWORD = 'x9$Kq2mPz!7vLr'")
    (finding,) = scanner.scan(text)
    assert text[slice(*finding.span)] == "x9$Kq2mPz!7vLr"


def test_whole_prompt_that_parses_as_python(scanner: Scanner) -> None:
    text = b"import acme_ledger\nSECRET = 'k2P!x9Qz7LmW'\n"
    hits = scan_python(text, ["acme_"])
    assert {"py-internal-import", "py-hardcoded-credential"} <= {h.rule_id for h in hits}
    assert {f.category for f in scanner.scan(text.decode())} == {"internal", "secret"}


def test_source_that_does_not_parse_falls_back_to_the_syntax_readers(scanner: Scanner) -> None:
    broken = fenced("def broken(:\n    password = 'Vt9#mK2pL7qR'")
    assert {f.rule_id for f in scanner.scan(broken)} == {"assigned-credential"}


# Code past the parse's limits: 250 KB of functions, then a password only the parse finds
# (a login() argument given by position).
FILLER = "".join(f"def f{i}(a, b):\n    return a + b * {i}\n\n" for i in range(6000))
LOGIN = "def notify(user):\n    s = smtplib.SMTP('mail')\n    s.login(user, 'x9$Kq2mPz!7vLr')\n"


def test_code_too_long_to_parse_with_a_clue_in_it_is_reported_unchecked(scanner: Scanner) -> None:
    assert [f.rule_id for f in scanner.scan(fenced(LOGIN))] == ["py-credential-argument"]
    text = fenced(FILLER + LOGIN)
    assert len(text) > MAX_SOURCE_BYTES
    (finding,) = scanner.scan(text)
    assert (finding.rule_id, finding.category) == ("py-unverified", "secret")
    assert text[slice(*finding.span)] == "login(user, 'x9$Kq2mPz!7vLr')"  # at the clue
    # blocks within the limit each, but past the limit on what one text may have parsed
    # (each worth a parse: a literal passed to login(), too short to be a password)
    weighed = fenced(FILLER[: MAX_SOURCE_BYTES - 1024] + "s.login(user, 'ok')\n")
    last = fenced(LOGIN + FILLER[: MAX_SOURCE_BYTES - 1024])
    assert [f.rule_id for f in scanner.scan(weighed * 2 + last)] == ["py-unverified"]


def test_code_too_long_to_parse_is_reported_whole_characters_and_all(scanner: Scanner) -> None:
    # the 200 bytes shown from `login(` end inside a two-byte character
    text = fenced(FILLER + "s.login(user, '" + "é" * 300 + "')\n")
    (finding,) = scanner.scan(text)
    assert finding.rule_id == "py-unverified"
    assert text[slice(*finding.span)] == "login(user, '" + "é" * 93


def test_code_too_long_to_parse_with_nothing_to_weigh_is_clean(scanner: Scanner) -> None:
    assert scanner.scan(fenced(FILLER)) == []
    prose = "Notes on the release.\n" + "The password policy changed; see the wiki.\n" * 8000
    assert scanner.scan(prose) == []


def test_spans_are_characters_around_non_ascii_code(scanner: Scanner) -> None:
    text = "Ünïcödé 🚀\n" + fenced("name = 'Zoë'; DB_PASSWORD = 'x9$Kq2mPz!7vLr'")
    (finding,) = scanner.scan(text)
    assert text[slice(*finding.span)] == "x9$Kq2mPz!7vLr"


def test_a_comment_span_after_non_ascii_text(scanner: Scanner) -> None:
    comment = "# © 2024 Zoë Corp — all rights reserved"
    text = "🚀 résumé\n" + fenced(f"x = 'é'  {comment}\ny = 2")
    (finding,) = [f for f in scanner.scan(text) if f.rule_id == "py-proprietary-header"]
    assert text[slice(*finding.span)] == comment


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_spans_follow_every_kind_of_line_ending(scanner: Scanner, newline: str) -> None:
    text = newline.join(["x = 1", "# Acme proprietary", "DB_PASSWORD = 'x9$Kq2mPz!7vLr'", ""])
    spans = {f.category: text[slice(*f.span)] for f in scanner.scan(text)}
    assert spans == {"secret": "x9$Kq2mPz!7vLr", "internal": "# Acme proprietary"}
    hits = {h.rule_id: text.encode()[h.start : h.end] for h in scan_python(text.encode(), ())}
    assert hits["py-hardcoded-credential"] == b"x9$Kq2mPz!7vLr"


def test_code_blocks_are_python_or_untagged_fences_up_to_the_next_fence() -> None:
    text = b"a\n```python\nx = 1\n```\n```bash\nls -la\n```\n```\ny = 2\n```\n````py  extra\nz = 3"
    blocks = [(text[:offset].count(b"\n"), block) for offset, block in code_blocks(text)]
    assert blocks == [(2, b"x = 1\n"), (8, b"y = 2\n"), (11, b"z = 3")]
    assert code_blocks(b"no fence: x = 1") == [(0, b"no fence: x = 1")]


@pytest.mark.parametrize(
    "source",
    [
        "Refactor this: x = 1",
        "What's this?",
        "$ ls -la",
        "> quoted",
        "services:\n  db: 1",
        "# comment\n\nMay 21 03:12:44 host sshd",
        "export TOKEN=abc",
    ],
)
def test_text_that_cannot_be_python_is_not_parsed(source: str) -> None:
    assert opens_with_prose(source)
    with pytest.raises(SyntaxError):
        ast.parse(source)


@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "x if y else z",
        "match x:\n    case 1: pass",
        'rb"x"',
        "a: int = 1",
        "...",
        "x = 'two words' # and a comment",
        "raise e from None",
        "lambda a, b: a if b else not a",
    ],
)
def test_python_that_opens_like_prose_is_still_parsed(source: str) -> None:
    assert not opens_with_prose(source)
    ast.parse(source)


NAMES = [*keyword.kwlist, *keyword.softkwlist, "x", "y_1", "print", "r", "rb", "What", "2", "0x1F"]
PUNCTUATION = [" ", "  ", "\t", "\n", "#c\n", ":", "=", "(", ")", "[", "]", "{", "}", ",", "."]
ODDITIES = ["'s'", '"t"', "'", "*", "@", "$", ">", "-", "+", "~", "\\\n", ";", "...", "!", "`", "%"]
PYTHONISH = st.lists(st.sampled_from([*NAMES, *PUNCTUATION, *ODDITIES]), max_size=12).map("".join)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@settings(max_examples=5000, deadline=None)
@given(source=PYTHONISH | st.text(max_size=40))
def test_the_prose_shortcut_never_skips_text_that_parses(source: str) -> None:
    """Skipping the parser must be sound: whatever it skips, the parser rejects too."""
    if opens_with_prose(source):
        with pytest.raises((SyntaxError, ValueError)):
            ast.parse(source)


def test_code_the_parser_warns_about_prints_nothing(scanner: Scanner, recwarn) -> None:
    code = 'pattern = "\\d+"\ny = 1if pattern else 2\nsmtp.login(user, "Zq4!mX8pR2vT")'
    assert "py-credential-argument" in {f.rule_id for f in scanner.scan(fenced(code))}
    assert not [w for w in recwarn if issubclass(w.category, SyntaxWarning | DeprecationWarning)]


# worth_parsing: the pass runs last and parses a block only for what the others left.
SECRET = "x9$Kq2mPz!7vLr"


@pytest.mark.parametrize(
    "code",
    [
        f"DB_PASSWORD = '{SECRET}'",  # nothing reported it yet
        f"token = '{SECRET[:6]}' '{SECRET[6:]}'",  # joined: the pieces alone say nothing
        f'password = (\n    "{SECRET[:6]}"\n    "{SECRET[6:]}"\n)',
        'api_key = """x9$Kq2mP\nz!7vLr"""',
        "secret = '\\x41\\x42c9$Kq2mPz!7'",  # escapes: the value is what they make it
        f"smtp.login(user, '{SECRET}')",
        f"smtp.login('a)b', '{SECRET}')",  # a string in the arguments: they may go on
        f"smtp.login(user,  # a comment)\n'{SECRET}')",
        "url = f'postgresql://{user}:{pw}@billing-db.prod:5432/ledger'",
        "# Copyright 2024 Acme Corp. All rights reserved.\nx = 1",
        "import acme_billing",
    ],
)
def test_a_block_is_parsed_for_what_only_the_parse_can_tell(code: str) -> None:
    assert worth_parsing(code.encode(), 0, ["acme_"], reported=NOTHING_REPORTED)


@pytest.mark.parametrize(
    "code",
    [
        "api_key = 'YOUR_API_KEY'",  # the parse's own test turns the value down
        "TOKEN_URL = 'https://auth.example.net/oauth/token'",  # and this name
        "password = getpass.getpass()",
        "smtp.login(user, password)",  # no literal among the later arguments
        'pw = getpass("password: ")',  # a name and a quote, but inside a literal
        "url = f'https://api.example.net/{path}'",  # built, but with no user info
        "x = 1",
    ],
)
def test_a_block_nothing_could_fire_in_is_not_parsed(code: str) -> None:
    assert not worth_parsing(code.encode(), 0, ["acme_"], reported=NOTHING_REPORTED)


def test_what_the_other_passes_reported_is_not_parsed_for_again() -> None:
    code = f"x = 1\nDB_PASSWORD = '{SECRET}'\nimport acme_billing\n".encode()
    value = code.index(SECRET.encode())
    module = code.index(b"acme_billing")
    secret = (value, value + len(SECRET), "secret")
    internal = (module, module + len(b"acme_billing"), "internal")
    offset = 40  # the block's place in the text: spans are the text's
    moved = [(s + offset, e + offset, c) for s, e, c in (secret, internal)]
    assert not worth_parsing(code, offset, ["acme_"], Reported(moved))
    assert worth_parsing(code, offset, ["acme_"], Reported(moved[:1]))  # the import is new
    assert worth_parsing(code, offset, ["acme_"], Reported(moved[1:]))  # the credential is
    assert worth_parsing(code, 0, ["acme_"], Reported(moved))  # spans elsewhere hold nothing
    assert worth_parsing(code, offset, ["acme_"], Reported((s, e, "pii") for s, e, _ in moved))


CODE_PIECES = st.sampled_from(
    [
        *("password", "api_key", "self.token", "cfg['client_secret']", "TOKEN_URL", "secretary"),
        *("x", "login", "smtp.login", "connect", "f", "def f", "import acme_x", "from acme_y"),
        *(" = ", ": str = ", " == ", "(", ")", ", ", "=", ": ", "{", "}", "\n", "    ", "\\\n"),
        *(f"'{SECRET}'", f'"{SECRET}"', "'abc'", '"""', "'''", "r'", "b'", "f'", "rb'"),
        *("'x9$Kq2'", "'mPz!7vLr'", "'\\x41\\x42'", "'YOUR_KEY'", "'https://a:b@c.io'"),
        *("'postgresql://{u}:{p}@db.prod/x'", "# all rights reserved", "# note", ";", "@"),
        *("'a)b'", "# c)\n", 'getpass("password: ")', "'password: '", '"', "'"),
        *("dsn", "password_file", "token_url", "secret_clé", ":\n", " = a = ", ': "str" = '),
        *("\r", "\r\n", "\t", "Literal['a']", "if not ", "pass", "# ", "'''x'''"),
    ]
)


@settings(max_examples=3000, deadline=None)
@given(pieces=st.lists(CODE_PIECES, max_size=14))
@example(pieces=["password", " = a = ", "TOKEN_URL", " = a = ", "'x9$Kq2'"])  # a chain
@example(pieces=["password", " = ", "r'", "password", "def f", "r'"])  # a passphrase
def test_what_the_parse_would_find_is_never_skipped(pieces: list[str]) -> None:
    """Skipping a parse must be sound: a block it skips, with nothing reported, is one
    the checks find nothing in."""
    block = "".join(pieces).encode()
    if not worth_parsing(block, 0, ["acme_"], reported=NOTHING_REPORTED):
        assert check_block(block, 0, ["acme_"]) == []


PACKAGES_SCANNER = Scanner(
    config_from_mapping({"privacy": {"internal_packages": ["acme_"]}}).privacy
)


@settings(max_examples=3000, deadline=None)
@given(pieces=st.lists(CODE_PIECES, max_size=14))
@example(pieces=["# all rights reserved", "\r", "{", "\r\n", "}"])  # a lone \r ends a line
def test_what_a_skipped_parse_would_find_was_reported(pieces: list[str]) -> None:
    """With what the scanner's rules and readers found reported, a block it skips is one
    whose every hit a reported finding of the same category overlaps: the parse would only
    have told again what the text is known to hold."""
    text = "".join(pieces)
    seen: list[Reported] = []

    def spy(data: bytes, packages: object, reported: Reported) -> list[object]:
        seen.append(reported)
        return []

    with mock.patch.object(scanner_module, "scan_python", spy):
        PACKAGES_SCANNER.scan(text)
    if not seen:
        return  # no keyword enabled the pass: the prefilter's business, not this one's
    block = text.encode("utf-8", "surrogatepass")
    if not worth_parsing(block, 0, ["acme_"], seen[0]):
        for hit in check_block(block, 0, ["acme_"]):
            assert seen[0].overlaps(hit.start, hit.end, hit.category), hit.rule_id
