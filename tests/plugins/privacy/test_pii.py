"""Personal data in the shapes people write it, and the look-alikes that are not.

Every number here was made up for this file: IBANs built with their country's layout and
then given valid check digits, card numbers given a Luhn digit, phone numbers in fictional
or arbitrary ranges.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from devpulse import config_from_mapping
from devpulse.plugins.privacy import Scanner, pii
from devpulse.plugins.privacy.readers import MAX_CANDIDATES, MAX_ROW_BYTES, read_all
from tests.plugins.privacy import secrets_factory as make


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(config_from_mapping({}).privacy)


def pii_rules(scanner: Scanner, text: str) -> set[str]:
    return {f.rule_id for f in scanner.scan(text) if f.category == "pii"}


def with_check_digits(country: str, bban: str) -> str:
    """An IBAN for `bban`: ISO 7064 mod 97-10 over the BBAN, the country and "00"."""
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def spaced(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


# Countries the old length table lacked, each in its own BBAN layout.
IBAN_LAYOUTS = [
    ("AL", "21210009" + "0000000234567891"),  # 8n 16c
    ("AZ", "ABCD" + "00000000123456789012"),  # 4a 20c
    ("BH", "ABCD" + "00123456789012"),  # 4a 14c
    ("EG", "0012" + "0003" + "00000000012345678"),  # 4n 4n 17n
    ("JO", "ABCD" + "0010" + "000000001234567891"),  # 4a 4n 18c
    ("KW", "ABCD" + "0000000000012345678901"),  # 4a 22c
    ("PK", "ABCD" + "0000001234567891"),  # 4a 16c
    ("GT", "ABCD" + "01020000001210029691"),  # 4c 20c
    ("LC", "ABCD" + "000100010012001200023016"),  # 4a 24c
    ("SC", "ABCD" + "1101000000000000" + "1234" + "EUR"),  # 4a 2n 2n 16n 3a
]


@pytest.mark.parametrize(("country", "bban"), IBAN_LAYOUTS, ids=[c for c, _ in IBAN_LAYOUTS])
def test_ibans_of_every_country_are_found_compact_spaced_and_hyphenated(
    scanner: Scanner, country: str, bban: str
) -> None:
    iban = with_check_digits(country, bban)
    for written in (iban, spaced(iban), spaced(iban).replace(" ", "-")):
        assert pii_rules(scanner, f"pay to {written} today") == {"iban"}, written


@pytest.mark.parametrize(
    ("country", "bban"), IBAN_LAYOUTS[:4], ids=[c for c, _ in IBAN_LAYOUTS[:4]]
)
def test_an_iban_with_a_wrong_check_digit_or_layout_is_nothing_at_all(
    scanner: Scanner, country: str, bban: str
) -> None:
    """Nor is any part of it a phone or a card number: the old phone rule took those."""
    iban = with_check_digits(country, bban)
    wrong_check = iban[:3] + str((int(iban[3]) + 1) % 10) + iban[4:]
    letter_for_digit = iban[:4] + "X" + iban[5:]  # each of these BBANs opens with digits
    shorter = iban[:-1]
    for bad in (wrong_check, letter_for_digit, shorter):
        assert bad == iban or scanner.scan(spaced(bad)) == [], spaced(bad)


def test_an_iban_followed_by_a_short_word_is_still_found(scanner: Scanner) -> None:
    iban = with_check_digits("DE", "37040044" + "0532013000")
    assert "iban" in pii_rules(scanner, f"account {spaced(iban)} X to be paid")


@pytest.mark.parametrize(
    ("country", "bban"), IBAN_LAYOUTS[:6], ids=[c for c, _ in IBAN_LAYOUTS[:6]]
)
def test_an_iban_after_its_label_is_found_in_any_case(
    scanner: Scanner, country: str, bban: str
) -> None:
    iban = with_check_digits(country, bban)
    for text in (f"iban: {iban.lower()}", f"my IBAN is {spaced(iban).lower()}"):
        assert pii_rules(scanner, text) == {"iban-labelled"}, text
    wrong = iban[:3] + str((int(iban[3]) + 1) % 10) + iban[4:]
    assert pii_rules(scanner, f"iban: {wrong.lower()}") == set()
    assert pii_rules(scanner, f"ref {iban.lower()}") == set()  # no label: lower case is no IBAN


def test_a_word_after_an_iban_in_lower_case_is_not_its_last_group(scanner: Scanner) -> None:
    iban = spaced(with_check_digits("DE", "37040044" + "0532013000")).lower()
    text = f"iban {iban} in the form"
    assert [text[slice(*f.span)] for f in scanner.scan(text)] == [iban]


def test_mixed_separators_make_no_iban(scanner: Scanner) -> None:
    iban = spaced(with_check_digits("DE", "37040044" + "0532013000"))
    assert "iban" not in pii_rules(scanner, iban.replace(" ", "-", 2))


def test_stdnum_is_not_imported_until_a_candidate_needs_it() -> None:
    import subprocess  # noqa: PLC0415

    probe = (
        "import sys\n"
        "from devpulse import config_from_mapping\n"
        "from devpulse.plugins.privacy import Scanner\n"
        "s = Scanner(config_from_mapping({}).privacy)\n"
        "s.scan('no numbers here')\n"
        "print('stdnum' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


PHONES = [
    ("phone-national", "ring 0532 614 27 93 after six"),  # TR mobile, trunk 0
    ("phone-national", "ring 0 (532) 614 27 93 after six"),
    ("phone-national", "ring 0-532-614-27-93"),
    ("phone-national", "ring 05326142793"),  # unseparated, 11 digits
    ("phone-national", "ring 532 614 27 93 or 532-614-27-93"),  # 3-3-2-2
    ("phone-national", "ring 532.614.27.93"),
    ("phone-national", "cel 0918 452 7731"),  # PH mobile
    ("phone-national", "cel 0 (918) 452 7731"),
    ("phone-national", "cel 09184527731"),
    ("phone-national", "Tokyo office 03-5412-8890"),
    ("phone-national", "Haifa 04-8523310"),
    ("phone-national", "手机 15927384615"),  # CN mobile
    ("phone-national", "call 1-212-736-0142 or 44-212-736-0142"),
    ("phone-national", "Madrid 612 34 56 78"),  # 3-2-2-2
    ("phone-e164", "ring +90 (532) 614 27 93"),
    ("phone-e164", "ring +63-918-452-7731"),
    ("phone-e164", "ring +639184527731"),
    ("phone-e164", "Athens +30 21 0 6124475"),
    ("phone-e164", "Tokyo +81 3-5412-8890"),  # a space after the code, dashes inside
    ("phone-e164", "desk +1 212.736.0142"),
    ("phone-e164", "São Paulo +55 11 99341-5572"),  # area code, then the number's own hyphen
    ("phone-e164", "Stockholm +46 70-400 37 81"),
    ("phone-e164", "Moscow +7 944 034-16-47"),
    ("phone-labelled", "Phone: 3126142793"),
    ("phone-labelled", "Telefon 5326142793"),
    ("phone-labelled", "Tel. 030/83096559"),  # "/" between area code and number (DE, AT, CH)
    ("phone-labelled", '{"phone": "0151/735 85 889"}'),  # a quoted key, as in JSON
    ("phone-labelled", 'phone_number="(21) 91322-3494"'),  # a snake_case key
]


@pytest.mark.parametrize(("rule", "text"), PHONES, ids=[t for _, t in PHONES])
def test_national_and_international_phone_formats(scanner: Scanner, rule: str, text: str) -> None:
    assert rule in pii_rules(scanner, text)


NOT_PHONES = [
    "build 2024-05-21 finished",
    "ts 2024-05-21T10:11:02.1234567Z",
    "loss 0.14285714 after 3 epochs",
    "Boston, MA 02110-1301",  # ZIP+4
    "exchange 212-136-0142",  # a North American exchange never starts with 1
    "id 9184527731",  # unlabelled bare 10 digits: ids, counters, timestamps
    "epoch 1716281462",
    "INT_MAX is 2147483647",
    "route 212.123.45.67 via eth0",  # an IPv4 address in 3-3-2-2 shape
    "0918452773",  # a trunk 0 and 9 digits, unseparated: too short to tell
    "09184527731234",
    "see RFC 1918 and 5737 for 10 0 0 0",
    "0 1 2 3 4 5 6 7 8 9",
    "version 0.12.3 and 01.02.2024",
    "+1 2024-05-21.14",  # two kinds of separator after the country code
    "GDP growth +2 1.234.567 million",  # +2 is no country code
    "+1 2024-05-21",  # a date after the code
    "+1 192.168.100.254",  # an IPv4 address after it
    "+86 10 2024-05-21",  # a date after a code and a number
    "+49 1234 56-7",  # too few digits after the area code
    # git fetch's refspec in a CI log: a commit's hash, which only starts with digits
    " * [new ref]  +6854575622f8a1b2c3d4e5f6a7b8c9d0e1f2a3b4:refs/remotes/origin/main",
    'example: "+1-555-0100"',  # +1 is North America's plan: ten digits follow it
]


def test_a_number_right_after_a_labels_fullwidth_colon_is_a_phone(scanner: Scanner) -> None:
    assert "phone-national" in pii_rules(scanner, "电话：15841020458")
    assert "phone-national" in pii_rules(scanner, "電話：090-1234-5678")
    assert not pii_rules(scanner, "id:13812345678 ts:13812345679")  # an ASCII key's colon
    assert not pii_rules(scanner, "客服热线：400-820-1234")  # China's 400: a business's line


@pytest.mark.parametrize(
    "text",
    ["Mob:+447911123456Tel:none", "Call +14155552671 ext 22", "銀行: +8613800138000号"],
)
def test_a_number_followed_by_a_word_is_still_a_phone(scanner: Scanner, text: str) -> None:
    assert "phone-e164" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "银行卡号：6222025260181590832",  # UnionPay: 19 digits, written ungrouped
        '{"bank_card": "4367423909960308245"}',
    ],
)
def test_a_19_digit_card_written_without_groups_is_a_card(scanner: Scanner, text: str) -> None:
    assert "credit-card" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    ["DOB: 14 mrt 1987", "Geburtsdatum: 14. Mrz. 1987", "DOB: 87-03-14", "dob 03/14/1987"],
)
def test_a_labelled_date_of_birth_in_any_order_or_abbreviation(scanner: Scanner, text: str) -> None:
    """The label has said what the value is: only a day that cannot be is turned down."""
    assert "date-of-birth" in pii_rules(scanner, text)


@pytest.mark.parametrize("text", NOT_PHONES)
def test_numbers_that_are_not_phones(scanner: Scanner, text: str) -> None:
    assert not {r for r in pii_rules(scanner, text) if r.startswith("phone")}


@pytest.mark.parametrize(
    "text",
    [
        "SSN 078-05-1123",
        "ssn: 078.05.1123",
        "abc 078 05 1123 abc",
        "412 62 8841",
        '{"ssn": "856642491"}',  # a label as a quoted key, the number unseparated
        "ssn: '856-64-2491'",
    ],
)
def test_ssns_with_dashes_dots_or_spaces(scanner: Scanner, text: str) -> None:
    rules = pii_rules(scanner, text)
    assert rules & {"us-ssn", "us-ssn-labelled"}
    assert not {r for r in rules if r.startswith("phone")}  # 0xx-xx-xxxx is no phone


@pytest.mark.parametrize(
    "text",
    [
        "078 00 1123",  # group 00 is never issued
        "078-05-0000",
        "412-62.8841",  # mixed separators
        "078-05-1120",  # the Woolworth wallet card: rules.toml [not_personal]
        "219-09-9999",  # SSA advertising
        "900-12-3456",
        "412628841",  # a bare run of nine, unlabelled
    ],
)
def test_not_ssns(scanner: Scanner, text: str) -> None:
    assert not pii_rules(scanner, text)


def luhn_complete(head: str) -> str:
    for digit in "0123456789":
        if pii.luhn(head + digit):
            return head + digit
    raise AssertionError(head)


CARDS = [
    luhn_complete("3056930912512"),  # Diners Club, 14 digits
    luhn_complete("3589" + "31245678901"),  # JCB
    luhn_complete("5019" + "71701510374"),  # Dankort
    luhn_complete("6759" + "64982643845"),  # Maestro UK
    luhn_complete("2200" + "12345678912"),  # Mir
    luhn_complete("6250" + "94127361825"),  # UnionPay
    luhn_complete("1224" + "5678912345"),  # UATP, 15 digits
    luhn_complete("9792" + "12345678912"),  # Troy
]


@pytest.mark.parametrize("card", CARDS)
def test_card_issuers_beyond_the_big_four(scanner: Scanner, card: str) -> None:
    grouped = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
    assert "credit-card" in pii_rules(scanner, f"card {card} and {grouped}")


def test_a_prefix_a_scheme_does_not_issue_at_that_length_is_no_card() -> None:
    assert pii.card_number(luhn_complete("4539" + "14880343"))  # Visa issues 13
    assert not pii.card_number(luhn_complete("4539" + "1488034364"))  # but not 15
    assert not pii.card_number(luhn_complete("1224" + "56789123456"))  # UATP is 15 only
    assert not pii.card_number(luhn_complete("7123" + "45678912345"))  # no scheme in 7


@pytest.mark.parametrize(
    "text",
    [
        '"order_id": 4539148803436467',
        "invoice 4539 1488 0343 6467 paid",
        '{"userId": 4539148803436467}',
        "trace_id=4539148803436467",
        "Order No. 4539148803436467",
    ],
)
def test_a_number_labelled_as_an_id_is_no_card(scanner: Scanner, text: str) -> None:
    assert "credit-card" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "card: 4539148803436467",
        '{"card_number": "4539 1488 0343 6467"}',
        "pay with 4539148803436467 please",
        "orderId=12&card=4539148803436467",  # the label next to it, not the line's first
        "valid 4539148803436467",  # a word ending in "id" is no id label
    ],
)
def test_a_card_number_elsewhere_is_still_one(scanner: Scanner, text: str) -> None:
    assert "credit-card" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "Ship to: 4821 Maple Ridge Dr, Apt 3B, Austin, TX 78745",
        "Send it to 1600 Pennsylvania Avenue NW, Washington, DC 20500.",
        # a table's columns: sqlite3 -column, psql, a CSV, tabs (a street after SE too)
        "Aoife Dubois        1973 N 45th St         Seattle     WA     98105",
        "Omar Lindqvist | 9810 SE Hawthorne Blvd | Portland | OR | 97287",
        "4,1331 N 45th St,Seattle,WA,98149",
        "2925 Magnolia Ave\tTampa\tFL\t33616",
        "My flat: 10 Baker Street, London NW1 6XE",
        "Wohnhaft in: Lindenstraße 42, 10969 Berlin",
        "Bitte an Am Mühlbach 120, 50695 Köln liefern",  # a street named with its preposition
        "An der Alster 12\n20099 Hamburg",
        "Livraison : 12 rue de la Paix, 75002 Paris",
        "Spedire a: Via Giuseppe Garibaldi 12, 00184 Roma",
        "indirizzo: via della Spiga 10 - 20121 Milano (MI)",
        "Corso Vittorio Emanuele II, 18, 10123 Torino",
        "Enviar a Calle de Alcalá 45, 28014 Madrid",
        "C/ Mayor 12, 3º B, 28013 Madrid",
        "Avenida de la Constitución, 20\n41004 Sevilla",
        "Adres: Keizersgracht 123, 1015 CJ Amsterdam",
        "Jan van Galenstraat 4\n1051 KM Amsterdam",
        "Adress: Drottninggatan 53, 111 21 Stockholm",
        "Kungsvägen 12 lgh 1102, 123 45 Örebro",
        "Leveransadress:\nSvea Lind\nHornsgatan 14, lgh 1203\n118 20 Stockholm",  # , lgh
        "Karl Johans gate 1, 0154 Oslo",
        "Vesterbrogade 3, 1620 København V",
        "Adres: ul. Marszałkowska 1, 00-950 Warszawa",
        "al. Jerozolimskie 65/79\n00-697 Warszawa",
    ],
)
def test_a_street_line_with_its_postcode_is_an_address(scanner: Scanner, text: str) -> None:
    assert "street-address" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "收货地址:\n李娜\n上海市徐汇区科技南路353号25栋1138室",
        "收件人：刘洋  地址：北京市朝阳区建国路88号",
        "배송지:\n박지훈\n서울특별시 강남구 테헤란로35길 57, 101동 1089호",
        "주소: 경기도 성남시 분당구 판교역로 166",
    ],
)
def test_chinese_and_korean_addresses(scanner: Scanner, text: str) -> None:
    assert "street-address-cjk" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Flat 12, Lotus Residency, 4th Main, Jayanagar\nBengaluru, Karnataka 560041", "india"),
        ("House No. 7, Sector 21, Gurugram, Haryana 122016", "india"),
        ("C-14, Green Park Extension\nNew Delhi, Delhi 110016", "india"),
        ("new address: Ravi Iyer, Flat 12, Lake View, HSR Layout, Bengaluru 560102", "india"),
        ("Moda Mah. Bahariye Cad. No:12 D:4\n34710 Kadıköy/İstanbul", "turkey"),
        ("Kızılay Mah. Atatürk Blv. No: 88, 06420 Çankaya/Ankara", "turkey"),
        ("Rua Oscar Freire, 379, ap 52\nSão Paulo - SP, 01426-001", "more"),  # CEP a line on
        ("Novo endereço: Rua de Cedofeita 212, 4050-174 Porto", "more"),  # Portugal
        ("Адрес: г. Новосибирск, ул. Мира, д. 116, кв. 112.", "ru"),
        ("м. Київ, вул. Хрещатик, буд. 22, кв. 5", "ru"),
        ("Avenida da Liberdade 110, 1269-046 Lisboa", "more"),
    ],
)
def test_addresses_in_indian_turkish_brazilian_and_russian_layouts(
    scanner: Scanner, text: str, rule: str
) -> None:
    assert f"street-address-{rule}" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "We serve 12 cities in Karnataka 560041 pincodes",  # no street line
        "We ship 5, to Mumbai 400001 and Pune 411001",  # a count, not a house number
        "Version 2, then Haryana 122016",
        "Moda Mah. is a nice place, 34710 visitors",  # no door number
        "Rua Augusta is busy\nOrder 12345-678 shipped",  # no house number, no state
        "Rua Augusta 12 closed\nOrder 12345-678",
        "Rua Augusta is nice, 1100-048 Lisboa",  # no door number
        "ул. Мира — длинная улица, д. 5 там",  # no city
    ],
)
def test_what_has_only_part_of_those_layouts_is_no_address(scanner: Scanner, text: str) -> None:
    assert not pii_rules(scanner, text) & {
        "street-address-india",
        "street-address-turkey",
        "street-address-more",
        "street-address-ru",
    }


@pytest.mark.parametrize(
    "text",
    [
        "上海是一个城市，区里有很多路",
        "第3号文件已发送",
        "4号线到上海市",
        "서울에 가고 싶다 도 좋아요",
    ],
)
def test_a_city_or_a_number_alone_is_no_chinese_or_korean_address(
    scanner: Scanner, text: str
) -> None:
    assert not pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    ["Im Jahr 2023 12345 Fälle", "Im Jahr 2022, 15000 Menschen", "Am Montag 3 10000 Schritte"],
)
def test_a_preposition_a_word_and_numbers_are_no_german_address(
    scanner: Scanner, text: str
) -> None:
    assert "street-address" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "meet at 42 Main St tomorrow",  # a street with no postcode: a place named in prose
        "42 Main St    Springfield    USA    2024",  # a table's street, no state, no ZIP
        "Street Fighter 2 sold 12345 copies",
        "see RFC 1234 Section 5, CA 12345",
        "version 3 Drive, TX 12345",
        "order 42 shipped from the warehouse, SKU AB 12345",
        "we walked down Via Roma 12 yesterday",  # a street in prose, in each new layout
        "Calle Mayor 5 en Madrid",
        "Keizersgracht 123 in Amsterdam",
        "Drottninggatan 53 is busy on Saturdays",
        "ul. Marszałkowska 1 is a long street",
        "the postcodes 00184, 1015 CJ, 111 21 and 00-950",  # postcodes alone
        "via the API 3, 20121 Requests",  # a street type's word in prose
        "Boarding gate 12, 1234 Passengers waited",  # gate, no name's s before it
        "released May 5, 2024 Worldwide",
        "version 1.2, 00-950 Warszawa",
    ],
)
def test_a_street_or_a_postcode_alone_is_no_address(scanner: Scanner, text: str) -> None:
    assert "street-address" not in pii_rules(scanner, text)


def test_published_test_cards_are_a_listed_decision() -> None:
    assert "4242424242424242" in pii.not_personal()["test_cards"]
    assert not pii.card_number("4242 4242 4242 4242")


@pytest.mark.parametrize(
    "text",
    [
        "mailto:jane.doe@gmail.com",
        '<a href="mailto:priya.lee@gmail.com">Email me</a>',
        "[write](MAILTO:priya.lee@gmail.com)",
    ],
)
def test_an_address_after_the_mailto_scheme_is_found(scanner: Scanner, text: str) -> None:
    assert "email-address" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Kontakt: jürgen.müller@müller-family.de", "jürgen.müller@müller-family.de"),
        ("Schreib an jürgen@posteo.de bitte", "jürgen@posteo.de"),
        ("連絡先: 山田@例え.jp", "山田@例え.jp"),
        ("почта: иван@почта.рф", "иван@почта.рф"),
    ],
)
def test_an_address_with_letters_outside_ascii_is_found_whole(
    scanner: Scanner, text: str, address: str
) -> None:
    assert [text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"] == [address]


def test_a_short_name_or_domain_of_one_letter_is_still_an_address(scanner: Scanner) -> None:
    """Only a run of one letter, three or more (a mask's xxxxxxxx@yyyyy.com), is no one's."""
    assert pii_rules(scanner, "mail jiahui.wen@qq.com or j@acme-mail.de") == {"email-address"}


def test_an_at_sign_among_words_outside_ascii_is_no_address(scanner: Scanner) -> None:
    assert not pii_rules(scanner, "Café@ ist zu, müller@ kommt später, 価格@100円")


@pytest.mark.parametrize(
    "text",
    [
        "GET /unsubscribe?email=sofia.wright%40web.de HTTP/1.1",
        "https://crm.acme.io/search?q=lena.kowalski%40gmail.com&page=2",
    ],
)
def test_an_address_with_its_at_sign_encoded_in_a_url_is_found(scanner: Scanner, text: str) -> None:
    assert "email-address" in pii_rules(scanner, text)


def test_an_encoded_address_of_a_service_mailbox_is_no_one(scanner: Scanner) -> None:
    assert not pii_rules(scanner, "POST /notify?to=noreply%40github.com")


def test_an_escapes_letter_starts_no_address(scanner: Scanner) -> None:
    """In a JSON string, `\\nsupport@` is a line break, then a role's mailbox: the reading
    with the escapes read judges the address itself."""
    assert not pii_rules(scanner, '"body": "Thanks\\n--\\nSupport Team\\nsupport@northpass.cloud"')
    text = '"body": "Thanks\\n--\\nJane\\njane.doe@gmail.com"'
    found = [f for f in scanner.scan(text) if f.rule_id == "email-address"]
    assert [text[slice(*f.span)] for f in found] == ["jane.doe@gmail.com"]


@pytest.mark.parametrize(
    "text",
    [
        "C:\\Users\\jsmith\\Outlook\\john.smith@contoso.com.ost",  # a Windows path
        "login as CORP\\maria.gonzalez@corp-mail.com",
        '{"path": "C:\\\\Users\\\\maria.gonzalez@corp-mail.com"}',  # the same, in JSON
        "cc=$Maria.Gonzalez@globalmail.net",  # a $, then a capital and lower case: a name
        "reach maria.ops@gmail.com or anna.team@outlook.com",  # a person's, not a team's
    ],
)
def test_an_address_after_a_backslash_or_a_dollar_is_read(scanner: Scanner, text: str) -> None:
    """Review 29: only an escape's letter (n, r, t) after a backslash, and a variable's
    capitals after a $, start no address."""
    assert {"email-address", "email-address-intl"} & pii_rules(scanner, text)


def test_an_address_outside_ascii_after_a_backslash_is_read_whole(scanner: Scanner) -> None:
    text = "CORP\\jürgen.müller@beispiel.de"
    assert [text[slice(*f.span)] for f in scanner.scan(text)] == ["jürgen.müller@beispiel.de"]


def test_a_mail_id_is_no_address_in_either_rule(scanner: Scanner) -> None:
    text = "Subject: Re: Tracking — missing\nMessage-ID: <9a390d2d-6402@mail.parcelry.com>\n"
    assert not pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [  # a vCard's property, its parameters before the colon; a log's label with no blank
        "BEGIN:VCARD\nFN:Lena Fischer\nEMAIL;TYPE=INTERNET,HOME:l.fischer@t-online.de\nEND:VCARD",
        "EMAIL:l.fischer@t-online.de",
        "user=ana Email:ana.silva@studio.com.br status=ok",
    ],
)
def test_an_address_right_after_an_email_property_is_read(scanner: Scanner, text: str) -> None:
    assert "email-address" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [  # a service account's, rooms', an on-call rota's, a DPO's, DMARC's
        "UserPrincipalName    : svc-sql01@auroraretail.fi",
        "Larkspur Fjord,Room,8,room-fjord@larkspur-analytics.co.uk",
        "To: sre-oncall@pampaslog.com.br",
        "alias ap Accounts Payable <accounts-payable@kestrelfreight.nl>",
        "rua=mailto:dmarc-reports@nordlys.no",
        '"owner": "dpo@desertrose.ae"',
        "From: it-security@maisonverdier.fr",
        "ATTENDEE;CUTYPE=ROOM:mailto:c_94e0ec11cb375e2e41e63682@resource.calendar.google.com",
    ],
)
def test_a_service_a_room_or_a_role_has_no_ones_mailbox(scanner: Scanner, text: str) -> None:
    assert not pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [  # review 32: a + tag or a household's team is a person's still; an `email;` channel
        # list reads no address from its colon to a later one
        "jane.doe+bank-security@gmail.com",
        "maria.rossi+tax-reports@gmail.com",
        "team.maria@gmail.com",
        "team-schmidt@t-online.de",
        "alert route=email;pager to=maria.rossi@gmail.com escalate:oncall@corp.com",
    ],
)
def test_a_persons_address_with_a_roles_word_in_it_is_one(scanner: Scanner, text: str) -> None:
    assert "email-address" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "To: Tallgrass Logistics IT <it-admin@tallgrasslogistics.com>",
        "Questions: benefits@fernhill.app or the benefits line",
        "cc platform-team@acme.io and payroll@acme.io",
    ],
)
def test_a_companys_departments_mailboxes_are_no_ones(scanner: Scanner, text: str) -> None:
    assert not pii_rules(scanner, text)


def test_a_variable_before_a_urls_host_is_no_address(scanner: Scanner) -> None:
    text = "git clone https://x-access-token:$RELEASE_BOT_TOKEN@github.com/acme/proto.git"
    assert not pii_rules(scanner, text)
    assert not pii_rules(scanner, "curl https://ci:$${CI_PASS}@ci.acme.io/x")
    assert "email-address" in pii_rules(scanner, "mail $5 to ana.silva@studio.com.br")
    # a person's address after a $ is one still, and whole (review 28)
    assert "email-address" in pii_rules(scanner, "owner=$maria.gonzalez@globalmail.net")
    text = "Rückfragen an $jürgen.müller@beispiel.de"
    assert [text[slice(*f.span)] for f in scanner.scan(text)] == ["jürgen.müller@beispiel.de"]


def test_a_persons_aws_session_named_by_their_address_is_read(scanner: Scanner) -> None:
    """What `aws sts get-caller-identity` and CloudTrail print for an SSO user: the session
    is named by the person's address, after the role id's `:` and the ARN's `/`."""
    text = (
        '"UserId": "AROAYSNTDIKST6UFCHJK4:marcus.okafor@lumenhq.com",\n"Arn": "arn:aws:sts::'
        '996578560006:assumed-role/AWSReservedSSO_PowerUser_9ce4591306/ana.silva@lumenhq.com"'
    )
    found = [text[slice(*f.span)] for f in scanner.scan(text) if f.rule_id == "email-address"]
    assert found == ["marcus.okafor@lumenhq.com", "ana.silva@lumenhq.com"]
    # a machine's session, and a URL's user after `//` or `:`, are no one's
    assert not pii_rules(scanner, "assumed-role/DeployRole/botocore-session-1720413069")
    assert not pii_rules(scanner, "git clone ssh://git@github.com/acme/x.git")
    assert not pii_rules(scanner, "remote: git:deploy@gitlab.com:acme/x.git")


def test_an_image_named_for_its_pixel_density_is_no_address(scanner: Scanner) -> None:
    text = "src: icon@2x.png, url(hero@3x.jpg), logo@1.5x.webp, sprite@2x.SVG"
    assert not pii_rules(scanner, text)
    assert "email-address" in pii_rules(scanner, "icons by ana@studio.png.com.br")


@pytest.mark.parametrize(
    "text",
    [
        "contact: jane.doe@example.com",
        "Reply-To: <Ops.Lead@EXAMPLE.ORG>",
        "user = alice@mail.example.net",
        "git config user.email dev@build.test",
        "ping root@db.localhost, then bob@host.invalid",
        "to: priya@shop.example",
        "Connect-ExchangeOnline -UserPrincipalName testuser01@contoso.com",  # Microsoft's docs
        "j.smith@fabrikam.onmicrosoft.com",
        "[802-1x]\neap=peap;\nidentity=anonymous@eduroam.uni-x.de\n",  # an outer identity
    ],
)
def test_addresses_at_names_reserved_for_examples_are_no_one(scanner: Scanner, text: str) -> None:
    """The decision in rules.toml: RFC 2606's and RFC 6761's names are never delegated."""
    assert "email-address" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "address",
    [
        *("jane.doe@examples.com", "jane.doe@example.co.uk", "jane.doe@test.com"),
        *("jane@mytest.io", "jane.doe@contosobank.com", "anonymous.bob@uni-x.de"),
    ],
)
def test_addresses_at_real_domains_near_the_reserved_ones_are_found(
    scanner: Scanner, address: str
) -> None:
    assert "email-address" in pii_rules(scanner, f"contact: {address}")


