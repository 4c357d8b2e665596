"""What the configured local servers say: loaded models (reclaimable memory) and model metadata.

Loaded models come from the `loaded_models` hook, which each backend plugin answers for its
own server. Model metadata: Ollama through the real `ollama` client (`/api/show`,
`/api/tags`); llama-server through `/props` (the model file and context it serves) and
`/models` (in router mode, each model's status and launch arguments). Every call has a
short timeout and a server that does not answer is reported as such, never as an error.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devpulse.core.config import BackendConfig, Config
from devpulse.core.errors import DevPulseError
from devpulse.core.types import LoadedModel, same_model
from devpulse.plugins.backends.llama_host import (
    TIMEOUT_S,
    call_json,
    launch_settings,
    root,
    server_path,
)
from devpulse.plugins.backends.ollama_backend import host_failures
from devpulse.plugins.preflight.estimator import (
    BATCH,
    LLAMA_SERVER_DEFAULT,
    MAX_BATCH,
    MAX_CONTEXT,
    UBATCH,
    Architecture,
    ModelUnknown,
    Slots,
)

MAX_SLOTS = 1 << 12  # far above any real server; a larger count is not believed
# llama.cpp's words for a switch that is on, in its environment variables (LLAMA_ARG_...)
_ON = ("1", "true", "on", "enabled")


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model a llama-server serves: its GGUF file, the context its cache holds in all, and
    how its slots lay that cache out."""

    model: str
    path: str
    ctx: int | None  # None: not given, so llama-server uses the model's trained context
    slots: Slots = LLAMA_SERVER_DEFAULT


def local_backends(config: Config) -> list[str]:
    """The backends declared on this machine: the ones that may host models."""
    return [name for name, backend in config.backends.items() if backend.side.value == "local"]


def routed_backend(config: Config, model: str) -> str | None:
    """The local backend the router sends `model` to: the one the local default or a local
    routing entry names it with (the default first), or None when no route names it."""
    routes = [(config.local.backend, config.local.model)] + [
        (target.backend or config.local.backend, target.model)
        for target in config.routing.values()
        if target.side.value == "local" and target.model is not None
    ]
    return next((backend for backend, name in routes if same_model(name, model)), None)


