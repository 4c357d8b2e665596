"""Checks for personal data: the structure, checksum or range a pattern alone cannot test.

Each check reads one candidate that an RE2 rule in rules.toml found (a few dozen characters
at most) with string operations only. What the scanner decides is *not* personal data (a
published test card, an advertising SSN, a role mailbox) is listed under `[not_personal]` in
rules.toml with the reason, and read from there.
"""

from __future__ import annotations

import datetime
import importlib
import ipaddress
import itertools
from collections.abc import Callable
from functools import cache
from importlib import resources

import re2

from devpulse.plugins.privacy.packaged import rules_file
from devpulse.plugins.privacy.spans import match_spans, search_text


@cache
def not_personal() -> dict[str, frozenset[str]]:
    """rules.toml's `[not_personal]` lists, read once, on the first candidate that needs one."""
    table = rules_file().get("not_personal", {})
    return {key: frozenset(values) for key, values in table.items()}


def _digits(value: str) -> str:
    """The ASCII digits of `value`; candidates are mostly ASCII, deleted from in one call."""
    if value.isascii():
        return value.encode().translate(None, _NOT_DIGITS).decode()
    return "".join(c for c in value if "0" <= c <= "9")


_NOT_DIGITS = bytes(b for b in range(128) if not 0x30 <= b <= 0x39)


# --- phone numbers ------------------------------------------------------------------------


def _groups(value: str) -> tuple[list[str], set[str]] | None:
    """The digit groups of a number as written, and the separators between them.

    "(0532) 123-45-67" -> ["0532", "123", "45", "67"], {"-"}: brackets separate too, and a
    space next to one is part of that separation, which does not count as a kind. None for
    any other character.
    """
    groups: list[str] = []
    separators: set[str] = set()
    current = ""
    pending = ""
    for c in value.lstrip("+"):
        if "0" <= c <= "9":
            if not current and groups and pending != "()":
                separators.add(pending or " ")
            current += c
            pending = ""
        elif c in " .-()":
            if current:
                groups.append(current)
                current = ""
            if c in "()":
                pending = "()"
            elif c != " " or not pending:
                pending = c
        else:
            return None
    if current:
        groups.append(current)
    return groups, separators


def _nanp(digits: str) -> bool:
    """A North American number: area code and exchange both start with 2-9."""
    return len(digits) == 10 and digits[0] >= "2" and digits[3] >= "2"


# North America's toll-free area codes (the FCC's 800, 833, 844, 855, 866, 877, 888).
NANP_TOLL_FREE = frozenset({"800", "833", "844", "855", "866", "877", "888"})


def _freephone(value: str) -> bool:
    """A number free to call, which a business pays for: one written as North America
    writes its numbers (3-3-4 groups, its country code 1 before them or not; or +1 and ten
    digits) in a toll-free area code, or one with the trunk 0 and 0800, which most of
    Europe and Japan dial for the same, or China's ten-digit 400 numbers, a business's
    hotline. (0808 is the UK's too, but Japan's and Nigeria's mobiles; 1800... run together
    is a Chinese mobile; 800 12345 an Indian one; NANP assigns no area code 400.)"""
    parsed = _groups(value)
    if parsed is None:
        return False
    groups = parsed[0]
    digits = "".join(groups)
    if digits.startswith("0800") or (len(digits) == 10 and digits.startswith("400")):
        return True  # 0800; China's 400 numbers, a business's hotline (400-820-1234)
    if len(digits) == 10 and digits.startswith("0120"):
        return True  # Japan's other free dial, 0120-XXX-XXX
    if value.startswith("+1") and len(digits) == 11:  # +1 names North America, grouped or not
        return digits[1:4] in NANP_TOLL_FREE
    north_american = [len(g) for g in groups[-3:]] == [3, 3, 4] and (
        len(groups) == 3 or groups[0] == "1"
    )
    return north_american and groups[-3] in NANP_TOLL_FREE


def phone(value: str) -> bool:
    """An international number, "+" and country code first (E.164: at most 15 digits).

    Not a phone: too few or too many digits, two thirds zeros, two distinct digits only, or
    groups that no numbering plan writes (one run of 9 digits after the country code).
    """
    if _iso_date(value[1:11]):
        return False  # +2024-04-02T11:14: a diff's added line that starts with a timestamp
    parsed = _groups(value)
    if parsed is None:
        return False
    groups, separators = parsed
    digits = "".join(groups)
    if not (8 <= len(digits) <= 15 and _plausible(digits)) or _freephone(value):
        return False
    if value[1] == "1" and len(digits) != 11:
        return False  # +1 is North America's plan: ten digits after it (not +1-555-0100)
    if not _fits_its_plan(_digits(value.replace("(0)", "", 1))):
        return False  # +31 607 2139: the Netherlands' numbers have nine digits, not seven
    if len(separators) > 1 and not _one_kind_after_country_code(value):
        return False
    return len(groups) == 1 or max(len(g) for g in groups[1:]) <= 8


# How many digits a country's numbers have after its code (the national significant
# number), the fewest and the most, by E.164 country code (ITU-T E.164's list of assigned
# codes, and each country's numbering plan; Mexico's mobiles with the 1 WhatsApp still
# writes, Bangladesh's Dhaka landlines). Every two-digit code assigned is here; a number
# under a three-digit code not here is judged by its length alone. A trunk 0 written in
# brackets after the code, +44 (0)20 ..., is not counted.
NATIONAL_LENGTHS: dict[str, tuple[int, int]] = {
    **{"1": (10, 10), "7": (10, 10), "20": (8, 10), "27": (9, 9), "30": (10, 10)},
    **{"31": (9, 9), "32": (8, 9), "33": (9, 9), "34": (9, 9), "36": (8, 9), "39": (6, 11)},
    **{"40": (9, 9), "41": (9, 9), "43": (4, 13), "44": (9, 10), "45": (8, 8), "46": (7, 10)},
    **{"47": (8, 8), "48": (9, 9), "49": (6, 13), "51": (8, 9), "52": (10, 11), "53": (8, 8)},
    **{"54": (10, 11), "55": (10, 11), "56": (9, 9), "57": (8, 10), "58": (10, 10)},
    **{"60": (8, 10), "61": (9, 10), "62": (8, 12), "63": (8, 10), "64": (8, 10), "65": (8, 8)},
    **{"66": (8, 9), "81": (9, 10), "82": (8, 10), "84": (9, 10), "86": (9, 11), "90": (10, 10)},
    **{"91": (10, 10), "92": (9, 10), "93": (9, 9), "94": (9, 9), "95": (7, 10), "98": (10, 10)},
    # three-digit codes: Europe's, and the larger ones elsewhere
    **{"351": (9, 9), "352": (4, 11), "353": (7, 9), "354": (7, 9), "356": (8, 8)},
    **{"357": (8, 8), "358": (5, 12), "359": (7, 9), "370": (8, 8), "371": (8, 8)},
    **{"372": (7, 8), "375": (9, 9), "380": (9, 9), "381": (8, 9), "385": (8, 9)},
    **{"386": (8, 8), "420": (9, 9), "421": (9, 9), "852": (8, 8), "853": (8, 8)},
    **{"886": (8, 9), "880": (8, 10), "966": (8, 9), "971": (8, 9), "972": (8, 9)},
    **{"965": (8, 8), "973": (8, 8), "974": (8, 8), "212": (9, 9), "254": (9, 9)},
}
_ONE_DIGIT_CODES = ("1", "7")