def test_punycode_domains_are_addresses(scanner: Scanner) -> None:
    assert "email-address" in pii_rules(scanner, "write to olga@xn--e1afmkfd.xn--p1ai soon")


@pytest.mark.parametrize(
    "text",
    [
        "Call our support line 1-800-306-8077 (Mon-Fri 9-5 ET)",
        "orders: (888) 306-8077",
        "+1 877 306 8077",
        "phone: 1-866-306-8077",
        "Freephone 0800 123 4567",
        "Tel. 0800 157 0192",
    ],
)
def test_freephone_numbers_are_a_business_line(scanner: Scanner, text: str) -> None:
    """The decision in rules.toml: a toll-free number reaches a business, not a person."""
    assert not pii_rules(scanner, text)
    elsewhere = text.replace("8", "4").replace("0800", "0400")
    assert pii_rules(scanner, elsewhere)  # the same digits in an ordinary area code


@pytest.mark.parametrize(
    "text",
    [
        "Contact Li Wei at 18661234567 for the keys.",  # China Unicom: 186, run together
        "Tanaka-san's mobile is 080-8123-4567.",  # Japan: 080
        "Phone: 0808 123 4567",  # Nigeria: 0808 is a mobile's prefix
    ],
)
def test_mobiles_that_share_digits_with_freephone_numbers(scanner: Scanner, text: str) -> None:
    assert pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "ISBN 978-0-947-78912-2; ISBN-10 0-863-15243-X",
        "+2024-04-02T11:14:09.412Z INFO  [main] Tomcat started on port 8080",  # a diff's line
        "List-Unsubscribe: <mailto:unsubscribe@lists.acme-shop.com>",
        "Return-Path: <bounces@mailer.acme-shop.com>",
    ],
)
def test_numbers_and_mailboxes_that_reach_no_one(scanner: Scanner, text: str) -> None:
    assert not pii_rules(scanner, text)


