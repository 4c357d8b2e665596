"""The syntax readers and the shape rules: a credential is found in every syntax it is
pasted in, and the look-alikes next to it are not. Every value here is synthetic."""

from __future__ import annotations

import base64
import json
import random
import string
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devpulse import config_from_mapping
from devpulse.plugins.privacy import Scanner, readers
from devpulse.plugins.privacy import scanner as scanner_module
from devpulse.plugins.privacy.checks import credential_name_strength, is_placeholder
from devpulse.plugins.privacy.readers import MAX_CANDIDATES, read_all
from devpulse.plugins.privacy.spans import Reported
from tests.plugins.privacy import secrets_factory as make

RNG = random.Random(13)
ALNUM = string.ascii_letters + string.digits


def pick(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


TOKEN = pick(ALNUM, 32)
PASSWORD = pick(ALNUM, 9) + "#" + pick(ALNUM, 4)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(config_from_mapping({}).privacy)


def secret_spans(scanner: Scanner, text: str) -> list[str]:
    return [text[slice(*f.span)] for f in scanner.scan(text) if f.category == "secret"]


# The same token, named, in the syntaxes the gitleaks rule tests paste it in.
NAMED = [
    f'var deployToken string = "{TOKEN}"',  # Go, typed
    f'deployToken := "{TOKEN}"',
    f'DEPLOY_TOKEN ?= "{TOKEN}"',  # Makefile
    f"DEPLOY_TOKEN ::= {TOKEN}",
    f'DEPLOY_TOKEN :::= "{TOKEN}"',
    f'System.setProperty("DEPLOY_TOKEN", "{TOKEN}");',  # Java
    f'buildConfigField("String", "DEPLOY_TOKEN", "\\"{TOKEN}\\"")',  # Gradle's Kotlin DSL
    f'buildConfigField "String", "DEPLOY_TOKEN", "\\"{TOKEN}\\""',  # Gradle's Groovy
    f"buildConfigField 'String', 'DEPLOY_TOKEN', '\"{TOKEN}\"'",  # in single quotes
    f'$deployToken .= "{TOKEN}";',  # PHP
    f"<deployToken>\n    {TOKEN}\n</deployToken>",  # XML over lines
    f"<deployToken><![CDATA[{TOKEN}]]></deployToken>",  # XML, in a CDATA section
    f'<entry key="deploy.token">\n  <![CDATA[ {TOKEN} ]]>\n</entry>',
    f'{{"app.env": "LOG=1\\nDEPLOY_TOKEN={TOKEN}\\nDEBUG=0"}}',  # INI inside a JSON string
    f'{{"settings": {{"deploy_token": "{TOKEN}"}}}}',  # JSON
    f"deploy:\n  token: {TOKEN}\n",  # YAML
    f"deploy:\n  token: |-\n    {TOKEN}\n",  # YAML, a block scalar
    f"deploy:\n  token: >  # folded\n      {TOKEN}\n  region: eu\n",
    f"stringData:\n  DEPLOY_TOKEN: |2+\n    {TOKEN}\n",
    # a SealedSecret's template, after its encrypted values: in plain text again
    "spec:\n  encryptedData:\n    X: AgBy3i4OJSWK\n"
    f"  template:\n    data:\n      DEPLOY_TOKEN: {TOKEN}\n",
    f'val deployToken: String = "{TOKEN}"',  # Kotlin
    f'  "deployToken" => "{TOKEN}"',  # Ruby, logstash
    f"[server]\napi_key = {TOKEN}\n",  # INI
    f"export DEPLOY_TOKEN={TOKEN}",
    # a paren-less call, its line's one statement: Gradle's Groovy, Chef's resources
    f"signingConfigs {{\n    release {{\n        storePassword '{TOKEN}'\n    }}\n}}",
    f'user "deploy" do\n  deploy_token "{TOKEN}";\nend',
    f"mytool push --deploy-token {TOKEN}",  # a long option
    f"mytool push --api-key='{TOKEN}'",
    f'if ("{TOKEN}" == deployToken) {{',  # the literal first
    f"[INFO] connecting\n[DEBUG] Using Key={TOKEN}\n",
    f'var signingKey = []byte("{TOKEN}")',
    f"$dbpass = '{TOKEN}';",  # run together: dbpass, rootpw, mysqlpwd
    f'MYSQLPWD="{TOKEN}"',
    f"$config['db_password'] = '{TOKEN}';",  # PHP array key
    f"password: ${{DB_PASSWORD:-{TOKEN}}}",  # a shell default, as in docker-compose files
    f"export DEPLOY_TOKEN=${{DEPLOY_TOKEN:={TOKEN}}}",
    f'password: "${{DB_PASSWORD:-{TOKEN}}}"',  # quoted, as docker-compose files have it
    f"password: ${{DB_PASSWORD:{TOKEN}}}",  # a property placeholder's default (Spring)
    f"const token = process.env.DEPLOY_TOKEN ?? '{TOKEN}';",  # a literal fallback
    f'const apiToken = settings.deployToken || "{TOKEN}";',
    f"env:\n  - name: DB_PASSWORD\n    value: {TOKEN}\n",  # Kubernetes
    f'{{"name": "deploy_token", "value": "{TOKEN}"}}',
    f'<property name="jdbc.password" value="{TOKEN}"/>',  # Spring, Ant
    f'<entry key="jdbc.password">{TOKEN}</entry>',  # Java properties as XML
    f'{{"ParameterKey": "DbPassword", "ParameterValue": "{TOKEN}"}}',  # CloudFormation
    f'{{"Parameter": {{"Name": "/prod/db/password", "Type": "SecureString", "Value": "{TOKEN}"}}}}',
    f'{{\n  "Name": "/prod/deploy/token",\n  "Type": "SecureString",\n  "Value": "{TOKEN}"\n}}',
    f"- name: DB_PASSWORD\n  type: secret\n  value: {TOKEN}\n",  # a field between
    f'setx DEPLOY_TOKEN "{TOKEN}" /M',  # Windows
    f"set -gx DEPLOY_TOKEN {TOKEN}",  # fish
    f'DataSource.builder().username("sa").password("{TOKEN}").build();',  # a builder
    f'client.setDeployToken("{TOKEN}");',  # a setter
    f"Client.withToken('{TOKEN}')",
    f'builder.password("{TOKEN}".toCharArray())',  # Java keeps passwords in char[]
    # `terraform output -json`, which prints a sensitive output in the clear
    f'{{\n  "deploy_token": {{\n    "sensitive": true,\n    "type": "string",\n'
    f'    "value": "{TOKEN}"\n  }}\n}}\n',
]


@pytest.mark.parametrize("text", NAMED)
def test_a_named_token_is_found_in_every_syntax(scanner: Scanner, text: str) -> None:
    assert TOKEN in secret_spans(scanner, text)


@pytest.mark.parametrize(
    "text",
    [  # az keyvault secret show: its keys in order, an empty or a flat object between
        f'{{\n  "name": "sql-admin-password",\n  "tags": {{}},\n  "value": "{PASSWORD}"\n}}',
        f'{{"name": "db-password", "tags": {{"env": "prod"}}, "value": "{PASSWORD}"}}',
        f'{{"name": "db-password", "tags": ["a", "b"], "value": "{PASSWORD}"}}',
    ],
)
def test_a_records_named_value_is_read_past_an_object_between(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == [PASSWORD]


def test_a_value_that_is_a_scheme_and_a_token_is_judged_by_the_token(scanner: Scanner) -> None:
    """As a header sends it: the token after a credential's scheme is the finding."""
    key = base64.b64encode(RNG.randbytes(48)).decode()  # a base64 key: / and + within
    assert secret_spans(scanner, f"mailer_token = 'Zoho-enczapikey {key}'") == [key]
    assert secret_spans(scanner, "status_token = 'Token expired'") == []
    assert secret_spans(scanner, "api_token = 'Bearer YOUR_TOKEN'") == []
    # a passphrase whose first word names a credential is still one
    assert secret_spans(scanner, 'db_password = "Secret squirrel42"') == ["Secret squirrel42"]


SCHEME_KEY = base64.b64encode(RNG.randbytes(48)).decode()


@pytest.mark.parametrize(
    "text",
    [
        f'client.setApiToken("Zoho-enczapikey {SCHEME_KEY}");',  # a setter
        f'<add key="ApiToken" value="Zoho-enczapikey {SCHEME_KEY}" />',  # .NET appSettings
        f"define('API_TOKEN', 'Zoho-enczapikey {SCHEME_KEY}');",  # PHP
        f"api_token: |-\n  Zoho-enczapikey {SCHEME_KEY}\n",  # a YAML block scalar
        f'> HGETALL mailer\n1) "api_token"\n2) "Zoho-enczapikey {SCHEME_KEY}"\n',  # redis-cli
    ],
)
def test_a_scheme_and_a_token_is_judged_by_the_token_in_every_syntax(
    scanner: Scanner, text: str
) -> None:
    """Each reader of a quoted value cuts the scheme as the assignment reader does: the
    token is the finding, and a base64 token (+ and / within) is found at all."""
    assert secret_spans(scanner, text) == [SCHEME_KEY]


def test_a_password_named_as_one_keeps_curls_user_a_user(scanner: Scanner) -> None:
    """Only a token's or a key's name for a password makes the user the key (Toggl's)."""
    assert secret_spans(scanner, "curl -u alice.smith2024:passwd https://ci.example.net") == []


@pytest.mark.parametrize(
    "text",
    [
        "Set-Item -Path Env:DB_PASSWORD -Value 'Zr8pQ2vLx9mKq'",
        'New-Item -Path Env:DB_PASSWORD -Value "Zr8pQ2vLx9mKq"',
        "set-item env:DB_PASSWORD 'Zr8pQ2vLx9mKq'",
        'SetEnv DB_PASSWORD "Zr8pQ2vLx9mKq"',  # Apache
        "setenv DB_PASSWORD Zr8pQ2vLx9mKq",  # csh
        'set(DB_PASSWORD "Zr8pQ2vLx9mKq" CACHE STRING "")',  # CMake
    ],
)
def test_an_environment_variable_set_by_a_command_is_read(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == ["Zr8pQ2vLx9mKq"]


SETTING_TABLES = [
    # vault kv get
    "====== Data ======\nKey         Value\n---         -----\n"
    "credential  UEkGXBmuEDK8TgZcBjbGvmMxg6J1TUXSPkNilD66\nowner       platform-team\n",
    # doppler secrets
    "┌─────────────┬──────────────────────────────────────┐\n"
    "│ NAME        │ VALUE                                │\n"
    "├─────────────┼──────────────────────────────────────┤\n"
    "│ DOPPLER_ENV │ prd                                  │\n"
    "│ DPO_APIKEY  │ 98CB9421-540D-4A3D-90C3-4283248C23B6 │\n"
    "└─────────────┴──────────────────────────────────────┘\n",
    # psql
    " name           | value\n----------------+---------------\n"
    " smtp_password  | Zr8pQ2vLx9mKq\n(1 row)\n",
    # gh variable list
    "NAME       VALUE    UPDATED\nINFORMIX_PASSWORD  Violet2014.juniper  about 3 days ago\n",
    # MediaWiki's own settings ($wg...)
    "{|\n! Setting !! Value\n|-\n| $wgSitename || Acme Wiki\n|-\n"
    "| $wgDBpassword || S3cr3tPassw0rd\n|}\n",
    # a row with no value, then one in a double code span (review 18: the reading stopped)
    "| Key | Value |\n|---|---|\n| region | |\n| smtp_password | ``Zr8pQ2vLx9mKq`` |\n",
    # markdown's code spans around the name and the value
    "| Setting | Value | Owner |\n|---|---|---|\n| `SMTP_URL` | https://mail.example | ops |\n"
    "| `SMTP_PASSWORD` | `Raven1993.canyon` | ops |\n",
    # a person's password under a name that says nothing (compass: no pass word)
    " name | value\n------+-------\n risingwave.compass | Mosaic1983!juniper\n(1 row)\n",
    # a MediaWiki table, the value as code
    '{| class="wikitable"\n! Setting !! Value !! Notes\n|-\n| endpoint || https://hooks.example '
    "|| EU\n|-\n| client_key || <code>hs_5b97cf5fa0ac57255359</code> || ops rota\n|}\n",
    # other columns before the name's
    "| Service | Env | Variable | Value |\n|---|---|---|---|\n"
    f"| Metrics | prod | `METRICS_API_KEY` | `{pick('0123456789abcdef', 32)}` |\n",
    f"Service | Name | Value\nmailer | SMTP_PASSWORD | {PASSWORD}\n",
]


@pytest.mark.parametrize("text", SETTING_TABLES)
def test_a_credential_in_a_settings_table_is_found(scanner: Scanner, text: str) -> None:
    assert "table-credential" in {f.rule_id for f in scanner.scan(text)}


@pytest.mark.parametrize(
    "text",
    [
        "Key         Value\n---         -----\npassword    <sensitive>\ntoken_ttl   768h\n",
        "Name value pairs hold the settings.\nThe token is rotated weekly.\n",
        "$ vercel env ls\n name                 value      environments\n"
        " STRIPE_SECRET        Encrypted  Production, Preview\n",
        # review 17: a path, a .NET type's name, a list, an algorithm, an accessor, a key id
        "Name          Value\n----          -----\n"
        "GIT_ASKPASS   C:\\Program Files\\Git\\mingw64\\bin\\git-askpass.exe\n"
        "Credential    System.Management.Automation.PSCredential\n",
        "Key              Value\n---              -----\n"
        'token_accessor   JiKsoT4lH0Jg2kNuyKR5Gktd\ntoken_policies   ["default"]\n',
        " name                | value\n---------------------+---------------\n"
        " password_encryption | scram-sha-256\n",
        "│ NAME            │ VALUE        │\n│ SIGNING_KEY_KID │ 5b2e7c1d9a8f │\n",
        "| Key | Value |\n|-----|-------|\n| region | eu-west-1 |\n| key_id | 7 |\n",
        "! Setting !! Value\n|-\n| region || <code>eu-west-1</code>\n|-\n| token_ttl || 768h\n|}\n",
        # a rule for passwords, a build's tag: a password's look under a name that says what
        " name | value\n------+-------\n password_policy | Min8!chars\n build_tag | Rel2024!rc1\n",
        # other columns before the name's: a password's name in the first is not the row's
        "| Service | Variable | Value |\n|---|---|---|\n| Metrics | METRICS_SITE | eu.example |\n"
        "| password | METRICS_REGION | eu-west-1 |\n",
    ],
)
def test_a_settings_table_with_no_credential_is_none(scanner: Scanner, text: str) -> None:
    assert scanner.scan(text) == []


def test_a_wiki_settings_row_after_an_empty_one_is_read_without_its_quotes(
    scanner: Scanner,
) -> None:
    text = (
        "{|\n! Setting !! Value\n|-\n| wgLogo ||\n|-\n"
        '| wgDBpassword || "S3cr3tPassw0rd" || the DB user\n|}\n'
    )
    assert secret_spans(scanner, text) == ["S3cr3tPassw0rd"]


def test_a_credential_in_an_sql_settings_table_is_found_by_its_rows_name(
    scanner: Scanner,
) -> None:
    key = "fbf6dc18b554b71fcd55db72ad5d9002c0f4be5005fd62e82d3c57583834c4aa"
    text = (
        "INSERT INTO integration_settings (provider, name, value, updated_at)\n"
        f"VALUES ('peertube', 'endpoint', 'https://tube.example', now()),\n"
        f"       ('peertube', 'apikey', '{key}', now());\n"
    )
    assert secret_spans(scanner, text) == [key]


@pytest.mark.parametrize(
    "text",
    [
        # SQL Server's N'...' strings (review 18)
        "INSERT INTO [dbo].[Settings] ([Name],[Value])"
        " VALUES (N'SmtpPassword', N'Mosaic1983!juniper')",
        # a person's password under a name that says nothing, as a psql row takes it
        "INSERT INTO settings (name, value) VALUES ('compass', 'Mosaic1983!juniper');",
    ],
)
def test_an_sql_settings_rows_password_is_found(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == ["Mosaic1983!juniper"]


@pytest.mark.parametrize(
    "text",
    [
        'password = "ab\ud800cdefgh"',  # review 18: the value's own checks encoded it
        "api_key: x\ud800yz12345678",
        "routing_key = 'Ab\ud800cdEfgh1234567890abcdefgh12'",
        "user.signingkey = 3AA5C343\ud800",
    ],
)
def test_a_lone_surrogate_in_a_named_value_is_read_not_raised(scanner: Scanner, text: str) -> None:
    assert all(0 <= f.span[0] < f.span[1] <= len(text) for f in scanner.scan(text))


@pytest.mark.parametrize(
    "text",
    [
        "{|\n! Setting !! Value\n|-\n| co\ud800mpass || x\n|}",
        "| Key | Value |\n|---|---|\n| co\ud800mpass | x |\n",
    ],
)
def test_a_lone_surrogate_in_a_settings_rows_name_is_read_not_raised(
    scanner: Scanner, text: str
) -> None:
    assert scanner.scan(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO metrics (name, value, ts) VALUES ('cpu_load', '0.93', now()),"
        " ('token_count', '118234', now());",
        "INSERT INTO wp_options (option_name, option_value) VALUES"
        " ('siteurl', 'https://blog.example'), ('auth_key_rotation', 'weekly');",
        "INSERT INTO settings (key, value) VALUES ('runner', 'm9Ywr3GYOUzbTieC');",
    ],
)
def test_an_sql_settings_table_with_no_credential_is_none(scanner: Scanner, text: str) -> None:
    assert "secret" not in {f.category for f in scanner.scan(text)}


def test_a_sealed_secrets_values_are_none_however_many(scanner: Scanner) -> None:
    rng = random.Random(17)
    rows = "".join(
        f"    KEY_{i}_PASSWORD: {base64.b64encode(rng.randbytes(520)).decode()}\n"
        for i in range(40)
    )
    text = f"kind: SealedSecret\nspec:\n  encryptedData:\n{rows}  template:\n    type: Opaque\n"
    assert scanner.scan(text) == []


@pytest.mark.parametrize(
    "text",
    [
        'set(API_TOKEN "$ENV{API_TOKEN}")',  # CMake's environment, Perl's too
        "my $token = $ENV{API_TOKEN} // die 'API_TOKEN not set';",
        "Set-Item -Path Env:AWS_SESSION_TOKEN -Value $creds.SessionToken",  # a member
        '"adminPasswordOrKey": {"value": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7gr8Y user@host"}',
    ],
)
def test_a_lookup_or_a_public_key_under_a_credentials_name_is_none(
    scanner: Scanner, text: str
) -> None:
    assert "secret" not in {f.category for f in scanner.scan(text)}


def test_a_terraform_outputs_password_is_found(scanner: Scanner) -> None:
    text = (
        '$ terraform output -json\n{\n  "db_password": {\n    "sensitive": true,\n'
        '    "type": "string",\n    "value": "Zr8pQ2vLx9mKq"\n  }\n}\n'
    )
    assert secret_spans(scanner, text) == ["Zr8pQ2vLx9mKq"]


@pytest.mark.parametrize(
    "text",
    [
        '{"deploy_token": {"sensitive": true, "type": "string", "value": "<sensitive>"}}',
        '{"vpc_id": {"sensitive": false, "type": "string", "value": "vpc-0a1b2c3d4e5f67890"}}',
        '{"api_key_name": {"sensitive": false, "type": "string", "value": "prod-reporting"}}',
    ],
)
def test_terraform_outputs_that_hold_no_credential_are_none(scanner: Scanner, text: str) -> None:
    assert scanner.scan(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "api-auth-applicationkey: 9f3c2a7b-1e8d-4c6f-9a0b-2c3d4e5f6a7b",  # Cin7's header
        "DD_APPLICATION_KEY=9f3c2a7b1e8d4c6f9a0b2c3d4e5f6a7b",  # Datadog's
    ],
)
def test_an_application_key_is_a_credentials_name(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == [text.rsplit(maxsplit=1)[-1].rsplit("=", maxsplit=1)[-1]]


def test_a_build_config_fields_expression_is_no_literal(scanner: Scanner) -> None:
    assert secret_spans(scanner, 'buildConfigField("String", "API_KEY", "\\"${apiKey}\\"")') == []


@pytest.mark.parametrize(
    "template",
    [
        "process.env.DEPLOY_TOKEN ??= '{0}';",  # JavaScript's and PHP's assignment if unset
        "$this->dbPassword ??= '{0}';",
        '@db_password ||= "{0}"',  # Ruby's
    ],
)
@pytest.mark.parametrize("value", ["Tundra-Summit-7117$", "7b2be628d067c94ba008095d8a11335d"])
def test_an_assignment_if_unset_binds_its_value(
    scanner: Scanner, template: str, value: str
) -> None:
    assert value in secret_spans(scanner, template.format(value))


@pytest.mark.parametrize(
    "text",
    [
        "token ||= fallback_token",  # a variable, not a literal
        "$this->apiKey ??= getenv('API_KEY');",  # a call
    ],
)
def test_an_assignment_if_unset_of_code_is_none(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == []


# Declarations in compiled languages: a type, a reference or an array between the name and
# the value, a conversion with a path, the preprocessor's #define.
TYPED = [
    f'const API_SECRET: &str = "{TOKEN}";',  # Rust
    f'static API_TOKEN: &\'static str = "{TOKEN}";',
    f'let password = String::from("{PASSWORD}");',
    f'let password = std::string::String::from("{PASSWORD}");',
    f'char password[] = "{PASSWORD}";',  # C
    f'static const char api_key[33] = "{TOKEN}";',
    f'#define WIFI_PASSWORD "{PASSWORD}"',
    f'#  define WIFI_PASSWORD "{PASSWORD}"',
    f'public string ApiKey {{ get; set; }} = "{TOKEN}";',  # C#'s auto-property
    f'public static string Password {{ get; private set; }} = "{PASSWORD}";',
]


@pytest.mark.parametrize("text", TYPED)
def test_a_typed_declaration_in_a_compiled_language_is_read(text: str) -> None:
    values = [f.value for f in read_all(text.encode())]
    assert values in ([TOKEN], [PASSWORD])


@pytest.mark.parametrize(
    "text",
    [
        "#define PASSWORD_MAX_LEN 64",  # a name that describes one
        "#define TOKEN_FOO(x) x",  # a macro with arguments
        "char password[64];",
        "password[0] = 'a';",
        "let password = String::new();",  # a call, not a literal
        'let token = env::var("API_TOKEN").unwrap();',
        'let env0_client_secret = std::env::var("ENV0_CLIENT_SECRET").expect("must be set");',
        "public string Password { get; set; } = string.Empty;",
        'const PASSWORD_FIELD: &str = "password";',
        "const accessToken = session?.access_token;",  # optional chaining: a property
        # a lookup by the literal's name: the literal is a key, not the value
        'let token = headers.get("Authorization").unwrap();',
        'const secret = config.get("Production")',
        'api_key = os.getenv("OPENAI_API_KEY_PROD_7Xq2")',
        'String dbPassword = props.getProperty("db.password.Prod2");',
        'token = request.headers.get_one("X-Auth-Token9")',
        # a subscript by a name (Ruby's symbol, a string key): where the value is kept
        "Stripe.api_key = Rails.configuration.stripe[:secret_key]",
        "api_key = Rails.application.credentials[:stripe][:secret_key]",
        'password = cfg.database["password"]',
    ],
)
def test_declarations_that_bind_no_literal_are_not_read(text: str) -> None:
    assert read_all(text.encode()) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("spring.datasource.password=t8$o0Ay$l&bT", "t8$o0Ay$l&bT"),
        ("DB_PASSWORD=abc&def123XY\nDB_NAME=shop", "abc&def123XY"),
        ("password = 7WZf9c_&R5N1x&&q\n", "7WZf9c_&R5N1x"),  # `&&` ends it
        # a URL's query: the next parameter is not the value's
        ("?token=Xq9v2LmP8rT4&remember&state=x1", "Xq9v2LmP8rT4&remember"),
    ],
)
def test_an_ampersand_in_an_unquoted_value_is_its_own(text: str, value: str) -> None:
    """In a .env or .properties file `&` is a character of the value; in a query it starts
    the next parameter, which has a name and `=`."""
    assert [f.value for f in read_all(text.encode())] == [value]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("callback: myauth://login.example/cb?api_token=Qm8xRt2Vw9Lp3KzT7b", "Qm8xRt2Vw9Lp3KzT7b"),
        ("redirect_uri=keycloak-auth://realm/x?client_secret=Zq7PwL3mXr9TbK2v", "Zq7PwL3mXr9TbK2v"),
        ("see otpauth://totp/ACME:bob?issuer=ACME", None),
        # 60 bits: too short a seed for otp-seed, but random, and named a secret
        ("otpauth://totp/x?secret=K7QX2M5RWZ4P&issuer=x", "K7QX2M5RWZ4P"),
    ],
)
def test_a_url_whose_scheme_names_a_credential_is_no_assignment(
    text: str, value: str | None
) -> None:
    """`otpauth://`: a scheme, its colon and `//`, not a name, an operator and a value. The
    query's own parameters are read (before, the whole URL was the scheme's value, turned
    down with its name), and a flood of such URLs no longer spends the budget of names
    passed over."""
    assert [f.value for f in read_all(text.encode())] == ([] if value is None else [value])


