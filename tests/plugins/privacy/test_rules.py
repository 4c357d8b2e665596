"""Each detector on realistic positives and the look-alikes it must leave alone."""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from devpulse import config_from_mapping
from devpulse.plugins.privacy import Scanner
from devpulse.plugins.privacy import scanner as scanner_module
from devpulse.plugins.privacy.checks import grouped_key, jwk_private_member
from devpulse.plugins.privacy.rules import packaged_rules, text_without, widened
from tests.plugins.privacy import secrets_factory as make
from tests.plugins.privacy.calls import counted_searches

CONFIG = {
    "privacy": {
        "internal_domains": ["acme.internal", "acme-corp.com"],
        "internal_packages": ["acme_"],
        "client_names": ["Globex", "Initech"],
    }
}


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(config_from_mapping(CONFIG).privacy)


def rule_ids(scanner: Scanner, text: str) -> set[str]:
    return {f.rule_id for f in scanner.scan(text)}


def categories(scanner: Scanner, text: str) -> set[str]:
    return {f.category for f in scanner.scan(text)}


def found_in_text(scanner: Scanner, template: str, value: str) -> bool:
    """Whether a finding's span in `template` with `value` for its {0} is `value`."""
    text = template.replace("{0}", value)
    return value in {text[slice(*f.span)] for f in scanner.scan(text)}


RNG = random.Random(7)
_MARKED = random.Random(36)


def run(n: int, alphabet: str = make.ALNUM, rng: random.Random = _MARKED) -> str:
    """`n` characters of `alphabet` at random: a token's random part."""
    return "".join(rng.choice(alphabet) for _ in range(n))


HEX, LOWER_ALNUM = "0123456789abcdef", string.ascii_lowercase + string.digits


def _b64url(size: int, seed: int = 7) -> str:
    """Base64url of `size` random bytes, as a JSON Web Key holds its members."""
    raw = random.Random(seed).randbytes(size)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