def test_ip_addresses_are_not_claimed_as_personal_data(scanner: Scanner) -> None:
    """The decision in rules.toml: private ranges are internal, the rest not reported."""
    assert not pii_rules(scanner, "from 203.0.113.7 and 2001:db8::1 via 8.8.8.8")
    assert {f.category for f in scanner.scan("from 10.4.2.7")} == {"internal"}


def test_the_bban_layouts_judge_every_country_as_stdnum_does() -> None:
    """pii.iban reads stdnum's registry once instead of asking stdnum per candidate: for
    every registered country, BBANs in its layout, one character off it, and in lower case
    get stdnum's answer."""
    import random  # noqa: PLC0415
    import string  # noqa: PLC0415

    from stdnum import iban as stdnum_iban  # noqa: PLC0415

    pools = {"[0-9]": string.digits, "[A-Z]": string.ascii_uppercase}
    pools["[A-Za-z0-9]"] = string.ascii_letters + string.digits
    layouts = pii.bban_layouts()
    assert len(layouts) > 80
    rng = random.Random(13)
    checked = 0
    for country, layout in layouts.items():
        parts = [part.rsplit("{", 1) for part in layout.pattern.split("}")[:-1]]
        for _ in range(20):
            bban = "".join("".join(rng.choice(pools[c]) for _ in range(int(n))) for c, n in parts)
            off = rng.randrange(len(bban))
            for candidate in (bban, bban[:off] + rng.choice("A0") + bban[off + 1 :]):
                iban = with_check_digits(country, candidate.upper())
                for written in (iban, iban.lower()):
                    expected = stdnum_iban.is_valid(written, check_country=False)
                    assert pii.iban(written) == expected, written
                    checked += expected
    assert checked > 2000  # most of them are IBANs: the layouts were exercised


# Identity and document numbers after the label that names them. The numbers are made up;
# those with a checksum (NHS, SIN, PESEL, DNI, Steuer-ID) were given valid check digits, so
# that no test leans on the rule not testing them.
@pytest.mark.parametrize(
    "text",
    [
        "Passport No: C01X00T47, expires 2031",
        "passport number 533380006",
        "Reisepass Nr. C01X00T47",
        "driver's license D123-4567-8901",
        "Driving licence: MORGA753116SM9IJ",
        "NHS number 943 476 5919.",
        "UK National Insurance number QQ 12 34 56 C",
        "My SIN is 130 454 283",
        "Aadhaar: 2341 2345 6783",
        "DNI 12345678Z",
        "PESEL 44051401359",
        "Steuer-ID 65 929 970 489",
        "<dest><CPF>39518720479</CPF><xNome>Ana Souza</xNome></dest>",  # an NF-e's element
        '<cbc:ID schemeID="TCKN">10000000146</cbc:ID>',  # a UBL e-invoice's
        "BVN: 22123456789",
        "CNIC: 3420108912318",
        "MyKad: 770305-02-1234",  # Malaysia's: no check digit, so only under its label
        "Medicare number 2123 45670 1",
        "BSN: 111222333",
        '{"passport": "533380006"}',  # the label as a quoted key
        "NI number: QQ123456C",
        "Reisepassnummer: C01X00T47",  # a German compound of the document's name
        "Personalausweisnummer L01X00T47",
        "Medicare card 2123 45670 1",
        "NRIC S1234567D",
        "DL# U1083735",
        '{"cpf": "184.943.005-55"}',  # an acronym in lower case, as a key
        "dni=12345678Z",
        '{"social_insurance_number": "130 454 283"}',  # a label's words as a snake_case key
        '{"aadhaar_no": "2341 2345 6783"}',
        "passportNumber: C01X00T47",
        "passport: 'C01X00T47'",
        "codice_fiscale=RSSMRA84C12H501Z",
        "ni_number=LN621635B",  # the NI number's label as a key
        '{"ni_no": "LN621635B"}',
        "le numéro de sécurité sociale est 2 86 11 67 282 815 07.",  # France's NIR, 7 groups
        "Sécurité sociale : 1 84 12 75 108 045 36",
        "müşterinin T.C. kimlik numarası 63769443440, e-fatura",  # Turkish: "its number"
        "klant met rijksregisternummer 53.11.20-018.87 kan niet inloggen",
        "Verifikasi e-KTP gagal, NIK 5186272107825599.",
        "Khách hàng, số CCCD 048190144661, không xác thực",
        "uploaded Emirates ID 784-1966-2015144-7 but",
        "Versicherter, SV-Nummer 9570 270652, wird abgelehnt",
        "El cliente, RUT 12.161.268-2, no puede emitir boleta",
        "Yolcu Emre Demir, pasaport no U11582826, check-in",
        "Le conducteur, numéro de permis 793392080611, n'est pas reconnu",
        "Kierowca, numer prawa jazdy 39920/98/5834, nie przechodzi",
        "Самозанятый, ИНН 827379834387, чек не регистрируется",
        "ФОП Ірина, РНОКПП 3170774551, податкова не приймає",
        "Self-assessment: UTR 70527 88510.",
        "Factura CFDI rechazada, RFC AYAZ81040860F.",
        "PAN: ZDGPP7887D",  # India's PAN: four digits, in its own layout
        "PAN number is ABCPE1234F",
        "Führerscheinnummer B742EPC6T81",  # the label's German "Nummer"
        # the verb that joins a label to its number: Polish "to", French "c'est", German
        # "lautet"
        "mój PESEL to 68070154294, proszę poprawić",
        "mon NIR c\u2019est 1 71 12 62 788 537 09, merci",
        "Die Steuer-ID lautet 12 345 678 903.",
        # and more labels: Polish passports, German pension insurance, France's and Brazil's
        # health cards by their common names, a KVNR as a key
        "Imię i nazwisko: Katarzyna Wójcik\nnr paszportu: EC6927445",
        "Sabine Richter hat als Rentenversicherungsnummer 53031071R639 angegeben.",
        "Chloé Chevalier nous a transmis ses infos : n° de sécu : 280067121822306.",
        "meu cartão do SUS é 993 4421 3357 6286",
        '{"name": "Katharina Klein", "kvnr": "S113153314"}',
    ],
)
def test_labelled_identity_numbers(scanner: Scanner, text: str) -> None:
    assert "identity-number" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "passport number 123456789",  # counted out: nobody's
        "passport number 000000000",
        "national identity 2024 REPORT",  # a year and a word
        "driving license 2020-2024 renewal",  # a span of years
        "passport issued 12.03.2019",  # a date
        "passport photo 2x2",
        "the PAN is masked",
        "CPR 30 compressions",
        "tax id lookup TAXID2023",
        "using pandas 2.1.4 with the NHS API",
        "identity document V2 spec",
        "DL 5000000 items",  # DL counts as a label only with # or "no."
        "the NI number is required",
        "sin = 0.84",  # an acronym in lower case is a key only before : or =, and a number
        "the pan is hot, 12345 degrees",
        "PAN: ABCDE1234",  # no check letter: not a PAN, and four digits say no other id
        "la sécurité sociale est un droit, 2024 REPORT",
        "see RFC 7231 and RFC 2616",  # an RFC's number: four digits
        "the UTR 2024 report",
        "send your passport to 12 Main Street",
        # "to" joins a label to its number in Polish only, after a Polish label
        "Forward the passport to 90210",
        "The plan grows the NHS to 150000 nurses",
        "we extended health insurance to 30472 employees",
        "Customer: M. U. T***\nCNIC: 35202-*******-9\nAccount: ****3851",  # masked after 5
    ],
)
def test_what_follows_an_identity_label_without_being_a_number(scanner: Scanner, text: str) -> None:
    assert "identity-number" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "身份证号码：34052419800101001X",
        "เลขประจำตัวประชาชน 3100600445635",  # Thai: "citizen identification number"
        "我的身份证号是340524198001010015，谢谢",
        "マイナンバー: 4827 3916 0452",
        "個人番号は482739160452です",
        "주민등록번호는 900101-1234567입니다",
        "номер паспорта: 4509 837261",
        "СНИЛС 112-233-445 95",
        "מספר זהות: 038472615",
        "numéro de sécurité sociale : 1 84 12 76 451 089 46",
        "henkilötunnus 131052-308T",
        "número de pasaporte: PAB482716",
        "rodné číslo 736028/5163",
        "rodne cislo 736028/5163",
        "numero d'identification : 8273645190",
        "ΑΦΜ 094817263",
        "العميل رقم الهوية الوطنية 1951355047 لا يستطيع إكمال التسجيل",  # "national" after it
        "رقم الإقامة: 2456789012",  # a Saudi resident's
    ],
)
def test_identity_numbers_labelled_in_other_scripts(scanner: Scanner, text: str) -> None:
    assert "identity-number-translated" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "длинный список из 12 пунктов",  # инн inside a word, and no number
        "паспорт готов к выдаче 15 мая",
        "身份证过期了，怎么办",
        "パスポート番号を入力してください",
        "numéro national de téléphone 2024",
        "número de documento: ver anexo",
        "ИНН 7707083893 КПП 770701001",  # a company's tax number, atop every Russian invoice
    ],
)
def test_an_identity_label_in_another_script_without_a_number(scanner: Scanner, text: str) -> None:
    assert "identity-number-translated" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "生年月日：1987年3月14日",
        "出生日期: 1987-03-14",
        "생년월일은 1987년 3월 14일입니다",
        "дата рождения: 14.03.1987",
        "Doğum tarihi: 14.03.1987",
        "ngày sinh 14/03/1987",
        "תאריך לידה: 14.03.1987",
        "鈴木 陽子様の生年月日（1960年6月8日）で合っていますか？",  # in brackets
    ],
)
def test_dates_of_birth_labelled_in_other_scripts(scanner: Scanner, text: str) -> None:
    assert "date-of-birth-translated" in pii_rules(scanner, text)


@pytest.mark.parametrize("text", ["誕生日は2024年のいつですか", "дата рождения неизвестна"])
def test_a_birth_label_in_another_script_without_a_date(scanner: Scanner, text: str) -> None:
    assert not pii_rules(scanner, text)


# ICAO Doc 9303's specimens, moved from Utopia (UTO) to Germany: real check digits
PASSPORT_MRZ = (
    "P<DEUERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36DEU7408122F1204159ZE184226B<<<<<10"
)
CARD_MRZ = (
    "I<DEUD231458907<<<<<<<<<<<<<<<\n7408122F1204159DEU<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)


@pytest.mark.parametrize(
    "text",
    [
        PASSPORT_MRZ,
        CARD_MRZ,
        f"scan result:\n  {PASSPORT_MRZ}\n",
        # a KYC tool's JSON: the zone is a string, its lines escaped
        f'{{\n  "type": "ID",\n  "raw_text": {json.dumps(CARD_MRZ)},\n  "valid_score": 100\n}}',
        f"mrz = {json.dumps(PASSPORT_MRZ)}",
        "document:\n  mrz: '{}'\n".format(CARD_MRZ.replace("\n", "\n    ")),  # YAML's lines
        # one-line JSON, a member after it, nested, in an array; a Python dict; JavaScript
        json.dumps({"mrz": PASSPORT_MRZ}),
        json.dumps({"mrz": CARD_MRZ, "valid": True}),
        json.dumps({"document": {"mrz": PASSPORT_MRZ}}),
        json.dumps([PASSPORT_MRZ, CARD_MRZ]),
        f"{{'mrz': {PASSPORT_MRZ!r}, 'ok': True}}",
        f"const mrz = {json.dumps(CARD_MRZ)};",
        # its lines on one line, in a CSV's cell (an onboarding tracker's)
        "Worker,Document,MRZ\nW289217,Passport," + PASSPORT_MRZ.replace("\n", " / "),
        "mrz: " + CARD_MRZ.replace("\n", " | "),
        PASSPORT_MRZ.replace("\n", " "),
    ],
)
def test_a_machine_readable_zone_is_an_identity_document(scanner: Scanner, text: str) -> None:
    assert "passport-mrz" in pii_rules(scanner, text)


@pytest.mark.parametrize("mrz", [PASSPORT_MRZ, CARD_MRZ])
def test_a_machine_readable_zones_finding_holds_the_holders_name(
    scanner: Scanner, mrz: str
) -> None:
    """The name's line is inside the finding, so that a redaction hides it too."""
    (finding,) = [f for f in scanner.scan(mrz) if f.rule_id == "passport-mrz"]
    assert mrz[finding.span[0] : finding.span[1]] == mrz


@pytest.mark.parametrize(
    "text",
    [
        PASSPORT_MRZ.replace("DEU", "UTO"),  # ICAO's own specimen: Utopia issues no one
        CARD_MRZ.replace("DEU", "UTO"),
        PASSPORT_MRZ.replace("7408122", "7408123"),  # a check digit that disagrees
        "std::cout << name << std::endl;",
    ],
)
def test_what_only_looks_like_a_machine_readable_zone(scanner: Scanner, text: str) -> None:
    assert "passport-mrz" not in pii_rules(scanner, text)


PASSPORT_LINE = PASSPORT_MRZ.split("\n")[1]
CARD_LINE = CARD_MRZ.split("\n")[1]


@pytest.mark.parametrize(
    "text",
    [
        f"Worker;Doc;MRZ2\nW289217;P;{PASSPORT_LINE}\n",  # a CSV's cell, the name line apart
        f'{{"ocr": {{"line1": "P<DEU...", "line2": "{PASSPORT_LINE}"}}}}',
        f"FTX+AAE+++{PASSPORT_MRZ.replace(chr(10), '')}'",  # EDIFACT: the lines run together
        f'mrz = (\n    "I<DEUD231458907<<<<<<<<<<<<<<<\\n"\n    "{CARD_LINE}\\n"\n)',
        # a visa (MRV-A): no composite digit; its optional data is the visa's number
        "V<USAERIKSSON<<ANNA<<<<<<<<<<<<<<<<<<<<<<<<<\nL898902C36DEU7408122F1204159B3RT4W2P<<<<<<<<",
    ],
)
def test_a_machine_readable_zones_second_line_alone_is_an_identity_document(
    scanner: Scanner, text: str
) -> None:
    assert pii_rules(scanner, text) & {"passport-mrz", "passport-mrz-line"}


@pytest.mark.parametrize(
    "text",
    [
        PASSPORT_LINE.replace("DEU", "UTO"),
        PASSPORT_LINE.replace("7408122", "7408123"),  # the date of birth's check digit
        PASSPORT_LINE[:-1] + "7",  # the composite's
        CARD_LINE.replace("1204159", "1204158"),
        "build 1234567M1234567 ok",  # the shape's middle only
    ],
)
def test_what_only_looks_like_a_second_mrz_line(scanner: Scanner, text: str) -> None:
    assert "passport-mrz-line" not in pii_rules(scanner, text)


# A card number the issuers' table and Luhn accept, and no processor's test number.
CARD = "4086222662241479"


@pytest.mark.parametrize(
    "text",
    [
        f"%B{CARD}^ACHTERBERG/FENNA N^26052014595632881490908?",  # track 1
        f"track2=;{CARD}=26052011234567890?",
        f"ICC: 5A08{CARD}5F24032608319F2608F009101E18D37D8",  # EMV tag 5A
        f"57 13: 5713{CARD}D26052011234567890F",  # tag 57, track 2's equivalent
    ],
)
def test_a_cards_track_data_is_the_card(scanner: Scanner, text: str) -> None:
    assert pii_rules(scanner, text) & {"card-track-data", "credit-card"}


@pytest.mark.parametrize(
    "text",
    [
        "%B4111111111111111^TEST/CARD^2512101?",  # a processor's test number
        f"%B{CARD[:-1]}8^X/Y^2605?",  # Luhn fails
        "5A08" + "0123456789abcdef" * 2,
    ],
)
def test_what_only_looks_like_a_cards_track_data(scanner: Scanner, text: str) -> None:
    assert "card-track-data" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "@\n\x1e\rANSI 636023100102DL00410263ZO03130027DLDCAC\nDCSSZYMANSKI\nDACFENNA\n"
        "DBB04211991\nDAQSZ151854\nDCFLDM3RGO7J41K69QB0SDY\n",
        "2025-01-13,5dd2580d,DAQ=C6376894024011,DCS=FITZGERALD,DAC=DECLAN,DBB=02041977",
        '{"raw": "@\\nANSI 636025...DL\\nDAQ01604817\\nDCSMILLER\\n"}',  # JSON-escaped
        "DL scan: DCS=SMITH|DAC=JO|DAQ=35-645-3323|DBB=01021980",
        # the standard's layout: DAQ first in its subfile, right after the subfile's type
        "@\n\x1e\rANSI 636014080102DL00410278ZC03190024DLDAQS81740522\nDCSHALE\nDDEN\n",
    ],
)
def test_a_driving_licences_barcode_gives_its_number(scanner: Scanner, text: str) -> None:
    assert "aamva-licence-number" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-10,938b0dc6,DAQ=****9454,DCS=[redacted],DBB=[redacted]",  # masked
        "NI DAQmx: DAQ board ready\nDevice: Dev1",  # National Instruments' DAQ
        "DAQ1 USB-6009 ok\nDAQ2 USB-6211 ok\n",  # a list of data-acquisition boards
        # the standard's own example, and a test generator's zeros
        "@\n\x1e\rANSI 636000100002DL00410278ZV03190008DLDAQT64235789\nDCSSAMPLE\nDDEN\n",
        "ANSI 636000100002DL00410200DLDAQ000000000\nDCSDOE\nDACJANE\n",
    ],
)
def test_what_only_looks_like_a_driving_licences_barcode(scanner: Scanner, text: str) -> None:
    assert "aamva-licence-number" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "MICR: \u2446270094451\u24465808599214\u24482051",  # E-13B's own symbols
        "MICR: \u24487573\u2448 \u2446310338938\u2446 3396920329\u2448",
        'micr_raw="C0435C A065781885A 455939285C"',  # a scanner's ASCII for them
        "codeline: T011000015T 55494059457U",
    ],
)
def test_a_cheques_micr_line_gives_the_account(scanner: Scanner, text: str) -> None:
    assert "micr-account" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "MICR: \u2446270094452\u24465808599214\u2448",  # the routing checksum fails
        "MICR: \u2446270094451\u244612345678\u2448",  # an account counted out
        "part A123456789A 4455C",  # no routing number: its checksum fails
    ],
)
def test_what_only_looks_like_a_micr_line(scanner: Scanner, text: str) -> None:
    assert "micr-account" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        f"# grep -aoE '[0-9]{{16}}' pos.dmp | uniq -c\n      3 tok_9v2uq3cd\n      1 {CARD}\n",
        "qty 2 4553 3603 6186 3104 exp 05/26",
    ],
)
def test_a_card_number_after_a_count_is_found(scanner: Scanner, text: str) -> None:
    assert "credit-card" in pii_rules(scanner, text)


