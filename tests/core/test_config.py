from __future__ import annotations

from pathlib import Path

import pytest

from devpulse import ConfigError, PrivacyLevel, Side, TaskClass, config_from_mapping, load_config
from devpulse.core.config import endpoint, shown_url


def test_defaults_work_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVPULSE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config = load_config()
    assert config.source == "<defaults>"
    assert config.privacy.local_only_at is PrivacyLevel.INTERNAL
    assert set(config.routing) == set(TaskClass)
    assert config.routing[TaskClass.REASONING].side is Side.CLOUD
    assert config.backend_side("anthropic") is Side.CLOUD


def test_the_default_first_token_limits_leave_time_for_a_fallback() -> None:
    """A server that never answers fails its attempt (and counts against its circuit) before
    the budget runs out, rather than using up every request's budget."""
    failover = config_from_mapping({}).failover
    for limit in (failover.cloud_timeout_s, failover.local_timeout_s):
        assert limit + failover.cloud_timeout_s < failover.budget_s


def test_user_file_merges_over_defaults_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[routing]\nreasoning = { side = "local", model = "qwen3:32b" }\n')
    config = load_config(path)
    assert config.routing[TaskClass.REASONING].side is Side.LOCAL
    assert config.routing[TaskClass.REASONING].model == "qwen3:32b"
    assert config.routing[TaskClass.DRAFTING].side is Side.LOCAL  # untouched default
    assert config.source == str(path)


def test_env_var_and_xdg_path_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "devpulse").mkdir(parents=True)
    (xdg / "devpulse" / "config.toml").write_text("[failover]\nmax_attempts = 5\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.delenv("DEVPULSE_CONFIG", raising=False)
    assert load_config().failover.max_attempts == 5
    other = tmp_path / "other.toml"
    other.write_text("[failover]\nmax_attempts = 7\n")
    monkeypatch.setenv("DEVPULSE_CONFIG", str(other))
    assert load_config().failover.max_attempts == 7
    monkeypatch.setenv("DEVPULSE_CONFIG", "")  # set to nothing: not set
    assert load_config().failover.max_attempts == 5
    monkeypatch.setenv("DEVPULSE_CONFIG", "   ")  # a name that names no file
    with pytest.raises(ConfigError, match=r"^\$DEVPULSE_CONFIG: give a file, not an empty name"):
        load_config()


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"privacy": {"local_only_at": "top"}}, "privacy.local_only_at: unknown privacy level"),
        ({"privacy": {"local_only_at": 3}}, "privacy.local_only_at: expected a string"),
        (
            {"classify": {"long_context_tokens": "many"}},
            "classify.long_context_tokens: expected an integer",
        ),
        (
            {"classify": {"long_context_tokens": True}},
            "classify.long_context_tokens: expected an integer",
        ),
        ({"routing": {"bogus": {"side": "local"}}}, "routing.bogus: unknown task class 'bogus'"),
        ({"routing": {"drafting": {"side": "moon"}}}, "routing.drafting.side: unknown side 'moon'"),
        ({"routing": {"drafting": {"speed": 1}}}, "routing.drafting.speed: unknown key"),
        ({"routing": {"drafting": "local"}}, "routing.drafting: expected a table"),
        ({"backends": {"x": {"kind": "ollama"}}}, "backends.x.side: missing required key"),
        ({"local": {"backend": "nowhere"}}, "local.backend: unknown backend 'nowhere'"),
        (
            {"local": {"backend": "anthropic"}},
            "local.backend: backend 'anthropic' is cloud, not local",
        ),
        (
            {"routing": {"drafting": {"side": "local", "backend": "anthropic"}}},
            "routing.drafting.backend: backend 'anthropic' is cloud",
        ),
        ({"failover": {"max_attempts": 0}}, "failover.max_attempts: must be from 1 to 100"),
    ],
)
def test_bad_config_is_one_clear_line_naming_the_key(user: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(user)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_unreadable_and_invalid_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[privacy\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(broken)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[routing]\nbogus = { side = 'local' }\n")
    with pytest.raises(ConfigError, match=f"config {wrong}: routing.bogus"):
        load_config(wrong)


def test_plugin_tables_pass_through_untouched() -> None:
    config = config_from_mapping({"plugins": {"mine": {"limit": 5, "names": ["a"]}}})
    assert config.plugins["mine"] == {"limit": 5, "names": ["a"]}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("http://admin:pw@h/v1", "http://admin:***@h/v1"),
        ("http://h/v1?key=sk-abc", "http://h/v1?key=***"),
        ("https://h/v1?api_key=a&token=b&sig=c", "https://h/v1?api_key=***&token=***&sig=***"),
        ("http://u:p@h/v1?access_token=t#frag", "http://u:***@h/v1?access_token=***#***"),
        ("http://h/v1?sk-bare-key&debug=", "http://h/v1?***&debug="),
        ("https://sk-live-0123456789abcdef@gw.example/v1", "https://***@gw.example/v1"),
        ("http://[::1/v1?key=sk-abc", "http://[::1/v1?***"),  # urllib cannot read it
        ("not a url?key=x", "not a url?key=x"),  # no host: not a URL, left alone
    ],
)
def test_shown_url_masks_the_password_and_every_query_value(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_endpoint_joins_the_path_before_the_query() -> None:
    assert endpoint("http://h/v1/?key=k", "/models") == "http://h/v1/models?key=k"
    assert endpoint("http://h:1", "/api/tags") == "http://h:1/api/tags"