def _fits_its_plan(digits: str) -> bool:
    """Whether the digits after "+" are a country code and as many digits as that
    country's numbers have (NATIONAL_LENGTHS). Codes are prefix-free: one digit (1, 7),
    two (those assigned), or else three."""
    if digits[:1] in _ONE_DIGIT_CODES:
        code = digits[:1]
    elif digits[:2] in NATIONAL_LENGTHS:
        code = digits[:2]
    else:
        code = digits[:3]
    lengths = NATIONAL_LENGTHS.get(code)
    return lengths is None or lengths[0] <= len(digits) - len(code) <= lengths[1]


def _iso_date(text: str) -> bool:
    """Whether `text` is a date as ISO 8601 writes it, 2024-04-02."""
    return (
        len(text) == 10
        and text[4] == text[7] == "-"
        and text.replace("-", "").isdigit()
        and 1 <= int(text[5:7]) <= 12
        and 1 <= int(text[8:]) <= 31
    )


def _one_kind_after_country_code(value: str) -> bool:
    """Whether `value` has a space after its country code, then a national number with one
    kind of separator of its own: "+81 3-1234-5678", "+1 415.555.0132"; or an area code,
    then the subscriber's number with a separator of its own, as Brazil, Sweden and Russia
    write them: "+55 11 99341-5572", "+46 70-400 37 81".

    The code must be one E.164 assigns in shape: 1 or 7, or two or three digits not
    starting with 1 (+2 1.234.567 is a figure). The national part must not read as a date
    (+1 2024-05-21) or an IPv4 address (+1 192.168.100.254).
    """
    code, space, national = value.lstrip("+").partition(" ")
    if not (space and code.isdigit()):
        return False
    if not (code in ("1", "7") or (len(code) in (2, 3) and code[0] != "1")):
        return False
    parsed = _groups(national)
    if parsed is None or (len(parsed[1]) > 1 and not _area_then_subscriber(national)):
        return False
    sizes = [len(g) for g in parsed[0]]
    if sizes[0] == 4 and sizes[1:] == [2, 2]:
        return False  # 2024-05-21
    return not (len(sizes) == 4 and max(sizes) <= 3 and parsed[1] == {"."})


def _area_then_subscriber(national: str) -> bool:
    """An area code of 2 to 4 digits, its separator, then a subscriber's number of 6 to 9
    digits in two to four groups with one other kind of separator: "11 99341-5572",
    "70-400 37 81"; not a date ("10 2024-05-21")."""
    cut = next((i for i, c in enumerate(national) if not c.isdigit()), 0)
    area, rest = national[:cut], national[cut + 1 :]
    parsed = _groups(rest)
    if not (2 <= len(area) <= 4 and parsed is not None and len(parsed[1]) == 1):
        return False
    groups, (kind,) = parsed
    sizes = [len(g) for g in groups]
    return (
        kind != national[cut]
        and 2 <= len(groups) <= 4
        and 6 <= sum(sizes) <= 9
        and sizes[:3] != [4, 2, 2]  # 10 2024-05-21: a date
    )


def _plausible(digits: str) -> bool:
    return digits.count("0") * 3 < len(digits) * 2 and len(set(digits)) > 2


def phone_national(value: str) -> bool:
    """A number written the way one country's own plan writes it, without "+".

    Accepted (everything else is a count, a date, an id or a version):
    - North American: (415) 555-0132, 415.555.0132, 1-415-555-0132, 91-415-555-0132 (a
      country code before it), area code and exchange starting 2-9;
    - a trunk prefix 0, used by most of the world: 020 7946 0958, 0532 123 45 67,
      0 (917) 123 4567, 09-7625400, 090-1234-5678; 9 to 12 digits, one kind of separator
      (or a dash after the area code, then blanks: 072-509 97 03), at most one single-digit
      group; unseparated only at 11 digits (05321234567): a bare
      run of 10 (0612345678) is as often an account or order number;
    - groups of 3-3-2-2 or 3-2-2-2 (532 123 45 67, 612 34 56 78), not a valid IPv4 address;
    - a Chinese mobile, 11 digits from 13 to 19 (13812345678).
    An unseparated 10-digit run without a trunk 0 is not claimed unlabelled (timestamps, ids,
    2147483647); the `phone-labelled` rule takes one after "phone:", "tel." and the like.
    """
    parsed = _groups(value)
    if parsed is None:
        return False
    groups, separators = parsed
    digits = "".join(groups)
    if separators == {"-", " "} and _area_code_dash(value):
        separators = {" "}  # one layout: 072-509 97 03
    if not _plausible(digits) or len(separators) > 1 or _freephone(value):
        return False
    sizes = [len(g) for g in groups]
    if sizes == [5, 4] or (len(groups) == 2 and separators == {"."}):
        return False  # a US ZIP+4 code (02110-1301), a decimal (0.14285714)
    if len(groups) == 1:
        return len(digits) == 11 and (
            (digits[0] == "0" and digits[1] != "0") or ("13" <= digits[:2] <= "19")
        )
    if digits[0] == "0":
        return (
            sizes != [3, 2, 4]  # 078-05-1123 is written so: a US SSN
            and 9 <= len(digits) <= 12
            and digits[1] != "0"
            and len(groups) <= 6
            and sizes.count(1) <= 1
            and max(sizes) <= 8
            and sizes[-1] >= 2
        )
    if sizes[-3:] == [3, 3, 4]:
        return (len(groups) == 3 or (len(groups) == 4 and sizes[0] <= 3)) and _nanp(digits[-10:])
    if sizes in ([3, 3, 2, 2], [3, 2, 2, 2]) and digits[0] >= "2":
        return not (separators == {"."} and _ipv4(value) is not None)
    return False


def _area_code_dash(value: str) -> bool:
    """An area code with its trunk 0, a dash, then the number in groups set apart by blanks,
    as Sweden and Finland write them: 072-509 97 03, 08-123 456 78, 040-123 4567."""
    head, _, rest = value.partition("-")
    return (
        2 <= len(head) <= 4
        and head.isdigit()
        and head.startswith("0")
        and all(c.isdigit() or c == " " for c in rest)
    )


def _ipv4(value: str) -> tuple[int, ...] | None:
    """The four octets of a dotted-quad address, read as `ipaddress` does (one to three
    ASCII digits each, at most 255, no leading zero), or None."""
    parts = value.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3 or part[:1] == "0" != part:
            return None
    octets = tuple(map(int, parts))
    return octets if max(octets) <= 255 else None


def phone_labelled(value: str) -> bool:
    """After a label that says it is a phone number: any plausible count of digits, but not
    a date (a date and a time after "Mobile:" in a log)."""
    if _iso_date(value.lstrip("+(")[:10]):
        return False
    digits = _digits(value)
    return 7 <= len(digits) <= 15 and _plausible(digits) and not _freephone(value)


# --- e-mail -------------------------------------------------------------------------------

