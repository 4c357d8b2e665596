"""`devpulse config`: the effective configuration and where each value came from."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import click

from devpulse.core.config import Config, _merge, read_toml, shown_url
from devpulse.core.ledger import default_ledger_path

# A value is "default" (the packaged defaults), "file" (the user's config file) or
# "environment" (read from an environment variable when the CLI started).
DEFAULT, FILE, ENVIRONMENT = "default", "file", "environment"
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# The words of a name that may hold a secret, in any case, and for a text, a list or a
# table as the plural too (api_keys, apiToken, AUTHORIZATION, a `secrets` table): a number
# under a plural is a count (long_context_tokens = 32000), under the word itself a value
# (password = 12345678).
SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass", "credential"}
    | {"passphrase", "auth", "authorization", "cookie", "webhook"}
)
# A name's last word that says what its value is other than a secret: a variable's name, a
# place, a count.
NOT_SECRET_LAST_WORDS = frozenset(
    {"env", "url", "uri", "endpoint", "path", "file", "dir", "host", "port", "header"}
    | {"name", "type", "id", "count", "limit", "len", "length", "ttl", "timeout", "s"}
)


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def config_command(ctx: click.Context, as_json: bool) -> None:
    """Show the effective configuration and where each value came from.

    One line per dotted key: `key = value  (default | file | environment)`. API keys are
    read from the environment variable each backend's api_key_env names: only whether it
    is set is shown, never its value. A value under a name that may hold a secret (a
    plugin's apiToken, headers.Authorization, a secrets table) is shown as <redacted>, and
    a secret the privacy rules find in any other value is redacted too.

    Exit codes: 0 shown, 2 usage or config error.
    """
    config: Config = ctx.obj.config
    chosen_by = _chosen_by(ctx.find_root().params.get("config_path"))
    source = None if config.source == "<defaults>" else config.source
    values = provenance(config)
    if as_json:
        click.echo(
            json.dumps(
                {"status": "ok", "source": source, "chosen_by": chosen_by, "values": values},
                ensure_ascii=False,
            )
        )
        return
    if source is None:
        click.echo("# no config file: the packaged defaults")
    else:
        click.echo(f"# file: {source} (chosen by {chosen_by})")
    for key, entry in values.items():
        click.echo(f"{key} = {json.dumps(entry['value'], ensure_ascii=False)}  ({entry['from']})")


def provenance(config: Config) -> dict[str, dict[str, Any]]:
    """Every dotted key of the effective config with its value and where it came from."""
    text = resources.files("devpulse").joinpath("default_config.toml").read_text("utf-8")
    defaults = tomllib.loads(text)
    user: dict[str, Any] = {}
    if config.source != "<defaults>":
        user = read_toml(Path(config.source))  # the CLI has just loaded this very file
    values: dict[str, dict[str, Any]] = {}
    _walk(_merge(defaults, user), user, "", values)
    _environment(config, values)
    return values


def _walk(
    merged: Mapping[str, Any],
    user: Any,
    prefix: str,
    out: dict[str, dict[str, Any]],
    names: tuple[str, ...] = (),
) -> None:
    for name, value in merged.items():
        key = f"{prefix}.{_part(name)}" if prefix else _part(name)
        mine = user.get(name) if isinstance(user, Mapping) else None
        from_file = isinstance(user, Mapping) and name in user
        path = (*names, str(name))
        if isinstance(value, Mapping) and value:
            _walk(value, mine, key, out, path)
            continue
        out[key] = {"value": _shown(path, value), "from": FILE if from_file else DEFAULT}


def _shown(path: tuple[str, ...], value: Any) -> Any:
    """`value` as `devpulse config` may print it: hidden under a name that may hold a
    secret, anywhere on its path (a plugin's apiToken, its headers' Authorization, a
    `secrets` table's entries); elsewhere with a URL's password and query values masked
    (user:***@, ?key=***) and any secret the privacy rules find redacted (a token in an
    allowlist's pattern, a webhook's URL)."""
    from devpulse.plugins.privacy.redact import redact  # noqa: PLC0415  # only if shown

    if isinstance(value, bool) or value in ("", [], {}):
        return value
    if _looks_secret(path, plural=isinstance(value, str | list | dict)):
        return "<redacted>"
    if isinstance(value, str):
        return redact(shown_url(value))
    if isinstance(value, list):  # an array, of tables too: each entry judged by its path
        return [_shown(path, v) for v in value]
    if isinstance(value, Mapping):
        return {k: _shown((*path, str(k)), v) for k, v in value.items()}
    return value


def _environment(config: Config, values: dict[str, dict[str, Any]]) -> None:
    """Values the environment decides: the ledger's default path and each API key."""
    if not config.ledger.path:
        where = ENVIRONMENT if os.environ.get("XDG_DATA_HOME") else DEFAULT
        values["ledger.path"] = {"value": str(default_ledger_path()), "from": where}
    keys = {
        f"backends.{_part(name)}.api_key_env": backend.api_key_env
        for name, backend in config.backends.items()
        if backend.api_key_env
    }
    for key in list(values):
        values[key] = values.pop(key)  # the same order, each key after its api_key_env
        env = keys.get(key)
        if env:
            is_set = "set" if os.environ.get(env) else "not set"
            values[key.removesuffix("_env")] = {"value": f"{is_set} (${env})", "from": ENVIRONMENT}


def _part(name: object) -> str:
    """A key as TOML writes it: bare when it can be, quoted otherwise (a name with a dot)."""
    text = str(name)
    return text if BARE_KEY.fullmatch(text) else json.dumps(text)


def _chosen_by(option: str | None) -> str:
    """What chose the config file: the --config option, $DEVPULSE_CONFIG, or the XDG path."""
    if option is not None:
        return "--config"
    if os.environ.get("DEVPULSE_CONFIG"):
        return "$DEVPULSE_CONFIG"
    return "$XDG_CONFIG_HOME" if os.environ.get("XDG_CONFIG_HOME") else "~/.config"


def _looks_secret(path: tuple[str, ...], *, plural: bool) -> bool:
    """Whether a name on `path` may hold a secret (SECRET_WORDS, or any entry of a
    `headers` table): a table's name whatever its entry's, or the entry's own unless its
    last word says what it is instead (`*_env` names a variable, `auth_url` a place).
    `plural`: a plural counts too (api_keys), for a text, a list or a table; a number under
    one is a count (long_context_tokens = 32000)."""
    from devpulse.plugins.privacy.checks import name_words  # noqa: PLC0415  # only if shown

    def secret(words: list[str]) -> bool:
        return any(
            w in SECRET_WORDS or (plural and w.endswith("s") and w[:-1] in SECRET_WORDS)
            for w in words
        )

    parents = [w for name in path[:-1] for w in name_words(name)]
    if "headers" in parents or secret(parents):
        return True  # under a secrets table, or a header (X-Signature): whatever its name
    last = name_words(path[-1])  # apiToken: api, token
    return not (last[-1:] and last[-1] in NOT_SECRET_LAST_WORDS) and secret(last)
