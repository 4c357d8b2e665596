"""Value checks that a pattern alone cannot make: entropy, checksums, placeholders, previews."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import math
import operator
import re
import string
from collections import _count_elements  # type: ignore[attr-defined]
from collections.abc import Callable, Container, Sequence
from typing import NamedTuple

import re2

from devpulse.plugins.privacy import pii
from devpulse.plugins.privacy.packaged import rules_file
from devpulse.plugins.privacy.spans import PatternSet, found_in, search_spans, search_text

# Values that documentation and templates use in place of a real secret. Marker words count
# only as whole words ("your-fake-token"), never inside random characters, where "FAKE"
# turns up by chance (hypothesis found an AWS key id AKIAIISXFAKE5RCAUE4S). RE2: values can
# be long (a JWT, a run of base64), and this runs on every candidate.
PLACEHOLDER = re2.compile(
    (
        "(?i)"
        + "|".join(
            (
                r"^(?:your|my|insert|enter|put|replace|add|paste|fill|some|the|a)[-_ ]",
                # kubectl config view: DATA+OMITTED; a log's eyJhbGciOiJIUzI1NiJ9.[truncated]
                r"(?:^|[^a-z0-9])(?:example|placeholder|changeme|change[-_]me|dummy|redacted"
                r"|sample|fake|omitted)(?:[^a-z0-9]|$)|\[(?:truncated|snipped|elided)(?:\]|$)",
                r"example(?:key)?$",
                # EXAMPLE in capitals opening the value or a part of it after a separator,
                # whatever follows (`EXAMPLEKEY123`, `sk_live_EXAMPLE000`): a random token's
                # letters spell it after a separator by no chance worth counting
                r"(?-i:(?:^|[^A-Za-z0-9])EXAMPLE)",
                # a mask: a run of x's set apart, or too long to be chance in random text
                r"(?:^|[^a-z0-9])x{4,}(?:[^a-z0-9]|$)|x{8,}",
                r"\*{3,}",
                r"(?:^|[^a-z0-9#])#{4,}(?:[^a-z0-9#]|$)|#{8,}",  # a # mask, set apart like x's
                r"\.{3}",
                r"…",
                r"<[^>]*>",
                r"^\[[\w .-]*\]$",  # [PASSWORD], [your token]
                # what a tool prints in a secret's place: [hidden], (sensitive value), npm's
                # (protected)
                r"^[\[(]?(?:hidden|masked|omitted|filtered|removed|sensitive|protected)[\])]?$",
                r"^\[secret\]?$",  # Pulumi's preview and stack output
                # HashiCorp Vault's audit log: every secret string HMAC-ed with the audit
                # device's own salt, `hmac-sha256:<hex>`, so that a log may be shared
                r"^hmac-sha(?:256|384|512):[0-9a-f]{32,128}$",
                # templates name a variable: {{ secrets.TOKEN }}, ${DB_PASSWORD}, ${X:-default}
                r"\{\{[^{}]*\}\}",
                # one brace: str.format's and an f-string's field (with its conversion and
                # format: {token!r}, {password:>20}), a URI template's (RFC 6570), C#'s {0}
                # and {UserName}; the name as people write one: words in snake_case,
                # CAPITALS, camelCase or PascalCase, each with at most a short number after
                # it (no random mix of letters and digits: ODBC quotes a password so,
                # Pwd={s3cr3tpassw0rd9})
                r"^\{(?-i:(?:[a-z]+\d{0,2}(?:[_.](?:[a-z]+\d{0,2}|\d{1,2}))*"
                r"|[A-Z]+\d{0,2}(?:[_.](?:[A-Z]+\d{0,2}|\d{1,2}))*"
                r"|[A-Za-z][a-z]+(?:[A-Z][a-z]{2,})*(?:[A-Z][a-z]?)?\d{0,2}"
                r"|_+[a-z]+(?:_[a-z]+)*|\d{1,2})"
                # a conversion, then a format spec as Python's and Rust's write them
                r"(?:![rsa])?(?::(?:[^{}]?[<>^=])?[+ -]?#?0?\d{0,3}[,_]?(?:\.\d{1,3})?"
                r"[a-zA-Z%?]?)?)\}$",
                r"\$\{\s*[\w.:-]+\s*(?::?-[^}]*)?\}",
                r"\$\([^)]*\)",
                r"%\(\w+\)s",
                r"^\$[A-Z_][A-Z0-9_]*$",
                r"^\$\$(?-i:[A-Z_][A-Z0-9_]*)$",  # Make's, Compose's: a variable in capitals
                r"^(?:none|null|nil|true|false|undefined|todo|tbd|n/?a)$",
                # a note left where the value will go: "TODO: get from vault", "TBD - ops"
                r"^(?:todo|tbd|fixme)(?:[ \t]*:[ \t]|[ \t]+[-(]?[ \t]*\w)",
                # a test's stand-in that says what it stands in for: test-token-d6b3c621,
                # test_api_key (a short suffix at most: a vendor's test-mode key is long)
                r"^test[-_](?:[a-z]+[-_]){0,3}(?:token|key|secret|password|passwd|pass|pwd"
                r"|apikey|credential)s?(?:[-_][a-z0-9]{1,8})?$",
                r"-here$",
                r"_here$",
                r"^(?:test|testing|secret|password|passwd|passw0rd|pass|pwd|token|key|admin|root"
                r"|user|username|default|demo|guest|qwerty|letmein|welcome|foo|bar|baz|abc|xyz)"
                r"\d{0,4}!?$",
                # the word itself in the languages of a UI's string catalogue, as a label's
                # text ({"password": "Passwort"}), and a schema's type (password: String!)
                r"^(?:passwort|kennwort|contrase(?:ñ|n)a|senha|wachtwoord|l(?:ö|o)senord|passord"
                r"|adgangskode|has(?:ł|l)o|salasana|пароль|parola|ş(?:i|İ)fre|sifre|mật khẩu"
                r"|密码|密碼|パスワード|비밀번호|암호)$",
                r"^\[?(?:string|int|float|boolean|id)!?\]?!?$",
                # a type that keeps a secret out of logs, in a struct's or a model's field
                # (`pub password: SecretString,`): Rust's secrecy crate's, pydantic's, .NET's
                r"^(?:secret(?:string|str|bytes|box|vec|slice)|securestring)$",
                # a date and a time, whole or cut at a colon (ISO 8601, as a listing prints
                # one: `db-password  2024-12-30T10:44:45`), is when, not what
                r"^\d{4}-\d\d-\d\d(?:[t ]\d\d(?::\d\d(?::\d\d(?:[.,]\d+)?)?)?)?"
                r"(?:z|[+-]\d\d(?::?\d\d)?)?$",
                r"^123456\d*$",
            )
        )
    ).encode()
)
# Values that name where a secret lives rather than being one: URIs and file paths. RE2, as
# is every pattern here that reads a value: values come from request text. `[\pL\pN_]` is
# Python's `\w` (RE2's is ASCII only) and `\n?$` Python's `$`, which these were written for.
REFERENCE = re2.compile(
    r"^(?:[a-z][a-z0-9+.-]*://|(?:/|\./|\.\./|~/)[\pL\pN_.-]+/"  # op://vault/item, /run/secrets/x
    # $VAR, ${VAR}, $(cmd); and with the $$ that Make, Compose, Drone and Buildkite read as
    # one $, a variable's name in capitals (`$$HF_TOKEN` reaches the shell as $HF_TOKEN; a
    # literal $$Kx9mQ2 is a password); SOPS; #{spel}
    r"|\$(?:\{|\(|[A-Za-z_][\pL\pN_]*\n?$)|\$\$(?:\{|\(|[A-Z_][A-Z0-9_]*\n?$)|ENC\[|#\{"
    # a variable in capitals as a URL's password, then its host (a name whose last label is
    # letters) and its path or port (`x-access-token:$GH_PAT@github.com/...`): only the
    # variable is the credential ($UMMER@Beach.2024 is a password)
    r"|\$\$?[A-Z_][A-Z0-9_]+@[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}[:/]"
    # PowerShell's $env:VAR, cmd.exe's %VAR% and its delayed !VAR!, named in one case
    # (!Summer2024! is a password)
    r"|\$env:[A-Za-z_][\pL\pN_]*\n?$"
    r"|%(?:[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*)%\n?$|!(?:[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*)!\n?$"
    r"|%env\([\w:.-]+\)%\n?$"  # Symfony's environment variable: %env(DATABASE_PASSWORD)%
    # Nagios' and Icinga's macros in capitals ($USER3$, $_HOSTSNMPCOMMUNITY$), and a
    # template's token named in one case: autoconf's @COMMUNITY@, @@PASSWORD@@, %%TOKEN%%
    r"|\$_?[A-Z][A-Z0-9_]*\$\n?$"
    r"|@(?:[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*)@\n?$|@@(?:[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*)@@\n?$"
    r"|%%(?:[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*)%%\n?$"
    # {password} (a format field), :new_password (a bind parameter), @@pw (T-SQL), @Model.Pw
    r"|\{[A-Za-z_][\pL\pN_.]*\}\n?$|:[A-Za-z_][\pL\pN_]*\n?$|@@[A-Za-z_][\pL\pN_]*\n?$"
    r"|@[A-Za-z_][\pL\pN_]*\.[\pL\pN_.]+\n?$"
    r"|arn:aws[a-z-]*:[a-z0-9-]+:"  # an AWS resource name: where a secret is kept
    # a Vault path as bank-vaults and Spring write it (vault:secret/data/app#key), and an
    # Azure App Service Key Vault reference (@Microsoft.KeyVault(SecretUri=...))
    r"|vault:[\pL\pN_.-]+/[\pL\pN_./-]*(?:#[\pL\pN_.-]+)?\n?$|@Microsoft\.KeyVault\()"
)
# A segment is snake_case, UPPER_CASE or CamelCase. The first two both take "_", so a
# backtracking engine tried 2^n splits of "_._._" (27 s for 26 segments); RE2 reads it once.
_SEGMENT = r"(?:[a-z_][a-z0-9_]*|[A-Z_][A-Z0-9_]*|[A-Z][a-z]+(?:[A-Z][a-z]+)*)"
# A subscript by a name: Ruby's [:secret_key], ["token"], ['key'] (a value read up to its
# closing bracket ends before it).
_SUBSCRIPT = r"""\[(?::[A-Za-z_]\w*|"[A-Za-z_][\w.-]*"|'[A-Za-z_][\w.-]*')\]"""
_LAST_SUBSCRIPT = r"""\[(?::[A-Za-z_]\w*|"[A-Za-z_][\w.-]*"?|'[A-Za-z_][\w.-]*'?)\]?"""
CODE_EXPRESSION = re2.compile(
    # settings.SECRET_KEY, os.environ; optional chaining and non-null: session?.access_token;
    # then subscripts: Rails.configuration.stripe[:secret_key]
    rf"^(?:{_SEGMENT}(?:[?!]?\.{_SEGMENT})+(?:{_SUBSCRIPT})*(?:{_LAST_SUBSCRIPT})?\n?$"
    # TypeScript's non-null assertion at the end, after a lower-case name and two members
    # at least (process.env.SLACK_TOKEN!); Summer.Breeze! is a password
    rf"|[a-z_$][A-Za-z0-9_$]*(?:\.{_SEGMENT}){{2,}}!\n?$"
    r"|[A-Za-z_][\pL\pN_.]*\("  # os.getenv(...)
    r"|[a-z]+(?:[_-][a-z]+)+\n?$)"  # user_password_input, form-field-name
)


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s own character distribution.

    H = log2(n) - sum(c * log2(c)) / n over the character counts c, with c * log2(c) read
    from a table: this runs on every candidate, and a log per distinct character costs more
    than the count.
    """
    n = len(value)
    if not n:
        return 0.0
    tally: dict[str, int] = {}
    _count_elements(tally, value)  # Counter's own C loop, without the class around it
    counts = tally.values()
    if n < len(_C_LOG_C):
        weighted = sum(map(_C_LOG_C.__getitem__, counts))
    else:
        weighted = sum(c * math.log2(c) for c in counts)
    return math.log2(n) - weighted / n


_C_LOG_C = (0.0, *(c * math.log2(c) for c in range(1, 257)))
# `re` is safe here: one character class and no repetition, so a search is one step per
# character and can never backtrack. (RE2's \d would miss the non-ASCII digits.)
_DIGIT = re.compile(r"\d")


def char_classes(value: str) -> int:
    """How many of lower case, upper case, digits and symbols `value` uses."""
    return (
        (value != value.upper())
        + (value != value.lower())
        + (_DIGIT.search(value) is not None)
        + (bool(value) and not value.isalnum())
    )


@functools.cache
def published_keys() -> frozenset[str]:
    """Keys published as examples: rules.toml's `published_keys`, a documented decision."""
    return frozenset(rules_file().get("published_keys", ()))


class PublicByDesign(NamedTuple):
    """rules.toml's `public_by_design`: keys their vendors ship to every browser."""

    prefixes: tuple[str, ...]
    name_words: frozenset[str]
    key_kinds: frozenset[str]