def test_a_query_parameter_after_an_ampersand_is_not_the_value() -> None:
    assert all(b"&" not in f.value.encode() for f in read_all(b"?pwd=Zq8xW2mLp9&user=bob"))


@pytest.mark.parametrize(
    "text",
    [
        "PGPASSWORD=copper54copper psql -h db.internal -U app",
        "$ MYSQL_PWD=copper54copper mysql -u root",
        "env API_TOKEN=copper54copper ./deploy.sh --prod",
        "FOO=1 DB_PASSWORD=copper54copper make migrate",
        "build && sudo DB_PASS=copper54copper /usr/bin/backup",
    ],
)
def test_a_variable_set_for_one_command_is_read(text: str) -> None:
    """The shell's `NAME=value command`: the value is the word before the command."""
    assert [f.value for f in read_all(text.encode())] == ["copper54copper"]


@pytest.mark.parametrize(
    "text",
    [
        "PASSWORD=required by the form",  # the word is judged as any value is
        "PGPASSWORD=$PGPASS psql -h db",  # an expansion
        "echo db_password=copper54copper is wrong",  # a lower-case name: no variable
    ],
)
def test_what_sets_no_credential_for_a_command_is_not_read(text: str) -> None:
    assert read_all(text.encode()) == []


@pytest.mark.parametrize(
    "text",
    [
        f'token = String::from("{TOKEN}")',
        f'password := []byte("{TOKEN}")',
        f'api_key = SecretStr("{TOKEN}")',
        f'const token = Buffer.from("{TOKEN}")',
    ],
)
def test_a_literal_converted_by_a_call_is_still_the_value(text: str) -> None:
    assert {f.value for f in read_all(text.encode())} == {TOKEN}


COMMANDS = [
    f"curl -H 'Authorization: Basic {base64.b64encode(f'ci:{PASSWORD}'.encode()).decode()}' x",
    f'curl -H "Authorization: Api-Token {TOKEN}" https://api.example.net',
    f"curl -H Authorization:Bearer\\ {TOKEN} https://api.example.net",  # the blank escaped
    f'curl -X GET -H "apikey: {TOKEN}" https://api.example.net',
    "curl -u ci@acme.example:cc9633552612f61f0d2a7b0f06632221b5 https://api.example.net",
    # a HAR's or a Postman collection's header: a bare UUID is what Authorization sends
    '{ "name": "Authorization", "value": "8b0f922f-cb16-485a-853b-5d7e23121365" }',
    f'curl --header "X-Auth-Token: {TOKEN}" https://api.example.net',
    f'curl -u ":{PASSWORD}" https://search.example.net:9200',
    f"curl --user deploy:'{PASSWORD}' https://ci.example.net",
    f"curl https://ci.example.net \\\n\t-u deploy:{PASSWORD}",  # after a tab
    f"-u deploy:{PASSWORD}",  # at the start
    f'curl -u "{TOKEN}:" https://api.example.net/v1/charges',  # an API key as the user
    f"curl -v -u {TOKEN}:X https://acme.freshdesk.com/api/v2/tickets",  # and a dummy X
    f"curl -u {TOKEN}:api_token https://api.track.toggl.com/api/v9/me",  # or what it is
    # .netrc, one entry a line or one a file's lines
    f"machine api.wandb.ai login user password {TOKEN.lower()}",
    f"cat >> ~/.netrc <<EOF\nmachine api.heroku.com\n  login ops@example.net\n"
    f"  password {TOKEN}\nEOF",
    # httpie's header, a vendor's own scheme, no blank after the colon
    "http GET https://api.eu.opsgenie.com/v2/alerts "
    f"'Authorization:GenieKey {uuid.UUID(int=RNG.getrandbits(128))}'",
    f'curl -H "Authorization: DeepL-Auth-Key {TOKEN}:fx" https://api.deepl.com/v2/usage',
    f"curl --oauth2-bearer '{TOKEN}' https://api.example.net/v1/me",  # curl's own option
    f"jdbc:sqlserver://db.example.net:1433;databaseName=app;user=sa;password={PASSWORD};",
    f"jdbc:postgresql://db.example.net/app?user=svc&password={PASSWORD}&ssl=true",
    f"cache.redis.cache.windows.net:6380,password={TOKEN}=,ssl=True,abortConnect=False",
    f"redis://:{PASSWORD}@cache.example.net:6379/0",
    f"postgres://svc:{PASSWORD}@db.example.net:5432/app",
    f"REDIS_URL=redis://default:{PASSWORD}@cache.example.net:6379",
    f"//registry.npmjs.org/:_authToken={RNG.randbytes(16).hex()[:8]}-4cd0-11ec-9d64-0242ac120002",
    # Yarn's .yarnrc.yml: a registry's "user:password" in base64
    'npmRegistryServer: "https://acme.jfrog.io/artifactory/api/npm/npm/"\n'
    f'npmAuthIdent: "{base64.b64encode(f"deployer:{PASSWORD}".encode()).decode()}"',
    f"redis-cli -h cache.example.net -p 6380 -a {PASSWORD} ping",
    f"CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}';",
    f"GRANT ALL ON app.* TO 'app'@'%' IDENTIFIED WITH mysql_native_password BY '{PASSWORD}';",
    f"sqlcmd -S db.example.net -U sa -P {PASSWORD}",
    f'CREATE USER scott IDENTIFIED BY "{PASSWORD}";',  # Oracle: double-quoted or bare
    f"ALTER USER scott IDENTIFIED BY {TOKEN};",
    f"# slapd.conf\nrootpw {PASSWORD}\n",  # a directive, then a blank, then the password
    f"rootpw --plaintext {PASSWORD}",  # kickstart
    f"requirepass {TOKEN}",  # redis.conf
    f"Cookie: _ga=GA1.2.1234567890.1700000000; JSESSIONID={TOKEN}; theme=dark",
    f"Set-Cookie: connect.sid=s%3A{TOKEN}; Path=/; HttpOnly",
    f'curl --cookie "PHPSESSID={TOKEN}" https://app.example.net',
    f'$p = ConvertTo-SecureString "{PASSWORD}" -AsPlainText -Force',
    f'requests.get(url, auth=("admin", "{PASSWORD}"))',
    f'"{PASSWORD}" | ConvertTo-SecureString -AsPlainText -Force',  # PowerShell, piped
    f"openssl enc -aes-256-cbc -in backup.tar -out backup.enc -k {PASSWORD}",
    f"openssl pkcs12 -export -in c.pem -out c.p12 -passout pass:{PASSWORD}",
    f"ssh-keygen -t ed25519 -N '{PASSWORD}' -f ~/.ssh/deploy",
    f"zip -P {PASSWORD} reports.zip q3.pdf",
    f'ldapsearch -x -D "cn=admin,dc=example,dc=net" -w {PASSWORD} -b "dc=example,dc=net"',
    f"vault login s.{TOKEN[:24]}",
    f"htpasswd -b -c /etc/nginx/.htpasswd admin {PASSWORD}",
    f"htpasswd -nb admin {PASSWORD}",
    f"net use Z: \\\\files\\share /user:CORP\\svc_backup {PASSWORD}",
    f"smbclient //files/share -U admin%{PASSWORD}",
    f"echo '{PASSWORD}' | sudo -S apt-get update",  # read from stdin
    f'echo "{PASSWORD}" | docker login --username ci --password-stdin registry.example.net',
    f"echo 'root:{PASSWORD}' | chpasswd",
    f"mysqldump -u backup -p'{PASSWORD}' --single-transaction app",  # -p, attached
    f"sshpass -p '{PASSWORD}' ssh deploy@build.example.net",  # -p and a blank, after these
    f"plink -ssh deploy@build.example.net -pw {PASSWORD} uptime",  # PuTTY's -pw
    f'pscp.exe -pw "{PASSWORD}" backup.tar deploy@build.example.net:/srv',
    f"docker login -u ci -p {PASSWORD} registry.example.net",
    f"npx ovsx publish -p {TOKEN} --packagePath ext.vsix",
    f"mongosh mongodb://db.example.net/app -u admin -p {PASSWORD}",
    f"/opt/mssql-tools18/bin/sqlcmd -S localhost -U SA -P '{PASSWORD}'",  # a tool's path
    f'sh -c "redis-cli -a {PASSWORD} ping"',
    f'echo "admin:{PASSWORD}" | sudo chpasswd',
    f"$(vault login -token-only s.{TOKEN[:24]})",
    f"/usr/local/bin/vault login s.{TOKEN[:24]}",
    f"/usr/bin/htpasswd -bc /etc/nginx/.htpasswd admin {PASSWORD}",
    f"docker login registry.example.net -u ci -p {PASSWORD}",  # the server first
    f"db.example.net:5432:app:svc:{PASSWORD}",  # ~/.pgpass
    f"*:*:*:postgres:{PASSWORD}",
    f"net use Z: \\\\files\\share {PASSWORD} /user:CORP\\svc_backup",  # before the user
    f'net use \\\\10.1.2.3\\c$ "{PASSWORD}"',
    f"nxc smb 10.1.2.0/24 -u administrator -p '{PASSWORD}' --local-auth",  # protocol, target
    f"evil-winrm -i dc01.corp.example.net -u svc_sql -p {PASSWORD}",
    f"hydra -l admin -p {PASSWORD} ssh://10.1.2.3",
    f"xfreerdp /v:10.1.2.3 /u:admin /p:{PASSWORD} /cert:ignore",
    f"impacket-psexec corp.example.net/admin:{PASSWORD}@10.1.2.3",
    f"python3 secretsdump.py 'corp/admin:{PASSWORD}@dc01.corp.example.net'",
    f"vault login -method=token token=s.{TOKEN[:24]}",
    f"printf '%s' '{PASSWORD}' | docker login --username ci --password-stdin",
    f"printf '{PASSWORD}\\n' | sudo -S apt update",  # the escaped line end is not in it
    f"docker run -e POSTGRES_PASSWORD={TOKEN} -d postgres:16",  # a value, then options
    f"helm install app ./chart --set db.password={TOKEN} -f values.yaml",
    # the first -p is the password, whatever -p comes later
    f'nxc ssh 10.1.2.3 -p {PASSWORD} -u root -x "mkdir -p /tmp/loot"',
    f'sshpass -p {PASSWORD} ssh deploy@web01 "mkdir -p /srv/app/releases"',
    f"impacket-GetUserSPNs corp.example.net/svc:{PASSWORD}@10.1.2.3 -request",
    f"impacket-psexec corp.example.net/admin:P@{PASSWORD}@10.1.2.3",  # an @ in it
    f"NET USE Z: \\\\fs01\\share /USER:CORP\\svc {PASSWORD}",
    f"sshpass -p '!{TOKEN[:10]}!' ssh deploy@web01",  # ! and % around a password
    f"net use \\\\srv\\share !QAZ2wsx{TOKEN[:6]}",
    f"net use \\\\srv\\share {PASSWORD}>nul 2>&1",  # a redirection right after it
    f"echo 'Pa\\ss{TOKEN[:8]}' | sudo -S ls",  # a backslash inside
    # a transcript as one JSON line: an earlier mention of the tool, far from the option
    '{"messages": [{"role": "user", "content": "I ran gzip -d logs.gz\\n'
    + "The quick brown fox jumps over the lazy dog. " * 60
    + f'\\nthen unzip -P {PASSWORD} backup.zip"}}]}}',
]