def test_digits_in_pairs_are_no_card(scanner: Scanner) -> None:
    """A hex dump's ASCII digits (0x30-0x39) print as pairs: no card is written so."""
    dump = "0000  40 0a 1e 0d 41 4e 53 49 20 36 33 36 30 32 36 31\n0010  30 30 31 30 32 44 4c 30"
    assert "credit-card" not in pii_rules(scanner, dump)
    assert "credit-card" not in pii_rules(scanner, "53 49 20 36 33 36 30 32 36")
    assert "credit-card" not in pii_rules(scanner, "45 53 36 03 61 86 31 04")  # Luhn holds


# Each national id in its written form, by python-stdnum's own examples (their check digits
# hold), with the rule that claims it.
NATIONAL_IDS = [
    ("mexican-curp", "BOXW310820HNERXN09"),
    ("mexican-rfc", "GODE561231GR8"),
    ("thai-citizen-id", "3-1006-00445-63-5"),
    ("pakistani-cnic", "34201-0891231-8"),
    ("argentine-cuit", "20-05536168-2"),
    ("indian-pan", "ACUPA7085R"),
    ("emirates-id", "784-1990-1234567-6"),
]


@pytest.mark.parametrize(("rule", "number"), NATIONAL_IDS)
def test_a_national_id_in_its_written_form_is_found_without_a_label(
    scanner: Scanner, rule: str, number: str
) -> None:
    # one real number among masked ones, in a log line or a CSV's cell
    text = f"2025-03-02 kyc ok ref=****1234\n2025-03-02 kyc ok ref={number} status=OK\n"
    assert rule in pii_rules(scanner, text)
    assert rule in pii_rules(scanner, f"id,holder\n7,{number}\n")


@pytest.mark.parametrize("number", ["MUÑO800101AB3", "ROD&800101AB7"])  # SAT's Ñ and &
def test_a_mexican_rfc_in_sats_whole_alphabet(scanner: Scanner, number: str) -> None:
    assert "mexican-rfc" in pii_rules(scanner, f"cliente {number} alta")


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("mexican-rfc", "Receptor Rfc=XAXX010101000 (público en general)"),  # SAT's generic
        ("mexican-rfc", "Emisor Rfc=WMT970714R10"),  # a company's: 12 characters
        ("pakistani-cnic", "CNIC format: 12345-1234567-1"),  # a form's example
        ("argentine-cuit", "CUIT 30-50001091-2"),  # a company's prefix
        ("indian-pan", "PAN AAACR5055K"),  # a company's: the fourth letter is C
        ("thai-citizen-id", "ref 3-1006-00445-63-4"),  # the check digit fails
        ("emirates-id", "784-1990-1234567-5"),
        ("mexican-curp", "BOXW310820HNERXN08"),
        ("mexican-rfc", "GODE561231GR9"),  # the homoclave's check digit fails
    ],
)
def test_what_only_looks_like_a_national_id(scanner: Scanner, rule: str, text: str) -> None:
    assert rule not in pii_rules(scanner, text)


def test_an_ofx_statements_account_id_is_the_account(scanner: Scanner) -> None:
    ofx = "<BANKACCTFROM><BANKID>043214099<ACCTID>3659671449<ACCTTYPE>CHECKING</BANKACCTFROM>"
    assert "ofx-account-id" in pii_rules(scanner, ofx)
    assert "ofx-account-id" not in pii_rules(scanner, ofx.replace("3659671449", "XXXXXX1449"))


@pytest.mark.parametrize(
    "text",
    [
        "Sofia Bianchi\n17 Washington Ave, Apt 20\nSpringfield, IL 62704\n",
        "Ship to:\nSven Tanaka\nFlat 11, 51 Mill Lane\nBristol BS8 1QU",
        "Ship to:\nWei Garcia\nGoethestraße 36\n80331 München",
        "Ship to:\nSean Tanaka\n169 King St W, Unit 261\nToronto, ON M5V 2T6",
        "12 rue de la Paix\n75002 Paris",
    ],
)
def test_an_address_on_an_envelopes_lines_is_an_address(scanner: Scanner, text: str) -> None:
    assert "street-address" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "my home address: 〒580-1121 神奈川県横浜市中区5-10-13",
        "〒530-0001 大阪市北区梅田1-1-1",  # a city's name, no prefecture
        '"address": "Rua da Consolação, 1000, São Paulo - SP, 01302-000"',
        "send it to Unit 30/5 George St, South Yarra VIC 3141",
        "12 Smith Street\nFitzroy VIC 3065",
        '{"address": "Rua Oscar Freire, 215, apto 51, São Paulo - SP, 01305-000"}',
    ],
)
def test_japanese_australian_and_brazilian_addresses(scanner: Scanner, text: str) -> None:
    assert "street-address-more" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "The SA 2024 report",
        "order 12345-678 shipped",
        "〒マークは郵便番号を示す",
        "WA 6000 is the Perth CBD postcode",
        "12 Smith Street\nAdelaide SA 2024",  # a year: South Australia's codes are 5000-5999
        "Rua Augusta is nice in May",
    ],
)
def test_a_postcode_or_a_street_alone_in_those_layouts(scanner: Scanner, text: str) -> None:
    assert "street-address-more" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text", ["Meet at 5 Main Street\nThen call me", "Version 12 Build Lane\nOK 12345"]
)
def test_a_street_then_another_line_is_no_address(scanner: Scanner, text: str) -> None:
    assert "street-address" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "name,BSN\nMei Haddad,395414581",
        "name,henkilötunnus\nPriya Costa,060574-389J",
        "name,身份证号\nAhmed Costa,420102195005185040",
        "name,TC Kimlik No\nSven Lindqvist,61401624004",
        "name,주민등록번호\nNadia Patel,060821-4308463",
        "name,Medicare card\nGrace Reyes,2894 69572 3",
        "| Name | NI number |\n|---|---|\n| Liam Okafor | OA 68 50 77 A |",
        "name,ni_number\nLiam Okafor,NH839400D",
        "| Name | National Insurance No |\n|---|---|\n| Liam Okafor | NH839400D |",
        "from city,passport number\nLeeds,C01X00T47",  # a header, not Python's import
        # the documents named in other languages
        "| Imię i nazwisko | paszport |\n|---|---|\n| Agnieszka Wójcik | EB2259196 |",
        "| Nome | Cartão SUS |\n|---|---|\n| Felipe Almeida Rodrigues | 993 4421 3357 6286 |",
        "Name;Rentenversicherungsnummer\nLaura Neumann;38210677Z784",
    ],
)
def test_more_identity_columns_are_read(header_only: Scanner, text: str) -> None:
    assert "table-identity-number" in pii_rules(header_only, text)


# The rules that know an identity number by its own format and check digits, label or none.
UNLABELLED_ID_RULES = (
    *("italian-fiscal-code", "chinese-resident-id", "korean-resident-number"),
    *("brazilian-cpf", "uk-national-insurance-number", "spanish-dni"),
    *("mexican-curp", "mexican-rfc", "thai-citizen-id", "pakistani-cnic"),
    *("argentine-cuit", "indian-pan", "emirates-id"),
)


@pytest.fixture(scope="module")
def header_only() -> Scanner:
    """A scanner without those rules: what finds a column's valid ids is then its header
    (with them, the rule that knows the number wins the span, and the column's reader
    passes over what is reported already)."""
    config = config_from_mapping({"privacy": {"disabled_rules": list(UNLABELLED_ID_RULES)}})
    return Scanner(config.privacy)


def test_a_valid_id_in_a_column_is_found_by_its_own_format_first(scanner: Scanner) -> None:
    text = "name,주민등록번호\nNadia Patel,060821-4308463"
    assert pii_rules(scanner, text) == {"korean-resident-number"}


@pytest.mark.parametrize(
    "text",
    [
        "| Имя | Дата рождения |\n|---|---|\n| Иван | 14.03.1987 |",
        "| 氏名 | 生年月日 |\n|---|---|\n| 田中 | 1987-03-14 |",
        "name,생년월일\nKim,1987-03-14",
    ],
)
def test_a_date_of_birth_column_named_in_another_script(scanner: Scanner, text: str) -> None:
    assert "table-date-of-birth" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "commune,code_insee,population\nParis,75056,2133111",  # a town's code
        "interface,pps,auth_errors\neth0,125000,0",  # packets a second
    ],
)
def test_columns_whose_names_only_look_like_an_ids(scanner: Scanner, text: str) -> None:
    assert "table-identity-number" not in pii_rules(scanner, text)


def test_a_date_of_birth_after_dotted_initials(scanner: Scanner) -> None:
    text = "Patient: Nadia Novak\nD.O.B. 27.06.1963\nAllergies: penicillin"
    assert "date-of-birth" in pii_rules(scanner, text)


def test_a_labelled_identity_number_wins_over_its_reading_as_a_phone(scanner: Scanner) -> None:
    # 943 476 5919 is also a North American phone layout; the label says what it is
    assert pii_rules(scanner, "NHS number 943 476 5919") == {"identity-number"}


@pytest.mark.parametrize(
    "text",
    [
        "mein Geburtsdatum ist der 12.03.1984",
        "fecha de nacimiento: 03/12/1984",
        "née le 12/03/1984 à Lyon",
        "data di nascita 12.03.1984",
        "geboren am 12.03.1984",
        "DOB is 1984-03-12",
        "DOB 14-Mar-1987",
        "Geboren am 4. Mai 1979",
        "geboren am 4. März 1979",
        '{"data_di_nascita": "12/03/1984"}',  # a label written as a key
        "fecha_de_nacimiento=1984-03-12",
        # introduced by the verb or its abbreviation, as a letter or a form writes it
        "Herr Weber, geb. 23.05.1984, wohnhaft in Köln",
        "Mario Rossi, nato il 14/09/1994 a Roma",
        "Ana López, nacida el 6 de enero de 1954",
        "Jan Kowalski, ur. 1 marca 1955 r.",
        "Sven Berg, född 2 augusti 2004",
        "Claire Martin, né(e) le 12/03/1980",
        "João Silva, nascido em 3 de março de 1990",
        "mój data urodzenia to 21.10.1995, proszę poprawić",
        "a minha data de nascimento é 12/03/1984",
        "Voor Niels van Dijk graag in het CRM zetten (geboortedatum): 16-12-1982",
    ],
)
def test_dates_of_birth_labelled_in_other_languages(scanner: Scanner, text: str) -> None:
    assert "date-of-birth" in pii_rules(scanner, text)


def test_a_birthday_moved_to_a_date_is_no_date_of_birth(scanner: Scanner) -> None:
    assert "date-of-birth" not in pii_rules(scanner, "We moved the birthday to 12/05/2024")


@pytest.mark.parametrize(
    "text",
    [
        "| Field | Value |\n|---|---|\n| Name | Ann Lee |\n| Date of Birth | 14/03/1987 |\n",
        "Name,Ann Lee\nDOB,1987-03-14\n",
        "Geburtsdatum;14.03.1987",
    ],
)
def test_a_date_of_birth_in_a_key_value_tables_row(scanner: Scanner, text: str) -> None:
    """A record laid out as label and value per row: the label's cell, then the date's."""
    assert "date-of-birth" in pii_rules(scanner, text)


