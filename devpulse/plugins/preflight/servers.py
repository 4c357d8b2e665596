"""What the configured local servers say: loaded models (reclaimable memory) and model metadata.

Ollama is asked through the real `ollama` client (`/api/ps`, `/api/show`, `/api/tags`);
llama-server in router mode through its `/models` listing. Every call has a short timeout
and a server that does not answer is reported as such, never as an error.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ollama

from devpulse.core.config import BackendConfig, Config
from devpulse.plugins.preflight.estimator import Architecture, ModelUnknown

MB = 1024 * 1024
TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class LoadedModel:
    backend: str
    model: str
    size_mb: int

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "size_mb": self.size_mb}


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
                loaded.extend(_router_loaded(name, backend))
        except (OSError, ValueError, ollama.ResponseError) as exc:
            notes.append(f"{name} ({backend.base_url}) did not answer: {type(exc).__name__}")
    return loaded, notes


def _ollama_loaded(name: str, backend: BackendConfig) -> list[LoadedModel]:
    client = ollama.Client(host=backend.base_url, timeout=TIMEOUT_S)
    return [
        LoadedModel(name, m.model or m.name or "?", int(m.size or 0) // MB)
        for m in client.ps().models
    ]


def _router_loaded(name: str, backend: BackendConfig) -> list[LoadedModel]:
    """llama-server in router mode lists its models with their status at GET /models."""
    root = (backend.base_url or "").removesuffix("/").removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/models", timeout=TIMEOUT_S) as resp:
        listing = json.load(resp)
    out = []
    for model in listing.get("data", []):
        status = model.get("status") or {}
        if status.get("value") == "loaded":
            size = (model.get("meta") or {}).get("size") or 0
            out.append(LoadedModel(name, model.get("id", "?"), int(size) // MB))
    return out


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
    size = sizes.get(model) or sizes.get(f"{model}:latest") or 0
    return Architecture.from_metadata(model, dict(shown.modelinfo or {}), size)
