"""The privacy scanner: one keyword prefilter pass, then only the rules worth running.

All patterns run on RE2 over the text's UTF-8 bytes, so scanning time is linear in the input
whatever it holds. The prefilter is an RE2 set of every rule's keywords and triggers, matched
in one pass (for the keywords, a DFA over literals: the same job as an Aho-Corasick
automaton; bench/privacy_bench.py compares the two). Rules with neither run on every text.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
import itertools
import os
import threading
import typing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import re2

from devpulse.core.config import PrivacyConfig, PrivacyRule
from devpulse.core.errors import ConfigError
from devpulse.core.types import Finding
from devpulse.plugins.privacy.checks import (
    PASSWORD_WORDS,
    is_placeholder,
    preview,
    shannon_entropy,
)
from devpulse.plugins.privacy.plain import (
    Origins,
    plain_text,
    string_lines,
    unescaped,
    url_decoded,
    without_gutters,
    without_nuls,
)
from devpulse.plugins.privacy.pyast import Hit, scan_python
from devpulse.plugins.privacy.readers import (
    ADDRESS_COLUMN,
    MAX_ROW_BYTES,
    RECORDS_READER,
    read_all,
    readers_for,
)
from devpulse.plugins.privacy.readers import RULE_IDS as READER_IDS
from devpulse.plugins.privacy.rules import (
    CATEGORY_LEVELS,
    UNCOUNTED_RUN,
    CompiledRule,
    compile_pattern,
    compile_rule,
    compile_rules,
    rule_sources,
    switched_off,
    widened,
)
from devpulse.plugins.privacy.spans import (
    PatternSet,
    Reported,
    Spans,
    first_set,
    found_in,
    match_spans,
    search_spans,
)

# Keywords that make the Python-aware checks and the syntax readers worth running.
AST_TRIGGERS = (
    "pwd",
    "pw",
    "auth",
    "-u",
    "--user",
    "secret",
    "token",
    "key",
    "credential",
    "://",
    "rights reserved",
    "proprietary",
    "confidential",
    "internal use",
    "import ",
    # commands whose next line is a secret they printed (readers.PRINTED_SECRET), where no
    # word above names one
    *("echo $", 'echo "$', "echo ${", "echo %", "write-output $", "write-host $", "printenv"),
    *("config:get", "configure get", "print-access-token", "print-identity-token", " -field"),
    *("op read", "base64 -d", "base64 --decode"),
    # a password's column named in another language (readers._CREDENTIAL_COLUMN)
    *PASSWORD_WORDS,
    "mot de passe",
    "login(",  # calls whose positional arguments are credentials: pyast.CREDENTIAL_CALLS
    "connect(",
    "sign_in(",
    "signin(",
    # a personal id's column in a table (readers.ID_TABLE): its header's names that are
    # rare in other words ("sin", "nie" are in "using" and "niece": such a column is read
    # only where another trigger runs the readers). Literals: the labels' alternation, in
    # the set with identity-number's trigger, outgrew RE2's default 8 MB for its DFA
    "ssn",
    "passport",
    "cpf",
    "pesel",
    "nino",
    "aadhaar",
    "aadhar",
    "personnummer",
    "burgerservicenummer",
    "national_id",
    "national id",
    "national_insurance",
    "national insurance",
    "ni number",
    "ni_number",
    "ni no",
    "tax_id",
    "social_security",
    "social security",
    "social_insurance",
    "social insurance",
    "curp",
    "tckn",
    "nric",
    "bsn",
    "medicare",
    "henkilotunnus",
    "henkilötunnus",
    "rijksregister",
    "kimlik",
    "KİMLİK",  # RE2 folds no case onto Turkish capital İ: the label in capitals, too
    "teudat",
    "fiscale",
    "steuer",
    "identifikationsnummer",
    *("hetu", "dni", "emirates", "hkid", "cuil"),
    # a postal address's column (readers.ADDRESS_TABLE): the bare word only beside a
    # delimiter, as a header holds it ("email address" in prose runs no reader)
    *("driver's licen", "drivers licen", "driving licen", "driver_licen", "driving_licen"),
    # the documents' names in other languages (readers.ID_COLUMN)
    *("reisepass", "passeport", "pasaport", "passaport", "paspoort", "paszport", "ausweis"),
    *("d'identit", "de identidad", "de identidade", "dowód", "dowod", "versicherungs"),
    *("sv-nummer", "sv_nummer", "sv nummer", "svnummer", "kvnr", "versichertennummer"),
    *("cartão", "cartao", "tessera sanitaria"),
    "身份证",
    "身份證",
    "주민등록번호",
    "マイナンバー",
    "個人番号",
    # a date of birth's column (readers.DOB_COLUMN): the date-of-birth rule's keywords, most
    # of them, which the set holds already, ASCII stems for the rest, and the labels in other
    # scripts (those outside ASCII are asked about in the second set: Scanner.__init__)
    "dob",
    "d.o.b",
    "birth",
    "geburtsdatum",
    "geburtstag",
    "geboorte",
    "naissance",
    "nacimiento",
    "nascita",
    "nascimento",
    "delsedat",
    "dselsdat",
    "syntym",
    "urodzenia",
    "narozen",
    "tarihi",
    "TARİHİ",  # as KİMLİK
    "рождения",
    "生年月日",
    "出生日期",
    "出生年月日",
    "생년월일",
)
# ... and patterns that do. "pass" starts every credential name the readers know (password,
# passwd, passphrase, passcode, dbpass, passEnc, mot_de_passe) but also the English words
# passed, passes, passing and passive, none a credential's name: a test run's "5 passed" ran
# the readers and the parse over a prompt with nothing for them (70 us of a request). Those
# words are told apart in their own case, so that a capital after "pass" (passEncoded,
# passIn) still names a credential, and so do passe and passi themselves.
AST_TRIGGER_PATTERNS = (
    # a postal address's column (readers.ADDRESS_TABLE): a header's or an INSERT's cell that
    # is the name whole, beside a delimiter ("email address" in prose runs no reader)
    rf"(?:^|[\n,;\t|(])[ \t]*[\"'`]?{ADDRESS_COLUMN}[\"'`]?[ \t]*(?:[,;\t|)\r\n]|$)",
    # a personal id's column whose name is a word in other words ("sin" in "using", "nie"
    # in "niece"): a header's or a row's cell that is the name whole, beside a delimiter
    r"(?:^|[\n,;\t|])[ \t]*[\"'`]?(?:sin|nie|nif|ssin|insz|nir)[\"'`]?[ \t]*(?:[,;\t|\r\n]|$)",
    # an ACH file's entry detail record (readers.ACH_RECORD): a 6, a transaction code and a
    # routing number, an account's 17 columns and an amount's 10 digits
    r"(?:^|\n)[ \t]*6[0-9]{11}[^\r\n]{17}[0-9]{10}",
    r"(?-i:[Pp]ass(?:[^ei]|$)|[Pp]asse(?:[^ds]|$)|[Pp]assi(?:[^nv]|$))",
    r"(?-i:PASS(?:[^EI]|$)|PASSE(?:[^DS]|$)|PASSI(?:[^NV]|$))",
)
# An environment variable's {name, value} record named in capitals (readers.ENV_PAIR): where
# it is all the prefilter finds, only its reader runs (RECORDS), not every reader and the
# parse (1 MB of Kubernetes env blocks: 120 ms so, 60 without; review 15).
RECORD_TRIGGER = (
    r"name[\"']?[ \t]*[:=][ \t]*[\"']?(?-i:[A-Z][A-Z0-9_]*)[\"']?[ \t]*,?[ \t]*\r?\n?"
    r"[ \t]*[\"']?value"
)
# The prefilter set's memory, most of it its DFA's cache of states, which grows only as a
# text needs. At RE2's default (8 MB) a text that walks many of its states (1 MB of vendor
# prefixes at random) refilled the cache again and again: 110 ms, against 12 ms with twice
# that, for the same set. Today's set needs about 12 MB for the bench's 10 MB corpus (with
# 10 MB: 1.4 s, not 80 ms) and 10 MB for its 2 KB prompts (with 8 MB: 0.8 ms a prompt, not
# 14 us). bench/privacy_bench.py's prefilter figure shows a rule whose trigger or keywords
# grow the set past it. Letters outside ASCII cost the most: a case-blind set reads each in
# both its cases.
PREFILTER_MAX_MEM = 32 << 20
# The triggers and exact patterns go a few to a set (Scanner.__init__), this many, for texts
# of this many bytes or more.
PREFILTER_SET_PATTERNS = 20
SPLIT_PREFILTER_BYTES = 8 << 10
# A text this long has its rules run on worker threads, a few at once (Scanner._hits): on a
# 10 MB text, 17 MB/s on one thread and 20 on two. Below it the threads' hand-offs cost more
# than they give.
PARALLEL_BYTES = 1 << 20
# At most this many rules run ahead of the one being judged.
RULES_AHEAD = 6
# A text this long is also asked about the long_prefilter rules' own patterns, by a few more
# sets, before those it enabled run. In a long text each such rule's keyword is all but
# certain to turn up, and the rule then reads all of it, likely for nothing; a set reads it
# once for several of them. Below this size the extra passes cost more than the passes they
# save (2 KB prompts: 13% more time a prompt; 64 KB: 9% less; 10 MB: a quarter less).
LONG_TEXT_BYTES = 64 << 10
# Each of those sets' memory, and how many rules' patterns each holds. One set of all of
# them (19 then) took 30 ms for the bench's 10 MB, but 600-750 ms for 1 MB of their fragments
# mixed at random on one line, whose DFA needed a new state at nearly every byte and kept
# filling its cache (more memory did not help: RE2 never gives up on a set for being slow).
# In sets of four, each DFA has far fewer states to make: of 30 such mixes the worst took 55
# ms a MB (760 in one set), and the five sets read the 10 MB corpus in 82 ms one after
# another (32 in one set), which from PARALLEL_BYTES they do at once on the worker threads.
LONG_PREFILTER_MAX_MEM = 32 << 20
LONG_SET_RULES = 4
# ...and at most this many instructions of their RE2 programs (the packaged ones: 44 to 1,762;
# date-of-birth's 4,069 and street-address's 7,183, together in a set, took it 130-180 ms
# for 2 MB of dates' and addresses' fragments, their own searches 2-8 ms).
LONG_SET_PROGRAM = 2000
# From this size the long_prefilter sets start on the worker threads before the keywords'
# set has said which of them to ask (a set no rule needs is then read for nothing: 4 MB of
# "hello world " took 15 ms, not 6.5).
EARLY_LONG_BYTES = 4 << 20
AST = -1  # the prefilter's mark for the Python-aware checks and the syntax readers
RECORDS = 1 << 30  # the prefilter's mark for the {name, value} records' reader alone
EXACT = -2  # EXACT - i: the prefilter's mark that rule i's own pattern matched
AST_PRIORITY = 1  # above the generic regex rules (0), below the specific ones (2)
READER_PRIORITY = AST_PRIORITY  # the syntax readers judge names and values as it does
# Bounds on per-match Python work, so no input makes a scan slow. A rule that has found this
# many in one text has made its point and stops.
MAX_FINDINGS_PER_RULE = 100
# A rule whose candidates keep failing their checks stops after this many; the rest of the
# text is then reported as one unverified finding, so an unchecked text is never "clean".
MAX_CANDIDATES_PER_RULE = 2000
# Candidates a quiet_overflow rule's not_after turns down (or twice the rule's own allowance,
# max_candidates, if fewer), past which they count as others do (a list of ids in the
# history must not hide a key after it): 14 us each with their searches (the rule reads each
# match again for its groups), 56 ms for these (at 40,000, 340 ms).
MAX_LABELLED_PER_RULE = 4_000
# The rules of one scan share a budget of candidates, this many and one more for each
# SCAN_BYTES_PER_CANDIDATE bytes of text, so that a text which floods many rules (one line of
# every tool's option, each value new) costs what a flood of three does: 6,000 candidates a
# megabyte, at up to 14 us each on a slow machine (a tool's rule reads each match again for
# its groups, and the checks judge each new value). Real text stays inside it: the bench's
# mixed 10 MB corpus holds 5,940 candidates (budget 15,240), and a web server's log with
# three turned down a line (a date, an epoch in ms, a public address) for 1,700 lines. A
# rule that finds the budget spent reports the text from its first candidate on as
# unverified, so a longer such log goes local: never a secret sent, only a log kept home.
SCAN_CANDIDATES = 5000
SCAN_BYTES_PER_CANDIDATE = 1024
# The checks judge a value by its first this many characters (a token's first 4 KB tell as
# much as all of a 1 MB run, and cost a 250th of the time).
MAX_JUDGED_CHARS = 4096


class Scanner:
    """Finds secrets, personal data and internal references in text; never keeps the text.

    A bad setting in `config` (a pattern, a rule's field, an id to switch off) is a
    ConfigError here. Compiling the packaged rules and their sets takes about 0.2 s.
    `eager=False` leaves the sets to the first scan, and each packaged rule to the first
    scan that needs it: for a process that scans little or nothing, like the CLI.
    """

    def __init__(self, config: PrivacyConfig, *, eager: bool = True) -> None:
        self._switched_off = switched_off(config)  # the readers' and checks' ids among them
        self._readers_on = not self._switched_off.issuperset(READER_IDS)
        self._internal_packages = tuple(config.internal_packages)
        self._allowlist = [
            compile_pattern(p, f"privacy.allowlist[{i}]") for i, p in enumerate(config.allowlist)
        ]
        self._config = config
        self._eager = eager
        self._built = False
        self._building = threading.Lock()
        if eager:
            self._build()
        else:  # the team's own rules are checked now all the same
            compile_rules(config, self._switched_off, packaged=False)

    def _build(self) -> None:
        """Compile the rules and their prefilter sets, once, whichever thread asks first."""
        with self._building:
            if not self._built:
                self._compile(self._config, eager=self._eager)
                self._built = True

    def _compile(self, config: PrivacyConfig, *, eager: bool = True) -> None:
        sources = rule_sources(config, self._switched_off)
        specs = [rule for _, rule in sources]
        self._rules: Sequence[CompiledRule] = (
            [compile_rule(*source) for source in sources] if eager else _OnFirstUse(sources)
        )
        self._always = frozenset(i for i, r in enumerate(specs) if not r.keywords and not r.trigger)
        # Rules that a text longer than their max_text_bytes does not run: their index, limit.
        self._text_limits = [
            (i, r.max_text_bytes) for i, r in enumerate(specs) if r.max_text_bytes is not None
        ]
        # The prefilter: RE2 sets of every keyword (as a literal) and every trigger pattern.
        # Entry i of a set enables the rules whose indices are listed at i; AST stands for
        # the Python-aware checks.
        table: dict[str, list[int]] = {}
        # Keywords with a letter outside ASCII (пароль, 密码, hasło) go in a set of their own,
        # asked only about a text that is not ASCII: the one set reads each such letter's
        # bytes in both cases on every text, and most texts are ASCII. Each keyword is
        # escaped as rules.toml writes it: the set ignores case, and str.lower() would make
        # Turkish capital İ an i and a combining dot, which no text in capitals holds (RE2
        # folds no case onto İ, so a label in capitals is a keyword of its own: ŞİFRE).
        wide: dict[str, list[int]] = {}
        patterns: dict[str, list[int]] = {}  # the triggers and exact patterns: see below
        for index, spec in enumerate(specs):
            for keyword in spec.keywords:
                keywords = table if keyword.isascii() else wide
                keywords.setdefault(re2.escape(keyword), []).append(index)
            if spec.trigger:
                patterns.setdefault(spec.trigger, []).append(index)
        for keyword in AST_TRIGGERS:
            (table if keyword.isascii() else wide).setdefault(re2.escape(keyword), []).append(AST)
        for pattern in AST_TRIGGER_PATTERNS:
            patterns.setdefault(pattern, []).append(AST)
        patterns.setdefault(RECORD_TRIGGER, []).append(RECORDS)
        # A rule marked exact_prefilter also needs its own pattern to match somewhere, which
        # the set answers in the same pass: EXACT - index marks that it did. (The set
        # ignores case; (?-i:...) gives the pattern back its own.) Widened, its counted
        # runs need no counter in the set's DFA; what else it lets through, the rule's own
        # search turns down.
        self._exact = frozenset(i for i, r in enumerate(specs) if r.exact_prefilter)
        for index in sorted(self._exact):
            pattern = f"(?-i:{widened(specs[index].pattern)})"
            patterns.setdefault(pattern, []).append(EXACT - index)
        # The keywords in one set; the triggers and exact patterns 20 to a set. All in one,
        # the triggers' counted runs each made states of their own at once, a product:
        # 1 MB of a token prefix then random letters and digits took 1.9-2.4 s (the keywords
        # alone 13 ms, each trigger alone 9 ms at most); in sets of 13, at most 18 ms over
        # 50 random such mixes (5 to a set: 18 ms; 20: 16; 40: 144). Their counts cut to
        # UNCOUNTED_RUN since, 30 such mixes of four vendors' prefixes took the trigger sets
        # 13.3 ms at worst in sets of 13 and 13.5 in sets of 20, each a pass less for a long
        # text (10 MB: 2.3% more MB/s; the bench's adversarial inputs no slower). A text
        # shorter than SPLIT_PREFILTER_BYTES is still read by one set of them all: a 2 KB
        # prompt took 5% more time with five (bench/privacy_bench.py, side by side), and the
        # product's worst costs it a few ms at most.
        groups = list(_uncounted(patterns).items())
        self._prefilters = [_prefilter(table)] + [
            _prefilter(dict(groups[at : at + PREFILTER_SET_PATTERNS]))
            for at in range(0, len(groups), PREFILTER_SET_PATTERNS)
        ]
        self._short_prefilters = [_prefilter({**table, **patterns})]
        self._wide_prefilter = _prefilter(wide) if wide else None
        # The long_prefilter rules, a few to a set of their own patterns (widened as above;
        # each set keeps each pattern's case, as the rule does).
        self._long_prefilters = [_LongPrefilter(group, specs) for group in _long_groups(specs)]
        self._everything = frozenset((*range(len(specs)), AST))

    def scan(self, text: str) -> list[Finding]:
        """Every finding in `text`, overlapping ones resolved, ordered by position.

        The rules read the text plain (`plain.plain_text`: a no-break space as a space, a
        fullwidth digit as a digit, a zero-width space as nothing). Lines that hold an
        escaped document (`plain.unescaped`: `{\\"password\\": ...}` in a JSON string) are
        read a second time with their escapes read, and lines that hold URL encoding
        (`plain.url_decoded`: `email=jane%40example.com`) with theirs, numbered lines
        without their numbers, a text with NULs without them (`plain.without_nuls`: UTF-16
        read as UTF-8), and last a notebook's arrays of lines as the lines they hold
        (`plain.string_lines`); what that finds where the first reading found nothing is
        added. The spans are `text`'s.
        """
        if not self._built:
            self._build()
        findings = self._scan_plain(text, parse=True)
        read_again = False
        left = max(REREAD_TIMES * len(text), REREAD_CHARS)  # what the readings may read
        readings: tuple[Callable[[str], tuple[str, Origins] | None], ...] = (
            unescaped,
            url_decoded,
            without_gutters,
            without_nuls,
            # last, with what the others left: it reads lines `unescaped` has read once,
            # and must not crowd out what only another reading sees (review 28)
            lambda source: string_lines(source, left),
        )
        for decoded in readings:
            chain: list[tuple[Origins, int]] = []  # each reading, and the size of what it read
            source = text
            for _ in range(ESCAPE_DEPTH):  # escaped within escaped: a log line's JSON body
                view = decoded(source)
                if view is None or len(view[0]) > left:
                    break
                read, origins = view
                left -= len(read)
                chain.append((origins, len(source)))
                covered = _Covered([f.span for f in findings])
                for finding in self._scan_plain(read, parse=False):
                    span = finding.span
                    for reading, size in reversed(chain):
                        span = reading.span(span, size)
                    if not covered.meets(span):
                        findings.append(dataclasses.replace(finding, span=span))
                source = read
            read_again = read_again or bool(chain)
        if read_again:
            findings.sort(key=lambda f: f.span)
        return findings

    def _scan_plain(self, text: str, *, parse: bool) -> list[Finding]:
        data = text.encode("utf-8", "surrogatepass")
        plain, origins = plain_text(text, data)
        if plain is not text:  # something was read as another character, or as nothing
            data = plain.encode("utf-8", "surrogatepass")
        findings = self._scan(plain, data, parse=parse)
        if origins is None:
            return findings
        return [dataclasses.replace(f, span=origins.span(f.span, len(text))) for f in findings]

    def _scan(self, text: str, data: bytes, *, parse: bool) -> list[Finding]:
        """`data` is `text`'s UTF-8. `parse`: the Python-aware pass runs too (escapes read,
        code is no longer code)."""
        workers = scan_workers.for_text(data)
        # On the worker threads, the readers' set reads a long text while the rules do.
        early = _started(readers_for, [data] if self._readers_on else [], workers)
        try:
            enabled = self._enabled(data)
            enabled.difference_update(i for i, most in self._text_limits if len(data) > most)
            candidates: list[tuple[int, int, Hit]] = []
            for index, hits in self._hits(sorted(enabled - {AST, RECORDS}), data):
                priority = self._rules[index].rule.priority
                candidates += [(priority, index, hit) for hit in hits]
            readers = None if early is None or AST not in enabled else early[0].result()
        finally:
            for job in early or ():
                job.cancel()
        if AST not in enabled and RECORDS in enabled and self._readers_on:
            readers = [RECORDS_READER]  # the records' reader alone
        if AST in enabled or readers is not None:
            # The readers, then the parse, only judge what the passes before them left.
            known = Reported([(h.start, h.end, h.category) for _, _, h in candidates])
            candidates.extend(
                (
                    READER_PRIORITY,
                    len(self._rules),
                    Hit(
                        f.rule_id, f.category, CATEGORY_LEVELS[f.category], f.start, f.end, f.value
                    ),
                )
                for f in read_all(
                    data,
                    known,
                    self._switched_off,
                    readers=readers,
                    each=None if workers is None else functools.partial(_done, workers=workers),
                )
                if not self._allowed(f.value)
            )
            if parse and AST in enabled:
                reported = known.extended(
                    [(h.start, h.end, h.category) for _, _, h in candidates[len(known) :]]
                )
                candidates.extend(
                    (AST_PRIORITY, len(self._rules), hit)
                    for hit in scan_python(data, self._internal_packages, reported)
                    if hit.rule_id not in self._switched_off and not self._allowed(hit.value)
                )
        kept = _resolve(candidates)
        if len(data) == len(text):  # ASCII: byte offsets are character offsets
            return [_finding(hit, hit.start, hit.end) for hit in kept]
        chars = _byte_to_char(data, kept)
        return [_finding(hit, chars[hit.start], chars[hit.end]) for hit in kept]

    def _enabled(self, data: bytes) -> set[int]:
        """The indices of the rules that always run and of those the prefilter enabled, and
        AST if the Python-aware checks and the readers should run. A text that is not ASCII
        is also read by the set of the keywords outside ASCII.

        A set's last pattern matches every text: a set whose DFA gave up (out of memory)
        answers without it, and then everything runs, as it would with no prefilter.

        In a long text, the long_prefilter rules it enabled run only if their own patterns
        match (LONG_TEXT_BYTES); from PARALLEL_BYTES, the worker threads read it with those
        sets at once; from EARLY_LONG_BYTES, while this thread reads it with the keywords'
        set (a set whose rules the keywords did not enable is then read for nothing).
        """
        if len(data) < LONG_TEXT_BYTES:
            return self._enabled_by_sets(data)
        workers = scan_workers.for_text(data)
        first = self._long_prefilters if len(data) >= EARLY_LONG_BYTES else ()
        early = _started(lambda p: p.unmatched(data), first, workers)
        try:
            enabled = self._enabled_by_sets(data, workers)
            if early is None:
                asked = [p for p in self._long_prefilters if not p.rules.isdisjoint(enabled)]
                for unmatched in _done(lambda p: p.unmatched(data), asked, workers):
                    enabled -= unmatched
            else:
                for prefilter, job in zip(self._long_prefilters, early, strict=True):
                    if not prefilter.rules.isdisjoint(enabled):
                        enabled -= job.result()
            return enabled
        finally:
            for job in early or ():
                job.cancel()  # those not asked, if not started

    def _enabled_by_sets(self, data: bytes, workers: ThreadPoolExecutor | None = None) -> set[int]:
        """`_enabled` but for the long_prefilter sets: a short text's one set, or a longer
        one's several, which read `data` on the worker threads where there are some."""
        enabled = set(self._always)
        short = len(data) < SPLIT_PREFILTER_BYTES
        prefilters = list(self._short_prefilters if short else self._prefilters)
        if self._wide_prefilter is not None and not data.isascii():
            prefilters.append(self._wide_prefilter)
        # the binding answers None for no match
        if workers is None:
            answers = [found.Match(data) or () for found, _ in prefilters]
        else:
            answers = _done(lambda prefilter: prefilter[0].Match(data) or (), prefilters, workers)
        for (_, enables), matched in zip(prefilters, answers, strict=True):
            if len(enables) - 1 not in matched:
                return set(self._everything)
            enabled.update(*map(enables.__getitem__, matched))
        if self._exact:
            marks = {mark for mark in enabled if mark <= EXACT}
            enabled -= marks
            enabled -= self._exact.difference(EXACT - mark for mark in marks)
        return enabled

    def _hits(self, order: Sequence[int], data: bytes) -> Iterator[tuple[int, list[Hit]]]:
        """Each rule's hits in `data`, for the rules in `order`, which share the scan's budget
        of candidates: each may judge what the rules before it left (`scan_budget`).

        In a text of PARALLEL_BYTES or more, the next rules already run in worker threads
        while one is judged: RE2 lets go of the GIL while it searches, and there a long
        text's rules spend most of their time. A rule runs ahead only while the budget would
        leave it its whole allowance even if each rule before it judged its own whole
        allowance, so it judges what it would have judged after them, and its hits are the
        same. Past that (a flood is spending the budget), the rest run one after another,
        as they all do once the threads are shut down (the interpreter is exiting).
        """
        budget = scan_budget(len(data))
        workers = scan_workers.for_text(data)
        headers: dict[tuple[int, bytes], int] = {}  # the tables' headers, for every rule
        ahead: collections.deque[Future[tuple[list[Hit], int]]] = collections.deque()
        queued = 0  # order[:queued] have run or are running
        try:
            for position, index in enumerate(order):
                while (
                    workers is not None
                    and queued < len(order)
                    and len(ahead) < RULES_AHEAD
                    and budget >= (len(ahead) + 1) * MAX_CANDIDATES_PER_RULE
                ):
                    rule = self._rules[order[queued]]
                    try:
                        job = workers.submit(
                            self._run, rule, data, MAX_CANDIDATES_PER_RULE, headers
                        )
                    except RuntimeError:  # shut down: the interpreter is exiting
                        workers = None
                        break
                    ahead.append(job)
                    queued += 1
                if ahead:  # the first one ahead is this rule's
                    hits, examined = ahead.popleft().result()
                else:
                    allowance = min(MAX_CANDIDATES_PER_RULE, budget)
                    hits, examined = self._run(self._rules[index], data, allowance, headers)
                    queued = position + 1
                budget -= examined
                yield index, hits
        finally:
            for job in ahead:  # an error, or a close before the last rule
                job.cancel()

    def _run(
        self,
        rule: CompiledRule,
        data: bytes,
        allowance: int,
        headers: dict[tuple[int, bytes], int] | None = None,
    ) -> tuple[list[Hit], int]:
        """The rule's accepted hits in `data`, with byte offsets, and how many candidates it
        judged: at most `allowance` (or the rule's own max_candidates, if fewer), past which
        the rest is one unverified hit (none for a rule with quiet_overflow)."""
        first = _search(rule, data, 0)
        if first is None:
            return [], 0  # the common case: a rule the prefilter let through finds nothing
        # The rule's own allowance bounds the one the scan's budget left it, and the
        # labelled candidates it passes over are bounded by the rule's own (review 13).
        own = rule.rule.max_candidates or MAX_CANDIDATES_PER_RULE
        allowance = min(allowance, own)
        passed_over = min(MAX_LABELLED_PER_RULE, 2 * own)
        hits: list[Hit] = []
        examined = 0
        # Values already judged: a log or a flood repeats them, and a value's verdict depends
        # on nothing else (a Chinese id's check looks its region up: 200 us). Each still
        # counts as a candidate.
        verdicts: dict[bytes, bool] = {}
        labelled = 0
        if headers is None:  # in_column's: a row's line, its header's (one map a scan)
            headers = {}
        blocks = Blocks()  # under's: the lines' parents walked, and what each parent says
        for match_start, start, end in _spans(rule, data, first):
            if examined == allowance and rule.rule.quiet_overflow:
                break
            if examined == allowance:
                rest = data[match_start:].decode("utf-8", "surrogatepass")
                hits.append(
                    Hit(
                        f"{rule.id}:unverified",
                        rule.rule.category,
                        rule.level,
                        match_start,
                        len(data),
                        rest,
                    )
                )
                break
            examined += 1
            if start < 0:
                continue
            if (
                (rule.not_after is not None and _labelled_otherwise(rule.not_after, data, start))
                or (
                    rule.not_in_column is not None
                    and in_column(rule.not_in_column, data, start, end, headers)
                )
                or (rule.not_under is not None and under(rule.not_under, data, start, blocks))
            ):
                # "order_id": 4111...: the label says what the number is. For a rule that
                # stops quietly, such a candidate costs no allowance (up to a bound of its
                # own, twice its allowance at most): a list of labelled ids must not hide a
                # key after it
                if rule.rule.quiet_overflow and labelled < passed_over:
                    examined -= 1
                    labelled += 1
                continue
            raw = data[start:end]
            accepted = verdicts.get(raw)
            if accepted is False:
                continue
            value = raw.decode("utf-8", "surrogatepass")
            if accepted is None:
                accepted = verdicts[raw] = self._accepts(rule, value)
                if not accepted:
                    continue
            hits.append(Hit(rule.id, rule.rule.category, rule.level, start, end, value))
            if len(hits) >= MAX_FINDINGS_PER_RULE:
                break
        return hits, examined

    def _accepts(self, rule: CompiledRule, value: str) -> bool:
        value = value[:MAX_JUDGED_CHARS]
        if rule.rule.category == "secret" and is_placeholder(value):
            return False
        if rule.rule.entropy is not None and shannon_entropy(value) < rule.rule.entropy:
            return False
        if rule.validator is not None and not rule.validator(value):
            return False
        return not self._allowed(value)

    def _allowed(self, value: str) -> bool:
        if not self._allowlist:
            return False
        data = value.encode("utf-8", "surrogatepass")
        return any(p.search(data) for p in self._allowlist)