# Addresses that belong to machines and roles, not people (a documented decision in
# rules.toml's personal-data section): RFC 2142's mailbox names, a business's departments'
# (in the languages of the larger markets, too: kundenservice@, atencion@, assistenza@).
NON_PERSONAL_EMAIL = re2.compile(
    r"(?i)^(?:git|no-?reply|donotreply|mailer-daemon|postmaster|hello|info|support|contact|sales"
    r"|billing|ops|ci|admin|root|team|digest|newsletter|notifications?|alerts?|security|abuse"
    r"|webmaster|bot|builds?|unsubscribe|bounces?|noc|hostmaster|usenet|news|www|uucp|ftp"
    # a security team's: its operations centre, response teams, where phishing is reported
    r"|soc|cert|csirt|psirt|infosec|appsec|(?:report[._-]?)?phishing|spam|service[._-]?desk"
    r"|help(?:desk)?|service|customer[._-]?(?:service|care|support)|care|orders?|accounts?"
    r"|accounting|finance|invoices?|payments?|careers|jobs|hr|recruiting|press|media"
    r"|marketing|legal|privacy|compliance|office|reception|enquiries|inquiries|feedback"
    r"|returns|shipping|partners?|events|kunden(?:service|dienst)|kunde(?:service|n)?"
    r"|kundservice|klantenservice|asiakaspalvelu|atencion(?:[._-]?(?:al[._-]?)?cliente)?"
    r"|servicio(?:[._-]?cliente)?|soporte|ayuda|assistenza|servizio[._-]?clienti|suporte"
    r"|atendimento|contato|contacto|contatto|kontakt|bestellung|rechnung"
    # a company's own departments: it-admin@, benefits@, payroll@
    r"|it(?:[._-]?(?:admin|support|help(?:desk)?|ops))?|sysadmin|devops|on[._-]?call"
    r"|benefits|payroll|people(?:[._-]?ops)?|talent|facilities|procurement|purchasing"
    # a data protection officer's (GDPR art. 37), DMARC's report mailbox, accounts payable's
    r"|dpo|dmarc(?:[._-]?reports?)?|accounts?[._-]?(?:payable|receivable)"
    # an 802.1X outer identity, which hides the user's: anonymous@realm
    r"|anonymous)@"
    # a program's mailbox named for what it is: ci-bot@, deploy-bot@, jenkins.svc@; and a
    # team's: platform-team@, billing-ops@, it_desk@, api-support@ (maria.ops@ is a person's)
    # (not after a + tag: jane.doe+bank-security@ is jane's)
    r"|^[\pL\pN._+-]*[._-](?:bot|robot|svc|automation)@"
    r"|^[\pL\pN._-]*[_-](?:team|ops|desk|support|help(?:desk)?|on-?call|reports?|security|admins)@"
    # a service account's, a meeting room's or equipment's: svc-sql01@, room-fjord@
    r"|^(?:svc|room)[_-][\pL\pN._-]*@"
    r"|@(?:[\pL\pN_-]+\.)*(?:gserviceaccount\.com|users\.noreply\.github\.com"
    # Google Calendar's rooms and shared calendars
    r"|noreply\.github\.com|resource\.calendar\.google\.com|group\.calendar\.google\.com)\n?$"
)


# Not an address at all: an image named for its pixel density (icon@2x.png, hero@1.5x.webp).
# No top-level domain is an image format's extension, so the last label settles it.
IMAGE_NAME = re2.compile(r"(?i)\.(?:png|jpe?g|gif|webp|avif|svg|ico|bmp|tiff?|heic)\n?$")


# No one's address: the names reserved for examples and tests (RFC 2606, RFC 6761), which no
# registry ever delegates, so no mailbox at them belongs to anyone (a documented decision in
# rules.toml's personal-data section), and Microsoft's documentation tenants. example.com's
# neighbours (examples.com, test.com) are real domains, and stay addresses.
RESERVED_DOMAIN = re2.compile(
    r"(?i)@(?:[\pL\pN_-]+\.)*(?:example\.(?:com|net|org)"
    # Microsoft's names for its documentation's tenants, which it holds for no one's mail
    r"|(?:contoso|fabrikam)\.(?:com|onmicrosoft\.com)"
    r"|[\pL\pN_-]+\.(?:test|example|invalid|localhost))\n?$"
)


def email(value: str) -> bool:
    value = value.replace("%40", "@")  # an address in a URL's query: ?email=jane%40web.de
    name, _, domain = value.rpartition("@")
    label = domain.split(".")[0]
    if (len(name) >= 3 and len(set(name)) == 1) or (len(label) >= 4 and len(set(label)) == 1):
        return False  # a mask's or a test's: xxxxxxxx@yyyyy.com (not j@ or @qq.com)
    return not any(
        search_text(pattern, value) is not None
        for pattern in (NON_PERSONAL_EMAIL, RESERVED_DOMAIN, IMAGE_NAME)
    )


# --- payment cards ------------------------------------------------------------------------

# Issuer identification numbers (ISO/IEC 7812) and the lengths each issues, longest prefix
# first within a first digit. From the card schemes' published ranges: UATP; Mir, BORICA,
# Mastercard; Amex, Diners, JCB, RuPay; Visa (Electron included); Maestro, Dankort, Verve,
# Uzcard; Discover, UnionPay, RuPay, Troy, InterPayment, Elo, Hipercard; UnionPay and RuPay
# in 8; Troy, Napas, Humo in 9.
_ALL = tuple(range(16, 20))
ISSUERS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("1", "1", (15,)),
    ("2200", "2205", _ALL),
    ("2221", "2720", (16,)),
    ("34", "34", (15,)),
    ("37", "37", (15,)),
    ("300", "305", (14, *_ALL)),
    ("3095", "3095", (14, *_ALL)),
    ("35", "35", _ALL),
    ("36", "36", (14, *_ALL)),
    ("38", "39", (14, *_ALL)),
    ("4", "4", (13, 16, 19)),
    ("51", "55", (16,)),
    ("50", "59", (13, 14, 15, *_ALL)),
    ("60", "69", _ALL),
    ("81", "82", _ALL),
    ("8600", "8600", (16,)),
    ("9704", "9704", (16, 19)),
    ("9792", "9792", (16,)),
    ("9860", "9860", (16,)),
)
# The ranges under each first digit, in order: a range's ends share their first digit, so a
# number can only fall in those under its own.
_ISSUERS_BY_FIRST: dict[str, tuple[tuple[str, str, tuple[int, ...]], ...]] = {
    first: tuple(issuer for issuer in ISSUERS if issuer[0][0] == first) for first in "0123456789"
}


def luhn(digits: str) -> bool:
    """The Luhn checksum of the ASCII digits in `digits` (at least 12 of them).

    Digit sums come from the bytes: each digit is its code less 48, and every second one
    from the right is doubled through a table (9 doubled is 18, whose digits sum to 9).
    """
    if not (digits.isascii() and digits.isdigit()):
        digits = "".join(c for c in digits if "0" <= c <= "9")
    if len(digits) < 12:
        return False
    kept = digits[-1::-2].encode()
    doubled = digits[-2::-2].encode().translate(_DOUBLED)
    return (sum(kept) + sum(doubled) - 48 * len(digits)) % 10 == 0


# Each digit's byte, doubled and its digits summed: 0 2 4 6 8 1 3 5 7 9.
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def issued_length(digits: str) -> bool:
    """Does a scheme issue cards of this length under this prefix? (First match decides.)"""
    for low, high, lengths in _ISSUERS_BY_FIRST.get(digits[:1], ()):
        head = digits[: len(low)]
        if low <= head <= high:
            return len(digits) in lengths
    return False


def card_number(value: str) -> bool:
    """Luhn-valid, of a length its issuer uses, and not a published test number.

    Half or more zeros (4000 0000 0000 0002) is a processor's test pattern or a padded id.
    A group of one to three digits before a blank is no card's (they print in fours, Amex in
    4-6-5): a count's, a quantity's or a line's number (`uniq -c`'s `  1 4553...`), which
    the match took in; the number is judged without it.
    Nor is a group of one to three digits anywhere before the last: a card is written in
    one run or in groups of four or more (4-4-4-4, Amex's 4-6-5), and a hex dump's pairs of
    ASCII digits (`30 31 32 ...`) are none.
    """
    head, blank, rest = value.partition(" ")
    if blank and len(head) <= 3 and head.isdigit() and _card(rest):
        return True
    return _card(value)


