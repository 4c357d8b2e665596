"""Backend kinds: what the ``kind`` of a ``[backends.NAME]`` table names.

A plugin registers kinds through the `register_backend_kinds` hook, as simonw/llm's
plugins register models: ``register("my_kind", factory)``. A factory takes a `BackendSpec`
(the backend's name, its table, its time limits), checks the kind's own keys and returns an
object that answers requests: `complete` and `stream` always; `acomplete` and `astream`
when it has native async I/O; `list_loaded` and `unload` when it hosts models (babysit
uses them); `prepare` to build a client before the time limits start. The core wraps each
built object in a `BackendPlugin`, so a kind's author writes no hooks of their own, and
DevPulse's own kinds go through exactly the same path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

from devpulse.core.config import BackendConfig, Config, Limits
from devpulse.core.errors import ConfigError, UnsupportedRequest
from devpulse.core.inline import must_not_block
from devpulse.core.types import Chunk, Decision, LoadedModel, Request, Response
from devpulse.hookspecs import hookimpl


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """What a kind's factory is given; one value, so it can gain fields without breaking
    any factory."""

    name: str
    config: BackendConfig  # side, kind, timeout_s, images; `options` holds the kind's keys
    limits: Limits

    @property
    def key(self) -> str:
        """The dotted key a kind's config errors start with: ``backends.NAME``."""
        return f"backends.{self.name}"

    @property
    def options(self) -> Mapping[str, Any]:
        """The table's keys the core does not read: the kind checks them."""
        return self.config.options


@runtime_checkable
class SyncBackend(Protocol):
    """What every kind's object does: answer whole, or as a stream of `Chunk`.

    Both follow the `dispatch` contract: raise `BackendError` (with its `cause`) on failure;
    a stream's last chunk carries the complete `Response`, and blocking reads have a timeout
    (``spec.limits``).
    """

    def complete(self, request: Request, decision: Decision) -> Response: ...

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]: ...


@runtime_checkable
class AsyncBackend(Protocol):
    """Optional native async I/O; a kind without it is run on a worker thread instead."""

    async def acomplete(self, request: Request, decision: Decision) -> Response: ...

    def astream(self, request: Request, decision: Decision) -> AsyncIterator[Chunk]: ...


@runtime_checkable
class ModelHost(Protocol):
    """Optional, for local servers that hold models in memory; babysit uses it.

    Either returns None when this backend is no model host after all (a cloud API behind
    a local-server kind); raise `BackendError` with cause ``connection`` when the server
    does not answer.
    """

    def list_loaded(self) -> list[LoadedModel] | None: ...

    def unload(self, model: str) -> bool | None: ...


BackendFactory = Callable[[BackendSpec], SyncBackend]
Register = Callable[[str, BackendFactory], None]


class Kinds:
    """The registered kinds; passed to `register_backend_kinds` as its ``register``.

    Hooks run newest plugin first, so an installed plugin's kind wins over a bundled kind
    of the same name; a later registration of a taken name is ignored.
    """

    def __init__(self) -> None:
        self.factories: dict[str, BackendFactory] = {}

    def __call__(self, kind: str, factory: BackendFactory) -> None:
        if not isinstance(kind, str) or not kind.strip() or not callable(factory):
            raise ConfigError(
                f"register_backend_kinds: register(kind, factory) needs a kind name and a "
                f"callable, got {kind!r} and {type(factory).__name__}"
            )
        self.factories.setdefault(kind, factory)

    def build(self, name: str, config: BackendConfig, limits: Limits) -> SyncBackend:
        """The object a backend's kind makes from its table; a ConfigError naming the key
        when the kind is unknown or refuses the table."""
        kind = config.kind or ""
        factory = self.factories.get(kind)
        if factory is None:
            known = ", ".join(sorted(self.factories)) or "none"
            raise ConfigError(
                f"backends.{name}.kind: unknown kind {kind!r} (registered kinds: {known})"
            )
        try:
            built = factory(BackendSpec(name, config, limits))
        except ConfigError:
            raise
        except Exception as exc:  # a broken third-party factory must not look like our crash
            raise ConfigError(f"backends.{name}: kind {kind!r} failed to build: {exc}") from exc
        if not isinstance(built, SyncBackend):
            raise ConfigError(
                f"backends.{name}: kind {kind!r} built a {type(built).__name__}, "
                "which has no complete() and stream()"
            )
        return built