class _OnFirstUse(Sequence[CompiledRule]):
    """Rules compiled each the first time a scan asks for it: a prompt enables a few of the
    packaged 267, and compiling them all is most of a CLI command's start-up. Two threads
    that ask at once may both compile one; either's is as good."""

    def __init__(self, sources: Sequence[tuple[str, PrivacyRule]]) -> None:
        self._sources = sources
        self._compiled: list[CompiledRule | None] = [None] * len(sources)

    def __len__(self) -> int:
        return len(self._sources)

    @typing.overload
    def __getitem__(self, index: int) -> CompiledRule: ...
    @typing.overload
    def __getitem__(self, index: slice) -> Sequence[CompiledRule]: ...
    def __getitem__(self, index: int | slice) -> CompiledRule | Sequence[CompiledRule]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        rule = self._compiled[index]
        if rule is None:
            rule = self._compiled[index] = compile_rule(*self._sources[index])
        return rule


def _long_groups(rules: Sequence[PrivacyRule]) -> list[list[int]]:
    """The long_prefilter rules in groups of at most LONG_SET_RULES whose widened patterns'
    programs add up to at most LONG_SET_PROGRAM instructions; a larger one is a group alone."""
    groups: list[list[int]] = []
    size = 0
    for index, rule in enumerate(rules):
        if not rule.long_prefilter:
            continue
        program = re2.compile(widened(rule.pattern))._regexp.ProgramSize()
        full = groups and (len(groups[-1]) >= LONG_SET_RULES or size + program > LONG_SET_PROGRAM)
        if not groups or full:
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += program
    return groups


