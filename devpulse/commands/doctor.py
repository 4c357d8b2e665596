"""`devpulse doctor`: is the config loaded, each backend reachable, the ledger writable, and
memory visible? One line per check: ok, warn or fail.

A backend that does not answer fails the run only when it is the configured `[local]`
default: every local request goes there first. Any other backend that does not answer, and a
missing API key, is a warning: requests degrade to the other side rather than stop. The real
Anthropic API is never called; for it, only the key's variable is checked (never printed).
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from devpulse.core.config import BackendConfig, Config, endpoint, shown_url, without_userinfo
from devpulse.core.errors import ConfigError
from devpulse.core.exitcodes import ExitCode
from devpulse.core.ledger import SCHEMA_VERSION, Ledger, ledger_path
from devpulse.core.types import Side, same_model
from devpulse.plugins.backends.anthropic_backend import ANTHROPIC_API

if TYPE_CHECKING:
    from devpulse.core.plugins import BrokenPlugin

TIMEOUT_S = 2.0
OLLAMA_DEFAULT = "http://127.0.0.1:11434"
SHOWN_MODELS = 5


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, ok / warn / fail, and why."""

    name: str
    result: str
    detail: str


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def doctor_command(ctx: click.Context, as_json: bool) -> None:
    """Check the config, each backend, the ledger and the memory probes.

    A backend that does not answer fails only when it is the [local] default backend;
    other unreachable backends and a missing API key are warnings. Each check waits at
    most 2 seconds; the real Anthropic API is never called. An installed plugin that
    failed to load is a fail line naming it (other commands refuse to run).

    A config that cannot be loaded is the config check's fail line, and the checks that
    need the config are not run.

    Exit codes: 0 no check failed, 1 a check failed, 2 usage or config error.
    """
    app = ctx.obj
    error = getattr(app, "config_error", None)
    broken = getattr(app, "broken_plugins", ())
    if error is not None:  # the memory budget too is the config's (preflight.reserve_mb)
        checks = [check_unloaded(error), *(check_broken(b) for b in broken)]
    else:
        checks = run_checks(app.config, app.pm.hook.probe_memory, broken)
    failed = any(c.result == "fail" for c in checks)
    if as_json:
        payload = {"status": "fail" if failed else "ok", "checks": [asdict(c) for c in checks]}
        click.echo(json.dumps(payload, ensure_ascii=False))
    else:
        for c in checks:
            click.echo(f"{c.result:<4} {c.name}: {c.detail}")
    if error is not None:
        ctx.exit(int(ExitCode.USAGE))
    ctx.exit(int(ExitCode.PROBLEM if failed else ExitCode.OK))


def check_unloaded(error: ConfigError) -> Check:
    """The config check of a config that cannot be loaded: why, a secret in it redacted."""
    from devpulse.plugins.privacy.redact import redact  # noqa: PLC0415  # on this path only

    return Check("config", "fail", redact(" ".join(str(error).split())))


def run_checks(
    config: Config, probe: Callable[[], list[Any]], broken: Sequence[BrokenPlugin] = ()
) -> list[Check]:
    """Every check, in report order; the backends are asked at the same time. `broken`:
    the installed plugins that failed to load (left out of this run), one fail each."""
    where = config.source if config.source != "<defaults>" else "no file, the packaged defaults"
    checks = [Check("config", "ok", f"loaded ({where})")]
    checks.extend(check_broken(b) for b in broken)
    checks.extend(_backends(config))
    checks.append(check_local_sides(config))
    checks.append(check_limits(config))
    checks.append(check_allowlist(config))
    checks.append(check_ledger(config))
    checks.append(check_memory(probe))
    return checks