def across_servers(config: Config, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """`keys` ((backend, model) pairs, as the ledger books a request's model), each also under
    every other local backend at the same server: two backends for one server (an Ollama and
    its OpenAI-compatible /v1, say) list the same models, so a model busy through one of them
    is busy in the other's listing too."""
    servers = {
        name: root(b).lower()
        for name, b in config.backends.items()
        if b.side.value == "local" and b.base_url
    }
    out: set[tuple[str, str]] = set()
    for backend, model in keys:
        out.add((backend, model))
        here = servers.get(backend)
        out.update((other, model) for other, there in servers.items() if here and there == here)
    return out


def loaded_models(config: Config, hook: Any) -> tuple[list[LoadedModel], list[str]]:
    """Models loaded on the local servers now (the `loaded_models` hook of `hook`, a plugin
    manager's hook relay), and a note for each server that did not answer. A plugin's
    listing that fails some other way (a third-party backend's bug, a server's odd answer)
    is such a note too, naming the error: one server's listing never fails the others, nor
    the request being checked."""
    loaded: list[LoadedModel] = []
    notes: list[str] = []
    for name in local_backends(config):
        try:
            found = hook.loaded_models(backend=name)
        except Exception as exc:
            url = config.backends[name].shown_url
            notes.append(f"{name} ({url}) did not answer: {listing_failure(exc)}")
            continue
        loaded.extend(found or ())
    return loaded, notes


def listing_failure(exc: BaseException) -> str:
    """Why a server's listing failed, for a note: DevPulse's own errors say it in words, any
    other (a third-party plugin's bug) is named by its type too."""
    return str(exc) if isinstance(exc, DevPulseError) else f"{type(exc).__name__}: {exc}"


def llama_server_model(backend: BackendConfig, model: str, *, any_name: bool) -> ServedModel:
    """The GGUF file and context behind `model` on the llama-server at `backend`.

    A single-model server answers every model name with its one model, so with `any_name`
    (the backend was chosen for the request) any name is its model; otherwise (looking a
    name up) the name must be its alias or file name. A router matches its listed ids.
    Raises ModelUnknown when the server does not answer, has no `/props` (LM Studio, vLLM)
    or has no such model.
    """
    where = f"llama-server at {backend.shown_url}"
    try:
        props = _get_json(backend, "/props")
        if props.get("role") == "router":
            # the router's environment, which the model's server inherits, where it can be read
            environment = (launch_settings(backend) or ([], {}))[1]
            found = _router_model(_get_json(backend, "/models"), model, where, environment)
            return dataclasses.replace(found, path=server_path(backend, found.path))
    except urllib.error.HTTPError as exc:
        hint = " (no /props: not a llama-server?)" if exc.code == 404 else ""
        raise ModelUnknown(f"{where} answered HTTP {exc.code}{hint}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ModelUnknown(f"{where} did not answer ({reason})") from None
    path = props.get("model_path")
    if not isinstance(path, str) or not path:
        raise ModelUnknown(f"{where} does not say which model file it serves")
    file = os.path.basename(path)
    alias = str(props.get("model_alias") or file)
    if not any_name and model not in (alias, file, file.removesuffix(".gguf")):
        raise ModelUnknown(f"{where} serves {alias!r}, not {model!r}")
    # n_ctx here is a slot's context: the whole cache when the slots share one, a slot's
    # share when each has its own. Which, the server's settings say (its command line and
    # environment, read where it runs here: a few ms once per estimate, so only when there
    # are slots to lay out); where they cannot be read, llama-server's default when it
    # picks the slot count itself (one cache).
    settings = props.get("default_generation_settings")
    ctx = _count(settings.get("n_ctx") if isinstance(settings, dict) else None, MAX_CONTEXT)
    count = _count(props.get("total_slots"), MAX_SLOTS) or 1
    launch = launch_settings(backend) if count > 1 else None
    if launch is None or not _is_llama_server(launch[0]):  # unseen, or a proxy in front
        slots = Slots(count, known=count == 1)
    else:
        slots = dataclasses.replace(_slots(*launch), count=count)
    if ctx is not None and not slots.unified:
        ctx = min(ctx * count, MAX_CONTEXT)
    return ServedModel(alias, path, ctx, slots)


def _router_model(
    listing: dict[str, Any], model: str, where: str, environment: dict[str, str] | None = None
) -> ServedModel:
    """A router's model: its file, context and slots from the arguments it launches the
    model with, and the router's `environment` (which the model's server inherits)."""
    environment = environment or {}
    for entry in listing.get("data", []):
        if model != entry.get("id") and model not in (entry.get("aliases") or []):
            continue
        args = [str(a) for a in (entry.get("status") or {}).get("args") or []]
        path = _option(args, "-m", "--model")
        if path is None:
            raise ModelUnknown(f"{where} lists {model!r} but not its model file")
        ctx = _count(_whole(_option(args, "-c", "--ctx-size")), MAX_CONTEXT)
        return ServedModel(str(entry.get("id")), path, ctx, _slots(args, environment))
    raise ModelUnknown(f"{where} (router) has no model {model!r}")


def _is_llama_server(args: list[str]) -> bool:
    """Whether a command line runs llama-server itself (a proxy's says nothing of its slots)."""
    return bool(args) and os.path.basename(args[0]).startswith("llama-server")


def _count(value: Any, most: int) -> int | None:
    """`value` if it is a whole number from 1 to `most`, else None."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= most
    return value if ok else None


def _slots(args: list[str], environment: dict[str, str]) -> Slots:
    """How llama-server lays out its cache (slots, sharing, window size, micro-batch), from
    its arguments and environment (an argument wins over its LLAMA_ARG_ variable, as
    llama.cpp reads them). A slot count it picks itself (none given, or -1) is 4 in one
    cache, whatever else is set; one given is a cache per slot unless `-kvu` says otherwise.
    A count past belief counts as none given."""
    given = _given(args, environment, ("-np", "--parallel"), "LLAMA_ARG_N_PARALLEL")
    if given is None or not 0 < given <= MAX_SLOTS:
        count, unified = LLAMA_SERVER_DEFAULT.count, True
    else:
        count = given
        unified = _flag(args, environment, ("-kvu", "--kv-unified"), "LLAMA_ARG_KV_UNIFIED")
    swa_full = _flag(args, environment, ("--swa-full",), "LLAMA_ARG_SWA_FULL")
    # the micro-batch, at most the logical batch (llama.cpp clamps it so)
    ubatch = _count(
        _given(args, environment, ("-ub", "--ubatch-size"), "LLAMA_ARG_UBATCH"), MAX_BATCH
    )
    batch = _count(_given(args, environment, ("-b", "--batch-size"), "LLAMA_ARG_BATCH"), MAX_BATCH)
    return Slots(count, unified, swa_full, min(ubatch or UBATCH, batch or BATCH))


def _given(
    args: list[str], environment: dict[str, str], names: tuple[str, ...], env: str
) -> int | None:
    """A number setting: its argument, else its environment variable; None if neither is a
    number."""
    return _whole(_option(args, *names) or environment.get(env))


def _flag(args: list[str], environment: dict[str, str], names: tuple[str, ...], env: str) -> bool:
    """A switch: the last of its flags on the command line (`-kvu`, or its negation
    `-no-kvu`), else its environment variable, else off."""
    negations = {prefix + name.lstrip("-") for name in names for prefix in ("-no-", "--no-")}
    found = [arg in names for arg in args if arg in names or arg in negations]
    if found:
        return found[-1]
    return environment.get(env, "").strip().lower() in _ON


def _whole(value: str | None) -> int | None:
    """A command-line count: an optional minus sign and up to 10 digits."""
    if value is None:
        return None
    digits = value.removeprefix("-")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 10):
        return None
    return int(value)


def _option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg in names:
            return args[i + 1]
    return None


def _get_json(backend: BackendConfig, path: str) -> dict[str, Any]:
    return call_json(backend, path)


def ollama_architecture(backend: BackendConfig, model: str) -> Architecture:
    """The model's architecture from Ollama's `/api/show`, its size from `/api/tags`."""
    import ollama  # noqa: PLC0415  # lazy: only asking an Ollama server needs the client

    client = ollama.Client(host=backend.base_url, timeout=TIMEOUT_S * 3)
    try:
        shown = client.show(model)
        sizes = {m.model: int(m.size or 0) for m in client.list().models}
    except ollama.ResponseError as exc:
        if exc.status_code == 404:
            raise ModelUnknown(f"Ollama at {backend.shown_url} has no model {model!r}") from None
        raise ModelUnknown(f"Ollama at {backend.shown_url}: {exc.error}") from None
    except ValueError as exc:  # the client checks names itself (pydantic), or a reply is not JSON
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelUnknown(
            f"Ollama at {backend.shown_url} cannot describe {model!r} ({detail})"
        ) from None
    except host_failures() as exc:  # nothing listens, it never answers, or it hung up
        detail = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise ModelUnknown(f"Ollama at {backend.shown_url} did not answer ({reason})") from None
    size = next((n for name, n in sizes.items() if n and name and same_model(name, model)), 0)
    return Architecture.from_metadata(model, dict(shown.modelinfo or {}), size)