def _card(value: str) -> bool:
    groups = value.replace("-", " ").split()
    if any(len(group) < 4 for group in groups[:-1]):
        return False
    return _card_digits(_digits(value))


def _card_digits(digits: str) -> bool:
    if not 13 <= len(digits) <= 19 or len(set(digits)) <= 2:
        return False
    if digits.count("0") >= len(digits) // 2 or digits in not_personal()["test_cards"]:
        return False
    return issued_length(digits) and luhn(digits)


# --- IBANs --------------------------------------------------------------------------------


def iban(value: str) -> bool:
    """ISO 13616 by python-stdnum: the country's length and BBAN format, then mod 97.

    The candidate may carry one short trailing group that is not part of it ("... 8901 X");
    that group is dropped and the rest judged. Separators (a space or a hyphen) must be one
    kind. stdnum is imported here, on the first candidate, not at start-up; what it reads is
    this candidate alone (at most 34 letters and digits), with patterns of fixed-count classes
    that cannot backtrack.
    """
    if " " in value and "-" in value:
        return False
    if _iban_ok(value):
        return True
    head, _, tail = value.rpartition(" " if " " in value else "-")
    return bool(head) and len(tail) <= 3 and _iban_ok(head)


# ISO 13616 reads A as 10, B as 11, ... Z as 35.
_AS_DIGITS = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "").replace("-", "")
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    # Mod 97 first, here: 96 candidates in 97 end at it, without a call into stdnum.
    if int((compact[4:] + compact[:4]).upper().translate(_AS_DIGITS)) % 97 != 1:
        return False
    # Then the country's BBAN format, as stdnum_iban.is_valid(compact, check_country=False)
    # judges it, but without its registry lookup per call (about 20 us, most of an IBAN's
    # cost). Not the national checks too (check_country): some look banks up in a registry
    # that dates with every release, and a real IBAN already passes its country's format
    # and mod 97 (one random string in 97 does).
    layout = bban_layouts().get(compact[:2].upper())
    if layout is None:
        return False
    bban = compact[4:].upper().encode()  # ASCII, checked above
    spans = match_spans(layout, bban, 0, len(bban))  # a whole match: one ending at the end
    return spans is not None and spans[0][1] == len(bban)


# stdnum's layout notation: "4!n4!n12!c" is 4 digits, 4 digits, 12 letters or digits.
_LAYOUT_PART = re2.compile(r"([1-9][0-9]*)!([nac])")
_LAYOUT_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}


@cache
def bban_layouts() -> dict[str, re2._Regexp]:
    """Each country's BBAN format from python-stdnum's registry (its iban.dat), read once.

    stdnum is imported here, on the first candidate, not at start-up. The file is stdnum's
    own data, not request text; tests/plugins/privacy/test_pii.py checks that these formats
    judge every country as stdnum does.
    """
    import stdnum  # noqa: PLC0415  # lazily: see iban()

    text = resources.files(stdnum).joinpath("iban.dat").read_text("utf-8")
    layouts: dict[str, re2._Regexp] = {}
    for line in text.splitlines():
        country, _, props = line.partition(" ")
        _, found, rest = props.partition('bban="')
        if line.startswith("#") or not found:
            continue
        layout = rest.partition('"')[0]
        parts = _LAYOUT_PART.findall(layout)
        if "".join(f"{n}!{k}" for n, k in parts) != layout:  # pragma: no cover - stdnum's
            raise ValueError(f"stdnum's IBAN layout for {country} is not understood")
        layouts[country] = re2.compile("".join(f"{_LAYOUT_CLASS[k]}{{{n}}}" for n, k in parts))
    return layouts


# --- US social security numbers -----------------------------------------------------------


def us_ssn(value: str) -> bool:
    """Not an SSN: area 000, 666 or 9xx; group 00; serial 0000; mixed separators; or one of
    the numbers rules.toml lists as published (advertising and sample cards)."""
    digits = _digits(value)
    separators = {c for c in value if not c.isdigit()}
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return (
        len(digits) == 9
        and len(separators) <= 1
        and area not in ("000", "666")
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
        and digits not in not_personal()["ssns"]
    )


# --- identity and document numbers ---------------------------------------------------------


def identity_number(value: str) -> bool:
    """A number after a label that names an identity document or number: 5 to 20 letters
    and digits, five of them digits or more (a passport's number has six or more), or India's
    PAN, whose four are set in its own layout; and none of what else follows such a label:
    a word ("national identity 2024 REPORT"), a date or a span of years, a decimal
    (0.84147), or a number nobody is given, a digit repeated (000000000) or counted out
    (123456789)."""
    if search_text(_PAN, value) is not None:
        return True
    head, dot, tail = value.partition(".")
    if dot and head.isdigit() and tail.isdigit():
        return False
    groups = [g for g in value.translate(_SEPARATORS).split(" ") if g]
    compact = "".join(groups)
    if _polish_identity_card(compact):
        return True  # its series is three letters: `VDA 668880`
    digits = "".join(c for c in compact if c.isdigit())
    if not 5 <= len(compact) <= 20 or len(digits) < 5 or len(set(compact)) < 3:
        return False
    if any(len(g) >= 3 and g.isalpha() for g in groups):
        return False
    if compact == digits and tuple(map(len, groups)) in _DATE_LAYOUTS:
        return False
    date = groups[:3]
    if len(groups) > 3 and all(map(str.isdigit, date)) and tuple(map(len, date)) in _DATE_LAYOUTS:
        return False  # a date, then a time: a log line's, not an id
    if _ipv4(value.partition("/")[0]) is not None:
        return False  # an IPv4 address, or a network (192.168.1.10/24)
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(digits)}
    return not (compact == digits and len(steps) == 1 and steps <= {1, 9})


# The ids whose column a short word names alone (readers' tables): the same word heads a
# sine's column, a near-infrared band's, a Polish "no"'s, so a cell must pass the
# document's own check (python-stdnum, imported on the first such cell).
_BARE_ID_CHECKS = {
    "sin": "ca.sin",
    "nie": "es.nie",
    "nif": "es.nif",
    "nir": "fr.nir",
    "ssin": "be.nn",
    "insz": "be.nn",
}


def bare_column_identity(name: str, value: str) -> bool:
    """Whether `value` under a column named `name` passes the check of the document a bare
    short name (sin, nie, nif, nir, ssin, insz) names; True for any other column."""
    module = _BARE_ID_CHECKS.get(name.strip().strip("\"'`").lower())
    if module is None:
        return True
    return bool(importlib.import_module(f"stdnum.{module}").is_valid(value))


def _polish_identity_card(value: str) -> bool:
    """A Polish identity card's number (dowód osobisty): a series of three letters, then six
    digits, the first of them a check digit; each character's value (letters A-Z as 10-35)
    weighted 7, 3, 1, 9, 7, 3, 1, 7, 3 sums to a multiple of 10 (Ministry of Digital
    Affairs; the specimen ABA300000)."""
    if search_text(_POLISH_ID, value) is None:
        return False
    numbers = [ord(c) - 55 for c in value[:3]] + [int(c) for c in value[3:]]
    return sum(n * w for n, w in zip(numbers, _POLISH_ID_WEIGHTS, strict=True)) % 10 == 0


