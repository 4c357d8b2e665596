"""Rules as data: the packaged rule file, the config's own rules, compiled for RE2."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import re2

from devpulse.core.config import PrivacyConfig, PrivacyRule, parse_rules
from devpulse.core.errors import ConfigError
from devpulse.core.types import PrivacyLevel
from devpulse.plugins.privacy import pyast, readers
from devpulse.plugins.privacy.checks import VALIDATORS
from devpulse.plugins.privacy.packaged import rules_file
from devpulse.plugins.privacy.spans import search_spans

CATEGORY_LEVELS = {
    "secret": PrivacyLevel.SECRET,
    "pii": PrivacyLevel.CONFIDENTIAL,
    "internal": PrivacyLevel.INTERNAL,
}


@dataclass(frozen=True, slots=True)
class Preceding:
    """A rule's `preceded_by`: the class the character before a match must belong to."""

    regex: re2._Regexp
    ascii: frozenset[int]  # the ASCII bytes in the class, the common case answered at once

    def allows(self, data: bytes, begin: int) -> bool:
        if begin == 0:
            return True
        byte = data[begin - 1]
        if byte < 0x80:
            return byte in self.ascii
        start = begin - 1  # back to the first byte of that UTF-8 character
        while start > max(0, begin - 4) and 0x80 <= data[start] < 0xC0:
            start -= 1
        return self.regex.fullmatch(data, start, begin) is not None

    def next_start(self, data: bytes, begin: int) -> int:
        """Where a match may start next, after one turned down at `begin`: just past the
        first character at or after `begin` that may precede a match (none: past the end).
        A start in between follows a character this class turns down, as `begin` did."""
        found = search_spans(self.regex, data, begin)
        return len(data) + 1 if found is None else found[0][1]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: PrivacyRule
    regex: re2._Regexp
    level: PrivacyLevel
    validator: Callable[[str], bool] | None
    preceded_by: Preceding | None = None
    value_groups: tuple[int, ...] = (0,)  # where the value is: the first of these set
    find: re2._Regexp | None = None  # with max_match_bytes: the pattern with no groups
    not_after: re2._Regexp | None = None  # anchored at the end of what it is given
    not_in_column: re2._Regexp | None = None  # a whole column name (scanner.in_column)
    not_under: re2._Regexp | None = None  # searched in its parent line (scanner.under)

    @property
    def id(self) -> str:
        return self.rule.id


@functools.cache
def packaged_rules() -> tuple[PrivacyRule, ...]:
    return parse_rules(rules_file()["rule"], "rules.toml")


# The ids of the rules built from a team's internal names, which `disabled_rules` may name.
CONFIGURED_IDS = ("internal-domain", "internal-package", "client-name")


def configured_rules(config: PrivacyConfig) -> tuple[PrivacyRule, ...]:
    """Rules built from the names a team declares internal."""
    domains = [d.lower().strip(".") for d in config.internal_domains]
    specs = [
        (
            "internal-domain",
            "privacy.internal_domains",
            domains,
            r"(?i)\b((?:[a-z0-9-]+\.)*(?:{names}))\b",
        ),
        (
            "internal-package",
            "privacy.internal_packages",
            list(config.internal_packages),
            r"\b((?:{names})[A-Za-z0-9_.]*)",
        ),
        # "_" separates words here: globex_shipments names the client
        (
            "client-name",
            "privacy.client_names",
            list(config.client_names),
            r"(?i)(?:^|[^a-z0-9])({names})(?:[^a-z0-9]|$)",
        ),
    ]
    return tuple(
        PrivacyRule(
            id=rule_id,
            category="internal",
            pattern=template.format(names="|".join(re2.escape(n) for n in names)),
            keywords=tuple(n.lower() for n in names),
            group=1,
            reference=key,
        )
        for rule_id, key, names, template in specs
        if names
    )


def compile_rules(
    config: PrivacyConfig, disabled: frozenset[str], *, packaged: bool = True
) -> list[CompiledRule]:
    """Every rule not in `disabled` (`switched_off`), compiled; a bad pattern or field is a
    ConfigError naming it. `packaged=False` leaves out rules.toml's, which its tests check:
    what is left is what a config can get wrong.

    The order breaks ties between equally ranked findings on the same text: a team's own
    rules first, then those built from its internal names, then the packaged ones.
    """
    return [compile_rule(where, r) for where, r in rule_sources(config, disabled, packaged)]


def rule_sources(
    config: PrivacyConfig, disabled: frozenset[str], packaged: bool = True
) -> list[tuple[str, PrivacyRule]]:
    """The rules `compile_rules` compiles, in its order, each with where it was written."""
    return [(where, r) for where, r in _sources(config, packaged) if r.id not in disabled]


def _sources(config: PrivacyConfig, packaged: bool = True) -> list[tuple[str, PrivacyRule]]:
    return [
        *((f"privacy.rules[{i}]", r) for i, r in enumerate(config.rules)),
        *(("privacy", r) for r in configured_rules(config)),
        *(("rules.toml", r) for r in (packaged_rules() if packaged else ())),
    ]