def _backends(config: Config) -> list[Check]:
    """Ask every backend at once, each bounded: a server that never answers is one line."""
    results: dict[str, Check] = {}

    def ask(name: str, backend: BackendConfig) -> None:
        try:
            results[name] = check_backend(config, name, backend)
        except Exception as exc:  # a check that broke is its line, not a thread's traceback
            results[name] = _unreachable(config, name, f"the check failed ({type(exc).__name__})")

    threads = [
        threading.Thread(target=ask, args=(name, backend), daemon=True)
        for name, backend in config.backends.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + TIMEOUT_S + 0.5  # one wait for all: they run at once
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [
        results.get(name) or _unreachable(config, name, f"no answer within {TIMEOUT_S:g} s")
        for name in config.backends
    ]


def check_backend(config: Config, name: str, backend: BackendConfig) -> Check:
    """Reachable, and which models it serves; for the Anthropic API, only whether a key is set."""
    label = f"backends.{name}"
    if backend.kind == "anthropic":
        base = (backend.base_url or ANTHROPIC_API).rstrip("/")
        if base == ANTHROPIC_API:
            return _api_key(label, backend)
        headers = {"anthropic-version": "2023-06-01"}
        key = os.environ.get(backend.api_key_env) if backend.api_key_env else None
        if key:
            headers["x-api-key"] = key
        return _probe(config, name, endpoint(base, "/v1/models"), headers, _ids)
    if backend.kind == "openai_compat":
        if not backend.base_url:
            return _unreachable(config, name, "no base_url configured")
        env = backend.api_key_env
        key = os.environ.get(env) if env else None
        if backend.side is Side.CLOUD and not key:  # OpenAI, OpenRouter: the key comes first
            return _api_key(label, backend)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return _probe(config, name, endpoint(backend.base_url, "/models"), headers, _ids)
    if backend.kind == "ollama":
        base = (backend.base_url or OLLAMA_DEFAULT).rstrip("/")
        return _probe(config, name, endpoint(base, "/api/tags"), {}, _ollama_names)
    if backend.kind is not None:
        return Check(label, "ok", f"not checked: kind {backend.kind!r} comes from a plugin")
    return Check(label, "ok", "not checked: no kind, so a plugin of its own serves it")


def _api_key(label: str, backend: BackendConfig) -> Check:
    env = backend.api_key_env
    if not env:
        return Check(label, "warn", "no api_key_env configured: cloud requests will fail")
    if not os.environ.get(env):
        return Check(
            label, "warn", f"no API key: ${env} is not set (cloud work fails over to local)"
        )
    return Check(label, "ok", f"API key set in ${env} (the API itself is not called)")


def _probe(
    config: Config,
    name: str,
    url: str,
    headers: dict[str, str],
    models_of: Callable[[Any], list[str]],
) -> Check:
    import http.client  # noqa: PLC0415  # doctor-only; keeps the CLI's start-up light
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    label, where = f"backends.{name}", shown_url(url)
    try:
        target, basic = without_userinfo(url)  # user:pw@host: Basic auth, as clients send it
        sent = {"Accept": "application/json", **headers}
        if basic is not None:
            sent["Authorization"] = basic
        request = urllib.request.Request(target, headers=sent)
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:
            body = reply.read(4 * 1024 * 1024)
    except urllib.error.HTTPError as exc:
        env = config.backends[name].api_key_env
        hint = f" (is ${env} the right key?)" if exc.code in (401, 403) and env else ""
        return Check(label, "warn", f"answers at {where} with HTTP {exc.code}{hint}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return _unreachable(config, name, f"nothing answers at {where} ({reason})")
    except http.client.HTTPException as exc:  # an SSH server, say: BadStatusLine, LineTooLong
        kind = type(exc).__name__
        return _unreachable(config, name, f"answers at {where}, but does not speak HTTP ({kind})")
    try:
        models = models_of(json.loads(body))
    except (ValueError, TypeError, KeyError, AttributeError):
        return Check(label, "warn", f"answers at {where}, but not with a model list")
    shown = ", ".join(models[:SHOWN_MODELS]) or "none"
    if len(models) > SHOWN_MODELS:
        shown += f" (+{len(models) - SHOWN_MODELS} more)"
    detail = f"answers at {where}; models: {shown}"
    missing = _missing_model(config, name, models)
    if missing:
        return Check(label, "warn", f"{detail}; but {missing}")
    return Check(label, "ok", detail)


def _missing_model(config: Config, name: str, models: list[str]) -> str | None:
    """Ollama serves only pulled models: is the [local] default model among them?"""
    if name != config.local.backend or config.backends[name].kind != "ollama":
        return None
    model = config.local.model
    if any(same_model(model, pulled) for pulled in models):
        return None
    return f"the [local] model {model!r} is not pulled (ollama pull {model})"


def _unreachable(config: Config, name: str, detail: str) -> Check:
    """`fail` for the [local] default backend, `warn` for any other."""
    result = "fail" if name == config.local.backend else "warn"
    return Check(f"backends.{name}", result, detail)


def _ids(payload: Any) -> list[str]:
    return [str(m["id"]) for m in payload["data"]]


def _ollama_names(payload: Any) -> list[str]:
    return [str(m["name"]) for m in payload["models"]]


def check_broken(broken: BrokenPlugin) -> Check:
    """An installed plugin that failed to load: every command but this and `plugins` refuses
    to run until it is fixed, uninstalled or left out with DEVPULSE_LOAD_PLUGINS."""
    from devpulse.plugins.privacy.redact import redact  # noqa: PLC0415  # on this path only

    return Check(
        f"plugins.{broken.entry_point}",
        "fail",
        f"{redact(broken.describe())}; other commands refuse to run until it is fixed, "
        "uninstalled or left out of DEVPULSE_LOAD_PLUGINS",
    )


# Cloud providers' API hosts (and their subdomains: an Azure OpenAI resource's): a backend
# declared local there sends what privacy keeps local to a cloud.
CLOUD_API_HOSTS = (
    "api.openai.com",
    "openai.azure.com",
    "api.anthropic.com",
    "openrouter.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.together.ai",
    "api.mistral.ai",
    "api.deepseek.com",
    "api.fireworks.ai",
    "api.x.ai",
    "api.perplexity.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "generativelanguage.googleapis.com",
    "ollama.com",
)


def check_local_sides(config: Config) -> Check:
    """Whether each backend declared local is reached on a machine of the user's own. The
    privacy invariant trusts the declaration: a backend named local whose URL is a cloud
    provider's API (or an address on the public internet) receives every secret that
    privacy keeps local (review 26). A server on this machine, on the local network or under
    a name of its own is not doubted."""
    public = [
        f"backends.{name} ({shown_url(backend.base_url)})"
        for name, backend in config.backends.items()
        if backend.side is Side.LOCAL and backend.base_url and _public(backend.base_url)
    ]
    if not public:
        return Check("local sides", "ok", "no backend declared local is a cloud's API")
    return Check(
        "local sides",
        "warn",
        f"declared local but reached on a cloud's API or a public address: {', '.join(public)};"
        ' what privacy keeps local goes there; declare it side = "cloud" unless the '
        "server is your own",
    )


def _public(url: str) -> bool:
    """Whether `url` names a cloud provider's API host or a public IP address."""
    try:
        host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    except ValueError:
        return False
    if any(host == h or host.endswith(f".{h}") for h in CLOUD_API_HOSTS):
        return True
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def check_limits(config: Config) -> Check:
    """Whether each backend's first-token limit can fire within a request's budget. One that
    cannot never does: a server that never answers then uses up the whole budget of every
    request sent to it, and, since a budget run-out proves nothing about a backend, is never
    counted against its circuit."""
    budget = config.failover.budget_s
    firsts = {name: config.limits(name).first_token_s for name in config.backends}
    late = [f"backends.{name} ({first:g} s)" for name, first in firsts.items() if first >= budget]
    if not late:
        return Check("limits", "ok", f"every first-token limit is below the {budget:g} s budget")
    return Check(
        "limits",
        "warn",
        f"first-token limit not below failover.budget_s ({budget:g} s): {', '.join(late)}; "
        "a server there that never answers uses up each request's budget and never opens "
        "its circuit",
    )


def check_allowlist(config: Config) -> Check:
    """Whether each privacy allowlist entry is anchored at both ends. One that is not allows
    every value it matches a part of: "ci-bot" would also let through a real secret that
    happens to contain it."""
    entries = config.privacy.allowlist
    loose = [
        f"privacy.allowlist[{i}]"
        for i, pattern in enumerate(entries)
        if not (pattern.startswith(("^", "\\A")) and pattern.endswith(("$", "\\z")))
    ]
    if not loose:
        return Check(
            "allowlist",
            "ok",
            f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, each anchored",
        )
    return Check(
        "allowlist",
        "warn",
        f"not anchored with ^ and $: {', '.join(loose)}; each allows every value that "
        "merely contains a match",
    )


def check_ledger(config: Config) -> Check:
    """Writable, at the schema version this DevPulse knows (opening migrates an older file)."""
    if not config.ledger.enabled:
        return Check("ledger", "ok", "disabled (ledger.enabled = false)")
    path = ledger_path(config)
    existed = path.is_file()
    try:
        ledger = Ledger(path)
    except ConfigError as exc:
        return Check("ledger", "fail", str(exc))
    version = f"schema version {ledger.schema_version} (current {SCHEMA_VERSION})"
    return Check("ledger", "ok", f"{path} writable, {version}{'' if existed else ', created now'}")


def check_memory(probe: Callable[[], list[Any]]) -> Check:
    """What the `probe_memory` hooks report: the memory local models can be loaded into."""
    try:
        found = probe()
    except Exception as exc:  # a broken third-party probe is what this check is for
        return Check("memory", "fail", f"a memory probe raised {type(exc).__name__}: {exc}")
    devices = [d for reading in found if reading for d in reading]
    if not devices:
        return Check("memory", "warn", "no memory probe reported a device")
    return Check(
        "memory",
        "ok",
        "; ".join(
            f"{d.device} ({d.kind}): {d.free_mb} MB free of {d.total_mb} MB, "
            f"budget {d.budget_mb} MB"
            for d in devices
        ),
    )