_POLISH_ID = re2.compile(rb"^[A-Z]{3}[0-9]{6}$")
_POLISH_ID_WEIGHTS = (7, 3, 1, 9, 7, 3, 1, 7, 3)


# India's PAN: three letters, the holder's kind (P a person, C a company, H, F, A, T, B, L,
# J, G), the first letter of a name, four digits, a check letter (Income Tax Department).
_PAN = re2.compile(rb"^[A-Z]{3}[PCHFATBLJG][A-Z][0-9]{4}[A-Z]$")
# What separates an id's groups, each read as a blank (str methods: RE2's split, through the
# binding, took most of the check's time).
_SEPARATORS = str.maketrans("./-", "   ")
# Digit groups that write a date or a span of years: 12.03.1984, 2020-2024, 1984/03/12.
_DATE_LAYOUTS = frozenset(
    {(4, 4), (4, 2, 2), (4, 1, 2), (4, 2, 1), (4, 1, 1)}
    | {(d, m, 4) for d in (1, 2) for m in (1, 2)}
)


# --- identity numbers without a label --------------------------------------------------
#
# National numbers whose own layout and check digits tell them from a random string of the
# same shape, found wherever they stand (identity-number needs a label to say what a number
# is). python-stdnum judges each, imported on the first candidate, as in iban(); what it
# reads is one candidate of at most 18 characters. Each check digit is asked for first, with
# stdnum's own calculation: most candidates end at it, without stdnum's validate (2 to 20 us,
# most of it cleaning the number; 2,000 near misses of a flood paid 40 ms for that). A
# number nobody is given, its digits one repeated or counted out (123.456.789-09, 12345678Z:
# every manual's example), is passed over.


def aba_routing(digits: str) -> bool:
    """A US bank's ABA routing number: nine digits whose weighted sum (3, 7, 1 repeated) is a
    multiple of ten, and no placeholder's (000000000, 123456789)."""
    if len(digits) != 9 or not _ascii_digits(digits) or _nobodys(digits):
        return False
    return sum(int(d) * w for d, w in zip(digits, (3, 7, 1) * 3, strict=True)) % 10 == 0


def aamva_licence_number(value: str) -> bool:
    """A licence's number in its barcode's payload: not a test generator's zeros (one or two
    characters repeated), nor the AAMVA standard's own example (T64235789, SAMPLE MICHAEL
    JOHN of Richmond, VA), which every scanner SDK ships."""
    number = value.replace("-", "").replace(" ", "")
    return len(set(number)) > 2 and number != "T64235789"


def micr_account(value: str) -> bool:
    """A cheque's MICR line from its routing number on (`⑆routing⑆ account⑈`, or in the
    ASCII that scanners print for the E-13B symbols: `A065781885A 455939285C`): the routing
    number's checksum holds and the account is 4-17 digits, not counted out or repeated."""
    runs = "".join(c if "0" <= c <= "9" else " " for c in value).split()
    if len(runs) < 2 or not aba_routing(runs[0]):
        return False
    account = "".join(runs[1:])
    return 4 <= len(account) <= 17 and not _nobodys(account)


def account_number(value: str) -> bool:
    """An account's number: 6 to 20 digits (blanks and dashes between them dropped), not
    counted out or repeated."""
    digits = _digits(value)
    return 6 <= len(digits) <= 20 and not _nobodys(digits)


def nobodys_number(digits: str) -> bool:
    """Digits counted out or repeated (12345678, 00000000): a sample file's, no one's."""
    return len(digits) > 1 and _ascii_digits(digits) and _nobodys(digits)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _nobodys(digits: str) -> bool:
    """A digit repeated (00000000) or counted out (12345678, 98765432): a form's placeholder
    or a manual's example, not anyone's number."""
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(digits)}
    return len(steps) == 1 and steps <= {0, 1, 9}


def italian_fiscal_code(value: str) -> bool:
    """Italy's codice fiscale (DM 23 December 1976): three letters of the surname, three of
    the name, the year, a month's letter, the day (plus 40 for a woman), the place of
    birth's code and a check letter; stdnum checks the letter and that the day exists."""
    from stdnum.it import codicefiscale  # noqa: PLC0415  # lazily: see iban()

    return (
        len(value) == 16
        and value.isascii()
        and value.isalnum()
        and value == value.upper()  # stdnum's tables: digits and capitals
        and codicefiscale.calc_check_digit(value[:15]) == value[15]
        and _fiscal_code_day(value[9:11])  # as stdnum's check, before its cost
        and codicefiscale.is_valid(value)
    )


def _fiscal_code_day(day: str) -> bool:
    """A codice fiscale's day: 1-31, or 41-71 for a woman (the day plus 40)."""
    return day.isdigit() and (1 <= int(day) <= 31 or 41 <= int(day) <= 71)


def _past_day(yyyymmdd: str) -> bool:
    """Whether the digits name a real day no later than today."""
    try:
        day = datetime.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return day <= datetime.date.today()


# The highest place-of-registration code a resident registration number carries (stdnum).
_RRN_LAST_PLACE = 96


def chinese_resident_id(value: str) -> bool:
    """China's resident identity number (GB 11643-1999): an administrative region's code,
    the date of birth (YYYYMMDD), a sequence and an ISO 7064 MOD 11-2 check character (0-9
    or X). The date must be a day no later than today, and stdnum checks the character and
    that the region is a county its table of codes lists."""
    from stdnum.cn import ric  # noqa: PLC0415  # lazily: see iban()

    if len(value) != 18 or not _ascii_digits(value[:17]):
        return False
    if ric.calc_check_digit(value) != value[17].upper() or not _past_day(value[6:14]):
        return False  # the date first: stdnum's whole check costs 40 us (a flood: 2,000 of them)
    try:
        return ric.is_valid(value)
    except KeyError:  # stdnum 2.2 asks for the county of a code its table has none for
        return False  # (110001: a province's prefix, no county): no region at all


def korean_resident_number(value: str) -> bool:
    """South Korea's resident registration number, YYMMDD-SNNNNNC: a date of birth, a digit
    for the sex and century (1-8; 5-8 for foreign residents), the place of registration and
    a check digit; stdnum checks the digit, the place and that the date has been."""
    from stdnum.kr import rrn  # noqa: PLC0415  # lazily: see iban()

    digits = value[:6] + value[7:]
    return (
        len(value) == 14
        and value[6] == "-"
        and _ascii_digits(digits)
        and rrn.calc_check_digit(digits[:12]) == digits[12]
        and int(digits[7:9]) <= _RRN_LAST_PLACE  # as stdnum's check, before its cost
        and rrn.is_valid(value, allow_future=False)
        and not _nobodys(value[7:])
    )


def brazilian_cpf(value: str) -> bool:
    """Brazil's CPF as written, 000.000.000-00: nine digits and two mod-11 check digits."""
    from stdnum.br import cpf  # noqa: PLC0415  # lazily: see iban()

    digits = _digits(value)
    if len(digits) != 11:
        return False
    # The first check digit here (stdnum's calculation is private): 9 in 10 end at it.
    first = (11 - sum((10 - i) * int(d) for i, d in enumerate(digits[:9]))) % 11 % 10
    return str(first) == digits[9] and cpf.is_valid(value) and not _nobodys(digits[:9])


def stdnum_valid(module: str) -> Callable[[str], bool]:
    """A validator by python-stdnum's `module` (`mx.curp`): its is_valid, imported on the
    first candidate, not at start-up (see iban())."""

    def valid(value: str) -> bool:
        return bool(value.isascii() and importlib.import_module(f"stdnum.{module}").is_valid(value))

    return valid


