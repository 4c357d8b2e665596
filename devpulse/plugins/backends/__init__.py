"""Dispatch backends: one plugin per configured backend, chosen by its `kind`.

Each imports its client library (anthropic, ollama, httpx) on first use, in
`prepare_dispatch`, never at start-up: routing, scanning and memory checks need none.
"""

from __future__ import annotations

from devpulse.core.config import Config
from devpulse.plugins.backends.anthropic_backend import AnthropicBackend
from devpulse.plugins.backends.base import Backend
from devpulse.plugins.backends.ollama_backend import OllamaBackend
from devpulse.plugins.backends.openai_compat import OpenAICompatBackend

KINDS: dict[str, type[Backend]] = {
    "ollama": OllamaBackend,
    "anthropic": AnthropicBackend,
    "openai_compat": OpenAICompatBackend,
}


def configured_backends(config: Config) -> list[tuple[str, Backend]]:
    """A plugin for every backend whose kind DevPulse knows (others need their own plugin)."""
    return [
        (
            f"devpulse.backend.{name}",
            KINDS[backend.kind](name, backend, config.limits(name)),
        )
        for name, backend in config.backends.items()
        if backend.kind in KINDS
    ]
