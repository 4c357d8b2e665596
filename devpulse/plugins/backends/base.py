"""What every backend shares: owning its decisions, timing answers, building responses."""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import quote, quote_plus

import re2

from devpulse.core.config import BackendConfig, Limits, is_http_url, parse_table, shown_url
from devpulse.core.deltas import Respond
from devpulse.core.errors import (
    BackendError,
    Cause,
    ConfigError,
    FirstTokenTimeout,
    StreamIncomplete,
    StreamStalled,
)
from devpulse.core.types import Block, Chunk, Decision, LoadedModel, Request, Response, Usage

if TYPE_CHECKING:
    from devpulse.core.kinds import BackendSpec

DEFAULT_LIMITS = Limits(connect_s=3.0, first_token_s=120.0, stall_s=120.0)


def timed_out(name: str, first: float | None, limits: Limits) -> BackendError:
    """A read timeout of the client itself, named for what it means.

    The core's own limits usually fire first; this is the backstop that ends the worker's
    blocked read.
    """
    if first is None:
        return FirstTokenTimeout(f"{name}: no first token within {limits.first_token_s:g}s")
    return StreamStalled(f"{name}: the stream stalled for more than {limits.first_token_s:g}s")


def cause_for_status(status: int) -> Cause:
    """What an HTTP status says on its own; backends refine it with the provider's error type."""
    if status == 429:
        return Cause.RATE_LIMITED
    if status == 529:
        return Cause.OVERLOADED
    if status in (401, 403):
        return Cause.AUTH
    if status == 413:
        return Cause.CONTEXT_LENGTH
    if status in (400, 422):
        return Cause.BAD_REQUEST
    if status == 404:
        return Cause.MODEL_NOT_LOADED  # "model 'x' not found", from every provider
    return Cause.SERVER_ERROR if status >= 500 else Cause.UNKNOWN


# The headers a request sends its credential in: OpenAI's and most servers' Authorization,
# Anthropic's x-api-key, Azure OpenAI's api-key.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")
MIN_SCRUBBED_CHARS = 8  # a shorter "key" (a local server's "x") is no secret worth a mangled line


def without_credentials(text: str, sent: Mapping[str, str] | None) -> str:
    """`text`, a server's error message, with each credential the request `sent` in its
    headers replaced by its length: a server that refuses a key may quote it back ("Incorrect
    API key provided: sk-..."), and the message goes on to logs and to the CLI's error line.
    The key is taken from the request that was sent, so nothing keeps it."""
    if not sent:
        return text
    for header in CREDENTIAL_HEADERS:
        value = sent.get(header) or ""
        secret = value.partition(" ")[2] or value  # "Bearer KEY": the key
        if len(secret) < MIN_SCRUBBED_CHARS:
            continue
        # as sent, and as a URL or a form would quote it (a gateway's log line)
        for form in dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))):
            text = text.replace(form, f"…[{len(secret)} chars]")
    return text


# How servers word a context overflow, for the numbers in it. On RE2, like every pattern
# that may meet text a server echoes back from a request.
# - llama-server: "request (5024 tokens) exceeds the available context size (4096 tokens)"
# - Anthropic: "prompt is too long: 250000 tokens > 200000 maximum"
# - OpenAI and vLLM: "maximum context length is 8192 tokens. However, your messages resulted
#   in 9000 tokens" / "you requested 9000 tokens"
_REQUEST_TOKENS = re2.compile(
    r"request \((\d+) tokens\)|(\d+) tokens > \d+|resulted in (\d+) tokens|requested (\d+) tokens"
)
_CONTEXT_TOKENS = re2.compile(
    r"context (?:size|length|window)(?: is)? \(?(\d+)|(\d+) maximum|(\d+)-token context"
)


def context_error(
    name: str,
    message: str,
    *,
    status: int | None = None,
    request_tokens: Any = None,
    context_tokens: Any = None,
    provider_type: str | None = None,
) -> BackendError:
    """A context overflow, said in one line: the model's context, and the request's size
    when the server gave it (as fields, like llama-server, or in its message)."""
    found_request = _first_number(_REQUEST_TOKENS, message)
    found_context = _first_number(_CONTEXT_TOKENS, message)
    asked = request_tokens if isinstance(request_tokens, int) else found_request
    context = context_tokens if isinstance(context_tokens, int) else found_context
    size = f" ({asked} tokens)" if asked is not None else ""
    if context is not None:
        limit = f"{context} tokens"
    else:
        detail = " ".join(message.split())[:200]
        limit = f"HTTP {status}: {detail}" if status else detail or "size unknown"
    return BackendError(
        f"{name}: the request{size} does not fit the model's context ({limit})",
        cause=Cause.CONTEXT_LENGTH,
        status=status,
        provider_type=provider_type,
    )


def _first_number(pattern: Any, message: str) -> int | None:
    found = pattern.search(message[:1000])
    if found is None:
        return None
    return int(next(g for g in found.groups() if g is not None))


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """retry-after-ms, else retry-after in seconds (an HTTP date is not honoured), if sent
    as a finite number: ``inf`` or ``nan`` is garbage, not a wait."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                seconds = float(value) / scale
            except ValueError:
                continue
            if math.isfinite(seconds):
                return max(0.0, seconds)
    return None


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """A bundled kind's own keys: where its server is, and which variable holds its key."""

    base_url: str | None = None
    api_key_env: str | None = None


def _env_name(name: str) -> bool:
    """Whether `name` can name an environment variable: letters, digits and `_`."""
    return (
        bool(name) and name.isascii() and name.replace("_", "a").isalnum() and not name[0].isdigit()
    )