@functools.cache
def public_by_design() -> PublicByDesign:
    """Keys public by design (Stripe's pk_live_, a captcha's site key): a documented
    decision in rules.toml, like `published_keys`."""
    table = rules_file().get("public_by_design", {})
    return PublicByDesign(
        tuple(table.get("prefixes", ())),
        frozenset(table.get("name_words", ())),
        frozenset(table.get("key_kinds", ())),
    )


def is_placeholder(value: str) -> bool:
    """True for template values, published example keys, keys public by design and runs
    of one character (after a vendor's prefix too: `shpat_000...`), and for base64 that
    spells one of those (a Kubernetes Secret's data holds `${TOKEN}` and `changeme` so)."""
    core = json_unescaped(value.strip().strip("'\"`"))
    if len(set(core)) <= 2 or published_key(core):
        return True
    if _one_character_after_a_prefix(core):
        return True
    return search_text(PLACEHOLDER, core) is not None or _spells_placeholder(core)


def _one_character_after_a_prefix(core: str) -> bool:
    """A vendor's prefix, then one character repeated (`shpat_0000...`, `sk_live_xxxx...`):
    a docs table's stand-in for a key."""
    cut = max(core.rfind("_", 0, 16), core.rfind("-", 0, 16))
    rest = core[cut + 1 :]
    return cut > 0 and len(rest) >= 8 and len(set(rest)) == 1


def json_unescaped(core: str, *, one_line: bool = False) -> str:
    """`core` as the JSON string it stands in reads: without the escaped line or field
    breaks it ends with (`$DOCKERHUB_PASSWORD\\n`: the break is the document's; a private
    key's inner ones are its own), or, `one_line` (a value in prose, which no break is
    part of), up to the first; its `\\uXXXX` escapes read (`oubli\\u00e9`,
    `\\u30d1\\u30b9...`: words, not random text)."""
    if "\\" not in core:
        return core
    if one_line:
        core = core[: min((i for i in map(core.find, _BREAKS) if i >= 0), default=len(core))]
    while core.endswith(_BREAKS):
        core = core[:-2]
    parts: list[str] = []
    i = 0
    while (j := core.find("\\u", i)) >= 0:
        digits = core[j + 2 : j + 6]
        if len(digits) == 4 and _HEX.issuperset(digits):
            parts += (core[i:j], chr(int(digits, 16)))
            i = j + 6
        else:
            parts.append(core[i : j + 2])
            i = j + 2
    return "".join(parts) + core[i:]


# JSON's escapes of a line break, a carriage return and a tab.
_BREAKS = ("\\n", "\\r", "\\t")


def _spells_placeholder(core: str) -> bool:
    """Whether `core` is base64 for a placeholder (`JHtUT0tFTn0=`: `${TOKEN}`)."""
    spelt = _base64_text(core)
    return spelt is not None and is_placeholder(spelt)


_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")