class _LongPrefilter:
    """A set of a few long_prefilter rules' own patterns, which says which of them cannot
    match a text. If their patterns make no set (a user's rules too large for one), or the
    set gives up on a text, it says none: they all run."""

    def __init__(self, rules: Sequence[int], specs: Sequence[PrivacyRule]) -> None:
        self.rules = frozenset(rules)
        self._order = tuple(rules)
        try:
            patterns = (widened(specs[i].pattern) for i in rules)
            self._set: PatternSet | None = PatternSet(patterns, max_mem=LONG_PREFILTER_MAX_MEM)
        except (re2.error, ValueError):
            self._set = None

    def unmatched(self, data: bytes) -> frozenset[int]:
        matched = None if self._set is None else self._set.matching(data)
        if matched is None:
            return frozenset()
        return self.rules.difference(map(self._order.__getitem__, matched))


T = TypeVar("T")
R = TypeVar("R")


def _started(
    work: Callable[[T], R], items: Sequence[T], workers: ThreadPoolExecutor | None
) -> list[Future[R]] | None:
    """`work` of each of `items` begun on the worker threads, where RE2's searches run at
    once; None where there are none, or where they are shut down (the interpreter is
    exiting), for the caller to do the work in turn."""
    if workers is None or not items:
        return None
    jobs: list[Future[R]] = []
    try:
        for item in items:
            jobs.append(workers.submit(work, item))
    except RuntimeError:  # cannot schedule new futures after shutdown
        for job in jobs:
            job.cancel()
        return None
    return jobs