class Backend:
    """The object a bundled kind builds for one configured backend (`devpulse.core.kinds`).

    Subclasses implement `stream`, which raises `BackendError` with the cause filled in;
    `complete` reads the same stream, so every request streams underneath. Clients, and the
    SDKs they come from, are loaded on first use (`prepare`), reused, and safe to share
    between threads. Their read timeout is the first-token limit: the core bounds every
    wait itself, this only ends a blocked read.

    A kind with an async client sets `native_async` and implements `astream` (and
    `make_async_client`): `Router.ainvoke`/`astream` then run on it. Async clients belong to
    one event loop, so each loop gets its own, built in a thread on its first request. A kind
    without one is still served on the async path, its sync stream read in a thread.
    """

    accepts_images = False
    native_async = False
    settings: ClassVar[type[ServerSettings]] = ServerSettings

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> Self:
        """The kind's factory: check the table's own keys, then build."""
        settings = parse_table(cls.settings, spec.options, spec.key)
        if settings.base_url is not None and not is_http_url(settings.base_url):
            raise ConfigError(
                f"{spec.key}.base_url: {shown_url(settings.base_url)!r} is not an http(s) URL "
                "with a host"
            )
        if settings.api_key_env is not None and not _env_name(settings.api_key_env):
            # not echoed: a key pasted here by mistake must not be printed
            raise ConfigError(
                f"{spec.key}.api_key_env: not the name of an environment variable (name the "
                "variable here, e.g. ANTHROPIC_API_KEY, and keep the key in the environment)"
            )
        return cls(spec.name, spec.config, spec.limits)

    def __init__(self, name: str, config: BackendConfig, limits: Limits | None = None) -> None:
        self.name = name
        self.config = config
        self.limits = limits or DEFAULT_LIMITS
        self._client: Any = None
        self._lock = threading.Lock()
        self._aclients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._building: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (most commands never dispatch) and then shared."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.make_client()
        return self._client

    def make_client(self) -> Any:
        raise NotImplementedError

    def prepare(self) -> None:
        """Build the client, importing its SDK, before the first-token limit starts."""
        _ = self.client

    @property
    def prepared(self) -> bool:
        """Whether `prepare` has nothing left to do (then it never blocks)."""
        return self._client is not None

    def make_async_client(self) -> Any:
        raise NotImplementedError

    async def aclient(self) -> Any:
        """This event loop's async client, built on its first request (in a thread: building
        one may read certificates from disk) and then shared by its requests.

        Built once: the requests of a burst that arrive while it is being built wait for
        that one (each build loads the certificate store again, tens of milliseconds of
        CPU: 500 of them took seconds). A build that failed is tried again next time.
        """
        import asyncio  # noqa: PLC0415  # only the async path needs it

        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is not None:
            return client
        building = self._building.get(loop)
        if building is None:
            building = asyncio.ensure_future(asyncio.to_thread(self.make_async_client))
            self._building[loop] = building
            # Forgotten once done, waited for or not (every waiter may have been cancelled);
            # its error is read here too, so a build nobody waited for logs nothing.
            building.add_done_callback(lambda done: self._built(loop, done))
        built = await asyncio.shield(building)  # a cancelled waiter leaves it to others
        return self._aclients.setdefault(loop, built)

    def _built(self, loop: Any, done: Any) -> None:
        if self._building.get(loop) is done:
            del self._building[loop]
        if not done.cancelled():
            done.exception()

    def list_loaded(self) -> list[LoadedModel] | None:
        """The models this backend's server holds now; None: not a model host (the cloud)."""
        return None

    def unload(self, model: str) -> bool | None:
        """Ask the server to let `model` go; None: not a model host."""
        return None

    def unreachable(self, exc: BaseException) -> BackendError:
        """The error a model-host call raises when the server does not answer."""
        return BackendError(
            f"{self.name}: nothing answers at {self.config.shown_url} ({type(exc).__name__})",
            cause=Cause.CONNECTION,
        )

    def complete(self, request: Request, decision: Decision) -> Response:
        """The whole answer, read from the stream to its end: a connection read to the end
        goes back to the client's pool, to be kept alive for the next request. As on the
        router's path, what follows the final response fails nothing."""
        found: Response | None = None
        try:
            for chunk in self.stream(request, decision):
                found = chunk.response or found
        except Exception:
            if found is None:
                raise
        if found is None:
            raise StreamIncomplete(f"{self.name}: the stream ended without a final message")
        return found

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        raise NotImplementedError

    async def acomplete(self, request: Request, decision: Decision) -> Response:
        """The whole answer, read from the async stream to its end, as `complete`."""
        chunks = self.astream(request, decision)
        found: Response | None = None
        try:
            async for chunk in chunks:
                found = chunk.response or found
        except Exception:
            if found is None:
                raise
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # an async generator
        if found is None:
            raise StreamIncomplete(f"{self.name}: the stream ended without a final message")
        return found

    def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]:
        raise NotImplementedError

    def responder(self, decision: Decision, started: float, first: list[float]) -> Respond:
        """What a decoder calls with the answer it read: the `Response`, with this backend's
        name and side and the answer's timings (`first` holds the first chunk's time)."""

        def respond(
            *,
            content: tuple[Block, ...],
            stop_reason: str | None,
            usage: Usage,
            model: str | None = None,
        ) -> Response:
            return Response(
                content,
                model=model or decision.model,
                backend=self.name,
                side=decision.side,
                usage=usage,
                latency_s=time.perf_counter() - started,
                first_token_s=(first[0] - started) if first else None,
                stop_reason=stop_reason,
            )

        return respond