def successors() -> dict[str, tuple[str, ...]]:
    """rules.toml's [successors]: ids a release split or retired, and what took their work."""
    return {old: tuple(new) for old, new in rules_file().get("successors", {}).items()}


def switched_off(config: PrivacyConfig) -> frozenset[str]:
    """The ids of the rules and passes that `privacy.disabled_rules` turns off: each one it
    names, and for an id that a release split or retired, the ones that do its work now,
    so that an upgrade neither breaks a team's config nor turns back on what it turned off.

    Every id must name something: a typo must not leave a rule running.
    """
    split = successors()
    known = {r.id for _, r in _sources(config)}
    known.update(CONFIGURED_IDS, readers.RULE_IDS, pyast.RULE_IDS, split)
    off: set[str] = set()
    for i, rule_id in enumerate(config.disabled_rules):
        if rule_id not in known:
            close = difflib.get_close_matches(rule_id, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see the packaged rules.toml"
            raise ConfigError(
                f"privacy.disabled_rules[{i}]: no rule has the id {rule_id!r} ({hint})"
            )
        off.add(rule_id)
        off.update(split.get(rule_id, ()))
    return frozenset(off)


def compile_rule(where: str, rule: PrivacyRule) -> CompiledRule:
    """`rule` compiled; a bad pattern or field is a ConfigError naming `where`."""
    if rule.category not in CATEGORY_LEVELS:
        raise ConfigError(
            f"{where}.category: unknown category {rule.category!r} "
            f"(expected one of {', '.join(CATEGORY_LEVELS)})"
        )
    if rule.validator is not None and rule.validator not in VALIDATORS:
        raise ConfigError(
            f"{where}.validator: unknown validator {rule.validator!r} "
            f"(expected one of {', '.join(sorted(VALIDATORS))})"
        )
    regex = compile_pattern(rule.pattern, f"{where}.pattern")
    # The forms the scanner's prefilter sets hold, checked here, by name (the sets are built
    # at the first scan where the CLI builds its scanner lazily)
    if rule.trigger is not None:
        compile_pattern(rule.trigger, f"{where}.trigger")
        _check_set_form(rule.trigger, f"{where}.trigger")
    if rule.exact_prefilter:
        _check_set_form(f"(?-i:{widened(rule.pattern)})", f"{where}.pattern")
    if not 0 <= rule.group <= regex.groups:
        raise ConfigError(f"{where}.group: the pattern has only {regex.groups} group(s)")
    if rule.groups and rule.group:
        raise ConfigError(f"{where}.groups: give group or groups, not both")
    if rule.max_match_bytes is not None and rule.max_match_bytes < 1:
        raise ConfigError(f"{where}.max_match_bytes: must be at least 1")
    if rule.max_text_bytes is not None and rule.max_text_bytes < 1:
        raise ConfigError(f"{where}.max_text_bytes: must be at least 1")
    if rule.max_candidates is not None and rule.max_candidates < 1:
        raise ConfigError(f"{where}.max_candidates: must be at least 1")
    for i, group in enumerate(rule.groups):
        if not 1 <= group <= regex.groups:
            raise ConfigError(
                f"{where}.groups[{i}]: the pattern has no group {group} (it has {regex.groups})"
            )
    return CompiledRule(
        rule=rule,
        regex=regex,
        level=rule.level if rule.level is not None else CATEGORY_LEVELS[rule.category],
        validator=VALIDATORS[rule.validator] if rule.validator else None,
        preceded_by=_preceding(rule.preceded_by, f"{where}.preceded_by")
        if rule.preceded_by is not None
        else None,
        value_groups=rule.groups or (rule.group,),
        find=compile_pattern(rule.pattern, f"{where}.pattern", capture=False)
        if rule.max_match_bytes is not None
        else None,
        not_after=compile_pattern(f"(?:{rule.not_after})$", f"{where}.not_after")
        if rule.not_after is not None
        else None,
        not_in_column=compile_pattern(f"^(?:{rule.not_in_column})$", f"{where}.not_in_column")
        if rule.not_in_column is not None
        else None,
        not_under=compile_pattern(rule.not_under, f"{where}.not_under")
        if rule.not_under is not None
        else None,
    )


def _check_set_form(pattern: str, key: str) -> None:
    """`pattern` as a prefilter set holds it, with its counts and without (`_uncounted`),
    compiled: `ACME-\\Q$` compiles, and `(?-i:ACME-\\Q$)` quotes its own closing parenthesis."""
    for form in (pattern, widened(pattern, lowest=UNCOUNTED_RUN)):
        compile_pattern(form, f"{key} (as the prefilter reads it)")


# In the prefilter sets, a counted run counts this far at most (`Scanner._uncounted`). Cut to
# 1, the 10 MB bench's sets let six more rules run (5% of the scan); cut to 8, one.
UNCOUNTED_RUN = 8


def _preceding(pattern: str, key: str) -> Preceding:
    """Compile a `preceded_by` class: it is matched against one character at a time.

    140 packaged rules share 19 classes; each is compiled and tried on the 128 ASCII
    characters once (a tenth of the rules' compile, done each time, before it was kept).
    """
    known = _PRECEDING.get(pattern)
    if known is not None:
        return known
    regex = compile_pattern(pattern, key)
    ascii_bytes = frozenset(b for b in range(0x80) if regex.fullmatch(bytes([b])))
    if regex.fullmatch(b"") is not None or not (ascii_bytes or regex.fullmatch("é".encode())):
        raise ConfigError(f"{key}: must match exactly one character, like '\\W' or '[;\\s]'")
    return _PRECEDING.setdefault(pattern, Preceding(regex, ascii_bytes))


_PRECEDING: dict[str, Preceding] = {}  # each class compiled: what it matches is all it is


def text_without(word: str, *, lazy: bool = False) -> str:
    """An RE2 pattern for a run of characters, none of them a line end, in which `word` does
    not occur (the fewest such characters first, if `lazy`).

    For what a rule that spans lines allows between its two ends: the next `word` (its
    first end, written again) then ends every search begun before it, and RE2 follows one
    at a time. Lines of any text there let it follow each one begun in the window, a DFA
    state for each subset of them: seconds for a megabyte of such lines.

    Built as the automaton that reads `word` letter by letter; its first letter must not
    recur in it, so that a letter that breaks the word off goes back to the start, or to
    the first letter.
    """
    first, rest = word[0], word[1:]
    if not rest or first in rest or "\n" in word:
        raise ValueError(f"{word!r}: needs two letters or more, the first one not repeated")

    def but(*letters: str) -> str:  # any character but these and a line end
        return "[^" + "".join(map(re2.escape, letters)) + "\\n]"

    def prefix(letters: str) -> str:  # a prefix of `letters`, perhaps empty
        out = ""
        for letter in reversed(letters):
            out = f"(?:{re2.escape(letter)}{out})?"
        return out

    def broken(letters: str) -> str:  # a prefix of `letters`, then a letter that breaks it
        out = but(letters[-1], first)
        for letter in reversed(letters[:-1]):
            out = f"(?:{but(letter, first)}|{re2.escape(letter)}{out})"
        return out

    many, one = ("*?", "??") if lazy else ("*", "?")
    head, started = re2.escape(first), prefix(rest[:-1])  # never all of `rest`
    again = f"(?:{started}{head})*"  # back to the first letter, written again
    return f"(?:{but(first)}|{head}{again}{broken(rest)}){many}(?:{head}{again}{started}){one}"


def widened(pattern: str, *, lowest: int | None = None) -> str:
    """`pattern` with every counted repetition's upper bound dropped (`{5,199}` -> `{5,}`),
    and with `lowest`, its lower bound cut to `lowest` at most, `{24}` and `{5,}` too
    (`lowest=8`: `{24}` -> `{8,}`, `{2,3}` -> `{2,}`).

    It matches wherever `pattern` does, and maybe more. That is all a prefilter needs. Its DFA
    also needs no counter: RE2 builds a state for each count it has seen, at each place a
    count can run. `cli-password-flag`'s `{5,199}` in the prefilter set made the set's
    first contact with a megabyte of password fragments cost about 50 ms more.

    One pass over the pattern's own text, which is rule data, never request text. It skips
    escapes, `\\Q...\\E` and character classes, where `{` is a literal.
    """
    out: list[str] = []
    i, size, in_class = 0, len(pattern), False
    while i < size:
        char = pattern[i]
        if pattern.startswith("\\Q", i):  # quoted: literal up to \E
            end = pattern.find("\\E", i)
            end = size if end < 0 else end + 2
            out.append(pattern[i:end])
            i = end
            continue
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):  # a named class, [:alpha:], inside it
                end = pattern.find(":]", i)
                end = size if end < 0 else end + 2
                out.append(pattern[i:end])
                i = end
                continue
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith("]", i + 1) or pattern.startswith("^]", i + 1):
                # A `]` straight after the opening bracket (or after `[^`) is a literal.
                skip = 2 if pattern[i + 1] == "]" else 3
                out.append(pattern[i : i + skip])
                i += skip
                continue
        elif char == "{":
            end = pattern.find("}", i)
            low, comma, high = pattern[i + 1 : end].partition(",")
            # ASCII digits only: RE2 reads {1,²} as text, as it does {1,x}
            counted = (
                end > 0 and _ascii_digits(low) and (not comma or not high or _ascii_digits(high))
            )
            if counted and (lowest is not None or (comma and high)):
                bound = low if lowest is None else str(min(int(low), lowest))
                out.append(f"{{{bound},}}")
                i = end + 1
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def compile_pattern(pattern: str, key: str, *, capture: bool = True) -> re2._Regexp:
    """Compile for RE2 over UTF-8 bytes; its errors become a ConfigError naming `key`.
    With `capture` false, its groups do not capture: RE2 then only finds where it matches."""
    options = re2.Options()
    options.log_errors = False
    options.never_capture = not capture
    try:
        return re2.compile(pattern.encode(), options)
    except re2.error as exc:
        # The binding reports RE2's message as bytes: show it as the text it is.
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ConfigError(f"{key}: not a valid RE2 pattern ({detail})") from None
