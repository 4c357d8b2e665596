"""The Python-aware checks: credentials in code, built connection strings, imports, headers."""

from __future__ import annotations

import pytest

from devpulse import config_from_mapping
from devpulse.plugins.privacy import Scanner


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
    findings = scanner.scan(fenced(code))
    assert rule in {f.rule_id for f in findings}


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
    ],
)
def test_python_look_alikes(scanner: Scanner, code: str) -> None:
    assert scanner.scan(fenced(code)) == []


def test_the_ast_rule_wins_over_the_generic_regex_on_the_same_value(scanner: Scanner) -> None:
    findings = scanner.scan(fenced("DB_PASSWORD = 'x9$Kq2mPz!7vLr'"))
    assert [f.rule_id for f in findings] == ["py-hardcoded-credential"]


def test_a_specific_rule_wins_over_the_ast_rule(scanner: Scanner) -> None:
    code = "GITHUB_TOKEN = 'ghp_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5" + "'"
    assert [f.rule_id for f in scanner.scan(fenced(code))] == ["github-token"]


def test_span_points_at_the_value_inside_the_quotes(scanner: Scanner) -> None:
    text = fenced("x = 1\nDB_PASSWORD = 'x9$Kq2mPz!7vLr'")
    (finding,) = scanner.scan(text)
    assert text[slice(*finding.span)] == "x9$Kq2mPz!7vLr"


def test_whole_prompt_that_parses_as_python(scanner: Scanner) -> None:
    findings = scanner.scan("import acme_ledger\nSECRET = 'k2P!x9Qz7LmW'\n")
    assert {"py-internal-import", "py-hardcoded-credential"} <= {f.rule_id for f in findings}


def test_source_that_does_not_parse_falls_back_to_the_regex_rules(scanner: Scanner) -> None:
    broken = fenced("def broken(:\n    password = 'Vt9#mK2pL7qR'")
    assert {f.rule_id for f in scanner.scan(broken)} == {"generic-credential-assignment"}
