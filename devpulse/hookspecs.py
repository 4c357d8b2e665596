"""The DevPulse hook specifications: the markers, and one spec per pipeline stage.

Hooks are always called with keyword arguments, and specs only ever gain arguments, so a
plugin written against an older DevPulse keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Iterator

    import click

    from devpulse.core.config import Config
    from devpulse.core.kinds import Register
    from devpulse.core.types import (
        Chunk,
        Classification,
        Decision,
        DeviceMemory,
        Labels,
        LoadedModel,
        Request,
        Response,
        Verdict,
    )

PROJECT = "devpulse"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(historic=True)
def configure(config: Config) -> None:
    """Receive the loaded configuration once, before any request.

    Historic: a plugin registered later still gets the call. A plugin's own settings are in
    ``config.plugins[NAME]``.
    """


@hookspec
def classify(request: Request) -> Labels | None:
    """Label a request: task class, privacy level and findings, reasons.

    Every implementation is called; the core merges their `Labels` into one `Classification`.
    The highest privacy level wins; for the task class, an explicit ``request.task`` wins,
    then the first implementation that names one (plugins registered later run first).
    Return None to say nothing.
    """


@hookspec(firstresult=True)
def route(request: Request, classification: Classification) -> Decision | None:
    """Decide where a classified request goes: side, backend, model, and reasons.

    Stops at first non-None result. The bundled routing table is ``trylast``, so any other
    implementation that returns a `Decision` pre-empts it. The core refuses a decision that
    would send a local-only request to a cloud backend, whoever made it.
    """


@hookspec
def preflight(request: Request, decision: Decision, dispatching: bool) -> Verdict | None:
    """Check a decision before dispatch, typically whether a local model fits in memory now.

    Every implementation is called, for every decision that will be dispatched: the first
    one, and each that a verdict, an open circuit or `on_failure` produces. `dispatching`
    is True there; it is False when the caller only asks where a request would go
    (`Router.route`, ``devpulse route``): then change nothing (say that idle models would
    be unloaded, do not unload them). An implementation may leave the argument out. Return None to
    let the decision stand, a `Verdict` that refuses it or reroutes it to
    ``verdict.decision``, or a ``"pass"`` verdict that lets it stand with a note (what was
    checked, shown in the decision's reasons and ``route --json``). The core applies the
    verdicts in one place: any refusal refuses (all reasons are reported); otherwise the
    first reroute wins (plugins registered later run first) and its decision is checked
    again.
    """


@hookspec
def prepare_dispatch(request: Request, decision: Decision) -> None:
    """Get ready to dispatch ``decision``: import a client library, build a client.

    Every implementation is called, in the caller's thread, just before each dispatch and
    before its time limits start, so one-time set-up (a client library that takes seconds
    to import) does not count against the first-token limit; only the plugin that owns
    ``decision.backend`` needs to act. Do no network I/O here: nothing bounds it. An error
    raised here fails the attempt as a failed dispatch does. The return value is ignored.
    """


@hookspec(firstresult=True)
def dispatch(request: Request, decision: Decision) -> Response | Iterator[Chunk] | None:
    """Send the request to the backend that ``decision.backend`` names and return its answer.

    Stops at first non-None result. Only the plugin that owns the backend answers; every
    other implementation returns None. The core always sets ``request.stream``: return an
    iterator of `Chunk` whose last chunk carries the complete `Response` (a `Response` alone
    is accepted too). The core reads it from a worker thread and bounds every wait (first
    token, stalls, the request's budget, cancellation), and asks the iterator to close when
    it stops reading; so produce chunks lazily, and give blocking reads a timeout. Keep-alives
    that make no chunk (pings, SSE comments) keep such a read going: a read loop may check
    `devpulse.core.bounded.stopping()` at each read and close its connection once it is true
    (the bundled backends do). Raise on failure, ideally a `BackendError` whose `cause` says
    why: the core passes the error to `on_failure`. If nobody answers, the core raises
    `NoBackend`.
    """


@hookspec(firstresult=True)
def adispatch(
    request: Request, decision: Decision
) -> AsyncIterator[Chunk] | Awaitable[Response] | None:
    """`dispatch` for the async path (`Router.ainvoke`, `Router.astream`): the same contract,
    on an async client.

    Stops at first non-None result. Called on the event loop, so do no blocking work in it:
    return an async iterator of `Chunk` whose last chunk carries the complete `Response` (an
    async generator), or an awaitable of a `Response`. The core bounds every read with
    asyncio timeouts and closes the iterator (`aclose`) when it stops reading, the task is
    cancelled or a limit runs out: close the connection there, so the server sees the
    disconnect. A plugin with `adispatch` implements `dispatch` too; the core asks plugins in
    `dispatch`'s order, and reads a plugin with only `dispatch` in a worker thread.
    """


@hookspec(firstresult=True)
def on_failure(
    request: Request,
    decision: Decision,
    error: BaseException,
    attempt: int,
    retries: int,
    tried: tuple[tuple[str, str], ...],
) -> Decision | None:
    """Choose what to do after attempt number ``attempt`` (from 1) failed with ``error``.

    Stops at first non-None result. ``retries`` counts the attempts this request already
    made on ``decision.backend`` before this one. ``tried`` names each (backend, model) this
    request has tried so far (sent to, or skipped for an open circuit), once, in order:
    ``decision``'s is among them. An implementation may leave it out of its
    parameters. Return the next `Decision` (the same
    backend to retry, another to fail over) or None to surface the error. The next decision
    passes the same privacy check and preflight as the first.
    """


@hookspec
def probe_memory() -> list[DeviceMemory] | None:
    """Report the memory pools this machine offers to local models, as they are right now.

    Every implementation is called (the bundled probes cover NVIDIA GPUs, Apple Silicon and
    host RAM); each returns the devices it can see, or None when it does not apply here.
    """


@hookspec(firstresult=True)
def loaded_models(backend: str) -> list[LoadedModel] | None:
    """List the models the local server behind ``backend`` holds in memory now.

    Stops at first non-None result. Only the plugin that owns ``backend`` answers (an empty
    list when nothing is loaded); every other implementation returns None, and a backend
    that is not a model host (a cloud API) returns None too. Raise a `BackendError` with
    cause ``connection`` when the server does not answer.
    """


@hookspec(firstresult=True)
def unload_model(backend: str, model: str) -> bool | None:
    """Ask the local server behind ``backend`` to unload ``model`` now.

    Stops at first non-None result. Only the plugin that owns ``backend`` answers: True when
    the server accepted the unload (the memory may come back a moment later), False when it
    refused or holds no such model. Every other implementation returns None. Raise a
    `BackendError` with cause ``connection`` when the server does not answer.
    """


@hookspec
def register_backend_kinds(register: Register) -> None:
    """Add backend kinds: call ``register(kind, factory)`` once for each.

    Every implementation is called each time a plugin manager is built, after installed
    plugins have loaded and before any backend is built. ``factory(spec)`` gets a
    `BackendSpec` (``spec.name``, ``spec.config``, ``spec.limits``; ``spec.options`` holds
    the table's keys the core does not read) for every ``[backends.NAME]`` table whose
    ``kind`` it registered. It checks those keys, raising `ConfigError` named by dotted key
    (``config.parse_table`` does this for a dataclass), and returns an object with
    ``complete(request, decision)`` and ``stream(request, decision)``; optionally
    ``acomplete``/``astream`` (native async), ``list_loaded()``/``unload(model)`` (a model
    host, for babysit), ``prepare()`` (build a client before the time limits start) and
    ``accepts_images``. The core registers a plugin around each object that answers the
    decisions naming its backend. Plugins registered later run first, so an installed
    plugin's kind wins over a bundled kind of the same name. The return value is ignored.
    """


@hookspec
def register_commands(cli: click.Group) -> Any:
    """Add commands to the ``devpulse`` command-line group.

    Every implementation is called once when the CLI starts; add commands with
    ``cli.add_command(...)``. The return value is ignored.
    """