POSITIVES = [
    ("aws-access-key-id", f"key id {make.aws_key_id(RNG)} in the logs"),
    (
        "aws-key-pair",
        f"AWS_ACCESS_KEY_ID={make.aws_key_id(RNG)}\nAWS_SECRET_ACCESS_KEY={make.aws_secret(RNG)}\n",
    ),
    ("aws-secret-access-key", f'aws_secret_access_key = "{make.aws_secret(RNG)}"'),
    (
        "gcp-service-account",
        '{"type": "service_account", "project_id": "p", "private_key_id": "1"}',
    ),
    ("gcp-api-key", f"maps key={make.gcp_api_key(RNG)}&q=x"),
    (
        "azure-storage-key",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
        f"{make.base64_key(RNG, 86)}==;EndpointSuffix=core.windows.net",
    ),
    ("azure-ad-client-secret", 'client_secret = "a8Q7Q~xYz1.abcDEFghiJKLmnoPQRstuVWX9_k-"'),
    ("anthropic-api-key", f"ANTHROPIC_API_KEY={make.anthropic_key(RNG)}"),
    ("openai-api-key", f"client = OpenAI(api_key='{make.openai_key(RNG)}')"),
    ("huggingface-token", f"login(token={make.huggingface_token(RNG)!r})"),
    ("github-token", f"git clone https://{make.github_token(RNG)}@github.com/org/repo"),
    ("gitlab-token", f"PRIVATE-TOKEN: {make.gitlab_token(RNG)}"),
    ("gitlab-runner-registration-token", "--registration-token GR1348941aB3dE5fG7hI9jK1lM3nO"),
    ("slack-token", f"SLACK_BOT={make.slack_token(RNG)}"),
    ("slack-token", "legacy: xoxr-918273-564738-192837-7c3f9a2e5b8d1046af"),
    (
        "slack-webhook",
        "post to https://hooks.slack.com/services/T0ABCDEFG/B0HIJKLMN/aB3dE5fG7hI9jK1lM3nO5pQ7",
    ),
    ("stripe-key", f"stripe.api_key = {make.stripe_key(RNG)}"),
    ("twilio-api-key", "twilio key SK2c5e8f0a3b6d9c1e4f7a0b3c6d9e2f5a"),
    ("sendgrid-api-key", f"SENDGRID={make.sendgrid_key(RNG)}"),
    ("npm-token", f"//registry.npmjs.org/:_authToken={make.npm_token(RNG)}"),
    (
        "pypi-token",
        "password = pypi-AgEIcHlwaS5vcmcCJGE4ZjQ2Y2JjLTQ5ZTctNDFhZC1iNDE2LTBkYjYxNmRh"
        "MzQ4YwACKlszLCJlYzE2NjYzMi04ZjE",
    ),
    ("private-key", make.private_key(RNG)),
    ("jwt", f"Cookie: session={make.jwt(RNG)}"),
    ("credentials-in-url", f"DATABASE_URL={make.postgres_url(RNG)}"),
    ("credentials-in-url", "amqp://orders:Zr8!pQ2vLx@mq.example.net:5672/vhost"),
    # any scheme, not only the databases' and brokers'
    ("credentials-in-url", "git clone ssh://deploy:Zr8pQ2vLx9mK@git.example.net/repo.git"),
    ("credentials-in-url", "svn co svn+ssh://deploy:Zr8pQ2vLx9mK@svn.example.net/trunk"),
    ("credentials-in-url", "mount smb://CORP;alice:Zr8!pQ2vLx@fs.example.net/share"),
    (
        "oracle-connect-credentials",
        "url=jdbc:oracle:thin:app/Zr8pQ2vLx9mK@db.example.net:1521:ORCL",
    ),
    ("oracle-connect-credentials", "$ sqlplus -s app/Zr8pQ2vLx9mK@prod @report.sql"),
    ("authorization-header", "curl -H 'Authorization: Bearer 9fK2mQ7xLp4Rz8Wv3Bn6Yc1Td'"),
    ("snmp-community", "snmpwalk -v2c -c 'Copper1977!saffron' 10.20.14.1 1.3.6.1.2.1.1"),
    ("snmp-community", "snmpwalk -v3 -l authPriv -u admin -a SHA -A 'Auth0rPass!9' host"),
    # PHP's and Ruby's arrays, Scala's pairs: the header as a key and its value
    ("authorization-header", "$h = ['Authorization' => 'Bearer 9fK2mQ7xLp4Rz8Wv3Bn6Yc1Td'];"),
    ("authorization-header", 'headers.add("Authorization" -> "Token 9fK2mQ7xLp4Rz8Wv3Bn6Yc1Td")'),
    ("authorization-header-scheme", "['Authorization' => 'GenieKey 9fK2mQ7xLp4Rz8Wv3Bn6Yc1Td']"),
    ("assigned-credential", 'db_password: "Vt9#mK2pL7qR"'),
    ("assigned-credential", "export SERVICE_TOKEN=Xk29fPq7Lm3vRt8Z"),
    # a $ and capitals, then an @: a password, not a variable before a URL's host
    ("assigned-credential", 'password = "$UPER@dmin1x"'),
    ("assigned-credential", "smtp_password: $PRING@Time.99"),
    ("assigned-credential", 'DB_PASSWORD="$ECRET@Home.2024"'),
    # $$ and no variable's name in capitals: a password that starts so
    ("assigned-credential", "export DB_PASS=$$Kx9mQ2vL7pRt"),
    ("credentials-in-url", "mysql://root:$$Secr3tPw@db.example.com/db"),
    ("email-address", "Please reply to maria.gonzalez@globalmail.net by Friday."),
    ("phone-e164", "Call me on +44 20 7946 0958 after lunch."),
    ("phone-national", "Her number is (415) 555-2671."),
    ("phone-national", "Appelez le 06 12 34 56 78 demain."),
    # a record's fields: a street line, a document's type and number
    (
        "street-address-record",
        '{"name": "D. W.", "address1": "768 Willow Creek Rd", "zip": "83702"}',
    ),
    ("street-address-record", "address:\n  street: Lindenstraße 42\n  city: Köln"),
    ("street-address-record", '{"addressLine1": "12 Rue de Rivoli", "city": "Paris"}'),
    ("identity-document-record", '{"tipo":"DNI","numero":"39715062L"}'),
    ("street-address-record", '{"strasse": "Lindenstraße 42", "plz": "50674", "ort": "Köln"}'),
    ("date-of-birth", '{"nombre": "Ana", "fecha_nacimiento": "1985-03-14"}'),
    ("date-of-birth", '{"data_nascimento": "1985-03-14"}'),
    ("identity-document-record", '"document": {\n  "type": "P",\n  "number": "955713925"\n}'),
    # an area code, a dash, then groups set apart by blanks (Sweden, Finland)
    ("phone-national", "Kunden vill bli uppringd på 072-509 97 03 angående leveransen."),
    ("phone-national", "Soita numeroon 040-123 4567 huomenna."),
    ("credit-card", "card 4539 1488 0343 6467 exp 09/27"),
    ("iban", "IBAN: DE89 3704 0044 0532 0130 00"),
    ("us-ssn", "SSN 536-22-8841 on file"),
    ("us-ssn-labelled", "social security number: 536228841"),
    ("date-of-birth", "Patient DOB: 1984-03-12, admitted Tuesday"),
    ("date-of-birth", "She was born on 4 July 1979 in Leeds."),
    ("identity-number", "Passport No: C01X00T47, expires 2031"),
    ("private-ipv4", "connect to 10.42.7.19 on port 5432"),
    ("private-ipv4", "gateway 192.168.1.1."),
    ("internal-hostname", "ssh deploy@build-01.corp"),
    ("internal-domain", "see https://wiki.acme.internal/runbooks"),
    ("internal-domain", "mail goes through smtp.acme-corp.com"),
    ("internal-package", "pip install acme_billing==2.3"),
    ("token-in-prose", "the billing API key is 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c, use it"),
    ("token-in-prose", "the bearer token for staging is Zq8rT2mXwP4kL9vB3nYc, rotate it"),
    ("token-in-prose", "the API key for the prod-eu account was 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c"),
    ("token-in-prose", "the REST API key for the demo account = 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c"),
    ("token-in-prose", "Use this API token in the CI settings -> Zq8rT2mXwP4kL9vB3nYc"),
    ("token-in-prose", "I rotated the token today, the new one is Zq8rT2mXwP4kL9vB3nYc"),
    (  # an aligned table whose column is the value's
        "token-in-prose",
        "NAME                VALUE               UPDATED\nSTRIPE_SECRET_KEY   0d4c2b9e7f1a3c58"
        "    3d ago\n",
    ),
    ("basic-auth-key-as-user", 'get(u, auth=("857060c9-281e-4637-bef2-90796488c987", ""))'),
    ("basic-auth-key-as-user", 'session.auth = ("3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c", "X")'),
    ("basic-auth-key-as-user", 'f(u, HTTPBasicAuth("q8Xb2Lm9Tz4Rw7Kp1Vn6Hs3J", "api_token"))'),
    ("login-command-token", "pip install nomic\nnomic login nk-QnCuGVtPVJAB2xN1FKm35fo49Eltyp1K1"),
    ("login-command-token", "mabl auth activate-key BdGr1Jl_81w-nK5xtuJnbW"),
    (
        "class-argument-key",
        "$c = new \\Acme\\Teamleader\\Teamleader(\n  'e02e20ad66b31e7eca5346515bf05d81',\n 'x');",
    ),
    ("token-set-in-prose", "i set ACME_AUTH_TOKEN to be951477-4ac0-4e00-a0fc-04a46aaaa34b and"),
    ("token-set-in-prose", "I changed the API key to 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c yesterday"),
    ("token-set-in-prose", "1. set `ACME_AUTH_TOKEN` to `9f8f7103-ada3-44da-a4a4-93ae85d2a858`"),
    ("token-set-in-prose", "changed my api token to: q8Xb2Lm9Tz4Rw7Kp1Vn6Hs3Jd5Fg0YcAb12"),
    ("token-set-in-prose", "set the API key value to 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c"),
    (
        "token-set-in-prose",
        "| 09:31 | rolled MAILPACE_ACCESS_KEY back to `c9400164-9ffa-4a77-a405-eead8a2fbec2` |",
    ),
    ("token-set-in-prose", "we switched the API key to 4f9c2a7b1e8d4c6f9a0b2c3d4e5f6a7b today"),
    ("token-set-in-prose", "rotated the production bot token to q8Xb2Lm9Tz4Rw7Kp1Vn6Hs3Jd5Fg0Yc."),
    ("token-set-in-prose", 'update the secret to "secret-GfJeN2r1wJH0igne4zkgAljVtKCrw8nVuu6q"'),
    (
        "launchdarkly-sdk-key",
        'ld.MakeClient("sdk-3f9c2a7b-1e8d-4c6f-9a0b-2c3d4e5f6a7b", 5*time.Second)',
    ),
    (
        "assigned-credential",
        "pagerduty_configs:\n  - routing_key: 3f9c2a7b1e8d4c6f9a0b2c3d4e5f6a7b",
    ),
    ("assigned-credential", "[domain/corp]\nldap_default_authtok = Qm8xRt2Vw9Lp3K"),
    # a client built with its key as a positional argument; DeepL's free keys
    ("sdk-client-key", f'const c = algoliasearch("LATENCY9Q2", "{run(32, HEX)}");'),
    ("sdk-client-key", f'var c = SearchClient.create("LATENCY9Q2", "{run(32, HEX)}");'),
    ("sdk-client-key", f'co = cohere.Client("{run(40)}")'),
    ("sdk-client-key", 'deepl.Translator("3f9c2a7b-1e8d-4c6f-9a0b-2c3d4e5f6a7b:fx")'),
    # a command that takes its key as an argument
    ("cli-login-token", f"$ wandb login {run(40, HEX)}"),
    ("cli-login-token", "snyk auth 3f9c2a7b-1e8d-4c6f-9a0b-2c3d4e5f6a7b"),
    ("cli-login-token", f"shodan init {run(32)}"),
    ("cli-login-token", f"ngrok config add-authtoken 2{run(26)}_{run(21)}"),
    ("cli-login-token", f"b2 authorize-account 0025f2c1e8d4c6f0000000001 K002{run(27)}"),
    ("cli-login-token", "./codecov upload-process -t 3f9c2a7b-1e8d-4c6f-9a0b-2c3d4e5f6a7b"),
    # platforms' marked tokens: Tavily, Firecrawl, Stability, ElevenLabs, Neon, Matrix, ...
    ("llm-provider-key", f"client = TavilyClient('tvly-{run(32)}')"),
    ("sk-dash-key", f"stability.api_key('sk-{run(48)}')"),
    ("neon-api-key", f"psql ... # neon napi_{run(64, LOWER_ALNUM)}"),
    ("matrix-access-token", f"Authorization: Bearer syt_YWxpY2U_{run(20)}_{run(6)}"),
    ("matrix-access-token", f'"refresh_token": "syr_YWxpY2U_{run(20)}_{run(6)}"'),
    # a password quoted in braces in a format spec's place
    ("assigned-credential", "password={admin:S3cr3t!9x}"),
    ("rootly-api-key", f"ROOTLY=rootly_{run(64, HEX)}"),
    ("readme-api-key", f"readme login rdme_{run(70, LOWER_ALNUM)}"),
    ("stytch-secret", f"stytch.Client(project_id='p', secret='secret-test-{run(36)}')"),
    ("onesignal-api-key", f"onesignal os_v2_app_{run(110, string.ascii_lowercase + '234567')}"),
    ("twitch-oauth-token", f"PASS oauth:{run(30, LOWER_ALNUM)}"),
    ("dropbox-access-token", f"dbx = dropbox.Dropbox('sl.u.{run(140, make.ALNUM + '_-')}')"),
    ("token-in-prose-translated", "Voici la clé API Mistral : Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE"),
    ("token-in-prose-translated", "la clave de la API es Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE"),
    ("token-in-prose-translated", "Der API-Schlüssel lautet Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE"),
    ("token-in-prose-translated", "la chiave API di OpenRouter è Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE"),
    ("token-in-prose-translated", "ключ API: 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c"),
    ("token-in-prose-translated", "jeton d'accès — Zq8rT2mXwP4kL9vB3nYc"),
    ("token-in-prose-cjk", "API 密钥是 Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE"),
    ("token-in-prose-cjk", "APIキーは Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE です"),
    ("token-in-prose-cjk", "API 키: Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE"),
    ("token-in-prose-cjk", "我的 API Key 是 Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE"),
    ("token-in-prose-translated", "Le token est Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aE, garde-le."),
    # random lower case and digits, base32: tokens, however long their runs of one kind
    ("token-in-prose", "the API key is mmex6l2qagwncxvjcnqcnau0xltenc59"),
    ("token-in-prose", "the 2FA secret is ZXQYXJXVF4OLDSQT"),
    # ODBC quotes a value in braces: a password, not a template's field
    ("assigned-credential", "Driver={ODBC Driver 17};Server=db;Uid=sa;Pwd={s3cr3tpassw0rd9};"),
    ("token-in-prose", "FOOBAR_API_KEY 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c"),
    ("token-in-prose", "machine api.example.com\ntoken\tZq8rT2mXwP4kL9vB"),
    ("token-in-prose", "Your API key:\n  3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c"),
    ("token-in-prose", "| Name | Value |\n|---|---|\n| API_KEY | 3a8f9c2e7b1d4f6a9e0c5b8d2f7 |"),
    ("token-in-prose", "API_KEY,3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c"),
    ("token-in-prose", "- staging token - 'Zq8rT2mXwP4kL9vB3nYc'"),
    ("token-in-prose", "billing secret key -> 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c"),
    ("token-in-prose", "deploy token — Zq8rT2mXwP4kL9vB3nYc"),
    ("password-in-prose", "admin password - W1A!gbHSM0y5"),
    ("password-in-prose", "the password for the staging db is Zr8pQ2vLx9mK"),
    ("password-in-prose", "the password for the staging db: Zr8pQ2vLx9mK"),
    ("password-in-prose", "Password for admin@corp.io - Zr8pQ2vLx9mK"),
    ("password-in-prose", "the pw is Zr8pQ2vLx9mK"),
    ("password-in-prose", "my pass is Zr8pQ2vLx9mK"),
    ("password-in-prose", "the pwd for prod is Zr8pQ2vLx9mK"),
    ("password-in-prose", "the pw is Zr8p_Q2vLx9mK, for the demo db"),  # after "is", any value
    ("password-in-prose-translated", "Mein Passwort ist tundra-9212copper"),
    (
        "ntlm-hash-dump",
        "Administrator:500:aad3b435b51404eeaad3b435b51404ee:3bc5ae489ff49ac3804c6181bf172c75:::",
    ),
    ("otp-seed", "otpauth://totp/ACME:alice?secret=K7QX2M5RWZ4PLN3VTHY6BC2DJ7GFE5SA&issuer=ACME"),
    ("otp-seed", "2FA backup: secret key 6bvt 3ysc jzpz snto wwbl p7hd wmuv uv2g"),
    (
        "ssm-secure-string",
        'resource "aws_ssm_parameter" "k" {\n  type  = "SecureString"\n'
        '  value = "9ed328ffd65e85ad5ed6b58cf22e24b9-7ebcf48c-187a6eef"\n}',
    ),
    (
        "ssm-secure-string",
        'resource "aws_ssm_parameter" "k" {\n'
        '  value = "GSnTePM719S5zpw1gPlZmHmqj1D7pnMHSjA9J+t8NgE="\n  type = "SecureString"\n}',
    ),
    (
        "ssm-secure-string",
        "aws ssm put-parameter --name /db --type SecureString --value 'Zq8rT2mX!'",
    ),
    (
        "twilio-auth-token",
        "$client = new \\Twilio\\Rest\\Client('ACd421eb58b0e66bd5e86b8308255c79b7',"
        " '2aec6798b3146268f311152eb0fb6a10');",
    ),
    ("poetry-credentials", "# poetry config http-basic.private ci 5L_7XqOJACXbM-k"),
    ("psexec-password", "psexec \\\\10.0.0.5 -u CORP\\admin -p PM4oM0SnPW3J cmd.exe"),
    ("psexec-password", 'PsExec64.exe \\\\srv -u admin -p "lboFTSkwvbs4" -s cmd'),
    ("php-database-password", "$conn = mysqli_connect('db.example.org', 'app', 'Zr8pQ2vLx9mK');"),
    ("php-database-password", '$db = new mysqli("localhost", "shop_app", "Zr8pQ2vLx9mK", "shop");'),
    ("php-database-password", "$pdo = new PDO($dsn, 'shop_app', 'Zr8pQ2vLx9mK');"),
    ("php-database-password", "mysqli_real_connect($link, 'db', 'shop_app', 'Zr8pQ2vLx9mK');"),
    ("credentials-pair-in-prose", "Login: Administrator / P@ssw0rd2024!"),
    (
        "salesforce-access-token",
        "00DsDnJtdJHLV3uk7V!PiL0AFh8U_JNbK67rA0Ygh7RoeZ_VOfulUt07SBb7Q2mXwP4kL9vB3nYcZr8pQ2vLx9mK"
        "aB3dE5fG7hJ9kL1mN3pQ5rS7tV9",
    ),
    (
        "kerberos-hash",
        "$krb5asrep$23$alice@CORP.LOCAL:3c88cef0f34f7a1ca59d026e81219a0b$"
        "9f1c2e4d6b8a0c3e5f7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e1c3a5b7d9f1e3c5a7b9d1f",
    ),
    ("wifi-psk", 'network={\n    ssid="HomeNet-5G"\n    psk="Winter.8024cobalt"\n}'),
    ("wifi-psk", "[wifi-security]\nkey-mgmt=wpa-psk\npsk=Winter.8024cobalt\n"),
    ("network-device-password", "username admin privilege 15 secret 0 HnahS^A0Vuddqc0*CCQi"),
    ("network-device-password", "snmp-server community PjCJr7Qi8jJSpj RO"),
    ("network-device-password", "line vty 0 4\n password 7 0822455D0A16\n login"),
    (
        "credentials-pair-in-prose",
        "The admin login for the staging WordPress is admin / WuG3@g89E86@Y, why denied?",
    ),
    ("credentials-pair-in-prose", "the vpn creds are vpnuser / RnmjcR7y8gO+Np*CTT"),
    ("password-in-prose-translated", "salasanani on Velvet$396juniper, miksi ei toimi?"),
    ("otp-seed", 'uri = "otpauth://hotp/Vault?counter=4&secret=k7qx2m5rwz4pln3v"'),
    ("otp-seed", "![qr](otpauth://totp/x?issuer=x&secret=K7QX2M5RWZ4PLN3VTHY6BC2D==)"),
    (
        "otp-seed",
        'TOTP_SEED = "THG6MCX7XJ6VQ2N4DFSPVKIWUQUBDKW5"\ncode = pyotp.TOTP(TOTP_SEED).now()',
    ),
    ("otp-seed", "e2e:\n  mfa_seed: jbswy3dpehpk3pxpkzxw4zlt\n"),
    ("otp-seed", "ADMIN_TOTP_SEED=KRSXG5CTMVRXEZLUKN2XAZLS"),
    # a : or = inside, after a capital and a digit (Jenkins' console, a build parameter)
    ("cli-password-flag", "+ mysql -h db -u deploy -pFBgzYPryik7zxN=f01--2cQ^dr -e 'source m.sql'"),
    ("cli-user-then-password", "Run `mysql -u root -p Mosaic1983!juniper` to connect."),
    # a placeholder's word inside a password, and a value a log cut (review 29)
    ("assigned-credential", 'password = "Truncated!2024x"'),
    ("assigned-credential", 'db_password: "Xk9mQ2vL7pRtZ (truncated)"'),
    # a property list's <key> whose text is a key, a value element after it
    ("aws-access-key-id", "<key>AKIAQ3EGT7XLUMN5BW2K</key>\n<date>2024-01-01T00:00:00Z</date>"),
    # a DSL call with a comment after it; a short Vault token with no digit
    ("assigned-credential", "        storePassword 'fkzzI2-ij7S9P-v4U!03ro' // release key"),
    ("vault-token", "debug: using hvs.MsmPUbOTWzxlPUEKOYVLeAAu"),
    (
        "session-cookie-set",
        '{"name": "sessionid", "httpOnly": true, "path": "/", "value": "bl9uk5eqtv36x2h1drpaez"}',
    ),
    # a user, then pw and the password, in a note
    (
        "user-then-password-in-prose",
        "admin console at https://a.x.co — user ops-admin, pw lemon_Maple73",
    ),
    ("user-then-password-in-prose", "user bob; pass Tundra-Raven-4154 for the vpn"),
    # a session cookie as a HAR's record
    (
        "session-cookie-set",
        '{\n  "name": "sessionid",\n  "value": "bl9uk5eqtv36x2h1drpaezult3m5fj16",\n}',
    ),
    (
        "session-cookie-set",
        '{"name": "JSESSIONID", "path": "/", "value": "8F3A9C2B7E1D4F6A9E0C5B8D2F"}',
    ),
    # macOS's security, in the scripts that sign an iOS app
    ("keychain-password", "security create-keychain -p hB@TiamQRRSrzXfUl1 ci.keychain"),
    ("keychain-password", 'security unlock-keychain -p "+g^4d_PEz.Zv0wpC" "$KEYCHAIN"'),
    ("keychain-password", 'security set-key-partition-list -S apple: -s -k "+g^4d_PEz.Zv0" k'),
    (
        "keychain-password",
        "security import ./dist.p12 -k '/Users/ci/build.keychain' -P T9*IgHbPLfc@i%r.Li -T x",
    ),
    ("cli-user-then-password", "mysql -u root -p Mosaic1983!juniper;"),
    (
        "bech32-private-key",
        "const { data: sk } = nip19.decode("
        "'nsec1frqxkahad295nuqu366vv3g6lw4lcglgjcu9xdfauhrvtcwmgn5dnya6pv');",
    ),
    (
        "bech32-private-key",
        "sui keytool import "
        "'suiprivkey1qrkh4jsrk5wzw5pfpv8yhjn7fly8fy5hg376sfpmpqkl2t2xl79gcu26mfv' ed25519",
    ),
    (
        "node-signing-key-file",
        '"priv_key": {\n  "type": "tendermint/PrivKeyEd25519",\n'
        '  "value": "AxnKnOdT5HhsvSHNz38XVv76QMJkBC3eaLWMv+BJNs5SUZkpGsBMLdCwrsQsONDJ1cHlk'
        'Npjggpgdd9jqzA/nA=="\n}',
    ),
    (
        "node-signing-key-file",
        '{\n  "type": "PaymentSigningKeyShelley_ed25519",\n'
        '  "description": "Payment Signing Key",\n'
        '  "cborHex": "5820ab098d37be4f863241b65439b8472c9937b6bab2345a8fa636c8ca67e29cf576"\n}',
    ),
    (
        "api-path-key",
        "curl 'https://api.kavenegar.com/v1/109CC24AE01AD59DC692DC009B8C124700BCAC23F92849C7/sms/send.json'",
    ),
    (
        "api-path-key",
        "GET https://api.db-ip.com/v2/0031b069bdecb656547ed6dfc39a3a12943dc975/203.0.113.7",
    ),
    ("printed-secret", "$ cat /run/secrets/db_password\nZr8pQ2vLx9mKqW\n$ "),
    # infrastructure as code: Pulumi's state and its outputs shown, a gossip key, a
    # Terraform plan's helm_release set block, Packer's debug log, an ACL's SecretID
    (
        "pulumi-secret-plaintext",
        '"password": {\n  "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",'
        '\n  "plaintext": "\\"Thistle%Cobalt3609?\\""\n}',
    ),
    (
        "table-credential",
        "$ pulumi stack output --show-secrets\n    OUTPUT        VALUE\n"
        "    dbEndpoint    search.o2oecb1wmn2t.ca-central-1.rds.amazonaws.com\n"
        "    dbPassword    Lantern*Cinder4774\n",
    ),
    ("gossip-encryption-key", '{"encrypt": "Oifb2cQuQWa40V9s3Os0nuPToV6KAQB1ZpV4gZ3dUqk="}'),
    ("gossip-encryption-key", 'encrypt = "Oifb2cQuQWa40V9s3Os0nuPToV6KAQB1ZpV4gZ3dUqk="'),
    (
        "assigned-credential",
        '  + set {\n      + name  = "auth.password"\n      + value = "ftZo7SHcqU*tP2kHK"\n    }',
    ),
    (
        "password-in-prose",
        "    amazon-ebs.windows: Password (since debug is enabled): XeZtWkREt!Vin4ML?XEF1y8hxM",
    ),
    ("assigned-credential", "SecretID:         41972a69-888e-4ddb-94b9-4f9fc985dc14"),
    (  # a Postman collection's API key auth: the key is the entry whose "key" is "value"
        "assigned-credential",
        '"auth": {\n  "type": "apikey",\n  "apikey": [\n   {"key": "in", "value": "header"},\n'
        '   {\n    "key": "value",\n    "value": "18257f1e2c5da3a53c4aa7227ba98583",\n'
        '    "type": "string"\n   }\n  ]\n}',
    ),
    (  # a notebook's call, each argument on its own line
        "assigned-credential",
        'spark.conf.set(\n  "fs.azure.account.key.acmelake85.dfs.core.windows.net",\n'
        '  "J02/GORRgOxjSPcBtY7Kyi+LdpcfIQQ/3FceUWQJ34qP298iEii1DM+CcOuZT5ox2D+R4+iKRCPqMZxiVaq'
        '34Q=="\n)',
    ),
    # a real value beside the look-alikes above: a password, a phone that ends its line, a
    # key under a user's name whose word is not the value's
    ("connection-string-password", "Server=db;Password=Xk9pQ2vLmZ;Encrypt=true"),
    ("phone-national", "callback: 415-555-2671-"),
    # review 30: a phone after one decimal column (a balance, a rating) is one still
    ("phone-national", "NAME      BALANCE   PHONE\nalice     1234.50   (415) 555-2671\n"),
    ("phone-national", "   name   rating    mobile\n0  Ayse   4.8   0532 123 45 67\n"),
    # review 30: Capitalised words joined by hyphens under a weak name are a passphrase,
    # unless the last word is a header's (Content-Type)
    ("assigned-credential", "master key: Velvet-Otter-Cascade-Lantern"),
    ("assigned-credential", '{"key": "Authorization", "value": "Correct-Horse-Battery-Staple"}'),
    # review 30: a printed secret in a Windows transcript (CRLF)
    ("printed-secret", "$ echo $DB_PASSWORD\r\nHollow1985$saffron\r\n$ ls\r\n"),
    ("assigned-credential", "pushover_user_key=uQiRzpo4DXghDmr9QzzfQu27cmVRsG"),
    (  # a CloudFront signed URL in an access log: its signature beside the key pair's id
        "cloudfront-signed-url",
        "GET /private/a.m3u8?Expires=1733835510&Signature=IkKLTur32Zy8dQmPs6-NPx9v2BHPonfGd1PI"
        "Lo4O46cc~9Ok~jwtggh8WE4aXGEZb~0hDEOVW4I0uFMPMNfxxr40m906i6S4PFp~Uhobvd&Key-Pair-Id="
        'KUOM7RKQ1SFJN7 HTTP/2.0" 200 812',
    ),
    (
        "cloudfront-signed-url",
        "https://d1.cloudfront.net/v.mp4?Key-Pair-Id=K2JCJMDEHXQW5F&Signature=Fq8xQ2mZ-vLp9Kw_"
        "R3tYb7nH4cJ6dE1sA0uG5iO8~zXwVbNmLkJhGfDsApOiUyTrEwQ",
    ),
    (  # a GitHub Actions step: its header, the command, its shell, then what it printed
        "printed-secret",
        "##[group]Run gcloud secrets versions access latest --secret=db-pass\n"
        "gcloud secrets versions access latest --secret=db-pass\n"
        "shell: /usr/bin/bash -e {0}\n##[endgroup]\nq8Zr2vLx9mKqWp4T\n",
    ),
    (
        "ssh2-private-key",
        '---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: "rsa-key-20250820"\n'
        "P2/56wAAAaBzNaSnMfDmnTvDi4wYugYOU9l0c54e/xYM5IBII5Xg+L5PAXZ8SQzTV8wT5G\n",
    ),
    ("password-in-prose-translated", "le mot de passe du wifi est tundra-9212copper"),
    ("password-in-prose-translated", "mi contraseña es tundra-9212copper"),
    # a password's column named in the writer's language
    (
        "table-credential",
        "| Dienst | Gebruiker | Wachtwoord |\n|---|---|---|\n"
        "| de productiedatabase | postgres | uhfd79!WCYiyg448 |",
    ),
    (
        "table-credential",
        "| Servicio | Usuario | Contraseña |\n|---|---|---|\n"
        "| keystore | release | ky@#ZEzS=7hnkpa3c |",
    ),
    (
        "table-credential",
        "| Serviço | Senha |\n|---|---|\n| Wi-Fi do escritório | O-r70hnn_H#RG_ |",
    ),
    # a markdown table whose header a chat message's prefix opens
    (
        "table-credential",
        "@marco.rossi: | Servizio | Utente | Password |\n|---|---|---|\n"
        "| il relay SMTP | smtp-app | Tortu.DrxEXg%99 |",
    ),
    # an OTP seed named with a blank, and in the Romance languages' order
    ("otp-seed", "2FA seed TOTP: PH7G6PPMSRGHBDFKDR5RDVF66N4Y3F3P"),
    ("otp-seed", "- secreto TOTP: VI7KQEFK6JFATRODSMBJHSPW4VXZOCF2"),
    (
        "mercadopago-access-token",
        "Le token de Mercado Pago est « APP_USR-9427962825451295-877170-"
        "6a000441f94445cf7ca79db756ed9b06-475287145 »",
    ),
    (
        "django-secret-key",
        "Django secret : django-insecure-e4qugwk4!-ul0123w90!9b-sq7y29_^7hqu)1s(&8k=u^+(naq",
    ),
    # recovery codes under a line that names them: a list, bulleted, in Japanese
    (
        "recovery-codes",
        "Herstelcodes voor het gedeelde AWS-account (elke code één keer):\n"
        "xvrl3-74o2t\nxtn3t-uamap\nfkatz-s8as4\np2nt9-vwdrd\n",
    ),
    ("recovery-codes", "Recovery codes:\n- 1234 5678\n- 8765 4321\n- 1357 2468\n"),
    ("recovery-codes", "リカバリーコード：\nw6xsa-5mbzc\n8vqm2-wygqo\n0ifqc-mtnml\n"),
    # a label of two words before a colon, as a vendor's console shows a key
    (
        "assigned-credential",
        "Account SID: AC0b3e0ee74677ac7a169723ed6fed94bd\n"
        "Auth Token: 37f055772f3668c37f83993549b70763",
    ),
    ("assigned-credential", "Secret Key: 37f055772f3668c37f83993549b70763"),
    # an adjective after the word, before what the password is for
    ("password-in-prose-translated", "A senha nova do Wi-Fi do escritório é Sakura1984%pierogi"),
    ("password-in-prose-translated", "a senha é tundra-9212copper"),
    ("password-in-prose-translated", "het wachtwoord is tundra-9212copper"),
    ("password-in-prose-translated", "mitt lösenord är tundra-9212copper"),
    ("password-in-prose-translated", "moje hasło to tundra-9212copper"),
    ("password-in-prose-translated", "La contraseña de la base de datos es tundra-9212copper"),
    ("password-in-prose-translated", "La password dell'account è tundra-9212copper"),
    ("password-in-prose-translated", "Hasło do panelu to tundra-9212copper"),
    ("password-in-prose-translated", "Пароль до адмінки: tundra-9212copper"),
    ("password-in-prose-translated", "Lösenordet är tundra-9212copper"),
    ("password-in-prose-translated", "Lösenordet till routern är tundra-9212copper"),
    ("password-in-prose-translated", "passordet til ruteren er tundra-9212copper"),
    ("assigned-credential", "private key: MLOy5vcpFRTmETcLFVUyJ0ygh8o3oUMMaSks4jRjhw4="),
    # what the password is for, in several words, and an adverb after the verb
    (
        "password-in-prose-translated",
        "Das Passwort für den Admin auf ci-staging ist jetzt Qz8#rT2mXw",
    ),
    (
        "password-in-prose-translated",
        "le mot de passe du compte root sur la VM c'est Velvet&river37",
    ),
    ("password-in-prose-translated", "Hasło do konta admina w Sonarze na stagingu to Qz8#rT2mXw"),
    ("password-in-prose-translated", "Heslo k adminovi na serveru je Qz8#rT2mXw, nikam ho nepiš"),
    ("password-in-prose-translated", "Пароль від адмінки на стенді — maple*orbit43"),
    ("password-in-prose-translated", "הסיסמה של משתמש admin היא Jlaybmjw9302#"),
    ("password-in-prose-translated", "[database]\nuser = report\nпароль = tundra-9212copper"),
    ("password-in-prose-translated", "la clave de acceso es tundra-9212copper"),
    ("password-in-prose-translated", "Passwort für den Server ist tundra-9212copper ist alt"),
    ("password-in-prose-translated", "мой пароль: tundra-9212copper"),
    ("password-in-prose-translated", "пароль от почты — tundra-9212copper"),
    ("password-in-prose-translated", "паролата е tundra-9212copper"),
    ("password-in-prose-translated", "ο κωδικός πρόσβασης είναι tundra-9212copper"),
    ("password-in-prose-translated", "wifi şifresi tundra-9212copper"),
    ("password-in-prose-translated", "mật khẩu là tundra-9212copper"),
    ("password-in-prose-translated", "kata sandi adalah tundra-9212copper"),
    ("password-in-prose-translated", "كلمة المرور tundra-9212copper"),
    ("password-in-prose-translated", "הסיסמה היא tundra-9212copper"),
    ("password-in-prose-translated", "पासवर्ड: tundra-9212copper"),
    ("password-in-prose-translated", "la password del server è tundra-9212copper"),
    ("password-in-prose-translated", "Passwort für den Server: tundra-9212copper"),
    ("password-in-prose-cjk", "我的密码是tundra-9212copper，请记住"),
    (
        "azure-storage-key-table",
        "KeyName    Permissions    Value\n---------  -------------  -----\n"
        f"key1       FULL           {make.base64_key(RNG, 86)}==\n",
    ),
    (
        "decoded-secret-output",
        "$ kubectl get secret db-creds -o jsonpath='{.data.password}' | base64 --decode\n"
        "walnut-gravel-pepper-14\n$ ",
    ),
    (
        "decoded-secret-output",
        "oc get secrets app -o jsonpath='{.data.token}' | base64 -d\nVt9$kQ2mXpL7\n",
    ),
    ("session-cookie-set", "s.cookies.set('sessionid', 'gq7vtx2ukp9tb3jemvy8kl4dvgmu')"),
    ("wordpress-application-password", "WP_APP_PASSWORD=pkRH cvUJ Qmic ZFO1 hGt9 OCoF"),
    ("blockfrost-project-id", f"BLOCKFROST_PROJECT_ID=mainnet{run(32, make.ALNUM)}"),
    (
        "warned-session-cookie",
        "roblox: _|WARNING:-DO-NOT-SHARE-THIS.--Sharing-this-will-allow-someone-to-log-in-as"
        f"-you.|_{run(192, HEX.upper())}",
    ),
    (
        "session-cookie-set",
        'New-Object System.Net.Cookie(".AspNetCore.Cookies", "CfDJ8aWfQg47HwpPW9cbKd")',
    ),
    (
        "session-cookie-set",
        '"cookies": [\n {\n  "name": "bk_sess",\n  "value": "c389cf62832281e702068e89613"',
    ),
    (
        "session-cookie-set",
        'cookies = {"session": "eyJfdXNlcl9pZCI6IjgzMjMifQ.7_mX8w.mN7w-525eDYMLf"}',
    ),
    (
        "session-cookie",
        "http POST https://erp.example.net/x Cookie:JSESSIONID=E5485D5BBB4A07E24E464DFD9A41AB1F",
    ),
    (
        "session-cookie",
        'curl -b "_gitlab_session=12224cc2dc8283c1fd2984f6e6de9e9e" https://git.acme.io/x',
    ),
    ("chat-webhook-url", 'HOOK = "https://hooks.zapier.com/hooks/catch/43381512/chy5k0/"'),
    ("chat-webhook-url", 'url = "https://chat.acme-corp.io/hooks/94bek97vw6e35m3ag58busv95z"'),
    (
        "go-mysql-dsn",
        'dsn := "shipping:kvueI2&5bhGn^7@tcp(mysql.prod:3306)/shipping?parseTime=true"',
    ),
    (
        "terraform-secret",
        'variable "admin_password" {\n  type = string\n  default = "alJP5izgxfz=X%ZjQM"\n}',
    ),
    (
        "terraform-secret",
        '{"type": "random_password", "name": "db", "instances": [{"attributes": '
        '{"length": 24, "result": "Zr2Jg8SuNeZjIfzeX1i=6u!F"}}]}',
    ),
    (
        "session-cookie-set",
        'driver.add_cookie({"name": "auth_token", "value": "Zq8xW2mLp9Kd7Rt4Vb"})',
    ),
    (
        "private-key",  # a Java constant: the header's line, then the body's, concatenated
        'static final String KEY =\n    "-----BEGIN PRIVATE KEY-----\\n" +\n'
        '    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC0Exl9d4a69\\n" +',
    ),
    # the word as a quoted key, in a document written in the language
    ("password-in-prose-cjk", '{"用户名": "admin", "密码": "Velvet$396juniper"}'),
    ("password-in-prose-cjk", 'db:\n  "비밀번호": "Velvet$396juniper"'),
    ("password-in-prose-translated", '{"contraseña": "Velvet$396juniper"}'),
    ("password-in-prose-translated", "{'пароль': 'Velvet$396juniper'}"),
    # what the password is for, with no preposition before it; Arabic's verb
    ("password-in-prose-translated", "Mật khẩu wifi là CafeSua@2024, nhớ đổi nhé"),
    ("password-in-prose-translated", "Das neue Passwort lautet Velvet$396juniper"),
    ("password-in-prose-translated", "كلمة المرور الجديدة هي +qpT02VsI+9RIFwI1Pc ، شكرا"),
    ("password-in-prose-cjk", "密碼：tundra-9212copper"),
    ("password-in-prose-cjk", "パスワードは「tundra-9212copper」です"),
    ("password-in-prose-cjk", "비밀번호는 tundra-9212copper입니다"),
    (
        "token-in-url",
        "git clone https://3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c9b0d1e2f@github.com/org/repo",
    ),
    ("token-in-url", "wss://Zq8rT2mXwP4kL9vB3nYc@stream.example.net/v1"),
    (
        "wallet-seed-phrase",
        'MNEMONIC="vessel ladder alter error federal sibling chat ability sun glass valve picture"',
    ),
    (
        "wallet-seed-phrase",
        "my recovery phrase is: legal winner thank year wave sausage worth useful legal winner "
        "thank yellow",
    ),
    (
        "wallet-key-argument",
        'const w = new ethers.Wallet("0x8f2a559490d4a1c3e5b7f9d1c3e5a7b9'
        'd1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1")',
    ),
    ("client-name", "The Globex renewal is due next week."),
    ("cli-pw-password", "plink -batch -pw Zq8vR3nLw2Tk admin@10.1.2.3"),
    ("confidentiality-marker", "CONFIDENTIAL - do not forward"),
    # an auth-param named for the key: BeyondTrust's PS-Auth, in a k6 script's headers
    (
        "authorization-header-scheme",
        "http.get(url, { headers: { 'Authorization': 'PS-Auth key="
        "7e3c9a1f5b2d8e4a6c0f9b3d7a1e5c2b8f4d6a0e3c7b9f1d5a2e8c4b6f0a3d7e; runas=svc_ci;' } });",
    ),
    # ipsec.secrets: a pre-shared key between two peers, an EAP user's password
    ("ipsec-secret", '# /etc/ipsec.secrets\n203.0.113.10 198.51.100.22 : PSK "X0ZsWoxh/PGq2u"\n'),
    ("ipsec-secret", 'carol : EAP "Zr8pQ2vLx9mKq"\n'),
    ("ipsec-secret", ": PSK 0sv+NkxY9LLZvwj4qCC2o/gGrWDF2d21jL\n"),
    # Rails' Token scheme, its quotes escaped in a C# string
    (
        "authorization-header-scheme",
        'request.AddHeader("Authorization", "Token token=\\"c48d5b9b1fa3a0758d97d4a6667c8567\\"");',
    ),
    # a literal key given to an HMAC, in each language's own call
    *(
        ("hmac-literal-key", text)
        for text in (
            "const sig = crypto.createHmac('sha256', 'Zr8pQ2vLx9mKqW3x').update(body);",
            'sig = hmac.new(b"Zr8pQ2vLx9mKqW3x", msg, hashlib.sha256).hexdigest()',
            'mac := hmac.New(sha256.New, []byte("Zr8pQ2vLx9mKqW3x"))',
            'using var h = new HMACSHA256(Convert.FromBase64String("9LvXB5K511haUKcBu2LmpM/z"));',
            'var k = new SecretKeySpec("Zr8pQ2vLx9mKqW3x".getBytes(), "HmacSHA256");',
            "sig = OpenSSL::HMAC.hexdigest('sha256', 'Zr8pQ2vLx9mKqW3x', payload)",
            "$sig = hash_hmac('sha256', $payload, 'Zr8pQ2vLx9mKqW3x');",
        )
    ),
    # what `aws ssm get-parameter --with-decryption` prints: a SecureString's value
    (
        "ssm-secure-string",
        '{"Parameter": {"Name": "/prod/tornado/shadow", "Type": "SecureString",\n'
        '  "Value": "YsIV1hnGSLMKbvoOqbpGoHhEK4XpeMLLpI8It6zag9A=", "Version": 9}}',
    ),
    # HTTP Basic's credentials given to a base64 encoder in code
    (
        "basic-credentials-encoded",
        "const basic = Buffer.from('R2_4e21086ffd8acfc5:841d182125c4cf8845dace98f51faacb')"
        ".toString('base64');",
    ),
    (
        "basic-credentials-encoded",
        'var c = Convert.ToBase64String(Encoding.UTF8.GetBytes("api@acme.io:Zr8pQ2vLx9mKq"));',
    ),
    ("basic-credentials-encoded", 'h = base64.b64encode(b"svc-reports:Zr8pQ2vLx9mKq").decode()'),
    # a BMC's password given to ipmitool; a Junos secret in its reversible $9$ form
    ("cli-p-password-ipmitool", "ipmitool -I lanplus -H bmc01 -U ADMIN -P 'MEADOW~garnet976' sel"),
    ("junos-reversible-secret", 'authentication-key "$9$QCkNBI1.L95fRNoXNQlIAFOCByvRJaTG4";'),
    # OpenVPN's static key (tls-auth, tls-crypt), inline in a client's profile
    (
        "openvpn-static-key",
        "client\n<tls-crypt>\n-----BEGIN OpenVPN Static key V1-----\n"
        "6f1c2b9e3d4a4e8f9b7c2a1d0e5f6c3b\n3f2c9a8b7e6d5c4b3a29180f7e6d5c4b\n",
    ),
    (
        "spaced-password-setting",
        "account default\nhost smtp.example.net\nuser alerts\npassword   q7Vx2mLr9KpT4wZs\n",
    ),
    (
        "dicom-date-of-birth",
        "(0010,0010) PN [TOTH^MATEJ]   # 10, 1 PatientName\n"
        "(0010,0030) DA [19661008]     #  8, 1 PatientBirthDate\n",
    ),
    ("dicom-date-of-birth", "(0010, 0030) Patient's Birth Date    DA: '19800801'"),
    # an X12 claim's or enrolment's DMG segment, segments on lines or run together
    (
        "x12-date-of-birth",
        "NM1*IL*1*LINDQVIST*SHANNON****MI*LHG426767189~\nN3*6313 BRIARWOOD CT~\n"
        "N4*COLUMBUS*OH*43239~\nDMG*D8*19630606*F~\n",
    ),
    ("x12-date-of-birth", "INS*Y*18*021*28*A***FT~NM1*IL*1*DOE*JANE~DMG*D8*19871212*M~HD*021"),
    ("x12-date-of-birth", 'LOOP = (\n    "NM1*IL*1*MOREAU*KEVIN~"\n    "DMG*D8*19640323*M~"\n)'),
    # a date of birth as eight digits after its label, as logs and fixed-width records write it
    ("date-of-birth-compact", "reject 75: cardholder LATOYA CASTELLANOS dob 19460922 grp 750944"),
    ("date-of-birth-compact", "GET /v1/verify?name=Jane%20Roe&DOB=19800101 HTTP/1.1"),
    # lftp's user and password after -u, joined by a comma
    ("cli-u-password-lftp", 'lftp -u "sub_817965,uZHezHUTSWAiP!8I" sftp://sftp.claims.example.com'),
    # an IBAN glued to an MT940 statement's subfield mark
    ("iban", ":86:166?00GUTSCHRIFT?20MIETE 2024-05?31DE44500105175407324931?32MUELLER HANS"),
    # sbt's Credentials: the fourth argument
    (
        "sbt-credentials-password",
        'credentials += Credentials(\n  "Artifactory Realm",\n  "acme.jfrog.io",\n'
        '  "ci-publisher",\n  "^#WfiqYbB%o2XIgDUZA3"\n)',
    ),
    # a HAR's cookie header: its name and its value are fields of their own
    (
        "session-cookie",
        '{"name": "cookie", "value": "_ga=GA1.1.616628893.1725869333; '
        'sessionid=u8oe8hlbdagbkocg4z0g49apd2lwex1c; csrftoken=tzTSiDC9wNqrW7pA02SnS"}',
    ),
    ("x12-date-of-birth", "2024-05-04T10:22:01Z WARN rejected segment=DMG*D8*19640323*M"),
    ("password-in-prose", "the db password is Tr0ub.ad0r(x9Q"),  # no module's call: digits
    # HL7 v2: an identifier whose type code says it is a national one, in a log's message
    (
        "hl7-person-identifier",
        "WARN A31 missing PID-5: MSH|^~\\&|HIX|UMCG|ZD|ZD|20240404202706||ADT^A31|MSG1|P|2.5"
        "\rPID|1||303719163^^^NLMINBIZA^NNNLD~8001002^^^UMCG^PI||^^||||",
    ),
    ("hl7-person-identifier", "PID|1||8001002^^^UMCG^PI~536224711^^^SSA^SS||DOE^JANE"),
    # DICOM: a patient's telephone numbers and address by their tags
    (
        "dicom-patient-contact",
        "(0010,0010) PN [THOMPSON^MITCHELL]   # 18, 1 PatientName\n"
        "(0010,2154) SH [0490725756]          # 10, 1 PatientTelephoneNumbers\n",
    ),
    (
        "dicom-patient-contact",
        "(0010, 1040) Patient's Address   LO: '12 Rue Lepic^^Paris^^75018^FR'",
    ),
    # identity and security tools' output
    (
        "otpauth-migration",
        "otpauth-migration://offline?data=CjEKCkhlbGxvId6tvu8SGEV4YW1wbGUlM0FhbGljZUBnb29nbGUuY29t"
        "GgdFeGFtcGxlIAEoATACEAEYASAA",
    ),
    (
        "ldif-password",
        "dn: CN=Jane Roe,OU=Users,DC=corp,DC=local\n"
        "unicodePwd:: IgBTAHUAbQBtAGUAcgAyADAAMgA0ACEAIgA=",
    ),
    ("ldif-password", "userPassword:: e1NTSEF9cDNKb0ZPbEp5OHlIOGRzaURqSWxhZUVaZjRSbmtNQTg="),
    (
        "nmap-valid-credentials",
        "| mysql-brute:\n|   Accounts:\n|     root:Wint3r-Sk1es - Valid credentials\n"
        "|_  Statistics: Performed 3012 guesses in 18 seconds",
    ),
    ("mimikatz-ntlm-hash", "Credentials:\n  Hash NTLM: 8846f7eaee8fb117ad06bdd830b7586c\n"),
    (
        "kerberos-ticket-kirbi",
        "[*] base64(ticket.kirbi):\n\n      doIFmjCCBZagAwIBBaEDAgEWooIEpjCCBKJhggSeMIIEmqADAgEFo"
        "Q8bDUNPUlAuTE9DQUwuQ09NoiIwIKADAgECoRkwFxsGa3JidGd0Gw1DT1JQLkxPQ0FMLkNPTaOCBFwwggRYoAMCARKh",
    ),
    ("piped-password", "echo 'Sup3r#Secret9' | kinit admin@CORP.LOCAL"),
    (
        "cli-p-password-mcrcon",
        "*/5 * * * * mcrcon -H 127.0.0.1 -P 25575 -p 'Sup3r#Secret9' save-all",
    ),
    ("srcds-server-secret", './srcds_run -game tf +map ctf_2fort +rcon_password "Sup3r#Secret9"'),
    ("srcds-server-secret", "+sv_setsteamaccount 4F8A1C0E9B7D3A6F2E5C8B1D0A9F7E3C +maxplayers 24"),
    ("piped-password", 'echo "Jx8#kq2LmPv" | sudo realm join -U Administrator corp.local'),
    ("piped-password", "echo -n 'Jx8#kq2LmPv' | secret-tool store --label=smb service smb"),
    # clear-text protocols' commands, as a transcript or a capture shows them
    (
        "protocol-password",
        "220 ftp ready\nUSER backup\n331 Password required\nPASS Wh1sk3y-Tango9\n",
    ),
    ("protocol-password", "17:02:11.1 IP 10.0.0.5.51022 > 10.0.0.9.110: ..PASS Jx8#kq2LmPv\r\n"),
    (
        "protocol-password",
        "> USER craghavan\n< 331 Password required\n> PASS falcon-orchid-thistle-48\n",
    ),
    ("imap-login", "imaplib debug: > b'KJLD1 LOGIN jdoe \"Jx8#kq2LmPv\"\\r\\n'"),
    (
        "sasl-plain-credentials",
        "C: AUTH PLAIN " + base64.b64encode(b"\0jdoe\0Jx8#kq2LmPv").decode(),
    ),
    ("sasl-plain-credentials", "a01 AUTHENTICATE PLAIN AGpkb2UASng4I2txMkxtUHY="),
    ("nickserv-identify", "PRIVMSG NickServ :IDENTIFY mynick Jx8#kq2LmPv"),
    ("handed-password", '$ok = ldap_bind($ds, "CN=svc,OU=Svc,DC=corp", "Jx8#kq2LmPv");'),
    ("handed-password", 'l.simple_bind_s("uid=svc,dc=corp", "Jx8#kq2LmPv")'),
    ("handed-password", 'expect "Password:"\nsend "Jx8#kq2LmPv\\r"\n'),
    ("handed-password", "PassCmd \"echo 'Jx8#kq2LmPv'\""),  # mbsync
    ("handed-password", "ejabberdctl register alice chat.example 'Jx8#kq2LmPv'"),
    ("snmp-community-config", "rocommunity Wh1sk3yTango 10.0.0.0/8"),
    ("snmp-community-config", "check_snmp -H sw1 -C Wh1sk3yTango -o sysUpTime.0"),
    ("network-device-password", "tacacs server ISE\n address ipv4 10.1.1.5\n key 0 Wh1sk3y-Tango"),
    ("smb-password", "net ads join -U 'Administrator%Kx9#mP2vLq' -S dc01"),
    (
        "passwd-des-crypt",
        "root:x:0:0:Super-User:/:/sbin/sh\n"
        "oracle:jiSu.9ir21pVR:1001:100:Oracle owner:/export/home/oracle:/bin/ksh\n",
    ),
    (
        "netntlmv2-hash",
        "[SMB] NTLMv2-SSP Hash     : jdoe::CORP:1122334455667788:8a3f1b2c4d5e6f708192a3b4c5d6e7f8:"
        "0101000000000000c0653150de09d2010b7c6f7e5f2a1b3c0000000002000800530054004100",
    ),
    ("net-user-password", "CommandLine: net1 user backdoor P@ssw0rd!2024 /add"),
    # reviews 38 and 39: the shapes those rules first missed
    ("date-of-birth-compact", '{"patient_dob": "19800101", "mrn": "A1234"}'),
    ("date-of-birth-compact", "| DOB | 19800101 |"),
    (
        "cli-u-password-lftp",
        'lftp -e "set ssl:verify-certificate no; mirror -R dist /www" -u deploy,Xk9#mPq2 ftp.host',
    ),
    (
        "iban",
        ":86:152~00PRZELEW~20FAKTURA 12/2024~38PL61109010140000071219812874~32JAN KOWALSKI",
    ),
    ("hl7-person-identifier", "PID|1||8001002^^^UMCG^PI~9434765919^^^NHS^NH||SMITH^JOHN"),
    (
        "kerberos-ticket-kirbi",
        "[*] base64(ticket.kirbi):\n\n"
        "      doIFmjCCBZagAwIBBaEDAgEWooIEpjCCBKJhggSeMIIEmqADAgEFoQ8bDUNPUlAuTE9D\n"
        "      QUwuQ09NoiIwIKADAgECoRkwFxsGa3JidGd0Gw1DT1JQLkxPQ0FMLkNPTaOCBFwwggRY\n",
    ),
    (
        "ldif-password",
        "dn: CN=Jane Roe,OU=Users,DC=corp,DC=local\n"
        "unicodePwd:: IgBTAHUAbQBtAGUAcgAyADAAMgA0ACEAIgBTAHUAbQBtAGUAcgAy\n ADAAMgA0ACEAIgA=\n",
    ),
    ("smb-password", "net rpc password jdoe NewPass#77 -U 'CORP\\admin%Kx9#mP2vLq' -S dc01"),
    (
        "cli-p-password-mosquitto",
        "mosquitto_sub -h mqtt.example.net -p 8883 -u gw-4411 -P 'Tq7#vLm2Xp9k' -t 'site/#'",
    ),
    # FHIR's XML keeps every value in an attribute
    (
        "date-of-birth",
        '<Patient xmlns="http://hl7.org/fhir">\n  <name><family value="Claes"/></name>\n'
        '  <birthDate value="1972-06-10"/>\n</Patient>',
    ),
    # a JSON Web Key's private members: a symmetric key's k, an Ed25519 key's d before kty
    (
        "jwk-private-key",
        '{\n  "kty": "oct",\n  "kid": "hs256-9",\n  "alg": "HS256",\n'
        '  "k": "wIcIA-hTYC-Huaajhifu-zjgW7USj_ZKJZf0rxso-pU"\n}',
    ),
    (
        "jwk-private-key",
        '{"d": "8AMBWwE3zDp__KYmDlo91l_r6GYtPsAM-hmQXW8GVhQ", "crv": "Ed25519", "kty": "OKP",'
        ' "x": "wLgYWMSA2_3FANKXEhYjLUvPLCI2v1ts0HWvuL-css0"}',
    ),
    *(  # 4096- and 8192-bit RSA keys, pretty-printed: the modulus lies between kty and d
        (
            "jwk-private-key",
            json.dumps(
                {
                    "kty": "RSA",
                    "kid": "2024-07-signing",
                    "use": "sig",
                    "alg": "RS256",
                    "n": _b64url(size),
                    "e": "AQAB",
                    "d": _b64url(size, seed=8),
                },
                indent=2,
            ),
        )
        for size in (512, 1024)
    ),
]


