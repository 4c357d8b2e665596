"""Ollama through the real `ollama` client: chat, streaming, keep_alive, token counts.

Every request streams. The client drops an error response's headers, so a response hook
keeps the Retry-After of the last error this thread received.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devpulse.core.config import BackendConfig, Limits
from devpulse.core.errors import BackendError, Cause, StreamIncomplete
from devpulse.core.types import Chunk, Decision, LoadedModel, Request
from devpulse.plugins.backends.base import (
    Backend,
    ServerSettings,
    cause_for_status,
    context_error,
    function_tools,
    retry_after,
    timed_out,
)

if TYPE_CHECKING:
    import httpx
    import ollama

MB = 1024 * 1024
HOST_TIMEOUT_S = 1.0  # listing loaded models: a server that takes longer is not answering
UNLOAD_TIMEOUT_S = 10.0  # Ollama answers an unload once the runner has stopped


@dataclass(frozen=True, slots=True)
class OllamaSettings(ServerSettings):
    """Ollama's keys add how long it keeps a model loaded after a request ("5m")."""

    keep_alive: str | None = None


class OllamaBackend(Backend):
    accepts_images = True
    settings = OllamaSettings

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        super().__init__(name, config, limits)
        self._seen = threading.local()

    def make_client(self) -> ollama.Client:
        import httpx  # noqa: PLC0415  # on first use, not at start-up
        import ollama  # noqa: PLC0415  # on first use, not at start-up

        timeout = httpx.Timeout(self.limits.first_token_s, connect=self.limits.connect_s)
        return ollama.Client(
            host=self.config.base_url,
            timeout=timeout,
            event_hooks={"response": [self._remember_retry_after]},
        )

    def _remember_retry_after(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            self._seen.retry_after = retry_after(response.headers)

    def params(self, request: Request, decision: Decision) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            entry: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.images:
                entry["images"] = [i.data for i in m.images]
            messages.append(entry)
        params: dict[str, Any] = {
            "model": decision.model,
            "messages": messages,
            "stream": True,
            "options": {"num_predict": request.max_tokens},
        }
        if self.config.keep_alive is not None:
            params["keep_alive"] = self.config.keep_alive
        if request.tools:
            params["tools"] = function_tools(request)
        return params

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        import httpx  # noqa: PLC0415  # loaded with the client
        import ollama  # noqa: PLC0415  # loaded with the client

        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        calls: list[dict[str, Any]] = []
        try:
            for part in self.client.chat(**self.params(request, decision)):
                text = part.message.content or ""
                calls += [
                    {"name": c.function.name, "arguments": dict(c.function.arguments)}
                    for c in part.message.tool_calls or ()
                ]
                if text:
                    first = first or time.perf_counter()
                    parts.append(text)
                    yield Chunk(text)
                if part.done:
                    yield Chunk(
                        "",
                        self.response(
                            decision,
                            started,
                            text="".join(parts),
                            model=part.model,
                            first_token=first,
                            input_tokens=part.prompt_eval_count or 0,
                            output_tokens=part.eval_count or 0,
                            stop_reason=part.done_reason,
                            tool_calls=tuple(calls),
                        ),
                    )
                    return
        except ollama.ResponseError as exc:
            raise self._response_error(exc) from None
        except ConnectionError as exc:  # the client's word for "nothing listens there"
            raise BackendError(
                f"{self.name}: nothing answers at {self.config.base_url} ({exc})",
                cause=Cause.CONNECTION,
            ) from None
        except httpx.ReadTimeout:
            raise timed_out(self.name, first, self.limits) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise StreamIncomplete(f"{self.name}: the connection broke ({exc})") from None
        raise StreamIncomplete(f"{self.name}: the stream ended before done")

    def host_client(self, timeout_s: float) -> Any:
        """A short-timeout client for the model-host calls (listing, unloading)."""
        import ollama  # noqa: PLC0415  # the SDK loads only where it is used

        return ollama.Client(host=self.config.base_url, timeout=timeout_s)

    def list_loaded(self) -> list[LoadedModel]:
        """Ollama's `/api/ps`: each model's memory, its VRAM part and when it expires."""
        import ollama  # noqa: PLC0415

        try:
            found = self.host_client(HOST_TIMEOUT_S).ps().models
        except (ConnectionError, OSError, ollama.ResponseError) as exc:
            raise self.unreachable(exc) from None
        return [
            LoadedModel(
                self.name,
                m.model or m.name or "?",
                int(m.size or 0) // MB,
                vram_mb=int(m.size_vram) // MB if m.size_vram is not None else None,
                expires_at=m.expires_at.isoformat() if m.expires_at else None,
            )
            for m in found
        ]

    def unload(self, model: str) -> bool:
        """Unload the way Ollama documents it: a request with `keep_alive: 0` and no prompt."""
        import ollama  # noqa: PLC0415

        try:
            self.host_client(UNLOAD_TIMEOUT_S).generate(model=model, keep_alive=0)
        except ollama.ResponseError:
            return False  # no such model
        except (ConnectionError, OSError) as exc:
            raise self.unreachable(exc) from None
        return True

    def _response_error(self, exc: ollama.ResponseError) -> BackendError:
        status = exc.status_code
        wait = getattr(self._seen, "retry_after", None) if status >= 400 else None
        self._seen.retry_after = None
        message = " ".join(str(exc.error).split())[:200]
        if status in (400, 413) and "context" in message.lower():
            # Ollama's word for it: "input length exceeds the context length" and the like.
            return context_error(self.name, message, status=status)
        return BackendError(
            f"{self.name}: {message} (HTTP {status})" if status > 0 else f"{self.name}: {message}",
            # Ollama's errors carry a status and a message, no type: the status decides.
            cause=cause_for_status(status),
            status=status if status > 0 else None,
            retry_after_s=wait,
        )