@pytest.mark.parametrize("text", COMMANDS)
def test_credentials_in_commands_and_urls(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text)


def test_a_long_options_value_ends_before_the_brackets_that_close_around_it() -> None:
    text = f'export ACME="$(acme-cli mint --api-key={PASSWORD})"'
    assert {f.value for f in read_all(text.encode())} == {PASSWORD}


def test_a_long_options_dotted_name_is_read() -> None:
    key = pick("0123456789ABCDEF", 32)
    text = f"ttn-lw-cli end-devices create a d --root-keys.app-key.key {key} --lorawan-version 1"
    assert {f.value for f in read_all(text.encode())} == {key}


def test_lorawan_session_keys_in_a_markdown_table_are_found(scanner: Scanner) -> None:
    nwk, app = pick("0123456789ABCDEF", 32), pick("0123456789ABCDEF", 32)
    text = (
        "| device | DevAddr | NwkSKey | AppSKey |\n|---|---|---|---|\n"
        f"| trk-041 | 260B0BAA | {nwk} | {app} |\n"
    )
    assert set(secret_spans(scanner, text)) == {nwk, app}


KEY_BYTES = [RNG.randrange(256) for _ in range(16)]


def _bytes(form: str) -> str:
    return ", ".join(form.format(b) for b in KEY_BYTES)


@pytest.mark.parametrize(
    "text",
    [
        f"static const u1_t PROGMEM APPKEY[16] = {{ {_bytes('0x{:02X}')} }};",  # LMIC
        f"uint8_t aes_key[] = {{\n  {_bytes('0x{:02x}')}\n}};",
        f"const KEY: [u8; 16] = [{_bytes('0x{:02x}')}];",  # Rust
        f"key := []byte{{{_bytes('0x{:02x}')}}}",  # Go
        f"SECRET_KEY = bytes([{_bytes('0x{:02x}')}])",  # Python
        f"advanced:\n  network_key: [{_bytes('{}')}]",  # zigbee2mqtt's YAML
        f'{{"networkKey": [{_bytes("{}")}]}}',
    ],
)
def test_a_key_written_as_its_bytes_is_found(scanner: Scanner, text: str) -> None:
    assert [f.rule_id for f in scanner.scan(text) if f.category == "secret"] == ["byte-array-key"]


def test_a_long_key_written_as_its_bytes_is_found_whole(scanner: Scanner) -> None:
    """Review 41: a 64-byte key one number a line outgrew the parsed match's start, and
    the finding held only its first numbers: a redaction left the rest in the clear."""
    numbers = ",\n    ".join(f"0x{RNG.randrange(256):02x}" for _ in range(64))
    text = f"static const uint8_t SIGNING_KEY[64] = {{\n    {numbers}\n}};\n"
    (finding,) = [f for f in scanner.scan(text) if f.rule_id == "byte-array-key"]
    assert text[finding.span[0] : finding.span[1]] == numbers


@pytest.mark.parametrize(
    "text",
    [
        # a table of 256 (an S-box, a CRC table) and a list that goes past a byte
        "static const uint8_t sbox_key[256] = { "
        + ", ".join(f"0x{(b * 7 + 99) % 256:02x}" for b in range(256))
        + " };",
        "key = [" + ", ".join(str(RNG.randrange(256)) for _ in range(40)) + ", 300, 4096]",
        # counted out (RFC 8439's test key, 00 01 ... 1f); small numbers: lengths, scores
        "secret_key = [" + ", ".join(f"0x{b:02x}" for b in range(32)) + "]",
        "token_lengths = [" + ", ".join(str(RNG.randrange(100)) for _ in range(20)) + "]",
    ],
)
def test_lists_of_numbers_that_are_no_key_under_a_keys_name(scanner: Scanner, text: str) -> None:
    assert "byte-array-key" not in {f.rule_id for f in scanner.scan(text)}


@pytest.mark.parametrize(
    "text",
    [
        "static const u1_t PROGMEM APPEUI[8] = { 0x70, 0xB3, 0xD5, 0x7E, 0xD0, 0x01, 0x2A, 0x3C };",
        "static const u1_t PROGMEM APPKEY[16] = { " + ", ".join(["0x00"] * 16) + " };",
        "key := []byte{" + ", ".join(f"0x{b:02x}" for b in range(16)) + "}",  # a count
        "network_key: [1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 13]",  # the default
        '"tc_link_key": {"key": [' + ", ".join(str(b) for b in b"ZigBeeAlliance09") + "]}",
        # NIST SP 800-38A's example key
        "key = [0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88,"
        " 0x09, 0xcf, 0x4f, 0x3c]",
        "key_codes = [" + ", ".join(str(300 + b) for b in KEY_BYTES) + "]",  # not bytes
        "keys = [" + ", ".join(str(b) for b in KEY_BYTES[:8]) + "]",  # too few
    ],
)
def test_a_list_of_numbers_that_is_no_key_is_none(scanner: Scanner, text: str) -> None:
    assert not secret_spans(scanner, text)


PERSONS = "Quartz*1992"  # a person's password, not a machine's: a bare one must end its line


@pytest.mark.parametrize(
    "text",
    [
        # a JVM's or Gradle's property: the value is the word, whatever follows on the line
        f"  -Dgateway.p12.pass={PERSONS} (from JAVA_TOOL_OPTIONS)",
        f"gradle -PsigningPassword={PERSONS} assembleRelease",
        # Basic credentials with no header's name: Django's debug page's META table
        "HTTP_AUTHORIZATION\t'Basic " + base64.b64encode(b"reporting:Lantern#88").decode() + "'",
        "auth = 'Basic " + base64.b64encode(b"svc:Lantern#88").decode() + "'",
    ],
)
def test_a_credential_in_a_command_word_or_basic_scheme_is_found(
    scanner: Scanner, text: str
) -> None:
    assert secret_spans(scanner, text)


@pytest.mark.parametrize(
    "table",
    [
        # a credential manager's listing: one clear password among masked ones
        "Target                 User            Password\n"
        "---------------------  --------------  ----------------\n"
        "TERMSRV/jump01.lan     CORP\\adm-ab    ********\n"
        "TERMSRV/dc23.lan       CORP\\adm-at     {value}\n",
        # PowerShell's Format-Table, SQL*Plus
        "Name      Password\n----      --------\nsvc_app   {value}\n",
        "USERNAME   PASSWORD\n---------- --------------------\nSCOTT      {value}\n",
        # a row with East Asian wide characters: a terminal shows each in two columns
        "Name      Password\n----      --------\n日本語    {value}\n",
    ],
)
def test_a_credential_in_a_column_set_by_dashes_is_found(scanner: Scanner, table: str) -> None:
    value = "otter-cobalt-lagoon-58"
    assert secret_spans(scanner, table.format(value=value)) == [value]


@pytest.mark.parametrize(
    "table",
    [
        "USERNAME   ACCOUNT_STATUS   PASSWORD_VERSIONS\n---------- ---------------- -----------\n"
        "SCOTT      OPEN             11G 12C\n",  # what the column holds is no password
        "Name      Password\n----      --------\nsvc_app   ********\nweb       <not set>\n",
    ],
)
def test_a_column_set_by_dashes_without_a_credential_is_none(scanner: Scanner, table: str) -> None:
    assert secret_spans(scanner, table) == []


def test_an_ini_section_named_for_passwords_gives_each_entrys_value(scanner: Scanner) -> None:
    """MobaXterm's [Passwords]: each entry named for what it unlocks."""
    text = (
        "[Bookmarks]\nSubRep=\n\n[Passwords]\n"
        "root@db06.corp.example=BJAICPcVFJPFbkvx1x9jBvQHGcIXOkCjTYHlj+N2dK1s=\n"
        "ssh22:root@10.98.64.27=harbor-quartz-badger-24\n"
    )
    assert secret_spans(scanner, text) == [
        "BJAICPcVFJPFbkvx1x9jBvQHGcIXOkCjTYHlj+N2dK1s=",
        "harbor-quartz-badger-24",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "[credential]\n\thelper = store\n\tusername = jdoe\n",  # git's: how, and who
        "[Secrets]\nuser = admin\nurl = https://vault.corp.example\n; api = Lantern#88x\n",
    ],
)
def test_a_credentials_sections_other_entries_are_none(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == []


def test_azure_storage_keys_in_json_and_xml(scanner: Scanner) -> None:
    key = pick(ALNUM + "+/", 86) + "=="
    for text in (
        f"const azureStorageKey = '{key}';",  # quoted in code
        f"'azure_storage_key' => '{key}',",  # PHP's array
        f'{{"accountName": "acct", "accountKey": "{key}"}}',
        f"<AccountKey>{key}</AccountKey>",
        f"export AZURE_STORAGE_KEY={key}",  # the az CLI's variable
        f'<add key="StorageKey" value="{key}" />',  # .NET appSettings
        f'"storageAccessKey": "{key}"',
    ):
        assert key in secret_spans(scanner, text)


def _b32ish(n: int) -> str:
    return pick("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", n)


SHAPES = [
    ("age-secret-key", "AGE-SECRET-KEY-1" + _b32ish(58)),
    ("dynatrace-api-token", f"dt0c01.{pick(ALNUM, 24)}.{pick(ALNUM, 64)}"),
    ("mapbox-token", f"pk.{pick(string.ascii_lowercase + string.digits, 60)}.{pick('abc123', 22)}"),
    ("telegram-bot-token", f"{RNG.randrange(10**8, 10**9)}:A{pick(ALNUM + '_-', 34)}"),
    ("artifactory-token", "AKCp" + pick(ALNUM, 69)),
    ("atlassian-api-token", "ATATT3" + pick(ALNUM + "_-", 186)),
    ("mailchimp-api-key", pick("0123456789abcdef", 32) + "-us14"),
    ("sonarqube-token", "sqp_" + pick("0123456789abcdef", 40)),
    ("clojars-token", "CLOJARS_" + pick("0123456789abcdef", 60)),
    ("mailgun-api-key", "key-" + pick("0123456789abcdef", 32)),
    ("vault-token", "hvs." + pick(ALNUM + "_-", 95)),
    ("vault-token", "hvs." + pick(ALNUM, 24)),  # a dev server's, and its root token's children
    ("discord-bot-token", f"N{pick(ALNUM, 23)}.{pick(ALNUM, 6)}.{pick(ALNUM, 27)}"),
    ("llm-provider-key", "sk-or-v1-" + pick("0123456789abcdef", 64)),  # OpenRouter
    ("llm-provider-key", "gsk_" + pick(ALNUM, 52)),  # Groq
    ("llm-provider-key", "r8_" + pick(ALNUM, 37)),  # Replicate
    ("llm-provider-key", "pplx-" + pick(ALNUM, 48)),  # Perplexity
    ("llm-provider-key", "xai-" + pick(ALNUM, 80)),  # xAI
    ("llm-provider-key", "sk-" + pick("0123456789abcdef", 32)),  # DeepSeek
    ("supabase-token", "sbp_" + pick("0123456789abcdef", 40)),  # Supabase
    ("google-oauth-client-secret", "GOCSPX-" + pick(ALNUM + "_-", 28)),  # Google OAuth secret
    ("terraform-cloud-token", f"{pick(ALNUM, 14)}.atlasv1.{pick(ALNUM, 67)}"),
    ("heroku-api-key", "HRKU-AA" + pick(ALNUM + "_-", 58)),  # Heroku
    ("doppler-token", "dp.st.prd." + pick(ALNUM, 43)),  # a Doppler service token
    ("doppler-token", "dp.ct." + pick(ALNUM, 43)),  # a Doppler CLI token
    ("google-oauth-access-token", "ya29.a0" + pick(ALNUM + "_-", 150)),  # Google OAuth 2.0
    ("google-oauth-access-token", "ya29.c.b0" + pick(ALNUM + "_-", 200)),  # a service account's
    ("airtable-token", f"pat{pick(ALNUM, 14)}.{pick('0123456789abcdef', 64)}"),
    (
        "discord-webhook",
        f"https://discord.com/api/webhooks/{RNG.randrange(10**18)}/{pick(ALNUM, 68)}",
    ),
    ("discord-webhook", f"https://Discord.com/api/v10/webhooks/{10**17 + 4321}/{pick(ALNUM, 68)}"),
    ("facebook-token", "EAAB" + pick(ALNUM, 160)),  # every kind of Graph API token
    ("facebook-token", "EAAGm0PX4ZCps" + pick(ALNUM, 140)),
    ("docker-hub-token", "dckr_pat_" + pick(ALNUM + "_-", 27)),
    ("docker-hub-token", "dckr_oat_" + pick(ALNUM + "_-", 32)),
    ("nuget-api-key", "oy2" + pick(string.ascii_lowercase + string.digits, 43)),
    ("contentful-token", "CFPAT-" + pick(ALNUM + "_-", 43)),
    ("flutterwave-secret-key", f"FLWSECK_TEST-{pick('0123456789abcdef', 32)}-X"),
    ("shippo-token", "shippo_live_" + pick("0123456789abcdef", 40)),
    ("dropbox-token", "sl." + pick(ALNUM + "_-", 138)),
    ("netlify-token", "nfp_" + pick(ALNUM, 40)),
    ("tailscale-key", f"tskey-auth-k{pick(ALNUM, 10)}CNTRL-{pick(ALNUM, 33)}"),
    ("langsmith-api-key", f"lsv2_pt_{pick('0123456789abcdef', 32)}_{pick('0123456789abcdef', 10)}"),
    ("pinecone-api-key", f"pcsk_{pick(ALNUM, 6)}_{pick(ALNUM, 66)}"),
    ("buildkite-token", "bkua_" + pick("0123456789abcdef", 40)),
    ("linear-oauth-token", "lin_oauth_" + pick("0123456789abcdef", 64)),
    ("hubspot-private-app-token", f"pat-na1-{uuid.UUID(int=RNG.getrandbits(128))}"),
    ("langfuse-secret-key", f"sk-lf-{uuid.UUID(int=RNG.getrandbits(128))}"),
    ("circleci-token", f"CCIPAT_{pick(ALNUM, 22)}_{pick('0123456789abcdef', 40)}"),
    ("notion-legacy-token", "secret_" + pick(ALNUM, 43)),
    ("asana-token", f"1/{RNG.randrange(10**15, 10**16)}:{pick('0123456789abcdef', 32)}"),
    ("asana-token", f"2/{10**15 + 7}/{10**15 + 9}:{pick('0123456789abcdef', 32)}"),
    ("firebase-server-key", f"AAAA{pick(ALNUM + '_-', 7)}:APA91b{pick(ALNUM + '_-', 134)}"),
    ("bitbucket-app-password", "ATBB" + pick(ALNUM, 36)),
    (
        "braintree-access-token",
        f"access_token$production${pick('abcdef0123456789', 16)}${pick('0123456789abcdef', 32)}",
    ),
    ("plaid-access-token", f"access-production-{uuid.UUID(int=RNG.getrandbits(128))}"),
    ("alibaba-access-key-id", "LTAI" + pick(ALNUM, 20)),
    ("atlassian-api-token", "ATATT3" + pick(ALNUM + "_-", 176) + "=" + pick("0123456789ABCDEF", 8)),
    ("flyio-token", "fm2_" + pick(ALNUM + "_-", 240)),  # the macaroon in URL-safe base64
    # X's app-only bearer token: 22 A's, then letters, digits and URL escapes
    ("twitter-bearer-token", "A" * 22 + pick(ALNUM, 35) + "%2B" + pick(ALNUM, 45) + "%3D"),
]


@pytest.mark.parametrize(("rule", "token"), SHAPES, ids=[r for r, _ in SHAPES])
def test_a_distinctive_token_is_found_with_no_name(scanner: Scanner, rule: str, token: str) -> None:
    for text in (token, f"see {token} in the log", f"<value>{token}</value>"):
        assert rule in {f.rule_id for f in scanner.scan(text)}, text


def test_a_telegram_token_is_found_in_the_bot_api_url(scanner: Scanner) -> None:
    token = f"{RNG.randrange(10**8, 10**9)}:AA{pick(ALNUM + '_-', 33)}"
    text = f"curl https://api.telegram.org/bot{token}/sendMessage -d chat_id=1"
    assert token in secret_spans(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) and mysql.connector",  # sl. inside words
        "secret_key_base: <%= ENV['SECRET_KEY_BASE'] %>",  # secret_ then a name
        "toyo2024 and boy2go are no NuGet keys",
        "dckr_pat_ tokens are 27 characters long",
        "pat-na1-example and sk-lf-... are placeholders in the docs",
        "FLWSECK-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX-X",  # a placeholder of the shape
        "page 1/2024, step 3/4; ratio 1/1234567890123",  # fractions, no hex after a colon
        f"request access-token-{uuid.UUID(int=7)} expired",  # no environment after access-
    ],
)
def test_near_misses_of_the_vendor_shapes_are_nothing(scanner: Scanner, text: str) -> None:
    assert not scanner.scan(text)