def mexican_curp(value: str) -> bool:
    """Mexico's CURP (RENAPO): its check digit first, in one pass (nine candidates in ten end
    there, before stdnum's clean-up and date checks, which cost a flood of look-alikes 40
    ms a MB), then stdnum's whole validation."""
    if len(value) != 18 or not value.isascii() or not value[17].isdigit():
        return False
    total = sum(_CURP_ALPHABET.find(c) * (18 - i) for i, c in enumerate(value[:17]))
    if str((10 - total % 10) % 10) != value[17]:
        return False
    return stdnum_valid("mx.curp")(value)


# RENAPO's alphabet for the check digit, as python-stdnum's mx.curp has it
_CURP_ALPHABET = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ"


def mexican_rfc_person(value: str) -> bool:
    """Mexico's RFC of a natural person (SAT): 13 characters (a company's has 12), four
    letters of the name, the date of birth and a homoclave whose last is a check digit."""
    if len(value) != 13 or not value.replace("Ñ", "N").isascii():
        return False  # ASCII but for the Ñ that SAT's alphabet holds (stdnum reads it)
    if value[:4] in ("XAXX", "XEXX"):
        return False  # SAT's generic RFCs: the public at large, a foreign customer
    from stdnum.exceptions import ValidationError  # noqa: PLC0415  # lazily: see iban()
    from stdnum.mx import rfc  # noqa: PLC0415

    try:
        rfc.validate(value, validate_check_digits=True)  # is_valid skips the check digit
    except ValidationError:
        return False
    return True


def pakistani_cnic(value: str) -> bool:
    """Pakistan's CNIC (NADRA), 12345-1234567-1: a locality, a serial and a digit; not a
    form's example counted out (12345-1234567-1)."""
    digits = _digits(value)
    return (
        not _nobodys(digits[:5]) and not _nobodys(digits[5:12]) and stdnum_valid("pk.cnic")(value)
    )


def argentine_cuit_person(value: str) -> bool:
    """Argentina's CUIT or CUIL of a person (AFIP): the prefix 20, 23, 24 or 27 (30, 33 and
    34 are companies'), the DNI, a mod-11 check digit."""
    return value[:2] in ("20", "23", "24", "27") and stdnum_valid("ar.cuit")(value)


def indian_pan_person(value: str) -> bool:
    """India's PAN of an individual (Income Tax Department): its fourth letter is P."""
    return len(value) == 10 and value[3] == "P" and stdnum_valid("in_.pan")(value)


def emirates_id(value: str) -> bool:
    """The UAE's Emirates ID as written, 784-YYYY-NNNNNNN-C: Luhn over its 15 digits."""
    digits = _digits(value)
    return len(digits) == 15 and digits.startswith("784") and luhn(digits)


# HMRC never issues these letters in a National Insurance number's prefix (NIM39110): D, F,
# I, Q, U and V as either letter, O as the second; nor these prefixes, BG, GB, NK, KN, TN, NT
# (temporary numbers) and ZZ.
_NINO_FIRST = frozenset("ABCEGHJKLMNOPRSTWXYZ")
_NINO_SECOND = _NINO_FIRST - {"O"}
_NINO_NOT_ISSUED = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


def uk_national_insurance_number(value: str) -> bool:
    """A UK National Insurance number, AB123456C or AB 12 34 56 C: a prefix HMRC issues, six
    digits and a suffix A-D. No check digit: the prefix and the suffix are the test."""
    compact = value.replace(" ", "")
    return (
        len(compact) == 9
        and compact[0] in _NINO_FIRST
        and compact[1] in _NINO_SECOND
        and compact[:2] not in _NINO_NOT_ISSUED
        and compact[2:8].isdigit()
        and compact[8] in "ABCD"
        and not _nobodys(compact[2:8])
    )


def spanish_dni(value: str) -> bool:
    """Spain's DNI (8 digits and a letter) or a foreigner's NIE (X, Y or Z, 7 digits and a
    letter), the letter from the number mod 23 (Real Decreto 1553/2005); stdnum checks it.
    Eight digits that read as a date, 20240611A, are a build's or a file's stamp."""
    from stdnum.es import dni, nie  # noqa: PLC0415  # lazily: see iban()

    compact = value.replace("-", "")
    if len(compact) != 9:
        return False
    if compact[0] in ("X", "Y", "Z"):
        return (
            _ascii_digits(compact[1:8])
            and nie.calc_check_digit(compact[:8]) == compact[8]
            and nie.is_valid(compact)
            and not _nobodys(compact[1:8])
        )
    years = (1900, 2099)
    return (
        _ascii_digits(compact[:8])
        and dni.calc_check_digit(compact[:8]) == compact[8]
        and dni.is_valid(compact)
        and not _nobodys(compact[:8])
        and not _real_date(compact[:4], compact[4:6], compact[6:8], years)
    )


# --- machine-readable zones --------------------------------------------------------------


def mrz(value: str) -> bool:
    """A passport's or an identity card's machine-readable zone (ICAO Doc 9303): a
    passport's two lines of 44 characters, or a card's two or three lines of 30 (the third
    holds the name), whose document number, date of birth and expiry date each agree with
    their check digit.
    Not ICAO's specimens, issued by Utopia (UTO), a state that does not exist."""
    lines = value.replace("/", " ").replace("|", " ").split()  # one line: a / or a | between
    if len(lines) == 2 and len(lines[0]) == len(lines[1]) == 44:  # passport (TD3)
        line = lines[1]
        fields = ((line[0:9], line[9]), (line[13:19], line[19]), (line[21:27], line[27]))
        state = line[10:13]
    elif len(lines) in (2, 3) and all(len(line) == 30 for line in lines):  # card (TD1)
        first, second = lines[:2]
        fields = ((first[5:14], first[14]), (second[0:6], second[6]), (second[8:14], second[14]))
        state = first[2:5]
    else:
        return False
    return state != "UTO" and all(_mrz_check(field) == digit for field, digit in fields)


def mrz_second_line(value: str) -> bool:
    """A passport's or a visa's second MRZ line alone (44 characters: ICAO Doc 9303 parts 4
    and 7), which a form, a CSV or an OCR result holds apart from the first: its document
    number, date of birth and expiry date each agree with their check digit, and a
    passport's composite digit (its last) with the three and the optional data. Or an
    identity card's (30 characters, part 5): its date of birth and expiry date."""
    line = value.strip()
    if len(line) == 30:
        dates = ((line[0:6], line[6]), (line[8:14], line[14]))
        return line[15:18] != "UTO" and all(_mrz_check(f) == digit for f, digit in dates)
    if len(line) != 44 or line[10:13] == "UTO":
        return False
    fields = ((line[0:9], line[9]), (line[13:19], line[19]), (line[21:27], line[27]))
    if not all(_mrz_check(field) == digit for field, digit in fields):
        return False
    if line[42].isdigit() and _mrz_check(line[28:42]) != line[42]:
        return False  # a passport's optional data's check digit (a visa has none)
    composite = line[0:10] + line[13:20] + line[21:43]
    return _mrz_check(composite) == line[43] or not line[43].isdigit() or line[42] == "<"


_MRZ_WEIGHTS = (7, 3, 1)


def _mrz_check(field: str) -> str:
    """ICAO 9303's check digit: each character's value (digits as themselves, A-Z as
    10-35, the filler < as 0), weighted 7, 3, 1 in turn, summed, modulo 10."""
    total = 0
    for i, char in enumerate(field):
        # ASCII digits and capitals only (int() of a superscript's digit raises)
        number = int(char) if "0" <= char <= "9" else ord(char) - 55 if "A" <= char <= "Z" else 0
        total += number * _MRZ_WEIGHTS[i % 3]
    return str(total % 10)