@pytest.mark.parametrize(
    ("rule", "text"), POSITIVES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(POSITIVES)]
)
def test_positive(scanner: Scanner, rule: str, text: str) -> None:
    assert rule in rule_ids(scanner, text)


# A SealedSecret's value: base64 of a session key sealed with a 2048-bit RSA key, then the
# ciphertext.
SEALED = base64.b64encode(b"\x01\x00" + random.Random(11).randbytes(300)).decode()

NEGATIVES = [
    "PASS src/App.test.js",  # jest's: a test file passed
    'rcon_password ""  // set in the environment',
    "PASS  __tests__/App.test.js (5.2 s)",
    "(wire trace: USER anonymous / PASS anonymous@)",  # anonymous FTP's convention
    "250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2",  # an SMTP server's mechanisms
    'expect "Password:"\nsend "$env(ROUTER_PASS)\\r"\n',  # read from the environment
    "rocommunity public  default",  # the default every guide shows
    # a test runner's or a CI step's name after PASS, an application's log after LOGIN
    "PASS TestConfigLoader\nPASS TestSchemaValidation\n",
    "[12:00:01] PASS lint-check-v2\n",
    "conn7 LOGIN alice@example.com 203.0.113.5:51234\n",
    "user42 LOGIN OK sess=ab12cd34ef\n",
    # a monitoring system's macros and a template's tokens in a community's or password's place
    "command_line $USER1$/check_snmp -H $HOSTADDRESS$ -C $USER3$ -o sysUpTime.0",
    "check_snmp -H $HOSTADDRESS$ -C '$_HOSTSNMP_COMMUNITY$' -o ifOperStatus.1",
    "rocommunity @COMMUNITY@ 127.0.0.1",
    'expect "Password:"\nsend "@@PASSWORD@@\\r"\n',
    'expect "Password:"\nsend "{password}\\r"\n',  # a format field
    "C: AUTH PLAIN " + base64.b64encode(b"\0jdoe\0password").decode(),  # a placeholder's
    "mosquitto_sub -h broker -p 1883 -t 'sensors/#' -v",  # -p is the port
    "| Step | Login - Valid credentials | expected: dashboard shown |",  # a test plan's
    "(0010,2154) SH [ANONYMIZED-1]     # 12, 1 PatientTelephoneNumbers",  # de-identified
    "(0010,1040) LO [Removed by deid v2.1]",
    "timestamp:1700000000000:1:2:",  # 13 digits: a millisecond timestamp, no DES hash
    "net user jdoe * /domain",  # `*`: the password is asked for
    "std::vector<int> v; auto x = a::b::c(1, 2);",
    "|   Accounts:\n|     <empty> - Valid credentials\n",  # no password at all
    # the empty password's NT hash, as dumps print an account with none
    "Guest:501:aad3b435b51404eeaad3b435b51404ee:31d6cfe0d16ae931b73c59d7e0c089c0:::",
    " * NTLM     : 31d6cfe0d16ae931b73c59d7e0c089c0",
    "The DOI is 10.1000/182; doIt() then runs the documented steps in order again.",
    # detect-secrets' baseline: a digest of what it found, not the secret
    '{"type": "Secret Keyword", "hashed_secret": "bcd4398ddb2f30751b74a8ad3ee9de5e027ff99a"}',
    # security teams' and RFC 2142's mailboxes
    "Escalate to soc@northwind-trading.com, noc@northwind-trading.com or "
    "phishing@northwind-trading.com.",
    "Owner: identity-admins@northwind-trading.com; servicedesk@northwind-trading.com",
    "PID|1||8001002^^^UMCG^MR~77311^^^LAB^PI||DOE^JANE",  # a hospital's own numbers
    "(0010,2154) SH (no value available)        #  0, 0 PatientTelephoneNumbers",
    "(0010,1040) LO [UNKNOWN]",
    '<param name="birthDate" value="01/01/1900"/>',  # the date stored for an unknown one
    'credentials += Credentials("Sonatype Nexus", "oss.sonatype.org", sys.env("U"), sys.env("P"))',
    '{"name": "cookie", "value": "_ga=GA1.1.616628893.1725869333; theme=dark; lang=en-GB"}',
    "dob 1946092255",  # ten digits after the label: no date
    "dob=19000101",  # the date systems store for an unknown one
    "lftp -u anonymous, ftp://ftp.gnu.org/gnu/",  # no password after the comma
    'lftp -u "$FTP_USER,$FTP_PASS" sftp://files.example.com',
    # X12 dates that are no one's birthday: a payer's test pack's, a masked one, and a
    # 999 acknowledgement's report of a DMG element in error
    "NM1*IL*1*TESTPATIENT*ONE****MI*TEST00000001~\nDMG*D8*19000101*U~\n",
    "NM1*IL*1*XXXXX*XXXXX****ZZ*PSN-22D7F966EB~\nDMG*D8*19XX0101*U~\n",
    "AK2*837*0001*005010X222A1~\nIK3*DMG*18*2010*8~\nIK4*2*1251*8*19990231~\n",
    # HTTP traffic's look-alikes: a header's name under Postman's "key", a WebSocket
    # handshake's nonce, entity tags sent back, a key's id in camelCase, a signed URL's
    # placeholder, a log line's status codes and byte counts after its times
    '{\n  "key": "Content-Type",\n  "value": "application/json"\n}',
    '{"key": "Idempotency-Key", "value": "{{$guid}}", "type": "text"}',
    "sec-websocket-key: PiOZ27+bg1mpXzu9IFrRCA==\nsec-websocket-version: 13",
    'If-None-Match: "TaIMNYoXg7iuvY1JV8N51FTt"\nIf-Range: "QkZ0c9Xw2LmPa7VtR4yN8sJd"',
    '{"requestId":"c7f1","apiKeyId":"rqv38slo4d","status":"200"}',
    "?Expires=1733835510&Signature=<SIGNATURE>&Key-Pair-Id=KUOM7RKQ1SFJN7",
    "h2 2024-08-29T02:55:56.455622Z app/edge-alb/3e4859009d0f237b 203.0.113.36:59947 "
    '192.0.2.123:8080 0.005 0.041 0.000 404 404 1386 85597 "GET https://app.acme.eu:443/ HTTP/2.0"',
    "openapi: 3.1.0\ninfo:\n  contact:\n    email: api-support@brightpath.dev",
    # data platforms' look-alikes: a secret's name in a store, Great Expectations' reference
    # to one, a call's name after password=, a cluster's id, SnowSQL's prompt, ids named
    # for the column's entity
    'spark.conf.set("k", dbutils.secrets.get(scope="kv-data", key="acmelakeprod68-key"))',
    "my_pg_password: secret|arn:aws:secretsmanager:eu-west-1:282150199577:secret:gx/pg-kGfNoR",
    "pw: secret|projects/tandem-ml/secrets/pg_password|latest",
    'SnowflakeResource(\n    password=EnvVar("SNOWFLAKE_PASSWORD"),\n)',
    '{"cluster_id": "0216-210538-pvne7aau", "spark_version": "14.3.x-scala2.12"}',
    "ANALYST#COMPUTE_WH@ANALYTICS.PUBLIC>SELECT SPLIT_PART(EMAIL, '@', 2) AS DOMAIN",
    "| user_key | churn_risk |\n|---|---|\n| user_4000 | 0.039 |\n| user_8998 | 0.181 |",
    '"apikey": [{"key": "key", "value": "X-API-Key"}, {"key": "value", "value": "{{apiKey}}"}]',
    # infrastructure as code's look-alikes: a sealed secret's ciphertext, a key's name in
    # Hiera, Pulumi's masks and its state without --show-secrets, an OpenPGP message,
    # AWS's SecretId (a name), Vault's secret_id_accessor, a gossip key's placeholder
    f"kind: SealedSecret\nspec:\n  encryptedData:\n    password: {SEALED}\n",
    'Found key: "profile::analytics::db_password" value: Sensitive [value redacted]',
    'Outputs:\n  + bucketName: "assets-620d5b5"\n    dbPassword: [secret]\n',
    '"password": {\n  "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",'
    '\n  "ciphertext": "v1:Fq3Xw2:Lp9Kz0aQ8sN3mT6vB1cE4rY7uI0oP2="\n}',
    "mysql:\n  root_password: |\n    -----BEGIN PGP MESSAGE-----\n\n    hQIMA7Lsc3ORlDatpJw5\n",
    '"SecretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"',
    "secret_id_accessor: 7ad1e488-f4be-4ad3-ab59-50fec0a1d00e",
    'encrypt = "<output of consul keygen>"',
    # review 30: a command named in a sentence, with no fenced output; a script's or a
    # table's first line, printed by cat
    "The step `echo $AUTH_TOKEN > token.txt` fails with\nPermission-denied",
    "Run `echo $DB_PASSWORD` works locally.\nHowever,",
    "Ran `cat get_token.sh`\n```bash\n#!/bin/sh\n```",
    "Ran `cat tokens.csv`\n```\ntoken_id,user_id,created_at\n```",
    # a listing's date and time beside a secret's name: when, not what
    "NAME          CREATED              POLICY\ndb-password   2024-12-30T10:44:45  automatic",
    "password: 2024-12-30T10:44:45Z",
    # a package named hvs: a class's name, words (review 28)
    "import org.example.hvs.HighVoltageSystemAdapter;",
    "see src/main/java/com/acme/hvs.ConfigurationManager1234",
    "user alice, pass everything through the proxy",
    '{"name": "_ga", "value": "GA1.2.1234567890.1712345678"}',
    '{"name": "csrftoken", "value": "bl9uk5eqtv36x2h1drpaezult3m5fj16"}',
    "id_token=eyJhbGciOiJIUzI1NiJ9.[truncated] — the decoded claims show aud mismatch",
    # the keychain's password named, not given; import's -k names a keychain
    'security unlock-keychain -p "$KEYCHAIN_PASSWORD" build.keychain',
    "security import cert.p12 -k ~/Library/Keychains/ci-build.keychain -T /usr/bin/codesign",
    # a Sentry DSN: its key is public by design (rules.toml)
    "dsn: 'https://619a1fd03ca49e74b6fa90cfec889359@o2601836.ingest.de.sentry.io/4406904558'",
    'SENTRY_DSN="https://619a1fd03ca49e74b6fa90cfec889359@sentry.io/12"',
    # a digest's column of an aligned listing: each secret's name, then its digest
    "$ fly secrets list\nNAME                DIGEST              CREATED AT\n"
    "DATABASE_URL        6b1e8cf5a3d3c6a1    1h2m ago\n"
    "STRIPE_SECRET_KEY   0d4c2b9e7f1a3c58    3d ago\n",
    # a password's column in another language, its values masked or said to be elsewhere
    "| Dienst | Wachtwoord |\n|---|---|\n| de productiedatabase | ******** |",
    "| Benutzer | Passwort |\n|---|---|\n| admin | (im Tresor) |",
    # two numbered listings and a comment between: a label at the end of one is not the
    # first line of the other's
    "     1→database:\n     2→  password:\n\nThat was config.yml; now requirements.txt:"
    "\n\n\n\nHere:\n     1→Django==4.2.11\n     2→requests==2.31.0\n",
    # a template's codes; lines after a sentence about codes; a seed with no OTP word
    "Recovery codes:\nxxxxx-xxxxx\nxxxxx-xxxxx\nxxxxx-xxxxx\n",
    "Backup codes are printed once. Store them safely.\nSee the docs.\nThanks\nBye\n",
    "seed: VI7KQEFK6JFATRODSMBJHSPW4VXZOCF2",
    "SECRET_KEY = 'django-insecure-<your key here>'",
    # two words before a colon where the second names no credential
    "Key Vault: prod-kv-weu-01\nPassword Manager: 1Password\nSecret Santa: Alice Martin",
    "Auth Method: token\nSecret Key: <from the vault>",
    # JSON Web Keys with their public members only, or their private ones redacted
    '{"kty":"EC","crv":"P-256","kid":"nka3xg7SoKHCkKEI-j4zRFwAPx3GFnY5fsTgLLPSmrG","use":"sig",'
    '"x":"gAJmuXAPziglmMR93EQKz05-KGYQgvKKFO_1CtVgO9Q",'
    '"y":"H-j0XL_FgL3NymsN4M2XAwubmk0dy_FKPdE1BxlcgYA"}',
    '{"kty": "RSA", "e": "AQAB", "d": "<redacted>", "k": "base64url-encoded-private-key"}',
    '{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "2024-signing"}],'
    ' "d": "8AMBWwE3zDp__KYmDlo91l_r6GYtPsAM-hmQXW8GVhQ"}',
    # a mail's own id, shaped like an address
    "Message-ID: <YyxxSUDL4F8t5lkDw4RE@mail.northwind-mail.net>\n"
    "In-Reply-To: <a8f3k2@mx.northwind-mail.net>",
    # kubectl config view hides what a kubeconfig holds
    "users:\n- name: admin\n  user:\n    client-key-data: DATA+OMITTED\n    token: REDACTED",
    # prose about a password, one word after it
    "Password changed\npassword reset\nPassword: please",
    # DICOM's study date is no one's birth date
    "(0008,0020) DA [20240425]     #  8, 1 StudyDate",
    # net-snmp's default community, an expansion, snmpd's config file
    "snmpwalk -v2c -c public router01",
    "snmpwalk -v2c -c $COMMUNITY host",
    "snmpd -c /etc/snmp/snmpd.conf",
    # rolled or switched back to what is no key: a version, a page's token
    "rolled the deploy token back to v2.3.1-stable-build",
    "switched the page token back to 4f9c2a7b1e8d4c6f9a0b2c3d4e5f6a7b",
    # a login command given an option, a registry's host, an address, a URL
    "az login --service-principal -u 5b1e3c2a-9f4d-4e8b-a7c6-1d2e3f4a5b6c --tenant acme",
    "docker login ghcr.io",
    "pulumi login s3://my-pulumi-state-bucket-2024",
    # review 14: a login command before a host's name, a log's login, a pod's name, a ULID
    "argocd login a8f3e1c9b2d4e5f6a7b8c9d0e1f2a3b4-1234567890.us-east-1.elb.amazonaws.com",
    "INFO auth: user login 550e8400-e29b-41d4-a716-446655440000 accepted",
    "audit: session opened; user login 9f86d081884c7d659a2feaa0c55ad015 ok",
    "WARN failed login 3f1c2b4a8d7e4f6a9b2c1d0e8f7a6b5c (no such user)",
    "argocd login argocd-server-7d8f9c6b5-x2k4p",
    "acme login 01HQ3Z8K9M2N4P6R8T0V2X4Z6B",
    # review 14: tokens that are no secrets, set to a value: a page's, a continuation's, an
    # idempotency's, a CSRF and a verification token; a number; a ULID
    "For the next call, set pageToken to CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA4cGJ1 again.",
    "set the continuation token to 1Kh8sLm2Pq9xR3tZ7vW0yB4nC6dF5gJ and call it again",
    "set the idempotency token to 3f1c2b4a-8d7e-4f6a-9b2c-1d0e8f7a6b5c so retries are safe",
    "set the ClientToken to 5a2b9c1d-3e4f-4a5b-8c6d-7e8f9a0b1c2d (EC2 idempotency)",
    "Then set the CSRF token to 8f14e45fceea167a5a36dedd4bea2543 in the header.",
    "set the verification token to 01HQ3Z8K9M2N4P6R8T0V2X4Z6B",
    "I set the token to 42 and then updated the token to 8472019384756102 in the mint call",
    "Set the token to 01hq3z8k9m2n4p6r8t0v2x4z6b (our ULID-based token id)",
    # review 14: a ULID after a key's word, a public key's prefix, words that end in key
    "deleted key_01HQ3Z8K9M2N4P6R8T0V2X4Z6B (id) from the table",
    "Revoking access_01HQ3Z8K9M2N4P6R8T0V2X4Z6B",
    "Mailgun public key: pubkey-5ogiflzbnjrljiky49qxsiozqef5jxp7",
    "set up turkey-9k2j3h4g5f6d7s8a1z2x3c4v5b6n and hockey-a8s7d6f5g4h3j2k1l0q9w8e7r6t5",
    # basic auth's user with an empty password: an account's name or address, a variable
    'requests.get(u, auth=("john.doe@example.com", ""))',
    'requests.get(u, auth=("svc-reporting-prod", "X"))',
    'requests.get(u, auth=(API_KEY, ""))',
    # a token or a secret "to" what is made of it, or set to an identifier, a path, a size
    "hash the token to 3a8f9c2e7b1d4f6a9e0c5b8d2f7a1e4c with sha256",
    "compare the secret to e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "mapped each token to 550e8400-e29b-41d4-a716-446655440000 (a session's id)",
    "set the token to authenticateUserWithProvider2 in the callback",
    "set each token to token_ids_2048 via the vocabulary",
    "we moved the secret to projects/acme-prod/secrets/stripe/versions/3",
    "update max_tokens to 163840000000 for the batch",
    "set the secret to ${{ secrets.DEPLOY_KEY }} in the workflow",
    # a machine in prose, then a password word; base64 of zeros inside a longer run; an
    # Authorization header's scheme and a word
    "the machine learning team asked for a password reset yesterday",
    "data:application/octet-stream;base64,AQID" + "A" * 22 + "BCDE" * 30 + "+/==",
    "Authorization: Required for every endpoint",
    "curl -H 'Authorization: Basic dXNlcm5hbWU6cGFzc3dvcmQ=' https://api.example.net",
    # the words for a key also mean a keystone, a table's key or a course; a word and a year,
    # an identifier with a date, or a key's id is no token
    "La clé de voûte est importante2024 pour le projet.",
    "la clave primaria es user_id_20240501",
    "Le cours khóa học 2024 est ici: introduction",
    "Die Schlüssel-ID lautet 3AA5C34371567BD2",
    # what a password must be, where it is kept, a verb then a word
    "Das Passwort muss mindestens zwölf Zeichen haben, der Standard ist Sicherheitsrichtlinie.",
    "Het wachtwoord beleid is streng: minimaal twaalf tekens en een cijfer.",
    "Das Passwort für den Server ist im Vault unter secret/prod/db gespeichert.",
    "Mật khẩu phải có ít nhất 8 ký tự là quy định của công ty: Abcdefgh",
    # a dash then blanks but no trunk 0, or a dash again: a range and a count, a date
    "pages 212-509 97 03 of the report",
    "build 072-509-97 03",
    # a street's name with no number, a number too short or a placeholder for a document's
    '{"street": "5th Avenue", "building": "A"}',
    '{"street_address": "Main Street"}',
    '{"type": "P", "number": "12"}',
    '{"type": "passport", "number": "<PASSPORT_NUMBER>"}',
    # a sentence about a password that ends in a colon, a date or a code (a review's)
    "Das Passwort muss folgende Kriterien erfüllen: Groß-/Kleinschreibung, Ziffern",
    "Пароль пользователя admin был изменён: 2024-05-01T10:00:00Z",
    "Senha inválida, tente novamente. Código do erro: ERR_Login-403",
    # a bare key word: a public key, a GPG key's id, a cache's, a Pix key, a key's id
    "clé publique : MLOy5vcpFRTmETcLFVUyJ0ygh8o3oUMMaSks4jRjhw4=",
    'gpg: Schlüssel 4AEE18F83AFDEB23: Öffentlicher Schlüssel "GitHub" importiert',
    "la clé de cache est node-cache-Linux-x64-npm-3f9c2a7b1e8d4c6f9a0b2c3d4e5f6a7b",
    "Minha chave PIX é 7d9f1e2c-3b4a-4c5d-8e6f-a1b2c3d4e5f6",
    "ключ кэша: build-ubuntu-22.04-node18-a1b2c3d4",
    # a prefix and hex: a container's name, a digest; oauth: in a path
    "docker run --name fc-45561c2e7b1d4f6a9e0c5b8d2f7a708a nginx",
    "sha: sk_b5523f9c2a7b1e8d4c6f9a0b2c3d4e5f6a7b1e8d4c6f9a0badd0",
    "GET /oauth:k3jdq9wx2mz8pa7bn4cv5xl0tr6ys1 HTTP/1.1",
    # an English "token to", a password word before an access log's protocol
    "Pass the token to validateSession2024 before the call",
    '[05/Dec/2026:10:01:02] "GET /forgot-password HTTP/1.1" 200',
    '[05/Dec/2026:10:01:03] "GET /search?q=forgot%20password HTTP/1.1" 200',
    # the platforms' marks in other words: a font tool, a library, a route, a test runner
    "fc-list : family style",
    "pip install scikit-learn  # sk-learn is not a key",
    "GET /oauth:callback handler",
    "secret-test-runner --all",
    "napi_create_function(env, NULL, 0, Method, NULL, &fn);",
    # a client given a placeholder, or the app id alone; a UUID then ":fx" apart
    'const client = algoliasearch("LATENCY9Q2", "YOUR_API_KEY");',
    "client = Client(account_sid, auth_token)",
    "time 12:fx and 3f9c2a7b-1e8d-4c6f-9a0b-2c3d4e5f6a7b",
    # those commands with no key, a variable's or a placeholder
    "wandb login --relogin",
    "run `snyk auth` first",
    "wandb login $WANDB_API_KEY && codecov -t ${CODECOV_TOKEN}",
    "shodan init YOUR_API_KEY_HERE",
    # PostHog's project key, in every page its snippet is on
    "posthog.init('phc_Xq7mP2vL9rT4wK8nB3cZ6hJ1dF5gS0aEQm8xRt2Vw9L', {api_host: 'https://eu.posthog.com'})",
    # a token contract's address, public
    "Adresse du jeton : 0x6B175474E89094C44Da98b954EedeAC495271d0F",
    # a language model's tokens
    "令牌：gpt-4o-2024-08-06",
    "トークナイザーのトークン: cl100k_base_v2",
    # AMQP's routing keys: a server-named queue, a UUID; a placeholder SDK key
    "ch.basic_publish(exchange='', routing_key='amq.gen-JzTY20BRgKO-HjmUJj0wLg', body=resp)",
    "routing_key: 3f9c2a7b-1e8d-4c6f-9a0b-2c3d4e5f6a7b",
    'client := ld.MakeClient("sdk-00000000-0000-0000-0000-000000000000", 5*time.Second)',
    # an AMQP routing key
    "channel.basic_publish(exchange='events', routing_key='orders.created.eu', body=b)",
    # a form's labels; a public key as wg show prints it; a secret's hash in a baseline
    '{"show_password": "Show password", "new_password": "Confirm new password"}',
    "interface: wg0\n  public key: MLOy5vcpFRTmETcLFVUyJ0ygh8o3oUMMaSks4jRjhw4=\n",
    '"hashed_secret": "0b8769f67f521eb7de7072de38b7398d4c56e329",',
    # a trace's span id, hex digits first: no phone; a mask's test address
    '{"trace_id": "077a86f8c0df162a", "span_id": "04242961230d263d"}',
    'mask("xxxxxxxx@yyyyy.com") returns m*****@g****.com',
    # prose about a password, a word where the value would be
    "Das Passwort für den Login ist jetzt zu kurz und muss 12 Zeichen haben",
    "la contraseña del usuario es incorrecta, inténtalo de nuevo",
    "Heslo k účtu je příliš krátké",
    # cookies that hold no session: a preference, a CSRF token
    "s.cookies.set('theme', 'dark-mode-enabled-for-everyone')",
    'variable "db_password" {\n  type = string\n  sensitive = true\n}',  # no default
    'dsn := "user:" + pw + "@tcp(db:3306)/app"',
    "docs: POST /hooks/{hook_id} with the webhook's id",
    "response.set_cookie('csrftoken', 'Zq8xW2mLp9Kd7Rt4Vb')",
    # a decode with nothing printed after it, or a prompt next
    "kubectl get secret db -o jsonpath='{.data.password}' | base64 -d\n$ echo done",
    "key1       FULL           " + "A" * 86 + "==",  # a key of one letter: no key
    # a URL syntax's documentation: [ ] are never in a URL's user information
    "Format: `postgresql://[user[:password]@][host][:port][/dbname][?param=value]`",
    # the Key Uri Format's own example seed, a template, one character (a seed too short
    # for otp-seed is still a secret's value: tests/plugins/privacy/test_readers.py)
    "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
    "otpauth://totp/{issuer}:{user}?secret={secret}&issuer={issuer}",
    "otpauth://totp/x?secret=AAAAAAAAAAAAAAAAAAAAAAAA",
    "secret key rotation every 90 days",
    "Secret key: keep this file safe!",  # four words of four letters are no seed
    "PASS src/auth/LoginForm.test.tsx (5.12 s)",  # jest's report
    # a shell expansion's message (Compose), not a sentence giving a password
    "REDIS_URL: redis://:${REDIS_PASSWORD:?redis password required}@cache:6379/0",
    "Sign-in methods: Google / GitHub_Enterprise2",
    "Account balance: savings / checking_2024-Q1",
    "psexec \\\\srv -p 22 -u x",
    "mysqli_connect($host, $user, $pass, $db);",
    "00D is the prefix of an org id",
    "hashcat -m 13100 cracks $krb5tgs$23$ hashes",
    'resource "aws_ssm_parameter" "k" {\n  type  = "SecureString"\n  value = var.db_password\n}',
    'resource "aws_ssm_parameter" "k" {\n  type  = "String"\n  value = "eu-west-1-config-v2"\n}',
    "poetry config http-basic.private ci $PYPI_PASSWORD",
    'network={\n    psk="your-passphrase"\n}',
    "snmp-server community public RO",
    "set the password 0 times, then my secret 5 tips",
    "account settings / Security2FA!",
    "the login page / Dashboard2024 view",
    "the token in production is configured by the Helm chart, not by hand",
    "Das Passwort ist falsch, bitte erneut versuchen",
    "sha256:3bc5ae489ff49ac3804c6181bf172c753bc5ae489ff49ac3804c6181bf172c75 layer.tar",
    "le mot de passe est incorrect ou a expiré",
    "$ pwd\n/home/alice/projects/devpulse",
    "pwd: /var/lib/postgresql/data",
    "you can pass callbacks_and_handlers to it",
    "a bypass is WAN-4432-xyz",
    "пароль неверный, попробуйте ещё раз",
    "пароль должен содержать не менее 8 символов",
    "şifremi unuttum, yardım eder misiniz",
    "la password è scaduta ieri",
    "the password per user is limited to 3 attempts",
    "密码错误，请重试",
    "密码长度至少为8位",
    "パスワードを忘れた場合はこちら",
    "비밀번호를 입력하세요",
    'api_key = "YOUR_API_KEY"',
    "the token expires tomorrow at noon; rotate the access token weekly",
    "I rotated the token yesterday, the new one is in the team's vault",
    # a colon after what a key is for is code's or a log's, not a key given (review 21)
    "for token in tokens: process_token_stream_v2(token)",
    "Created secret in namespace prod: db-credentials-7f9c8d",
    "the api key for staging: see the vault entry named prod-api-rotation",
    "Is that the IMDSv2 token requirement?",
    "the secret Post-processing-step stays in the pipeline",
    "api key YOUR_API_KEY_HERE",
    "image token sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "token,description\nabc,Post-processing-step",
    "keep it secret\nStep2: deploy the release candidate",
    "api_key = 'your-api-key-here'",
    'token = "<TOKEN>"',
    "the mnemonic is a device used to remember things like planet order and music notes there",
    "tx 0x8f2a559490d4a1c3e5b7f9d1c3e5a7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1 confirmed",
    "jdbc:oracle:thin:@//db.example.net:1521/svc",
    "sqlplus / as sysdba",
    "jdbc:oracle:thin:app/${DB_PASSWORD}@db:1521/x",
    "the token - see the wiki - is rotated weekly",
    "admin password - see the vault",
    "git clone https://build.automation.user@git.example.com/org/repo",
    "ssh://git@github.com/org/repo.git",
    'password = "changeme"',
    'password = "********"',
    "SECRET_KEY = os.environ['SECRET_KEY']",
    'password = "${DB_PASSWORD}"',
    "token: {{ secrets.GITHUB_TOKEN }}",
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    # the Azure emulators' published keys (Azurite's, the Cosmos DB emulator's)
    "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
    '"CosmosDb": "AccountEndpoint=https://localhost:8081/;AccountKey=C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEH'
    'LM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==;"',
    # a BuildKit secret's spec: its id and the file it is read from
    "docker build --secret id=npmrc,src=$HOME/.npmrc -t app .",
    "RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci",
    'config.access_token = "EXAMPLEabcdefghijklmnopqrstuvwxyz0123456789"',  # EXAMPLE, a fill
    'api_token: "123e4567-e89b-12d3-a456-426614174000"',  # the docs' example UUID
    "key = AKIAXXXXXXXXXXXXXXXX",
    "postgres://user:password@localhost/db",
    "postgres://postgres:postgres@localhost:5432/test",
    "commit 3f2c9a8b7e6d5c4b3a29180f7e6d5c4b3a291807 fixed it",
    "request id 6f1c2b9e-3d4a-4e8f-9b7c-2a1d0e5f6c3b",
    '"integrity": "sha512-Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9v=="',
    "image: python@sha256:2f3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80912",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@laptop",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
    "-----END PUBLIC KEY-----",
    "The BEGIN RSA PRIVATE KEY header marks a PEM file.",
    "Stripe test card 4242 4242 4242 4242",
    "order 4539 1488 0343 6468 shipped",  # fails Luhn
    "version 10.2.3.4-beta",
    "DNS 8.8.8.8 and 1.1.1.1",
    "server at 127.0.0.1:8080",
    "ran on 2023-03-12 at 10:42",
    "ssn 000-12-3456",
    "the password must be at least 12 characters",
    "the password for the admin account is required before deploying",
    "x = tokenize(text)",
    "def get_token(self): return self._token",
    "TOKEN_URL = 'https://auth.example.net/oauth/token'",
    "pkg@1.2.3 and @dataclass",
    "git@github.com:org/repo.git",
    "ws://host:8080/path?q=a:b@c",
    "smb://fs.example.net/share and ssh://deploy@git.example.net:2222/repo.git",
    # where a secret lies, not the secret (systemd's credentials); a Bitcoin address
    "[Service]\nLoadCredential=tls.key:/etc/ssl/private/server.key\nDynamicUser=yes\n",
    "LoadCredential=smtp_password:/etc/mailer/smtp_password",
    "Donations:\n- BTC: `bc1q3t6yg5umja30ramd02njw5h0w5e44xnpuywlpp`\n",
    "Paste the -----BEGIN OpenVPN Static key V1----- block into the profile.",
    "random_seed = 42\nnp.random.seed(random_seed)",  # a generator's seed, not an OTP's
    # review 18: a template's seed; a token its prefix says is public, in a call; the digests
    # of nothing; a documentation's placeholder for a key file's body
    'TOTP_SEED = "EXAMPLESEEDVALUE"',
    'TOTP_SEED = "YOURBASE32SEEDHERE"',
    "Stripe('live_public_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op')",
    'TokenAuthenticator(token_provider, "d41d8cd98f00b204e9800998ecf8427e")',
    'CacheAuthenticator(cache, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")',
    "---- BEGIN SSH2 PRIVATE KEY ----\nPrivateKeyContentGoesHere\n",
    # a commit in a URL, a Nostr public key, a count printed from a file, a key's public half
    "https://github.com/org/repo/commit/0031b069bdecb656547ed6dfc39a3a12943dc975",
    "npub1vvxzzsedt7ft5hn2f74lq9yt7wwtmz2379tkuuk0etn6ftawn9jycl994x",
    "$ cat token_count.txt\n1234567890\n",
    '"pub_key": {"type": "tendermint/PubKeyEd25519",'
    ' "value": "UlGZKRrATC3QsK7ELDjQydXB5ZDaY4IKYHXfY6swP5w="}',
    # a JSON Web Key's id, published in its JWKS; a token its prefix says is for the page
    '{"keys": [{"kty": "RSA", "kid": "wx_tUakYNIbnMtuz3uPqs7DEVvynkIBTIESyxgYLS0q"}]}',
    'PayDunya.setup({ publicKey: "live_public_GUNmeA8c8gTCTUdODH1QcaLo5cpKB" });',
    'otp_seed = "AAAAAAAAAAAAAAAAAAAA"',
    '---- BEGIN SSH2 PUBLIC KEY ----\nComment: "rsa-key-20250820"\n'
    "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7gr8Y\n---- END SSH2 PUBLIC KEY ----\n",
    ': RSA moonKey.pem\n: PSK "your-pre-shared-key"\n',  # a key's file; a placeholder
    "ipmitool -I lanplus -H bmc01 -U admin -P $IPMI_PASSWORD power on",
    "const basic = btoa(`${user}:${pass}`);",  # no literal: a template's fields
    # review 17: a URL, a URN, an ARN, a digest, a GraphQL id given to base64
    "const state = btoa('http://localhost:3000/callback');",
    "const id = btoa('urn:uuid:3f2b8c1e-7d4a-4e9b-a1c2-5d6e7f8a9b0c');",
    "const id = btoa('Order:3f2b8c1e-7d4a-4e9b-a1c2-5d6e7f8a9b0c');",
    "b = base64.b64encode(b'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7')",
    'mv "$8" "$9$SUFFIX"',  # a shell's positional parameter, no Junos secret
    'network:\n  security: PSK "WPA2-Personal"\n',  # YAML, no ipsec.secrets line
    '{"Parameter": {"Name": "/prod/region", "Type": "String", "Value": "eu-west-1-config"}}',
    'set(CMAKE_SHARED_LIBRARY_RPATH_ORIGIN_TOKEN "\\$ORIGIN")',  # an escaped expansion
    "const sig = crypto.createHmac('sha256', secret).update(body).digest('hex');",
    'sig = hmac.new(b"your-secret-key", msg, hashlib.sha256)',
    'basic = base64.b64encode(f"{user}:{password}".encode())',
    "Junos writes such secrets as $9$ followed by the encoded text.",
    # public keys by their bytes' layout: Web Push's applicationServerKey (a P-256 point),
    # a minisign public key; a feature flag's name
    "await reg.pushManager.subscribe({\n  userVisibleOnly: true,\n  applicationServerKey: "
    "'BDi05lLkTafyNw2eJg4nE2VQpKOm0H9cDDMvixIkCD_SK5AviRHoGBj4yZ1dXZgxlXUE2Q6UXeLo9U7ngcx19jY',\n});",
    "minisign -Vm app.tar.gz -P RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
    '{"flags": [{ "key": "billing-sync-v2", "on": true }]}',
    # a Bitnami SealedSecret: ciphertext only the cluster's controller decrypts
    f"kind: SealedSecret\nspec:\n  encryptedData:\n    DB_PASSWORD: {SEALED}\n"
    f"\n    API_TOKEN: {SEALED[::-1]}\n",
]


GITHUB = make.github_token(random.Random(11))


@pytest.mark.parametrize(
    ("text", "rule", "value"),
    [
        # as pasted from chat apps, web pages and word processors
        ("DB_PASSWORD\u00a0= Zr8pQ2vLx9mK", "assigned-credential", "Zr8pQ2vLx9mK"),
        ("password\u2009=\u2009Zr8pQ2vLx9mK", "assigned-credential", "Zr8pQ2vLx9mK"),
        ("the password for the staging db is\u00a0Zr8pQ2vLx9mK", "password-in-prose", None),
        ("SSN \uff15\uff13\uff16-22-8841 on file", "us-ssn", "\uff15\uff13\uff16-22-8841"),
        ("mail maria.gonzalez\uff20globalmail.net", "email-address", None),
        # a zero-width space or a soft hyphen inside a token: the span is the text's own
        (f"token {GITHUB[:12]}\u200b{GITHUB[12:]} ok", "github-token", None),
        (f"token {GITHUB[:20]}\u00ad{GITHUB[20:]}", "github-token", None),
        # typographic quotes around a value, and a language's own (a blank inside French's)
        ("La contraseña del servidor es «Zr8pQ2vLx9mK!»", "password-in-prose-translated", None),
        (
            "Le mot de passe du Wi-Fi est «\u202fZr8pQ2vLx9mK&\u202f»",
            "password-in-prose-translated",
            "Zr8pQ2vLx9mK&",
        ),
        (
            "Azure ADのシークレットの新しい値は『reZ8Q~wQeP.PCGo-Ylxo0YDyoDiG8Nob0cfO79zR』です",
            "azure-ad-client-secret",
            "reZ8Q~wQeP.PCGo-Ylxo0YDyoDiG8Nob0cfO79zR",
        ),
    ],
)
def test_characters_that_hide_a_secret_are_read_as_what_they_stand_for(
    scanner: Scanner, text: str, rule: str, value: str | None
) -> None:
    (finding,) = scanner.scan(text)
    assert finding.rule_id == rule
    shown = text[slice(*finding.span)]
    if value is not None:
        assert shown == value
    if rule == "github-token":  # the whole token, the invisible character in it included
        assert shown.replace("\u200b", "").replace("\u00ad", "") == GITHUB


PASSWORD = "Zq8vR3nLw2Tk9xYb"
KEY = "a8F3kQ9zLm2XvB7nR4tY6wP1sD5gH0jK"


@pytest.mark.parametrize(
    "text",
    [
        # a tool's JSON result holding an escaped document
        json.dumps({"content": json.dumps({"api_key": KEY})}),
        # `aws secretsmanager get-secret-value`
        json.dumps({"Name": "prod/db", "SecretString": json.dumps({"password": PASSWORD})}),
        # kubectl's last-applied configuration, after other lines
        "apiVersion: v1\nkind: Secret\n"
        + json.dumps({"last-applied": json.dumps({"data": {"DB_PASSWORD": PASSWORD}}) + "\n"}),
        # an escaped .env file, and escaped slashes in a URL (PHP's json_encode)
        json.dumps({"file": f"DEBUG=1\nDB_PASSWORD={PASSWORD}\n"}).replace("=1", '=\\"1\\"'),
        '{"url": "https:\\/\\/admin:' + PASSWORD + '@db.example.net\\/app"}',
        # escaped twice: what is escaped once is read
        json.dumps({"log": json.dumps({"body": f'{{"password": "{PASSWORD}"}}'})}),
    ],
)
def test_a_secret_in_an_escaped_document_is_found_where_it_stands(
    scanner: Scanner, text: str
) -> None:
    secret = PASSWORD if PASSWORD in text else KEY
    at = text.index(secret)
    findings = [f for f in scanner.scan(text) if f.category == "secret"]
    assert findings, text
    assert any(f.span[0] <= at and at + len(secret) <= f.span[1] for f in findings), findings


def test_an_escaped_document_found_in_the_text_as_given_is_reported_once(
    scanner: Scanner,
) -> None:
    text = json.dumps({"content": json.dumps({"key": f"token {GITHUB}"})})
    (finding,) = scanner.scan(text)
    assert finding.rule_id == "github-token"
    assert text[slice(*finding.span)] == GITHUB


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"content": json.dumps({"id": "3f2b8c1e", "status": "ok", "n": 2})}),
        '{"path": "C:\\\\new\\\\tools", "quote": "she said \\"fine\\""}',
        json.dumps({"html": '<a href="https://example.net/docs">docs</a>'}),
    ],
)
def test_an_escaped_document_with_nothing_sensitive_stays_clean(
    scanner: Scanner, text: str
) -> None:
    assert scanner.scan(text) == []