IDENTITY_LABELS = (
    *("Passport No:", "passport number", "NHS number", "National Insurance number"),
    *("SIN:", "Steuer-ID", "DNI", "driver's license #", "Medicare number", "BSN"),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=make.AROUND,
    after=make.AROUND,
    label=st.sampled_from(IDENTITY_LABELS),
    letter=st.sampled_from(["", "C", "X4"]),
    seed=st.integers(0, 2**32),
)
def test_a_labelled_identity_number_is_found_anywhere(
    scanner: Scanner, before: str, after: str, label: str, letter: str, seed: int
) -> None:
    number = letter + str(random.Random(seed).randrange(10**8, 10**9))
    assume(pii.identity_number(number))  # not one of the numbers nobody is given
    planted = f"{label} {number}"
    text = f"{before}\n{planted}\n{after}"
    start = len(before) + 1 + len(label) + 1
    end = start + len(number)
    findings = scanner.scan(text)
    assert any(f.category == "pii" and f.span[0] <= start and end <= f.span[1] for f in findings), (
        planted
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("name,CPF,city\nLi Gonzalez,46407166802,Lyon\n", "46407166802"),
        ("name;ssn;dob\nJohn Roe;412628841;1980-01-01\n", "412628841"),
        ("| name | passport_no |\n|---|---|\n| Ann | C01X00T47 |\n", "C01X00T47"),
        ("employee\tNINO\nAnn Lee\tQQ123456C\n", "QQ123456C"),
    ],
)
def test_a_personal_id_column_is_read_in_every_row(scanner: Scanner, text: str, value: str) -> None:
    """A customer export: no label stands next to the number, the header names its column."""
    found = {text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"}
    assert value in found


@pytest.mark.parametrize(
    "text",
    [
        "id,sin,cos\n1,0.84147,0.54030\n",  # a column named like an id, no id in it
        "business,niece,notes\nacme,Ann,12345678 units\n",  # acronyms inside words
        "ssn,name\nREDACTED,Ann\n",
    ],
)
def test_an_id_column_without_ids_is_nothing(scanner: Scanner, text: str) -> None:
    assert not [f for f in scanner.scan(text) if f.rule_id == "table-identity-number"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("name,dob,city\nAnn Lee,1987-03-14,Leeds\n", "1987-03-14"),
        ("id;Geburtsdatum;Ort\n7;14.03.1987;Berlin\n", "14.03.1987"),
        ("| Name | Date of Birth |\n|---|---|\n| Ann | March 14, 1987 |\n", "March 14, 1987"),
        ("employee\tbirth_date\nAnn Lee\t03/14/1987\n", "03/14/1987"),
        ('name,birthDate\n"Roe, John","14-Mar-1987"\n', "14-Mar-1987"),
        ("nom,date_de_naissance,ville\nDupont,14/03/1987,Lyon\n", "14/03/1987"),
        ("nombre,fecha de nacimiento\nLuis,14/03/1987\n", "14/03/1987"),
        ("nome;data_di_nascita\nMario;14/03/1987\n", "14/03/1987"),
        ("nome,data_de_nascimento\nJoão,1987-03-14\n", "1987-03-14"),
        ("naam,geboortedatum\nJan,14-03-1987\n", "14-03-1987"),
        ("namn,födelsedatum\nAnna,1987-03-14\n", "1987-03-14"),
        ("mrn,patient_dob,ward\n1042,19870314,B2\n", "19870314"),
        ("name,DOB\nAnn,1987-03-14 00:00:00\n", "1987-03-14 00:00:00"),
    ],
)
def test_a_date_of_birth_column_is_read_in_every_row(
    scanner: Scanner, text: str, value: str
) -> None:
    """A customer export: no label stands next to the date, the header names its column."""
    found = {text[slice(*f.span)] for f in scanner.scan(text) if f.rule_id == "table-date-of-birth"}
    assert value in found


def test_every_row_of_a_date_of_birth_column_is_read(scanner: Scanner) -> None:
    text = "name,dob\nAnn,1987-03-14\nBo,1990-11-02\nCy,02/01/1975\n"
    found = [text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"]
    assert found == ["1987-03-14", "1990-11-02", "02/01/1975"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "INSERT INTO patients (name, dob, ward) VALUES ('Ann', '1987-03-14', 'B2'), "
            "('Bo', '1990-11-02', 'C1');",
            "1990-11-02",
        ),
        ("INSERT INTO people (name, cpf) VALUES ('Li', 46407166802);", "46407166802"),
        ("INSERT INTO staff (name, passport_no) VALUES ('Ann', 'C01X00T47');", "C01X00T47"),
    ],
)
def test_an_insert_names_its_personal_columns(scanner: Scanner, text: str, value: str) -> None:
    found = {text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"}
    assert value in found


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO people (name, dob) VALUES ('Ann Lee', '1987-03-14'::date)",
        "INSERT INTO people (name, dob, ward) VALUES ('Ann', '1987-03-14'::timestamp(0), 'B2')",
        "INSERT INTO people (name, dob) VALUES ('Ann Lee', DATE '1987-03-14')",
        "INSERT INTO people (name, dob) VALUES ('Ann Lee', date'1987-03-14')",
        "INSERT INTO people (name, dob) VALUES ('Ann Lee', TIMESTAMP '1987-03-14 00:00:00')",
        "INSERT INTO people (name, dob) VALUES ('Ann Lee', TO_DATE('1987-03-14', 'YYYY-MM-DD'))",
        "INSERT INTO people (name, dob) VALUES ('Ann Lee', STR_TO_DATE('1987-03-14', '%Y-%m-%d'))",
        "INSERT INTO people (name, dob) VALUES ('Ann Lee', CAST('1987-03-14' AS DATE))",
    ],
)
def test_a_date_of_birth_written_as_a_typed_literal(scanner: Scanner, text: str) -> None:
    """SQL's typed dates under a date-of-birth column: the finding is the date itself."""
    found = [text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"]
    assert [value[:10] for value in found] == ["1987-03-14"]


def test_a_to_dates_format_is_no_value(scanner: Scanner) -> None:
    """TO_DATE's first argument is the date; the format after it is read as nothing."""
    text = (
        "INSERT INTO people (name, dob) VALUES ('Ann', TO_DATE('14/03/1987', 'DD/MM/YYYY')), "
        "('Bo', TO_DATE('unknown', '02/11/1990'));"
    )
    found = [text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"]
    assert found == ["14/03/1987"]


@pytest.mark.parametrize(
    ("text", "value"),
    [  # a postal address's column: its cells hold no postcode beside them (a card list's)
        (
            'Household,Address,Postcode\nvan den Berg,"Prinsengracht 143, Eindhoven",5699 GJ',
            "Prinsengracht 143, Eindhoven",
        ),
        (
            'Name,Address\nMizrahi,"רחוב דיזנגוף 134 דירה 5, תל אביב-יפו"',
            "רחוב דיזנגוף 134 דירה 5, תל אביב-יפו",
        ),
        (
            "| Name | Home address |\n|---|---|\n| Jane Roe | 42 Elm Street, Springfield |",
            "42 Elm Street, Springfield",
        ),
        ("name;adresse;ville\nMarie;12 rue des Lilas;Lyon", "12 rue des Lilas"),
        # review 34: the bare name after a blank, an INSERT's, Straße (the trigger is the
        # header's or the INSERT's cell, whole)
        ("Name, Address\nJane Roe, 42 Elm Street", "42 Elm Street"),
        (
            "INSERT INTO people (name, address) VALUES ('Ana', 'Rua Augusta 1294');",
            "Rua Augusta 1294",
        ),
        ("Name;Straße;Ort\nJonas;Lindenweg 7;Kassel", "Lindenweg 7"),
        # review 35: a port's, a country's code and a flat's number in a home's address
        ("Name,Address\nJane,12 Port Street", "12 Port Street"),
        ('Name,Address\nJane,"10 Baker Street, London, GB"', "10 Baker Street, London, GB"),
        ('Name,Address\nJane,"Flat 1.2, 14 Elm Road, Leeds"', "Flat 1.2, 14 Elm Road, Leeds"),
        (
            "INSERT INTO contacts (name, home_address) VALUES ('Ana', 'Rua Augusta 1294');",
            "Rua Augusta 1294",
        ),
    ],
)
def test_a_postal_address_column_is_read(scanner: Scanner, text: str, value: str) -> None:
    found = [
        text[slice(*f.span)] for f in scanner.scan(text) if f.rule_id == "table-street-address"
    ]
    assert found == [value]


def test_a_dump_of_one_insert_a_row_is_read_to_its_end(scanner: Scanner) -> None:
    """Review 35: a column list is charged to the readers' allowance only where no row of
    its width follows it (a flood of lists); pg_dump's --column-inserts writes one INSERT a
    row, each read and counted, and a date of birth in row 801 is found."""
    cols = ["id", "name", "date_of_birth"] + [f"c{i}" for i in range(29)]

    def row(i: int, dob: str) -> str:
        rest = "".join(f", 'v{j}'" for j in range(29))
        return f"INSERT INTO customers ({', '.join(cols)}) VALUES ({i}, 'n{i}', '{dob}'{rest});"

    text = "\n".join([row(i, "1900-01-01") for i in range(800)] + [row(800, "1987-03-14")])
    assert "table-date-of-birth" in {f.rule_id for f in scanner.scan(text)}


@pytest.mark.parametrize(
    "text",
    [  # a network's addresses, mailboxes, a template's street, no house number
        "Host,Address,Port\nweb-1,10.0.0.12,8080",
        "Interface,MAC address\neth0,00:1a:2b:3c:4d:5e",
        "name,email address,status\nAna,ana@x.io,ok",
        "Name,Address\nTest Customer,1 Test Street\nJane,1 Example Road",
        "Name,Address\nAcme,(see contract)\nGlobex,N/A",
        "token,address\n0x52908400098527886E0F7030069857D2E4169EE7,wallet",
        # review 34: a network's, a register's or a size's cells
        "Service,Address\ndb,10.0.0.12 port 8080\ncache,db-01 port 5432",
        "Register,Address,Width\nCTRL,0 offset 4,32 bits",
    ],
)
def test_an_address_column_of_no_street_is_nothing(scanner: Scanner, text: str) -> None:
    assert not [f for f in scanner.scan(text) if f.rule_id == "table-street-address"]


@pytest.mark.parametrize(
    "text",
    [
        "name,created_at,order_date\nAnn,1987-03-14,1990-11-02\n",  # dates of other things
        "id;updated;expiry_date\n7;14.03.1987;01/02/1999\n",
        "name,dob\nAnn,unknown\nBo,0000-00-00\nCy,N/A\n",  # no date in a date's column
        # the date systems store for an unknown one (SQL Server's datetime zero)
        "name,dob\nTest User,1900-01-01\nSample,1/1/1900\n",
        "name,dob\nAnn,31/02/1987\nBo,1850-03-14\nCy,2999-01-01\n",  # no such day, no one alive
        "name,birthday\nAnn,March 14\n",  # no year
        "product,adobe_version\nReader,2020-01-01\n",  # dob inside another word
        "INSERT INTO orders (id, order_date) VALUES (1, '1987-03-14');",
        "INSERT INTO users (name, dob) VALUES ('Ann', NULL);",
        "INSERT INTO users (name, dob) VALUES ('Ann', DATE '0000-00-00');",
        "INSERT INTO users (name, dob) VALUES ('Ann', '1900-01-00'::date);",
        "INSERT INTO users (name, dob) VALUES ('Ann', TO_DATE(NULL, 'DD/MM/YYYY'));",
        "INSERT INTO users (name, dob) VALUES ('Ann', CURRENT_DATE);",
    ],
)
def test_a_date_column_that_holds_no_birth_date_is_nothing(scanner: Scanner, text: str) -> None:
    assert not [f for f in scanner.scan(text) if f.category == "pii"]


@pytest.mark.parametrize(
    "value",
    [
        *("1987-03-14", "14/03/1987", "03/14/1987", "14.03.1987", "14-Mar-1987", "14/03/87"),
        *("March 14, 1987", "Mar 14th 1987", "14. März 1987", "14 de marzo de 1987"),
        *("1er mars 1987", "1987-3-4", "29/02/2000", "19870314", "1987-03-14T00:00:00Z"),
        "3/14/1987 0:00",
    ],
)
def test_a_birth_date_in_the_shapes_people_write(value: str) -> None:
    assert pii.date_of_birth(value)


@pytest.mark.parametrize(
    "value",
    [
        *("unknown", "N/A", "0000-00-00", "1900-01-00", "31/02/1987", "29/02/1987"),
        *("14/13/1987", "1850-03-14", "2999-01-01", "March 32, 1987", "Foo 14, 1987"),
        *("12345678", "3.14159", "1.2.3", "1987-03-14 noon", "14/03/1987 at 10", ""),
    ],
)
def test_what_is_no_birth_date(value: str) -> None:
    assert not pii.date_of_birth(value)


@pytest.mark.parametrize(
    "text",
    [
        *("DOB: 0000-00-00", "date of birth: 1900-01-00", "DOB: 99/99/9999"),
        *("Date of birth: 31/02/1987", "born on 2999-01-01", "Geburtsdatum: 00.00.0000"),
        *("DOB: 32 March 1987", "born on 0 Foo 1987", "birthday: 1799-12-31"),
        *("生年月日：0000年00月00日", "дата рождения: 99.99.9999", "생년월일: 1987.13.01"),
        "生年月日：令和7年2月30日",  # Reiwa 7 is 2025, whose February has no 30th
    ],
)
def test_a_birth_label_before_no_real_date_is_nothing(scanner: Scanner, text: str) -> None:
    """A form's placeholder or a mask in a date's shape after the label is no one's birthday."""
    assert not pii_rules(scanner, text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("DOB: 1987-03-14", "1987-03-14"),
        ("date of birth: 14/03/87", "14/03/87"),
        ("Date of birth: 1850-03-14 (the parish register)", "1850-03-14"),
        ("born on 14 March 1987", "14 March 1987"),
        ("birthday: March 14, 1987", "March 14, 1987"),
        ("Geboren am 4. Mai 1979", "4. Mai 1979"),
        ("DOB 14-Mar-1987", "14-Mar-1987"),
        ("data urodzenia: 14 marca 1987", "14 marca 1987"),
        ("生年月日：1987年3月14日", "1987年3月14日"),
        ("생년월일: 1987년 3월 14일", "1987년 3월 14일"),
        ("생년월일: 1987. 3. 14", "1987. 3. 14"),
        ("出生日期: 1987-03-14", "1987-03-14"),
        ("生年月日：昭和50年10月16日", "昭和50年10月16日"),  # Shōwa 50: 1975
        ("生年月日: 平成元年1月8日", "平成元年1月8日"),  # Heisei's first year: 1989
    ],
)
def test_a_labelled_real_date_of_birth_is_found(scanner: Scanner, text: str, value: str) -> None:
    found = {text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"}
    assert value in found


def test_a_labelled_date_of_birth_is_read_from_1800_a_columns_from_1900() -> None:
    """A label says what the date is, a historical person's too; a column's are customers'."""
    assert pii.labelled_date_of_birth("1850-03-14")
    assert not pii.date_of_birth("1850-03-14")
    assert not pii.labelled_date_of_birth("1799-12-31")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "MSH|^~\\&|EPIC|HOSP|LAB|HOSP|202403121030||ADT^A01|1|P|2.5\rPID|1||911579^^^HOSP^MR||"
            "KOWALSKA^ANNA||19840312|F|||",
            "19840312",
        ),
        ('{"content": "PID|1||840194^^^HOSP^MR||RUIZ^LUCIA||200211230815|F|||"}', "20021123"),
    ],
)
def test_a_patients_date_of_birth_in_an_hl7_message_is_found(
    scanner: Scanner, text: str, value: str
) -> None:
    """PID-7, with no label: the segment's layout says what it is."""
    assert [text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"] == [value]


@pytest.mark.parametrize(
    "text",
    [
        "PID|1||911579||KOWALSKA^ANNA||20991231|F",  # not yet born
        "PID|1||911579||19840312|F",  # the date is not in the seventh field
        "the PID|ppid|cmd columns: 1|2|3|4|5|6|19840312",  # no segment: a word before PID
    ],
)
def test_what_is_not_an_hl7_date_of_birth(scanner: Scanner, text: str) -> None:
    assert "hl7-date-of-birth" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "请给张伟回个电话，号码是 137 1431 8376，谢谢。",
        'phone_number,first_name\n"139 2022 6456",陈静',
        "call her on 150-8822-3190.",
    ],
)
def test_a_chinese_mobile_number_grouped_for_reading_is_found(scanner: Scanner, text: str) -> None:
    assert "phone-cn-mobile" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "HU42 A177 3016 1111 1018 0000 0000",  # an account number's groups
        "v1.137 1431 8376.5",
        "IDs 120 1234 5678 and 112-3456-7890",  # no mobile starts 12 or 11
        "batch 137 1431 8376 2024 processed",  # four groups: a longer number
    ],
)
def test_what_is_not_a_chinese_mobile_number(scanner: Scanner, text: str) -> None:
    assert "phone-cn-mobile" not in pii_rules(scanner, text)


def test_a_japanese_eras_year_is_read_as_its_gregorian_year() -> None:
    assert pii.date_of_birth("昭和50年10月16日")  # 1975
    assert pii.date_of_birth("平成元年1月8日")  # 1989
    assert not pii.date_of_birth("令和9年1月1日", latest=2026)  # 2027
    assert not pii.date_of_birth("明治10年1月1日")  # 1877: before a column's earliest
    assert pii.labelled_date_of_birth("明治40年1月1日")  # 1907