def registered_kinds(hook: Any) -> Kinds:
    """Every kind the registered plugins offer, from a fresh call of the hook."""
    kinds = Kinds()
    hook.register_backend_kinds(register=kinds)
    return kinds


def backend_plugins(config: Config, hook: Any) -> list[tuple[str, BackendPlugin]]:
    """A plugin for every configured backend that names a kind, each built by its kind.

    A backend without a kind is served by a plugin that implements `dispatch` itself.
    """
    kinds = registered_kinds(hook)
    return [
        (
            f"devpulse.backend.{name}",
            BackendPlugin(name, backend, kinds.build(name, backend, config.limits(name))),
        )
        for name, backend in config.backends.items()
        if backend.kind is not None
    ]


class BackendPlugin:
    """The hooks of one configured backend: it answers only the decisions naming it.

    Its hooks are ``trylast``: it is registered after installed plugins, and a plugin that
    answers for the same backend must still win, as it did before kinds were plugins.

    Loop-safe (`core/inline.py`): its only deciding-time hook, `prepare_dispatch`, blocks
    only until the object says it is ready (``prepared``).
    """

    loop_safe = True

    def __init__(self, name: str, config: BackendConfig, backend: SyncBackend) -> None:
        self.name = name
        self.config = config
        self.backend = backend

    @hookimpl
    def prepare_dispatch(self, decision: Decision) -> None:
        """Let the object build its client, importing its SDK, before the limits start."""
        prepare = getattr(self.backend, "prepare", None)
        if decision.backend == self.name and prepare is not None:
            if not getattr(self.backend, "prepared", False):
                must_not_block(f"preparing {self.name}'s client")
            prepare()

    @hookimpl(trylast=True)
    def dispatch(self, request: Request, decision: Decision) -> Response | Iterator[Chunk] | None:
        if decision.backend != self.name:
            return None
        self.check(request)
        if request.stream:
            return self.backend.stream(request, decision)
        return self.backend.complete(request, decision)

    @hookimpl(trylast=True)
    def adispatch(
        self, request: Request, decision: Decision
    ) -> AsyncIterator[Chunk] | Awaitable[Response] | None:
        """The async answer; None for an object without async methods (the core then reads
        its sync stream in a worker thread)."""
        if decision.backend != self.name or not self.is_async:
            return None
        backend = cast("AsyncBackend", self.backend)
        self.check(request)
        if request.stream:
            return backend.astream(request, decision)
        return backend.acomplete(request, decision)

    @property
    def is_async(self) -> bool:
        """Whether the object answers on an async client of its own: it implements the async
        methods, and a bundled backend says its kind has an async client (`native_async`)."""
        return isinstance(self.backend, AsyncBackend) and bool(
            getattr(self.backend, "native_async", True)
        )

    def check(self, request: Request) -> None:
        """Refuse what this backend cannot take before anything is sent."""
        accepts = bool(getattr(self.backend, "accepts_images", False))
        if request.has_images and not (accepts and self.config.images):
            raise UnsupportedRequest(
                f"backend {self.name!r} does not accept images (backends.{self.name}.images)"
            )

    @hookimpl(trylast=True)
    def loaded_models(self, backend: str) -> list[LoadedModel] | None:
        if backend != self.name or not isinstance(self.backend, ModelHost):
            return None
        return self.backend.list_loaded()

    @hookimpl(trylast=True)
    def unload_model(self, backend: str, model: str) -> bool | None:
        if backend != self.name or not isinstance(self.backend, ModelHost):
            return None
        return self.backend.unload(model)