def _base64_text(core: str) -> str | None:
    """The printable text that `core` encodes in base64, or None: a value of another
    alphabet or length, one that is not padded right, or bytes that are no such text (a
    random key's)."""
    if len(core) < 8 or len(core) % 4 or not _BASE64.issuperset(core):
        return None
    try:
        text = base64.b64decode(core, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    return text if text.isprintable() else None


def published_key(core: str) -> bool:
    """A published key, or one with a character or two added or cut at its end (tests
    mutate AWS's example keys that way to check a scanner's allowlist), or a key public by
    design (pk_live_..., Supabase's anon key)."""
    if core.startswith(public_by_design().prefixes):
        return True
    if core.startswith("eyJ") and core.count(".") == 2 and supabase_anon_key(core):
        return True
    if core[:_HEAD] not in _published_heads():
        return False  # nearly every value: one slice and one lookup
    if core in published_keys():
        return True
    if len(core) < 20:
        return False
    stems = _published_stems()
    return any(core[:size] in stems.get(size, ()) for size in range(len(core) - 4, len(core) + 1))


# A value equal to a key starts as the key does, and the stems published_key compares are at
# least 16 characters long: a value whose first 16 start no key is none of them.
_HEAD = 16


@functools.cache
def _published_heads() -> frozenset[str]:
    return frozenset(key[:_HEAD] for key in published_keys())


@functools.cache
def _published_stems() -> dict[int, frozenset[str]]:
    """Each published key less its last two characters, by length: a candidate is looked
    up under the few lengths it can share instead of compared with every key."""
    stems: dict[int, set[str]] = {}
    for key in published_keys():
        stems.setdefault(len(key) - 2, set()).add(key[:-2])
    return {size: frozenset(found) for size, found in stems.items()}


def is_sequence(core: str) -> bool:
    """An alphabet written out ("abc...xyz123"): runs of successive characters with a break
    at most every eighth ("abcd1234abcd1234" breaks every fourth: shaped like a key)."""
    sample = core[:MAX_TOKEN_CHARS]
    if len(sample) < 16:
        return False
    if sample.isascii():
        # Where a byte is the one before plus one, the two runs' XOR has a zero byte.
        codes = sample.encode()
        steps = int.from_bytes(codes[:-1].translate(_NEXT_BYTE)) ^ int.from_bytes(codes[1:])
        ones = steps.to_bytes(len(codes) - 1).count(0)
    else:
        points = list(map(ord, sample))
        ones = list(map(operator.sub, points[1:], points[:-1])).count(1)  # one C loop
    breaks = len(sample) - 1 - ones
    return breaks * 8 <= len(sample)


_NEXT_BYTE = bytes((b + 1) % 256 for b in range(256))


_ASCII_ALNUM = dict.fromkeys(map(ord, string.ascii_letters + string.digits))


def has_alnum(text: str) -> bool:
    """Whether `text` holds a letter or a digit: `any(map(str.isalnum, text))`, at C speed
    for ASCII (a 120 KB string literal of `_.` took 4 ms a call the other way)."""
    if not text or text[0].isalnum():
        return bool(text)
    if text.isascii():
        return len(text.translate(_ASCII_ALNUM)) < len(text)
    return any(map(str.isalnum, text))


def looks_like_credential(value: str) -> bool:
    """For a value assigned to a credential-like name: is it plausibly a real secret?

    Rejects placeholders, lone dictionary-style words and short or repetitive strings, so
    `password = "changeme"` and `token = "YOUR_TOKEN"` are not findings but
    `DB_PASSWORD = "x9$Kq2mPz!"` is.
    """
    core = json_unescaped(value.strip().strip("'\"`")).rstrip(",;").rstrip(".…")  # "…": cut
    if len(core) < 6 or " " in core or not has_alnum(core):
        return False
    # The tests of the value alone first: each rejects, so their order changes no answer,
    # and these cost less than reading the value's shapes (a flood of plain words).
    if core.isalpha() and (core.islower() or core.isupper()) and len(core) <= 12:
        return False  # a plain word: "secret", "PASSWORD", "database"
    if core.replace("_", "").replace("-", "").isalpha() and core.upper() == core:
        return False  # an identifier such as MY_API_KEY_NAME
    if is_sequence(core):
        return False  # "abcdefghijklmnopqrstuvwxyz123": an alphabet, not a key
    shapes = _shapes(core)
    if _placeholder(core, shapes):
        return False
    if _names(core, shapes):
        return False  # settings.SECRET_KEY, os.getenv(...), op://vault/item, /run/secrets/x
    if _IDENTIFIER_PATH in shapes and ("." in core or not core.islower()):
        return False  # an identifier: authToken, props.apiKey, persistentTokenRepository
    entropy = shannon_entropy(core)
    return (char_classes(core) >= 2 and entropy >= 2.5) or (len(core) >= 8 and entropy >= 3.0)


# prod/terraform.tfstate, prod/api/openai: a path or a store's key (tokens carry capitals).
LOWER_PATH = re2.compile(r"^[a-z0-9_.-]+(?:/[a-z0-9_.-]+)+\n?$")


def names_something(core: str) -> bool:
    """A code expression or a reference rather than a value.

    Dotted tokens (Mapbox's pk.<60>.<22>, Dynatrace's dt0c01.<24>.<64>) have the shape of
    `settings.secret_key` too; identifiers seldom carry many digits, random text does.
    """
    return _names(core, _shapes(core))


def _names(core: str, shapes: Container[int]) -> bool:
    """`names_something(core)`, with `core`'s shapes already read."""
    if _REFERENCE in shapes or _LOWER_PATH in shapes:
        return True
    if _CODE_EXPRESSION not in shapes:
        return False
    return sum(c.isdigit() for c in core) * 7 < len(core)  # under a seventh digits


_ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.isspace() finds in ASCII
# Words run together in CamelCase (ClearTextPassword, UserPoolClientId, MyAppServiceAccount):
# two letters are a word only as the words an identifier uses (Id, Db, My, ...), never any
# capital and a lower-case letter, which a random token of letters may hold.
_SHORT_WORDS = "Id|ID|Db|DB|Io|Ip|IP|Os|Ui|UI|My|Of|On|To|In|At|By|Up|Is|It|No|Or|Us"
CAMEL_WORDS = re2.compile(rf"^(?:[A-Z]?[a-z]{{2,}}|{_SHORT_WORDS})+\n?$")
# authToken, props.apiKey, this.state.passwordConfirm: lower-case words run together in
# camelCase, dotted; a random token of letters alone seldom keeps two lower-case letters
# after each capital. (One all lower-case word is not one: a Gmail app password is that.)
_CAMEL_IDENTIFIER = r"[a-z]{2,}(?:[A-Z][a-z]{2,})*"
IDENTIFIER_PATH = re2.compile(rf"^{_CAMEL_IDENTIFIER}(?:\.{_CAMEL_IDENTIFIER})*\n?$")

# A secret's name in a store, as `dbutils.secrets.get(scope=..., key="...")` or a vault's
# path gives it: lower-case words and numbers joined by - _ or ., the last a credential's.
# Each part a word, a word and a short number (acmelake85), or a short number: a random run
# of letters and digits (x7k2p9q4m8n3v6b1_token) is no name.
_SECRET_NAME = re2.compile(
    rb"^(?:[a-z]+[0-9]{0,4}|[0-9]{1,4})(?:[-_.](?:[a-z]+[0-9]{0,4}|[0-9]{1,4}))*[-_.]"
    rb"(?:api[-_]?)?(?:key|token|secret|password|passwd"
    rb"|pwd|creds?|credentials?)s?$"
)
# A name in namespaces joined by `::` (Puppet's Hiera keys, Perl's and Rust's paths, C++'s).
# Each part an identifier of words, each with a short number at most (db_password, v2).
_NAMESPACE_PART = rb"[A-Za-z_]+[0-9]{0,4}(?:_[A-Za-z]+[0-9]{0,4})*"
_NAMESPACED = re2.compile(rb"^(?:::)?%s(?:::%s)+$" % (_NAMESPACE_PART, _NAMESPACE_PART))
# An HTTP header's name: Capitalised words or short capitals joined by hyphens (Content-Type,
# X-Request-Id, X-API-Key), as a Postman collection's or a HAR's `"key"` holds it.
_HEADER_NAME = re2.compile(rb"^(?:[A-Z][a-z]+|[A-Z]{1,4})(?:-(?:[A-Z][a-z]+|[A-Z]{1,4}))+$")
# The value checks' patterns in one RE2 set: a value is read once for all of them. A value
# is a few dozen bytes, and each search of it costs about as much as the call itself.
_SHAPE_PATTERNS = (
    PLACEHOLDER,
    REFERENCE,
    LOWER_PATH,
    CODE_EXPRESSION,
    CAMEL_WORDS,
    IDENTIFIER_PATH,
    _SECRET_NAME,
    _NAMESPACED,
    _HEADER_NAME,
)
(
    _PLACEHOLDER,
    _REFERENCE,
    _LOWER_PATH,
    _CODE_EXPRESSION,
    _CAMEL_WORDS,
    _IDENTIFIER_PATH,
    _SECRET_NAME_SHAPE,
    _NAMESPACED_SHAPE,
    _HEADER_NAME_SHAPE,
) = range(9)


_SHAPE_SET = PatternSet(regex.pattern for regex in _SHAPE_PATTERNS)


def _shapes(core: str) -> Container[int]:
    """Which of _SHAPE_PATTERNS match `core`. Should the set's DFA give up (out of memory
    on a long value), each pattern is asked alone."""
    data = core.encode("utf-8", "surrogatepass")
    found = _SHAPE_SET.matching(data)
    if found is not None:
        return found
    return [i for i, regex in enumerate(_SHAPE_PATTERNS) if search_spans(regex, data, 0)]


def _placeholder(core: str, shapes: Container[int]) -> bool:
    """`is_placeholder(core)`, with `core`'s shapes already read."""
    if core.strip().strip("'\"`") != core:
        return is_placeholder(core)  # it judges a narrower value than the one read
    return (
        len(set(core)) <= 2
        or published_key(core)
        or _PLACEHOLDER in shapes
        or _spells_placeholder(core)
    )


# The last words of HTTP headers' names: a name that ends in one is a header's, whatever
# comes before (Idempotency-Key); other Capitalised words joined by hyphens may be a
# passphrase (Velvet-Otter-Cascade-Lantern, review 30).
_HEADER_LAST_WORDS = frozenset(
    {
        *("type", "length", "encoding", "language", "agent", "control", "id", "key", "token"),
        *("version", "for", "proto", "host", "origin", "match", "since", "modified", "range"),
        *("policy", "options", "protection", "age", "date", "signature", "disposition"),
        *("location", "allow", "methods", "headers", "credentials", "security", "expires"),
        *("cookie", "auth", "request", "requested", "with", "mode", "dest", "site", "ua"),
        *("platform", "mobile", "limit", "remaining", "reset", "after", "accept", "upgrade"),
        *("connection", "referer", "referrer", "vary", "via", "warning", "pragma", "tag"),
    }
)


def _header_word(core: str) -> bool:
    """An X- name, or one whose last word is a header's (Content-Type, Idempotency-Key)."""
    return core[:2] in ("X-", "x-") or core.rsplit("-", 1)[-1].lower() in _HEADER_LAST_WORDS


# Words (lower case, Capitalised, CamelCase or CAPITALS) joined by colons or dots: the path
# of a setting as .NET's configuration (`Logging:LogLevel:Default`) and many others name one.
_WORD_PATH = re2.compile(rb"^(?:(?:[A-Z]?[a-z]+)+|[A-Z]+)(?:[:.](?:(?:[A-Z]?[a-z]+)+|[A-Z]+))+$")
# A slug: lower-case words joined by hyphens, then a number or a version (v2, r12, 2024).
_SLUG = re2.compile(rb"^[a-z]+(?:-[a-z]+)*-[a-z]?[0-9]{1,4}$")


def token_like(value: str) -> bool:
    """A value that looks machine-made: one run of 12+ characters, random enough.

    The test for values bound to weaker names (`key`, `auth`) and for header and curl
    values, where a word or a sentence is never the secret. Long digit runs count (Asana
    and Discord client ids are 16-19 digits).
    """
    core = value.strip().strip("'\"`")
    if len(core) < 12 or not core.isascii() or any(c in core for c in _ASCII_SPACE):
        return False
    if len(set(core[:MAX_TOKEN_CHARS])) < 7:
        return False  # the entropy asked below needs 7 kinds of character (log2 6 < 2.75)
    shapes = _shapes(core)
    if _placeholder(core, shapes) or _names(core, shapes) or is_sequence(core):
        return False
    if _CAMEL_WORDS in shapes or _IDENTIFIER_PATH in shapes:
        return False  # ClearTextPassword, props.apiKey: a name, not a token
    letters = core.replace("_", "").replace("-", "")
    if letters.isalpha() and (letters.isupper() or letters.islower()):
        return False  # OPENAI_API_KEY, client-credentials: an identifier
    if _HEADER_NAME_SHAPE in shapes and _header_word(core):
        return False  # Content-Type, Idempotency-Key: a header's name (a Postman "key")
    if _SECRET_NAME_SHAPE in shapes:
        return False  # acmelake85-key, prod_db_password: a secret's name in a store
    if _NAMESPACED_SHAPE in shapes:
        return False  # profile::analytics::db_password: a name in Puppet's, Perl's, C++'s
    if (
        "-" in core
        and core[-1].isdigit()
        and found_in(_SLUG, core.encode("utf-8", "surrogatepass"))
    ):
        return False  # qiwi-sync-v2, checkout-flow-2024: a feature flag's or a page's name
    if (":" in core or "." in core) and found_in(_WORD_PATH, core.encode()):
        return False  # webpages:Version, Logging:LogLevel: a setting's path, words alone
    entropy = shannon_entropy(core[:MAX_TOKEN_CHARS])
    if core.isdigit():
        return len(core) >= 12 and entropy >= 2.75
    return entropy >= 3.0 and char_classes(core) >= 2


MAX_TOKEN_CHARS = 4096
MAX_NAME_CHARS = 100  # longer "names" are runs of text, not identifiers
# Words that make a name a credential's (the rest of the word list is in _word_strength).
_STRONG_ENDINGS = ("password", "passwd", "passphrase", "passcode", "token", "secret")
# Run together at a name's end: dbpass, rootpw (OpenLDAP), mysqlpwd; "pass" but for the
# English words that end in it.
_RUN_TOGETHER_ENDINGS = ("pass", "pwd", "pw")
_NOT_PASS_WORDS = frozenset(
    {
        *("bypass", "compass", "encompass", "surpass", "trespass", "overpass", "underpass"),
        *("lowpass", "highpass", "bandpass", "allpass", "multipass", "renderpass", "subpass"),
        *("firstpass", "onepass", "oldpwd"),  # filters, render passes, the shell's OLDPWD
        "askpass",  # SSH_ASKPASS, GIT_ASKPASS: the program that asks for it
    }
)
# The word for a password in the languages password-in-prose-translated reads, one word
# each (French's mot de passe is three: `_word_strength`); the readers' table columns and
# the scanner's triggers for them are built from it too.
PASSWORD_WORDS = (
    *("passwort", "kennwort", "wachtwoord", "contraseña", "contrasena", "senha", "hasło"),
    *("haslo", "lösenord", "losenord", "adgangskode", "passord", "salasana", "heslo"),
    *("пароль", "パスワード", "密码", "비밀번호"),
)
_STRONG_WORDS = frozenset(
    {"pwd", "pw", "pass", "credential", "credentials", "creds", "cred", "secretkey", "apikey"}
    | {"authtok"}  # PAM's and sssd's authentication token: ldap_default_authtok
    | set(PASSWORD_WORDS)
)
# A key with one of these before it is a secret: api_key, secretKey, ACCOUNT_KEY, ...
_SECRET_KEY_KINDS = frozenset(
    {
        *("api", "access", "secret", "private", "priv", "auth", "master", "signing", "sign"),
        *("encryption", "enc", "license", "client", "app", "application", "hmac", "shared"),
        "account",
        *("subscription", "service", "session", "admin", "consumer", "integration", "webhook"),
        *("write", "read", "ingest", "insert", "deploy", "root", "user", "server", "sdk"),
        # a network's key (zigbee2mqtt's network_key, a Wi-Fi network key); LoRaWAN's
        # session keys, NwkSKey and AppSKey, with the "s" of session alone before "key"
        *("network", "nwk", "s"),
    }
)
_RUN_TOGETHER_KINDS = ("api", "secret", "access", "private", "auth", "master", "signing")
# ... and one of these is not: sort_key, cache_key, primary_key, the public half of a pair.
_PLAIN_KEY_KINDS = frozenset(
    {
        *("sort", "cache", "primary", "foreign", "partition", "dict", "map", "lookup", "row"),
        *("group", "shortcut", "hot", "unique", "composite", "idempotency", "object", "field"),
        *("column", "index", "order", "route", "translation", "message", "locale", "state"),
        *("list", "react", "public", "pub", "host", "ssh", "gpg", "pgp", "foreign", "dedup"),
        *("hash", "query", "storage", "s3", "file", "redis", "registry", "label", "dedupe"),
        "incident",  # PagerDuty's incident_key: the alert's dedup key, not the integration's
    }
)
# Not "routing": AMQP's routing keys are dotted words (orders.created), which a weak name's
# value must not be anyway, and PagerDuty's routing_key is an integration's secret.
# A word after the credential word that makes the name describe it instead: TOKEN_URL, ...
_METADATA_WORDS = frozenset(
    {
        *("url", "uri", "endpoint", "path", "file", "name", "names", "type", "field", "len"),
        *("length", "min", "max", "policy", "prompt", "label", "header", "env", "var", "id"),
        *("ids", "count", "expiry", "expires", "expiration", "ttl", "regex", "pattern"),
        *("format", "prefix", "suffix", "size", "dir", "location", "ref", "store", "vault"),
        *("provider", "mode", "enabled", "required", "source", "version", "algorithm", "kind"),
        *("class", "index", "timeout", "limit", "scope", "scopes", "lifetime", "rotation"),
        *("manager", "hint", "placeholder", "description", "desc", "help", "error", "message"),
        *("file", "filename", "files", "request", "response", "exchange", "reset", "input"),
        *("id", "arn", "column", "param", "parameter", "attribute", "attr", "selector", "hash"),
        # when it was set: password_changed_at, token_created, secret_updated_date
        *("at", "date", "time", "changed", "updated", "created", "modified"),
        # how it is kept or what it may do: postgres' password_encryption, a vault token's
        # policies, a CI token's permissions, a password's complexity
        *("encryption", "policies", "permission", "permissions", "complexity", "strength"),
        "accessor",  # a vault token's accessor: it looks a token up or revokes it, no more
        *("kid", "sha1", "sha256", "sha512", "md5", "digest", "checksum"),  # its id, its digest
        # where it is read from or what makes it: docker login's --password-stdin, gpg's
        # --passphrase-fd, a password_command's line, Django's PASSWORD_HASHERS
        *("stdin", "fd", "command", "cmd", "hasher", "hashers", "hashing"),
    }
)


# Names of values that are not credentials however they look: the public half of a key
# pair, and the anti-forgery tokens that web forms carry in the open.
# ...and "hashed": detect-secrets' baseline keeps each secret's SHA-1 as hashed_secret.
_NOT_SECRET_WORDS = frozenset({"public", "csrf", "xsrf", "authenticity", "csrftoken", "hashed"})
# A WebSocket handshake's headers (RFC 6455): the client's key is 16 random bytes made for
# that one handshake, the server's answer a digest of it. Neither opens anything.
_HANDSHAKE_NONCES = frozenset({"secwebsocketkey", "secwebsocketaccept"})
# Tokens an API hands out in its responses to page through results, resume a stream or make
# a call idempotent, named by the word just before "token": nextPageToken, pageToken,
# NextToken, PaginationToken, NextContinuationToken (S3), cursor_token, resumeToken (MongoDB
# change streams), idempotency_token. They grant nothing. Only just before it:
# FACEBOOK_PAGE_ACCESS_TOKEN is a Page's access token, page_token_secret a secret.
_PAGING_WORDS = frozenset(
    {
        *("page", "pagination", "paging", "next", "continuation", "cursor", "resume"),
        "idempotency",
    }
)
# Words that name such a token only after one of these. `sync` alone does not: SYNC_TOKEN is
# as often a CI secret that pushes to a mirror (a personal access token) as a sync cursor;
# nextSyncToken, lastSyncToken are cursors (Google Calendar, Microsoft Graph's delta
# queries). Nor `request` alone: OAuth 1's and Kite Connect's request_token are exchanged
# for access; AWS's ClientRequestToken is an idempotency key.
_QUALIFIED_PAGING_WORDS = {
    "sync": frozenset({"next", "last", "prev", "previous", "delta", "initial"}),
    "request": frozenset({"client"}),
}


def names_a_paging_token(words: list[str]) -> bool:
    """Whether a name's words end in a paging, resume or idempotency token (see
    _PAGING_WORDS): `next page token`, `client request token`, `next sync token`."""
    if len(words) < 2 or words[-1].rstrip("0123456789") not in ("token", "tokens"):
        return False
    before = words[-2]
    if before in _QUALIFIED_PAGING_WORDS:
        return len(words) >= 3 and words[-3] in _QUALIFIED_PAGING_WORDS[before]
    return before in _PAGING_WORDS


def name_words(name: str) -> list[str]:
    """`grafana-api-keyToken` -> grafana, api, key, token: split on symbols and camelCase,
    an acronym ending where its last capital starts a word (`APIKey`, LoRaWAN's `NwkSKey`:
    api, key; nwk, s, key)."""
    words: list[str] = []
    current = ""
    previous = ""
    name = name[:MAX_NAME_CHARS]
    for i, char in enumerate(name):
        if not char.isalnum():
            if current:
                words.append(current.lower())
            current = ""
        elif (
            char.isupper()
            and current
            and (previous.islower() or (previous.isupper() and name[i + 1 : i + 2].islower()))
        ):
            words.append(current.lower())
            current = char
        else:
            current += char
        previous = char
    if current:
        words.append(current.lower())
    return words


# Parts of the Python pass's credential names (pyast.CREDENTIAL_NAME), as substrings.
_CREDENTIAL_SOUNDS = ("pass", "pwd", "secret", "token", "key", "cred", "dsn", "conn")


def names_a_look_alike(name: str) -> bool:
    """Whether every word of `name` that sounds like a credential is a look-alike: bypass,
    compass_heading, lowpass (the Python pass finds its names by substring)."""
    words = name_words(name[:MAX_NAME_CHARS])
    sounding = [w for w in words if any(part in w for part in _CREDENTIAL_SOUNDS)]
    return bool(sounding) and all(w in _NOT_PASS_WORDS for w in sounding)


def credential_name_strength(name: str) -> int:
    """2 for a name that holds a credential (dbPassword, GRAFANA_TOKEN, api_key), 1 for
    one that may (key, auth), 0 for the rest and for names that describe a credential
    (TOKEN_URL, password_field, credentialsId, publicToken)."""
    return _name_strength(name[:MAX_NAME_CHARS])


# Texts repeat a few hundred names (password, api_key, Authorization): each is split and
# weighed once. Names only, never values, and each at most MAX_NAME_CHARS long.
@functools.lru_cache(maxsize=4096)
def _name_strength(name: str) -> int:
    words = name_words(name)
    strength, at = 0, -1
    for i, word in enumerate(words):
        found = _word_strength(word, words[i - 1] if i else "", i == len(words) - 1)
        if found:
            strength, at = max(strength, found), i
    after = words[at + 1 :]
    public = public_by_design()
    if not strength or any(w in _NOT_SECRET_WORDS or w in public.name_words for w in words):
        return 0
    if names_a_paging_token(words[: at + 1]):
        return 0  # nextPageToken, ClientRequestToken: an API's cursor, not a credential
    if "".join(words) in _HANDSHAKE_NONCES:
        return 0
    if strength == 1 and not all(w.isdigit() for w in after):
        return 0  # key_down_event, KeyPair, keyStr: the key is not what the name holds
    if any(w in _METADATA_WORDS for w in after):
        return 0
    return strength


def _word_strength(word: str, before: str, last: bool) -> int:
    word = word.rstrip("0123456789")  # token2, key1
    if word in _STRONG_WORDS or word.endswith(_STRONG_ENDINGS):
        return 2
    if last and word.endswith(_RUN_TOGETHER_ENDINGS) and word not in _NOT_PASS_WORDS:
        return 2  # only at the name's end: lowpass_cutoff names no password
    if last and word == "bearer":
        return 2  # curl's --oauth2-bearer, AUTH_BEARER; not OpenAPI's bearerFormat
    if word == "ident" and before == "auth":
        return 2  # Yarn's npmAuthIdent: a registry's "user:password", or its base64
    if word == "passe" and before == "de":
        return 2  # French's mot de passe
    if word.endswith("key"):
        kind = word[:-3] or before
        if kind in _SECRET_KEY_KINDS or kind.endswith(_RUN_TOGETHER_KINDS):
            return 2  # api_key, secretKey, and run together: IBMCLOUDIAMAPIKEY, slapikey
        if kind in public_by_design().key_kinds:
            return 0  # RECAPTCHA_SITE_KEY, sitekey: in every page that shows the widget
        if word == "key" and kind not in _PLAIN_KEY_KINDS:
            return 1
    if word in ("auth", "authorization"):
        return 1
    return 0


def spaced_password(name: str, value: str) -> bool:
    """A quoted value with blanks bound to a password's name: a passphrase, unless it reads
    as a message (a capital start and a full stop, a question) or a template."""
    if not names_a_password(name):
        return False
    core = value.strip()
    words = core.split()
    if not 2 <= len(words) <= 8 or len(core) < 12 or is_placeholder(core):
        return False
    if core[-1] in ".?!:" or any(not w.isascii() for w in words):
        return False
    if words[-1].lower() in _PASSWORD_WORDS:
        return False  # a form's label: "Show password", "Confirm new password"
    return not any(w.lower() in _PROSE_WORDS or w.lower() in _PASSWORD_NAMES for w in words)


def grouped_key(value: str) -> bool:
    """A generated key written in groups set apart by blanks (WordPress' application
    passwords: six groups of four letters and digits). Joined up, it is `token_like`, with
    capitals, lower case and digits all three (24 random base62 characters lack one about
    1 time in 70), and at most two groups are a word in one case or digits ("With", "that",
    "2024"): one random group in ten is, and three or more of six about 1 time in 70."""
    groups = value.split()
    run = "".join(groups)
    if not (any(c.isupper() for c in run) and any(c.islower() for c in run)):
        return False
    if not any(c.isdigit() for c in run) or is_placeholder(value):
        return False
    plain = sum(
        g.isdigit() or (g.isalpha() and (g.islower() or g.isupper() or g.istitle())) for g in groups
    )
    return plain <= 2 and token_like(run)


def cache_key(value: str) -> bool:
    """Words and versions joined by hyphens, then a content hash: a cache's key, as CI logs
    print it (actions/cache's `node-cache-Linux-x64-npm-<sha256>`), named by `key`. CI
    caches are kept per runner, or per what they cache, so the key names its system or its
    contents (`docs-deps-<hex>`; `app-secret-<hex>` names neither). Or a key-value store's
    namespaced key, two lower-case words or versions or more before the hash, each ended by
    a colon as Redis' keys are (`v2:render:<sha1>`)."""
    if found_in(_NAMESPACED_HASH, value.strip().encode("utf-8", "surrogatepass")):
        return True
    head, _, digest = value.strip().rpartition("-")
    if len(digest) < 32 or not _HEX.issuperset(digest):
        return False
    return any(w.lower() in _CACHE_KEY_WORDS for w in head.split("-"))


_NAMESPACED_HASH = re2.compile(rb"^(?:[a-z][a-z0-9_-]{0,31}:){2,}[0-9a-f]{32,128}$")
_CACHE_KEY_WORDS = frozenset(
    {
        *("linux", "windows", "macos", "darwin", "ubuntu", "win32", "osx"),
        *("cache", "deps", "dependencies", "modules", "npm", "yarn", "pnpm", "pip", "poetry"),
        *("cargo", "gradle", "maven", "gems", "bundler", "composer", "ccache", "sccache", "venv"),
    }
)


def passphrase(value: str) -> bool:
    """Lower-case words joined by hyphens, three to eight of three letters or more: a
    passphrase as password managers and diceware make them (import-edge-batch-order). A
    slug or a form field's name (`user-password-input`) has the same shape: only where a
    password is meant (its name, a tool's password option) is it one."""
    words = value.split("-")
    if not 3 <= len(words) <= 8 or len(value) < 12 or not value.islower():
        return False
    if not all(len(w) >= 3 and w.isascii() and w.isalpha() for w in words):
        return False
    return not is_placeholder(value) and not any(
        w in _PROSE_WORDS or w in _REFERENCE_WORDS for w in words
    )


# Words of a slug that says where a password is kept or how a form shows it, rather than
# being one: postgres-admin-password, vault-secret-ref, from-secrets-manager, show-hide-toggle.
_REFERENCE_WORDS = frozenset(
    {
        *("password", "passwords", "passwd", "secret", "secrets", "credential", "credentials"),
        *("vault", "ref", "env", "variable", "manager", "from", "use", "ask", "key", "token"),
        *("show", "hide", "toggle", "button", "input", "field", "form", "placeholder"),
    }
)


def hyphenated_password(name: str, value: str) -> bool:
    """A `passphrase` bound to a password's name."""
    return passphrase(value) and names_a_password(name)


def names_a_password(name: str) -> bool:
    """Whether a word of `name` names a password (dbPassword, ROOT_PASSWD, pwd), not any
    credential: a phrase under a token's or a key's name is no passphrase."""
    return any(w.endswith(_PASSWORD_WORDS) or w in ("pwd", "pass") for w in name_words(name))


def password_value(value: str) -> bool:
    """For the value of an option or a field that holds a password and nothing else
    (`sshpass -p`, `redis-cli -a`, a connection string's Password=): a credential, or a
    passphrase of words joined by hyphens."""
    return looks_like_credential(value) or passphrase(value.strip("'\""))


def wifi_psk(value: str) -> bool:
    """For a Wi-Fi network's psk: a password, but not wpa_supplicant's `ext:NAME`, which
    names where its external password backend keeps the key."""
    return not value.startswith("ext:") and password_value(value)


_PASSWORD_WORDS = ("password", "passwd", "passphrase")
# The word itself in a UI catalogue's other languages: a phrase that holds it is a label
# about the password ("Mot de passe", "Kennwort eingeben"), not the password. (English
# "password" may stand in a passphrase: "blue whale password 77".)
_PASSWORD_NAMES = frozenset(
    {"passwort", "kennwort", "passe", "wachtwoord", "passord", "senha", "salasana"}
)
# Words that make a quoted phrase an instruction or a message about the password.
_PROSE_WORDS = frozenset(
    {"your", "enter", "must", "should", "please", "required", "invalid", "incorrect", "is"}
)


def strong_credential(value: str) -> bool:
    """For values found in prose: a credential that also mixes three kinds of character, and
    no e-mail address (where a sentence about a password says to write)."""
    value = json_unescaped(value, one_line=True)
    core = value.rstrip(".,;:!?)")
    return (
        # a word's colon ends a label, not a value: the next line's key after a bare
        # "password" (a tool schema's `properties.password.writeOnly:`)
        looks_like_credential(value.removesuffix(":"))
        and char_classes(core) >= 3
        and search_text(_EMAIL_SHAPE, core) is None
        and not core.startswith("HTTP/")  # an access log's GET /forgot-password HTTP/1.1
        and not method_call(core)
    )


# A module's or an object's function called for the value (Elixir's `password:
# Map.fetch!(secrets, "db_password")`, `password: config.get("db")`): where it comes from.
# Names of letters only: a password's digits (`Tr0ub.ad0r(x9Q`) make it none.
_METHOD_CALL = re2.compile(r"^[A-Za-z_]+(?:\.[A-Za-z_]+)+[!?]?\(")


def method_call(value: str) -> bool:
    """Whether `value` starts with a call of a module's or an object's function."""
    return search_text(_METHOD_CALL, value) is not None


# What a person writes a password with: letters, digits, a few separators, and the symbols
# sites ask for, one of which it must hold (`human_password`).
_PASSWORD_SYMBOLS = frozenset("!#$%&@^~?")
_PASSWORD_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_+-") | _PASSWORD_SYMBOLS
# What else such a value is (review 16; 447 MB of this machine's files): a user at a host
# (`deploy@prod01`), a name at a thing (`Alice@Team2`, `Thread-12@Main`); a number or a
# word after a word and `#` (`issue#12345`, `docs#section-2`, a comment with no blank before
# it: `25MB#limit`), C# and F#; a format's or an escape's letter after % (`%Y-%m-%d`,
# `%2F`); an HTML entity (`700&nbsp`, `&#x3C`) and words joined by & (`AT&T`,
# `Save&Continue2`); minified code's names (`isFinite$1`), a JVM class's (`Outer$Inner2`, a
# name of letters before its `$`), an expansion in capitals (`app2-$HOSTNAME`); operators
# (`&&`), a macro's pasting (`##`, `from_#ctype#`); a method that asks or insists
# (Ruby's `http2_supported?`, `save_v2!`, Kotlin's `response2!!`), a ternary's `?`
# (`isHttp2? 'h2' : 'h1'`; words joined by hyphens, then digits and `?`, are a password's:
# `Nectar-7550?`); a
# version range or a revision (`react@^18`, `typescript@~5`, `master~25`).
_NOT_PASSWORD = re2.compile(
    r"^[a-z0-9_-]{3,}@[A-Za-z0-9-]+$|@[A-Z][a-z]+[0-9]*$|^[\w-]+#[0-9]|#[a-z][a-z-]*$"
    r"|(?:^|[^A-Za-z])[CF]#|%[A-Za-z0-9]|&(?:[a-z]{2,}$|#)|[A-Za-z0-9]&[A-Z]"
    r"|\$[0-9]+$|^[A-Za-z_]+\$|\$[A-Z_][A-Z0-9_]{2,}|&&|##|_#|#.*#"
    r"|[A-Za-z_]\?$|^[^_-]*\?$|!!|[a-z_]!$|@[\^~]|~[0-9]+$"
)


def human_password(value: str) -> bool:
    """A password as a person makes one, with no name to say so (vendor-named-hex: `WAZUH=
    Hollow1985$saffron`, `env('COUCHBASE', 'Tundra-Raven-4154$')`): 8 to 40 characters,
    capitals, lower case, digits and one or two symbols inside (`$`, `!`, `#`, ...; one
    first is an expansion's, a colour's or a handle's: `$HOME`, `#fff`, `@team`), a
    credential (`strong_credential`); no path, URL, template or code (`/`, `:`, `{`, `=`,
    blanks and `.` are not in it: `this.#size`, `a?.b`, `tables.html#65`), and nothing
    `_NOT_PASSWORD` knows for something else."""
    if not 8 <= len(value) <= 40 or not _PASSWORD_CHARACTERS.issuperset(value):
        return False
    if not value[0].isalnum() or _PASSWORD_SYMBOLS.isdisjoint(value):
        return False
    kinds = (str.isupper, str.islower, str.isdigit)
    if not all(any(map(kind, value)) for kind in kinds) or sum(map(str.isalpha, value)) < 3:
        return False  # a person asked for a strong password mixes them all
    if sum(c in _PASSWORD_SYMBOLS for c in value) > 2:
        return False  # a format's spec (`4!a4!n2!n8!c`: an IBAN's, in SWIFT's notation)
    return search_text(_NOT_PASSWORD, value) is None and strong_credential(value)


# An e-mail address: a name, @, then a domain of labels, the last all letters.
_EMAIL_SHAPE = re2.compile(r"^[\w.+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")


def token_in_prose(value: str) -> bool:
    """For a value named a key or token in prose: machine-made, with letters and digits.
    A word of the sentence ("Post-processing") can pass `token_like` alone; a random
    token of 12 characters or more nearly always holds a digit. An environment variable's
    name and = before it make it a setting of its own, which the assignment reader judges:
    the next line of an `env` dump after `KEY_PREFIX=token:`, `MAX_TOKENS=4096` (a cookie's
    `sessionid=...` is the token). Nor is a command's long option after a name that ends in
    the word (`create secret generic my-secret --from-literal=...`)."""
    return (
        not value.startswith("--")
        and token_like(value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and search_text(_SETTING, value) is None
        and search_text(_ETHEREUM_ADDRESS, value.rstrip(".,;:!?)")) is None
    )


# A wallet's or a token contract's address (0x and 40 hex digits): public, where its key is
# 64 digits.
_ETHEREUM_ADDRESS = re2.compile(r"^0x[0-9A-Fa-f]{40}$")


# An environment variable's name in capitals, then = and its value: MAX_TOKENS=4096,
# LANG=C.UTF-8 (base64's = pads its end: nothing follows it but another).
_SETTING = re2.compile(r"^[A-Z][A-Z0-9_]*=[^=]")


# The prefixed-token rule's shape (`dckr_pat_...`, `nfp_...`): a lower-case prefix, then a
# run of base62 made by chance. Agent traffic is full of ids with the same look (Anthropic's
# msg_01..., OpenAI's call_..., Stripe's cus_...), each run 14-28 characters; a
# one-segment prefix needs a run past them, a two-segment one (`dckr_pat_`, `lsv2_pt_`:
# how vendors mark a secret, never an id) a shorter one (Docker's is 27).
PREFIXED_TOKEN_RUN = 30
PREFIXED_TOKEN_RUN_MARKED = 24
# Shaped like a token but public: publishable keys (pk_: Stripe, Clerk, Liveblocks, Knock;
# phc_: PostHog's project keys, which its snippet puts in every page), and Stripe
# Checkout's session ids (cs_live_ and 58 characters, in the payment page's URL).
PUBLIC_TOKEN_PREFIXES = ("pk_", "phc_", "cs_live_", "cs_test_")
_HEX = frozenset(string.hexdigits)
# A run's pieces, as `[A-Z]?[a-z]+|[A-Z]+|[0-9]+` would cut it: a digit run, a capital run,
# or a word (Capitalised or lower case). Counted from its runs of one kind (`_pieces`):
# matched one by one through the binding, a 250-character run took 0.5 ms.
_KINDS = str.maketrans(
    dict.fromkeys(string.digits, "d")
    | dict.fromkeys(string.ascii_uppercase, "u")
    | dict.fromkeys(string.ascii_lowercase, "l")
)
# Random base62 changes kind every 1.6 characters or so: over 30 characters, 1 run in
# 10,000 has pieces as long as 3.75 on average. An identifier's words make pieces of 4 and
# more (ShouldReturnTrueWhenUserHasAdminRole2: 4.1).
PREFIXED_TOKEN_MAX_PIECE = 4.0


def prefixed_token(value: str) -> bool:
    """`prefix_run` or `prefix_segment_run`, where the run after the last `_` is a token:
    long enough (PREFIXED_TOKEN_RUN), with capitals, lower case and digits all three (a run
    of 30 random base62 characters lacks one 1 time in 200), not hex (a digest after a
    name: sha256_..., commit_...; an Ethereum address's 0x...), and not words run together
    (an identifier); and `token_like` (no placeholder, no alphabet written out). Not a
    token its prefix says is public (`live_public_...`)."""
    if value.startswith(PUBLIC_TOKEN_PREFIXES):
        return False
    prefix, _, run = value.rpartition("_")
    segments = prefix.split("_")
    if not _PUBLIC_SEGMENTS.isdisjoint(segments):
        return False  # live_public_...: the vendor says the value is for the page
    marked = len(segments) == 2 and segments[1].isalnum() and segments[1].islower()
    if not (PREFIXED_TOKEN_RUN_MARKED if marked else PREFIXED_TOKEN_RUN) <= len(run) <= 250:
        return False  # at most 250: a longer run is a blob's, not a token's
    if run.isupper() or run.islower() or not any(c.isdigit() for c in run):
        return False  # all three kinds: upper case, lower case, digits
    digits = run[2:] if run.startswith("0x") else run
    if _HEX.issuperset(digits):
        return False
    if is_sequence(run.lower()) or not token_like(run):
        return False
    run = run[:MAX_TOKEN_CHARS]
    return len(run) < PREFIXED_TOKEN_MAX_PIECE * _pieces(run)


# A prefix's segments that say the token is made to be published (a checkout page's key).
_PUBLIC_SEGMENTS = frozenset({"public", "pub", "publishable"})


def _pieces(run: str) -> int:
    """How many pieces `[A-Z]?[a-z]+|[A-Z]+|[0-9]+` cuts an ASCII letters-and-digits `run`
    into: one per run of one kind, less one for each single capital before lower case
    (`Word` is one piece; `ABc` two: the capitals, then the word)."""
    runs = [(kind, len(list(group))) for kind, group in itertools.groupby(run.translate(_KINDS))]
    capitalised = sum(
        1
        for (kind, size), (after, _) in itertools.pairwise(runs)
        if (kind, size, after) == ("u", 1, "l")
    )
    return len(runs) - capitalised


# A machine-made token alone, with no name and no vendor's prefix that says so: the values
# that vendors' keys share (Fireworks' fw_..., Zendesk's 40 characters, Honeycomb's 22)
# when a prompt gives them under a vendor's name (`zendesk: ...`, `config.pd = "..."`), as
# a client's positional argument (`VultrClient("...")`), or alone under a heading. Such a
# value mixes capitals, lower case and digits; what else has that look is named for what it
# is (the rule's not_after), or is an id with a prefix and a short run (msg_..., cus_...).
MACHINE_TOKEN_RUN = 20
# The lengths base58 with a checksum comes in: addresses (25-35), extended keys (111-112).
_BASE58CHECK_LENGTHS = frozenset((*range(25, 36), 111, 112))
# An IPFS content id, version 0: Qm and 44 base58 characters (a multihash of SHA-256).
_CID_V0 = re2.compile(r"^Qm[1-9A-HJ-NP-Za-km-z]{44}$")
_VOWELS = frozenset("aeiouy")


def machine_token(value: str) -> bool:
    """A value that is a token by its look alone: after a lower-case prefix of one to three
    segments (`fw_`, `fio-u-`, `pdl_live_apikey_`), a run of MACHINE_TOKEN_RUN characters
    or more (PREFIXED_TOKEN_RUN after a one-segment prefix, which agents' and payment APIs'
    ids carry with runs of 14-28), no lower-case word between its parts; capitals, lower
    case and digits, letters half of it at least; not hex, not words run together
    (`_pieces`, `_identifier`), and `token_like`. Not base64 of a structure (`_encoded`),
    nor hex with a few letters at one end or a name before it, nor words joined, nor base58
    with a checksum (an extended public key, a Bitcoin address; an xprv is its own rule's),
    nor an IPFS content id."""
    if value.startswith(PUBLIC_TOKEN_PREFIXES) or len(value) > 250:
        return False
    if value.startswith(PUBLIC_PREFIXES):
        return False  # a vendor's own prefix: its rule knows the token's shape, and judged it
    cut = _prefixes_cut(value)
    if cut is None:
        return False  # live_public_...: the vendor says the value is for the page
    body, segments = cut
    shortest = PREFIXED_TOKEN_RUN if segments == 1 else MACHINE_TOKEN_RUN
    run = body.replace("_", "").replace("-", "")
    if not run.isalnum() or not run.isascii() or _identifier(run):
        return False
    if len(value) == 46 and found_in(_CID_V0, value.encode("utf-8", "surrogatepass")):
        return False
    if encoded_public_key(value):
        return False  # a minisign public key (RWQ...), an EC point: their bytes' own layout
    if _encoded(body) or _hex_core(body) or _words_joined(body):
        return False
    # an id's parts joined by a word between them: a PaymentIntent's client secret
    # (pi_<24>_secret_<25>), which Stripe hands to the page
    inner = body.replace("-", "_").split("_")[1:-1]
    if len(body) < shortest or any(p.isalpha() and p.islower() and len(p) > 2 for p in inner):
        return False
    capitals = sum(c.isupper() for c in run)
    lower = sum(c.islower() for c in run)
    if min(capitals, lower) * 10 < capitals + lower or not any(c.isdigit() for c in run):
        return False  # capitals, lower case and digits, all three, each kind of letter 10%
    if (capitals + lower) * 2 < len(run) or _HEX.issuperset(run) or is_sequence(run.lower()):
        return False  # a timestamp's digits with a few letters (20230914T223155647Z...)
    if len(run) >= PREFIXED_TOKEN_MAX_PIECE * _pieces(run) or not token_like(value):
        return False
    # a wallet's address or public key: checked last, and only at a length that can have one
    return len(value) not in _BASE58CHECK_LENGTHS or _base58check(value) is None


def made_by_chance(value: str) -> bool:
    """A key by its look alone, whatever names it: hex, a UUID, letters and digits of one
    case or base64 of random bytes (`named_key`), or letters of both cases and digits
    (`machine_token`), of a token's characters only (a host's name, a path, a version are
    none). Never an identifier (`verifyToken2`, `token_ids_2048`)."""
    if not value or not value.isascii() or not _TOKEN_CHARACTERS.issuperset(value):
        return False
    return named_key(value) or machine_token(value)


_TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_-+/=")


def key_by_look(value: str) -> bool:
    """`made_by_chance`, where nothing but a setting's name says what the value is (a
    secret's field, an environment variable): 16 characters at least, hex 32 at least (a
    shorter run is an id's or a short digest's), and no cloud resource's id (`i-<hex>`,
    `vpc-<hex>`) or ULID (an id, as review 14 found them under such names)."""
    if len(value) < 16 or value.isdigit() or not made_by_chance(value):
        return False
    if _HEX.issuperset(value) and len(value) < 32:
        return False
    return search_text(_RESOURCE_ID, value) is None and not ulid(value)


# A cloud resource's id: a short kind, a hyphen, hex (AWS's i-, vpc-, subnet-, sg-, ami-).
_RESOURCE_ID = re2.compile(r"^[a-z]{1,8}-[0-9a-f]{8,17}$")
# A ULID: 26 characters of Crockford's base32, one case, a millisecond time first (01...
# from 2020 to 2039).
_ULID = re2.compile(r"^01[0-9A-HJKMNP-TV-Z]{24}$|^01[0-9a-hjkmnp-tv-z]{24}$")


def ulid(value: str) -> bool:
    """Whether `value` is a ULID: an id, however random its last 16 characters look."""
    return len(value) == 26 and search_text(_ULID, value) is not None


def login_token(value: str) -> bool:
    """A token given to a login command: a key by its look (`key_by_look`), no UUID (an
    account's or an app's id) and no words joined by hyphens or underscores (a pod's or a
    host's name: argocd-server-7d8f9c6b5-x2k4p)."""
    if not key_by_look(value) or is_uuid(value):
        return False
    parts = value.replace("_", "-").split("-")
    return not any(len(p) >= 4 and p.isalpha() and p.islower() for p in parts[1:])


_UUID = re2.compile(r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


def is_uuid(value: str) -> bool:
    """Whether `value`, blanks around it aside, is a UUID."""
    core = value.strip()
    return len(core) == 36 and search_text(_UUID, core) is not None


def random_hex(value: str) -> bool:
    """Hex digits or a UUID made by chance: no run of one digit, no sequence, no placeholder
    (0000..., deadbeef...), enough kinds of digit (token_like's entropy)."""
    core = value.replace("-", "")
    if is_sequence(core.lower()) or len(set(core)) < 8:
        return False
    return not is_placeholder(value) and shannon_entropy(core) >= 3.0


# A short prefix, then 32-64 hex digits of one case: how many vendors mark their keys
# (`nv-<hex>`, `rc_<hex>`, `CAP-<HEX>`).
_PREFIX_THEN_HEX = re2.compile(r"^([A-Za-z][A-Za-z0-9]{0,5})[_-]([0-9a-f]{32,64}|[0-9A-F]{32,64})$")
_VERSION_PREFIX = re2.compile(r"^[vr][0-9]+$")


def named_key(value: str) -> bool:
    """A value under a vendor's name, of one case (vendor-named-hex): hex or a UUID made by
    chance (`random_hex`), or letters and digits of one case, both kinds, made by chance
    (no sequence, no placeholder, 4 bits a character: a base32 or base36 key's), and no
    words run together (`_identifier`: databasereplicaprimary01); or base64 with a + or a
    / in it, of random bytes (`_random_base64`); or a short prefix, then hex made by chance
    (`nv-<hex>`), where the prefix names no id or digest (`_names_no_key_prefix`); or, with a
    symbol in it, a person's password (`human_password`)."""
    if not _PASSWORD_SYMBOLS.isdisjoint(value):
        return human_password(value)
    if "+" in value or "/" in value or value.endswith("="):
        return _random_base64(value)
    found = None if "_" not in value and "-" not in value else search_text(_PREFIX_THEN_HEX, value)
    if found is not None:  # `nv-<32 hex>`, `rc_<64 HEX>`: a vendor's prefix, then hex
        prefix, core = value[: found[1][1]].lower(), value[found[2][0] :]
        if len(core) == 40 or search_text(_VERSION_PREFIX, prefix) is not None:
            return False  # a commit's SHA-1 after a branch's or an artifact's name; v1-, r2-
        return not _names_no_key_prefix([prefix]) and random_hex(core)
    if len(value) > 64:
        return False  # longer hex, read by the base64 branch's pattern: a dump, a key's public half
    if _bech32_address(value):
        return False
    if not (value.isupper() or value.islower()) and not value.isdigit():
        return False  # both cases, no + or /: machine-made-token's to judge
    if _HEX.issuperset(value.replace("-", "")):
        return random_hex(value)
    if value.isalpha() or value.isdigit() or is_sequence(value.lower()):
        return False
    if is_placeholder(value) or shannon_entropy(value) < 4.0 or _counts_up(value):
        return False
    return not _identifier(value)


# Bech32's alphabet (BIP 173): no 1, b, i or o after the separator.
_BECH32 = frozenset("qpzry9x8gf2tvdw0s3jn54khce6mua7l")


def _bech32_address(value: str) -> bool:
    """A Bitcoin or Litecoin address in bech32 (bc1q..., tb1..., ltc1...): public, what a
    payment is sent to; or a Nostr public key, profile, note or event (NIP-19's npub1...,
    nprofile1..., note1..., nevent1..., naddr1...: a Nostr secret key is nsec1...)."""
    hrp, one, rest = value.partition("1")
    return one == "1" and hrp in _PUBLIC_BECH32 and _BECH32.issuperset(rest)


# The human-readable parts of bech32 strings that are public: Bitcoin's and Litecoin's
# addresses (BIP 173), Nostr's public entities (NIP-19).
_PUBLIC_BECH32 = frozenset(
    {"bc", "tb", "bcrt", "ltc", "npub", "nprofile", "note", "nevent", "naddr"}
)


# Words that make a prefix before hex an id's or a digest's (prefixed-hex-key): `sha256-<hex>`
# is how Ollama names a blob, `commit_<sha>`, `cache-<md5>`, `run-<uuid hex>`, `tx_<hash>`.
_NOT_KEY_PREFIXES = frozenset(
    {
        *("sha", "sha1", "sha224", "sha256", "sha384", "sha512", "md5", "crc", "crc32", "hash"),
        *("hashes", "digest", "sum", "checksum", "blake2b", "blake3", "keccak", "commit", "rev"),
        *("ref", "refs", "git", "head", "tree", "blob", "layer", "object", "obj", "build", "cache"),
        *("chunk", "bundle", "file", "img", "image", "tmp", "temp", "id", "ids", "uuid", "guid"),
        *("oid", "trace", "span", "req", "request", "session", "sess", "sid", "msg", "message"),
        *("event", "node", "pkg", "npm", "pip", "deps", "dep", "lock", "main", "app", "runtime"),
        *("static", "asset", "assets", "etag", "nonce", "salt", "run", "job", "task", "pr"),
        *("release", "tag", "snapshot", "backup", "test", "example", "sample", "dummy", "fake"),
        *("mock", "tx", "txn", "block", "addr", "address", "wallet", "user", "acct", "account"),
        *("org", "team", "project", "workspace", "tenant", "order", "item", "doc", "page", "post"),
        *("video", "track", "model", "dataset", "ckpt", "checkpoint", "artifact", "state", "pub"),
        *("public", "publishable"),
    }
)
# Before hex alone (a name's value, a class's argument: `_names_no_key_prefix`), but not
# before a key's word (prefixed-hex-key's `deploy_key_<hex>`, `web_api_key_<hex>`): a
# cache's or an artifact's key, its tool's, its system's or its site's name first, and a
# deployment's slot.
_NAME_BEFORE_HEX = frozenset(
    {
        *("pnpm", "yarn", "linux", "macos", "windows", "darwin", "ubuntu", "dist", "web"),
        *("site", "out", "fix", "wip", "feat", "deploy", "bazel", "gradle", "maven", "cargo"),
        *("blue", "green", "canary"),
    }
)


# Prefixes of the ids that payment and model APIs hand out (Stripe's cus_, pi_, price_;
# OpenAI's asst_, file_, batch_; Anthropic's msg_, toolu_), which their SDKs' classes take
# as often as a key: with _NOT_KEY_PREFIXES, class_key's ids.
_ID_PREFIXES = frozenset(
    {
        *("cus", "pi", "ch", "py", "pm", "price", "prod", "sub", "si", "in", "inv", "ii"),
        *("seti", "src", "card", "ba", "tok", "evt", "re", "po", "tr", "txn", "cs", "plink"),
        *("asst", "thread", "file", "batch", "call", "toolu", "chatcmpl", "resp", "step", "vs"),
        *("ft", "ftjob", "proj", "dpl", "prj", "ws", "cust", "usr", "ord", "ver", "env"),
        # a domain's own nouns: a stream's, a topic's, an experiment's or a flag's name
        *("we", "exp", "ds", "cmp", "stream", "topic", "dataset", "component", "flag", "ff"),
    }
)


def _names_no_key_prefix(parts: Sequence[str]) -> bool:
    """Whether a part of a value's prefix names an id, a digest, a build's or a cache's
    thing, or a publishable key."""
    return (
        any(
            part in _NOT_KEY_PREFIXES or part in _ID_PREFIXES or part in _NAME_BEFORE_HEX
            for part in parts
        )
        or "pk" in parts
    )


def class_key(value: str) -> bool:
    """The value given first to an SDK's client class (class-argument-key): hex made by
    chance (`random_hex`), or a vendor's short prefix, then hex made by chance or a key by
    its look (`key_by_look`). No part of the prefix may name an id or a digest
    (`_NOT_KEY_PREFIXES`, `_ID_PREFIXES`: `cus_`, `asst_`, `sha256-`), and neither may a
    publishable key's (`pk_`: a storefront's `new Commerce('pk_...')`, Stripe.js's)."""
    if _HEX.issuperset(value):
        return random_hex(value)
    cut = max(value.rfind("_"), value.rfind("-"))
    head, core = value[:cut], value[cut + 1 :]
    parts = head.replace("-", "_").split("_")
    if value.startswith(PUBLIC_TOKEN_PREFIXES) or _names_no_key_prefix(parts):
        return False
    if any(len(part) < 2 for part in parts):
        return False  # `m_<hex>`: a migration's, a model's id
    if _HEX.issuperset(core):
        return len(core) >= 32 and random_hex(core)
    return key_by_look(core)


# Segments of a prefix that say a key follows (prefixed-hex-key): `key_`, `sk`, `api-`,
# `prj_live_sk_`, `signkey-prod-`, Stripe's `whsec_`.
_KEY_PREFIX_PARTS = frozenset(
    {
        *("key", "apikey", "api", "sk", "pk", "rk", "psk", "pat", "secret", "token", "tok"),
        *("sign", "signkey", "signing", "live", "priv", "private", "auth", "access", "whsec"),
    }
)


# Words that end in "key" and say no key (review 14), and a public key's (Mailgun's pubkey-).
_WORDS_ENDING_IN_KEY = frozenset(
    {"monkey", "turkey", "hockey", "jockey", "whiskey", "donkey", "hotkey", "turnkey", "pubkey"}
)


# What may stand between a key's word and its hex: the key's environment (`signkey-prod-`).
_KEY_ENVIRONMENTS = frozenset({"live", "test", "prod", "dev", "sandbox", "sbox"})


def names_no_key(name: str) -> bool:
    """Whether a word of `name` names a digest, an id or another value that is no key
    (`_NOT_KEY_NAMES`): BUILD_SHA, commit, imageTag, POD_UID, CONFIG_REVISION."""
    return any(word in _NOT_KEY_NAMES for word in name_words(name))


# A prefix's words that name no key (_NOT_KEY_PREFIXES), and more that a setting's name has
# for what no key is: its version, a host's, a place's or a device's name or id.
_NOT_KEY_NAMES = _NOT_KEY_PREFIXES | {
    *("uid", "gid", "revision", "version", "ver", "fingerprint", "thumbprint", "serial"),
    *("name", "host", "hostname", "url", "uri", "path", "dir", "region", "zone", "cluster"),
    *("namespace", "pod", "instance", "device", "domain", "channel", "label", "slug", "kind"),
    *("type", "format", "locale", "timestamp", "date", "time", "color", "colour"),
    *("correlation", "cursor", "parent", "subscription", "customer", "member", "group"),
    *("deployment", "volume", "container", "entity", "resource", "target", "source", "record"),
    *("invoice", "payment", "document", "status", "identity", "profile"),
    *("bucket", "partition", "replica", "stage", "shard", "branch", "upstream", "remote"),
    *("previous", "prev", "next", "last", "first", "latest", "current", "original"),
    *("vpc", "subnet", "endpoint", "machine", "email", "mail", "server", "provider", "chat"),
    *("recipient", "distribution", "database", "queue", "topic", "table", "role", "arn"),
    *("signature", "sig", "hmac", "payload", "output", "result", "traceparent", "trigger"),
    *("idempotency", "redeploy", "restart", "random", "workflow", "environment", "client"),
    *("username", "login", "alias", "site", "service", "gpg", "pgp", "gnupg"),
}


def prefixed_hex(value: str) -> bool:
    """A key's prefix, then hex made by chance (`key_<128 hex>`, `prj_live_sk_<40>`,
    `signkey-prod-<64 hex>`, `pk.<32 hex>`). The prefix's last segment, or the one before
    an environment (`_KEY_ENVIRONMENTS`), must say key: one of `_KEY_PREFIX_PARTS`, or a
    word that ends in key, token or secret. Any other word before hex is an id's, a tag's or
    a cache key's far more often (`diff-`, `yarn-`, `fix-`, `pod-`), and so is a compound
    noun with a key's word first (`token-bucket-`, `auth-service-`: reviews 11 and 12). No
    segment may name a digest or an id (`_NOT_KEY_PREFIXES`: `sha256-`, `cache_key-`), and
    `pk` after a first segment is a publishable key's (`prj_live_pk_`: Radar's, for the
    page); alone, Klaviyo's private keys start with it. The hex is `random_hex`'s."""
    cut = max(map(value.rfind, "_-."))
    head, core = value[:cut], value[cut + 1 :]
    parts = head.replace("-", "_").split("_")
    if any(part in _NOT_KEY_PREFIXES for part in parts) or "pk" in parts[1:]:
        return False
    named = parts[-2] if len(parts) > 1 and parts[-1] in _KEY_ENVIRONMENTS else parts[-1]
    if named in _WORDS_ENDING_IN_KEY or not (
        named in _KEY_PREFIX_PARTS or named.endswith(("key", "token", "secret"))
    ):
        return False
    if _HEX.issuperset(core) and len(core) >= 32:
        return random_hex(core)
    # letters and digits of one case (`ckey_<27>`, `api-<28>`), but no ULID: an id
    return named_key(core) and not ulid(core)


def _random_base64(value: str) -> bool:
    """Base64 of 24 random bytes or more (Mux's, Clockify's, Kraken's keys), padded to a
    multiple of four as standard base64 is: capitals, lower case and digits; no run of
    words between its + and / (`_identifier`: an expression of camelCase names,
    `kMinOneByteValueLead+kMaxOneByteValue+10`, a path in capitals,
    `Prefabs/UI/MainMenu/SettingsPanel2`); changing from one kind of character to another,
    within those runs, at 40% of its characters at least (65% in random base64, 3.5
    standard deviations above 40% at 48 characters; words in capitals or lower case change
    less); not a path (two parts between its slashes in lower-case letters alone:
    src/main/...); not base64 of a structure (`_encoded`); and bytes outside ASCII, which
    24 random bytes have but for 1 time in 16 million (text is some other rule's). Random
    keys of 24-64 bytes pass 95% of the time."""
    body = value.rstrip("=")
    kinds = (str.isupper, str.islower, str.isdigit)
    if len(body) < 32 or len(value) % 4 or not all(any(map(k, body)) for k in kinds):
        return False
    parts = body.replace("+", "/").split("/")
    if any(len(part) >= 8 and _identifier(part) for part in parts):
        return False
    runs = [part.translate(_KINDS) for part in parts]
    changes = sum(a != b for run in runs for a, b in itertools.pairwise(run))
    if changes * 5 < sum(len(run) - 1 for run in runs if run) * 2:
        return False
    if sum(part.isalpha() and part.islower() for part in body.split("/") if len(part) > 2) > 1:
        return False
    if _encoded(body.replace("+", "-").replace("/", "_")):
        return False
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:  # a length no base64 has
        return False
    if raw.isascii():
        return _credential_pair(raw.decode("ascii"))
    return token_like(body)


def _credential_pair(text: str) -> bool:
    """An id and its secret joined by a colon, as HTTP's Basic scheme joins a user and a
    password and some vendors issue a key (base64 of `client_id:client_secret`): no blank,
    an id of 64 characters at most, and a secret that looks machine-made (`token_like`)."""
    user, colon, secret = text.partition(":")
    if not colon or not 0 < len(user) <= 64 or " " in text or not text.isprintable():
        return False
    if secret.startswith("/") or ":" in secret or user.lower() in _NOT_USERS:
        return False  # a URL, a URN, an ARN, a digest, a data URI
    if user.istitle() and user.isalpha():
        return False  # a Relay or GraphQL id: its type, then its number or UUID
    return token_like(secret)


# What comes before a colon in base64 of an id, never a user: a digest's algorithm, a URI's
# scheme.
_NOT_USERS = frozenset({"sha1", "sha256", "sha512", "md5", "data", "urn", "arn", "gid"})


def _counts_up(value: str, run: int = 6) -> bool:
    """Whether `value` holds `run` characters that count up one by one (abcdef, 456789): an
    alphabet written out, which a run made by chance holds 1 time in millions."""
    count = 1
    for a, b in itertools.pairwise(value.lower()):
        count = count + 1 if ord(b) == ord(a) + 1 else 1
        if count >= run:
            return True
    return False


def _identifier(run: str) -> bool:
    """Words run together with a number or two: BlasILP64NotFoundError,
    kCFStringEncodingUTF8, sizeEndCentDir64Locator. At most two runs of digits, and 60% of
    the characters in words: a capital or none, then lower case with a vowel, three letters
    at least. Review 9 measured what it costs: a random run of 20 is taken for one 1 time in
    85, one of 32 in 770. Read from the runs of one kind (`_KINDS`), in Python: RE2's matches
    through the binding cost 60 us a candidate (a flood of them, 130 ms)."""
    groups = [(kind, len(list(g))) for kind, g in itertools.groupby(run.translate(_KINDS))]
    if sum(kind == "d" for kind, _ in groups) > 2:
        return False
    in_words, pos, before = 0, 0, ("", 0)
    for kind, size in groups:
        if kind == "l" and not _VOWELS.isdisjoint(run[pos : pos + size]):
            word = size + (before[0] == "u")  # a capital before it: Word
            if word > 2:
                in_words += word
        before, pos = (kind, size), pos + size
    return in_words * 10 >= len(run) * 6


# base64 of a JSON object's start ({", { , {\n): a JWT's or a config's header, not a key.
_JSON_BASE64 = ("eyJ", "eyA", "ewo")
# What base64 of an id decodes to: a Relay global id (a type and a number, User:123456),
# Shopify's gid://shopify/Product/123. (Not any word:word: KEY:X is Basic's key as a user.)
_ENCODED_NAME = re2.compile(r"^(?:[A-Z][A-Za-z]*:[0-9]+|gid://[\w./-]+)$")


def _encoded(run: str) -> bool:
    """base64 that decodes to something with a structure of its own, which no key has: a
    JSON object; text (with blanks: `c3VwZXIgc2VjcmV0IHZhbHVl`, "super secret value",
    GitHub's file contents) or a name with a colon (a Relay id, User:123456); binary data
    with a zero byte first (an SSH public key's blob, whose length comes first: 00 00 00;
    1 random run in 256); a DER structure (a SEQUENCE: a certificate's or a key's first
    line, with a long length; a public key whole, with the length it has)."""
    if run.startswith(_JSON_BASE64):
        return True
    try:
        raw = base64.b64decode(run + "=" * (-len(run) % 4), altchars=b"-_", validate=True)
    except ValueError:
        return False
    if len(raw) < 4:
        return False
    if raw[0] == 0 or (raw[0] == 0x30 and 0x81 <= raw[1] <= 0x83):
        return True  # a long DER structure: a certificate's or a key's first line
    if raw[0] == 0x30 and _der_length(raw) in (len(raw), len(raw) + 1):
        return True  # a short one whole (a length one past: base64 cut short of its last byte)
    if public_key_bytes(raw):
        return True
    if not raw.isascii():
        return False
    text = raw.decode("ascii")
    if (" " in text or "\n" in text) and text.replace("\n", "").isprintable():
        return True
    return found_in(_ENCODED_NAME, raw)


def public_key_bytes(raw: bytes) -> bool:
    """A public key by its bytes' own layout: an uncompressed elliptic-curve point (0x04,
    then x and y: 65 bytes for P-256, as a VAPID applicationServerKey is; 97 for P-384, 133
    for P-521), or a minisign public key ("Ed", an 8-byte key id, 32 bytes of Ed25519: 42).
    Random bytes of those lengths start so 1 time in 256 and in 65,536."""
    return (len(raw) in (65, 97, 133) and raw[0] == 4) or (len(raw) == 42 and raw[:2] == b"Ed")


# The lengths in base64 of the keys `public_key_bytes` knows (65, 97, 133 and 42 bytes),
# padded or not.
_PUBLIC_KEY_LENGTHS = frozenset({87, 88, 130, 132, 178, 180, 56})


def encoded_public_key(value: str) -> bool:
    """`value` is base64 or base64url of a public key by its layout (`public_key_bytes`)."""
    core = value.strip()
    if len(core) not in _PUBLIC_KEY_LENGTHS:
        return False
    body = core.rstrip("=")
    raw = _b64bytes(body, altchars=b"-_") or _b64bytes(body)
    return raw is not None and public_key_bytes(raw)


def _der_length(raw: bytes) -> int:
    """The length a DER SEQUENCE at `raw`'s start says it has, its header included."""
    size = raw[1]
    if size < 0x80:
        return size + 2
    count = size - 0x80
    if not 1 <= count <= 2 or len(raw) < 2 + count:
        return -1
    return int.from_bytes(raw[2 : 2 + count], "big") + 2 + count


def _hex_core(run: str) -> bool:
    """Hex but for four characters at one end, or hex after a name: a Cloudflare ray id and
    its airport (`4ccf49267267d75a-LHR`), a Twilio message's SID (SM and 32 hex digits), a
    key with its region after it (`...-us2`), `NODE_SEA_FUSE_<hex>`: ids and digests, or a
    key of a vendor's own shape, which its rule knows."""
    parts = run.replace("-", "_").split("_")
    longest = max(parts, key=len)
    if len(longest) >= 16 and all(p.isalpha() or _HEX.issuperset(p) for p in parts):
        return _HEX.issuperset(longest)
    core = run.replace("-", "").replace("_", "")
    return len(core) >= 16 and (_HEX.issuperset(core[4:]) or _HEX.issuperset(core[:-4]))


def _words_joined(run: str) -> bool:
    """Four parts or more between - and _, none of 12 characters: words, as in
    `Need5_T00-be-exactly-40-chars`, not a token's run."""
    parts = run.replace("-", "_").split("_")
    return len(parts) >= 4 and max(map(len, parts)) < 12


def _prefixes_cut(value: str) -> tuple[str, int] | None:
    """`value` without its lower-case prefix of one to three segments, and how many there
    were; None if a segment says the value is public (`_PUBLIC_SEGMENTS`)."""
    body, segments = value, 0
    while segments < 3:
        head, cut, rest = _split_prefix(body)
        if not cut:
            break
        if head in _PUBLIC_SEGMENTS:
            return None
        body, segments = rest, segments + 1
    return body, segments


def _split_prefix(value: str) -> tuple[str, str, str]:
    """`fw`, `_`, `tKfi...` for `fw_tKfi...`: a prefix of one to ten lower-case letters and
    digits, starting with a letter, cut at its `_` or `-`; no cut if there is none."""
    for i, c in enumerate(value[:11]):
        if c in "_-":
            head = value[:i]
            if head and head[0].isalpha():
                return head, c, value[i + 1 :]
            break
        if not (c.isascii() and (c.islower() or c.isdigit())):
            break
    return value, "", ""


# --- wallets ---------------------------------------------------------------------------

_BASE58 = {c: i for i, c in enumerate("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")}
# BIP32's version bytes of an extended private key: mainnet xprv, testnet tprv
_EXTENDED_PRIVATE = (b"\x04\x88\xad\xe4", b"\x04\x35\x83\x94")


def _base58check(value: str) -> bytes | None:
    """The payload of a Base58Check string (how Bitcoin writes keys), or None where a
    character is not Base58 or the double SHA-256 checksum of its last 4 bytes fails."""
    number = 0
    for c in value:
        digit = _BASE58.get(c)
        if digit is None:
            return None
        number = number * 58 + digit
    zeros = len(value) - len(value.lstrip("1"))  # each leading 1 is a zero byte
    raw = b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")
    payload, check = raw[:-4], raw[-4:]
    digest = hashlib.sha256(hashlib.sha256(payload).digest()).digest()
    return payload if len(raw) > 4 and digest[:4] == check else None


def extended_private_key(value: str) -> bool:
    """A BIP32 extended private key (xprv..., tprv...): 78 bytes, its checksum right."""
    payload = _base58check(value)
    return payload is not None and len(payload) == 78 and payload[:4] in _EXTENDED_PRIVATE


# Words no BIP39 list holds and most English sentences do: two of them, and a run of short
# words after "mnemonic" is a sentence about one, not a seed phrase.
_SENTENCE_WORDS = frozenset(
    {
        *("the", "and", "that", "this", "with", "have", "from", "your", "should", "would"),
        *("could", "they", "their", "there", "been", "were", "than", "which", "these"),
        *("those", "because"),
    }
)


def seed_phrase(value: str) -> bool:
    """A wallet's recovery phrase: 12, 15, 18, 21 or 24 words (BIP39's lengths), more than
    one word among them, and not a sentence."""
    words = value.split()
    if len(words) not in (12, 15, 18, 21, 24) or len(set(words)) < len(words) // 2:
        return False
    return sum(w in _SENTENCE_WORDS for w in words) < 2


def authorization(value: str) -> bool:
    """Basic credentials are base64 "user:password": judge the password, not the encoding."""
    decoded = _base64_utf8(value)
    if decoded is not None and ":" in decoded:
        return looks_like_credential(decoded.split(":", 1)[1])
    return looks_like_credential(value)


def basic_credentials(value: str) -> bool:
    """HTTP Basic credentials standing without a header's name (RFC 7617): base64 that
    decodes to a user, a colon and a password that looks like one."""
    user, colon, password = (_base64_utf8(value) or "").partition(":")
    return bool(user and colon) and user.isprintable() and looks_like_credential(password)


def sasl_plain(value: str) -> bool:
    """SASL PLAIN's message (RFC 4616): base64 of an authorisation id, NUL, the user, NUL,
    the password; judged by the password."""
    parts = (_base64_utf8(value) or "").split("\0")
    return len(parts) == 3 and bool(parts[1]) and password_value(parts[2])


def _base64_utf8(value: str) -> str | None:
    """The UTF-8 text `value` is strict base64 of, or None (the credentials' schemes above
    send their user and password so)."""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


def protocol_password(value: str) -> bool:
    """A protocol command's password (FTP's PASS, IMAP's LOGIN): a password, but not a path
    (a test runner prints `PASS src/app.test.js`) nor a placeholder."""
    if value.lower().startswith(("anonymous", "guest")) or search_text(_MAILBOX, value):
        return False  # anonymous FTP's: a mailbox, or anonymous@, by convention (RFC 1635)
    if names_a_file(value) or search_text(_NOT_A_PROTOCOL_PASSWORD, value) is not None:
        return False
    if found_in(_VERSIONED_SLUG, value.encode("utf-8", "surrogatepass")):
        return False  # a CI step's or a check's name: lint-check-v2 (a passphrase ends in digits)
    if sum(c.isupper() for c in value) >= 2 and _CAMEL_WORDS in _shapes(value):
        return False  # words run together in CamelCase: a test's name (TestConfigLoader)
    return password_value(value)


# What follows PASS or a tagged LOGIN in a test runner's or an application's log, not a
# protocol's password: a test's name (TestConfigLoader, Go's Test/Benchmark/Example/Fuzz
# functions, test_parse_iso8601), a key=value field (sess=ab12cd34ef), an address and port
# (203.0.113.5:51234).
_NOT_A_PROTOCOL_PASSWORD = re2.compile(
    r"^(?:(?:Test|Benchmark|Example|Fuzz)[A-Z_][\w/]*|test_\w+|[A-Za-z_][\w.-]*=.*"
    r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?)$"
)


# A slug then a version: lower-case words joined by hyphens, then v2 or r12.
_VERSIONED_SLUG = re2.compile(rb"^[a-z]+(?:-[a-z]+)*-[a-z][0-9]{1,4}$")
_MAILBOX = re2.compile(r"^[^@\s]*@(?:[\w-]+\.)*[\w-]*\.[a-z]{2,}$|@$")


def names_a_file(value: str) -> bool:
    """Whether `value` is a path or a file's name (`src/app.test.js`, `login_test.py`)."""
    return "/" in value or "\\" in value or search_text(_FILE_NAME, value) is not None


_FILE_NAME = re2.compile(r"^[\w.-]+\.[a-z]{1,4}$")


def authorization_token(value: str) -> bool:
    """For an Authorization header's value after a scheme no rule knows: machine-made, with
    letters and digits (`token_in_prose`), and a credential as `authorization` judges one (a
    Basic scheme's base64 of "username:password" is a placeholder's); not an auth-param
    (RFC 7235: `sid=...`, HTTP Signature's `keyId=...`), whose value is a name."""
    if "=" in value.rstrip("="):
        return False
    return token_in_prose(value) and authorization(value)


def twitter_bearer(value: str) -> bool:
    """X's app-only bearer token as twitter-bearer-token reads it (22 A's, a URL escape
    among letters and digits): 80 to 120 characters after the A's."""
    return 102 <= len(value) <= 142


def _b64bytes(part: str, altchars: bytes | None = None) -> bytes | None:
    """`part` decoded from (unpadded) base64, or None."""
    try:
        return base64.b64decode(part + "=" * (-len(part) % 4), altchars=altchars, validate=True)
    except ValueError:
        return None


def _b64decode(part: str, altchars: bytes | None = None) -> str | None:
    """`part` decoded from (unpadded) base64 as UTF-8 text, or None."""
    raw = _b64bytes(part, altchars)
    try:
        return None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def jwt(value: str) -> bool:
    """A JSON Web Token: its header decodes to a JSON object ('{"alg":...}'). Not Supabase's
    anon key, public by design (a documented decision in rules.toml)."""
    header = _b64decode(value.split(".", 1)[0], altchars=b"-_")
    if header is None or not header.lstrip().startswith("{") or not header.rstrip().endswith("}"):
        return False
    return not supabase_anon_key(value)


def supabase_anon_key(value: str) -> bool:
    """Whether the token's claims are Supabase's anon key's: issued by supabase, for the
    anon role. Its web and mobile clients ship it; what it may read is the row-level
    security's to say (Supabase's API keys docs)."""
    parts = value.split(".")
    claims = _b64decode(parts[1], altchars=b"-_") if len(parts) > 1 else None
    if claims is None or '"anon"' not in claims:
        return False
    try:
        payload = json.loads(claims)
    except ValueError:
        return False
    return (
        isinstance(payload, dict)
        and payload.get("role") == "anon"
        and (payload.get("iss") == "supabase")
    )


def base64_jwt(value: str) -> bool:
    """A JWT wrapped in base64 once more: the decoded text is a token."""
    decoded = _b64decode(value[: MAX_TOKEN_CHARS - MAX_TOKEN_CHARS % 4])
    if decoded is None:
        decoded = _b64decode(value[: len(value) - len(value) % 4].rstrip("="))
    if decoded is None or not decoded.startswith("eyJ") or "." not in decoded:
        return False
    return jwt(decoded.split()[0] if decoded.split() else decoded)


def base64_private_key(value: str) -> bool:
    """A PEM private key wrapped in base64 (a kubeconfig's client-key-data, a Secret's
    tls.key): its header says PRIVATE KEY. A certificate's or a public key's is public."""
    header = _b64decode(value[:64])  # 48 bytes: "-----BEGIN ENCRYPTED PRIVATE KEY-----" and more
    return header is not None and "PRIVATE KEY" in header


def url_password(url: str) -> bool:
    """scheme://user:password@host: the password is real unless it is a placeholder, a
    reference (${DB_PASSWORD}) or the user name again (postgres:postgres@localhost)."""
    userinfo = url.split("://", 1)[-1].split("@", 1)[0]
    user, _, password = userinfo.partition(":")
    if len(password) < 3 or password == user or not has_alnum(password):
        return False
    if password.startswith("{") and password.endswith("}"):
        return False  # "postgresql://{user}:{pw}@{host}".format(...): a template
    shapes = _shapes(password)
    return not (_placeholder(password, shapes) or _names(password, shapes))


def otp_seed(value: str) -> bool:
    """A one-time-password seed: as an otpauth:// URI holds it or a name binds it, with no
    template's word in it (`EXAMPLESEEDVALUE`, `YOURBASE32SEEDHERE`; one of its four-letter
    words turns up in 32 random base32 characters about once in 9,000 seeds); or typed in
    groups of four with at least one of base32's digits (words of four letters are "keep
    this file safe", not a seed: 32 random characters lack a digit once in 800)."""
    if " " in value:
        return any(c in "234567" for c in value)
    lowered = value.lower()
    return not any(word in lowered for word in _SEED_TEMPLATE_WORDS)


def jwk_private_member(value: str) -> bool:
    """A JSON Web Key's private member (RFC 7518, section 6): base64url of random bytes,
    `looks_like_credential`, with capitals and lower case in it, not words joined: a
    placeholder's (`base64url-encoded-private-key`, `YOUR_PRIVATE_KEY`,
    `Base64UrlPrivateExponent`). Of 8,000 random values of 16 to 1,366 characters, 31 are
    turned down, nearly all of the shortest. Nor a template's pattern: a block repeated
    (`abc123ABC123abc123ABC123`), the alphabet counted out (`AbCdEfGh...`), or base64 of a
    sentence (`dGhpcyBpcyBub3Qg...`, "this is not...")."""
    run = value.replace("-", "").replace("_", "")
    return (
        looks_like_credential(value)
        and any(map(str.isupper, value))
        and any(map(str.islower, value))
        and not _identifier(run)
        and not _patterned(value)
        and not _base64_of_a_sentence(value)
    )


def _patterned(value: str) -> bool:
    """A block of up to 16 characters repeated to the value's end, or an alphabet written
    out in either case (`is_sequence`)."""
    if any(value[period:] == value[:-period] for period in range(1, min(16, len(value) // 2) + 1)):
        return True
    return is_sequence(value.lower())


def _base64_of_a_sentence(value: str) -> bool:
    """base64 (or base64url) of printable ASCII with a blank in it: words, not bytes."""
    text = _b64decode(value, altchars=b"-_")
    return text is not None and text.isascii() and " " in text and text.isprintable()


def recovery_codes(value: str) -> bool:
    """A list of an account's recovery codes: three or more, each on its line, two in three
    of them or more with a digit (random codes of ten letters and digits lack one about
    once in 25), not all the same (`xxxxx-xxxxx`, a template's)."""
    codes = [
        line.strip(" \t\r-*\u2022").split(")")[-1].split(".")[-1].strip()
        for line in value.splitlines()
    ]
    codes = [code for code in codes if code]
    with_digit = sum(any(c.isdigit() for c in code) for code in codes)
    return len(codes) >= 3 and 3 * with_digit >= 2 * len(codes) and len(set(codes)) > 1


# The words a template writes in a seed's place.
_SEED_TEMPLATE_WORDS = (
    *("your", "seed", "here", "example", "placeholder", "insert", "replace", "value"),
    *("sample", "dummy", "fake", "base32", "secret", "default", "disabled", "changeme"),
)


def vault_token(value: str) -> bool:
    """A Vault token: a short one (hvs. and 24) is random, so it mixes two kinds of
    character at least and runs no words together (a package's class,
    hvs.HighVoltageSystemAdapter, is words)."""
    if len(value) != len("hvs.") + 24:
        return True  # a long one's entropy is its rule's to judge
    rest = value[4:]
    return char_classes(rest) >= 2 and _CAMEL_WORDS not in _shapes(rest.rstrip(string.digits))


def attached_password(value: str) -> bool:
    """A password on a command line: one with a : or = inside is no password where what
    follows it is a port, a number or a switch (`-pHOST1:8080`, `-pIPv6=true`: a tool's
    settings)."""
    _, sign, after = value.partition(":") if ":" in value else value.partition("=")
    if sign and (after.isdigit() or after.lower() in ("true", "false", "yes", "no", "on", "off")):
        return False
    return password_value(value)


# The NT hash of the empty password (MD4 of nothing), which dumps print for an account with
# none: no secret.
_EMPTY_NT_HASH = "31d6cfe0d16ae931b73c59d7e0c089c0"


def nt_hash(value: str) -> bool:
    """An NT hash (the last 32 hex digits of a dump's value) that is not the empty password's."""
    return not value.strip().lower().endswith(_EMPTY_NT_HASH)


def des_crypt(value: str) -> bool:
    """A DES crypt(3) hash's 13 characters as chance makes them: letters of both cases and a
    digit or a dot or slash among them (not a 13-digit millisecond timestamp, not a word)."""
    return (
        any(c.islower() for c in value)
        and any(c.isupper() for c in value)
        and any(c.isdigit() or c in "./" for c in value)
    )


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": pii.card_number,
    "nt_hash": nt_hash,
    "des_crypt": des_crypt,
    "iban": pii.iban,
    "ssn": pii.us_ssn,
    "identity_number": pii.identity_number,
    "mrz": pii.mrz,
    "mrz_second_line": pii.mrz_second_line,
    "mexican_curp": pii.mexican_curp,
    "mexican_rfc_person": pii.mexican_rfc_person,
    "thai_pin": pii.stdnum_valid("th.pin"),
    "pakistani_cnic": pii.pakistani_cnic,
    "argentine_cuit_person": pii.argentine_cuit_person,
    "indian_pan_person": pii.indian_pan_person,
    "emirates_id": pii.emirates_id,
    "micr_account": pii.micr_account,
    "aamva_licence_number": pii.aamva_licence_number,
    "account_number": pii.account_number,
    "italian_fiscal_code": pii.italian_fiscal_code,
    "chinese_resident_id": pii.chinese_resident_id,
    "korean_resident_number": pii.korean_resident_number,
    "brazilian_cpf": pii.brazilian_cpf,
    "uk_national_insurance_number": pii.uk_national_insurance_number,
    "spanish_dni": pii.spanish_dni,
    "date_of_birth": pii.labelled_date_of_birth,
    "australian_postcode": pii.australian_postcode,
    "private_ip": pii.private_ip,
    "credential": looks_like_credential,
    "password": password_value,
    "wifi_psk": wifi_psk,
    "attached_password": attached_password,
    "vault_token": vault_token,
    "human_password": human_password,
    "authorization": authorization,
    "basic_credentials": basic_credentials,
    "sasl_plain": sasl_plain,
    "protocol_password": protocol_password,
    "authorization_token": authorization_token,
    "twitter_bearer": twitter_bearer,
    "strong_credential": strong_credential,
    "token_in_prose": token_in_prose,
    "prefixed_token": prefixed_token,
    "machine_token": machine_token,
    "random_hex": random_hex,
    "class_key": class_key,
    "named_key": named_key,
    "made_by_chance": made_by_chance,
    "key_by_look": key_by_look,
    "login_token": login_token,
    "prefixed_hex": prefixed_hex,
    "phone": pii.phone,
    "phone_national": pii.phone_national,
    "phone_labelled": pii.phone_labelled,
    "dicom_contact": lambda value: pii.phone_labelled(value) or pii.street_line(value),
    "email": pii.email,
    "jwt": jwt,
    "base64_private_key": base64_private_key,
    "base64_jwt": base64_jwt,
    "url_password": url_password,
    "extended_private_key": extended_private_key,
    "seed_phrase": seed_phrase,
    "otp_seed": otp_seed,
    "grouped_key": grouped_key,
    "jwk_private_member": jwk_private_member,
    "recovery_codes": recovery_codes,
}


# Prefixes that vendors publish as the fixed start of their tokens: safe to show. Written
# out as literals, so that one `startswith` passes over nearly every value; a private key's
# armour line is the one that needs the pattern.
PUBLIC_PREFIXES = (
    *("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    *(f"gh{kind}_" for kind in "pousr"),
    "github_pat_",
    *(f"gl{kind}-" for kind in ("pat", "dt", "ptt", "rt", "soat", "cbt")),
    *(f"xox{kind}-" for kind in "abposr"),
    "sk-ant-",
    *(f"sk-{kind}-" for kind in ("proj", "svcacct", "admin")),
    *(f"{kind}k_{mode}_" for kind in "sr" for mode in ("live", "test", "prod")),
    *("hf_", "npm_", "pypi-", "SG.", "AIza", "eyJ"),
)
_STARTS = (*PUBLIC_PREFIXES, "-----BEGIN ")  # and a private key's armour line
PUBLIC_PREFIX = re2.compile(
    "^(?:"
    + "|".join(re2.escape(prefix) for prefix in PUBLIC_PREFIXES)
    + "|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)


def public_prefix(value: str) -> int:
    """The length of the vendor's public prefix `value` starts with (PUBLIC_PREFIX), or 0."""
    if not value.startswith(_STARTS):
        return 0
    found = search_text(PUBLIC_PREFIX, value)  # ASCII: its byte length is its length
    return 0 if found is None else found[0][1]


def preview(value: str) -> str:
    """A redacted stand-in: a vendor's public token prefix at most, then the length.

    None of the sensitive characters themselves are shown; this is all that logs, JSON
    output and the ledger ever carry of a finding.
    """
    return f"{value[: public_prefix(value)]}…[{len(value)} chars]"