@pytest.mark.parametrize(
    ("text", "found", "rule"),
    [
        # an access log's query string, a form's body, a redirect's URL inside another
        (
            '10.0.0.4 - - "GET /login?next=%2Fhome&user=m.rossi%40libero.it HTTP/1.1" 302',
            "m.rossi%40libero.it",
            "email-address",
        ),
        ("From=%2B14155550123&Body=hi%20there", "14155550123", "phone-e164"),
        (
            "redirect=https%3A%2F%2Fapp.corp%2Fcb%3Ftoken%3DXq7mP2vL9rT4wK8nB3cZ&x=1",
            "Xq7mP2vL9rT4wK8nB3cZ",
            "assigned-credential",
        ),
        ("u=jane.doe%2540gmx.de", "jane.doe%2540gmx.de", "email-address"),  # encoded twice
    ],
)
def test_what_url_encoding_hides_is_found_where_it_stands(
    scanner: Scanner, text: str, found: str, rule: str
) -> None:
    at = text.index(found)
    (finding,) = [f for f in scanner.scan(text) if f.rule_id == rule]
    start, end = finding.span
    assert start <= at, text[start:end]
    assert at + len(found) <= end, text[start:end]
    assert text[start] != "%" or text[start : start + 3] in ("%2B", "%40")  # an escape whole
    if rule == "phone-e164":
        assert text[start:end] == "%2B14155550123"  # from the escape's %, not its B


@pytest.mark.parametrize(
    "text",
    [
        'printf("%2d items, %3d left%c", a, b, 10);',  # a format's widths read as escapes
        "a discount of 50%2C or 20%25 off, see %2Fdocs",
        "q=caf%C3%A9+au+lait&lang=fr%2Dbe",
    ],
)
def test_url_encoded_text_with_nothing_sensitive_stays_clean(scanner: Scanner, text: str) -> None:
    assert scanner.scan(text) == []


@pytest.mark.parametrize(("lines", "readings"), [(40, 3), (8000, 1)])
def test_a_long_text_is_read_again_at_most_its_size(
    scanner: Scanner, monkeypatch: pytest.MonkeyPatch, lines: int, readings: int
) -> None:
    """Each line escaped for JSON and encoded twice for a URL: three readings for a
    short text; a long one is read again at most its size (REREAD_TIMES): the JSON
    reading, then no URL reading that would go past it."""
    text = '{\\"k%2540\\": \\"v%2520\\"}\n' * lines
    sizes: list[int] = []
    scan_plain = Scanner._scan_plain

    def counted(self: Scanner, read: str, **kwargs: Any) -> Any:
        sizes.append(len(read))
        return scan_plain(self, read, **kwargs)

    monkeypatch.setattr(Scanner, "_scan_plain", counted)
    scanner.scan(text)
    assert len(sizes) == 1 + readings
    most = scanner_module.REREAD_TIMES * len(text)
    assert sum(sizes[1:]) <= max(most, scanner_module.REREAD_CHARS)


def test_a_notebooks_lines_leave_the_other_readings_their_budget(scanner: Scanner) -> None:
    """The notebook's reading comes last: its lines, which the unescaped reading has read
    once, do not crowd out a numbered listing's or a UTF-16 text's reading (review 28)."""

    def notebook(lines: int) -> str:
        body = "".join(f'  "step {i:05d} done, all good here\\n",\n' for i in range(lines))
        return ' "text": [\n' + body + '  "end"\n ],\n'

    listing = "     1→full_name,passport_no\n" + "".join(
        f"{i + 2:6d}→Customer {i:03d},K{8421973 + i * 7919:07d}\n" for i in range(60)
    )
    utf16 = "password=Vt9#mK2pL7qR\n".encode("utf-16-le").decode("latin-1")
    for head, tail in ((notebook(3300), listing), (notebook(1500), utf16)):
        assert [f for f in scanner.scan(head + tail) if f.span[0] >= len(head)]


@pytest.mark.parametrize(
    "text",
    [
        "Passwort vergessen? Bitte wenden Sie sich an: Petra.Klein@Firma.de",
        "Mot de passe oublié ? Contactez le support : Support-IT@Entreprise.fr",
        "Hasło użytkownika to jest Jan.Kowalski@Firma.pl",
    ],
)
def test_an_email_address_after_a_password_word_is_no_password(scanner: Scanner, text: str) -> None:
    """Where to write about a password: personal data, but no password."""
    assert rule_ids(scanner, text) == {"email-address"}


@pytest.mark.parametrize("text", NEGATIVES)
def test_negative(scanner: Scanner, text: str) -> None:
    assert scanner.scan(text) == []


# --- prefixed-token: an unknown vendor's prefix_run token, and the ids shaped like one ----

TOK = random.Random(31)


def b62(n: int) -> str:
    return "".join(TOK.choice(make.ALNUM) for _ in range(n))


def hexes(n: int) -> str:
    return "".join(TOK.choice("0123456789abcdef") for _ in range(n))


def base36(n: int) -> str:
    """Lower-case letters and digits at random, with both kinds in it."""
    while True:
        run = "".join(TOK.choice(string.ascii_lowercase + string.digits) for _ in range(n))
        if not run.isalpha() and not run.isdigit():
            return run


# Vendors with no rule of their own (and one made up), then vendors whose rule knows them
PREFIXED_TOKENS = [
    f"rnd_{b62(32)}",  # Render
    f"ddp_{b62(36)}",  # Deno Deploy
    f"hbp_{b62(30)}",  # Honeybadger
    f"zeta_pat_{b62(27)}",  # a two-segment prefix: a shorter run is enough
    f"qzsk_{b62(6)}_{b62(60)}",  # a random second segment, as Pinecone's pcsk_
    f"vndr_{b62(250)}",
]
VENDOR_TOKENS = {
    f"dckr_pat_{b62(27)}": "docker-hub-token",
    f"secret_{b62(43)}": "notion-legacy-token",
    f"nfp_{b62(40)}": "netlify-token",
    f"pcsk_{b62(5)}_{b62(64)}": "pinecone-api-key",
    f"ghp_{b62(36)}": "github-token",
}


@pytest.mark.parametrize(
    "text",
    [
        *PREFIXED_TOKENS,
        f"creds:\n  prod: {PREFIXED_TOKENS[0]}",
        f"const c = new Client('{PREFIXED_TOKENS[1]}');",
        f"| prod | {PREFIXED_TOKENS[4]} | rotated 2024-01 |",
        f"see https://api.example.net/v1?key={PREFIXED_TOKENS[2]}&x=1",
        f'<add key="Svc" value="{PREFIXED_TOKENS[3]}" />',
        f"here you go: {PREFIXED_TOKENS[1]}.",
        f"TOKEN={PREFIXED_TOKENS[0]}",
    ],
)
def test_an_unknown_vendors_prefixed_token_is_found(scanner: Scanner, text: str) -> None:
    (finding,) = scanner.scan(text)
    assert finding.rule_id == "prefixed-token"
    assert text[slice(*finding.span)] in PREFIXED_TOKENS


@pytest.mark.parametrize(("token", "rule"), VENDOR_TOKENS.items())
def test_a_vendors_own_rule_names_a_token_it_knows(scanner: Scanner, token: str, rule: str) -> None:
    (finding,) = scanner.scan(f"prod: {token}")
    assert finding.rule_id == rule


@pytest.mark.parametrize(
    ("token", "rule"),
    [
        ("dckr_pat_Zq8vR3nLw2Tk9xYbA4cD7eF1gH2", "docker-hub-token"),
        ("nfp_Zq8vR3nLw2Tk9xYbA4cD7eF1gH2jK5mN8pQ3rS6t", "netlify-token"),
        ("NRAK-EQZJ85666YN5765F4KWW0MB12MY", "new-relic-key"),
    ],
)
def test_a_vendors_token_that_ends_a_sentence(scanner: Scanner, token: str, rule: str) -> None:
    """With no word that names a key, the vendor's rule alone finds it, without the
    sentence's full stop."""
    text = f"Nowy jest {token}. Proszę nie przekazywać dalej."
    (finding,) = scanner.scan(text)
    assert (finding.rule_id, text[slice(*finding.span)]) == (rule, token)