def _pem_in_base64(label: str) -> str:
    body = base64.b64encode(RNG.randbytes(600)).decode()
    pem = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"
    return base64.b64encode(pem.encode()).decode()


@pytest.mark.parametrize("label", ["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY"])
def test_a_private_key_in_base64_is_a_secret(scanner: Scanner, label: str) -> None:
    """kubeconfig's client-key-data, a Secret's tls.key: a PEM key wrapped in base64."""
    wrapped = _pem_in_base64(label)
    for text in (f"    client-key-data: {wrapped}", f'{{"tls.key": "{wrapped}"}}'):
        assert wrapped in secret_spans(scanner, text)


def test_a_certificate_in_base64_is_public(scanner: Scanner) -> None:
    for label in ("CERTIFICATE", "PUBLIC KEY"):
        text = f"    certificate-authority-data: {_pem_in_base64(label)}"
        assert "private-key-base64" not in {f.rule_id for f in scanner.scan(text)}


CRYPT = "./" + ALNUM


LONG_KEY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + pick(ALNUM + "+/", 2000)


@pytest.mark.parametrize(
    "template",
    [
        '{{"type": "service_account", "private_key": "{key}", "client_id": "1"}}',
        "signing:\n  private_key: '{key}'\n",
        'const privateKey = "{key}";',
        'export DEPLOY_TOKEN="{key}" && ./deploy.sh',
        "<privateKey>{key}</privateKey>",
        'client.setApiToken("{key}");',
    ],
)
def test_a_quoted_value_longer_than_a_parsed_match_is_still_found_whole(
    scanner: Scanner, template: str
) -> None:
    for key in (LONG_KEY, LONG_KEY[:1100], LONG_KEY * 3):  # past each reading, and the cut
        assert key in secret_spans(scanner, template.format(key=key))


@pytest.mark.parametrize(
    "value",
    [
        "see the runbook for how this is rotated " * 40,  # prose
        "${" + "PRIVATE_KEY_" * 200 + "}",  # a placeholder
        "ab" * 1200,  # a run of two characters
    ],
)
def test_a_long_quoted_value_that_is_no_credential_stays_clean(
    scanner: Scanner, value: str
) -> None:
    assert secret_spans(scanner, f'{{"private_key": "{value}"}}') == []


# A column named for a credential, in the tables people paste: each row's value in it.
TABLES = [
    f"name,email,password\nbob,bob@example.net,{PASSWORD}\n",  # CSV
    f"password,user\n{PASSWORD},bob\n",  # the column first
    f'"user","api_key"\n"bob","{TOKEN}"\n',  # quoted cells
    f'user,password,role\nann,"{PASSWORD}",admin\nbob,"x,{PASSWORD}",dev\n',  # , in quotes
    f"user\tpassword\nbob\t{PASSWORD}\n",  # TSV
    f"id;user;db_password\n1;bob;{PASSWORD}\n",
    f"| Service | API Key | Owner |\n| :--- | :---: | ---: |\n| billing | `{TOKEN}` | ann |\n",
    f"| user | password |\n|------|----------|\n| ann | changeme |\n| bob | {PASSWORD} |\n",
    f"INSERT INTO users (name, password) VALUES ('bob', '{PASSWORD}');",  # SQL
    f"INSERT INTO `users` (`id`, `name`, `password`, `created_at`)\n"
    f"VALUES (1, 'ann', 'changeme', NOW()),\n       (2, 'bob', '{PASSWORD}', NOW());",
    f'insert into accounts(username, api_token) values ("bob", "{TOKEN}")',
    "user,password,role\nbob,Sunshine,admin\n",  # a word is a (weak) password there
]


@pytest.mark.parametrize("text", TABLES)
def test_a_credential_column_is_read_in_every_row(scanner: Scanner, text: str) -> None:
    found = secret_spans(scanner, text)
    assert PASSWORD in found or TOKEN in found or "Sunshine" in found
    assert "changeme" not in found  # judged like any value: a placeholder is none


TABLE_LOOK_ALIKES = [
    # wpa_supplicant's external password backend's name for the key; a setting's name after
    # a line that ends in "password" (NetworkManager's connection-type=password)
    'network={\n    ssid="corp"\n    psk=ext:psk0\n}\n',
    "[vpn]\nconnection-type=password\npassword-flags=2\nusername=USERNAME\n",
    "user,password_changed_at,status\nbob,2023-12-30T10:00:00Z,locked\n",  # when, not what
    "user,password\nbob,********\nann,<redacted>\ncid,changeme\n",  # masks, placeholders
    "| Name | Description |\n|---|---|\n| password | The database password |\n",  # a doc
    "| Setting | Value |\n|---|---|\n| api_token | ${API_TOKEN} |\n",
    "name,token_count,last_login\nbob,42,2024-01-05\n",
    "token, key, and lock\nare, words, here\n",  # prose with commas
    # a row that names a credential is no header: the rows after it are not its values
    "| Header | Example |\n|---|---|\n| X-Api-Key | `your-key-here` |\n| X-Tenant | demo |\n",
    "| X-Api-Key | `your-key-here` |\n| X-Tenant | Acme-Corp |\n",  # no separator under it
    "name,value\nX-Api-Key,<your key>\nX-Tenant,Acme-Corp\n",
    "password\nchanged: yes, by ann\n",  # a name alone on its line is no header
    "INSERT INTO users (name, password) VALUES ('bob', crypt('x', gen_salt('bf'))), ('a', NULL);",
    "INSERT INTO users (name, password_hash) VALUES ('bob', 'abc');",
    "INSERT INTO settings (name, token_ttl) VALUES ('session', '3600');",
    # words in a token column: a tokenizer's vocabulary, a lemma table
    "token,lemma,pos\nInternationalization,internationalization,NOUN\n"
    "containerization,containerization,NOUN\n",
    # a weak name (key) in SQL: a cache's, a translation's key
    "INSERT INTO cache (key, value, expires) VALUES ('sess_9f86d081884c7d659a2feaa0c55ad015', "
    "'x', 1700000000);",
]