# --- dates of birth -----------------------------------------------------------------------


MIN_BIRTH_YEAR = 1900
# 1900-01-01 in its numeric forms, a time after it or not
_UNKNOWN_DATE = re2.compile(
    r"^(?:1900-0?1-0?1|1900/0?1/0?1|1900\.0?1\.0?1|0?1-0?1-1900|0?1/0?1/1900|0?1\.0?1\.1900"
    r"|19000101)(?:[ t].*)?$"
)
MIN_LABELLED_BIRTH_YEAR = 1800


# A street's line, as an address column's cell holds it: a house number (digits, perhaps a
# letter after them) standing apart, and a word of three letters or more.
_HOUSE_NUMBER = re2.compile(r"(?:^|[\s,])\d{1,5}[A-Za-z]?(?:[\s,/-]|$)")
_STREET_WORD = re2.compile(r"\pL{3,}")
# A template's or a test's street: 1 Test Street, 1 Example Road, Anytown
_SAMPLE_STREET = re2.compile(
    r"(?i)(?:^|[^\pL])(?:test|example|sample|dummy|fake|placeholder|anytown|anystreet)"
    r"(?:[^\pL]|$)"
)


# A network's, a register's or a size's cell: an IP (two dots), a port and its number, a
# number and its unit, an offset (not 12 Port Street, London GB or Flat 1.2: review 35)
_NOT_STREET = re2.compile(
    r"\d\.\d+\.\d|(?i:(?:^|[^\pL])port[ \t:#]*\d"
    r"|\d[ \t]*(?:bits?|bytes?|[kmg]bit|[kmgt]i?b)(?:[^\pL]|$)"
    r"|(?:^|[^\pL])(?:offset|decimal|hex)(?:[^\pL]|$))"
)


def street_line(value: str) -> bool:
    """A postal address's cell (readers.ADDRESS_TABLE): a house number and a street's word
    ("Prinsengracht 143, Eindhoven", "12 rue de la Paix", "רחוב דיזנגוף 134"); no network
    address, mailbox, URL or markup (an `Address` column of a network's table holds IPs)."""
    text = value.strip()
    if not 6 <= len(text) <= 200 or any(c in text for c in "@:=<>{}[]"):
        return False
    if search_text(_SAMPLE_STREET, text) is not None or search_text(_NOT_STREET, text):
        return False
    return search_text(_HOUSE_NUMBER, text) is not None and (
        search_text(_STREET_WORD, text) is not None
    )


def date_of_birth(value: str, earliest: int = MIN_BIRTH_YEAR, latest: int | None = None) -> bool:
    """A date someone alive could have been born on, as a date-of-birth column's cells (the
    table reader's, readers.DOB_TABLE) write it, in the date-of-birth rules' shapes: numbers
    (1987-03-14, 14/03/1987, 03/14/1987, 14.03.1987, 14/03/87, 19870314, a time after the
    date), a month's name (14-Mar-1987, March 14, 1987, 14. März 1987, 14 de marzo de
    1987), or the year, month and day marked as Chinese, Japanese and Korean mark them
    (1987年3月14日, 1987년 3월 14일, 1987. 3. 14.). The day must exist in its month (a
    day-first and a month-first reading are both tried), and a four-digit year fall between
    `earliest` and `latest` (this year unless given): "unknown", "1900-01-00" and
    "0000-00-00" are no one's birthday, nor is 1 January 1900, the date many systems store
    for an unknown one (SQL Server's datetime zero, a spreadsheet's day 1)."""
    text = _western_year(value.strip().lower())
    if not text or len(text) > 40 or search_text(_UNKNOWN_DATE, text) is not None:
        return False
    years = (earliest, latest)
    if text[0].isdigit():
        if _numeric_date(text, years):
            return True
        # The marks read as separators, and the blanks after them dropped: 1987-3-14
        parts = text.translate(_CJK_DATE_MARKS).rstrip(".").split()
        if all(part[-1] in _DATE_SEPARATORS for part in parts[:-1]) and _numeric_date(
            "".join(parts), years
        ):
            return True
    return _named_month_date(text, years)


def labelled_date_of_birth(value: str) -> bool:
    """A date after a label that says it is a date of birth (the date-of-birth rules), read
    as date_of_birth reads a column's, but from MIN_LABELLED_BIRTH_YEAR (a column's dates
    are its living customers', a labelled one may be a historical person's), and in any
    order of its groups and any month's abbreviation: the label has said what the value
    is, so only a day that cannot be is turned down (0000-00-00, 99/99/9999, 31.02.1987),
    not 87-03-14 or 14 mrt 1987; nor 1 January 1900, which systems store for an unknown
    one (`<param name="birthDate" value="01/01/1900"/>`)."""
    if date_of_birth(value, earliest=MIN_LABELLED_BIRTH_YEAR):
        return True
    if search_text(_UNKNOWN_DATE, value.strip().lower()) is not None:
        return False
    years = (MIN_LABELLED_BIRTH_YEAR, None)
    parts = [part.strip() for part in value.split(",")]
    if len(parts) == 3 and all(part.isdigit() for part in parts):  # datetime.date(y, m, d)
        year, month, day = parts
        return _real_date(year, month, day, years)
    text = value.strip().lower()
    return _date_in_any_order(text, years) or _date_with_any_month(text, years)


# A numeric date's groups as (year, month, day): ISO's (87-03-14 too), and both orders
# with the year last.
_GROUP_ORDERS = ((0, 1, 2), (2, 1, 0), (2, 0, 1))


def _date_in_any_order(text: str, years: tuple[int, int | None]) -> bool:
    for separator in _DATE_SEPARATORS:
        groups = text.split(separator)
        if len(groups) == 3 and all(g.isdigit() for g in groups):
            return any(
                _real_date(groups[y], groups[m], groups[d], years) for y, m, d in _GROUP_ORDERS
            )
    return False


def _date_with_any_month(text: str, years: tuple[int, int | None]) -> bool:
    """A day, a word (a month's name, whatever its language or abbreviation) and a year
    within `years`."""
    words = text.replace(",", " ").replace(".", " ").replace("-", " ").split()
    days = [w for w in words if w.isdigit() and len(w) <= 2 and 1 <= int(w) <= 31]
    year = [w for w in words if w.isdigit() and len(w) == 4]
    latest = datetime.date.today().year if years[1] is None else years[1]
    return (
        len(days) == 1
        and len(year) == 1
        and years[0] <= int(year[0]) <= latest
        and any(w.isalpha() and 3 <= len(w) <= 12 for w in words)
    )


# The date's separators: one kind of them between a numeric date's three groups.
_DATE_SEPARATORS = "-/."
# The year's and the month's marks in Chinese, Japanese and Korean as a dash, the day's as
# nothing: 1987年3月14日 is 1987-3-14.
# Japan's eras and the year before each one's first (昭和50年 is 1925 + 50 = 1975; the
# first year is also written 元年, "the first").
_ERAS = {"明治": 1867, "大正": 1911, "昭和": 1925, "平成": 1988, "令和": 2018}
_ERA_YEAR = re2.compile(r"^(明治|大正|昭和|平成|令和)[ \t]?(\d{1,2}|元)[ \t]?年")