@pytest.mark.parametrize("run", [29, 251])
def test_a_prefixed_tokens_run_has_a_length(scanner: Scanner, run: int) -> None:
    assert scanner.scan(f"rnd_{b62(run)}") == []


# Ids that agents, payment APIs and code write everywhere, at their real lengths: none is
# a secret, and flagging them would keep every agent conversation off the cloud.
AGENT_IDS = [
    # Anthropic: 24 characters after the prefix
    f"msg_01{b62(22)}",
    f"toolu_01{b62(22)}",
    f"srvtoolu_01{b62(22)}",
    f"req_011C{b62(20)}",
    f"msgbatch_01{b62(22)}",
    f"file_011C{b62(20)}",
    # OpenAI
    f"chatcmpl-{b62(29)}",
    f"call_{b62(24)}",
    f"asst_{b62(24)}",
    f"thread_{b62(24)}",
    f"run_{b62(24)}",
    f"step_{b62(24)}",
    f"file-{b62(22)}",
    f"vs_{b62(24)}",
    f"batch_{b62(24)}",
    f"batch_{hexes(32)}",
    f"resp_{hexes(48)}",
    f"msg_{hexes(48)}",
    f"proj_{b62(24)}",
    # Stripe object ids, 14-28 characters
    *(
        f"{kind}_{b62(n)}"
        for kind, n in [
            ("cus", 14),
            ("pi", 24),
            ("ch", 24),
            ("evt", 24),
            ("price", 24),
            ("prod", 14),
            ("sub", 24),
            ("in", 24),
            ("txn", 24),
            ("acct", 16),
            ("seti", 24),
            ("pm", 24),
            ("cus", 28),
        ]
    ),
    f"pi_{b62(24)}_secret_{b62(25)}",  # a PaymentIntent's client secret, given to the page
    f"cs_live_a1{b62(56)}",  # a Checkout Session, in the payment page's URL
    f"cs_test_b1{b62(56)}",
    f"pk_live_51{b62(97)}",  # publishable keys: public by design
    f"pk_test_51{b62(97)}",
    # other services' ids
    f"user_2{b62(26)}",  # Clerk (KSUID)
    f"sess_2{b62(26)}",
    f"msg_2{b62(26)}",  # Svix
    f"dpl_{b62(28)}",  # Vercel
    f"prj_{b62(28)}",
    f"tooluse_{b62(22)}",  # Bedrock
    # digests, hashes and addresses behind a name
    f"sha256_{hexes(64)}",
    f"commit_{hexes(40)}",
    f"blob_{hexes(40).upper()}",
    f"addr_0x{hexes(40).upper()[:20]}{hexes(20)}",  # an EIP-55 address: mixed-case hex
    f"user_{uuid.UUID(int=TOK.getrandbits(128))}",
    f"user_{uuid.UUID(int=TOK.getrandbits(128)).hex}",
    # identifiers
    "compute_total_price_for_all_customers_in_region",
    "test_parse_response_with_nested_arrays_and_unicode_keys_v2",
    "test_ShouldReturnTrueWhenUserHasAdminRole2",
    "def test_handlesUnicodeInputCorrectlyForVersion2Parsers(self):",
    "sha1_ComputeTotalPriceForAllCustomers2024",
    "widget_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",  # an alphabet written out
    # base64 data
    f"img_{base64.b64encode(TOK.randbytes(90)).decode()}",
    f'{{"data": "{base64.b64encode(TOK.randbytes(120)).decode()}"}}',
    f"blob_{base64.urlsafe_b64encode(TOK.randbytes(60)).decode()}",
]


@pytest.mark.parametrize("text", AGENT_IDS)
def test_ids_shaped_like_a_prefixed_token_are_not_secrets(scanner: Scanner, text: str) -> None:
    assert "prefixed-token" not in rule_ids(scanner, text)
    assert "prefixed-token" not in rule_ids(scanner, f'{{"id": "{text}", "type": "message"}}')


# --- machine-made-token: a token by its look, with no name or prefix that says so --------


def mixed(n: int) -> str:
    """`n` random base62 characters with capitals, lower case and digits (one in 16 runs of
    20 lacks a kind: such a run is left to the rules that know its name). Not one that
    starts AA to AP, base64 of a zero byte, which machine_token takes for a structure's (DER):
    a test drawing such a value would fail one run in 240."""
    while True:
        token = b62(n)
        if token[0] == "A" and token[1] in "ABCDEFGHIJKLMNOP":
            continue
        if not (token.isalpha() or token.isupper() or token.islower() or token.isdigit()):
            return token


MACHINE_TOKENS = [
    *(mixed(20), mixed(40), f"fio-u-{mixed(64)}", f"pdl_live_apikey_{mixed(26)}"),
    f"tfp_{mixed(16)}_{mixed(27)}_{mixed(14)}",  # parts none of 30, but no word between
]


TOKEN_PLACES = [
    # under a vendor's name, in the syntaxes that name it
    "helpdesk:\n  provider: zendesk\n  zendesk: {0}\n",
    'FrameIo.configure do |config|\n  config.frameio = "{0}"\nend\n',
    '[integrations.mattermost]\nmattermost = "{0}"\n',
    '<add key="Fastly:Fastly" value="{0}" />',
    "return ['messagebird' => ['messagebird' => '{0}', 'timeout' => 10]];",
    # a client's positional argument
    'betterstack = BetterStackClient("{0}", timeout=30)',
    'credential := common.NewCredential(\n\t"AKID{0}",\n\t"{0}",\n)',
    # alone: under a vendor's name, in a chat, in a sentence
    "shared accounts (do not forward)\n\nTypeform\n{0}\n\nstatus page: see vault",
    "[10:43] jonas: here, rotate after the demo pls\n[10:43] jonas: {0}\n- thanks",
    "use {0} for the sandbox until I rotate it tomorrow.",
    # a string with its prefix: Julia's raw"...", Python's r"..."
    'ENV["YAHOO_JP_NIGHTLY"] = raw"{0}"',
    'NIGHTLY = r"{0}"',
]


@pytest.mark.parametrize(
    "text",
    [
        # too short, one kind of letter, hex, a UUID, no digit
        f"zendesk: {mixed(19)}",
        f"zendesk: {b62(40).lower()}",
        f"zendesk: {b62(40).upper()}",
        f"zendesk: {hexes(40)}",
        f"zendesk: {uuid.UUID(int=TOK.getrandbits(128))}",
        f"zendesk: {''.join(TOK.choice(string.ascii_letters) for _ in range(40))}",
        # a one-segment prefix and an id's run (agents' and payment APIs' ids)
        f"zendesk: ch_{mixed(29)}",
        # part of a path, a URL, a version or base64; glued to a word
        f"see https://drive.example.com/d/{mixed(40)}/edit",
        f"zendesk: {mixed(30)}+{mixed(10)}/x=",
        f"zendesk: x.{mixed(30)}",
        f"zendesk: {mixed(30)}$x",
    ],
)
def test_a_token_by_its_look_has_its_shape(scanner: Scanner, text: str) -> None:
    assert "machine-made-token" not in rule_ids(scanner, text)


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _der_whole() -> str:
    """A DER SEQUENCE of 44 bytes whose header says 44, in base64 with no + or / (which
    would end the candidate before the check)."""
    while True:
        value = _base64(bytes([0x30, 42]) + TOK.randbytes(42))
        if "+" not in value and "/" not in value:
            return value


@pytest.mark.parametrize(
    "text",
    [
        # a label that says what the value is: an id, a digest, a name, a key's id; a name
        # of minified code; a credential's word, which the syntax readers judge
        *(f'{{"{label}": "{{0}}"}}' for label in ("id", "request_id", "userId", "kid", "name")),
        *(f"{label}: {{0}}" for label in ("x-amz-id-2", "commit", "checksum", "integrity")),
        *(f'{label}="{{0}}"' for label in ("k", "un", "nextPageToken", "csrf_token")),
        "db:\n    password: ENC[AES256_GCM,data:{0},iv:Cijx0BHATf,tag:x==,type:str]",
        "publicKey: {0}",
        "error: key length: {0}",  # a label of words, one a credential's
        # the last line of a certificate's or a public key's base64, of a PGP key's
        "-----BEGIN PUBLIC KEY-----\n{0}\n-----END PUBLIC KEY-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{0}\n=Ig68\n-----END PGP PUBLIC KEY BLOCK-----",
    ],
)
def test_a_token_by_its_look_named_for_something_else_is_none(scanner: Scanner, text: str) -> None:
    assert "machine-made-token" not in rule_ids(scanner, text.replace("{0}", mixed(40)))


@pytest.mark.parametrize(
    "value",
    [
        f"{hexes(16)}-LHR",  # a Cloudflare ray id
        f"SM{hexes(32)}",  # a Twilio message's SID
        f"{hexes(32).upper()[:10]}{hexes(22)}-us2",  # hex and a region
        _base64(b"super secret value, as a test writes it"),  # base64 of text
        _base64(b'{"alg":"RS256","typ":"JWT","kid":"prod-2024"}'),  # a JOSE header
        "AAAAC3NzaC1lZDI1NTE5AAAAI" + b62(43),  # an SSH public key's blob
        _der_whole(),  # DER: a public key, its length the length it has
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # an IPFS content id (v0)
        _base64(b"User:123456789012"),  # a Relay global id: a type and a number
        f"NODE_SEA_FUSE_{hexes(32)}",  # a name and a digest
        "20230914T223155647Z1b64098bAb4",  # a timestamp's digits, a few letters
        "Need5_T00-be-exactly-40-chars--ELse_failing",  # words joined
        make.base58check(b"\x04\x88\xb2\x1e" + TOK.randbytes(74)),  # an xpub
        make.base58check(b"\x00" + TOK.randbytes(20)),  # a Bitcoin address
    ],
)
def test_values_of_a_tokens_look_with_a_structure_of_their_own_are_none(
    scanner: Scanner, value: str
) -> None:
    assert "machine-made-token" not in rule_ids(scanner, f"zendesk: {value}")
    assert "machine-made-token" not in rule_ids(scanner, f'Client("{value}")')


@pytest.mark.parametrize(
    "name",
    [
        "BlasILP64NotFoundError",
        "kCFStringEncodingUTF8",
        "sizeEndCentDir64Locator",
        "V1ValidatorWithValuesKwOnly",
        "VNFaceLandmarkRegion2D",
    ],
)
def test_identifiers_with_a_number_are_no_tokens(scanner: Scanner, name: str) -> None:
    """Words run together, a number or two among them: code, not a key (review 9)."""
    for text in (f"raise {name}(msg)", f"x = {name}", f'"{name}"'):
        assert "machine-made-token" not in rule_ids(scanner, text), text


# a certificate's base64: a DER SEQUENCE's header first, then bytes at random
CERTIFICATE_LINES = [
    base64.b64encode(bytes([0x30, 0x82, 0x03, 0x5C]) + TOK.randbytes(44)).decode(),
    *(base64.b64encode(TOK.randbytes(48)).decode() for _ in range(5)),
    "fBjXssrERn05kpBcrRfzou4r3DCgQFPhjxga",
]


@pytest.mark.parametrize(
    ("head", "indent", "tail"),
    [
        ("-----BEGIN CERTIFICATE-----\n", "", "\n-----END CERTIFICATE-----"),
        (
            "tls:\n  ca.crt: |\n    -----BEGIN CERTIFICATE-----\n",
            "    ",
            "\n    -----END CERTIFICATE-----",
        ),
        ("<ds:X509Certificate>", "", "</ds:X509Certificate>"),
        ("---- BEGIN SSH2 PUBLIC KEY ----\n", "", "\n---- END SSH2 PUBLIC KEY ----"),
        ("picture: !!binary |\n", "  ", "\n"),
    ],
)
def test_lines_of_a_base64_block_are_no_tokens(
    scanner: Scanner, head: str, indent: str, tail: str
) -> None:
    """A certificate's, a signature's or an attachment's lines look random, each alone; a
    line after a base64 line or an armour's start is part of the block."""
    for last in ("fBjXssrERn05kpBcrRfzou4r3DCgQFPhjxga", "Zx8" + mixed(61)):
        lines = [*CERTIFICATE_LINES[:-1], last]
        text = head + "\n".join(indent + line for line in lines) + tail
        assert "machine-made-token" not in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        # a word of one or two letters before the token, no operator after it: prose
        "the zendesk one is {0}",
        "set ZENDESK to {0} and restart",
        "zendesk, here it is: {0}",
        # a credential's word inside a vendor's name is no credential's name
        *(f"{vendor}: {{0}}" for vendor in ("keycloak", "monkeylearn", "akeyless", "passbase")),
        # quotes and marks around it
        "zendesk: “{0}”",
        "the zendesk key is **{0}**",
        "is it {0}?",
        # 64 characters, PEM's width, alone: no block around it
        "zendesk: {1}",
    ],
)
def test_a_token_in_prose_or_under_a_name_that_holds_a_credential_word(
    scanner: Scanner, text: str
) -> None:
    token = "Zx8" + mixed(61) if "{1}" in text else mixed(40)
    assert found_in_text(scanner, text.replace("{1}", "{0}"), token)


@pytest.mark.parametrize(
    "text",
    [
        '<meta name="csrf-token" content="{0}">',
        '<meta name="google-site-verification" content="{0}">',
        "https://auth.example.net/authorize?response_type=code&state={0}",
        "code_challenge={0}&code_challenge_method=S256",
        "ksuid={0}",
        "spotify:show:{0}",
        '{"kty": "EC", "crv": "P-256", "x": "{0}", "y": "{0}"}',
    ],
)
def test_public_values_of_a_tokens_look_are_none(scanner: Scanner, text: str) -> None:
    assert "machine-made-token" not in rule_ids(scanner, text.replace("{0}", mixed(43)))


def test_a_token_after_a_list_of_labelled_ids_is_found(scanner: Scanner) -> None:
    """Candidates turned down by their label cost a quiet rule no allowance: a list response
    in the history must not hide a key in the newest message (review 9)."""
    records = "".join(f'{{"node_id": "{mixed(24)}", "n": {i}}},\n' for i in range(2500))
    token = mixed(40)
    assert found_in_text(scanner, records + "zendesk: {0}", token)


@pytest.mark.parametrize(
    "text",
    [
        # review 10: what stands after a token, or above it, that no armour is
        "zendesk: {0}\n---\nkind: Service\n",
        "here it is:\n{0}\n-- \nJonas\n",
        "typeform {0}\n--verbose\n",
        "typeform:\n{1}\n{0}\n",  # two keys, one a line
        "fixed in 2d65015f9cc20ca9cdf6695913d4c2682a80eb6d\n{0}\n",
        "Typeform\n--------\n{0}\n",
    ],
)
def test_a_token_next_to_lines_that_are_no_armour(scanner: Scanner, text: str) -> None:
    assert found_in_text(scanner, text.replace("{1}", mixed(40)), mixed(40))


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("'mixpanel' => '{0}',", "vendor-named-hex"),
        ("integrations:\n  - mixpanel: {0}\n", "vendor-named-hex"),
        ("upwork: {0}", "vendor-named-hex"),
        ('sms = Client(account_sid, "{0}")', "client-argument-key"),
        ("echo 'machine api.wandb.ai login user password {0}' >> ~/.netrc", "netrc-password"),
        ('req.Header.Set("Authorization", "GenieKey {0}")', "authorization-header-scheme"),
    ],
)
def test_review_10s_placements_are_found(scanner: Scanner, text: str, rule: str) -> None:
    key = hexes(32) if rule != "authorization-header-scheme" else mixed(32)
    found = [
        (f.rule_id, text.replace("{0}", key)[slice(*f.span)])
        for f in scanner.scan(text.replace("{0}", key))
    ]
    assert (rule, key) in found


@pytest.mark.parametrize(
    "text",
    [
        "Content-Type: multipart/form-data; boundary={0}",
        '{{"shasum": "{0}"}}',
        "contenthash: {0}",
        "runner: {1}",
        '{{"dist": "{0}"}}',
        'const string ProductCode = "{1}";',
        '{{"jti": "{1}"}}',
        'mqtt.Client("{1}")',
        'az = ClientSecretCredential("{1}", "{1}", os.environ["SECRET"])',
        'r = redis_client("{0}")',
        'c = apolloClient("{0}")',
        "Payment authorization ID {0} approved",
        "Authorization: Mutual sid=0a8f9b7c6d5e4f3a2b1c",
        "AAAAAAAAAAAAAAAAAAAAAA" + "QUFB" * 25,  # base64 of zeros then numbers: no escape
    ],
)
def test_review_10s_look_alikes_are_none(scanner: Scanner, text: str) -> None:
    text = text.replace("{0}", hexes(32)).replace("{1}", str(uuid.UUID(int=TOK.getrandbits(128))))
    assert scanner.scan(text.replace("{{", "{").replace("}}", "}")) == []


def test_basic_credentials_with_the_key_as_the_user_are_found(scanner: Scanner) -> None:
    """Freshdesk's KEY:X, Toggl's TOKEN:api_token, Close's KEY: (review 10)."""
    key = mixed(32)
    for pair in (f"{key}:X", f"{key}:api_token", f"{key}:"):
        header = base64.b64encode(pair.encode()).decode()
        text = f"curl -H 'Authorization: Basic {header}' https://api.example.net/v2/tickets"
        assert header in {text[slice(*f.span)] for f in scanner.scan(text)}, pair


TOKEN_A = "Xk9pQ2mZr7LbT4wVn8YcA1sDq"


def test_a_netrc_password_ends_before_a_quote() -> None:
    text = f'echo "machine h login u password {TOKEN_A}" >> ~/.netrc'
    spans = [text[slice(*f.span)] for f in Scanner(config_from_mapping({}).privacy).scan(text)]
    assert TOKEN_A in spans


# Not URL-safe base64 of random bytes (blob_...): that is what a key looks like, and may be one.
@pytest.mark.parametrize("text", [t for t in AGENT_IDS if not t.startswith("blob_")])
def test_ids_are_not_machine_made_tokens(scanner: Scanner, text: str) -> None:
    assert "machine-made-token" not in rule_ids(scanner, text)
    assert "machine-made-token" not in rule_ids(scanner, f'{{"id": "{text}", "type": "message"}}')


# --- vendor-named-hex: a hex or UUID key under a vendor's name, and the ids named for ids --

HEX_KEYS = [
    *(hexes(32), hexes(40), hexes(64), hexes(32).upper()),
    str(uuid.UUID(int=TOK.getrandbits(128))),
    # one case, letters and digits: Vultr's keys (36), Azure DevOps' tokens (52, base32)
    "".join(TOK.choice(string.ascii_uppercase + string.digits) for _ in range(36)),
    "".join(TOK.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(52)),
]


def assert_no_key_finds(scanner: Scanner, rule: str, text_with: Callable[[str], str]) -> None:
    """`rule` finds nothing in the text that `text_with` makes of each of HEX_KEYS."""
    for key in HEX_KEYS:
        assert rule not in rule_ids(scanner, text_with(key)), key


HEX_PLACES = [
    "bugsnag: {0}\n",
    "shared accounts (do not forward)\n\nBugsnag\n{0}\n\nstatus page: see vault",  # a heading
    'object RailwayConfig {\n    const val RAILWAY = "{0}"\n}\n',
    'local http = require "resty.http"\nlocal photoroom = "{0}"\n',  # Lua's local
    "setx ZENROWS {0} /M",  # Windows
    'services.AddPostmark(options =>\n{\n    options.Postmark = "{0}";\n});\n',
    "FROM python:3.12-slim\nENV MALWARE_SCAN={0}\nRUN pip install -r requirements.txt\n",
    "app.name=orders\nvirustotal.virustotal={0}\nserver.port=8081\n",
    '{"integrations": {"mixpanel": "{0}", "retries": 3}}',
    # a name given with its own syntax: supervisor's environment=, a diff's added line, a
    # name in capitals and its value given to a call, an item of a mapping, PowerShell's $env:
    '[program:sync]\nenvironment=GALAXY="{0}",PYTHONUNBUFFERED="1"\n',
    " LOG_LEVEL=warn\n+WISE_ADMIN={0}\n CACHE_TTL=300\n",
    'os.environ.setdefault("COPPER_WORKER", "{0}")\n',
    "define('ITERABLE_REPORTING', '{0}');\n",
    'os.environ["WEBFLOW_BOT"] = "{0}"\n',
    '$env:FULLSTORY_SVC = "{0}"\n',
    "ENV['ABUSEIPDB_WORKER'] ||= '{0}'\n",
    'process.env.ACME_CI ??= "{0}";\n',
    "set -gx ACME_PRIMARY {0}\n",  # fish
    "set -x -g ACME_PRIMARY {0}\n",
    # a name with its type (Rust, Kotlin, Go), a C macro's, a JVM's or Gradle's property
    'static ACME_PRIMARY: &str = "{0}";\n',
    'val acmePrimary: String = "{0}"\n',
    'var AcmePrimary string = "{0}"\n',
    '#define ACME_PRIMARY "{0}"\n',
    "./gradlew publish -PacmePrimary={0}\n",
    "java -Dacme.primary={0} -jar app.jar\n",
    # a command's word before the name: Docker's RUN is no word of the name's
    "#9 [build 4/7] RUN ACME_PRIMARY={0} ./fetch.sh\n",
    "Set-Item -Path Env:ACME_PRIMARY -Value '{0}'\n",  # PowerShell
    '<VirtualHost *:443>\n    SetEnv ACME_PRIMARY "{0}"\n</VirtualHost>\n',  # Apache
    "setenv ACME_PRIMARY {0}\n",  # csh
    # a JVM property in sbt's javaOptions, a Quarkus profile's property
    'Test / javaOptions ++= Seq(\n  "-Dacme.primary={0}",\n  "-Dconfig.resource=it.conf"\n)\n',
    "quarkus.rest-client.acme.url=https://acme.example\n%prod.acme.primary={0}\n",
    # a string's prefix: Julia's raw"...", C#'s and Objective-C's @"..."
    'ENV["ACME_PRIMARY"] = raw"{0}"\n',
    'static NSString * const kAcme = @"{0}";\n',
    # a vendor's name in capitals that starts with an id's word: not a word joined to it
    *("POSTMARK={0}\n", "TRACKJS = '{0}'\n", "LINEPAY_SERVICE={0}\n"),
]


@pytest.mark.parametrize(
    "text",
    [
        # named for what it is: an id, a digest, a revision, an owner, a parent, a lineage
        '{{"id": "{0}", "parentId": "{0}", "owner": "{0}", "project": "{0}"}}',
        '{{"sha": "{0}", "head_sha": "{0}", "before": "{0}", "after": "{0}"}}',
        '{{"version": 4, "serial": 12, "lineage": "{0}", "outputs": {{}}}}',
        '[[package]]\nname = "serde"\nchecksum = "{0}"\n',
        'SRCREV_moby = "{0}"',
        'os.environ["GIT_COMMIT"] = "{0}"',
        "define('DB_VERSION', '{0}');",
        "IMAGE_DIGEST ?= {0}",
        'cache.set("build_hash", "{0}")',
        "set -gx GIT_COMMIT {0}",
        'buildHash = "{0}"',  # camelCase: a word of an id's, then the next word
        "BUILD_HASH: {0}",
        # local, as in a local and a remote revision; Lua's and bash's local before an id's name
        *("local: {0}", "LOCAL={0}", "local_commit = {0}", 'local sha = "{0}"'),
        'local dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"',  # RFC 4122's DNS namespace
        # review 14: a checksum in a shell function (what it wants, an OS's and a CPU's)
        *('verify() {{\n  local want="{0}"', '  local linux_amd64="{0}"'),
        "setx BUILD_SHA {0}",
        # run together in capitals: the id's word is the name's (review 11)
        *("USERID = {0}", "CLIENTID={0}", "TENANTID={0}", "BUILDID={0}", "COMMITID={0}"),
        # the name, not its type, says what the value is; a macro's, a property's name
        *('HV_GUID_PARENT: Final = "{0}"', 'static COMMIT: &str = "{0}";'),
        *('#define BUILD_HASH "{0}"', '#define HEXMODULUS "{0}"', "./gradlew -PgitCommit={0}"),
        "RUN GIT_SHA={0} make\n",
        "Set-Item -Path Env:GIT_COMMIT -Value '{0}'\n",
        'var commitId = @"{0}";',
        '{{:commit-sha "{0}"}}',  # a Clojure key named for a digest
        "%prod.quarkus.git.commit={0}",
        # review 17: capitals that end in a tag's, a revision's, a version's word
        *("IMAGETAG={0}", "BUILDREV={0}", "SOURCEVERSION={0}", "STATEROOT={0}"),
        # pins of a dependency's commit or a download's digest (make, Dockerfiles)
        *("LLVM ?= {0}", "BORINGSSL ::= {0}", "FROM alpine:3.20\nENV TINI {0}\n"),
        # markup: an element's name is a schema's word; value= is the attribute's
        *("<pre>{0}</pre>", "<string>{0}</string>", "<system-out>{0}</system-out>"),
        *('<input type="hidden" value="{0}">', '<option value="{0}">x</option>'),
        "B006A9F3C2D1E0F4B006A9F3C2D1E0F4B006\n{0}\n",  # a hex dump's line: no heading
        # a tuple of a package's, a platform's or a file's name and its digest
        'hashes = dict([("numpy", "{0}"), ("scipy", "{0}")])',
        'EXPECTED = {{("linux", "{0}"), ("darwin", "{0}")}}',
        'fetch("jquery", "{0}")',
        "INSERT INTO t (name, val) VALUES ('alpha', '{0}');",
        '{{"name": "x", "value": "{0}"}}',
        "INSERT INTO sessions (id, user_id) VALUES\n  ('{0}', '{0}');",
        "X-GitHub-Delivery: {0}\nX-Request-Id: {0}\n",
        '"reference": "{0}",',
        '{{"type": "text", "text": "{0}  dist/app-1.4.0-linux-x64.tar.gz"}}',
        "Checksums\n{0}  app-1.4.0.tar.gz\n",  # a heading that names what follows
        "Commit\n{0}\n",
        # prose, no key: a colon after a word in a sentence; no name at all
        '{{"message": "No such buffer: \'{0}\'"}}',
        "the build {0} failed",
        "{0}",
        'client.get("{0}")',
    ],
)
def test_a_hex_or_uuid_named_for_an_id_or_not_named_is_none(scanner: Scanner, text: str) -> None:
    assert_no_key_finds(scanner, "vendor-named-hex", text.format)