@pytest.mark.parametrize("text", TABLE_LOOK_ALIKES)
def test_tables_with_no_credential_in_them_stay_clean(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == []


def test_a_table_flood_is_bounded_and_never_clean() -> None:
    rows = "".join(f"row{i},placeholder\n" for i in range(MAX_CANDIDATES + 10))
    found = read_all(f"user,password\n{rows}".encode())
    assert [f.rule_id for f in found] == ["table-credential:unverified"]


def test_a_flood_of_small_tables_is_bounded_by_their_headers_and_never_clean() -> None:
    """A header read counts as several values judged, so a text of one-row tables (each
    header read for a value or two) ends unverified long before MAX_CANDIDATES of them; a
    session's hundred tables are each read."""
    table = " id | password\n----+----------\n  1 | n/a\n\n"
    found = read_all((table * (MAX_CANDIDATES // 2)).encode())
    assert [f.rule_id for f in found] == ["table-credential:unverified"]
    last = " id | password\n----+----------\n  1 | copper54copper\n"
    assert [f.rule_id for f in read_all((table * 100 + last).encode())] == ["table-credential"]


# psql's expanded display (`\x`): a record's fields, a `name | value` line each.
PSQL_RECORDS = (
    "app=> SELECT * FROM customers WHERE id IN (17, 18);\n"
    "-[ RECORD 1 ]-+------------------\n"
    "id            | 17\n"
    "passport_no   | K8421973\n"
    "date_of_birth | 1987-03-14\n"
    "password      | copper54copper\n"
    "note          | called about her\n"
    "              | copper54copper\n"  # a wrapped value's next line: no name of its own
    "-[ RECORD 2 ]-+------------------\n"
    "id            | 18\n"
    "passport_no   | pending\n"  # no id's look
    "notes         | copper54copper\n"  # no credential's name
    "api_token     | \n"  # empty
    "\n"
    "(2 rows)\n"
    "-[ RECORD 1 ]\n"  # names narrower than the header: no `+` to align on
    "id | 1\n"
    "pw | copper54copper\n"
    "| password | hunter2hunter2 |\n"  # no bar under the record's: the record has ended
)


def test_psqls_expanded_records_are_read_field_by_field() -> None:
    data = PSQL_RECORDS.encode()
    found = [
        (data[: f.start].rsplit(b"\n", 1)[1].split(b"|")[0].strip().decode(), f.value, f.category)
        for f in read_all(data)
        if f.rule_id == "psql-record-field"
    ]
    assert found == [
        ("passport_no", "K8421973", "pii"),
        ("date_of_birth", "1987-03-14", "pii"),
        ("password", "copper54copper", "secret"),
        ("pw", "copper54copper", "secret"),
    ]


@pytest.mark.parametrize(
    "record",
    [
        # \pset linestyle unicode
        "─[ RECORD 1 ]─┬───────────────\nid       │ 17\npassword │ copper54copper\n",
        # \pset border 2, and with unicode lines; the last line closes the frame
        "+-[ RECORD 1 ]-+----------------+\n| id       | 17             |\n"
        "| password | copper54copper |\n+----------+----------------+\n",
        "┌─[ RECORD 1 ]─┬────────────────┐\n│ id       │ 17             │\n"
        "│ password │ copper54copper │\n├─[ RECORD 2 ]─┼────────────────┤\n"
        "│ id       │ 18             │\n│ api_key  │ hunter2hunter2 │\n"
        "└──────────┴────────────────┘\n",
    ],
)
def test_psqls_records_are_read_in_every_linestyle_and_border(
    scanner: Scanner, record: str
) -> None:
    values = ["copper54copper", "hunter2hunter2"] if "RECORD 2" in record else ["copper54copper"]
    found = [f for f in scanner.scan(record) if f.rule_id == "psql-record-field"]
    assert [record[f.span[0] : f.span[1]] for f in found] == values


def test_a_psql_record_at_a_json_results_start_is_read(scanner: Scanner) -> None:
    record = "-[ RECORD 1 ]-+------\nid            | 17\npassword      | copper54copper\n"
    assert secret_spans(scanner, json.dumps({"stdout": record})) == ["copper54copper"]


def test_a_records_every_line_counts_so_a_flood_of_them_is_never_clean() -> None:
    """Lines with no name (a wrapped value's) or no value (NULL) are judged by no one, but
    each one read counts: a megabyte of them is cut off, and unverified."""
    for line in (" | x\n", "a |\n"):
        text = "-[ RECORD 1 ]\n" + line * (MAX_CANDIDATES + 10)
        found = [f.rule_id for f in read_all(text.encode()) if f.rule_id.startswith("psql")]
        assert found == ["psql-record-field:unverified"]


# Commands that store a secret: what they are given is the secret, whatever its name; and
# commands that print one: the line they printed.
HEX_KEY = pick("0123456789abcdef", 32)
UUID_KEY = str(uuid.UUID(HEX_KEY))
LOWER_KEY = pick(string.ascii_lowercase + string.digits, 32)
SECRET_COMMANDS = [
    (f"kubectl create secret generic transloadit --from-literal=value={HEX_KEY}", HEX_KEY),
    (f"oc -n prod create secret generic app --from-literal='signal={LOWER_KEY}'", LOWER_KEY),
    (
        "kubectl create secret generic app \\\n  --from-literal=API_URL=https://api.acme.io \\\n"
        f"  --from-literal=SIGNAL={LOWER_KEY} # rotated monthly",
        LOWER_KEY,
    ),
    (f'gh secret set ZENROWS --body "{HEX_KEY}"', HEX_KEY),
    (f"gh secret set ZENROWS -b {HEX_KEY} --repo acme/app", HEX_KEY),
    (f"gh secret set ZENROWS -b{LOWER_KEY}", LOWER_KEY),
    (f"gh secret set DB --body={PASSWORD}", PASSWORD),
    (f"az keyvault secret set --vault-name kv --name zenrows --value {HEX_KEY}", HEX_KEY),
    (f"vault kv put -mount=secret zenrows ttl=30m value={HEX_KEY}", HEX_KEY),
    (f"vault kv patch secret/app owner=platform signal='{LOWER_KEY}'", LOWER_KEY),
    (f"fly secrets set ZENROWS_SIGNAL={LOWER_KEY} -a app", LOWER_KEY),
    # an environment variable's {name, value} record, named by anything but a credential
    (f'{{"name": "SENDGRID", "value": "{HEX_KEY}"}}', HEX_KEY),
    (
        f"env:\n  - name: BITMOVIN_CONN\n    value: {UUID_KEY}",
        UUID_KEY,
    ),
    # a terminal's transcript: a command that prints a secret, and the line it printed
    (f"$ echo $ZENROWS_SIGNAL\n{LOWER_KEY}\n$ ls", LOWER_KEY),
    (f"PS C:\\> echo $env:ZENROWS\n{HEX_KEY}", HEX_KEY),
    (f"$ printenv DB_PASSWORD\n{PASSWORD}", PASSWORD),
    (f"heroku config:get ZENROWS -a acme\n{HEX_KEY}", HEX_KEY),
    (f"$ vault kv get -field=value secret/zenrows\n{PASSWORD}", PASSWORD),
    (f"$ aws secretsmanager get-secret-value --secret-id x --output text\n{PASSWORD}", PASSWORD),
    (f"# gcloud secrets versions access latest --secret=zenrows\n{LOWER_KEY}", LOWER_KEY),
    # a prompt of any shell before the command, and cmd's %NAME% (review 15)
    (f"alice@laptop:~/proj$ echo $ZENROWS\n{LOWER_KEY}", LOWER_KEY),
    (f"root@web-1:/app# printenv ZENROWS\n{LOWER_KEY}", LOWER_KEY),
    (f"(venv) $ echo $ZENROWS\n{LOWER_KEY}", LOWER_KEY),
    (f"C:\\> echo %ZENROWS%\n{LOWER_KEY}", LOWER_KEY),
    # zsh themes' arrows (U+276F, U+279C): the pattern reads them as whole characters
    (
        f"\N{HEAVY RIGHT-POINTING ANGLE QUOTATION MARK ORNAMENT} pass show prod/db\n{PASSWORD}",
        PASSWORD,
    ),
    (f"~/src \N{HEAVY ROUND-TIPPED RIGHTWARDS ARROW}  pass show prod/db\n{PASSWORD}", PASSWORD),
    # an agent's transcript: the command in backticks, its output fenced below it
    (f"Ran `echo $ZENROWS` (exit 0):\n```\n{LOWER_KEY}\n```", LOWER_KEY),
    (
        "Ran `kubectl get secret app -o jsonpath='{.data.DB_PASSWORD}' | base64 -d`\n"
        f"```text\n{PASSWORD}\n```",
        PASSWORD,
    ),
]


@pytest.mark.parametrize(("text", "value"), SECRET_COMMANDS)
def test_a_value_given_to_or_printed_by_a_secrets_command_is_one(
    scanner: Scanner, text: str, value: str
) -> None:
    assert secret_spans(scanner, text) == [value]


@pytest.mark.parametrize(
    "text",
    [
        # a secret's fields that are no secrets: a user's name, a region, a URL, a word
        "kubectl create secret generic app --from-literal=username=admin "
        "--from-literal=region=us-east-1 --from-literal=url=https://api.example.com/v1",
        "vault kv put secret/app ttl=30m url=https://x.io owner=platform-team",
        "kubectl create secret generic x --from-literal=key=value --from-literal=password=changeme",
        # Kubernetes' documentation's example: words, and an option after the secret's name
        "kubectl create secret generic my-secret --from-literal=key1=supersecret "
        "--from-literal=key2=topsecret",
        "kubectl create secret generic app-config --from-literal=LOG_LEVEL=debug "
        f"--from-literal=FEATURES=checkout,search --from-literal=BUILD_SHA={HEX_KEY}",
        "doppler secrets set API_URL=https://api.example.com RETRIES=3 IMAGE=ghcr.io/acme/app:1.4",
        f"vault kv put secret/app commit={HEX_KEY} version=1.4.2",
        # an expansion, a file, stdin, a placeholder
        'kubectl create secret generic app --from-literal=password="$DB_PASSWORD"',
        'gh secret set DEPLOY_KEY --body "$TOKEN"',
        "gh secret set DEPLOY_KEY < key.txt",
        'gh secret set NAME --body "<your-token>"',
        "vault kv put secret/app signal=@signal.txt",
        "az keyvault secret set --vault-name kv --name cert --file ./secret.pem",
        # the command named, not run; a store of configuration, not of secrets
        "Use `kubectl create secret generic` to store the values, then mount them.",
        f"consul kv put config/db/checksum {HEX_KEY}",
        f"kubectl create configmap app --from-literal=build={LOWER_KEY}",
        # what CI's and Azure's guides store as secrets that are no secrets (review 14): ids,
        # a region, a project, a provider's path, a commit, a version, a public key's
        # recipient, a bucket, an address, a chat, a channel, a server
        "gh secret set AZURE_CLIENT_ID --body 9f1c2e4a-6b8d-4e2f-a1c3-5d7e9f0b2a4c",
        "gh secret set CLOUDFLARE_ACCOUNT_ID --body 53ea76ff5f9e8683a57576b6f6980ac7",
        "gh secret set VERCEL_ORG_ID --body team_XUzIwLKHr0rMTtJhsEK7GjFR",
        "gh secret set AWS_REGION --body us-east-1",
        "gh secret set GCP_PROJECT_ID --body acme-prod-412907",
        "gh secret set GCP_WIF_PROVIDER --body projects/123456789/locations/global/x/providers/gh",
        "gh secret set LAST_DEPLOYED_SHA --body 33cce9ba084996e02eacd8d60cf7c37768272e10",
        "gh secret set CACHE_VERSION --body v3-69de7225",
        "gh secret set SOPS_AGE_RECIPIENT --body age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8z",
        "gh secret set S3_BUCKET --body acme-prod-uploads-eu-west-1",
        "gh secret set CLOUDFRONT_DISTRIBUTION --body E2QWRUHAPOMQZL",
        "gh secret set NOTIFY_EMAIL --body ops@acme.io",
        "gh secret set TELEGRAM_CHAT_ID --body -1001234567890",
        "gh secret set DISCORD_CHANNEL --body 1098765432109876543",
        "az keyvault secret set --vault-name kv --name ClientId --value " + UUID_KEY,
        "az keyvault secret set --vault-name kv --name SqlServer --value acme.database.windows.net",
        # fields that are no secrets: a host, cloud resources' ids, a subscription, a version
        "kubectl create secret generic db --from-literal=DB_HOST=mydb-7f8c9d2e1a.cluster-c9akfk3"
        "hd2k1.us-east-1.rds.amazonaws.com --from-literal=DB_PORT=5432",
        "kubectl create secret generic n --from-literal=INSTANCE=i-0abcd1234ef567890 "
        "--from-literal=VPC=vpc-0f3e2d1c4b5a69788",
        f"kubectl create secret generic azure --from-literal=subscription={UUID_KEY}",
        f"kubectl create secret generic app --from-literal=VERSION={HEX_KEY}",
        "kubectl create secret generic app --from-literal=SLACK_CHANNEL=C04ABCD1234",
        "vault kv put secret/app/db host=pg-7f3a9c2e1b.internal.acme.io port=5432 dbname=orders",
        "fly secrets set FLY_APP=acme-api-7f3k9 MACHINE=3d8d9c4e2b1a78",
        # printed: variables that hold no secret (a path, a host, a shell, a number, a commit)
        "$ echo $PATH\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
        "$ echo $HOSTNAME\nip-10-0-12-34.eu-west-1.compute.intranet",
        "$ printenv SHELL\n/bin/bash",
        "$ echo $RANDOM\n28734",
        f"$ echo $GIT_COMMIT\n{HEX_KEY}",
        f"$ echo $BUILD_ID\n{HEX_KEY}",
        "$ echo $VIRTUAL_ENV\n/home/dev/projects/acme/.venv",
        # printed: nothing, words, a mask, a store's answer that is no secret
        "$ echo $ZENROWS\n\n$ ls -la",
        "$ echo $ZENROWS\nhello world",
        "echo $ZENROWS\n********",
        "$ op read op://Private/Stripe/username\njane.doe@example.com",
        '$ gcloud secrets versions access latest --secret=config\n{"region": "eu"}',
        "run `echo $ZENROWS` to see it",  # the command, with no output after it
        "Ran `echo $PATH`:\n```\n/usr/local/bin:/usr/bin:/bin\n```",
        "Run `echo $ZENROWS`\n```\nthen restart the worker\n```",
        # review 15: a store's field that is no secret, piped into a digest, ids under names
        f"$ vault read -field=role_id auth/approle/role/app/role-id\n{UUID_KEY}",
        f"$ aws secretsmanager get-secret-value --secret-id prod/db --query VersionId\n{UUID_KEY}",
        "$ op read op://Dev/Server/hostname\nbastion-01.acme.io",
        "$ gcloud secrets versions access latest --secret=gcp-project-id\nacme-prod-412907",
        f"$ vault kv get -field=password secret/db | sha256sum\n{HEX_KEY}{HEX_KEY}",
        f"$ echo $OPENAI_API_KEY | md5sum | cut -d' ' -f1\n{HEX_KEY}",
        f"$ echo $TRACEPARENT\n00-{HEX_KEY}-b7ad6b7169203331-01",
        f"$ echo $RAILWAY_SERVICE\n{UUID_KEY}",
        f"$ echo $PAYLOAD_HMAC\n{HEX_KEY}",
        f"env:\n  - name: AZURE_CLIENT\n    value: {UUID_KEY}",
        f"env:\n  - name: RESTART_TRIGGER\n    value: {HEX_KEY}",
        "gh secret set DOCKERHUB_USERNAME --body acmebot2024",
        # an OpenPGP key's fingerprint, as the python Docker image sets it
        "$ echo $GPG_KEY\nA035C8C19219BA821ECEA86B64E628F8D684696D",
        "env:\n  - name: GPG_KEY\n    value: A035C8C19219BA821ECEA86B64E628F8D684696D",
        # a documentation's user at example.com and its password (review 14)
        "curl -u john.doe@example.com:YourPassword123! https://api.example.com/v2/me",
        # {name, value} records of what is no key: an id, a digest, a revision, a host, a word
        f"env:\n  - name: POD_UID\n    value: {UUID_KEY}",
        f"env:\n  - name: CORRELATION\n    value: {UUID_KEY}",
        f'{{"name": "GIT_SHA", "value": "{HEX_KEY}"}}',
        f'{{"name": "CONFIG_REVISION", "value": "{HEX_KEY}"}}',
        '{"name": "DD_AGENT_HOST", "value": "datadog-agent.monitoring.svc.cluster.local"}',
        '{"name": "OTEL_SERVICE_NAME", "value": "checkout-service-production"}',
    ],
)
def test_what_a_secret_command_is_given_that_is_no_secret_stays_clean(
    scanner: Scanner, text: str
) -> None:
    assert secret_spans(scanner, text) == []


@pytest.mark.parametrize(
    "text",
    [
        f"gh secret set X --body-file notes.md; echo {LOWER_KEY}",
        f"gh secret set X --body-file notes.md && echo build={LOWER_KEY}",
        f"vault kv put secret/app owner=platform\nsignal={LOWER_KEY}",
        f"fly secrets set A=1 # build={LOWER_KEY}",
    ],
)
def test_a_secret_command_ends_where_the_shell_ends_it(text: str) -> None:
    """After a `;`, a `&&`, a line's end or a comment, the words are another command's."""
    assert "secret-command-value" not in {f.rule_id for f in read_all(text.encode())}


def test_a_flood_of_secret_commands_is_bounded_and_never_clean() -> None:
    text = b"fly secrets set a=b " * (readers.MAX_COMMAND_ARGUMENTS_READ // 2)
    assert [f.rule_id for f in read_all(text)] == ["secret-command-value:unverified"]
    assert read_all(b"fly secrets set a=b " * 100) == []


def test_a_yaml_value_with_a_colon_in_it_is_judged_whole(scanner: Scanner) -> None:
    """`token: deploy:<token>` reads like Kotlin's `name: Type =` with a colon for its
    operator; it is YAML's key and all of the value."""
    text = f"auth:\n  token: deploy:{TOKEN}\n"
    assert [text[a:b] for a, b in (f.span for f in scanner.scan(text))] == [f"deploy:{TOKEN}"]


def test_a_yaml_value_with_base64_padding_is_judged_whole() -> None:
    """`client-secret: ...==` read like Kotlin's `name: Type =` with the padding for its
    operator and its value: the value is all of it."""
    value = f"WPL_AP1.{TOKEN[:16]}.{TOKEN[16:]}=="
    found = read_all(f"registration:\n  linkedin:\n    client-secret: {value}\n".encode())
    assert [f.value for f in found] == [value]
    assert [f.value for f in read_all(f"password: {TOKEN}==\n".encode())] == [f"{TOKEN}=="]


def test_a_google_app_password_in_a_login_call_is_found(scanner: Scanner) -> None:
    """Four groups of four letters, with blanks: a passphrase, as the readers judge one."""
    words = " ".join(pick(string.ascii_lowercase, 4) for _ in range(4))
    text = (
        f'with smtplib.SMTP_SSL("smtp.gmail.com", 465) as s:\n    s.login("me@x.net", "{words}")\n'
    )
    assert "py-credential-argument" in {f.rule_id for f in scanner.scan(text)}


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01 12:00:01 DEBUG auth: token: {token}",
        "Authorization: Bearer: {token}",
        "- key: value: {token}",
        "password: Secret: {token}",
    ],
)
def test_a_label_then_a_colon_and_a_blank_before_the_value(scanner: Scanner, text: str) -> None:
    """`key: word: value` is no YAML value with a colon in it: the value is after the blank."""
    text = text.format(token=TOKEN)
    assert TOKEN in [text[a:b] for a, b in (f.span for f in scanner.scan(text))]


def test_a_secret_manifest_is_found_whatever_its_first_value(scanner: Scanner) -> None:
    """A first value that spells a placeholder ("default") says nothing of the rest."""
    url = base64.b64encode(b"postgres://app:Xk9mP2vL7qRz@db.prod.internal:5432/app").decode()
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n"
        f"  PROFILE: ZGVmYXVsdA==\n  DATABASE_URL: {url}\n"
    )
    assert "kubernetes-secret" in {f.rule_id for f in scanner.scan(text)}


def test_a_yaml_block_scalar_is_read_like_a_quoted_value(scanner: Scanner) -> None:
    """Its first line, blanks and all: a passphrase; a message is still no password."""
    passphrase = "orbit Tulip 42 lantern quarry"
    assert secret_spans(scanner, f"wifi:\n  passphrase: >-\n    {passphrase}\n") == [passphrase]
    assert secret_spans(scanner, "x:\n  password: |\n    Hello there. Use your login.\n") == []


def test_a_bare_value_keeps_the_letters_that_prefix_strings(scanner: Scanner) -> None:
    """r, b, u and @ prefix a quoted literal (r"...", b'...', @"..."), never a bare value."""
    for text in (f"token=ub{TOKEN}", f"setx DEPLOY_TOKEN b{TOKEN}", f"api_key: r{TOKEN}"):
        assert secret_spans(scanner, text) == [text[-len(TOKEN) - 2 :].lstrip(":= ")], text


def test_password_hashes_in_crypt_formats_are_secrets(scanner: Scanner) -> None:
    """A documented decision (rules.toml): a crypt(3) hash is cracked offline, so it stays
    local like the password. Each format with its own lengths."""
    hashes = [
        f"$2b$12${pick(CRYPT, 53)}",  # bcrypt
        f"$apr1${pick(CRYPT, 8)}${pick(CRYPT, 22)}",  # Apache .htpasswd
        f"$1${pick(CRYPT, 8)}${pick(CRYPT, 22)}",  # MD5-crypt
        f"$5$rounds=80000${pick(CRYPT, 16)}${pick(CRYPT, 43)}",  # SHA-256-crypt
        f"$6${pick(CRYPT, 16)}${pick(CRYPT, 86)}",  # SHA-512-crypt
        f"$y$j9T${pick(CRYPT, 22)}${pick(CRYPT, 43)}",  # yescrypt
        f"$argon2id$v=19$m=65536,t=3,p=4${pick(ALNUM, 22)}${pick(ALNUM + '+/', 43)}",
        f"$argon2i$m=4096,t=3,p=1${pick(ALNUM, 16)}${pick(ALNUM + '+/', 43)}",  # no v=
        f"pbkdf2_sha256$600000${pick(ALNUM, 22)}${pick(ALNUM + '+/', 43)}=",  # Django
        f"{{SSHA}}{pick(ALNUM + '+/', 32)}",  # LDAP
    ]
    for value in hashes:
        for text in (value, f"admin:{value}", f"root:{value}:19700:0:99999:7:::"):
            assert value in secret_spans(scanner, text), text
    assert secret_spans(scanner, f"$6${pick(CRYPT, 16)}${pick(CRYPT, 40)}") == []  # too short


def ppk(body: str, comment: str = "ci", newline: str = "\n") -> str:
    """A PuTTY key file (format 3) around the first line of its private body."""
    lines = ["PuTTY-User-Key-File-3: ssh-ed25519", "Encryption: none", f"Comment: {comment}"]
    lines += ["Public-Lines: 2", pick(ALNUM, 64), pick(ALNUM, 20), "Private-Lines: 1", body]
    return newline.join([*lines, "Private-MAC: 0a1b"])


@pytest.mark.parametrize("comment", ["ci", "C:\\Users\\rob\\key"])  # \r, then no newline
def test_a_putty_private_key_is_found_by_its_body(scanner: Scanner, comment: str) -> None:
    body = pick(ALNUM + "+/", 64)
    assert body in secret_spans(scanner, ppk(body, comment))


def test_a_putty_key_after_one_cut_short_is_found_by_its_body(scanner: Scanner) -> None:
    """Between a header and its Private-Lines lies no other header: the search from a key
    file cut short ends at the next one's header, whose own body is found."""
    body = pick(ALNUM + "+/", 64)
    cut = ppk(pick(ALNUM + "+/", 64)).split("Private-Lines")[0]
    assert body in secret_spans(scanner, cut + ppk(body))
    assert body in secret_spans(scanner, ppk(body, comment="from PuTTY-User-Key-File-2: x"))


def test_a_putty_key_quoted_in_json_is_found_by_its_body(scanner: Scanner) -> None:
    body = pick(ALNUM + "+/", 64)
    quoted = ppk(body, "C:\\\\keys", newline="\\n")  # as JSON escapes it
    assert body in secret_spans(scanner, f'{{"deploy_key": "{quoted}"}}')


def test_a_routable_gitlab_token_is_found_whole(scanner: Scanner) -> None:
    token = f"glpat-{pick(ALNUM, 36)}.01.{pick(string.ascii_lowercase + string.digits, 9)}"
    assert secret_spans(scanner, f"GITLAB_PAT {token} ") == [token]


def test_a_base64_wrapped_jwt_is_decoded_and_checked(scanner: Scanner) -> None:
    def part(payload: str) -> str:
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    header, payload = part('{"alg":"HS256"}'), part('{"sub":"42"}')
    jwt = f"{header}.{payload}.{pick(ALNUM, 43)}"
    wrapped = base64.b64encode(jwt.encode()).decode()
    assert "jwt-base64" in {f.rule_id for f in scanner.scan(f"token: {wrapped}")}
    noise = base64.b64encode(b"eyJ" + RNG.randbytes(60)).decode()  # "eyJ", then no token
    assert "jwt-base64" not in {f.rule_id for f in scanner.scan(noise)}


def _secret_json(value: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "data": {"DATABASE_URL": value, "SESSION": "c2Vzc2lvbg=="},
        "kind": "Secret",
        "metadata": {"name": "app", "labels": {"app": "web"}, "uid": str(uuid.UUID(int=7))},
        "type": "Opaque",
    }


@pytest.mark.parametrize("layout", ["kubectl", "kind first", "in a tool result"])
def test_a_kubernetes_secret_in_json_is_found_whatever_its_keys(
    scanner: Scanner, layout: str
) -> None:
    """kubectl get secret -o json sorts the keys (data, then kind); a tool writes kind
    first. The data's keys need not name a credential: a Secret's values are secrets."""
    value = base64.b64encode(b"postgres://app:" + PASSWORD.encode() + b"@db:5432/app").decode()
    manifest = _secret_json(value)
    if layout == "kubectl":
        text = json.dumps(manifest, indent=4)
    else:
        first = {"kind": "Secret", **{k: v for k, v in manifest.items() if k != "kind"}}
        text = json.dumps(first)
        if layout == "in a tool result":
            text = json.dumps({"type": "tool_result", "content": text})
    found = scanner.scan(text)
    assert "kubernetes-secret-json" in {f.rule_id for f in found}


def test_a_secret_in_json_whose_first_value_is_short_is_found(scanner: Scanner) -> None:
    """kubectl sorts the data's keys: a one-byte value ("MQ==") may come first."""
    manifest = _secret_json("MQ==")
    assert "kubernetes-secret-json" in {
        f.rule_id for f in scanner.scan(json.dumps(manifest, indent=4))
    }


def test_a_long_go_test_log_is_no_finding(scanner: Scanner) -> None:
    """Each `--- PASS: name (0.00s)` is passed over uncounted: thousands of them spend none
    of the candidates that would make the rest of the log an unverified finding."""
    log = "".join(f"=== RUN   TestCase_{i}\n--- PASS: TestCase_{i} (0.00s)\n" for i in range(2500))
    assert scanner.scan(log + "PASS\nok  \tacme/x\t0.031s\n") == []


def test_a_config_map_or_a_placeholder_secret_in_json_is_nothing(scanner: Scanner) -> None:
    config = dict(_secret_json("bG9nbGV2ZWw6IGRlYnVn"), kind="ConfigMap")
    assert scanner.scan(json.dumps(config, indent=4)) == []
    placeholder = _secret_json(base64.b64encode(b"changeme").decode())
    del placeholder["data"]["SESSION"]  # type: ignore[attr-defined]
    assert secret_spans(scanner, json.dumps(placeholder, indent=4)) == []


def test_a_kubernetes_secret_manifest(scanner: Scanner) -> None:
    value = base64.b64encode(PASSWORD.encode()).decode()
    text = (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  pw: {value}\n"
    )
    assert "kubernetes-secret" in {f.rule_id for f in scanner.scan(text)}
    # kubectl get secret -o yaml sorts the keys: data comes before kind
    listed = f"apiVersion: v1\ndata:\n  pw: {value}\nkind: Secret\nmetadata:\n  name: db\n"
    assert "kubernetes-secret-data-first" in {f.rule_id for f in scanner.scan(listed)}
    # Kubernetes' keys are case-sensitive: `Kind:` heads no manifest
    assert "kubernetes-secret" not in {
        f.rule_id for f in scanner.scan(text.replace("kind", "Kind"))
    }


@pytest.mark.parametrize(
    "text",
    [
        # a list's item, its metadata twelve lines long
        "items:\n- kind: Secret\n" + "  m: x\n" * 12 + "  data:\n    pw: {value}\n",
        # another object first: the later kind line starts the manifest that holds the data
        "kind: Secret\nmetadata: {{}}\n---\nkind: Secret\ntype: Opaque\ndata:\n  pw: {value}\n",
        "kind: ConfigMap\nkind: Secret\ndata:\n  pw: {value}\n",
        # data first, after another manifest's data block
        "data:\n  a: x\nkind: ConfigMap\n---\ndata:\n  pw: {value}\nkind: Secret\n",
        # a comment or a label between that holds `kind:` does not end it
        "kind: Secret\nmetadata:\n  # kind: Secret needs base64\n  labels:\n"
        "    app.kubernetes.io/kind: db\ndata:\n  pw: {value}\n",
    ],
)
def test_kubernetes_secrets_among_other_manifests(scanner: Scanner, text: str) -> None:
    """The lines between kind and data may not start another manifest's kind (or data, data
    first): each search follows one manifest, so that RE2 stays linear on many of them."""
    value = base64.b64encode(PASSWORD.encode()).decode()
    found = {f.rule_id for f in scanner.scan(text.format(value=value))}
    assert found & {"kubernetes-secret", "kubernetes-secret-data-first"}, found


def test_the_kind_line_of_another_object_between_ends_a_kind_first_manifest(
    scanner: Scanner,
) -> None:
    """A documented limit: an ownerReference's `kind:` between a Secret's kind and its data
    ends the kind-first search there (kubectl's own output puts data first)."""
    value = base64.b64encode(PASSWORD.encode()).decode()
    text = (
        f"kind: Secret\nmetadata:\n  ownerReferences:\n  - kind: Deployment\ndata:\n  pw: {value}\n"
    )
    assert "kubernetes-secret" not in {f.rule_id for f in scanner.scan(text)}
    assert "kubernetes-secret" in {
        f.rule_id for f in scanner.scan(text.replace("  - kind: Deployment\n", ""))
    }


LOOK_ALIKES = [
    # a docs table's stand-in (a prefix, then zeros); a CLI's listing whose last column is
    # SECRET: the next line's first cell is an endpoint's id
    "| Shopify | `shpat_` | `shpat_00000000000000000000000000000000` |",
    "ID                           URL          STATUS   SECRET\n"
    "we_PrGQp8oIkDAjlz1nnDpUbAjo  https://x.y  enabled  whsec_\u2022\u2022\u2022\u2022m1I1\n",
    # a core dump's strings: a variable's name, then another's setting on the next line
    "$ strings -n 8 core.27874\nAWS_SECRET_ACCESS_KEY\nPWD=/srv/app\nSTRIPE_API_KEY\n"
    "LANG=C.UTF-8\n",
    # Windows Error Reporting's report ids; Stripe's documented test key
    "ReportIdentifier=52e941af-3f74-4cde-ae85-26e9564f8626\n",
    "stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'",
    "Authorization: Basic dXNlcjpwYXNz",  # user:pass, a placeholder's
    # LiteLLM's reference to an environment variable; SigV4's scheme before its parameters
    "general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n",
    "Authorization: AWS4-HMAC-SHA256 Credential=ASIA****/20250312/us-west-2/bedrock/aws4_request,"
    " SignedHeaders=host;x-amz-date, Signature=" + "9413b4d256ef8686" * 4,
    # a setting's path as .NET's appSettings name it, a cache's namespaced key and hash
    '<appSettings>\n  <add key="webpages:Version" value="3.0.0.0" />\n</appSettings>\n',
    'key = "Logging:LogLevel:Default"',
    "cache miss key=v2:render:" + "bc62c71e0af6941eedb095b7363d7534d8d80567" + " ttl=300s",
    # TypeScript's non-null assertion after a variable's lookup
    "export const config = {\n  slackToken: process.env.SLACK_BOT_TOKEN!,\n};\n",
    # options that say where the password comes from, and a list of hashers' names
    "aws ecr get-login-password | docker login --username AWS --password-stdin "
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    "gpg --batch --passphrase-fd 0 --decrypt backup.tar.gz.gpg",
    "auth:\n  password_hashers: [argon2id, bcrypt]\n",
    # YAML's key, then a value with a colon in it: a reference, not a typed name's value
    "credentials:\n  api_key: arn:aws:secretsmanager:eu-west-1:316386820650:secret:prod/key\n",
    "ghToken: 'vault:secret/data/app#gh_token',",  # a Vault path (bank-vaults, Spring)
    "DB_PASSWORD=@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/db/)",
    # base64 that spells a template or a placeholder (${TFE_TOKEN}, changeme)
    "env:\n  TFE_TOKEN: JHtURkVfVE9LRU59\n",
    "password: Y2hhbmdlbWU=",
    'cache.set(key="3f2b8c1e-9d4a-4e7b-8f21-6c5d0a9e1b72", value=row)',  # a UUID as a key
    'requests.post(url, headers={"Idempotency-Key": "3f2b8c1e-9d4a-4e7b-8f21-6c5d0a9e1b72"})',
    "[user]\n  signingkey = 3AA5C34371567BD2\n",  # an OpenPGP key's id, as git names it
    "git config --global user.signingKey 0x3AA5C34371567BD2",
    "signing_key: 4AB1C9D2E37F08A5B6C1D2E3F4A5B6C7D8E9F0A1",  # its fingerprint
    "password: |\n  ${DB_PASSWORD}\n",  # a block scalar's placeholder
    "password_policy: >-\n  at least 12 characters, one digit\n",
    f"token: |\nnext_key: {TOKEN[:8]}\n",  # an empty block: the next line is no deeper
    "<password><![CDATA[${DB_PASSWORD}]]></password>",  # a placeholder in CDATA
    "<passwordPolicy><![CDATA[at least 12 characters]]></passwordPolicy>",  # prose
    f"publicToken: {TOKEN}",  # the public half
    f"csrf_token: {TOKEN}",
    "credentialsId: 'f4aeb6bc-2a25-458a-8111-9be9e502c0e7'",
    'TOKEN_URL = "https://auth.example.net/token"',
    "sort_key = 'created_at_desc_index_v2'",
    "key_down_event=P3YLeqOPhL4Vh0-j2jhLHxWGHVUG4m",
    'const keyChars = "0123456789abcdefghijklmnopqrstuvwxyz"',
    "secret_key = os.environ['SECRET_KEY']",
    'var apiKey = config["SendGrid:ApiKey"];',
    "if (password !== confirmPassword) {",
    "password = Read-Host -AsSecureString",
    ': "${GITHUB_TOKEN:?GITHUB_TOKEN must be set}"',
    'args: ["eks", "get-token", "--cluster-name", "prod"]',
    "  - secretKey: OPENAI_API_KEY\n    remoteRef:\n      key: prod/api/openai",
    "io.jsonwebtoken:jjwt-jackson:0.11.5",
    'curl -H "Authorization: Bearer <your API token>" https://api.example.net',
    "curl -u <user:password> https://api.example.net",
    "WEBHOOK_SECRET=whsec_...",
    "sumOfExposures = sumOfExposures + 1;",
    "postgres://postgres:postgres@localhost:5432/test",
    'url = "postgresql://{user}:{pw}@{host}/{db}".format(**cfg)',
    "password: ${DB_PASSWORD}",
    "token: ${{ secrets.DEPLOY_TOKEN }}",
    # a paren-less call whose argument is no literal
    'signingConfigs {\n    release {\n        storePassword System.getenv("KS_PASSWORD")',
    # a property list's keys, whatever their text: an entry's name (an entitlement's)
    "<dict>\n\t<key>com.apple.developer.associated-domains</key>\n\t<array>\n"
    "\t\t<string>applinks:saffron.app</string>\n\t</array>\n</dict>",
    # $$ passes one $ to the shell (Make, Compose, Drone, Buildkite)
    "    command: huggingface-cli login --token $$HF_TOKEN",
    'curl -H "PRIVATE-TOKEN: $$GL_AUTH" https://gitlab.example.net/api/v4/projects',
    "environment:\n  DB_PASSWORD: $${DB_PASSWORD}",
    # a variable as a URL's password, the host after it
    "git clone https://x-access-token:$RELEASE_BOT_TOKEN@github.com/acme/proto.git vendor/",
    "git clone https://x-access-token:$$GH_AUTH@github.com/acme/proto.git vendor/",
    "password: ${DB_PASSWORD:-changeme}",
    "spring.datasource.password=${DB_PASSWORD:changeme}",
    'args: ["${API_KEY:+--api-key}"]',  # the shell's alternate value, not a default
    "echo ${PASSWORD:0:4}",  # a substring
    "const token = process.env.DEPLOY_TOKEN || fallbackDeployToken;",
    # an English word that ends in "pass" (a value of one case: machine-made-token judges a
    # mixed one by its look whatever its name)
    f"export BYPASS={TOKEN.lower()[:24]}",
    "- name: API_KEY\n  valueFrom:\n    secretKeyRef:\n      name: api\n      key: key",
    '<property name="passwordEncoder" ref="bcryptEncoder"/>',
    "CREATE USER 'app'@'%' IDENTIFIED BY 'password';",
    "sed -E 's/(a)(b)/$1$2/' file",
    '<property name="password" value="#{systemProperties[\'db.password\']}"/>',  # SpEL
    "set -gx DEPLOY_TOKEN (cat ~/.config/deploy/token)",
    'document.getElementById("password")',
    "i18n.t('auth.passwordLabel')",
    'setApiKey("YOUR_API_KEY")',
    'setPasswordHint("Your first pet")',
    "mysql -h db.example.net -P 3306 -u root",  # -P: a port
    'auth=("admin", password)',
    'var secret = await client.GetSecretAsync("DeployApiKey");',  # a getter takes a name
    "checkPassword('Tr0ub4dor&3')",
    "Stripe.api_key = credentials.dig(:stripe, :secret_key)",  # a call's argument
    "mvn -P prod,docker package",  # -P: a profile, a Perl regex, all ports
    "grep -P '^\\s*(?:def|class)\\s+\\w+' src/*.py",
    "docker run -P nginx:latest",
    "SECRET_ARN=arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
    "password: errors.password || t('validation.passwordRequired'),",
    "token: token ?? cookies.get('sessionToken'),",
    "const apiKey = props.apiKey;",
    # a key-value record's key names its value (CloudFormation's outputs, AWS tags)
    '[{"OutputKey": "UserPoolClientId", "OutputValue": "https://api.example.com/prod"}]',
    '"Tags": [{"Key": "MyAppServiceAccount", "Value": "web"}]',
    '<input name="password" value={password} onChange={handleChange} />',
    '<input name="token" value="@Model.Token" />',
    '<property name="tokenRepository" value="persistentTokenRepository"/>',
    'headers["X-Api-Key"] = apiKey;',
    'const db = new aws.secretsmanager.Secret("appDbPassword");',
    'logger.logToken("refreshTokenIssued")',
    "cursor.execute(f\"CREATE USER app IDENTIFIED BY '{password}'\")",
    "ALTER USER app IDENTIFIED BY ':new_password'",
    "renderpass = mainRenderPass",
    "requirepass foobared",  # redis.conf's own example
    '{"name": "DB_PASSWORD", "value": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db"}',
    '{"name": "passwordPolicy", "type": "string", "value": "strict"}',
    f"Cookie: _ga=GA1.2.1234567890.1700000000; csrftoken={TOKEN}; theme=dark",
    "Set-Cookie: sessionid=; expires=Thu, 01 Jan 1970 00:00:00 GMT",
    "mkdir -p src/components/Button",  # -p and a blank: parents, a port, a plugin
    "python -m pytest -p no:cacheprovider tests/",
    "7z a -p backup.7z docs/",
    "mysql -u root -p production_db",  # a blank after mysql's -p: it asks for it
    "docker compose -p webAppStaging2 up -d",
    "zip -r a.zip . ; docker run -P nginx:latest",  # the next command's option
    "On the login node, run srun -p gpu_a100 -N 1 --pty bash",  # -p: not after these
    "After docker login, use docker compose -p shop_v2 up -d",
    "cargo publish -p serde_json_v2",
    "docker run -d --name my-mongo -p 127.0.0.1:27017:27017 mongo:7",
    "dotnet build -p:Configuration=Release",  # -p attached, with : or =
    "docker run -p127.0.0.1:8080:80 nginx",
    "rsync --passwords-file=/etc/rsync.pw src/ dest/",  # a longer option's name
    "openssl rsa -in key.pem -passin file:pass.txt",
    "kind: Deployment\nmetadata:\n  name: frontend1\n---\napiVersion: v1\nkind: Secret\n",
    "ssh-keygen -t ed25519 -f key && docker run -P myimage:1.2",
    'ldapsearch -x -b "dc=example,dc=net" "(uid=bob)" | grep -w memberOf',
    "net use Z: \\\\srv\\share /user:bob /persistent:yes",
    "net use Z: \\\\srv\\share /user:bob %SHARE_PASSWORD%",
    'Get-Content "C:\\secure\\pw.txt" | ConvertTo-SecureString -AsPlainText',
    '"$env:ADMIN_PW" | ConvertTo-SecureString -AsPlainText -Force',  # PowerShell expands it
    'echo "root:$ROOT_PASSWORD" | chpasswd',
    "vault login -method=github",  # options, and no token
    "vault login -method=userpass username=alice",  # an auth method's key=value
    "unzip -p archive.zip config.json | jq .",  # unzip's -p pipes
    'ssh-keygen -t rsa -b 4096 -N "" -f id_rsa',
    "openssl req -new -key server.key -out server.csr",
    "openssl pkcs12 -export -in c.pem -out c.p12 -passout env:P12_PASSWORD",
    'ldapsearch -x -W -D "cn=admin" -b dc=example,dc=net',  # -W: prompt for it
    "net use Z: \\\\files\\share /persistent:yes",
    "cat ~/pw.txt | docker login --username ci --password-stdin",
    "echo $DB_PASSWORD | docker login --username ci --password-stdin",
    'echo "$GH_TOKEN" | gh auth login --with-token',
    "localhost:5432:*:postgres:$PGPASS",
    "*:*:*:*:*",
    "see https://wiki.example.net/sign-u p:Xk2fj39Qm7Lp",  # a dash inside a word
    "$pw = ConvertTo-SecureString -String $env:DB_PASSWORD -AsPlainText -Force",
    "nxc smb 10.1.2.0/24 -u users.txt -p /opt/lists/passwords.txt --continue-on-success",
    "hydra -L users.txt -P rockyou.txt -t 4 ftp://10.1.2.3",  # -P: a word list
    "rdesktop -u admin -p - 10.1.2.3",  # - : read from stdin
    "xfreerdp /u:admin /p:%RDP_PASSWORD% /v:host",
    "xfreerdp /u:admin /p:$RDP_PASSWORD /v:host",
    "net use * \\\\files\\share * /user:alice",  # *: prompt for it
    "psexec.py -hashes :aad3b435b51404eeaad3b435b51404ee admin@10.1.2.3",
    "wmiexec.py corp/admin@10.1.2.3 -k -no-pass",
    "the hydra project uses -p for ports in its compose files",
    'printf "%s" "${REGISTRY_PASSWORD}" | podman login --password-stdin quay.io',
    "vault login -method=token token=$VAULT_TOKEN",
    "net use \\\\server\\share >C:\\temp\\netuse.log",  # redirections
    "net use \\\\server\\share 2>C:\\logs\\netuse_err.txt",
    "net use \\\\server\\share (without credentials)",
    "net use \\\\computername\\sharename [password | *] [/user:domain\\user]",
    "net use \\\\server\\share !SHARE_PASSWORD!",  # variables: cmd.exe's, PowerShell's
    "net use \\\\server\\share $env:SHARE_PASSWORD",
    "nxc smb 10.1.2.3 -u admin -p $env:SPRAY_PASSWORD",
    "xfreerdp /u:admin /p:!RDP_PASSWORD! /v:host",
    "impacket-psexec corp/admin:%ADMIN_PASSWORD%@10.1.2.3",
    "printf 'password\\n' | passwd --stdin alice",
    "plink -ssh deploy@host -pw %PLINK_PASSWORD% uptime",  # a variable after -pw
    "gcc -o out main.c -pw-check",  # a word that starts with -pw
    # go test -v: a test's name and how long it ran
    "=== RUN   TestParseConfig_EmptyFile\n--- PASS: TestParseConfig_EmptyFile (0.00s)",
    "    --- PASS: TestRouter/failover_to_local (0.02s)\nPASS\nok  \tacme/x\t0.031s",
    "PASS: TestCacheEviction_LRU (12 ms)",
    # a path's `::`: cargo test's names, C++'s and Rust's imports
    "test token::tests::client_shard ... ok",
    "use crate::auth::token::{Claims, encode};",
    # Python's imports are no CSV table with a SecretStr column
    "from pydantic import Field, SecretStr\nfrom pydantic_settings import BaseSettings, Config",
    # an env dump, sorted: a line that ends in "token" and the setting after it
    "KEY_PREFIX=token:\nMAX_TOKENS=4096",
    "SECRET_NAME=prod/token\nSSH_AUTH_SOCK=/tmp/ssh-XXXXm3kq/agent.1842",
    # what stands in a secret's place: Symfony's environment variable, a tool's mask
    "CLIENT_SECRET=%env(DATABASE_PASSWORD)%",
    "database_password: '%env(resolve:DB_PASSWORD)%'",
    "access_token = [hidden]",
    "+ password = (sensitive value)",
    "//registry.npmjs.org/:_authToken = (protected)",  # npm config list
    # a UI's string catalogue: the word itself, translated, as a label's text
    '{"password": "Passwort", "username": "Benutzername"}',
    '{"password": "Mot de passe", "password_hint": "Kennwort eingeben"}',
    'var W={password:"Passwort",login:"Anmelden"};',
    '"password": "\\u30d1\\u30b9\\u30ef\\u30fc\\u30c9"',  # パスワード, escaped in JSON
    '"forgot": "Mot de passe oubli\\u00e9 ?"',
    '{"密码": "请输入密码", "contraseña": "Introduce tu contraseña"}',  # keyed prompts
    # a schema's types
    "type User {\n  id: ID!\n  password: String!\n  token: String\n}",
    # a type that keeps a secret out of logs, in a struct's field
    "pub struct Db {\n    pub host: String,\n    pub password: SecretString,\n}",
    "class Settings(BaseModel):\n    password: SecretBytes\n    api_key: SecretStr",
    # a call of a module's function for the value, in Elixir's runtime config
    'config :app, App.Repo, password: Map.fetch!(secrets, "db_password")',
    # a map's or an enum's labels under a key's or a token's name
    'const schemes = new Map([["refresh_token", "RefreshTokenKey1"], ["api_key", "ApiKeyAuth"]])',
    # PagerDuty's incident key: an alert's dedup key
    '{"incident_key": "2324f4e586ca830ec335b2c4161060c2", "status": "resolved"}',
    '{"content": "type User {\\n  password: String!\\n}\\n\\ntype Query"}',  # in JSON
    # an escaped line break ends a value in a JSON string: the reference before it
    '{"content": "  password: $DOCKERHUB_PASSWORD\\n  username: ci"}',
    # a cache's key: words and versions, then a content hash (actions/cache)
    "Cache restored from key: node-cache-Linux-x64-npm-" + "3f2b8c1e9d4a4e7b" * 4,
    "with:\n  path: ~/.cache/docs\n  key: docs-deps-" + "3f2b8c1e9d4a4e7b" * 4,
    # a secret's name, in a command substituted into a variable's value
    'export ACME_KEY="$(gcloud secrets versions access latest --secret=acme-reporting)"',
    'export ACME_KEY="$(gcloud secrets versions access latest --secret=acme-apikey)"',
    # test runners' names, a subtest's path and a module path
    "--- PASS: TestRoundTrip/utf8 (0.00s)",
    "test auth::password::tests::argon2_roundtrip ... ok",
]


@pytest.mark.parametrize(
    "text",
    [
        'api_key = "3f2b8c1e-9d4a-4e7b-8f21-6c5d0a9e1b72"',  # a credential's name: judged
        'herokuKey = "3f2b8c1e-9d4a-4e7b-8f21-6c5d0a9e1b72"',  # a vendor's key: a UUID
        f'signing_key = "{TOKEN}"',  # a signing key itself, not its id
        'SIGNING_KEY = "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c"',  # 32 hex digits: a secret
    ],
)
def test_uuids_and_key_ids_under_credential_names_are_still_judged(
    scanner: Scanner, text: str
) -> None:
    assert secret_spans(scanner, text)


@pytest.mark.parametrize(
    "text",
    ["PASS: Kq8_Lm2Rt_Xw9z", "pass: Kq8_Lm2Rt_Xw9z (prod)", "PASS: Kq8_Lm2Rt_Xw9z (expires 3d)"],
)
def test_a_pass_label_without_a_duration_after_it_is_still_read(
    scanner: Scanner, text: str
) -> None:
    """Only a duration after it makes `PASS: name` a test runner's line."""
    assert secret_spans(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "DB_PASSWORD=import-edge-batch-order",
        "password: correct-horse-battery-staple",
        "passphrase = 'crane-oyster-widow-tulip'",
    ],
)
def test_words_joined_by_hyphens_under_a_passwords_name_are_a_passphrase(
    scanner: Scanner, text: str
) -> None:
    assert secret_spans(scanner, text)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("redis-cli-password", "$ redis-cli -h cache -a correct-tenant-stream-staple ping"),
        ("cli-p-password-sshpass", "sshpass -p 'crane-oyster-widow-tulip' ssh admin@db1 uptime"),
        ("cli-password-flag", "mysql -u root -pcorrect-horse-battery-staple app"),
        (
            "connection-string-password",
            "Server=db;Database=app;User Id=sa;Password=crane-oyster-widow-tulip;",
        ),
    ],
)
def test_a_passphrase_given_where_only_a_password_goes_is_found(
    scanner: Scanner, rule: str, text: str
) -> None:
    assert rule in {f.rule_id for f in scanner.scan(text)}


