"""The bundled backend kinds: ollama, anthropic and openai_compat.

They register through `register_backend_kinds`, as a third-party kind does. Each imports
its client library (anthropic, ollama, httpx) on first use, in `prepare`, never at
start-up: routing, scanning and memory checks need none.
"""

from __future__ import annotations

from devpulse.core.kinds import Register
from devpulse.hookspecs import hookimpl
from devpulse.plugins.backends.anthropic_backend import AnthropicBackend
from devpulse.plugins.backends.base import Backend
from devpulse.plugins.backends.ollama_backend import OllamaBackend
from devpulse.plugins.backends.openai_compat import OpenAICompatBackend

KINDS: dict[str, type[Backend]] = {
    "ollama": OllamaBackend,
    "anthropic": AnthropicBackend,
    "openai_compat": OpenAICompatBackend,
}


class BundledKinds:
    """Registers DevPulse's own kinds."""

    @hookimpl
    def register_backend_kinds(self, register: Register) -> None:
        for kind, backend in KINDS.items():
            register(kind, backend.from_spec)