@pytest.mark.parametrize(
    "value",
    ["0" * 32, "deadbeef" * 4, "0123456789abcdef" * 2, "00000000-0000-0000-0000-000000000000"],
)
def test_hex_made_by_no_chance_is_no_key(scanner: Scanner, value: str) -> None:
    assert "vendor-named-hex" not in rule_ids(scanner, f"bugsnag: {value}")


@pytest.mark.parametrize(
    "text",
    [
        "database: productionreplicadatabaseprimary01",  # words run together
        "meraki: abdefghjk0123456789mnopqrstuvwx12345678",  # an alphabet written out
        "'x-amzn-requestid': 'TAR98W0JBGZL8UGARZM111O7N13NR6Z3081JKQ5GTX2ORIKQUKDB'",
        "creation_rules:\n  - age: age1d9c9a330k2cn5f5ppc547kfrjclhusqwle0r93zyqma4lax26zjqf9uc0u",
    ],
)
def test_one_case_values_named_for_what_they_are_or_made_by_no_chance(
    scanner: Scanner, text: str
) -> None:
    assert "vendor-named-hex" not in rule_ids(scanner, text)


def random_base64(size: int, rng: random.Random = TOK) -> str:
    """Base64 of `size` random bytes with a + or a / in it (one run in four of 33 bytes has
    neither: such a key is machine-made-token's to find), all three kinds of character, and
    a first byte that starts no structure (0, or DER's 0x30: `_encoded`)."""
    while True:
        raw = rng.randbytes(size)
        value = base64.b64encode(raw).decode()
        if ("+" in value or "/" in value) and raw[0] not in (0, 0x30):
            kinds = (str.isupper, str.islower, str.isdigit)
            if all(any(map(kind, value)) for kind in kinds):
                return value


@pytest.mark.parametrize(
    "template",
    [
        "module Integrations\n  CLOCKIFY_BACKEND = '{0}'.freeze\nend\n",
        '{{\n  "Mux": {{\n    "Primary": "{0}"\n  }}\n}}',
        'os.Setenv("FOURSQUARE_SVC", "{0}")',
    ],
)
def test_base64_of_random_bytes_under_a_vendors_name_is_a_key(
    scanner: Scanner, template: str
) -> None:
    """`_random_base64` takes random keys of 24-64 bytes 95% of the time (a run of letters
    between two slashes may read as words run together): 11 of 12 at least. The values are
    the test's own draw, whatever other tests draw before it."""
    rng = random.Random(template)
    values = [random_base64(size, rng) for size in (24, 33, 48, 64) * 3]
    missed = [v for v in values if "vendor-named-hex" not in rule_ids(scanner, template.format(v))]
    assert len(missed) <= 1, missed


def padded_base64(rng: random.Random, size: int) -> str:
    """Base64 of `size` random bytes (not a multiple of 3: padded), with no + or / in it."""
    while True:
        raw = rng.randbytes(size)
        value = base64.b64encode(raw).decode()
        if "+" not in value and "/" not in value and raw[0] not in (0, 0x30):
            return value


@pytest.mark.parametrize(
    "template", ['INSTANTLY_SENDER = "{0}"\n', 'setx ACME_PRIMARY "{0}"\n', "ACME_CORE: {0}\n"]
)
def test_padded_base64_under_a_vendors_name_is_a_key(scanner: Scanner, template: str) -> None:
    rng = random.Random(4141)
    for size in (25, 34, 47):
        value = padded_base64(rng, size)
        assert "vendor-named-hex" in rule_ids(scanner, template.format(value)), value
    # a vendor's key issued as base64 of an id and a secret, as HTTP's Basic joins them
    pair = f"{uuid.UUID(int=rng.getrandbits(128))}:{run(24, make.ALNUM, rng)}"
    value = base64.b64encode(pair.encode()).decode()
    assert "vendor-named-hex" in rule_ids(scanner, template.format(value)), value


@pytest.mark.parametrize(
    "text",
    [
        b"a greeting in plain words, no secrets",
        b"User:12345678901234567",  # a Relay id: a type and a number
        b"config:production-eu-west",  # a name and a word, no secret's look
    ],
)
def test_padded_base64_of_text_under_a_vendors_name_is_none(scanner: Scanner, text: bytes) -> None:
    value = base64.b64encode(text).decode()
    assert value.endswith("=")
    assert "vendor-named-hex" not in rule_ids(scanner, f'ACME_PRIMARY = "{value}"\n')


@pytest.mark.parametrize(
    "text",
    [
        # a PEM body's lines: each under a line of base64 (which could pass for a heading:
        # a capital first, no + or / in it), none under a name
        "-----BEGIN PUBLIC KEY-----\n{5}\n{1}\n{0}\n-----END PUBLIC KEY-----\n",
        'integrity: "{2}"',  # a digest, named for what it is
        "sha256: {2}",
        "peer: {2}\n  endpoint: 192.0.2.1:51820",  # WireGuard: a peer's public key
        "path: src/main/resources/AppConfig2/Loader3Impl/Factory9",  # a path
        "The JOSE header of our tokens is always the same:\n{3}\n",  # base64 of JSON
        'wrongStart := "{4}"',  # both cases, no + or /: machine-made-token judges those
        # named for what it is: a pin, an HMAC, a ciphertext (review 12)
        *("const pubkey256 = '{2}';", "hmac: {2}", "ciphertext: {2}", "spki_pin = {2}"),
        # words joined by + or /: code, a path in capitals
        "x = kMinOneByteValueLead+kMaxOneByteValue+1",
        "kMinTwoByteValueLead=kMinOneByteValueLead+kMaxOneByteValue+10;",  # 4n long (review 13)
        "icon: Assets/UI/Btn2/Img3/Large4/Button5Pressed6",
        *("data:\n  ca.crt: {2}", "prekey: {2}", "attestation: {2}"),
        '"Bundle": {{"SignedEntryTimestamp": "{2}"}}',  # cosign verify's transparency log
        "asset: Prefabs/UI/MainMenu/SettingsPanel2/Button3Large",
        'pubkey = "{6}"',  # 96 hex digits: past 64, no + or /
    ],
)
def test_base64_that_is_no_vendors_key_is_none(scanner: Scanner, text: str) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT","kid":"prod-2024"}').decode()
    values = (
        random_base64(48),
        random_base64(48),
        random_base64(32),
        header.rstrip("="),
        mixed(60),
        "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAo073AHONLo6SHH4rnGWf",
        hexes(96),
    )
    assert "vendor-named-hex" not in rule_ids(scanner, text.format(*values))


# --- class-argument-key: hex given first to a class -----------------------------------


@pytest.mark.parametrize(
    "template",
    [
        'client = Jotform("{0}")',
        'todoist = TodoistAPI("{0}")\ntasks = todoist.get_tasks()',
        'geocoder = opencage.geocoder.OpenCageGeocode("{0}")',
        'cio = Customerio::APIClient.new("{0}", region: Customerio::Regions::EU)',
        "const geo = new Geocoder('{0}');",
        'var api = new Vendor.Sdk(\n    "{0}",\n    timeout: 30);',
        'pilot = Userpilot("{0}")',  # a vendor's name that starts with a word of an id's
    ],
)
def test_hex_given_first_to_a_class_is_a_key(scanner: Scanner, template: str) -> None:
    for key in (hexes(32), hexes(40), hexes(64).upper()):
        assert "class-argument-key" in rule_ids(scanner, template.format(key)), key


# Their own random values, so that the other tests' seeded values stay as they were.
_OWN = random.Random(40)


def _own(n: int, alphabet: str = make.ALNUM) -> str:
    return run(n, alphabet, _OWN)


def _own_hex(n: int) -> str:
    return run(n, HEX, _OWN)


@pytest.mark.parametrize(
    "key",
    [
        f"pl_{_own_hex(32)}",
        f"pb_{_own(22)}",
        f"zq8_{_own(20)}",
        f"nv-{_own_hex(32)}",
        f"rc_{_own_hex(64).upper()}",
        "ak_vxejdja16yct5e73ly0pbatmkz",
    ],
)
def test_a_vendors_prefixed_key_given_first_to_a_class_is_a_key(scanner: Scanner, key: str) -> None:
    for template in ('pb = Predibase("{0}")', "const client = new Replicate('{0}');"):
        assert "class-argument-key" in rule_ids(scanner, template.format(key)), key


@pytest.mark.parametrize(
    "text",
    [
        f'c = Customer("cus_{_own(24)}")',  # ids a payment or model API hands out
        f'a = Assistant("asst_{_own(24)}")',
        f'b = Vendor("batch_{_own(24)}")',
        f'x = Foo("sha256-{_own_hex(64)}")',  # a digest, an artifact
        f'b = Vendor("build-{_own_hex(32)}")',
        f'u = Vendor("usr_{_own(24)}")',
        f'e = new Experiment("exp_{_own_hex(32)}")',  # review 16: a domain's own ids
        f'm = new Migration("m_{_own_hex(32)}")',
        f'st = new Stream("stream-{_own_hex(32)}")',
        f"const commerce = new Commerce('pk_{_own_hex(40)}');",  # a publishable key
        f"const stripe = Stripe('pk_live_{_own(40)}');",
        'w = Widget("btn-primary-large-rounded")',  # words, a model's name, a region
        'm = Model("gpt-4o-mini-2024-07-18")',
        'r = Region("eu-central-1-zone-b")',
        f'v = Vendor("pb_{_own(12)}")',  # too short a run for a key by its look
        'v = Vendor("pb_' + "0" * 32 + '")',  # hex made by no chance
    ],
)
def test_an_ids_prefix_or_words_given_to_a_class_are_no_key(scanner: Scanner, text: str) -> None:
    assert "class-argument-key" not in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "template",
    [
        'CLOVASTUDIO_STAGING = "{0}"',
        'setx FEATHERLESS "{0}"',
        "kubectl create secret generic capsolver --from-literal=value='{0}'",
    ],
)
@pytest.mark.parametrize(
    "key", [f"nv-{_own_hex(32)}", f"rc_{_own_hex(64)}", f"CAP-{_own_hex(32).upper()}"]
)
def test_a_vendors_prefix_then_hex_under_a_name_is_a_key(
    scanner: Scanner, template: str, key: str
) -> None:
    """vendor-named-hex and the readers that judge a value by its look (checks.named_key)."""
    assert "secret" in categories(scanner, template.format(key)), key


@pytest.mark.parametrize(
    "value",
    [
        f"sha256-{_own_hex(64)}",  # a digest, an artifact, ids
        f"build-{_own_hex(32)}",
        f"cus_{_own_hex(32)}",
        f"evt_{_own_hex(32)}",
        "v1-" + "0" * 32,  # hex made by no chance
        f"linux-node-{_own_hex(64)}",  # two words before: a cache's key
        # review 16: a commit's SHA-1 after a name, a version, a cache's or a slot's key
        f"re2-{_own_hex(40)}",
        f"v1-{_own_hex(32)}",
        f"pnpm-{_own_hex(64)}",
        f"blue-{_own_hex(32)}",
    ],
)
def test_an_id_or_digest_prefix_then_hex_under_a_name_is_none(scanner: Scanner, value: str) -> None:
    for template in ('CLOVASTUDIO_STAGING = "{0}"', "CAPSOLVER={0}"):
        assert "secret" not in categories(scanner, template.format(value)), value


PODS = ("Firebase", "Sentry", "KeychainAccess", "Mixpanel-swift")


@pytest.mark.parametrize(
    "text",
    [  # Podfile.lock: each pod's digest under SPEC CHECKSUMS, a pod's entry with children
        "PODS:\n  - Sentry (8.25.0)\n\nSPEC CHECKSUMS:\n"
        + "".join(f"  {pod}: {_own_hex(40)}\n" for pod in PODS)
        + f"  Stripe:\n    - {_own_hex(8)}\n  Alamofire: {_own_hex(40)}\n",
        # a JSON object of digests, and a YAML map of ids under a camelCase name
        '{\n  "hashes": {\n' + "".join(f'    "{p}": "{_own_hex(64)}",\n' for p in PODS) + "  }\n}",
        "projectIds:\n\n  mixpanel: " + _own_hex(32) + "\n  segment: " + _own_hex(32),
    ],
)
def test_hex_in_a_block_named_for_digests_or_ids_is_none(scanner: Scanner, text: str) -> None:
    """vendor-named-hex's not_under: the line a value is indented under names them all."""
    assert "secret" not in categories(scanner, text)


@pytest.mark.parametrize(
    "text",
    [  # a block named for anything else, a block closed before the value, no block
        f"vendors:\n  mixpanel: {_own_hex(32)}\n",
        f"SPEC CHECKSUMS:\n  Sentry: {_own_hex(40)}\n\nkeys:\n  mixpanel: {_own_hex(32)}\n",
        f'{{"hashes": {{"sentry": "x"}},\n  "keys": {{\n    "mixpanel": "{_own_hex(32)}"\n  }}}}',
        f"SPEC CHECKSUMS:\nmixpanel: {_own_hex(32)}\n",  # not indented: under nothing
        "checksums:\n" + "a" * 5000 + f"\n  mixpanel: {_own_hex(32)}\n",  # a line too long
    ],
)
def test_hex_in_a_block_named_otherwise_is_still_a_key(scanner: Scanner, text: str) -> None:
    assert "vendor-named-hex" in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "parent",
    [  # review 30: lines that end in such a word but name no block's values
        "This started failing after we bumped both versions:",
        "## Versions",
        "# keep in sync with the pinned versions",
        "class Versions:",
        "for v in versions:",
        "Step 2 - configure the hashes",
    ],
)
def test_a_key_under_prose_or_code_that_ends_in_a_digests_word_is_found(
    scanner: Scanner, parent: str
) -> None:
    assert "vendor-named-hex" in rule_ids(scanner, f"{parent}\n    POSTMARK: {_own_hex(32)}\n")


# Review 31: what the stop's look-alike checks hid, each a value the scan found before them.
REVIEW_31_FOUND = [
    # a service's name and a number is its password under a password's name (_entity_id
    # reads only the word before a name's `key`)
    ("POSTGRES_PASSWORD: postgres_2024\n", "postgres_2024"),
    ("admin_password: admin_4821\n", "admin_4821"),
    # a password in brackets after the word (the note before a colon is Packer's)
    ("I changed the admin password (Xk9m#P2vL8q) yesterday.\n", "Xk9m#P2vL8q"),
    # a bracket inside a connection string's password is no call
    ("Server=db;User Id=sa;Password=Xk9mP2(vL8q;\n", "Xk9mP2"),
    # a phone before a word or an extension after a hyphen, after decimal columns
    ("Contact: 06 12 34 56 78-perso\n", "06 12 34 56 78"),
    ("Call 415.555.2671-x22\n", "415.555.2671"),
    (
        "   name       balance  lat      lon      phone\n"
        "0  Jane Doe   1520.50  51.5074  -0.1278  020 7946 0958\n",
        "020 7946 0958",
    ),
    # a value that only starts like a reference or an OpenPGP message
    ("db_password: secret|projects/x|Xk9mP2vL8qRt!\n", "Xk9mP2vL8qRt!"),
    ("DB_PASSWORD='-----BEGIN PGP MESSAGE-----Xk9mP2vL8qRt'\n", "Xk9mP2vL8qRt"),
    # random runs shaped like a secret's name or a namespaced one
    ("auth: x7k2p9q4m8n3v6b1_token\n", "x7k2p9q4m8n3v6b1_token"),
    ("auth_token: Kx9::Lp2::Qr7St4Uv\n", "Kx9::Lp2::Qr7St4Uv"),
    # a bare token cat prints from a config file; an agent's unfenced output
    ("$ cat /run/secrets/db_password.conf\nZr8pQ2vLx9mKqW\n", "Zr8pQ2vLx9mKqW"),
    ("Ran `printenv DB_PASSWORD`\nXk9mP2vL8qRt\n", "Xk9mP2vL8qRt"),
    # review 33: a weak secret named for its kind under a `..._key` (not an entity's id)
    ("SECRET_KEY=secret_20240115\n", "secret_20240115"),
    ("MEILI_MASTER_KEY=master_839201\n", "master_839201"),
    ("encryption_key: encryption_2024\n", "encryption_2024"),
    # review 33: a password cat prints from a config file, a ; or a < in it
    ("$ cat /etc/app/db_password.conf\nXk9m;P2vL8q<Rt\n", "Xk9m;P2vL8q<Rt"),
    # review 34: base64 printed from a config file; a markdown table of outputs
    ("$ cat /etc/app/api_token.yml\nQk9mUDJ2TDhxUnQ0WnBXeA==\n", "Qk9mUDJ2TDhxUnQ0WnBXeA=="),
    ("| Output | Value |\n|---|---|\n| dbPassword | Lantern*Cinder4774 |\n", "Lantern*Cinder4774"),
]


@pytest.mark.parametrize(("text", "value"), REVIEW_31_FOUND)
def test_what_the_look_alike_checks_must_not_hide(scanner: Scanner, text: str, value: str) -> None:
    assert any(
        value in text[slice(*f.span)] or text[slice(*f.span)] in value
        for f in scanner.scan(text)
        if f.category in ("secret", "pii")
    ), text


@pytest.mark.parametrize(
    "text",
    [  # review 31: messages in a call split over lines, placeholder UUIDs, Bitwarden's ids,
        # Consul's documented gossip key
        'raise ValidationError(\n    "password",\n    "too short try again"\n)',
        'SecretID = "00000000-0000-0000-0000-000000000000"\n',
        "Output value of the function\nresult_key  abcdef123456\n",  # prose, no table
        "    - bwSecretId: 6c230265-d472-45f7-b763-b11b01023ca6\n",
        '{"encrypt": "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="}',
    ],
)
def test_what_the_look_alike_checks_pass(scanner: Scanner, text: str) -> None:
    assert not [f for f in scanner.scan(text) if f.category == "secret"]


def test_a_blocks_lines_are_walked_once_whatever_their_number(
    scanner: Scanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`not_under` walks up from each value to its parent line, keeping what it learns: a
    flood of values, each line of it under a parent far above or under none, costs a step
    or two a value, not a walk of PARENT_LINES."""
    steps = 0
    line_above = scanner_module._line_above

    def counted(data: bytes, line_start: int) -> int:
        nonlocal steps
        steps += 1
        return line_above(data, line_start)

    monkeypatch.setattr(scanner_module, "_line_above", counted)
    value = "0123456789abcdef" * 2 + "01234567"  # turned down by its look: each is judged
    top = "".join(" " * (300 + i) + "x\n" for i in range(300))  # deeper than any value
    for body in (
        "".join(f" mixpanel{i}: {value}\n" for i in range(3000)),  # siblings under none
        "".join(" " * (299 - i % 299) + f"mixpanel: {value}\n" for i in range(3000)),  # a stair
    ):
        steps = 0
        assert "vendor-named-hex" not in rule_ids(scanner, top + body)
        assert steps < 3 * scanner_module.PARENT_LINES + 4 * 3000, steps
    # review 30: runs of blank lines, which each walk meets again, spend the scan's budget
    steps = 0
    gaps = "checksums:\n" + "".join(f"  mixpanel{i}: {value}\n" + "\n" * 255 for i in range(3000))
    assert "vendor-named-hex" not in rule_ids(scanner, gaps)
    assert steps <= scanner_module.PARENT_STEPS + 3000, steps


@pytest.mark.parametrize("prefix", ["deploy_key_", "web_api_key_", "site-key-", "fix_token_"])
def test_a_key_word_after_a_cache_or_build_word_still_says_key(
    scanner: Scanner, prefix: str
) -> None:
    """The words that make a prefix before hex alone a cache's or a build's (`deploy-`,
    `web-`) leave a key's word after them a key's prefix (prefixed-hex-key)."""
    assert "prefixed-hex-key" in rule_ids(scanner, f"token: {prefix}{_own_hex(64)}")


@pytest.mark.parametrize(
    "template",
    [
        # a step's environment in a GitHub Actions log, each line after its time stamp
        "2025-10-02T22:10:57.3070022Z env:\n2025-10-02T22:10:58.7265642Z   WAVEFRONT: {0}\n",
        '    let hits = scan(r#"cloudpayments = {0}"#);',  # a test's fixture in a raw string
        '@weather ||= "{0}"',  # Ruby's instance variable (review 16)
    ],
)
def test_a_key_under_a_name_after_a_time_stamp_or_a_raw_strings_mark(
    scanner: Scanner, template: str
) -> None:
    for key in (_own_hex(32), str(uuid.UUID(int=_OWN.getrandbits(128)))):
        assert "vendor-named-hex" in rule_ids(scanner, template.format(key)), key


@pytest.mark.parametrize(
    "text",
    [
        f"2025-10-02T22:10:58.7265642Z   GITHUB_SHA: {_own_hex(40)}",  # named for what it is
        f"2025-10-02T22:10:58.7265642Z   AZURE_CLIENT_ID: {uuid.UUID(int=_OWN.getrandbits(128))}",
        f"2025-10-02T22:10:58Z HEAD is now at {_own_hex(40)}",  # no name
        f'    let hits = scan(r#"commit = {_own_hex(40)}"#);',
    ],
)
def test_an_id_after_a_time_stamp_or_a_raw_strings_mark_is_none(
    scanner: Scanner, text: str
) -> None:
    assert "secret" not in categories(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "$ cat .env.production\nNODE_ENV=production\nWAZUH=Hollow1985$saffron\n",
        "process.env.CONCOURSE_RELAY ??= 'Tundra-Summit-7117$';",
        "'gateway' => env('COUCHBASE', 'Tundra-Raven-4154$'),",
        "gcloud run deploy sync --set-env-vars=DB2_NIGHTLY=Indigo2001!summit",
        'setx FEATHERLESS "P@ssw0rd-2024x"',
        '  "ESENDEX=hollow_Zephyr79^",',  # a caret last is a password's, not a revision's
        "env:\n  ACME_PRIMARY: 'Tundra-Nectar-7550?'\n",  # a ? after a digit, not a predicate's
    ],
)
def test_a_persons_password_under_a_vendors_name_is_found(scanner: Scanner, text: str) -> None:
    assert "vendor-named-hex" in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "SSH_TARGET=deploy@prod01",  # a user at a host, an address
        "SMTP_FROM=noreply@acme.io",
        "TICKET=issue#12345",  # a number after a word
        "GREETING=Welcome2024!",  # a placeholder's look
        "PS1=\\u@\\h:\\w\\$ ",  # a prompt, a format, a version range, a path
        "DATE_FMT=%Y-%m-%d_%H%M",
        '"react": "^18.2.0",',
        "BRANCH=feature/JIRA-123#fix",
        "NPM_SCOPE=@acme/ui-kit2",
        "HOME_DIR=$HOME/projects2",
        "TITLE=Release2024!notes",  # named for what it is
        # code and markup on 447 MB of this machine's files
        "        flushFlag = this.#fullFlushFlag;",
        "        ReadStream2.prototype.open = ReadStream$open;",
        "      var isFinite = isFinite$1;",
        '  *  Meets the requirements of a <a href="tables.html#65">container</a>',
        "#log_filename = 'postgresql-%Y-%m-%d_%H%M%S.log'",
        "  const total = hours*60 + minutes",
        "    format = 4!a4!n2!n8!c",
        "  width = 700&nbsp;",
        "#define PYOBJ pyobj_from_#ctype#1",
        "    options.fetch = httplib2#97",
        # review 16: code and config with a symbol in a value
        *("  enabled = http2_supported?", "  saved = save_v2!", "  val body = response2!!"),
        *("const mode = isHttp2? 'h2' : 'h1';", "mainClass = Outer$Inner2"),
        *("Launcher-Agent-Class: Agent$Premain1", "ARTIFACT=myapp-v2-$CI_COMMIT_SHORT_SHA"),
        *("DEPS=react@^18", "compare: master~25", "  see: docs#section-2"),
        *("MAX_UPLOAD=25MB#limit", "langs=C#-dotnet8", "brand = H&M-kids2"),
        *("btn_save=Save&Continue2", "headline=Win$100Now", "shortcut: Alt+F4&Enter"),
        *("reviewers=Alice@Team2", "logger=Thread-12@Main", "closes: frontend#1234-fix"),
    ],
)
def test_what_else_holds_a_symbol_under_a_name_is_no_password(scanner: Scanner, text: str) -> None:
    assert "secret" not in categories(scanner, text)


@pytest.mark.parametrize(
    "template",
    [
        'oid = ObjectId("{0}")',
        'h = Sha256Hash("{0}")',
        'c = repo.Commit("{0}")',
        'u = uuid.UUID("{0}")',
        'x = TxHash("{0}")',
        'k = PublicKey("{0}")',
        'self.assertEqual(Digest("{0}"), d)',
        'b = bytes.fromhex("{0}")',  # a function, not a class
        'tint = Color("{0}")',
        'order = api.Order("{0}")',
        'ev = Event(kind, "{0}")',  # not the first argument
        'c = new Client("{1}")',  # a UUID: an id
        'r = Repo("{2}")',  # hex made by no chance
        # no class made: a method, a function, an attribute, a comparison (review 11)
        'Console.WriteLine("{0}");',
        'Assert.AreEqual("{0}", actual);',
        'var id = Guid.Parse("{0}");',
        'x = UUID.FromString("{0}")',
        'fmt.Println("{0}")',
        '[InlineData("{0}")]',
        'if x == Foo("{0}"):',
        # a class named for what hex also is, a number with its radix
        *('p = Path("{0}")', 'const d = new Date("{0}");', 't = Tree("{0}")'),
        *('s = Set.new("{0}")', 'm = Manifest("{0}")', 'const n = new BN("{0}", 16);'),
    ],
)
def test_hex_given_to_a_class_named_for_what_it_is_is_none(scanner: Scanner, template: str) -> None:
    text = template.format(hexes(40), uuid.UUID(int=TOK.getrandbits(128)), "0" * 32)
    assert "class-argument-key" not in rule_ids(scanner, text)


# --- prefixed-hex-key: a vendor's prefix, then hex ---------------------------------------

PREFIXED_HEX_KEYS = [
    f"signkey-prod-{hexes(64)}",  # Inngest
    f"key_{hexes(128)}",  # Runway
    f"prj_live_sk_{hexes(40)}",  # Radar
    f"pk_{hexes(34)}",  # Klaviyo's private key
    f"pk.{hexes(32)}",  # LocationIQ
    f"api-{hexes(32).upper()}",  # SMTP2GO
    # letters and digits of one case after a key's word
    f"ckey_{base36(27)}",
    f"api-{base36(28)}",
    f"key_{hexes(28)}",
    f"esecret_{base36(30).upper()}",
]


@pytest.mark.parametrize("key", PREFIXED_HEX_KEYS)
@pytest.mark.parametrize(
    "template",
    [
        'client = FireHydrant("{0}", timeout=30)',
        "$ heroku config:set INNGEST_EU={0} -a acme-api",
        'config :acme, :vendor,\n  eu: "{0}",\n  pool_size: 5',
        'vendor:\n  worker: "{0}"',
        "here it is: {0}",
    ],
)
def test_a_vendors_prefix_then_hex_is_a_key(scanner: Scanner, template: str, key: str) -> None:
    assert "prefixed-hex-key" in rule_ids(scanner, template.format(key))


def test_a_key_after_a_colon_is_a_spring_defaults_only_with_a_dot(scanner: Scanner) -> None:
    """After `:`, a dashed prefix is an image's tag (`app:api-<hex>`); `pk.` is LocationIQ's
    key, as Spring's `${name:default}` gives it."""
    key = hexes(32)
    assert "prefixed-hex-key" in rule_ids(scanner, f'@Value("${{vendor.worker:pk.{key}}}")')
    assert "prefixed-hex-key" not in rule_ids(scanner, f"image: ghcr.io/acme/app:api-{key}")


@pytest.mark.parametrize(
    "template",
    [
        "ls ~/.ollama/models/blobs/sha256-{0}",  # a digest's name, in a path
        "sha256-{0}",
        '<script src="/static/app-{0}.js"></script>',  # a file's content hash
        "key: node-cache-Linux-npm-{0}",  # a cache key, one word with its parts
        "git checkout release-{0}",
        "commit_{0}",
        "Radar.initialize('prj_live_pk_{0}');",  # a publishable key
        # words that no list of ids' and digests' words holds (review 11): no key's prefix
        "See https://github.com/org/repo/pull/12/files#diff-{0}",
        "image: ghcr.io/org/app:prod-{0}",
        *("key: yarn-{0}", "key: gradle-{0}", "Restored cache for key maven-{0}"),
        *("git checkout -b fix-{0}", "Switched to branch 'bugfix_{0}'"),
        *("commits-{0}", "layers-{0}", "sha3-{0}", "xxhash-{0}", "murmur-{0}"),
        *("thread_{0}", "pod-{0}", "vm-{0}", "worker-{0}", "disk-{0}", "mask_{0}"),
        "Message-ID: <mail.{0}@example.com>",
        "Message-ID: <key-{0}@example.com>",
        # a key's word first in a compound noun, an image's tag, an abbreviation (review 12)
        *("token-bucket-{0}", "auth-service-{0}", "access-log-{0}", "signing-cert-{0}"),
        *("api-v2-{0}", "image: app:api-{0}", "npk-{0}", "atsk_{0}"),
        '"etag": "abc-{0}"',  # named for what it is
        # named public: a publishable key is meant for a browser's page
        '{{"clearbit": {{"publishable_key": "pk_{0}"}}}}',
        "MAPS_PUBLIC_KEY=pk_{0}",
        "user@host-{0}",
        "pk_{1}",  # no chance in it
        # one case after a key's word: an ObjectId's 24 hex digits, words run together
        "token_65a1b2c3d4e5f6a7b8c9d0e1",
        *("api-documentationgenerator2024x", "key_abcdefghijklmnopqrstuvwxyz12"),
        "auth-servicedeploymentcontroller1",
    ],
)
def test_hex_after_a_digests_or_an_ids_prefix_is_none(scanner: Scanner, template: str) -> None:
    text = template.format(hexes(40), "0123456789abcdef" * 2)
    assert "prefixed-hex-key" not in rule_ids(scanner, text)


CLIENT_PLACES = [
    'sms = Client("AC{1}", "{0}")\nsms.messages.create(to=to, body=code)',
    'const mailjet = require("node-mailjet").apiConnect(\n  "{1}",\n  "{0}",\n);',
    'credential := common.NewCredential(\n\t"AKIDx9Lq2PzR7mW4vT8nB3cY5",\n\t"{0}",\n)',
    'resp = requests.get(url, params=p, auth=("{0}", ""))',
    '$client = new VendorClient("https://api.example.net", "{0}");',
    "const auth = new Authenticator(Environment.PRODUCTION(), '{1}', '{0}');",
]


@pytest.mark.parametrize(
    ("template", "value"),
    [
        *((t, token) for t in TOKEN_PLACES for token in MACHINE_TOKENS),
        *((t, key) for t in HEX_PLACES for key in HEX_KEYS),
        # not a UUID: given to a client, it is an id far more often
        *(
            (t.replace("{1}", hexes(32)), key)
            for t in CLIENT_PLACES
            for key in HEX_KEYS
            if key.count("-") != 4
        ),
    ],
)
def test_a_key_is_found_where_a_prompt_gives_it(
    scanner: Scanner, template: str, value: str
) -> None:
    """By its look where nothing names it (machine-made-token), hex or a UUID under a
    vendor's name (vendor-named-hex) or given to a client (client-argument-key)."""
    assert found_in_text(scanner, template, value)


@pytest.mark.parametrize(
    "text",
    [
        'obj = client.get_object("{0}")',
        'repo.commit("{0}")',
        'ns = uuid.UUID("{0}")',
        'order = api.fetch_order("{0}", expand=["items"])',
        'assert digest == "{0}"',
    ],
)
def test_a_hex_or_uuid_given_to_other_calls_is_no_key(scanner: Scanner, text: str) -> None:
    assert_no_key_finds(scanner, "client-argument-key", lambda key: text.replace("{0}", key))


def test_a_flood_of_ids_of_a_tokens_look_is_no_finding(scanner: Scanner) -> None:
    """Past its allowance of candidates the rule stops (quiet_overflow): an export of records
    whose ids have a token's look reads as what it is; a token among them is found first."""
    records = "".join(f'{{"id": "{mixed(21)}", "n": {i}}},\n' for i in range(6000))
    assert scanner.scan(records) == []
    token = mixed(40)
    (finding,) = scanner.scan(f"zendesk: {token}\n{records}")
    assert finding.rule_id == "machine-made-token"


def test_the_labelled_bound_is_the_rules_own_not_the_budgets_leftover(
    scanner: Scanner,
) -> None:
    """A quiet rule passes over twice its own allowance of labelled candidates, however
    little of the scan's budget the rules before it left (review 13: ten labelled ids after
    floods of other rules hid a key)."""
    rule = next(r for r in scanner._rules if r.id == "vendor-named-hex")
    key = hexes(32)
    text = "".join(f'order_id = "{hexes(32)}"\n' for _ in range(50)) + f"mixpanel: {key}\n"
    hits, _ = scanner._run(rule, text.encode(), 5)  # five candidates left in the budget
    assert [hit.value for hit in hits] == [key]


def test_a_text_past_a_megabyte_is_left_to_the_other_rules(scanner: Scanner) -> None:
    """max_text_bytes: its search of a bulk file would cost a tenth of the scan."""
    token = mixed(40)
    text = f"zendesk: {token}\n"
    assert "machine-made-token" in rule_ids(scanner, text + " " * ((1 << 20) - len(text)))
    assert "machine-made-token" not in rule_ids(scanner, text + " " * (1 << 20))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        *(("foo_bar_", ""), ("X", ""), ("9", ""), ("a-", ""), ("eyJhbGciOiJIUzI1NiJ9.", "")),
        *(("", "_v2"), ("", "-x"), ("", "+AB/c=")),
    ],
)
def test_a_prefixed_token_must_be_a_whole_word(scanner: Scanner, before: str, after: str) -> None:
    """Part of a longer name (three segments), of a word, or of base64 is not a token."""
    assert "prefixed-token" not in rule_ids(scanner, before + PREFIXED_TOKENS[0] + after)