@pytest.mark.parametrize(
    "text",
    [
        "sshpass -p 'your-password-here' ssh admin@db1 uptime",
        "redis-cli -a some-long-password ping",
        'Settings(api_key="abc123", password="test")',  # a unit test's stand-ins
        "API_TOKEN=xyz789",
        'FAKE_TOKEN = "test-token-d6b3c621"  # the mock server takes it',
        'STUB = {"api_key": "test_api_key_01"}',
        # a note left where the value will go
        '<add key="DB_PASSWORD" value="TODO: get from vault" />',
        "smtp_password: 'TBD - ask ops'",
    ],
)
def test_placeholders_where_a_password_goes_are_nothing(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == []


@pytest.mark.parametrize(
    "text",
    [
        '{"password": "p4ss\\u00e9Word!9"}',  # an escape inside a real password
        '{"content": "password: Kq8_Lm2Rt_Xw9z\\nuser: ci"}',  # a real one before the break
        '{"content": "the password is Kq8Lm2Rt!Xw9z\\nthanks"}',
        "pass: Kq8Lm2RtXw9z",
        "pass: Kq8Lm2RtXw9z  then the rest",
        "api_key: prod-" + "3f2b8c1e9d4a4e7b" * 2,  # a strong name: any random value
        "key: Kq8Lm2RtXw9zPq4Tz7",
        'password = "Sunshine"',  # a capitalised word that is no translation: a weak password
        'const passEnc = "Xk9$mQ2!zRt7"',  # a capital after "pass": the name's next word
        'password = "blue whale password 77"',  # English "password" in a passphrase
        '{"passIn": "Xk9$mQ2!zRt7"}',
        'mot_de_passe = "Xk9$mQ2!zRt7"',
        "pwd: Xk9$mQ2zPw (temporary)",  # a note after it, not a test's duration
        "session token is sessionid=k2j4Lm9Qx7Rt2Vw8",  # a cookie's name=value: the token
        "KEY=app-secret-" + "3f2b8c1e9d4a4e7b" * 2,  # hyphens and a hash, but no CI cache's
        "key=tenant:" + "3f2b8c1e9d4a4e7b" * 2,  # one word before a hash: an id and its key
        "auth=acct:live:" + "3f2b8c1e9d4a4e7b" * 2,  # namespaced, but under auth (review 19)
        'key="Xk9:Qm2Lp8Vn7Rt4"',  # a colon inside random characters
        'password = "Todo2024!x"',  # a word a note starts with, inside a password
        'API_TOKEN = "test-token-' + "3f2b8c1e9d4a4e7b" * 2 + '"',  # long past a stand-in's
    ],
)
def test_values_near_those_look_alikes_are_still_found(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "token: import-edge-batch-order",  # a token is machine-made: a slug under its name
        "password: change-me-now",
        "PASSWORD=your-password-here",
        "password_field: user-password-input",
        "password: not-set",
        # where a password is kept, or how a form shows it
        "passwordKey: postgres-admin-password",
        "passwordSecret: prod-admin-credentials",
        "DB_PASSWORD=vault-secret-ref",
        "password: from-secrets-manager",
        "password: use-env-variable",
        "https://x.io/login?password=show-hide-toggle-button",
    ],
)
def test_hyphenated_names_and_placeholders_are_no_passphrase(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == []


# A person's password, which no rule of its shape finds: only the name beside it tells.
HUMAN = "Raven1993.canyon"


@pytest.mark.parametrize(
    "text",
    [
        # R's arrows
        f'smtp_password <- "{HUMAN}"',
        f'db_password <<- "{HUMAN}"',
        # Erlang's and Elixir's tuples in a config
        f'[{{my_app, [{{db_password, "{HUMAN}"}}]}}].',
        f'config :my_app, creds: [{{:smtp_password, "{HUMAN}"}}]',
        f'{{pool, [{{db_password, <<"{HUMAN}">>}}]}}',  # Erlang's binary
        # a quoted name and its value in a list or a tuple: Rails' log of a query's binds
        f'UPDATE "users" SET "password" = $1 WHERE "id" = $2  [["password", "{HUMAN}"], ["id", 7]]',
        f'cursor.execute(sql, ("db_password", "{HUMAN}"))',
        # a credential's name that says its value is not hashed yet
        f'password_to_be_hashed = "{HUMAN}"',
        f'not_hashed_password = "{HUMAN}"',
        # devtools' print of localStorage's entries: a token's name, then a token
        "> Object.entries(localStorage)\n  0: ['theme', 'dark']\n"
        "  1: ['auth.refresh_token', 'v1.P2K0JiWCav9hLGvZw9_a6Y5p5-f9yPMUq1iuEtKwWIuwbWxJ']",
        # Tcl's set, an array's element too
        f'set smtp_password "{HUMAN}"',
        f'set ::env(DB_PASSWORD) "{HUMAN}"',
        # Lisp: Emacs' setq and setenv, a property list, Clojure's def, Common Lisp's
        f'(setq smtp-password "{HUMAN}")',
        f'(setenv "SMTP_PASSWORD" "{HUMAN}")',
        f'(list :host "db.internal" :password "{HUMAN}")',
        f'{{:smtp-pass "{HUMAN}" :port 587}}',  # a Clojure map's keyword: no prose word
        f'(def db-password "{HUMAN}")',
        f'(defparameter *db-password* "{HUMAN}")',
        # an Apple property list's entry
        f"<dict>\n  <key>DBPassword</key>\n  <string>{HUMAN}</string>\n</dict>",
        # Nim's exported constants and variables
        f'const\n  smtpPassword* = "{HUMAN}"',
        f'var dbPassword*: string = "{HUMAN}"',
    ],
)
def test_a_credential_in_more_languages_assignments_is_found(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        'hash(password, "bcrypt")',  # a call's arguments, not a pair
        '{token, "Bearer"}',
        '(setq auth-source-debug "verbose")',
        "set token_ttl 3600",
        "Please set token to the value shown",
        '(global-set-key (kbd "C-c k") :key "Return")',
        "x <- password_hash(pw)",
        "key *= 2",  # a product, not Nim's export mark
        "token*=next_token",
        # R's and Lisp's expressions on the right: where the value comes from
        "token <- resp$access_token",
        "key <- list_of_keys[[i]]",
        '(defparameter *secret* (uiop:getenv "SECRET"))',
        '(def secret-key (System/getProperty "secret.key"))',
        '(setenv "API_TOKEN" (string-trim (shell-command-to-string "pass show api")))',
        # a property list's keys with acronyms inside
        "<key>CFBundleURLTypes</key>\n<array/>",
        "<key>NSFaceIDUsageDescription</key><string>Unlock with Face ID</string>",
        "<key>FacebookAppID</key>",
        "if ($PgCommon::rpm) { pass 'No ssl key checks on RedHat'; exit; }",  # Perl's test
        # Tcl's substitutions: a variable's value, a command's output
        "set key FORMAT_$format",
        "set token [EvalAttached $::tk::console::defaultPrompt]",
        # a property list's keys are names: Apple's, with an acronym first
        "<key>NSCameraUsageDescription</key>\n<string>We need the camera</string>",
        "<key>CFBundleIdentifier</key><string>com.example.app</string>",
        "<key>NSLocationWhenInUseUsageDescription</key>",
    ],
)
def test_pairs_and_property_list_keys_that_hold_no_credential_are_none(
    scanner: Scanner, text: str
) -> None:
    assert secret_spans(scanner, text) == []


