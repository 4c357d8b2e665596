"""Value checks that a pattern alone cannot make: entropy, checksums, placeholders, previews."""

from __future__ import annotations

import base64
import math
import re
from collections import Counter
from collections.abc import Callable

import re2

from devpulse.plugins.privacy import pii
from devpulse.plugins.privacy.spans import search_spans, search_text

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
                r"(?:^|[^a-z0-9])(?:example|placeholder|changeme|change[-_]me|dummy|redacted"
                r"|sample|fake)(?:[^a-z0-9]|$)",
                r"example(?:key)?$",
                r"xxxx",
                r"\*{3,}",
                r"\.{3}",
                r"…",
                r"<[^>]*>",
                r"\{\{.*\}\}",
                r"\$\{[^}]*\}",
                r"\$\([^)]*\)",
                r"%\(\w+\)s",
                r"^\$[A-Z_][A-Z0-9_]*$",
                r"^(?:none|null|nil|true|false|undefined|todo|tbd|n/?a)$",
                r"-here$",
                r"_here$",
                r"^(?:test|testing|secret|password|passwd|passw0rd|pass|pwd|token|key|admin|root"
                r"|user|username|default|demo|guest|qwerty|letmein|welcome|foo|bar|baz)\d{0,4}!?$",
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
    r"|\$(?:\{|\(|[A-Za-z_][\pL\pN_]*\n?$)|ENC\[)"  # $VAR, ${VAR}, $(cmd); SOPS ciphertext
)
# A segment is snake_case, UPPER_CASE or CamelCase. The first two both take "_", so a
# backtracking engine tried 2^n splits of "_._._" (27 s for 26 segments); RE2 reads it once.
_SEGMENT = r"(?:[a-z_][a-z0-9_]*|[A-Z_][A-Z0-9_]*|[A-Z][a-z]+(?:[A-Z][a-z]+)*)"
CODE_EXPRESSION = re2.compile(
    rf"^(?:{_SEGMENT}(?:\.{_SEGMENT})+\n?$"  # settings.SECRET_KEY, os.environ
    r"|[A-Za-z_][\pL\pN_.]*\("  # os.getenv(...)
    r"|[a-z]+(?:[_-][a-z]+)+\n?$)"  # user_password_input, form-field-name
)
# Well-known keys published in vendors' documentation (AWS's own examples, among others).
DOCUMENTED_KEYS = frozenset(
    {
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AKIAI44QH8DHBEXAMPLE",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    }
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
    counts = Counter(value).values()
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


def is_placeholder(value: str) -> bool:
    """True for template values, documentation keys and runs of one character."""
    core = value.strip().strip("'\"`")
    if core in DOCUMENTED_KEYS or len(set(core)) <= 2:
        return True
    return search_text(PLACEHOLDER, core) is not None


def looks_like_credential(value: str) -> bool:
    """For a value assigned to a credential-like name: is it plausibly a real secret?

    Rejects placeholders, lone dictionary-style words and short or repetitive strings, so
    `password = "changeme"` and `token = "YOUR_TOKEN"` are not findings but
    `DB_PASSWORD = "x9$Kq2mPz!"` is.
    """
    core = value.strip().strip("'\"`").rstrip(",;").rstrip(".…")  # "…" marks a cut paste
    if len(core) < 6 or " " in core or is_placeholder(core):
        return False
    if core.isalpha() and (core.islower() or core.isupper()) and len(core) <= 12:
        return False  # a plain word: "secret", "PASSWORD", "database"
    if core.replace("_", "").replace("-", "").isalpha() and core.upper() == core:
        return False  # an identifier such as MY_API_KEY_NAME
    data = core.encode("utf-8", "surrogatepass")
    if search_spans(CODE_EXPRESSION, data, 0) or search_spans(REFERENCE, data, 0):
        return False  # settings.SECRET_KEY, os.getenv(...), op://vault/item, /run/secrets/x
    entropy = shannon_entropy(core)
    return (char_classes(core) >= 2 and entropy >= 2.5) or (len(core) >= 8 and entropy >= 3.0)


def strong_credential(value: str) -> bool:
    """For values found in prose: a credential that also mixes three kinds of character."""
    return looks_like_credential(value) and char_classes(value.rstrip(".,;:!?)")) >= 3


def authorization(value: str) -> bool:
    """Basic credentials are base64 "user:password": judge the password, not the encoding."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return looks_like_credential(value)
    if ":" in decoded:
        return looks_like_credential(decoded.split(":", 1)[1])
    return looks_like_credential(value)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": pii.card_number,
    "iban": pii.iban,
    "ssn": pii.us_ssn,
    "private_ip": pii.private_ip,
    "credential": looks_like_credential,
    "authorization": authorization,
    "strong_credential": strong_credential,
    "phone": pii.phone,
    "phone_national": pii.phone_national,
    "phone_labelled": pii.phone_labelled,
    "email": pii.email,
}


# Prefixes that vendors publish as the fixed start of their tokens: safe to show.
PUBLIC_PREFIX = re2.compile(
    r"^(?:AKIA|ASIA|ABIA|ACCA|A3T|gh[pousr]_|github_pat_|gl(?:pat|dt|ptt|rt|soat|cbt)-"
    r"|xox[abposr]-|sk-ant-|sk-(?:proj|svcacct|admin)-|[sr]k_(?:live|test|prod)_|hf_|npm_"
    r"|pypi-|SG\.|AIza|eyJ|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)


def preview(value: str) -> str:
    """A redacted stand-in: a vendor's public token prefix at most, then the length.

    None of the sensitive characters themselves are shown; this is all that logs, JSON
    output and the ledger ever carry of a finding.
    """
    prefix = search_text(PUBLIC_PREFIX, value)  # ASCII: its byte length is its length
    return f"{value[: prefix[0][1]] if prefix else ''}…[{len(value)} chars]"