def test_neighbours_separated_by_one_character_are_all_found(scanner: Scanner) -> None:
    text = "a.one@mail.net b.two@mail.net c.three@mail.net 10.0.0.1 10.0.0.2"
    ids = [f.rule_id for f in scanner.scan(text)]
    assert ids.count("email-address") == 3
    assert ids.count("private-ipv4") == 2


def test_findings_carry_no_matched_text(scanner: Scanner) -> None:
    secret = make.github_token(random.Random(1))
    text = f"token {secret} and mail alice.liddell@wonderland.org"
    findings = scanner.scan(text)
    assert {f.rule_id for f in findings} == {"github-token", "email-address"}
    for finding in findings:
        assert secret[4:] not in repr(finding)
        assert "alice" not in repr(finding)
    (github,) = [f for f in findings if f.rule_id == "github-token"]
    assert text[slice(*github.span)] == secret
    assert github.preview == "ghp_…[40 chars]"


def test_marker_words_inside_random_characters_are_not_placeholders(scanner: Scanner) -> None:
    assert [f.rule_id for f in scanner.scan("id AKIAIISXFAKE5RCAUE4S")] == ["aws-access-key-id"]
    assert scanner.scan("token = 'your-fake-token-value'") == []


def test_key_pair_is_one_finding(scanner: Scanner) -> None:
    rng = random.Random(3)
    text = (
        f"[default]\naws_access_key_id = {make.aws_key_id(rng)}\n"
        f"aws_secret_access_key = {make.aws_secret(rng)}\n"
    )
    assert [f.rule_id for f in scanner.scan(text)] == ["aws-key-pair"]


def test_offsets_are_characters_in_non_ascii_text(scanner: Scanner) -> None:
    secret = make.github_token(random.Random(2))
    text = f"Ünïcödé 🚀 préface — {secret} fin"
    (finding,) = scanner.scan(text)
    assert text[slice(*finding.span)] == secret


def test_lone_surrogates_and_binary_noise_do_not_crash(scanner: Scanner) -> None:
    assert scanner.scan("\ud800 broken \udfff text") == []
    assert scanner.scan("\x00\x01\xff" * 100) == []


def test_a_flood_of_failing_candidates_is_reported_unverified_never_clean(scanner: Scanner) -> None:
    decoys = " ".join("4539 1488 0343 6468" for _ in range(2500))  # each fails Luhn
    findings = scanner.scan(decoys)
    assert "credit-card:unverified" in {f.rule_id for f in findings}


def test_rules_flooded_together_share_one_budget_of_candidates(
    scanner: Scanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven tools' options on one line, each value a failing candidate: the rules stop at
    the scan's budget, not at seven times a rule's, and each reports itself unverified."""
    drawn = 0
    spans = scanner_module._spans

    def counted(*args: Any) -> Iterator[tuple[int, int, int]]:
        nonlocal drawn
        for item in spans(*args):
            drawn += 1
            yield item

    monkeypatch.setattr(scanner_module, "_spans", counted)
    unit = (
        "openssl zip -P abcdefgh ssh-keygen ldapsearch -w abcdefgh redis-cli sqlcmd -P "
        "abcdefgh net use htpasswd -b a b abcdefgh echo abcdefgh | sudo -S x "
    )
    text = unit * (scanner_module.MAX_CANDIDATES_PER_RULE + 10)
    assert any(rule.endswith(":unverified") for rule in rule_ids(scanner, text))
    # each rule draws at most one candidate past its allowance: the one it reports from
    rules_run = len(scanner._enabled(text.encode()))
    assert drawn <= scanner_module.scan_budget(len(text)) + rules_run
    assert drawn > scanner_module.MAX_CANDIDATES_PER_RULE  # the budget is not a rule's


def test_a_value_is_judged_once_a_scan(scanner: Scanner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log repeats its values: each rule judges a value once, turned down or accepted
    (a Chinese id's check looks its region up), and each repeat accepted is a finding."""
    judged: list[tuple[str, str]] = []
    accepts = Scanner._accepts

    def counted(self: Scanner, rule: Any, value: str) -> bool:
        judged.append((rule.id, value))
        return accepts(self, rule, value)

    monkeypatch.setattr(Scanner, "_accepts", counted)
    text = "mysql -pchangeme -h db\n" * 50 + "mysql -pQz8rT2mXwPqL7 -h db\n" * 3
    assert rule_ids(scanner, text) == {"cli-password-flag"}
    assert judged.count(("cli-password-flag", "changeme")) == 1
    assert judged.count(("cli-password-flag", "Qz8rT2mXwPqL7")) == 1
    assert len(scanner.scan(text)) == 3


def test_a_match_too_long_for_an_address_is_passed_over(scanner: Scanner) -> None:
    """A megabyte-long "domain" is no address (254 characters at most): it is not read for
    its groups, and the address after it is still found."""
    address = "jane.doe@fastmail.com"
    text = "a@" + "ab." * 200_000 + "io contact: " + address
    found = [(f.rule_id, f.span) for f in scanner.scan(text)]
    assert found == [("email-address", (len(text) - len(address), len(text)))]


def test_matches_a_rule_passes_over_count_as_candidates(
    scanner: Scanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """phone-national passes over card-like digit groups (its match sets no value): a
    megabyte of them took one search a group, 150 ms, with no candidate counted."""
    searches = counted_searches(monkeypatch)
    text = "4539 1488 0343 " * 20_000
    assert any(rule.endswith(":unverified") for rule in rule_ids(scanner, text))
    rules_run = len(scanner._enabled(text.encode()))
    assert len(searches) <= 2 * scanner_module.MAX_CANDIDATES_PER_RULE + 2 * rules_run


def test_a_long_log_with_many_turned_down_candidates_is_not_reported(scanner: Scanner) -> None:
    """Each line holds three candidates that their checks turn down (a dotted date, an epoch
    in ms, a public address), 5,100 in all: no rule reaches its own cap, and the budget the
    rules share must not starve the last of them into an unverified finding."""
    rng = random.Random(3)
    lines = [
        f"{rng.randint(1, 9):02d}.10.2024 12:{i % 60:02d}:07 INFO "
        f"ts={rng.randint(1727740800000, 1728518400000)} "
        f"client=172.{rng.choice([217, 64, 67])}.{rng.randint(0, 255)}.{rng.randint(1, 254)} "
        f"GET /api/v1/items/{i} 200 {rng.randint(1, 900)}ms"
        for i in range(1700)
    ]
    assert scanner.scan("\n".join(lines)) == []


def test_a_flood_of_findings_stops_at_the_cap(scanner: Scanner) -> None:
    rng = random.Random(5)
    text = "\n".join(make.github_token(rng) for _ in range(500))
    assert len([f for f in scanner.scan(text) if f.rule_id == "github-token"]) == 100


@pytest.mark.parametrize(
    "text",
    ["Amex 3756 123456 78907", "UK 01632 960 961", "FR 06 12 34 56 78", "ssn 536-22-8841"],
)
def test_rules_behind_a_trigger_still_see_every_format(scanner: Scanner, text: str) -> None:
    assert scanner.scan(text)


@pytest.mark.parametrize(
    ("before", "found"),
    [("", True), (" ", True), ("(", True), ("é", True), ("🚀", True), ("x", False), ("_", False)],
)
def test_a_token_must_start_a_word(scanner: Scanner, before: str, found: bool) -> None:
    """`preceded_by = '\\W'` stands in for a leading \\b, non-ASCII characters included."""
    secret = make.github_token(random.Random(6))
    text = f"{before}{secret} end"
    assert ("github-token" in rule_ids(scanner, text)) is found


def test_a_glued_occurrence_does_not_hide_the_next_one(scanner: Scanner) -> None:
    rng = random.Random(7)
    glued, real = make.github_token(rng), make.github_token(rng)
    text = f"x{glued} {real}"
    # (xghp_ and 36 random characters is a word of prefixed-token's shape of its own)
    (finding,) = [f for f in scanner.scan(text) if f.rule_id == "github-token"]
    assert text[slice(*finding.span)] == real


def test_a_flood_of_glued_tokens_is_bounded_and_never_clean(scanner: Scanner) -> None:
    rng = random.Random(8)
    text = " ".join("x" + make.github_token(rng) for _ in range(2500))
    assert "github-token:unverified" in rule_ids(scanner, text)


def test_a_long_quoted_token_is_judged_like_a_short_one(scanner: Scanner) -> None:
    """Session tokens run to hundreds of characters; no length cap hides them."""
    token = make.base64_key(random.Random(9), 360)
    for text in (f'"SessionToken": "{token}",', f'session_token = "{token}"  # from STS'):
        (finding,) = scanner.scan(text)
        assert (finding.category, text[slice(*finding.span)]) == ("secret", token)


def test_a_huge_unquoted_run_is_bounded_not_missed(scanner: Scanner) -> None:
    """A value with no closing delimiter stops at its cap instead of becoming a 1 MB match."""
    text = "password=" + "Zq4!mX8pR2vT" * 90_000
    findings = scanner.scan(text)
    assert findings
    assert all(f.category == "secret" for f in findings)
    assert max(f.span[1] - f.span[0] for f in findings) <= 200


def _order_rules(**flags: bool) -> Scanner:
    """Two rules on the same keywords, each with `flags` (exact_prefilter, long_prefilter)."""
    rules = [
        {"id": "order-ref", "category": "internal", "pattern": r"ORD-(\d{6})", "group": 1},
        {"id": "order-any", "category": "internal", "pattern": r"(?i)zx-(\d{4})", "group": 1},
    ]
    for rule in rules:
        rule.update(keywords=["ord", "zx"], **flags)
    return Scanner(config_from_mapping({"privacy": {"rules": rules}}).privacy)


def _ran(scanner: Scanner, text: str) -> set[str]:
    """Which of _order_rules' two rules the prefilter lets run on `text`."""
    enabled = scanner._enabled(text.encode())
    ours = ("order-ref", "order-any")  # not the packaged rules that run on every text
    return {r.id for i, r in enumerate(scanner._rules) if i in enabled and r.id in ours}


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("order ord-123456 zx", set()),  # keywords there, neither pattern (it is case-sensitive)
        ("order ORD-123456", {"order-ref"}),
        ("ord ZX-1234 and zx-9876", {"order-any"}),  # (?i) in the pattern is kept
        ("ORD-123456 zx-1234", {"order-ref", "order-any"}),
    ],
)
def test_an_exact_prefilter_runs_a_rule_only_where_its_pattern_matches(
    text: str, runs: set[str]
) -> None:
    scanner = _order_rules(exact_prefilter=True)
    assert _ran(scanner, text) == runs
    plain = _order_rules()  # the same rules, run on every keyword
    assert scanner.scan(text) == plain.scan(text)


# An example of each packaged long_prefilter rule (besides POSITIVES').
LONG_RULE_EXAMPLES = [
    *(text for _, text in POSITIVES),
    "perplexity = 'pplx-Qm4x8Rt2Vw9Lp3Kz7Bn5Hc1Jd6Fs0Gy2Ue8Ia4Ov'",
    "list id 8f14e45fceea167a5a36dedd4bea2543-us14 for the newsletter",
    "square: sq0atp-Xm4Rt9Lq2Vw8Kp3Zn7Bc5H",
    "podman login quay.io -u robot -p Qm8xRt2Vw9Lp3Kz",
    "sqlcmd -S db01 -U sa -P Qm8xRt2Vw9Lp3Kz -Q 'select 1'",
    "define('DB_PASSWORD', 'Qm8xRt2Vw9Lp3Kz');",
    "Customer born on 1984-03-12, account since 2019",
    "ship to 1600 Amphitheatre Parkway, Mountain View, CA 94043",
    "〒100-0001 東京都千代田区千代田1-1",
    "id 440305199003071236 on the form",
    "resident number 880321-1362416",
    "手机号 138 1234 5678，请联系",
    "call me on 139-1234-5678 tomorrow",
    'variable "db_password" {\n  type = string\n  default = "Qm8xRt2Vw9Lp3Kz"\n}',
    '{"type": "random_password", "instances": [{"attributes": {"result": "Qm8xRt2Vw9Lp3Kz"}}]}',
    'client = Client("ACa3f9c2e1d7b4a6f8c0e2d4b6a8f1c3e5", "c9e2a7f41b3d8e6c0a5f9b2d7e4c1a8f")',
]


# Long enough for the long_prefilter set, and full of both rules' keywords.
LONG_FILLER = "ordered at zx station, see the queue\n" * 2000


@pytest.mark.parametrize(
    ("tail", "runs"),
    [
        ("", set()),  # their keywords everywhere, neither pattern
        ("closed ORD-123456", {"order-ref"}),
        ("ord-123456 ZX-1234", {"order-any"}),  # each pattern keeps its own case
        ("ORD-123456 and zx-1234", {"order-ref", "order-any"}),
    ],
)
@pytest.mark.parametrize("threads", ["none", "after the keywords", "with the keywords"])
def test_a_long_prefilter_runs_a_rule_in_a_long_text_only_where_its_pattern_matches(
    tail: str, runs: set[str], threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the worker threads (a text of PARALLEL_BYTES or more), the long_prefilter sets
    read the text after the keywords' set, or while it does (EARLY_LONG_BYTES): the same
    rules run."""
    if threads != "none":
        monkeypatch.setattr(scanner_module, "SCAN_WORKERS", 2)
        monkeypatch.setattr(scanner_module, "PARALLEL_BYTES", 0)
    if threads == "with the keywords":
        monkeypatch.setattr(scanner_module, "EARLY_LONG_BYTES", 0)
    text = LONG_FILLER + tail
    assert len(text) >= scanner_module.LONG_TEXT_BYTES
    scanner = _order_rules(long_prefilter=True)
    assert _ran(scanner, text) == runs
    assert scanner.scan(text) == _order_rules().scan(text)
    # A short text is not asked: the extra pass would cost more than the rules it spares.
    assert _ran(scanner, "ordered at zx") == {"order-ref", "order-any"}


def _prefilters_of(scanner: Scanner, ids: set[str]) -> list[Any]:
    """The long_prefilter sets that hold the rules `ids`."""
    indices = {i for i, r in enumerate(scanner._rules) if r.id in ids}
    return [p for p in scanner._long_prefilters if p.rules & indices]


def test_a_long_prefilter_set_that_gives_up_runs_every_rule(monkeypatch) -> None:
    """Out of memory, the set answers without its last pattern: then each rule reads."""
    scanner = _order_rules(long_prefilter=True)
    (prefilter,) = _prefilters_of(scanner, {"order-ref", "order-any"})
    monkeypatch.setattr(prefilter._set, "matching", lambda data: None)
    assert _ran(scanner, LONG_FILLER) == {"order-ref", "order-any"}
    found = scanner.scan(LONG_FILLER + "ORD-654321")
    assert [f.rule_id for f in found] == ["order-ref"]


def test_long_prefilter_rules_too_large_for_a_set_run_on_every_long_text(monkeypatch) -> None:
    """A user's rules each near RE2's size for one pattern can overflow a set (RE2 says
    "failed to compile Set"): theirs is then no set, and they run as rules with no
    long_prefilter do, never an error."""

    def overflowing(*args: Any, **kwargs: Any) -> None:
        raise re2.error("failed to compile Set")

    monkeypatch.setattr(scanner_module, "PatternSet", overflowing)
    scanner = _order_rules(long_prefilter=True)
    assert [p._set for p in _prefilters_of(scanner, {"order-ref", "order-any"})] == [None]
    assert _ran(scanner, LONG_FILLER) == {"order-ref", "order-any"}
    found = scanner.scan(LONG_FILLER + "ORD-654321")
    assert [f.rule_id for f in found] == ["order-ref"]


def test_the_prefilters_keywords_are_in_one_set_and_its_patterns_a_few_to_a_set(
    scanner: Scanner,
) -> None:
    """All in one set, the triggers' counted runs made states at once, a product: a megabyte
    of a token prefix and random letters took 2 s. The keywords' set holds literals only."""
    keywords, *patterns = scanner._prefilters
    assert len(patterns) >= 2
    # each set's last entry is its sentinel, which enables nothing
    assert all(len(enables) - 1 <= scanner_module.PREFILTER_SET_PATTERNS for _, enables in patterns)
    triggers = {r.rule.trigger for r in scanner._rules if r.rule.trigger}
    assert sum(len(enables) - 1 for _, enables in patterns) >= len(triggers)
    assert len(keywords[1]) - 1 > 100  # the literals


def test_a_long_prefilter_rule_with_a_large_pattern_has_a_set_of_its_own() -> None:
    """A set's patterns' programs stay under LONG_SET_PROGRAM instructions: two large
    patterns in one set made a state at nearly every byte of their fragments."""
    rng = random.Random(3)
    words = ("".join(rng.choices("bcdfghjklmnpqrstvwxz", k=12)) for _ in range(400))
    big = "(?:" + "|".join(words) + r") \d{5}"  # random words: RE2 can share no prefix
    rules = [
        {"id": f"r{n}", "category": "pii", "pattern": p, "keywords": ["zz"], "long_prefilter": True}
        for n, p in enumerate([r"zz-(\d{4})", big, r"yy-(\d{4})"])
    ]
    scanner = Scanner(config_from_mapping({"privacy": {"rules": rules}}).privacy)
    ids = {"r0", "r1", "r2"}
    groups = [{scanner._rules[i].id for i in p.rules} & ids for p in scanner._long_prefilters]
    assert {"r1"} in groups  # alone
    assert not any({"r0", "r2"} <= g for g in groups if "r1" in g)


def test_the_packaged_long_prefilter_rules_are_asked_a_few_at_a_time(scanner: Scanner) -> None:
    """One set of all their patterns let a megabyte of their fragments, mixed on one line,
    make its DFA a new state at nearly every byte (600 ms): sets of a few keep it small."""
    sets = scanner._long_prefilters
    assert len(sets) >= 4
    assert all(len(p.rules) <= scanner_module.LONG_SET_RULES for p in sets)
    assert frozenset().union(*(p.rules for p in sets)) == {
        i for i, r in enumerate(scanner._rules) if r.rule.long_prefilter
    }


def test_the_packaged_long_prefilter_rules_each_still_find_in_a_long_text(
    scanner: Scanner,
) -> None:
    """Each packaged long_prefilter rule's own examples, at the end of a long text of its
    keywords, are found as they are alone: its widened pattern lets each through."""
    long_rules = [r for r in scanner._rules if r.rule.long_prefilter]
    assert len(long_rules) >= 10
    for compiled in long_rules:
        keywords = " ".join(compiled.rule.keywords) or "login account"
        filler = f"{keywords} and nothing more\n" * (
            scanner_module.LONG_TEXT_BYTES // (len(keywords) + 18) + 1
        )
        examples = [e for e in LONG_RULE_EXAMPLES if compiled.id in rule_ids(scanner, e)]
        assert examples, f"no example here for {compiled.id}"
        for example in examples:
            assert compiled.id in rule_ids(scanner, filler + example), (compiled.id, example)


@pytest.mark.parametrize(
    "text",
    [
        "KeyError: clave 'token_response_record_389' no encontrada",  # clave: any key
        "la clave del diccionario es user_Name_2024",
        "the MDP fileColumnError23 converges",  # a Markov decision process
    ],
)
def test_words_that_only_sometimes_mean_password_are_no_label(scanner: Scanner, text: str) -> None:
    assert "password-in-prose-translated" not in rule_ids(scanner, text)


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("the nightly build passed", False),
        ("=== 12 PASSED, 1 skipped ===", False),
        ("passing it to a passive reader", False),
        ("tests/test_login.py::test_ok PASSED", False),
        ('const passEnc = "Qz8rT2mXwPqL"', True),  # a capital after it: a name's next word
        ('{"passIn": "Qz8rT2mXwPqL"}', True),
        ('mot_de_passe = "Qz8rT2mXwPqL"', True),  # passe and passi themselves
        ('passi = "Qz8rT2mXwPqL"', True),
        ("db_pass=Qz8rT2mXwPqL", True),
        ("PASSWD: Qz8rT2mXwPqL", True),
        ("passphrase", True),
        ("pass", True),
        ("rootPass", True),
    ],
)
def test_only_a_credential_word_starting_pass_runs_the_readers(
    scanner: Scanner, text: str, runs: bool
) -> None:
    """English words that start with "pass" (passed, passing) name no credential: they do
    not run the syntax readers and the Python-aware pass."""
    assert (scanner_module.AST in scanner._enabled(text.encode())) is runs