def _done(
    work: Callable[[T], R], items: Sequence[T], workers: ThreadPoolExecutor | None
) -> list[R]:
    """`work` of each of `items`: the first on this thread, the rest on the worker threads
    at the same time where there are some; else in turn."""
    jobs = _started(work, items[1:], workers)
    if jobs is None:
        return [work(item) for item in items]
    try:
        first = work(items[0])
    except BaseException:
        for job in jobs:
            job.cancel()  # those not started
        raise
    return [first, *(job.result() for job in jobs)]


# Threads for a long text's rules (Scanner._hits): at most this many, and none on one CPU.
# google-re2's binding lets go of the GIL while it searches: two rules' searches of 10 MB
# took 31 ms one after the other and 22 ms on two threads, on the 2-vCPU bench machine.
SCAN_WORKERS = min(
    4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
)


class _Workers:
    """The scanners' worker threads, started by the first long text."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor | None:
        """The pool; None on one CPU."""
        if SCAN_WORKERS < 2:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(SCAN_WORKERS, thread_name_prefix="devpulse-scan")
            return self._pool

    def for_text(self, data: bytes) -> ThreadPoolExecutor | None:
        """The pool for a text of PARALLEL_BYTES or more; None for a shorter one."""
        return self.get() if len(data) >= PARALLEL_BYTES else None

    def forget(self) -> None:
        """In a forked child: the parent's threads are not there, and a job given to them
        would never end. The next long text starts threads of its own."""
        self._pool, self._lock = None, threading.Lock()


scan_workers = _Workers()
if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=scan_workers.forget)


# How many times escaped text is read unescaped: a document in a string in a string.
ESCAPE_DEPTH = 3
# The readings of one text (unescaped, URL-decoded) read at most this many times its size,
# or this many characters for a shorter text: a megabyte whose every line holds both kinds
# of escape, each escaped again, is scanned twice at most, not seven times (three, at twice
# its size, took a MB of dense tokens and escapes 115-180 ms: a review's inputs).
REREAD_TIMES = 1
REREAD_CHARS = 1 << 17


class _Covered:
    """Spans, asked whether a span overlaps any of them (in log time: floods of findings)."""

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        spans = sorted(spans)
        self._starts = [start for start, _ in spans]
        self._reach = list(itertools.accumulate((end for _, end in spans), max))

    def meets(self, span: tuple[int, int]) -> bool:
        before = bisect.bisect_left(self._starts, span[1])  # the spans that start before its end
        return before > 0 and self._reach[before - 1] > span[0]


# How far back a value's label is looked for (a rule's `not_after`): a label, or a line of
# 60 base64 characters above, indented.
NOT_AFTER_BYTES = 96


# How far above a table's row its header is looked for (a rule's `not_in_column`).
COLUMN_HEADER_BYTES = 16 << 10
# The delimiters of the tables whose columns a rule's `not_in_column` reads: a spreadsheet's
# paste (tabs), a CSV's, and a European CSV's.
_COLUMN_DELIMITERS = (b"\t", b";", b",")


def in_column(
    names: re2._Regexp, data: bytes, start: int, end: int, headers: dict[tuple[int, bytes], int]
) -> bool:
    """Whether the value at `data[start:end]` is a cell of a tab-, semicolon- or comma-
    separated table whose header names its column as `names` says (a spreadsheet's `P/N`,
    `order_no`: a part's or an order's number, written like a phone's). The header is the
    first of the lines above, up to COLUMN_HEADER_BYTES, that have as many cells as the
    value's line. A row with none of those delimiters but cells two blanks or more apart
    is an aligned table's (`_aligned_column`: a CLI's listing, `fly secrets list`'s DIGEST).

    `headers` keeps, for each row read, where its table's header starts: the rows of one
    table are walked once, whatever the number of values in them (a flood of rows costs a
    walk, not one a value). A line longer than MAX_ROW_BYTES is no table's row: a value on
    a megabyte's one line is not read to the line's ends once a value."""
    line_start = data.rfind(b"\n", max(0, start - MAX_ROW_BYTES), start) + 1
    line_end = data.find(b"\n", end, end + MAX_ROW_BYTES)
    if line_end < 0 and len(data) - end <= MAX_ROW_BYTES:
        line_end = len(data)
    if (line_start == 0 and start > MAX_ROW_BYTES) or line_end < 0:
        return False
    line = data[line_start:line_end].rstrip(b"\r")
    for delimiter in _COLUMN_DELIMITERS:
        cells = line.count(delimiter)
        if not cells or delimiter in data[start:end]:
            continue

        def is_row(a: int, b: int, d: bytes = delimiter, n: int = cells) -> bool:
            return data.count(d, a, b) == n  # as many cells as the value's row

        top = _table_top(data, line_start, delimiter, is_row, headers)
        if top == line_start:
            return False  # the value's line is its table's first: no header above
        header_end = data.find(b"\n", top, line_start)
        header = data[top:header_end].rstrip(b"\r").split(delimiter)
        name = header[data.count(delimiter, line_start, start)].strip().strip(b"\"'")
        return found_in(names, name)
    if _ALIGNED_GAP in line.strip(b" \t"):
        column = _aligned_column(data, line_start, line, start - line_start, headers)
        return column is not None and found_in(names, column)
    return False


def _table_top(
    data: bytes,
    line_start: int,
    key: bytes,
    is_row: Callable[[int, int], bool],
    headers: dict[tuple[int, bytes], int],
    most: int | None = None,
) -> int:
    """Where the first line of the run of lines that end at `line_start`'s and are rows of
    one table (`is_row(start, end)` of each line above) starts, looking up to
    COLUMN_HEADER_BYTES above and `most` lines (where given). `headers` keeps it, under
    `key`, for each row walked; a walk that ends at a row walked before takes its top."""
    floor = max(0, line_start - COLUMN_HEADER_BYTES)
    walked: list[int] = []
    top = line_start
    while (known := headers.get((top, key))) is None and top > floor:
        if most is not None and len(walked) >= most:
            break  # a walk's rows are bounded: the top is the last one walked
        above = data.rfind(b"\n", floor, top - 1) + 1
        if above == 0 and floor > 0:
            break  # the line above starts before the window
        if not is_row(above, top - 1):
            break
        walked.append(top)
        top = above
    if known is not None:
        top = known
    for row in walked:
        headers[(row, key)] = top
    headers[(top, key)] = top
    return top


# What sets apart an aligned table's cells (a CLI's listing: `fly secrets list`, `kubectl
# get`, `docker images`): two blanks or more; a cell's own words are one blank apart
# (`CREATED AT`, `IMAGE ID`).
_ALIGNED_GAP = b"  "
# The rows above a value that one walk reads for its aligned table's header, at most (a
# walk that meets a row walked before takes its header): one Python step a row, and a
# megabyte of rows with a value every few kilobytes walked them all (review 28).
ALIGNED_HEADER_LINES = 100


def _aligned_column(
    data: bytes, line_start: int, line: bytes, at: int, headers: dict[tuple[int, bytes], int]
) -> bytes | None:
    """The name of the column of an aligned table whose cell in the row `line` (at
    `line_start`) holds the value at column `at`; None if the row is its table's first, or
    if no header lines up with it.

    The header is the first of the lines above (up to COLUMN_HEADER_BYTES and
    ALIGNED_HEADER_LINES) that run on to the row in its layout: as many cells, two blanks or
    more apart, each starting where the row's does (a left-aligned listing: fly, kubectl,
    docker) or ending where it ends (right-aligned numbers). A line above whose cells fall
    elsewhere ends the table (review 28). Columns count bytes: a row outside ASCII is read
    as none."""
    cells = _aligned_cells(line)
    if len(cells) < 2 or not line.isascii():
        return None

    def is_row(a: int, b: int) -> bool:  # the row's layout: each cell lines up with its own
        return _lined_up(_aligned_cells(data[a:b]), cells)

    # one walk a table: right-aligned numbers vary a row's starts, not its cells' count; a
    # header met so that does not line up with this row's layout is none (below)
    key = _ALIGNED_GAP + bytes([min(len(cells), 255)])
    top = _table_top(data, line_start, key, is_row, headers, ALIGNED_HEADER_LINES)
    header_end = data.find(b"\n", top, line_start)
    if top == line_start or header_end - top > MAX_ROW_BYTES:
        return None
    header = data[top:header_end].rstrip(b"\r")
    names = _aligned_cells(header)
    if not header.isascii() or not _lined_up(names, cells):
        return None
    column = next((i for i, (a, b) in enumerate(cells) if a <= at < b), None)
    return None if column is None else header[slice(*names[column])]


def _lined_up(cells: list[tuple[int, int]], row: list[tuple[int, int]]) -> bool:
    """Whether `cells` line up with the `row`'s, one for one: each starts where its own does
    or ends where it ends."""
    return len(cells) == len(row) and all(
        a == start or b == end for (a, b), (start, end) in zip(cells, row, strict=True)
    )


def _aligned_cells(line: bytes) -> list[tuple[int, int]]:
    """The spans of `line`'s cells, set apart by two blanks or more (a cell's own words by
    one: `CREATED AT`)."""
    cells: list[tuple[int, int]] = []
    at = 0
    for piece in line.rstrip().split(_ALIGNED_GAP):
        if piece.strip():
            start = at + len(piece) - len(piece.lstrip())
            cells.append((start, at + len(piece.rstrip())))
        at += len(piece) + len(_ALIGNED_GAP)
    return cells


def _labelled_otherwise(not_after: re2._Regexp, data: bytes, start: int) -> bool:
    """Whether what stands before the value at `start` (at most NOT_AFTER_BYTES of it, the
    line above's end too for a value that starts its line) ends the way the rule's
    `not_after` says a value of another kind is introduced."""
    return found_in(not_after, data[max(0, start - NOT_AFTER_BYTES) : start])


# How far above a value its parent line is looked for (a rule's `not_under`): lines walked,
# and the bytes of one line (a longer one is no block's: the walk stops there); and the
# lines one scan's walks may visit in all (blank lines are walked again by each walk that
# meets them: a megabyte of values between runs of them took 560-740 ms, review 30).
PARENT_LINES = 256
PARENT_LINE_BYTES = 4096
PARENT_STEPS = 32 * 1024


class Blocks:
    """What `under` learnt of one text: each line's parent (where it starts; -1 for none),
    for the lines walked, and whether a rule's `not_under` is found in each parent line."""

    __slots__ = ("named", "parents", "steps")

    def __init__(self) -> None:
        self.parents: dict[int, int] = {}
        self.named: dict[int, bool] = {}
        self.steps = PARENT_STEPS  # lines the scan's walks may still visit


def under(names: re2._Regexp, data: bytes, start: int, blocks: Blocks) -> bool:
    """Whether the value at `start` stands on a line indented under one that `names` is
    found in: its parent, the nearest line above indented less (a YAML mapping's key, a
    JSON object's name, Podfile.lock's `SPEC CHECKSUMS:` over each pod's digest).

    `blocks` keeps each line's parent, for the lines walked: a line's siblings above it
    share it, so a block of a thousand values is walked once, not once a value."""
    line_start = data.rfind(b"\n", max(0, start - PARENT_LINE_BYTES), start) + 1
    if line_start == 0 and start > PARENT_LINE_BYTES:
        return False
    if blocks.steps <= 0:
        return False  # the scan's walks are spent: the finding stands
    parent = _parent(data, line_start, blocks)
    if parent < 0:
        return False
    named = blocks.named.get(parent)
    if named is None:
        named = blocks.named[parent] = found_in(names, _line_at(data, parent))
    return named


def _line_at(data: bytes, at: int) -> bytes:
    """The line that starts at `at`, without its end: PARENT_LINE_BYTES of it at most."""
    end = data.find(b"\n", at, at + PARENT_LINE_BYTES)
    return data[at : at + PARENT_LINE_BYTES if end < 0 else end].rstrip(b"\r")


def _indent(line: bytes) -> int:
    return len(line) - len(line.lstrip(b" \t"))


def _parent(data: bytes, line_start: int, blocks: Blocks) -> int:
    """Where the parent of the line at `line_start` starts (-1: none, the line is not
    indented, or the walk ran past PARENT_LINES or into a line too long to be a block's).

    A line indented deeper whose parent is known is jumped over to that parent: every line
    between them is indented deeper still (and if it has none, neither has this line). So a
    staircase of values, each its own walk, is walked once in all, not a line a step for
    each. A walk that runs out finds none, and that is kept: a value is then judged as one
    in no block is (the rule's finding stands). So is every value once the scan's walks
    have visited PARENT_STEPS lines."""
    parents = blocks.parents
    known = parents.get(line_start)
    if known is not None:
        return known
    indent = _indent(_line_at(data, line_start))
    parent, siblings = -1, list[int]()
    at = _line_above(data, line_start) if indent else -1
    for _ in range(PARENT_LINES):
        if at < 0:
            break
        blocks.steps -= 1
        if blocks.steps < 0:  # the scan's walks are spent: none known, none kept
            parent, siblings = -1, []
            break
        line = _line_at(data, at)
        if not line.strip():
            at = _line_above(data, at)
            continue
        known = parents.get(at)
        if _indent(line) < indent:
            parent = at
            break
        if _indent(line) == indent:
            if known is not None:
                parent = known
                break
            siblings.append(at)
        elif known is not None:
            if known < 0:  # none found above it, indented less than it: nor less than this
                break
            at = known
            continue
        at = _line_above(data, at)
    for line_at in (line_start, *siblings):
        parents[line_at] = parent
    return parent


def _line_above(data: bytes, line_start: int) -> int:
    """Where the line above the one at `line_start` starts: -1 at the text's top, or where
    that line is longer than PARENT_LINE_BYTES."""
    if line_start == 0:
        return -1
    above = data.rfind(b"\n", max(0, line_start - 1 - PARENT_LINE_BYTES), line_start - 1) + 1
    return -1 if above == 0 and line_start - 1 > PARENT_LINE_BYTES else above


def scan_budget(size: int) -> int:
    """The candidates that the rules of one scan of `size` bytes may judge between them."""
    return SCAN_CANDIDATES + size // SCAN_BYTES_PER_CANDIDATE


def _uncounted(patterns: dict[str, list[int]]) -> dict[str, list[int]]:
    """`patterns` with their counters cut to UNCOUNTED_RUN (`rules.widened`: `{24}` ->
    `{8,}`), what each enables merged where two become one. A long text's sets hold these:
    counted runs in two patterns of one set make states for each pair of counts at once
    (review 14: `_[a-z0-9]{24}` beside a personal id's digit runs read 1 MB of capitals and
    digits after `_` in 1.2 s; 75 ms cut so). Each matches wherever its pattern does; what
    else it lets through, the rule's own search turns down."""
    merged: dict[str, list[int]] = {}
    for pattern, enables in patterns.items():
        merged.setdefault(widened(pattern, lowest=UNCOUNTED_RUN), []).extend(enables)
    return merged


def _prefilter(table: dict[str, list[int]]) -> tuple[re2.Set, list[tuple[int, ...]]]:
    """The set, and what each of its patterns enables; the last one, which matches every
    text, enables nothing."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = PREFILTER_MAX_MEM
    found = re2.Set.SearchSet(options)
    for i, pattern in enumerate(table):
        try:  # rules.compile_rule checked each rule's forms: this is the last line
            added = found.Add(pattern)
        except re2.error:
            added = -1
        if added != i:
            raise ConfigError(f"privacy: prefilter pattern {pattern!r} is not valid RE2")
    found.Add(r"\A")  # matches every text: see Scanner._enabled
    found.Compile()
    return found, [*map(tuple, table.values()), ()]


def _spans(rule: CompiledRule, data: bytes, spans: Spans) -> Iterator[tuple[int, int, int]]:
    """(match start, value start, value end) of each match from the first one, `spans`,
    like finditer, except that the next search starts where the value ended rather than
    the whole match.

    Patterns consume one boundary character on each side (RE2 has no look-around); resuming
    after the value lets "a@x.io b@y.io" yield both addresses. A match that its rule's
    `preceded_by` turns down, or one that sets no value group, is yielded with a value span
    of (-1, -1), so that the caller counts it among the candidates. After a rejection the
    search goes on after the next character that may precede a match (from the next byte,
    a token glued to a word, "xEAAM...", was read again to its end once per byte: 13 s for
    a megabyte of them).

    A match longer than the rule's max_match_bytes (its tool's name, a long line, then its
    option) is not read. Its last max_match_bytes are searched instead, for a match that
    fits: a later mention of the tool, nearer its option, as in a transcript that is one
    JSON line. Then the search goes on from the long match's end, so no byte is read twice
    for more than one long match.
    """
    groups, preceded_by, size = rule.value_groups, rule.preceded_by, len(data)
    limit = rule.rule.max_match_bytes if rule.find is not None else None
    stop = size  # where the search ends: the text's end, or a long match's
    while True:
        begin, finish = spans[0]
        if limit is not None and finish - begin > limit:
            pos, stop = max(begin + 1, finish - limit), finish
        elif preceded_by is not None and not preceded_by.allows(data, begin):
            yield begin, -1, -1
            pos = preceded_by.next_start(data, begin)
        else:
            value = first_set(spans, groups)
            # A match that sets no value group is what its rule passes over (phone-national
            # passes over card-like digit groups): still a candidate, so a megabyte of them
            # meets the budget (150 ms of searches, one a match, when it did not).
            yield (begin, -1, -1) if value is None else (begin, *value)
            pos = max(finish if value is None else value[1], begin + 1)
        found = _search(rule, data, pos, stop) if pos <= stop else None
        if found is None and stop < size:
            pos, stop = stop, size  # a long match's tail is read: on from its end
            found = _search(rule, data, pos, stop)
        if found is None:
            return
        spans = found


def _search(rule: CompiledRule, data: bytes, pos: int, stop: int | None = None) -> Spans | None:
    """The spans of the rule's first match in `data[pos:stop]`. A rule with max_match_bytes
    is found with its groupless pattern first, and a match longer than that has no value."""
    if rule.find is None:
        return search_spans(rule.regex, data, pos, stop)
    found = search_spans(rule.find, data, pos, stop)
    if found is None:
        return None
    start, end = found[0]
    limit = rule.rule.max_match_bytes
    spans = match_spans(rule.regex, data, start, end) if limit and end - start <= limit else None
    return spans or [(start, end), *[(-1, -1)] * rule.regex.groups]


_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))  # UTF-8's 10xxxxxx


def _byte_to_char(data: bytes, hits: Sequence[Hit]) -> dict[int, int]:
    """Character offsets for the hits' byte offsets, in one pass over `data`."""
    out: dict[int, int] = {}
    last = converted = 0
    for offset in sorted({o for h in hits for o in (h.start, h.end)}):
        # a character is one byte that does not continue one: twice as fast as a decode
        converted += len(data[last:offset].translate(None, _CONTINUATION_BYTES))
        out[offset] = converted
        last = offset
    return out