def test_a_date_of_birth_is_no_later_than_this_year() -> None:
    assert pii.date_of_birth("2030-01-01", latest=2030)
    assert not pii.date_of_birth("2030-01-01", latest=2029)
    assert pii.date_of_birth("14/03/1987", earliest=1800, latest=1987)


def test_a_date_of_birth_column_written_with_cjk_marks(scanner: Scanner) -> None:
    text = "| 氏名 | 生年月日 |\n|---|---|\n| 田中 | 1987年3月14日 |\n"
    found = {text[slice(*f.span)] for f in scanner.scan(text) if f.rule_id == "table-date-of-birth"}
    assert found == {"1987年3月14日"}


def test_inserts_whose_columns_only_look_personal_are_passed_over(scanner: Scanner) -> None:
    """`sin` in `business` finds an INSERT that names no id: past MAX_CANDIDATES such finds
    must not report the rest of the text as unverified."""
    text = "ssn notes\n" + "INSERT INTO t (business) VALUES ('x');\n" * 2100
    assert not [f for f in scanner.scan(text) if f.rule_id.startswith("table-identity-number")]


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("password-in-prose-translated", "ŞİFRE: tundra-9212copper"),
        ("password-in-prose-translated", "WIFI ŞİFRESİ tundra-9212copper"),
        ("password-in-prose-translated", "Ο ΚΩΔΙΚΟΣ ΠΡΟΣΒΑΣΗΣ ΕΙΝΑΙ tundra-9212copper"),
        ("password-in-prose-translated", "ΚΩΔΙΚΟΣ ΠΡΟΣΒΑΣΗΣ: tundra-9212copper"),
        ("date-of-birth-translated", "DOĞUM TARİHİ: 14.03.1987"),
        ("date-of-birth-translated", "DOGUM TARİHİ: 14.03.1987"),
        ("date-of-birth-translated", "ΗΜΕΡΟΜΗΝΙΑ ΓΕΝΝΗΣΗΣ: 14.03.1987"),
        ("identity-number", "KİMLİK NO: 61401624004"),
        ("identity-number", "T.C. KİMLİK NO 61401624004"),
        ("identity-number-translated", "ΑΡΙΘΜΟΣ ΤΑΥΤΟΤΗΤΑΣ: AB123456"),
        ("identity-number-translated", "ΑΡΙΘΜΟΣ ΔΙΑΒΑΤΗΡΙΟΥ: AB1234567"),
        ("table-date-of-birth", "AD,DOĞUM TARİHİ\nAyşe,14.03.1987\n"),
        ("table-identity-number", "AD,TC KİMLİK NO\nAyşe,61401624004\n"),
        (
            "table-identity-number",
            "INSERT INTO kisi (ad, KİMLİK_NO) VALUES ('Ayşe', '61401624004');",
        ),
    ],
)
def test_a_label_in_turkish_or_greek_capitals(scanner: Scanner, rule: str, text: str) -> None:
    """RE2 folds no case onto Turkish capital İ, and Greek capitals drop their accents: a
    label in capitals is found as its lower case is."""
    assert rule in {f.rule_id for f in scanner.scan(text)}


# Identity numbers without a label: each made up for this file and given its check digits
# (python-stdnum's calculations), with a date of birth and a region or place that exist.
UNLABELLED_IDS = [
    ("italian-fiscal-code", "BNCFNC79B03H501U"),
    ("italian-fiscal-code", "VRDLGU85M41F205T"),  # a woman's: her day plus 40
    ("chinese-resident-id", "440305199003071236"),
    ("chinese-resident-id", "11010519760923104X"),  # the check character X
    ("korean-resident-number", "880321-1362416"),
    ("korean-resident-number", "950714-2618341"),
    ("brazilian-cpf", "395.187.204-79"),
    ("brazilian-cpf", "706.215.938-77"),
    ("uk-national-insurance-number", "JT 48 72 91 B"),
    ("uk-national-insurance-number", "NP 30 58 12 C"),
    ("spanish-dni", "Y4829163M"),  # a foreigner's NIE
    ("spanish-dni", "Z7391405S"),
    *NATIONAL_IDS,
]


def _in_a_sentence(value: str) -> str:
    return f"The applicant's number is {value}, please check it."


def _in_a_csv_row(value: str) -> str:
    return f"id,name,number,city\n17,Ana Lima,{value},Porto\n"


def _in_json(value: str) -> str:
    return f'{{"name": "Ana Lima", "ref": "{value}", "city": "Porto"}}'


@pytest.mark.parametrize("place", [_in_a_sentence, _in_a_csv_row, _in_json])
@pytest.mark.parametrize(("rule", "value"), UNLABELLED_IDS, ids=[v for _, v in UNLABELLED_IDS])
def test_an_identity_number_without_a_label_is_found_by_its_own_check(
    scanner: Scanner, rule: str, value: str, place: Callable[[str], str]
) -> None:
    text = place(value)
    findings = [f for f in scanner.scan(text) if f.category == "pii"]
    assert [(f.rule_id, text[f.span[0] : f.span[1]]) for f in findings] == [(rule, value)]


@pytest.mark.parametrize(
    "value",
    [
        # the wrong check digit or letter
        "BNCFNC79B03H501A",
        "440305199003071237",
        "11010519760923104Y",
        "880321-1362417",
        "395.187.204-78",
        "Y4829163N",
        # a date that cannot be: 32 March, 30 February (each with its right check digit)
        "RSSMRA84C32H501K",
        "110105198802301235",
        "880230-1362411",
        # born after today
        "440305209901011237",
        # a region no table lists (its check digit right)
        "000105198807148742",
        # inside a longer run of digits or letters
        "9440305199003071236",
        "4403051990030712361",
        "X" + "BNCFNC79B03H501U",
        "BNCFNC79B03H501U" + "9",
        "1880321-1362416",
        "880321-13624160",
        "1395.187.204-79",
        "395.187.204-791",
        "1Y4829163M",
        "Y4829163MA",
        "ANP 30 58 12 C",
        # unpunctuated CPF and Korean numbers: 11 and 13 digits run together are too common
        "39518720479",
        "8803211362416",
        # a digit repeated or counted out: a form's placeholder, a manual's example
        "123.456.789-09",
        "111.111.111-11",
        "X1234567L",
        # run together, a NINO is an order's or a SKU's shape; eight digits and a letter a
        # DNI's, a Java long's (30000000L) and a size's: each claimed only after its label
        "NP305812C",
        "WX482913D",
        "48291635F",
        "73914052-X",
        "30000000L",
        "15000000K",
    ],
)
def test_what_only_looks_like_an_identity_number(scanner: Scanner, value: str) -> None:
    for text in (_in_a_sentence(value), _in_a_csv_row(value), _in_json(value)):
        assert not pii_rules(scanner, text), text


@pytest.mark.parametrize(
    "prefix",
    [
        *("DA", "FA", "IA", "QQ", "UA", "VA", "AD", "AF", "AI", "AQ", "AU", "AV", "AO"),
        *("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"),
    ],
)
def test_a_national_insurance_prefix_hmrc_never_issues_is_no_number(
    scanner: Scanner, prefix: str
) -> None:
    for written in (f"{prefix} 30 58 12 C",):
        assert not pii_rules(scanner, _in_a_sentence(written)), written


@pytest.mark.parametrize("suffix", ["E", "Z", " "])
def test_a_national_insurance_number_ends_with_a_to_d(scanner: Scanner, suffix: str) -> None:
    assert not pii_rules(scanner, f"ref NP 30 58 12 {suffix}.")


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        # issuer 62 (UnionPay) at 18 digits, and Luhn passes: a card's shape too
        ("620102199205140256", "chinese-resident-id"),
        # 13 digits and a hyphen, from 4 (Visa issues 13), and Luhn passes
        ("470815-1007527", "korean-resident-number"),
    ],
)
def test_an_identity_number_that_also_passes_as_a_card_is_an_identity_number(
    scanner: Scanner, value: str, rule: str
) -> None:
    assert pii.card_number(value)
    assert pii_rules(scanner, _in_a_sentence(value)) == {rule}


def test_benign_look_alikes_are_no_identity_number(scanner: Scanner) -> None:
    """Order numbers, hashes, timestamps, phones, ISBNs, tracking numbers, base64."""
    text = (
        "order 20240611123456 shipped; commit 9fceb02d0ae598e95dc970b74767f19372d61af8;"
        " short a1b2c3d; ts 1718101234567; snowflake 1250036394742460416;"
        " call 138 0013 8000 or +86 138 0013 8000; ISBN 978-0-306-40615-7;"
        " UPS 1Z999AA10123456784; FedEx 123456789012; USPS 9400111899223856928499;"
        " token dGhpcyBpcyBub3QgYW4gaWQ=; uuid 3F2504E0-4F89-11D3-9A0C-0305E82C3301;"
        " build 2024.06.11-1; release v1.23.456-7"
    )
    assert {rule for rule, _ in UNLABELLED_IDS} == set(UNLABELLED_ID_RULES)
    assert {f.rule_id for f in scanner.scan(text)}.isdisjoint(UNLABELLED_ID_RULES)


PSQL = """ id    | full_name   | {column} | plan
-------+-------------+{rule}+------
 48090 | Ishita Iyer | {value} | pro
 28766 | Aarav Iyer  | {value} | team
(2 rows)
"""
MYSQL = """+-------+-------------+{rule}+------+
| id    | full_name   | {column} | plan |
+-------+-------------+{rule}+------+
| 48090 | Ishita Iyer | {value} | pro  |
+-------+-------------+{rule}+------+
2 rows in set (0.02 sec)
"""


@pytest.mark.parametrize("layout", [PSQL, MYSQL], ids=["psql", "mysql"])
@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("aadhaar_no", "8233 6189 8179", "table-identity-number"),
        ("steuer_id", "93 162 548 008", "table-identity-number"),
        ("pesel", "44051401458", "table-identity-number"),
        ("date_of_birth", "1991-07-17", "table-date-of-birth"),
    ],
)
def test_an_sql_clients_table_is_read_by_its_columns(
    header_only: Scanner, layout: str, column: str, value: str, rule: str
) -> None:
    """psql's and mysql's result tables, as a coding agent's tool prints them."""
    width = max(len(column), len(value)) + 2
    text = layout.format(
        column=column.ljust(width - 2), value=value.ljust(width - 2), rule="-" * width
    )
    assert rule in pii_rules(header_only, text)


@pytest.mark.parametrize(
    "text",
    [
        # a rule with one cell too few or too many for its header
        " id | passport | plan\n----+----------\n 1 | C01X00T47 | pro\n",
        "| id | passport |\n+----+----------+------+\n| 1 | C01X00T47 |\n",
        # dashes under a line that is not a table's header
        "passport | C01X00T47\n----------\n X1234567 | x\n",
    ],
)
def test_a_rule_that_does_not_fit_its_header_makes_no_table(
    header_only: Scanner, text: str
) -> None:
    assert "table-identity-number" not in pii_rules(header_only, text)


@pytest.mark.parametrize(
    "text",
    ["{ fullName: 'Lucía Romero', dni: '74467137Z', plan: 'free' }", "{ sin: '394 076 525' }"],
)
def test_an_ids_abbreviation_as_an_objects_key_before_a_quoted_value(
    scanner: Scanner, text: str
) -> None:
    """mongosh and JavaScript print a document's keys bare: `dni: '...'`."""
    assert pii_rules(scanner, text)


@pytest.mark.parametrize("text", ["angle = {sin: 'fast', cos: 'slow'}", "  sin: 0.5,"])
def test_a_bare_abbreviation_needs_an_ids_look_after_it(scanner: Scanner, text: str) -> None:
    assert not pii_rules(scanner, text)


@pytest.mark.parametrize(
    "table",
    [
        " id | full_name | steuer_id | plan\n---+---+---+---\n 1 | Svenja Hoffmann | "
        "93 162 548 008 | pro\n(1 row)\n",
        "| Name | NI number |\n|---|---|\n| Liam Okafor | OA 68 50 77 A |\n",
    ],
    ids=["psql", "markdown"],
)
def test_a_table_that_starts_a_tools_json_result_is_read(header_only: Scanner, table: str) -> None:
    """The tool's result is a JSON string: the table's header line starts with its key."""
    text = json.dumps({"role": "tool", "name": "run_sql", "content": table})
    assert "table-identity-number" in pii_rules(header_only, text)


def test_a_json_strings_quote_before_a_pipe_is_no_tables_start(header_only: Scanner) -> None:
    text = 'echo "passport | C01X00T47"\n---+---\n X1234567 | x\n'
    assert "table-identity-number" not in pii_rules(header_only, text)


REDIS = '127.0.0.1:6379> HGETALL session:0b2c63ab\n 1) "customer_id"\n 2) "31154"\n{fields}'


@pytest.mark.parametrize(
    ("fields", "value"),
    [
        (' 3) "aadhaar_no"\n 4) "8214 9778 4666"\n 5) "plan"\n 6) "free"\n', "8214 9778 4666"),
        (' 3) "date_of_birth"\n 4) "1996-04-12"\n', "1996-04-12"),
    ],
)
def test_a_redis_hashs_personal_field_is_read_by_its_name(
    header_only: Scanner, fields: str, value: str
) -> None:
    text = REDIS.format(fields=fields)
    found = [f for f in header_only.scan(text) if f.rule_id == "redis-hash-field"]
    assert [text[slice(*f.span)] for f in found] == [value]


@pytest.mark.parametrize(
    "fields",
    [
        ' 3) "aadhaar_no"\n 4) "pending"\n',  # no id's look
        ' 3) "name"\n 4) "date_of_birth"\n 5) "1996-04-12"\n 6) "x"\n',  # a value, not a name
    ],
)
def test_a_redis_field_needs_its_name_in_the_odd_place_and_a_valid_value(
    header_only: Scanner, fields: str
) -> None:
    text = REDIS.format(fields=fields)
    assert "redis-hash-field" not in {f.rule_id for f in header_only.scan(text)}


@pytest.mark.parametrize(
    "text",
    [
        "{\n  fullName: 'Lucía Romero',\n  dateOfBirth: ISODate('1987-03-14T00:00:00.000Z'),\n}",
        "Customer(id=5, name='Jan de Vries', date_of_birth=datetime.date(1987, 3, 14))",
        "birthDate: new Date('1987-03-14')",
    ],
)
def test_a_date_of_birth_in_the_call_that_makes_a_date_of_it(scanner: Scanner, text: str) -> None:
    """What mongosh and a Python REPL print for a record's date of birth."""
    assert "date-of-birth" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "dob = get_dob(customer)",
        "birthday: datetime.date(2087, 3, 14)",  # not yet
        "birth_date=datetime.date(1987, 2, 30)",  # no such day
    ],
)
def test_a_call_after_a_birth_label_needs_a_real_date_in_it(scanner: Scanner, text: str) -> None:
    assert "date-of-birth" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    ("frame", "values"),
    [
        (
            "      id      full_name  passport_no\n0  48090    Ishita Iyer     K8421973\n"
            "1  28766     Aarav Iyer     M1234567\n",
            ["K8421973", "M1234567"],
        ),
        (
            "      id    full_name  date_of_birth  plan\n0  48090  Ishita Iyer     1991-07-17"
            "   pro\n1  28766   Aarav Iyer     1967-12-28  free\n\n[2 rows x 4 columns]\n",
            ["1991-07-17", "1967-12-28"],
        ),
        (  # a column's name with a blank in it; a value with blanks in it
            "   customer_id    full name      aadhaar_no\n"
            "0        48090  Ishita Iyer  8233 6189 8179\n",
            ["8233 6189 8179"],
        ),
        (  # pandas aligns characters: a name outside ASCII is longer in bytes
            f"{'full_name':>19}  passport_no\n"
            + "".join(
                f"{i}  {name:>16}  {number:>11}\n"
                for i, (name, number) in enumerate(
                    [
                        ("Zainab Bergström", "K8421973"),
                        ("Chloé Noël", "M1234567"),
                        ("王秀英", "P7654321"),
                    ]
                )
            ),
            ["K8421973", "M1234567", "P7654321"],
        ),
    ],
    ids=["passport", "date-of-birth", "aadhaar", "not-ascii"],
)
def test_a_dataframes_personal_column_is_read_under_its_name(
    header_only: Scanner, frame: str, values: list[str]
) -> None:
    """pandas prints a DataFrame's values right-aligned under their column's name."""
    text = f">>> df.head()\n{frame}"
    found = [f for f in header_only.scan(text) if f.rule_id == "dataframe-column"]
    assert [text[slice(*f.span)] for f in found] == values