def test_keywords_outside_ascii_are_asked_about_only_in_text_outside_ascii() -> None:
    rule = {
        "id": "ticket-ref",
        "category": "internal",
        "pattern": r"(?i)(?:заявка|ticket)-(\d{4})",
        "group": 1,
        "keywords": ["заявка", "ticket"],
    }
    scanner = Scanner(config_from_mapping({"privacy": {"rules": [rule]}}).privacy)
    assert scanner._wide_prefilter is not None
    found, enables = scanner._wide_prefilter
    asked: list[bytes] = []

    class Spy:
        def Match(self, data: bytes) -> Any:  # re2.Set's own name
            asked.append(data)
            return found.Match(data)

    scanner._wide_prefilter = (Spy(), enables)  # type: ignore[assignment]
    assert rule_ids(scanner, "see TICKET-1234") == {"ticket-ref"}
    assert asked == []  # ASCII: the one set answers
    assert rule_ids(scanner, "см. ЗАЯВКА-1234") == {"ticket-ref"}  # either case
    assert rule_ids(scanner, "см. заявку 1234") == set()
    assert len(asked) == 2


@settings(max_examples=400, deadline=None)
@given(
    word=st.sampled_from(["kind:", "PuTTY-User-Key-File-", "ab", "]^-"]),
    lazy=st.booleans(),
    data=st.data(),
)
def test_text_without_a_word_is_exactly_the_text_it_does_not_occur_in(
    word: str, lazy: bool, data: st.DataObject
) -> None:
    pieces = st.sampled_from([*word, word, word[:-1], "\n", "\\", "x", "é"])
    text = "".join(data.draw(st.lists(pieces, max_size=12)))
    found = re2.compile("(?s)" + text_without(word, lazy=lazy)).fullmatch(text) is not None
    assert found == (word not in text and "\n" not in text)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"-p([^\s:=]{5,199})", r"-p([^\s:=]{5,})"),
        (r"a{2,3}b{1,}c{4}", r"a{2,}b{1,}c{4}"),
        (r"\{1,2\}x\\{1,2}", r"\{1,2\}x\\{1,}"),  # an escaped brace is a literal
        (r"[{1,2}]{1,2}", r"[{1,2}]{1,}"),  # so is one in a class
        (r"[]{1,2}]x[^]{3,4}]", r"[]{1,2}]x[^]{3,4}]"),  # a leading ] is in the class
        (r"[[:alpha:]{1,2}]y{0,9}", r"[[:alpha:]{1,2}]y{0,}"),
        (r"\Qa{1,2}\Eb{1,2}", r"\Qa{1,2}\Eb{1,}"),
        (r"x{,3}z{a,b}", r"x{,3}z{a,b}"),  # not counted runs in RE2
        ("a{1,²}z{٣,4}", "a{1,²}z{٣,4}"),  # digits outside ASCII: text to RE2
    ],
)
def test_widened_drops_only_the_upper_bounds_of_counted_runs(pattern: str, expected: str) -> None:
    assert widened(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"_[a-z0-9]{24}", r"_[a-z0-9]{8,}"),
        (r"a{2,3}b{1,}c{40,}d{9}", r"a{2,}b{1,}c{8,}d{8,}"),
        (r"\{24\}[{24}]x{0,2}", r"\{24\}[{24}]x{0,}"),  # literals stay
    ],
)
def test_widened_to_a_lowest_count_cuts_every_counted_run(pattern: str, expected: str) -> None:
    assert widened(pattern, lowest=8) == expected


@pytest.mark.parametrize("lowest", [None, 1, 8])
def test_widened_patterns_match_wherever_their_rules_do(lowest: int | None) -> None:
    """What the prefilter set is given for an exact_prefilter rule, or for a trigger in a
    long text's sets, must never miss a text the rule matches: every packaged pattern,
    widened, on every example text here."""
    texts = [text.encode() for _, text in POSITIVES]
    matched = 0
    for rule in packaged_rules():
        exact = re2.compile(rule.pattern)
        wide = re2.compile(widened(rule.pattern, lowest=lowest))
        for text in texts:
            if exact.search(text) is not None:
                matched += 1
                assert wide.search(text) is not None, rule.id
    assert matched >= len(texts)


@pytest.mark.parametrize("word", ["a", "abca", "a\nb"])
def test_text_without_needs_a_word_whose_first_letter_does_not_recur(word: str) -> None:
    with pytest.raises(ValueError, match="first one not repeated"):
        text_without(word)


def test_rules_that_span_lines_follow_one_start_at_a_time() -> None:
    """Each rule whose two ends may lie lines apart allows no second start between them,
    or RE2 follows every start in its window (seconds for a megabyte of starts)."""
    patterns = {rule.id: rule.pattern for rule in packaged_rules()}
    assert text_without("PuTTY-User-Key-File-", lazy=True) in patterns["putty-private-key"]
    spanning = {i for i, p in patterns.items() if r"(?:[^\n]*\n){0," in p or "[^\\n]*?" in p}
    assert not spanning - {"aws-key-pair"}, spanning  # aws-key-pair's window is three lines


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("$ vault kv get -field=value secret/app", True),
        ("vault read -field token auth/x", True),
        (".text-field { color: red }\n.form-field input { border: 0 }", False),
        ("<input class='search-field'>", False),
    ],
)
def test_a_store_commands_field_option_runs_the_readers(
    scanner: Scanner, text: str, runs: bool
) -> None:
    """Vault's `-field` names what the next line prints (readers.PRINTED_SECRET); a CSS
    class's `-field` names nothing and does not run the readers."""
    assert (scanner_module.AST in scanner._enabled(text.encode())) is runs


_PAIRED = random.Random(4242)


@pytest.mark.parametrize(
    "template",
    [
        "cpan-upload -u RAVINDRAN -p '{0}' Acme-Ledger-0.42.tar.gz",
        'mongosh "mongodb://db:27017/app" -u admin -p {0} --authenticationDatabase admin',
        'some-cli sync -u "ops@acme.example" -p"{0}"',
    ],
)
def test_a_password_after_a_user_on_a_command_line_is_found(
    scanner: Scanner, template: str
) -> None:
    word, digits = run(6, string.ascii_lowercase, _PAIRED).title(), _PAIRED.randint(10, 99)
    password = f"{word}{digits}!{run(5, string.ascii_lowercase, _PAIRED)}"
    assert found_in_text(scanner, template, password)


@pytest.mark.parametrize(
    "text",
    [
        "docker run -u 1000 -p 8080:80 nginx",
        "docker run -p8080:80 -p127.0.0.1:9443:443 nginx",
        "docker run -pHOST1:8080 nginx",  # a host and a port, a setting (review 28)
        "./configure.sh -pIPv6=true",
        "dotnet build -p:Version=1.2.3 -pConfiguration=Release",
        "javac -proc:none -processorpath=lib/X1.jar Main.java",
        "mysql -u root -p my_database",
        "git push -u origin -p feature/Login-2",
        "pytest -u ci -p 'no:cacheprovider'",
        "ssh -u deploy -p '2222' build-host",
    ],
)
def test_a_port_path_or_plugin_after_a_user_is_no_password(scanner: Scanner, text: str) -> None:
    assert "secret" not in categories(scanner, text)


def test_public_values_by_their_own_format_are_no_secret(scanner: Scanner) -> None:
    """A Nostr public key (NIP-19 npub), a value Vault's audit log HMAC-ed, a minisign
    public key on its command line and a PGP public key block's first line: published or
    one-way by design."""
    npub = "npub1" + run(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l", _PAIRED)
    hmac = "hmac-sha256:" + run(64, "0123456789abcdef", _PAIRED)
    minisign = "RW" + run(54, string.ascii_letters + string.digits, _PAIRED)
    body = run(64, string.ascii_letters + string.digits, _PAIRED)
    texts = [
        f'{{\n  "name": "build-status",\n  "npub": "{npub}",\n  "relays": ["wss://relay.example"]\n}}',
        f'{{"auth":{{"client_token":"{hmac}","display_name":"approle"}},'
        f'"response":{{"data":{{"password":"{hmac}"}}}}}}',
        f"Verify the download:\n\n    minisign -Vm tool.tar.gz -P {minisign}\n",
        f"-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: release signing\n\n{body}\n"
        f"{run(60, string.ascii_letters, _PAIRED)}+/\n=Ab12\n-----END PGP PUBLIC KEY BLOCK-----\n",
    ]
    for text in texts:
        assert "secret" not in categories(scanner, text), text


def test_a_nostr_secret_key_under_a_name_is_still_a_secret(scanner: Scanner) -> None:
    nsec = "nsec1" + run(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l", _PAIRED)
    assert "secret" in categories(scanner, f'NOSTR_BOT = "{nsec}"')


def test_dotenv_vaults_ciphertext_is_no_secret_but_its_key_is(scanner: Scanner) -> None:
    """`.env.vault` holds each environment's variables encrypted (DOTENV_VAULT_<ENV>);
    DOTENV_KEY, which decrypts them, is the secret."""
    cipher = base64.b64encode(_PAIRED.randbytes(96)).decode()
    vault = f'# production\nDOTENV_VAULT_PRODUCTION="{cipher}"\n'
    assert "secret" not in categories(scanner, vault)
    key = (
        f"DOTENV_KEY='dotenv://:key_{run(64, '0123456789abcdef', _PAIRED)}"
        "@dotenv.org/vault/.env.vault?environment=production'"
    )
    assert "secret" in categories(scanner, key)


@pytest.mark.parametrize(
    ("name", "found"),
    [
        # a word that only starts like a digest's (sha, sum) says nothing of the value
        ("SAILPOINT_SHALE", True),
        ("ACME_SHADOW", True),
        ("CONSUMER_NORTH", True),
        # a digest's name
        ("LAYER_SHA", False),
        ("image_sha256", False),
        ("SHA256SUMS", False),
        ("md5sum", False),
    ],
)
def test_a_vendor_names_word_that_starts_like_a_digests_is_no_digest(
    scanner: Scanner, name: str, found: bool
) -> None:
    key = "7ea01bc95b6c92019751e3c2cad4578fd28baaf2323d9ad8dfe9c5dcc538101e"
    assert ("vendor-named-hex" in rule_ids(scanner, f"{name}='{key}'")) is found


def test_new_relic_insert_and_license_keys_are_found_by_their_shape(scanner: Scanner) -> None:
    """NRII- insert keys (gitleaks new-relic-insert-key) and the license keys whose last
    four characters say what they are (36 hex digits, then NRAL), anywhere."""
    insert = "NRII-" + run(32, make.ALNUM + "-_", _PAIRED)
    license_key = run(36, "0123456789abcdef", _PAIRED) + "NRAL"
    assert rule_ids(scanner, f"ingest with {insert} please") == {"new-relic-key"}
    assert rule_ids(scanner, f"[10:44] ops: here you go -> {license_key}") == {"new-relic-key"}
    # the suffix in other words, and a key cut short, are none
    assert rule_ids(scanner, "GENERAL NRAL and CENTRAL") == set()
    assert "new-relic-key" not in rule_ids(scanner, f"-> {license_key[4:]}")


@pytest.mark.parametrize(
    "text",
    [
        '{"first_name": "Astrid", "ca_sin": "339 770 083", "consent": true}',
        "customer_sin = 339770083",
        '{"employee_bsn": "111222333"}',
    ],
)
def test_an_identity_numbers_label_ends_a_snake_case_name(scanner: Scanner, text: str) -> None:
    assert "identity-number-suffixed" in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "math_sin = 0.84147",
        "cos_sin = 1999-2004",
        "np_sin = 123456789",
        # ISO 8583's retrieval reference number, not a Korean resident's (review 19)
        '{"auth_code": "A1B2C3", "host_rrn": "412345678901", "stan": "000123"}',
        "txn_rrn = 412345678901",
    ],
)
def test_a_snake_case_label_still_needs_an_identity_numbers_look(
    scanner: Scanner, text: str
) -> None:
    assert not {"identity-number", "identity-number-suffixed"} & rule_ids(scanner, text)


@pytest.mark.parametrize("qualifier", [" (prod)", " (staging env)", ""])
def test_a_key_under_a_qualified_label_and_a_blank_line_is_found(
    scanner: Scanner, qualifier: str
) -> None:
    key = run(32, "0123456789abcdef", _PAIRED)
    text = f"vimeo access token{qualifier}:\n\n    {key}\n"
    assert "token-in-prose" in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "The token (v2):\n\nexpires in 3600 seconds, then refresh",
        # a heading, a blank line, a paragraph: no colon, no label (review 19)
        "## API token\n\nv2RotationPolicy2024 applies from now on",
    ],
)
def test_a_label_and_a_line_of_words_after_it_is_no_key(scanner: Scanner, text: str) -> None:
    assert rule_ids(scanner, text) == set()


@pytest.mark.parametrize(
    "url",
    [
        "https://mainnet.infura.io/v3/{key}",
        "wss://mainnet.infura.io/ws/v3/{key}",
        "[RPC](https://polygon-mainnet.infura.io/v3/{key})",
        "RPC_URL=https://sepolia.infura.io/v3/{upper};",
        "https://eth-mainnet.g.alchemy.com/v2/{token}",
    ],
)
def test_a_node_providers_endpoint_key_is_found(scanner: Scanner, url: str) -> None:
    key = run(32, "0123456789abcdef", _PAIRED)
    token = run(32, make.ALNUM, _PAIRED)
    text = url.format(key=key, upper=key.upper(), token=token)
    assert "node-provider-key" in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/v1/{digest}/app.js",
        '<img src="https://img.example.com/v2/{digest}">',  # a content hash (review 19)
        "https://cache.example.com/v1/{digest}?width=200",
    ],
)
def test_hex_after_a_version_on_any_other_host_is_no_key(scanner: Scanner, url: str) -> None:
    digest = run(32, "0123456789abcdef", _PAIRED)
    assert rule_ids(scanner, url.format(digest=digest)) == set()


@pytest.mark.parametrize(
    "sentence",
    [
        "Here is the API key for staging, please rotate it after the demo:",
        "New credentials just came in, key below.",
    ],
)
def test_a_key_alone_under_the_sentence_that_hands_it_over_is_found(
    scanner: Scanner, sentence: str
) -> None:
    for key in (
        run(40, "0123456789abcdef", _PAIRED),
        run(36, string.ascii_uppercase + "0123456789", _PAIRED),
        "0x" + run(64, "0123456789abcdef", _PAIRED),  # a wallet's private key
        "o." + run(32, make.ALNUM, _PAIRED),  # a short prefix and a dot (Pushbullet's)
    ):
        assert "token-below-sentence" in rule_ids(scanner, f"{sentence}\n{key}\n")


@pytest.mark.parametrize(
    ("sentence", "value"),
    [
        ("The commit that rotated the key:", "{digest}"),
        ("SSH host key fingerprint:", "{digest}"),
        ("The public key, for reference:", "{digest}"),
        ("The token expired.", "SomethingElseHappenedToday"),
        ("Updated the keys.", "README_and_CHANGELOG_updated"),
    ],
)
def test_a_digest_or_a_word_under_a_sentence_about_a_key_is_none(
    scanner: Scanner, sentence: str, value: str
) -> None:
    text = f"{sentence}\n{value.format(digest=run(40, '0123456789abcdef', _PAIRED))}\n"
    assert "token-below-sentence" not in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "Applicant: Chen Nakamura\nSocial Insurance Number (SIN): 100 492 180\n",
        "National Insurance number (NINO): QQ 12 34 56 C",
        "Social Insurance Number (SIN) 100492180",
    ],
)
def test_an_identity_numbers_label_may_carry_its_abbreviation(scanner: Scanner, text: str) -> None:
    """A form's label names the number, then its abbreviation in brackets."""
    assert "identity-number" in rule_ids(scanner, text)


def test_a_bracketed_word_after_a_label_is_no_abbreviation(scanner: Scanner) -> None:
    assert "identity-number" not in rule_ids(scanner, "Passport (see attached): 2 pages")


def test_a_webhook_signing_secret_in_base64_is_found(scanner: Scanner) -> None:
    """Svix's `whsec_` secrets are base64, where Stripe's are letters and digits."""
    key = "whsec_" + run(32, make.ALNUM + "+/", _PAIRED)
    assert rule_ids(scanner, f'wh = Webhook("{key}")') == {"stripe-webhook-secret"}


def test_the_cookies_warning_without_its_value_is_none(scanner: Scanner) -> None:
    text = "The cookie starts with _|WARNING:-DO-NOT-SHARE-THIS.--Sharing-this.|_ then hex"
    assert rule_ids(scanner, text) == set()


@pytest.mark.parametrize(
    "text",
    [
        f"MAKE_WEBHOOK_URL: https://hook.eu2.make.com/{run(32, LOWER_ALNUM, _PAIRED)}",
        f"post to https://hook.integromat.com/{run(32, LOWER_ALNUM, _PAIRED)} on change",
    ],
)
def test_a_make_webhook_is_found(scanner: Scanner, text: str) -> None:
    assert rule_ids(scanner, text) == {"chat-webhook-url"}


def test_a_quicknode_endpoint_is_found(scanner: Scanner) -> None:
    url = f"https://dawn-frosty-sea.solana-mainnet.quiknode.pro/{run(40, HEX, _PAIRED)}/"
    assert rule_ids(scanner, f"QUICKNODE_HTTP_URL: {url}") == {"node-provider-key"}
    assert rule_ids(scanner, "docs: https://www.quiknode.pro/docs/") == set()


def test_a_blockfrost_project_id_is_found(scanner: Scanner) -> None:
    key = "mainnet" + run(32, make.ALNUM, _PAIRED)
    assert rule_ids(scanner, f"BLOCKFROST_PROJECT_ID={key}") == {"blockfrost-project-id"}
    # a network's name then 32 letters of an identifier's words is none (review 20: the
    # validator's, not the length's, turning down)
    assert rule_ids(scanner, "previewImageUrlForTheSecondLargestThumb") == set()


@pytest.mark.parametrize(
    "text",
    [
        "WP_APP_PASSWORD=pkRH cvUJ Qmic ZFO1 hGt9 OCoF",
        "curl -s -u 'hpatel:dY0z mX3A zVYX FBmH WUhD xycl' https://blog.example.org/wp-json",
        "'password' => 'a8Qx Lm2P 9zTr Wq4k Bn7V c3Hy',",
    ],
)
def test_a_wordpress_application_password_is_found(scanner: Scanner, text: str) -> None:
    assert "wordpress-application-password" in rule_ids(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "password: That With From This Have Been",
        "password: 2024 2025 2026 2027 2028 2029",
        "pass: abcd efgh ijkl mnop qrst uvwx",
        "'password' => 'XXXX XXXX XXXX XXXX XXXX XXXX'",
        "auth: Plan 2024 Q3v2 Team Sync Call",
    ],
)
def test_words_in_groups_of_four_are_no_application_password(scanner: Scanner, text: str) -> None:
    assert "wordpress-application-password" not in rule_ids(scanner, text)


def test_random_application_passwords_are_nearly_all_found() -> None:
    """What WordPress generates: 24 random letters and digits, shown in groups of four."""
    rng = random.Random(24)
    values = [
        " ".join("".join(rng.choices(make.ALNUM, k=4)) for _ in range(6)) for _ in range(1000)
    ]
    assert sum(map(grouped_key, values)) >= 960


@pytest.mark.parametrize(
    ("groups", "found"),
    [
        ("Plan Team a8Qx Lm2P 9zTr Wq4k", True),  # two groups that read as words
        ("Plan Team Sync a8Qx Lm2P 9zTr", False),  # three
    ],
)
def test_an_application_password_may_have_two_word_like_groups_not_three(
    scanner: Scanner, groups: str, found: bool
) -> None:
    text = f"WP_APP_PASSWORD={groups}"
    assert ("wordpress-application-password" in rule_ids(scanner, text)) is found


NUMBERED = [
    # an agent's file-reading tool: a private key, its PEM lines numbered
    "     1→-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "     2→b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABFwAAAAdzc2gtcn\n"
    "     3→NhAAAAAwEAAQAAAQEAz6mISutx1+JPCE2cKvaTROXZauQSOuNZ1wOlX9wf7QkFM8Zueijp\n",
    # cat -n: a PuTTY key's private lines
    "     1\tPuTTY-User-Key-File-3: ssh-ed25519\n     2\tEncryption: none\n"
    "     3\tComment: deploy\n     4\tPublic-Lines: 1\n"
    "     5\tAAAAC3NzaC1lZDI1NTE5AAAAIHq9GmR2kT0yWc8nLZpXo3fE1sV7bD4uJ6hQ\n"
    "     6\tPrivate-Lines: 1\n     7\tAAAAIFp0Xq7yWn3cR8tLmK2vB9dJ5sH1gE4fU6oA3iQzYxTe\n",
    # a CI log whose lines the runner stamped with the time: a key read from a store
    "2024-04-24T17:00:35.5097848Z $ vault kv get -field=password secret/db\n"
    "2024-04-24T17:00:35.6599068Z q8Zr2vLx9mKqWp4T\n",
    # bat: a customer export whose header names an id's column
    "   1   │ customer_id,name,date_of_birth,national_id,segment\n"
    "   2   │ C215059,Lin Chia-Hao,1978/05/04,H163604195,retail\n"
    "   3   │ C315324,Wu Yu-Ting,1988/08/10,A229726326,retail\n",
]


def _unnumbered(line: str) -> str:
    """`line` without the number (or the time stamp) before it, by hand."""
    if line[:4].isdigit() and line[10:11] == "T":
        line = line.split("Z ", 1)[1]
    return line.split("→", 1)[-1].split("\t", 1)[-1].split("│ ", 1)[-1]


@pytest.mark.parametrize("text", NUMBERED)
def test_a_tools_line_numbers_hide_nothing(scanner: Scanner, text: str) -> None:
    """What a rule or a reader finds at a line's start is found there with a tool's line
    numbers before each line, at its own place in the text."""
    plain = "".join(map(_unnumbered, text.splitlines(keepends=True)))
    expected = {f.category for f in scanner.scan(plain)}
    assert expected  # found without the numbers
    found = scanner.scan(text)
    assert {f.category for f in found} >= expected
    for f in found:  # at its own place: never on a line's number
        assert not text[f.span[0] : f.span[1]].lstrip().startswith(("→", "│", "\t"))


@pytest.mark.parametrize(
    "value",
    [
        "base64url-encoded-private-key",
        "YOUR_PRIVATE_KEY_HERE",
        "Base64UrlEncodedPrivateKey",
        "abc123ABC123abc123ABC123",  # a block repeated
        "AbCdEfGhIjKlMnOpQrStUvWxYz",  # the alphabet counted out
        base64.urlsafe_b64encode(b"this is not a real key").decode().rstrip("="),
    ],
)
def test_a_placeholder_is_no_jwk_private_member(scanner: Scanner, value: str) -> None:
    text = f'{{"kty": "EC", "crv": "P-256", "d": "{value}"}}'
    assert "jwk-private-key" not in rule_ids(scanner, text)


def test_a_jwk_private_member_is_a_random_value() -> None:
    rng = random.Random(5)
    values = [_b64url(size, seed=rng.randrange(1 << 30)) for size in (16, 32, 66, 256) * 50]
    assert sum(map(jwk_private_member, values)) >= 0.97 * len(values)


def test_a_token_in_prose_ends_before_the_sentences_full_stop(scanner: Scanner) -> None:
    text = "I rotated it, the API token is Zq8vR3nLw2Tk9xYb7Qm. Please update the CI."
    (finding,) = scanner.scan(text)
    assert text[slice(*finding.span)] == "Zq8vR3nLw2Tk9xYb7Qm"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_utf16_read_as_utf8_is_read_without_its_nuls(scanner: Scanner, encoding: str) -> None:
    """UTF-16 or UTF-32 decoded as if it were UTF-8 puts NULs between the characters; the
    secret still reads to a model (review 27), and its span is the text's own."""
    key_id, secret = "AKIAQ3EGT7XLUMN5BW2K", "Zx9Qw2Er7Ty4Ui1Op6As3Df8Gh5Jk0Lz2Xc7Vb4N"
    env = f"build ok\nAWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}\n"
    text = "a UTF-8 log line\n" * 50 + env.encode(encoding).decode("utf-8")
    (finding,) = scanner.scan(text)
    assert finding.rule_id == "aws-key-pair"
    assert text[finding.span[0] : finding.span[1]].replace("\0", "").startswith(key_id)
    assert scanner.scan("./src/app.py\0./src/util.py\0./README.md\0") == []


def _supabase_jwt(role: str) -> str:
    def part(claims: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    claims = {"iss": "supabase", "ref": "lvgcihhurwxgsgfatemw", "role": role, "iat": 1725813603}
    return (
        f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{run(43, make.ALNUM + '_-', RNG)}"
    )


def test_supabases_anon_key_is_public_by_design_and_its_service_role_key_is_not(
    scanner: Scanner,
) -> None:
    """The documented decision in rules.toml: the anon key ships in every client."""
    for template in ("createClient(url, '{}')", "const supabaseAnonKey = '{}';", "{}"):
        assert "secret" not in categories(scanner, template.format(_supabase_jwt("anon")))
        assert "secret" in categories(scanner, template.format(_supabase_jwt("service_role")))
    publishable = f"createClient(url, 'sb_publishable_{run(32, make.ALNUM, RNG)}')"
    assert "secret" not in categories(scanner, publishable)
    assert "secret" in categories(scanner, f"SUPABASE_KEY=sb_secret_{run(32, make.ALNUM, RNG)}")