def _resolve(candidates: Sequence[tuple[int, int, Hit]]) -> list[Hit]:
    """Keep hits by priority, level, then length, dropping those a kept hit explains.

    A hit inside a kept hit of its category goes (an AWS key pair absorbs its halves, a
    parsed credential wins over the generic regex, a specific token rule over the generic
    one), and so does one that straddles a kept hit of a higher level (the tail of a URL's
    password read as an e-mail address).
    """
    kept: list[Hit] = []
    for cluster in _overlapping_clusters(candidates):
        if len(cluster) == 1:
            kept.append(cluster[0][2])
            continue
        ranked = sorted(
            cluster, key=lambda c: (-c[0], -c[2].level, c[2].start - c[2].end, c[1], c[2].start)
        )
        chosen: list[Hit] = []
        for _, _, hit in ranked:
            if not any(_explains(k, hit) for k in chosen):
                chosen.append(hit)
        kept.extend(chosen)
    return sorted(kept, key=lambda h: (h.start, h.end))


def _overlapping_clusters(
    candidates: Sequence[tuple[int, int, Hit]],
) -> list[list[tuple[int, int, Hit]]]:
    """Group hits whose spans chain into overlaps; resolution only looks inside a group."""
    clusters: list[list[tuple[int, int, Hit]]] = []
    reach = -1
    for candidate in sorted(candidates, key=lambda c: c[2].start):
        hit = candidate[2]
        if clusters and hit.start < reach:
            clusters[-1].append(candidate)
        else:
            clusters.append([candidate])
        reach = max(reach, hit.end)
    return clusters


def _explains(kept: Hit, hit: Hit) -> bool:
    inside = kept.start <= hit.start and hit.end <= kept.end
    if inside:
        return kept.category == hit.category
    straddles = (
        hit.start < kept.end
        and kept.start < hit.end
        and not (hit.start <= kept.start and kept.end <= hit.end)
    )
    return straddles and kept.level > hit.level


def _finding(hit: Hit, start: int, end: int) -> Finding:
    return Finding(
        rule_id=hit.rule_id,
        category=hit.category,  # type: ignore[arg-type]  # categories are checked on load
        level=hit.level,
        span=(start, end),
        preview=preview(hit.value),
    )