def _western_year(text: str) -> str:
    """`text` with a Japanese era's year (昭和50年10月16日) written as its Gregorian year
    (1975年10月16日); any other text as it is."""
    spans = search_text(_ERA_YEAR, text) if text[:1] in "明大昭平令" else None
    if spans is None:
        return text
    era, number = spans[1], spans[2]
    data = text.encode("utf-8", "surrogatepass")
    year = data[number[0] : number[1]].decode()
    gregorian = _ERAS[data[era[0] : era[1]].decode()] + (1 if year == "元" else int(year))
    return f"{gregorian}年" + data[spans[0][1] :].decode()


_CJK_DATE_MARKS = str.maketrans({"年": "-", "月": "-", "日": "", "년": "-", "월": "-", "일": ""})


def _numeric_date(text: str, years: tuple[int, int | None]) -> bool:
    """1987-03-14, 14/03/1987 or 03/14/1987 (either reading), 14.03.87, a time after any
    of them (a database's or a spreadsheet's export: 1987-03-14 00:00:00, 3/14/1987 0:00);
    19870314."""
    if len(text) == 8 and text.isdigit():
        return _real_date(text[:4], text[4:6], text[6:], years)
    head, blank, time = text.partition(" ")
    if not blank:
        head, blank, time = text.partition("t")
    if blank and not (time and set(time) <= _TIME_CHARS):
        return False  # a time, or nothing, after the date
    for separator in _DATE_SEPARATORS:
        groups = head.split(separator)
        if len(groups) != 3 or not all(g.isdigit() for g in groups):
            continue
        first, second, third = groups
        if len(first) == 4:
            return _real_date(first, second, third, years)
        if len(third) in (2, 4):
            return _real_date(third, second, first, years) or _real_date(
                third, first, second, years
            )
    return False


_TIME_CHARS = frozenset("0123456789:.+-z")


def _real_date(year: str, month: str, day: str, years: tuple[int, int | None]) -> bool:
    """Whether the three digit groups name a real day: month 1-12, a day its month has, a
    two-digit year any, a four-digit year within `years` (the first and the last, this
    year if None: asked here, where a date has a year, not for every NULL and N/A)."""
    if not (1 <= len(month) <= 2 and 1 <= len(day) <= 2 and len(year) in (2, 4)):
        return False
    number = int(year)
    earliest, latest = years
    if len(year) == 4 and not (
        earliest <= number <= (datetime.date.today().year if latest is None else latest)
    ):
        return False
    try:
        datetime.date(number if len(year) == 4 else 2000 + number, int(month), int(day))
    except ValueError:
        return False
    return True


def _named_month_date(text: str, years: tuple[int, int | None]) -> bool:
    """A day, a month's name (or its abbreviation, three letters or more) and a four-digit
    year, in the order day month year, month day year or year month day; ordinals (14th,
    14.) and the words between (of, de, del) allowed."""
    words = [w for w in text.translate(_DATE_BLANKS).split() if w not in _DATE_FILLERS]
    if len(words) != 3:
        return False
    for day_at, month_at, year_at in ((0, 1, 2), (1, 0, 2), (2, 1, 0)):
        day = words[day_at]
        for ordinal in _ORDINALS:
            day = day.removesuffix(ordinal)
        month = _month_number(words[month_at])
        if month and len(words[year_at]) == 4 and words[year_at].isdigit() and day.isdigit():
            return _real_date(words[year_at], str(month), day, years)
    return False


# Commas, dots, dashes and slashes between a written date's words: 14-Mar-1987, 14. März.
_DATE_BLANKS = str.maketrans(",.-/", "    ")
_ORDINALS = ("st", "nd", "rd", "th", "er")  # 1st, 2nd, 3rd, 14th; French 1er
_DATE_FILLERS = frozenset({"of", "the", "de", "del", "di", "den", "der", "le", "el"})


def _month_number(word: str) -> int:
    """1-12 for a month's name in English, German, French, Spanish, Italian, Portuguese,
    Dutch, a Nordic language, Finnish or Polish (as a date writes it: 14 marca, 14.
    maaliskuuta), the languages of the date-of-birth rule's labels, or its abbreviation of
    three letters or more (mar, sept, févr); 0 for any other word."""
    if len(word) < 3 or not word.isalpha():
        return 0
    for number, names in enumerate(_MONTHS, 1):
        if any(name.startswith(word) for name in names):
            return number
    return 0


_MONTHS = (
    (
        *("january", "januar", "janvier", "enero", "gennaio", "janeiro", "januari"),
        *("tammikuuta", "styczeń", "stycznia"),
    ),
    (
        *("february", "februar", "février", "fevrier", "febrero", "febbraio", "fevereiro"),
        *("februari", "helmikuuta", "luty", "lutego"),
    ),
    (
        *("march", "märz", "maerz", "mars", "marzo", "março", "marco", "maart", "marts"),
        *("maaliskuuta", "marzec", "marca"),
    ),
    ("april", "avril", "abril", "aprile", "huhtikuuta", "kwiecień", "kwietnia"),
    ("may", "mai", "mayo", "maggio", "maio", "mei", "maj", "toukokuuta", "maja"),
    ("june", "juni", "juin", "junio", "giugno", "junho", "kesäkuuta", "czerwiec", "czerwca"),
    ("july", "juli", "juillet", "julio", "luglio", "julho", "heinäkuuta", "lipiec", "lipca"),
    (
        *("august", "août", "aout", "agosto", "augustus", "augusti", "elokuuta"),
        *("sierpień", "sierpnia"),
    ),
    (
        *("september", "septembre", "septiembre", "settembre", "setembro", "syyskuuta"),
        *("wrzesień", "września"),
    ),
    (
        *("october", "oktober", "octobre", "octubre", "ottobre", "outubro", "lokakuuta"),
        *("październik", "października"),
    ),
    (
        *("november", "novembre", "noviembre", "novembro", "marraskuuta", "listopad"),
        "listopada",
    ),
    (
        *("december", "dezember", "décembre", "decembre", "diciembre", "dicembre"),
        *("dezembro", "desember", "joulukuuta", "grudzień", "grudnia"),
    ),
)


# --- addresses ----------------------------------------------------------------------------


# Australia Post's postcode ranges by state and territory.
_AU_POSTCODES = {
    "NSW": ((1000, 2599), (2619, 2899), (2921, 2999)),
    "ACT": ((200, 299), (2600, 2618), (2900, 2920)),
    "VIC": ((3000, 3999), (8000, 8999)),
    "QLD": ((4000, 4999), (9000, 9999)),
    "SA": ((5000, 5999),),
    "WA": ((6000, 6999),),
    "TAS": ((7000, 7999),),
    "NT": ((800, 999),),
}


def australian_postcode(value: str) -> bool:
    """An address that ends with an Australian state and postcode: the postcode must be one
    of that state's (SA 2024 is a year); any other address passes."""
    words = value.replace(",", " ").split()
    if len(words) < 2 or words[-2] not in _AU_POSTCODES or not words[-1].isdigit():
        return True
    code = int(words[-1])
    return any(low <= code <= high for low, high in _AU_POSTCODES[words[-2]])


def private_ip(value: str) -> bool:
    """RFC 1918 IPv4 ranges and IPv6 unique-local addresses (not CGNAT's 100.64/10: an ISP's)."""
    octets = _ipv4(value)
    if octets is not None:
        first, second = octets[0], octets[1]
        return first == 10 or (first == 172 and 16 <= second <= 31) or (first, second) == (192, 168)
    if ":" not in value:
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address.version == 6 and address in ipaddress.ip_network("fc00::/7")
