"""`devpulse config`: the effective values and where each came from, never a secret."""

from __future__ import annotations

import json
import os
import random
import string
from pathlib import Path
from typing import Any

import pytest

from devpulse.cli import main

SENTINEL = "sk-ant-SENTINEL-never-printed-7f3a9c"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def config_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, _ = run(capsys, *args, "config", "--json")
    assert code == 0
    payload: dict[str, Any] = json.loads(out)
    assert payload["status"] == "ok"
    return payload


def test_each_value_says_whether_it_came_from_the_file_the_defaults_or_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[local]\nmodel = "qwen3:8b"\n[routing]\nreasoning = { side = "local" }\n')
    payload = config_json(capsys, "--config", str(cfg))
    values = payload["values"]
    assert (payload["source"], payload["chosen_by"]) == (str(cfg), "--config")
    assert values["local.model"] == {"value": "qwen3:8b", "from": "file"}
    assert values["routing.reasoning.side"] == {"value": "local", "from": "file"}
    assert values["local.backend"] == {"value": "llama_server", "from": "default"}
    assert values["failover.budget_s"] == {"value": 60.0, "from": "default"}
    ledger = Path(os.environ["XDG_DATA_HOME"]) / "devpulse" / "ledger.sqlite3"
    assert values["ledger.path"] == {"value": str(ledger), "from": "environment"}


def test_the_human_output_is_one_key_value_and_source_per_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[prices]\n"qwen2.5-max" = { input = 1.0, output = 2.0 }\n')
    monkeypatch.setenv("DEVPULSE_CONFIG", str(cfg))
    code, out, _ = run(capsys, "config")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"# file: {cfg} (chosen by $DEVPULSE_CONFIG)"
    assert 'cloud.model = "claude-sonnet-4-6"  (default)' in lines
    assert 'prices."qwen2.5-max".input = 1.0  (file)' in lines
    assert any(
        line.startswith("ledger.path = ") and line.endswith("(environment)") for line in lines
    )


def test_without_a_file_everything_is_a_default(capsys: pytest.CaptureFixture[str]) -> None:
    payload = config_json(capsys)
    assert payload["source"] is None
    sources = {entry["from"] for key, entry in payload["values"].items() if key != "ledger.path"}
    assert sources == {"default", "environment"}  # the API key's variable is environment
    assert run(capsys, "config")[1].startswith("# no config file")


def test_a_ledger_path_set_in_the_file_is_from_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "l.sqlite3"}"\n')
    values = config_json(capsys, "--config", str(cfg))["values"]
    assert values["ledger.path"] == {"value": str(tmp_path / "l.sqlite3"), "from": "file"}


def test_an_api_key_is_shown_as_set_never_printed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[plugins.acme]\napi_token = "{SENTINEL}"\nregion = "eu"\n')
    code, out, err = run(capsys, "--config", str(cfg), "config", "--json")
    assert code == 0
    assert SENTINEL not in out + err
    values = json.loads(out)["values"]
    assert values["backends.anthropic.api_key"] == {
        "value": "set ($ANTHROPIC_API_KEY)",
        "from": "environment",
    }
    assert values["plugins.acme.api_token"]["value"] == "<redacted>"
    assert values["plugins.acme.region"] == {"value": "eu", "from": "file"}
    code, out, err = run(capsys, "--config", str(cfg), "config")
    assert code == 0
    assert SENTINEL not in out + err
    assert 'backends.anthropic.api_key = "set ($ANTHROPIC_API_KEY)"  (environment)' in out


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('apiToken = "{0}"', "plugins.acme.apiToken"),  # camelCase
        ('accessToken = "{0}"', "plugins.acme.accessToken"),
        ('AUTHORIZATION = "Bearer {0}"', "plugins.acme.AUTHORIZATION"),
        ('headers = {{ Authorization = "Basic {0}" }}', "plugins.acme.headers.Authorization"),
        ('api_keys = ["{0}"]', "plugins.acme.api_keys"),  # a plural, a list
        ('pwd = "{0}"', "plugins.acme.pwd"),
        ('secrets = {{ db = "{0}" }}', "plugins.acme.secrets.db"),  # under a secrets table
        ('secrets = {{ PROD_ENV = "{0}" }}', "plugins.acme.secrets.PROD_ENV"),  # any name there
        ('passphrase = "{0}"', "plugins.acme.passphrase"),
        ('headers = {{ X-Signature = "{0}" }}', "plugins.acme.headers.X-Signature"),  # any header
        ("password = 12345678{1}", "plugins.acme.password"),  # a number, under its name
    ],
)
def test_a_plugins_secret_under_any_name_is_never_printed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, line: str, key: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[plugins.acme]\n{line.format(SENTINEL, 90210)}\nretries = 3\n")
    for args in (("config", "--json"), ("config",)):
        code, out, err = run(capsys, "--config", str(cfg), *args)
        assert code == 0
        assert SENTINEL not in out + err
        assert "1234567890210" not in out + err
    values = config_json(capsys, "--config", str(cfg))["values"]
    assert values[key]["value"] == "<redacted>"
    assert values["plugins.acme.retries"] == {"value": 3, "from": "file"}


def test_a_secret_inside_an_array_of_tables_is_hidden_and_a_place_is_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[plugins.acme]\nhooks = [{{ name = "deploy", apiToken = "{SENTINEL}" }}]\n'
        'auth_url = "https://login.example.com/oauth"\nlong_context_tokens = 32000\n'
    )
    code, out, err = run(capsys, "--config", str(cfg), "config", "--json")
    assert code == 0
    assert SENTINEL not in out + err
    values = json.loads(out)["values"]
    assert values["plugins.acme.hooks"]["value"] == [{"name": "deploy", "apiToken": "<redacted>"}]
    assert values["plugins.acme.auth_url"]["value"] == "https://login.example.com/oauth"
    assert values["plugins.acme.long_context_tokens"]["value"] == 32000


def test_a_token_in_any_other_value_is_redacted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """What the privacy rules find is redacted wherever it stands: an allowlist's pattern
    that names a token whole, a Slack webhook's URL."""
    token = "ghp_" + "".join(random.Random(3).choices(string.ascii_letters + string.digits, k=36))
    webhook = "https://hooks.slack.com/services/T01234567/B01234567/" + token[4:28]
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[privacy]\nallowlist = ["{token}"]\n[plugins.acme]\nnotify = "{webhook}"\n')
    code, out, err = run(capsys, "--config", str(cfg), "config", "--json")
    assert code == 0
    assert token[4:28] not in out + err


def test_an_unset_api_key_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    values = config_json(capsys)["values"]
    assert values["backends.anthropic.api_key"]["value"] == "not set ($ANTHROPIC_API_KEY)"
    keys = list(values)
    assert (
        keys.index("backends.anthropic.api_key") == keys.index("backends.anthropic.api_key_env") + 1
    )


def test_a_key_in_a_base_url_query_is_masked(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[backends.gateway]\nside = "local"\nkind = "openai_compat"\n'
        f'base_url = "http://127.0.0.1:9/v1?key={SENTINEL}&region=eu"\n'
    )
    values = config_json(capsys, "--config", str(cfg))["values"]
    assert values["backends.gateway.base_url"] == {
        "value": "http://127.0.0.1:9/v1?key=***&region=***",
        "from": "file",
    }
    code, out, err = run(capsys, "--config", str(cfg), "config")
    assert code == 0
    assert SENTINEL not in out + err
    assert 'backends.gateway.base_url = "http://127.0.0.1:9/v1?key=***&region=***"' in out