def test_a_notebooks_last_line_of_an_array_is_a_line_of_its_own(scanner: Scanner) -> None:
    """Jupyter ends an array's last string with no line break: the DataFrame's last row is
    read whole though another cell's source follows (review 28)."""
    rows = [("Haruto Ahmadi", "1957-04-28"), ("Zainab Brown", "1959-05-23")]
    frame = [f"   {'patient_name':>13}  {'dob':>10}\n"]
    frame += [f"{i}  {name:>13}  {dob:>10}\n" for i, (name, dob) in enumerate(rows)]
    frame[-1] = frame[-1].rstrip("\n")
    cells = [
        {"outputs": [{"data": {"text/plain": frame}}], "source": ["df.head()"]},
        {"outputs": [], "source": ["import os\n", "print(1)"]},
    ]
    text = json.dumps({"cells": cells}, indent=1)
    found = [text[slice(*f.span)] for f in scanner.scan(text) if f.category == "pii"]
    assert found == ["1957-04-28", "1959-05-23"]


def test_a_dataframe_a_notebook_printed_is_read_under_its_name(scanner: Scanner) -> None:
    """A notebook (.ipynb) keeps an output's text as a JSON array of lines: the DataFrame
    is read as pandas printed it, and each finding stands on the date in the notebook."""
    frame = [
        "              mrn      patient_name         dob  sex\n",
        "89756  MRN5998153     Haruto Ahmadi  1957-04-28    F\n",
        "87883  MRN5996655  Zainab Bergström  1959-05-23    F",
    ]
    output = {"data": {"text/plain": frame}, "output_type": "execute_result"}
    notebook = {"cells": [{"cell_type": "code", "outputs": [output], "source": ["df.head()"]}]}
    text = json.dumps(notebook, indent=1, ensure_ascii=False)  # as Jupyter writes it
    found = [f for f in scanner.scan(text) if f.rule_id == "dataframe-column"]
    assert [text[slice(*f.span)] for f in found] == ["1957-04-28", "1959-05-23"]
    no_column = text.replace('"     ', '"').replace(" dob ", " day ")  # nothing personal
    assert not [f for f in scanner.scan(no_column) if f.category == "pii"]


@pytest.mark.parametrize(
    "text",
    [
        # kubectl's table: no index's number starts its rows
        "NAME              TYPE                                  DATA   AGE\n"
        "default-token-x   kubernetes.io/service-account-token   3      10d\n",
        # counts under a column's name that holds a credential's word
        "   token_count  passport_pages\n0          512              32\n",
        # a value not aligned under its column's name is no cell of it
        "   id  passport_no\n0   1\n1   2  K8421973   x\n",
    ],
)
def test_what_is_no_dataframes_personal_column_is_not_read(header_only: Scanner, text: str) -> None:
    assert "dataframe-column" not in {f.rule_id for f in header_only.scan(text)}


def test_a_dataframes_rows_are_bounded_and_never_clean() -> None:
    rows = "".join(f"{i:<5} {i:>5}  {'pending':>11}\n" for i in range(MAX_CANDIDATES + 10))
    found = read_all(f"{'id':>11}  passport_no\n{rows}".encode())
    assert [f.rule_id for f in found] == ["dataframe-column:unverified"]


@pytest.mark.parametrize(
    "number",
    [
        "+31 6 12345678",  # the Netherlands: nine digits after the code
        "+30 21 0123 4567",  # Greece: ten
        "+375 29 123 45 67",  # Belarus, a three-digit code: nine
        "+353 1 483 2200",  # Ireland: seven to nine
        "+852 2528 4100",  # Hong Kong: eight
        "+61 491 570 106",  # Australia: nine
    ],
)
def test_a_number_as_long_as_its_countrys_numbers_is_a_phone(scanner: Scanner, number: str) -> None:
    assert "phone-e164" in pii_rules(scanner, f"call me on {number}")


@pytest.mark.parametrize(
    "number",
    [
        "+31 607 2139",  # seven digits after the Netherlands' code
        "+30 893 7718",  # seven after Greece's
        "+44 165 0165",  # seven after the UK's
        "+375 39 5903",  # six after Belarus'
    ],
)
def test_a_number_too_short_for_its_countrys_plan_is_no_phone(
    scanner: Scanner, number: str
) -> None:
    """A part number or a serial written with a "+" (a spreadsheet's)."""
    assert "phone-e164" not in pii_rules(scanner, f"Serial: {number}")


@pytest.mark.parametrize(
    "text",
    [
        "P/N: 06-51888405",
        "Serial no.: 218-728-7611",
        "Part no.: 826-792-0573",
        "Model/Part: 0153 6924 9886",
        '{"part_no": "+30 21 0123 4567"}',
        "Nº de serie: +31 6 12345678",
        "Bestellnummer: 0151 2345 6789",
    ],
)
def test_a_number_labelled_as_a_part_a_serial_or_an_order_is_no_phone(
    scanner: Scanner, text: str
) -> None:
    assert not {"phone-national", "phone-e164"} & pii_rules(scanner, text)


def test_a_phone_after_an_order_number_in_a_sentence_is_still_one(scanner: Scanner) -> None:
    text = "Order number 12 placed; call me on 06-51888405 or +31 6 12345678"
    assert {"phone-national", "phone-e164"} <= pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "CUIL: 20-24381831-2",  # Argentina
        "PPS No.: 3666636BA",  # Ireland
        "IRD no.: 107-942-742",  # New Zealand
        "Teudat Zehut: 328387881",  # Israel
        "Nº de contribuinte: 245283706",  # Portugal
        "RFC (persona física): MORA671110BK4",  # a note in brackets after the label
        "Documento (DNI): 39.669.127",  # the label in brackets after a word
        "UID (Aadhaar): 7142 8239 0860",
        "NRIC/FIN: S7518768H",  # two labels
        "Hetu: 021254-188Y",  # Finland
        "N° AVS: 756.3286.8121.78",  # Switzerland, in French
        "Numéro de registre national: 56.12.07-826.30",  # Belgium, in French
        "Versichertennummer (eGK): W332018021",  # Germany's health insurance
        '{"full_name": "Hugo Martin", "mrn": "6571992536"}',  # a medical record number
        "HKID No.: C317457(1)",
    ],
)
def test_more_identity_labels_are_read(scanner: Scanner, text: str) -> None:
    assert "identity-number" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "PNR: GJNBB8",  # an airline's booking reference
        "RUN: 2024-05-01 12:00",  # a date and a time
        "SIN: 2024-05-01 12:00:00",
        "NAS: 192.168.1.10",  # an address on the network
        "see RFC 7231 7.1.2 for the header",  # a section of an RFC
    ],
)
def test_what_follows_an_ids_label_that_is_no_id(scanner: Scanner, text: str) -> None:
    assert "identity-number" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "Name\tDriver's licence no.\tsegment\nSophie Jones\tJONES758042S99VF\tGold\n",
        "Name\tDriver's licence no. (ON)\tsegment\nNathan Bouchard\tB6056-51062-46286\tVIP\n",
        "Name\tNRIC No.\tsegment\nGoh Mei Ling\tS8750897H\tB2C\n",
        "Nimi\tHETU\tsegment\nMikko Mäkinen\t031202A5274\tB2C\n",
        "contact_id,full_name,emirates_id\n913757,Mohammed Al Otaibi,784-1987-2154407-4\n",
        "Nombre\tDNI\tsegment\nPablo Romero Díaz\t64185067W\tGold\n",
    ],
)
def test_more_identity_columns_with_their_no_and_notes_are_read(
    header_only: Scanner, text: str
) -> None:
    assert "table-identity-number" in pii_rules(header_only, text)


@pytest.mark.parametrize(
    "text",
    [
        "Móvil: 686 481 194",
        "Tel. kom.: 665-312-068",
        "Celular: 11 98765 4321",
    ],
)
def test_a_mobile_under_its_name_in_more_languages(scanner: Scanner, text: str) -> None:
    assert "phone-labelled" in pii_rules(scanner, text)


def test_a_word_after_a_phones_label_is_no_phone(scanner: Scanner) -> None:
    assert not pii_rules(scanner, "portable: 2024 edition, mobile: v10")


@pytest.mark.parametrize(
    "address",
    [
        "help@shop.example.org",
        "kundenservice@versand.de",
        "atencion@tienda.es",
        "careers@northernpine.ca",
        "orders@aztecanorte.mx",
        "assistenza@bottega.it",
    ],
)
def test_a_businesss_department_mailbox_is_no_persons(scanner: Scanner, address: str) -> None:
    assert "email-address" not in pii_rules(scanner, f"To: {address}\nSubject: order")


def test_a_persons_mailbox_at_a_business_is_still_one(scanner: Scanner) -> None:
    assert "email-address" in pii_rules(scanner, "To: lheikkinen@revontulikauppa.fi")
    assert "email-address" in pii_rules(scanner, "To: abbot@revontulikauppa.fi")  # a name


@pytest.mark.parametrize("address", ["ci-bot@acme-logistics.com", "deploy.svc@acme.io"])
def test_a_programs_mailbox_is_no_persons(scanner: Scanner, address: str) -> None:
    """A bot's or a service account's: heroku releases and git log list them."""
    line = f"v211  Deploy a0912827  {address}  2025/03/28 10:00:44 +0000"
    assert "email-address" not in pii_rules(scanner, line)


@pytest.mark.parametrize(
    "text",
    [
        "SHIP FROM:\nNorthern Pine Supply Ltd.\n250 Front St W, Suite 1500\nToronto ON M5V 3G5\n",
        "Bottega Lariana S.r.l.\nVia Torino 61\n20123 Milano (MI)\n",
        "Nordlicht Versand GmbH\nIndustriestraße 21\n22525 Hamburg\n",
        "Registered office: 250 Front St W, Suite 1500, Toronto ON M5V 3G5",
        "SHIP FROM:\n(주)한빛커머스\n서울특별시 중구 세종대로 110\n",
    ],
)
def test_a_companys_address_is_no_persons(scanner: Scanner, text: str) -> None:
    """A company's legal form on the line above (Ltd., S.r.l., GmbH, (주)), or its
    registered office: the address is a business's, as its letterhead shows."""
    assert not {r for r in pii_rules(scanner, text) if r.startswith("street-address")}


@pytest.mark.parametrize(
    "text",
    [
        "Bill to: Marco Greco\nVia Torino 61\n20123 Milano (MI)\n",
        "Jan Weber\nIndustriestraße 21\n22525 Hamburg\n",
        "김민준\n서울특별시 중구 세종대로 110\n",
    ],
)
def test_a_persons_address_is_still_one(scanner: Scanner, text: str) -> None:
    assert {r for r in pii_rules(scanner, text) if r.startswith("street-address")}


@pytest.mark.parametrize(
    "text",
    [
        "Questions? support@loughderg.ie · +353 1 483 2200",
        "Questions? service@norrskenhem.se · 08-520 277 00",
        "Hotline: +43 732 774 500",
    ],
)
def test_a_businesss_line_is_no_persons_phone(scanner: Scanner, text: str) -> None:
    """A number just after a business's department mailbox, or under Hotline."""
    assert not {"phone-e164", "phone-national"} & pii_rules(scanner, text)


def test_a_persons_phone_after_their_address_is_still_one(scanner: Scanner) -> None:
    text = "Contact: jane.doe@gmail.com · +353 87 123 4567"
    assert "phone-e164" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "Anschrift: Mariahilfer Straße 145/19\n5020 Salzburg",  # Austria: a door, four digits
        "Seefeldstrasse 110\n8008 Zürich",  # Switzerland
        "Adresse: Kerkstraat 128 bus 2\n4000 Liège",  # Belgium: a box, four digits
        "Fleur van Dijk\nMolenweg 176 A\n2361 NX Rotterdam",  # a letter after a blank
        "Adresse: Vesterbrogade 145, 1. th\n5000 Odense C",  # Denmark: the floor and side
        "Osoite: Hämeenkatu 22 A 30\n33100 Tampere",  # Finland: a staircase and a flat
        # Belgium and Switzerland in French or Italian: the street's type first
        "SHIP TO:\nMia Zimmermann\nRue de Lausanne 154\n1201 Genève",
        "Adresse : Avenue Louise 54 bus 3, 1050 Ixelles",
        "Route de Genève 12, 1004 Lausanne",
        "Place du Marché 4, CH-2000 Neuchâtel",
        "Adresse : rue de la Loi 16, 1000 Bruxelles",  # a type in lower case
        "Avenue Louise 54/3, 1050 Ixelles",  # a box after a slash
    ],
)
def test_more_countries_addresses_are_found(scanner: Scanner, text: str) -> None:
    assert "street-address" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "Place Order 3, 2000 Units",  # Place and Route are an address's only with an article
        "Via API 2, 1000 Requests per minute",  # Italian's Via is English's too: 5 digits only
        "Route Planner 2, 1500 Miles",
        "Rue de la Paix 12",  # no postcode
        "Rue de la Paix 12, 10 Paris",
    ],
)
def test_a_french_street_type_alone_makes_no_address(scanner: Scanner, text: str) -> None:
    assert "street-address" not in pii_rules(scanner, text)


def test_a_year_under_a_line_that_ends_in_a_number_is_no_address(scanner: Scanner) -> None:
    assert "street-address" not in pii_rules(scanner, "see release 5\n2024 Roadmap")


@pytest.mark.parametrize(
    "text",
    ["Nº do passaporte: FT111285", "Patiëntnummer: 0129272", "Patient ID: 48213377"],
)
def test_a_passport_in_portuguese_and_a_patients_number_are_read(
    scanner: Scanner, text: str
) -> None:
    assert "identity-number" in pii_rules(scanner, text)


def test_a_licence_numbers_column_is_no_ids_without_a_drivers(header_only: Scanner) -> None:
    """A software licence's number is no person's: a column is an id's only as a driver's
    licence (review 20)."""
    software = (
        "| software | license no. | expires |\n|---|---|---|\n| JetBrains | 4411-2098-7712 | x |\n"
    )
    assert "table-identity-number" not in pii_rules(header_only, software)
    drivers = "name,driver_licence_no\nMegan Johnson,J543-745-46-403-7\n"
    assert "table-identity-number" in pii_rules(header_only, drivers)


def test_a_number_under_an_ids_key_is_no_phone(scanner: Scanner) -> None:
    for text in ('{"group_id": 19109707410}', '"requesterId": 19109707410,'):
        assert "phone-national" not in pii_rules(scanner, text)
    assert "phone-national" in pii_rules(scanner, '{"phone": 19109707410}')
    # ids whose value is a phone: a caller's, WhatsApp's (review 29)
    for text in ('{"caller_id": 19109707410}', '"callerId": 19109707410', '"wa_id": 14155552671'):
        assert "phone-national" in pii_rules(scanner, text)


def test_an_address_labelled_a_companys_office_is_no_ones(scanner: Scanner) -> None:
    office = "Support Team\nHQ: 500 Howard Street, Suite 300, San Francisco, CA 94105"
    assert "street-address" not in pii_rules(scanner, office)
    home = "Ship to: 500 Howard Street, Apt 3, San Francisco, CA 94105"
    assert "street-address" in pii_rules(scanner, home)


