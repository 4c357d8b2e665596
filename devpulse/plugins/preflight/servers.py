"""What the configured local servers say: loaded models (reclaimable memory) and model metadata.

Ollama is asked through the real `ollama` client (`/api/ps`, `/api/show`, `/api/tags`);
llama-server through `/props` (the model file and context it serves) and `/models` (in
router mode, each model's status and launch arguments). Every call has a short timeout and a
server that does not answer is reported as such, never as an error.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ollama

from devpulse.core.config import BackendConfig, Config
from devpulse.plugins.preflight.estimator import Architecture, ModelUnknown, read_gguf

MB = 1024 * 1024
TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model in memory on a local server; `unloadable` when the server can let it go."""

    backend: str
    model: str
    size_mb: int
    unloadable: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "size_mb": self.size_mb,
            "unloadable": self.unloadable,
        }


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model a llama-server serves: its GGUF file and the context it runs at."""

    model: str
    path: str
    ctx: int | None  # None: not given, so llama-server uses the model's trained context


def local_servers(config: Config) -> Iterator[tuple[str, BackendConfig]]:
    for name, backend in config.backends.items():
        if backend.side.value == "local" and backend.base_url:
            yield name, backend


def loaded_models(config: Config) -> tuple[list[LoadedModel], list[str]]:
    """Models loaded on the local servers now, and a note for each server that did not answer."""
    loaded: list[LoadedModel] = []
    notes: list[str] = []
    for name, backend in local_servers(config):
        try:
            if backend.kind == "ollama":
                loaded.extend(_ollama_loaded(name, backend))
            elif backend.kind == "openai_compat":
                loaded.extend(_llama_loaded(name, backend))
        except (OSError, ValueError, http.client.HTTPException, ollama.ResponseError) as exc:
            notes.append(f"{name} ({backend.base_url}) did not answer: {type(exc).__name__}")
    return loaded, notes


def _ollama_loaded(name: str, backend: BackendConfig) -> list[LoadedModel]:
    client = ollama.Client(host=backend.base_url, timeout=TIMEOUT_S)
    return [
        LoadedModel(name, m.model or m.name or "?", int(m.size or 0) // MB)
        for m in client.ps().models
    ]


def _llama_loaded(name: str, backend: BackendConfig) -> list[LoadedModel]:
    """llama-server lists its models at GET /models: in router mode each with a status, in
    single-model mode just the one it was started with (loaded for as long as it runs)."""
    listing = _get_json(backend, "/models")
    out = []
    for model in listing.get("data", []):
        size = int((model.get("meta") or {}).get("size") or 0)
        if "status" in model:
            if (model.get("status") or {}).get("value") == "loaded":
                out.append(LoadedModel(name, model.get("id", "?"), size // MB))
        else:
            size = size or _served_bytes(backend)
            out.append(LoadedModel(name, model.get("id", "?"), size // MB, unloadable=False))
    return out


def _served_bytes(backend: BackendConfig) -> int:
    """The weights of a single-model server's GGUF file, for servers whose listing has no size."""
    try:
        path = _get_json(backend, "/props").get("model_path")
        return read_gguf(path).weights_bytes if isinstance(path, str) and path else 0
    except (ModelUnknown, OSError, ValueError, http.client.HTTPException):
        return 0


def llama_server_model(backend: BackendConfig, model: str, *, any_name: bool) -> ServedModel:
    """The GGUF file and context behind `model` on the llama-server at `backend`.

    A single-model server answers every model name with its one model, so with `any_name`
    (the backend was chosen for the request) any name is its model; otherwise (looking a
    name up) the name must be its alias or file name. A router matches its listed ids.
    Raises ModelUnknown when the server does not answer, has no `/props` (LM Studio, vLLM)
    or has no such model.
    """
    where = f"llama-server at {backend.base_url}"
    try:
        props = _get_json(backend, "/props")
        if props.get("role") == "router":
            return _router_model(_get_json(backend, "/models"), model, where)
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
    # n_ctx here is a slot's context: the whole cache with a unified KV cache (llama-server's
    # default when it picks the slot count), one slot's share when -np is given without -kvu.
    settings = props.get("default_generation_settings")
    ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return ServedModel(alias, path, ctx if isinstance(ctx, int) and ctx > 0 else None)


def _router_model(listing: dict[str, Any], model: str, where: str) -> ServedModel:
    """A router's model: its file and context from the arguments it launches the model with."""
    for entry in listing.get("data", []):
        if model != entry.get("id") and model not in (entry.get("aliases") or []):
            continue
        args = [str(a) for a in (entry.get("status") or {}).get("args") or []]
        path = _option(args, "-m", "--model")
        if path is None:
            raise ModelUnknown(f"{where} lists {model!r} but not its model file")
        ctx = _option(args, "-c", "--ctx-size")
        return ServedModel(str(entry.get("id")), path, int(ctx) if ctx and ctx.isdigit() else None)
    raise ModelUnknown(f"{where} (router) has no model {model!r}")


def _option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg in names:
            return args[i + 1]
    return None


def _root(backend: BackendConfig) -> str:
    """The server root: llama-server serves /props and /models beside /v1."""
    return (backend.base_url or "").removesuffix("/").removesuffix("/v1")


def _get_json(backend: BackendConfig, path: str) -> dict[str, Any]:
    """GET a llama-server endpoint beside /v1, with the backend's key where it has one
    (llama-server started with --api-key wants it for /props)."""
    request = urllib.request.Request(f"{_root(backend)}{path}")
    key = os.environ.get(backend.api_key_env) if backend.api_key_env else None
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
        body = json.load(resp)
    if not isinstance(body, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return body


def ollama_architecture(backend: BackendConfig, model: str) -> Architecture:
    """The model's architecture from Ollama's `/api/show`, its size from `/api/tags`."""
    client = ollama.Client(host=backend.base_url, timeout=TIMEOUT_S * 3)
    try:
        shown = client.show(model)
        sizes = {m.model: int(m.size or 0) for m in client.list().models}
    except ollama.ResponseError as exc:
        if exc.status_code == 404:
            raise ModelUnknown(f"Ollama at {backend.base_url} has no model {model!r}") from None
        raise ModelUnknown(f"Ollama at {backend.base_url}: {exc.error}") from None
    except (OSError, urllib.error.URLError) as exc:
        raise ModelUnknown(f"Ollama at {backend.base_url} did not answer ({exc})") from None
    except ValueError as exc:  # the client checks names itself (pydantic), or a reply is not JSON
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelUnknown(
            f"Ollama at {backend.base_url} cannot describe {model!r} ({detail})"
        ) from None
    size = sizes.get(model) or sizes.get(f"{model}:latest") or 0
    return Architecture.from_metadata(model, dict(shown.modelinfo or {}), size)