@pytest.mark.parametrize(
    "text",
    [
        'password = "Summer.Breeze!"',
        '<add key="SmtpPassword" value="Golden.Gate!" />',
        '{"password": "Blue.Ocean!"}',
    ],
)
def test_capitalised_words_joined_by_a_dot_with_a_bang_are_a_password(
    scanner: Scanner, text: str
) -> None:
    """Only a lower-case name and two members before a `!` make TypeScript's non-null
    assertion (review 19)."""
    assert secret_spans(scanner, text)


def test_letters_at_random_in_both_cases_are_still_a_key(scanner: Scanner) -> None:
    assert secret_spans(scanner, 'key = "QWxMnbVcXzLkJh"') == ["QWxMnbVcXzLkJh"]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_not_credentials(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == []


@pytest.mark.parametrize(
    ("name", "strength"),
    [
        ("grafana-api-keyToken", 2),
        ("ldap_default_authtok", 2),  # sssd's
        ("routing_key", 1),  # PagerDuty's secret; AMQP's dotted words fail a weak name's value
        ("IBMCLOUDIAMAPIKEY", 2),
        ("db_pw", 2),
        ("token2", 2),
        ("Key", 1),
        ("ibm_key", 1),
        ("KeyPair", 0),
        ("cache_key", 0),
        ("password_field", 0),
        ("credentialsId", 0),
        ("monkey", 0),
        ("dbpass", 2),
        ("rootpw", 2),
        ("bypass", 0),
        ("compass", 0),
        ("lowpass_cutoff", 0),  # run together only at the name's end
        ("OLDPWD", 0),
        ("password_changed_at", 0),  # when it was set
        ("token_created", 0),
        ("NwkSKey", 2),  # LoRaWAN's network session key: an acronym's end starts a word
        ("AppSKey", 2),
        ("AWSSecretKey", 2),
        ("network_key", 2),
        ("HTTPCacheKey", 0),  # http, cache, key: a cache's key
    ],
)
def test_credential_names_are_judged_word_by_word(name: str, strength: int) -> None:
    assert credential_name_strength(name) == strength


def test_an_x_mask_is_a_placeholder_but_an_x_run_inside_random_text_is_not() -> None:
    """The cause of a flaky property test: 'xxxx' occurs by chance in random tokens."""
    assert is_placeholder("sk_live_xxxxxxxxxxxxxxxxxxxxxxxx")
    assert is_placeholder("AP6xxxxxxxxxx")
    assert not is_placeholder("hf_QmXxxxRtLpWv7ZcKbNsAeYdTgHjUiOlPk")
    assert not is_placeholder("npm_Zq4xxxxB7mPlk2WcR9TsUvYn3HaLgE6dFjK")


@pytest.mark.parametrize(
    "text",
    [
        "password={password}",
        'url = f"{base}/v1/items?api_key={api_key}&page={page}"',
        "SUMO_ACCESS_KEY={SumoAccessKey} TOKEN={AUTH_TOKEN} pw={0}",
        "otpauth://totp/{issuer}:{user}?secret={secret}&issuer={issuer}",
        'token: {apiToken}\nsecret: "{{ vault_secret }}"',
    ],
)
def test_a_templates_field_is_no_value(scanner: Scanner, text: str) -> None:
    """str.format's, an f-string's, a URI template's and C#'s fields are names, in one brace
    (the reader used to judge `{password` with its brace cut off)."""
    assert secret_spans(scanner, text) == []


def test_a_value_in_braces_that_names_nothing_is_judged_inside_them() -> None:
    assert [f.value for f in read_all(b"password={Qm8xRt2Vw9Lp3Kz}")] == ["Qm8xRt2Vw9Lp3Kz"]
    # a random mix of letters and digits is no name, in lower case or capitals either
    randoms = ("{Qm8xRt2Vw9Lp3Kz}", "{q8XrT2mW}", "{s3cr3tpassw0rd9}", "{K7QX2M5RWZ4P9D}")
    for field in (*randoms, "{QmxRtVwLpKzH}", "{admin:S3cr3t!9x}", "{sk:Xq7mP2vL9rT4}"):
        assert not is_placeholder(field), field
    fields = ("{user_pw2}", "{UserName2}", "{apiKeyV2}", "{token!r}", "{password:>20}")
    for field in (*fields, "{DB_PASSWORD_FROM_VAULT_2}", "{token_1}", "{user.name}"):
        assert is_placeholder(field), field


def _closed_around_by_hand(data: bytes, start: int, end: int) -> int:
    """`readers._closed_around` a byte at a time: strip closers from the end, but stop at a
    closing brace once the value's braces balance."""
    opened, closed = data.count(b"{", start, end), data.count(b"}", start, end)
    while end > start and data[end - 1 : end] in (b")", b"]", b"}", b":"):
        if data[end - 1 : end] == b"}":
            if opened >= closed:
                break
            closed -= 1
        end -= 1
    return end


@settings(max_examples=500, deadline=None)
@given(value=st.text(alphabet="a{}):]", max_size=14))
def test_closing_brackets_are_stripped_as_one_at_a_time(value: str) -> None:
    data = f"x={value} tail".encode()
    end = 2 + len(value)
    assert readers._closed_around(data, 2, end) == _closed_around_by_hand(data, 2, end)


def test_published_example_keys_are_not_findings(scanner: Scanner) -> None:
    assert scanner.scan("maps key AIzaSyabcdefghijklmnopqrstuvwxyz1234567") == []
    assert scanner.scan('aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYx"') == []


def test_a_flood_of_rejected_assignments_is_bounded_and_never_clean() -> None:
    text = "".join(f"token = x{i}\n" for i in range(MAX_CANDIDATES + 50)).encode()
    found = read_all(text)
    assert [f.rule_id for f in found] == ["assigned-credential:unverified"]


def test_candidates_turned_down_by_name_do_not_spend_the_budget(scanner: Scanner) -> None:
    """A large benign file whose names hold a credential word (author holds auth) or a
    weak one bound to a value too short for a token (`key=lambda`): each candidate is
    turned down by its name, before its value is judged, and none counts towards
    MAX_CANDIDATES, so the text is clean, not unverified. A credential among them is
    still found."""
    records = [
        f'  {{"id": {i}, "title": "Book {i}", "author": "Jane Austen", "year": 1900}}'
        for i in range(MAX_CANDIDATES + 100)
    ]
    books = "[\n" + ",\n".join(records) + "\n]\n"
    code = "".join(
        f"items_{i} = sorted(data_{i}, key=lambda r: r.name)\n" for i in range(MAX_CANDIDATES + 100)
    )
    for text in (books, code):
        assert read_all(text.encode()) == []
        assert scanner.scan(text) == []
        found = read_all((text + f'api_token = "{TOKEN}"\n').encode())
        assert [(f.rule_id, f.value) for f in found] == [("assigned-credential", TOKEN)]


def test_a_flood_of_credential_names_with_short_values_is_still_bounded() -> None:
    """The budget still holds for names that could be a credential's: password = x1."""
    text = "".join(f'password = "x{i}"\n' for i in range(MAX_CANDIDATES + 50)).encode()
    assert [f.rule_id for f in read_all(text)] == ["assigned-credential:unverified"]


def test_a_text_of_nothing_but_names_turned_down_is_bounded_too() -> None:
    unit, most = b"author=x ", readers.MAX_PASSED_OVER
    text = unit * (2 * (most + 1) * readers.BYTES_PER_PASSED_OVER // len(unit))
    assert [f.rule_id for f in read_all(text)] == ["assigned-credential:unverified"]
    assert read_all(unit * (most - 10)) == []


class _GivenUp:
    """An RE2 set whose DFA ran out of memory: it answers with no pattern at all, which
    the binding says with None (as for a text nothing matches)."""

    def Match(self, data: bytes) -> list[int] | None:
        return None


def test_readers_all_run_when_their_set_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    text = b'var dbPassword string = "x9$Kq2mPz!7"\n'
    expected = read_all(text)
    assert expected
    monkeypatch.setattr(readers._READER_SET, "_set", _GivenUp())
    assert read_all(text) == expected


@pytest.mark.parametrize("long", [False, True])
def test_every_rule_runs_when_the_prefilter_gives_up(scanner: Scanner, long: bool) -> None:
    """Any of the prefilter's sets: a short text's one, a long text's keywords' or triggers'."""
    text = 'var dbPassword string = "x9$Kq2mPz!7"\nmail jane.doe@gmail.com\n'
    if long:
        text += "and nothing more here\n" * (scanner_module.SPLIT_PREFILTER_BYTES // 20)
    expected = scanner.scan(text)
    assert {f.category for f in expected} == {"secret", "pii"}
    sets = "_prefilters" if long else "_short_prefilters"
    for at in range(len(getattr(scanner, sets))):
        broken = Scanner(config_from_mapping({}).privacy)
        prefilters = getattr(broken, sets)
        prefilters[at] = (_GivenUp(), prefilters[at][1])
        assert broken._enabled(text.encode()) >= set(range(len(broken._rules)))
        assert broken.scan(text) == expected


@pytest.mark.parametrize("prefix", ["xoxp-", "pypi-", "SG.", "ghp_", "sk-ant-"])
def test_a_vendor_prefix_bound_to_a_credential_name_is_judged_by_the_rest(prefix: str) -> None:
    """The name says credential whatever the shape: a token its vendor's rule would turn
    down (cut short, an older format) is still found, and a prefix with nothing random
    after it is not."""
    found = read_all(f'slackToken = "{prefix}{TOKEN[:20]}"'.encode())
    assert [f.value for f in found] == [f"{prefix}{TOKEN[:20]}"]
    assert read_all(f'slackToken = "{prefix}1234567890"'.encode()) == []  # a sequence
    assert read_all(f'slackToken = "{prefix}..."'.encode()) == []  # cut to nothing


def test_a_value_a_rule_already_found_is_not_judged_again() -> None:
    text = f'export GITHUB_TOKEN="{TOKEN}"\napi_key = "{PASSWORD}"\n'.encode()
    token = text.index(TOKEN.encode())
    every = read_all(text)
    assert [f.value for f in every] == [TOKEN, PASSWORD]
    known = Reported([(token - 4, token + len(TOKEN), "secret")])  # a rule's, around it
    assert [f.value for f in read_all(text, known)] == [PASSWORD]
    assert read_all(text, Reported([(token + 1, token + len(TOKEN), "secret")])) == every
    assert read_all(text, Reported([(token - 4, token + len(TOKEN), "pii")])) == every


def test_a_hash_mask_is_a_placeholder_but_hashes_inside_a_password_are_not() -> None:
    assert is_placeholder("572370529330-####################")
    assert is_placeholder("card ####")
    assert is_placeholder("Xk2########fj3")  # too long a run to be chance
    assert not is_placeholder("x9#Kq2mPz!7")
    assert not is_placeholder("Xk2####fj3kLq9Zp")
    assert not is_placeholder("Tr0ub4dor####3x")


@pytest.mark.parametrize(
    ("text", "tail"),
    [
        ('password = "x9$Kq2\\"mPz!7abc"', 'mPz!7abc"'),  # an escaped quote inside
        ("password = 'x9$Kq2mPz!7abc'", "mPz!7abc'"),  # a known secret in part of it
        ("db_password := `x9$Kq2mPz!7abc`", "Kq2mPz!7abc`"),
    ],
)
def test_a_value_only_partly_in_a_known_secret_is_still_read_whole(text: str, tail: str) -> None:
    data = text.encode()
    value_end = len(data) - 1
    known = Reported([(len(data) - len(tail.encode()), value_end, "secret")])
    assert read_all(data, known) == read_all(data)
    assert read_all(data) != []


def test_an_extended_private_key_is_found_by_its_checksum(scanner: Scanner) -> None:
    key = make.extended_private_key(RNG)
    assert key.startswith("xprv")
    assert "wallet-extended-private-key" in {f.rule_id for f in scanner.scan(f"key: {key}")}
    # one character changed: the checksum fails, and nothing is claimed
    broken = key[:50] + ("A" if key[50] != "A" else "B") + key[51:]
    assert "wallet-extended-private-key" not in {f.rule_id for f in scanner.scan(broken)}
    # an extended public key (xpub) is not a secret
    public = make.base58check(b"\x04\x88\xb2\x1e" + bytes(RNG.randrange(256) for _ in range(74)))
    assert not scanner.scan(public)


PAGING_NAMES = (
    *("nextPageToken", "pageToken", "next_page_token", "NextToken", "PaginationToken"),
    *("NextContinuationToken", "continuation_token", "cursor_token", "resumeToken"),
    *("ClientRequestToken", "idempotency_token", "nextSyncToken", "lastSyncToken"),
)
# Credentials whose names hold those words elsewhere, or alone where they are ambiguous.
PAGING_LOOK_ALIKES = (
    *("FACEBOOK_PAGE_ACCESS_TOKEN", "page_token_secret", "SYNC_TOKEN", "sync_token"),
    *("request_token", "client_token", "CURSOR_API_KEY"),
)


@pytest.mark.parametrize("name", PAGING_NAMES)
def test_paging_and_idempotency_tokens_are_not_secrets(scanner: Scanner, name: str) -> None:
    """An API's cursor, resume point or idempotency key grants nothing: not a finding in
    JSON, an assignment or Python (whose pass names credentials its own way)."""
    for text in (
        f'{{"items": [], "{name}": "{TOKEN}"}}',
        f"{name}={TOKEN}\n",
        f'```python\n{name} = "{TOKEN}"\n```',
    ):
        assert secret_spans(scanner, text) == [], text


@pytest.mark.parametrize("name", PAGING_LOOK_ALIKES)
def test_credentials_named_with_paging_words_are_still_found(scanner: Scanner, name: str) -> None:
    for text in (f'{{"{name}": "{TOKEN}"}}', f'```python\n{name} = "{TOKEN}"\n```'):
        assert secret_spans(scanner, text) == [TOKEN], text


STRIPE_TAIL = "51H8abcDEFghiJKLmnoPQRstuVWXyz0123456789" + pick(ALNUM, 40)


@pytest.mark.parametrize(
    "text",
    [
        f"STRIPE_PUBLISHABLE_KEY=pk_live_{STRIPE_TAIL}\n",
        f'const stripe = Stripe("pk_test_{STRIPE_TAIL}");\n',
        f'stripe_key = "pk_live_{STRIPE_TAIL}"\n',
        f'```python\nSTRIPE_KEY = "pk_test_{STRIPE_TAIL}"\n```',
        f'{{"publishableKey": "{TOKEN}"}}',
        f"NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY={TOKEN}\n",
        f"RECAPTCHA_SITE_KEY={TOKEN}\n",
        f'<div class="h-captcha" data-sitekey="{TOKEN}"></div>\n',
        f'{{"siteKey": "{TOKEN}"}}',
        # Application Insights' connection string: where telemetry goes (JSON parses as
        # Python too, so the Python-aware pass reads it: its settings name no credential)
        '{\n  "ApplicationInsights": {\n    "ConnectionString": "InstrumentationKey='
        f'{UUID_KEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"'
        "\n  }\n}",
    ],
)
def test_keys_public_by_design_are_not_secrets(scanner: Scanner, text: str) -> None:
    """Stripe's publishable keys, a captcha's site key and Application Insights'
    instrumentation key are shipped to every browser: rules.toml's `public_by_design`, a
    documented decision."""
    assert secret_spans(scanner, text) == []


@pytest.mark.parametrize(
    "text",
    [
        f"STRIPE_SECRET_KEY=sk_live_{STRIPE_TAIL}\n",
        f"RECAPTCHA_SECRET_KEY={TOKEN}\n",
        f'stripe_key = "rk_live_{STRIPE_TAIL}"\n',
        f"SITE_API_KEY={TOKEN}\n",
        # a connection string whose settings hold a credential is still one, under a
        # setting's name no variable's would be judged by alone too
        f'conn_str = "InstrumentationKey={UUID_KEY};Password={PASSWORD}"',
        f'conn_str = "AccountEndpoint=https://acme.documents.azure.com:443/;PrimaryKey={TOKEN}=="',
        # a value that starts as a BuildKit secret's id does but names no source
        f"DB_PASSWORD=id={TOKEN}\n",
    ],
)
def test_the_secret_halves_beside_them_are_still_found(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text)


def test_the_table_patterns_hold_a_header_name_in_the_same_group() -> None:
    """The rows' readers take the header's name and an INSERT's columns at one index each
    for credential, id and date-of-birth tables."""
    for pattern in (readers.ID_TABLE, readers.DOB_TABLE):
        assert pattern.parse.groupindex == readers.TABLE.parse.groupindex


def test_a_cast_after_an_inserts_value_ends_the_value() -> None:
    """PostgreSQL's `'...'::text`: the row is read on past the cast, its value judged."""
    text = b"INSERT INTO users (name, password) VALUES ('bob', 'Xk9#mP2vL8qRz'::text);"
    found = [(f.rule_id, f.value) for f in read_all(text)]
    assert found == [("table-credential", "Xk9#mP2vL8qRz")]


@pytest.mark.parametrize(
    ("scheme", "credential"),
    [
        # a key that the bearer-token rule's look alone passes over
        ("Bearer", "0e8f8778bf5f1b79aa8f7b974aa7bc48"),
        ("Basic", base64.b64encode(b"deploy:Xk9mP2vL8qRzT4w").decode()),
    ],
)
def test_an_authorization_header_in_a_har_is_read_after_its_scheme(
    scanner: Scanner, scheme: str, credential: str
) -> None:
    """A HAR's or a Postman collection's header is a {name, value} record; its value a
    scheme, then the credential."""
    text = (
        '"headers": [\n  {\n    "name": "Authorization",\n'
        f'    "value": "{scheme} {credential}"\n  }}\n]'
    )
    assert secret_spans(scanner, text) == [credential]


@pytest.mark.parametrize("value", ["Bearer {{token}}", "Bearer <your token>", "Basic"])
def test_a_placeholder_or_a_bare_scheme_in_a_har_is_none(scanner: Scanner, value: str) -> None:
    text = f'{{"name": "Authorization", "value": "{value}"}}'
    assert secret_spans(scanner, text) == []


def test_a_spring_boot_failure_report_names_the_property_its_value_is_for(
    scanner: Scanner,
) -> None:
    text = (
        "Failed to bind properties under 'app' to com.acme.ClientProperties:\n\n"
        f'    Property: app.mailer-api-token\n    Value: "{HEX_KEY}"\n'
        '    Origin: System Environment Property "MAILER_API_TOKEN"\n'
    )
    assert secret_spans(scanner, text) == [HEX_KEY]
    unset = text.replace(f'"{HEX_KEY}"', '"${MAILER_API_TOKEN}"')
    assert secret_spans(scanner, unset) == []


def test_a_redis_hashs_credential_field_is_read_by_its_name(scanner: Scanner) -> None:
    text = f'> HGETALL integration:mailer\n1) "api_token"\n2) "{HEX_KEY}"\n3) "retries"\n4) "3"\n'
    assert secret_spans(scanner, text) == [HEX_KEY]
    assert secret_spans(scanner, '> HGETALL x\n1) "api_token"\n2) "pending"\n') == []


def test_a_digest_authorization_in_a_har_is_no_credential(scanner: Scanner) -> None:
    """Its auth-params (username=, realm=, response=) are no credential alone (review 20)."""
    response = "6629fae49393a05397450978507c4ef1"
    digest = f'Digest username=\\"Mufasa\\", realm=\\"x\\", response=\\"{response}\\"'
    assert secret_spans(scanner, f'{{"name": "Authorization", "value": "{digest}"}}') == []


def test_an_authorization_value_with_no_scheme_is_judged_as_any_value(scanner: Scanner) -> None:
    text = '{"name": "Authorization", "value": "Xk9#mP2vL8qRz!w"}'
    assert secret_spans(scanner, text) == ["Xk9#mP2vL8qRz!w"]


@pytest.mark.parametrize(
    "text",
    [
        "$ sudo cat /etc/ldap.secret\nWillow@2023!\n$ grep -v '^#' /etc/pam_ldap.conf\n",
        "$ cat config/master.key\n9f88d096a5bdf6e0e6b219a42bec8715\n$ bin/rails credentials:edit\n",
    ],
)
def test_a_secret_file_printed_with_sudo_or_a_key_file_is_found(
    scanner: Scanner, text: str
) -> None:
    assert secret_spans(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        # mosquitto's bridge: a name, blanks, its value
        "connection bridge-01\naddress mqtt.cloud.example.net:8883\nremote_username gw-4411\n"
        "remote_password Tq7#vLm2Xp9k\n",
        # OpenWrt's UCI: `option NAME 'VALUE'`
        "config wifi-iface 'default_radio0'\n\toption ssid 'HomeNet'\n"
        "\toption key 'Kx9mP2vLq#77'\n",
        "config interface 'wg0'\n\toption proto 'wireguard'\n"
        "\toption private_key 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk='\n",
    ],
    ids=["mosquitto", "uci-wifi", "uci-wireguard"],
)
def test_a_setting_split_from_its_value_by_blanks_is_read(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "Your new password must differ from the last five. Use a\npassword combination.\n",
        "Password reset required\n",
        "password_file /etc/mosquitto/passwd\n",
        "token expired\n",
    ],
)
def test_a_sentences_words_on_a_line_are_no_spaced_setting(scanner: Scanner, text: str) -> None:
    assert secret_spans(scanner, text) == []


@pytest.mark.parametrize(
    "text",
    [
        "password=x" + "é" * 150 + " next\n",
        "password=" + "é" * 99 + "x" + "é" * 60 + " next\n",
        "remote_password " + "日本語" * 60 + " x\n",
    ],
)
def test_a_long_bare_value_of_letters_outside_ascii_is_cut_between_characters(
    scanner: Scanner, text: str
) -> None:
    """A bare value is read up to MAX_BARE_BYTES: the cut falls between two characters,
    never inside one (a UnicodeDecodeError stopped the scan)."""
    scanner.scan(text)  # raises if a character was cut


# Lead-ins that start the readers' and the rules' reads, for the property below.
_LEADS = (
    *("password=", "password: ", 'token = "', "remote_password ", "option key '", "api_key='"),
    *("| password | ", "name,ssn\n", "SIN|LAST\n", "DOB ", "PID|1||", "DMG*D8*", "$ cat secret\n"),
    *('[["password", "', "Cookie: sessionid=", "lftp -u a,", "net user a ", "curl -u a:"),
    *("INSERT INTO t (password) VALUES ('", '{"name": "cookie", "value": "', "\n", " "),
    "password: |\n  ",
)
# Letters of one, two, three and four bytes in UTF-8, invisible and fullwidth characters,
# and the punctuation the readers split on.
_VALUE_CHARACTERS = "aZ09é中😀\u200b\u00a0Ａ\\\"'`{}[]()<>|;:,=&%$#@!?*+-_/\n\t "


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.one_of(
            st.sampled_from(_LEADS),
            st.text(alphabet=_VALUE_CHARACTERS, max_size=300),
            st.text(alphabet="é中😀x", min_size=190, max_size=260),  # about MAX_BARE_BYTES
        ),
        max_size=8,
    )
)
def test_any_text_of_lead_ins_and_multibyte_values_is_scanned(
    scanner: Scanner, parts: list[str]
) -> None:
    """No cut at a byte cap falls inside a character: the scan never raises."""
    scanner.scan("".join(parts))


@pytest.mark.parametrize(
    "text",
    [
        # a YAML block scalar's line with no end within MAX_JUDGED_BYTES (_block_scalar)
        "password: |\n  x" + "é" * 2100,
        "password: |\n  " + "日本語" * 1400,
        # an SQL row given up inside a bare value cut at _MAX_BARE_ITEM, past MAX_CANDIDATES:
        # the rest reported as unverified from where the reading stopped
        ("INSERT INTO users (name, password) VALUES (x" + "é" * 40 + ", 'a');\n") * 2100,
    ],
)
def test_a_cut_at_a_count_of_bytes_keeps_whole_characters(scanner: Scanner, text: str) -> None:
    """A span cut at a fixed count of bytes, or a reader's stop reported as unverified, starts
    and ends between characters (review 40: a UnicodeDecodeError stopped the scan)."""
    scanner.scan(text)  # raises if a character was cut