@pytest.mark.parametrize(
    "text",
    ["NIP: 853-946-06-20", "VAT: BE 0602.733.848", "Company no.: 0123 456 789"],
)
def test_a_companys_tax_or_registration_number_is_no_phone(scanner: Scanner, text: str) -> None:
    assert not {"phone-national", "phone-e164"} & pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "Here's the tab from Google Sheets:\nP/N\tStatus\n+42 726 0149\tTODO\n06-7123 4567\tok\n",
        "Nº de pedido\tEstado\n805 963 5800\tok\n192 037 0068\toffen\n",
        "contact_id,full_name,part_no,owner\n226221,Sofía Romero,06-1234 5678,sales\n",
        "order_no;customer;phone\n4155550132;ACME;n/a\n",  # the label ends the line above
        # an aligned listing: cells two blanks apart, a cell's words one
        "ITEM      PART NO        QTY\nvalve     06-7123 4567   4\nhose      020 7946 0958  1\n",
    ],
)
def test_a_number_in_a_part_or_an_order_column_is_no_phone(scanner: Scanner, text: str) -> None:
    """A spreadsheet's column says what its cells are, as a label before a value does."""
    assert not {"phone-national", "phone-e164", "phone-labelled"} & pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "name\tphone\nBob Lane\t020 7946 0958\n",  # a phone's own column
        "order_no;name;phone\n4155550132;Ana;020 7946 0958\n",  # the next column over
        "020 7946 0958\tBob\n",  # no header above the row
        "NAME      PHONE          QTY\nBob Lane  020 7946 0958  1\n",  # an aligned one
        # a line above whose cells fall elsewhere is no header (review 28)
        "CUSTOMER  TRACKING NO\nJane Roe     (415) 555-2671   sent\n",
        "Owner  TRACKING NO\n" + "note  see the runbook\n" * 5 + "call  (415) 555-2671\n",
        "$ list-parts\nvalve     020 7946 0958   4\n",  # a command's line is no header
    ],
)
def test_a_phone_in_its_own_column_is_still_one(scanner: Scanner, text: str) -> None:
    assert {"phone-national", "phone-e164"} & pii_rules(scanner, text)


def test_a_line_longer_than_a_row_is_read_for_no_column(scanner: Scanner) -> None:
    """A value's line is read to its ends only up to a table row's length: a megabyte on
    one line is not read again for each value on it."""
    cells = ",".join(["x"] * (MAX_ROW_BYTES // 2))
    text = f"P/N,{cells}\n06-7123 4567,{cells}\n"
    assert "phone-national" in pii_rules(scanner, text)


def test_japans_free_dial_is_a_businesss_line(scanner: Scanner) -> None:
    assert "phone-national" not in pii_rules(scanner, "電話番号: 0120-128-540")
    assert "phone-national" in pii_rules(scanner, "電話番号: 03-1234-5678")


def test_a_turkish_address_by_its_cadde_alone(scanner: Scanner) -> None:
    person = "SHIP TO:\nAYŞE YILMAZ\nİnönü Cad. No:178 D:12\n35220 Konak/İzmir"
    assert "street-address-turkey" in pii_rules(scanner, person)
    company = "Boğaziçi E-Ticaret A.Ş.\nBüyükdere Cad. No:185\n34394 Şişli/İstanbul"
    assert "street-address-turkey" not in pii_rules(scanner, company)


@pytest.mark.parametrize(
    "number",
    [
        "+44 (0)20 7946 0958",  # the trunk 0 in brackets, as e-mail signatures write it
        "+31 (0)6 1234 5678",
        "+41 (0)79 123 45 67",
        "+5215512345678",  # Mexico's mobile with the 1 WhatsApp still writes
        "+880 2 55012345",  # a Dhaka landline
    ],
)
def test_numbers_that_fit_their_plan_as_people_write_them(scanner: Scanner, number: str) -> None:
    """Review 20: these were lost to the plans' lengths."""
    assert "phone-e164" in pii_rules(scanner, f"Call me: {number}")


def test_a_persons_address_under_a_labelled_company_line_is_still_one(scanner: Scanner) -> None:
    """Only a line that is a company's name alone says the address below is the company's."""
    text = "Shipping carrier: UPS Inc.\n4821 Maple Ridge Dr, Apt 3B, Austin, TX 78745"
    assert "street-address" in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "String 1 2024 Update",
        "Substring 0 1024 Bytes copied",
        "Token Ring 16 4096 Bytes",
        "Keyring 2, 2048 Entries",
        "Spring 3\n2024 Release notes",
        "Hauptstraße 1\n2024 Jahresbericht",
    ],
)
def test_a_year_or_a_size_is_no_four_digit_postcode(scanner: Scanner, text: str) -> None:
    assert "street-address" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "Quad-band GSM 850/900/1800/1900 MHz module",
        "portable: 2024.04.02-1",
        "Celular: 2024-04-02 10:15",
    ],
)
def test_a_band_list_a_version_or_a_date_is_no_mobile(scanner: Scanner, text: str) -> None:
    assert not {"phone-labelled", "phone-national", "phone-e164"} & pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "NAS: 192.168.1.10/24",
        "NAS: DS920-12345",
        "AVS 10234 enabled",
        "IRD 20245 was merged",
        "PNR 20240402",
        "MRN: 1.2.840.10008",
        "CUIT: 30-71234567-8",
    ],
)
def test_short_labels_that_name_other_things_are_no_ids(scanner: Scanner, text: str) -> None:
    """Review 20: a NAS, address verification, a booking reference, an OID, a company."""
    assert "identity-number" not in pii_rules(scanner, text)


def test_a_marketing_metrics_column_named_cpr_is_no_ids(scanner: Scanner) -> None:
    text = "campaign,cpr,clicks\nspring,104523,2100\nsummer,98231,1800\n"
    assert "table-identity-number" not in pii_rules(scanner, text)


def test_a_crlf_psql_table_is_read(header_only: Scanner) -> None:
    text = " id | passport\r\n----+----------\r\n  1 | X1234567\r\n"
    assert "table-identity-number" in pii_rules(header_only, text)


def test_a_json_results_table_after_a_pipe_in_the_command(header_only: Scanner) -> None:
    result = " id | passport\n----+----------\n  1 | X1234567\n(1 row)"
    text = json.dumps({"cmd": "psql -c 'select a|b'", "content": result})
    assert "table-identity-number" in pii_rules(header_only, text)


def test_a_dataframe_header_longer_than_a_row_is_not_read() -> None:
    """A header of MAX_ROW_BYTES or more is no frame's (1 MB of one took 330 ms, review 20);
    the same frame with a header of a row's length is read."""
    row = "0  K8421973\n"  # aligned under the first column, whose name ends at 11
    short = "   passport" + "  passport" * 2
    assert [f.value for f in read_all(f"{short}\n{row}".encode())] == ["K8421973"]
    long = "   passport" + "  passport" * 200
    assert read_all(f"{long}\n{row}".encode()) == []


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "加藤 蓮", "bank_account": "三井住友銀行 本店営業部 普通 8532377"}',
        "振込先口座：楽天銀行 新宿支店 普通 8046785",
        "みずほ銀行 渋谷支店 普通預金 口座番号 1234567",
    ],
)
def test_a_japanese_bank_account(scanner: Scanner, text: str) -> None:
    assert "japanese-bank-account" in pii_rules(scanner, text)


def test_a_japanese_banks_products_name_no_account(scanner: Scanner) -> None:
    assert not pii_rules(scanner, "楽天銀行の支店一覧、普通預金の金利は0.02%、定期は1234567円から")


@pytest.mark.parametrize(
    "text",
    [
        "Petite question : | Nom | date de naissance |\n|---|---|\n"
        "| Camille Laurent | 18/04/1977 |",
        "@tanaka.k · 09:19: | 氏名 | 生年月日 |\n|---|---|\n| 鈴木 真由美 | 1969-12-24 |",
    ],
)
def test_a_markdown_table_after_a_label_on_its_headers_line(scanner: Scanner, text: str) -> None:
    assert "table-date-of-birth" in pii_rules(scanner, text)


def test_a_table_after_a_word_with_no_colon_is_no_table(scanner: Scanner) -> None:
    text = "Note | Name | date of birth |\n|---|---|\n| Camille Laurent | 18/04/1977 |"
    assert "table-date-of-birth" not in pii_rules(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "numer dowodu osobistego: VDA 668880",
        "| Imię i nazwisko | dowód osobisty |\n|---|---|\n| Krzysztof Lewandowski | VDA 668880 |",
        "Tomasz Wójcik: «mój nr dowodu to BHL 438550, proszę poprawić»",
    ],
)
def test_a_polish_identity_cards_number(scanner: Scanner, text: str) -> None:
    """Its series is three letters, which any other number's check reads as a word: the
    card's own check digit decides."""
    assert pii_rules(scanner, text) & {"identity-number", "table-identity-number"}


@pytest.mark.parametrize("text", ["dowód osobisty: VDA 668881", "passport ABC 123456 expired"])
def test_three_letters_and_six_digits_failing_the_cards_check(scanner: Scanner, text: str) -> None:
    assert not pii_rules(scanner, text)


# -- an ACH file's entries: a consumer's bank account and name ----------------------------


def _ach_batch(entry_class: str) -> str:
    """A batch header (5) of 94 columns: the Standard Entry Class in columns 51-53."""
    line = f"5200{'RIVERBEND DENTAL':<16}{'':<20}1465465945{entry_class}{'PAYROLL':<10}"
    line += f"240412240817   1{'22099822':<8}0000411"
    assert len(line) == 94
    assert line[50:53] == entry_class
    return line


def _ach_entry(account: str, name: str, routing: str = "021000021", code: str = "22") -> str:
    """An entry detail record (6) of 94 columns, laid out as NACHA's rules say."""
    line = f"6{code}{routing}{account:<17}0000199312{'EMP4155':<15}{name:<22}  0220998220000001"
    assert len(line) == 94
    return line


def test_a_consumer_batchs_entries_are_each_a_persons_account(scanner: Scanner) -> None:
    text = "\n".join(
        [
            "101  220998222 3476599152408212248A094101JPMORGAN CHASE BANK    RIVERBEND DENTAL",
            _ach_batch("PPD"),
            _ach_entry("281581667385", "MARCUS WHITFIELD"),
            _ach_entry("0133-6055606", "HUANG, DANIELLE", routing="011000015", code="32"),
            "820000000301275300970000000000000000008258741465465945",
        ]
    )
    found = [f for f in scanner.scan(text) if f.rule_id == "ach-entry-account"]
    assert [text[slice(*f.span)] for f in found] == ["281581667385", "0133-6055606"]
    assert {f.category for f in found} == {"pii"}


def test_an_entry_pasted_without_its_batch_is_judged_by_its_name(scanner: Scanner) -> None:
    entry = _ach_entry("62625951021", "LATOYA KOWALCZYK", code="27")
    text = f"The bank rejected this entry for its addenda indicator:\n{entry}\nWhy?"
    assert "ach-entry-account" in {f.rule_id for f in scanner.scan(text)}


@pytest.mark.parametrize(
    "text",
    [
        # a Windows tool's or a bank portal's line ends
        f"{_ach_batch('PPD')}\r\n{_ach_entry('281581667385', 'MARCUS WHITFIELD')}\r\n",
        # pasted indented, into a quote or a log
        f"  {_ach_batch('WEB')}\n  {_ach_entry('281581667385', 'MARCUS WHITFIELD')}\n",
        # a joint account's names
        f"{_ach_batch('PPD')}\n{_ach_entry('281581667385', 'JOHN & JANE DOE')}\n",
        f"{_ach_batch('PPD')}\n{_ach_entry('281581667385', 'DOE/JANE')}\n",
        # a company's batch, ended by its control record, then a consumer's entry pasted
        f"{_ach_batch('CCD')}\n{_ach_entry('1368031987', 'MIDWEST PAPER CORP')}\n"
        f"8200{'0' * 83}0000411\nand this one:\n{_ach_entry('281581667385', 'MARCUS WHITFIELD')}",
    ],
    ids=["crlf", "indented", "joint", "joint-slash", "after-a-company-batch"],
)
def test_a_consumers_entry_is_read_however_it_was_pasted(scanner: Scanner, text: str) -> None:
    found = [f for f in scanner.scan(text) if f.rule_id == "ach-entry-account"]
    assert [text[slice(*f.span)] for f in found] == ["281581667385"]


@pytest.mark.parametrize(
    ("entry_class", "entry"),
    [
        ("CCD", _ach_entry("1368031987", "GREAT LAKES LOGISTICS")),  # a company's batch
        ("CTX", _ach_entry("1368031987", "0002GREATLAKESLOG")),
        ("PPD", _ach_entry("*****6357", "MARCUS WHITFIELD")),  # masked
        ("PPD", _ach_entry("XXXXXX6357", "MARCUS WHITFIELD")),
        ("PPD", _ach_entry("281581667385", "[REDACTED]")),
        ("PPD", _ach_entry("123456789", "TEST RECEIVER ONE")),  # a test file's
        ("PPD", _ach_entry("281581667385", "MARCUS WHITFIELD", routing="021000022")),  # no ABA
        ("PPD", _ach_entry("281581667385", "")),
        ("PPD", _ach_entry("12345678", "Receiver Account Name")),  # a library's sample file
    ],
    ids=[
        *("ccd", "ctx", "masked", "masked-x", "redacted", "test", "routing-check", "no-name"),
        "sample",
    ],
)
def test_what_is_no_consumers_entry_is_not_read(
    scanner: Scanner, entry_class: str, entry: str
) -> None:
    text = f"{_ach_batch(entry_class)}\n{entry}\n"
    assert "ach-entry-account" not in {f.rule_id for f in scanner.scan(text)}


def test_the_ach_routing_check() -> None:
    assert pii.aba_routing("021000021")  # JPMorgan Chase, New York
    assert pii.aba_routing("011000015")  # the Federal Reserve Bank of Boston
    assert not pii.aba_routing("021000022")
    assert not pii.aba_routing("000000000")
    assert not pii.aba_routing("02100002")


def test_a_flat_files_personal_column_is_read_between_its_pipes(scanner: Scanner) -> None:
    """A pipe-delimited export (no pipe at either end, none with a blank beside it), and a
    column named by a word that other words hold ("sin" in "using")."""
    text = (
        "# t4_2023_prep.txt  employer BN 288846256 RP0001\n"
        "SIN|LAST|FIRST|BOX14_INCOME\n"
        "638625608|PELLETIER|PRIYA|60406.34\n"
        "354043903|MACLEOD|ETIENNE|58592.36\n"
    )
    found = [f for f in scanner.scan(text) if f.rule_id == "table-identity-number"]
    assert [text[slice(*f.span)] for f in found] == ["638625608", "354043903"]
    comma = text.replace("|", ",")
    assert len([f for f in scanner.scan(comma) if f.rule_id == "table-identity-number"]) == 2


@pytest.mark.parametrize(
    "text",
    [
        "using sin, cos from the math module\n638625608, 354043903\n",
        "cat users.csv | grep ssn | wc -l\n123-45-6789 | x | y\n",  # a pipeline, not a header
    ],
)
def test_what_is_no_flat_files_personal_column_is_not_read(scanner: Scanner, text: str) -> None:
    assert "table-identity-number" not in {f.rule_id for f in scanner.scan(text)}


@pytest.mark.parametrize(
    "text",
    [
        "x,sin,cos\n0,0,1000000\n1,841470,540302\n2,909297,416146\n",  # a fixed-point sine
        "pixel,blue,green,red,nir\n1,10234,11873,9921,283741\n2,10311,12004,9875,290114\n",
        "pytanie,tak,nie\nq1,120334,98231\nq2,99012,110234\n",  # Polish: yes, no
    ],
    ids=["sine", "near-infrared", "polish-no"],
)
def test_numbers_under_a_bare_short_name_must_pass_its_documents_check(
    scanner: Scanner, text: str
) -> None:
    assert "table-identity-number" not in {f.rule_id for f in scanner.scan(text)}
