"""The watchdog: sample free memory, and under pressure unload idle models until it is back.

`Unloader` is the unloading logic that babysit and auto-clean share: it lists what the local
servers hold (the `loaded_models` hook), skips models with a request in flight and pinned
ones (the ledger says which are busy and when each was last used, across processes), unloads
the least recently used first (the `unload_model` hook) and confirms each time that the
memory really came back. `Babysitter` runs it in a loop, in a thread or an asyncio task.
It reports; it never kills a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psutil

from devpulse.core.config import Config
from devpulse.core.ledger import Ledger
from devpulse.core.logs import get_logger
from devpulse.core.types import DeviceMemory, LoadedModel
from devpulse.plugins.babysit.policy import Gauge, Key, frees_mb, in_use, last_use, victims
from devpulse.plugins.preflight.memory import Memory, every_probe
from devpulse.plugins.preflight.servers import across_servers, listing_failure, local_backends

if TYPE_CHECKING:
    from devpulse.core.pipeline import Router

log = get_logger(__name__)

MB = 1024 * 1024
Event = dict[str, Any]
Emit = Callable[..., None]
POLL_S = 0.1  # how often an unload's memory is sampled while it is confirmed
CONFIRM_MB = 32  # an unload whose memory rose at least this much (or half its size) is done
HOGS = 3  # how many of the processes holding the most memory a `hog` report names


@dataclass(frozen=True, slots=True)
class Unloaded:
    """What one unload did: `freed_mb` as the memory readings saw it."""

    backend: str
    model: str
    size_mb: int
    freed_mb: int
    confirmed: bool
    dry_run: bool = False

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.model}"


class Unloader:
    """Unloads idle, unpinned models through the hooks until a reading reaches a goal."""

    def __init__(
        self,
        config: Config,
        hook: Any,
        ledger: Ledger | None,
        *,
        pins: Collection[str] = (),
        emit: Emit | None = None,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self.config = config
        self.hook = hook
        self.ledger = ledger
        self.pins = frozenset(pins)
        self.emit: Emit = emit or _log_event
        self.clock = clock
        self.pause = pause
        # Whether whoever runs this was asked to stop (babysit's SIGTERM or Ctrl-C): a pass
        # ends before its next model, and stops waiting for the memory of the one it is on.
        self.stopped = stopped
        self.unreachable: set[str] = set()

    def listing(self) -> list[LoadedModel]:
        """What the local servers hold now; a server that does not answer is reported once.

        Any error from one backend's plugin (not only a DevPulseError) counts as that server
        not answering: the others are still listed, and so still looked after.
        """
        found: list[LoadedModel] = []
        for name in local_backends(self.config):
            try:
                found.extend(self.hook.loaded_models(backend=name) or ())
            except Exception as exc:
                self._down(name, exc)
                continue
            if name in self.unreachable:
                self.unreachable.discard(name)
                log.info("babysit.host_back", backend=name)
        return found

    def _down(self, backend: str, exc: BaseException) -> None:
        if backend in self.unreachable:
            return
        self.unreachable.add(backend)
        self.emit(
            "host_unreachable",
            status="warning",
            backend=backend,
            base_url=self.config.backends[backend].shown_url,
            error=listing_failure(exc),
        )

    def usage(self) -> tuple[set[Key], dict[Key, float]]:
        """Models with a request in flight now, and when each model was last used."""
        if self.ledger is None:
            return set(), {}
        budget = self.config.failover.budget_s
        busy = across_servers(self.config, self.ledger.in_flight(budget))
        return busy, self.ledger.last_used()

    def free_until(
        self,
        read: Callable[[], int],
        goal_mb: int,
        *,
        loaded: Iterable[LoadedModel] | None = None,
        dry_run: bool = False,
        kind: str | None = None,
    ) -> list[Unloaded]:
        """Unload idle models, least recently used first, until `read()` reaches `goal_mb`.

        `read()` reads a device of `kind`: a model that holds nothing there is left alone
        (`policy.frees_mb`; with no `kind`, every model counts with its whole size)."""
        busy, last = self.usage()
        order = victims(
            self.listing() if loaded is None else loaded,
            busy=busy,
            pins=self.pins,
            last_used=last,
            kind=kind,
        )
        done: list[Unloaded] = []
        planned = 0  # a dry run frees nothing: count what it would have freed
        for model in order:
            if self.stopped():
                break
            before = read()
            if before + planned >= goal_mb:
                break
            fields = {
                "backend": model.backend,
                "model": model.model,
                "size_mb": model.size_mb,
                "free_mb": before,
                "last_used": _iso(last_use(model, last)),
            }
            if dry_run:
                self.emit("unload", dry_run=True, **fields)
                planned += frees_mb(model, kind)
                done.append(Unloaded(model.backend, model.model, model.size_mb, 0, False, True))
                continue
            if in_use(model, self.usage()[0]):
                continue  # a request started on it since the listing
            self.emit("unload", **fields)
            outcome = self._unload(model, before, read, frees_mb(model, kind))
            if outcome is not None:
                done.append(outcome)
        return done

    def _unload(
        self, model: LoadedModel, before: int, read: Callable[[], int], frees: int
    ) -> Unloaded | None:
        try:
            accepted = self.hook.unload_model(backend=model.backend, model=model.model)
        except Exception as exc:  # as in `listing`: one server's failure, not the pass's
            self._down(model.backend, exc)
            return None
        if not accepted:
            self.emit(
                "unload_stuck",
                status="warning",
                backend=model.backend,
                model=model.model,
                freed_mb=0,
                reason="the server refused the unload",
            )
            return Unloaded(model.backend, model.model, model.size_mb, 0, False)
        return self._confirm(model, before, read, frees)

    def _confirm(
        self, model: LoadedModel, before: int, read: Callable[[], int], frees: int
    ) -> Unloaded:
        """Poll until the server no longer lists the model and memory came back (bounded by
        `babysit.confirm_s`); `frees` is what it holds on the device `read` reads."""
        started = self.clock()
        deadline = started + self.config.babysit.confirm_s
        # Weights a server mmapped stay in the page cache after it exits (still counted
        # free on the host), so only part of a model's size comes back there; a runner
        # that did not go frees nothing at all.
        wanted = max(1, min(frees // 2, CONFIRM_MB))
        while True:
            if self.stopped():  # unconfirmed, and nothing said: the stop event follows
                return Unloaded(model.backend, model.model, model.size_mb, 0, False)
            freed = read() - before
            if freed >= wanted and not self._still_listed(model):
                self.emit(
                    "unload_confirmed",
                    backend=model.backend,
                    model=model.model,
                    freed_mb=freed,
                    after_s=round(self.clock() - started, 3),
                )
                return Unloaded(model.backend, model.model, model.size_mb, freed, True)
            if self.clock() >= deadline:
                self.emit(
                    "unload_stuck",
                    status="warning",
                    backend=model.backend,
                    model=model.model,
                    freed_mb=freed,
                    reason=f"the memory did not come back within {deadline - started:g}s",
                )
                return Unloaded(model.backend, model.model, model.size_mb, freed, False)
            self.pause(POLL_S)

    def _still_listed(self, model: LoadedModel) -> bool:
        try:
            listed = self.hook.loaded_models(backend=model.backend) or ()
        except Exception:
            return False  # the server went away, and the model with it
        return any(m.model == model.model for m in listed)


class Babysitter:
    """Keeps free memory above a target by unloading idle local models; reports what it does.

    Build one beside a `Router` (`Babysitter.beside(router)`) or from a config and a plugin
    manager's hook relay. `run()` loops until `stop()`; `start()` runs it in a daemon thread;
    `arun()` is the same loop as an asyncio task. `on_event` receives each event as a dict
    (``event``, ``ts``, ``status`` and the event's fields). `clock`, `wall` and `sleep` are
    injectable for tests.
    """

    def __init__(
        self,
        config: Config,
        hook: Any,
        *,
        ledger: Ledger | None = None,
        target_free_mb: int | None = None,
        interval_s: float | None = None,
        pins: Collection[str] | None = None,
        dry_run: bool = False,
        on_event: Callable[[Event], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        settings = config.babysit
        self.config = config
        self.target_mb = settings.target_free_mb if target_free_mb is None else target_free_mb
        self.interval_s = settings.interval_s if interval_s is None else interval_s
        self.pins = tuple(settings.pins if pins is None else pins)
        self.dry_run = dry_run
        self.on_event = on_event
        self.clock = clock
        self.wall = wall
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait
        self.memory = Memory(config, every_probe(hook.probe_memory), clock=clock, hook=hook)
        if ledger is None and config.ledger.enabled:
            ledger = Ledger.from_config(config)
        self.unloader = Unloader(
            config,
            hook,
            ledger,
            pins=self.pins,
            emit=self.emit,
            clock=clock,
            pause=sleep or self._wait,
            stopped=self._stop.is_set,
        )
        self.gauge = Gauge(self.target_mb, settings.hysteresis_mb)
        self.loaded: list[LoadedModel] = []
        self.free_mb: int | None = None
        self._sampled: float | None = None
        self._hogs_told = False
        self._sink_failed = False
        self._finishing = False

    @classmethod
    def beside(cls, router: Router, **kwargs: Any) -> Babysitter:
        """A babysitter over the same config, plugins and ledger as `router`."""
        kwargs.setdefault("ledger", router.ledger)
        return cls(router.config, router.pm.hook, **kwargs)

    def emit(self, event: str, *, status: str = "ok", **fields: Any) -> None:
        record: Event = {"event": event, "ts": _iso(self.wall()), "status": status, **fields}
        log.debug(f"babysit.{event}", **{k: v for k, v in fields.items() if k != "loaded"})
        if self.on_event is None:
            return
        # The events are told before their action (an unload): a sink that fails (a closed
        # stdout) must not stop the action, so its error is logged once and the watch goes
        # on. A sink that wants the loop to end calls `stop()`.
        try:
            self.on_event(record)
        except Exception as exc:
            if not self._sink_failed:
                self._sink_failed = True
                log.warning("babysit.event_failed", error=type(exc).__name__, reason=str(exc))

    def device(self) -> DeviceMemory:
        """The pool models load into, read now (not from the preflight's short cache)."""
        self.memory.devices(fresh=True)
        return self.memory.target()

    def read_free(self) -> int:
        return self.device().free_mb

    def check(self, *, once: bool = False) -> None:
        """One sample, and whatever it calls for."""
        self.gauge.samples = 1 if once else 2
        device = self.device()
        free = self.free_mb = device.free_mb
        self.loaded = self.unloader.listing()
        now = self.clock()
        if (
            once
            or self._sampled is None
            or now - self._sampled >= self.config.babysit.sample_every_s
        ):
            self._sampled = now
            self.emit(
                "sample",
                device=device.device,
                free_mb=free,
                target_mb=self.target_mb,
                loaded=[m.as_dict() for m in self.loaded],
            )
        was = self.gauge.episode
        if not self.gauge.observe(free):
            if not self.gauge.episode:
                self._hogs_told = False
            return
        if not was:
            self.emit(
                "pressure",
                status="warning",
                device=device.device,
                free_mb=free,
                target_mb=self.target_mb,
                goal_mb=self.gauge.goal_mb,
            )
        self.unloader.free_until(
            self.read_free,
            self.gauge.goal_mb,
            loaded=self.loaded,
            dry_run=self.dry_run,
            kind=device.kind,
        )
        after = self.device()
        self.free_mb = after.free_mb
        if self._stop.is_set():
            return  # the pass was cut short: unloading was not shown to fall short
        if after.free_mb < self.target_mb and not self._hogs_told:
            self._hogs_told = True
            for hog in hogs(after):
                self.emit("hog", status="warning", **hog)

    def run(self, *, once: bool = False) -> None:
        """Sample every `interval_s` until `stop()` (or once); never raises from a sample."""
        self.emit(
            "start",
            target_mb=self.target_mb,
            goal_mb=self.gauge.goal_mb,
            interval_s=self.interval_s,
            pins=list(self.pins),
            dry_run=self.dry_run,
        )
        try:
            while not self._stop.is_set() and not self._finishing:
                try:
                    self.check(once=once)
                except Exception as exc:  # a probe or a plugin broke: say so, keep watching
                    log.warning("babysit.check_failed", error=type(exc).__name__, reason=str(exc))
                if once or self._finishing:
                    break
                self.sleep(self.interval_s)
        finally:
            self.emit("stop", free_mb=self.free_mb)

    def stop(self) -> None:
        """Ask the loop to end after the step it is in (safe from a signal handler)."""
        self._stop.set()

    def _wait(self, seconds: float) -> None:
        """Sleep, unless asked to stop: then at once."""
        self._stop.wait(seconds)

    def finish(self) -> None:
        """Ask the loop to end once the check in progress is done, its unloads included
        (the command's output closed: nobody asked to leave the memory short)."""
        self._finishing = True

    def start(self) -> threading.Thread:
        """Run the loop in a daemon thread; `stop()` ends it."""
        thread = threading.Thread(target=self.run, name="devpulse-babysit", daemon=True)
        thread.start()
        return thread

    async def arun(self) -> None:
        """The loop as an asyncio task: samples in a worker thread, waits on the event loop.

        Cancelling the task stops it (with its `stop` event).
        """
        self.emit("start", target_mb=self.target_mb, interval_s=self.interval_s)
        try:
            while not self._stop.is_set() and not self._finishing:
                try:
                    await asyncio.to_thread(self.check)
                except Exception as exc:
                    log.warning("babysit.check_failed", error=type(exc).__name__, reason=str(exc))
                await asyncio.sleep(self.interval_s)
        finally:
            self.emit("stop", free_mb=self.free_mb)


def hogs(device: DeviceMemory, limit: int = HOGS) -> list[dict[str, Any]]:
    """The processes holding the most memory: RSS, and VRAM where NVML gives it per process."""
    vram = {p.get("pid"): p.get("used_mb") for p in device.processes}
    found = []
    for proc in psutil.process_iter(["pid", "name", "memory_info"]):
        with contextlib.suppress(psutil.Error, AttributeError):
            rss = proc.info["memory_info"].rss // MB
            found.append((rss + (vram.get(proc.info["pid"]) or 0), proc.info, rss))
    found.sort(key=lambda f: f[0], reverse=True)
    return [
        {
            "pid": info["pid"],
            "name": info["name"],
            "rss_mb": rss,
            **({"vram_mb": vram[info["pid"]]} if vram.get(info["pid"]) is not None else {}),
            "device": device.device,
        }
        for _, info, rss in found[:limit]
    ]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


def _log_event(event: str, *, status: str = "ok", **fields: Any) -> None:
    log.info(f"babysit.{event}", status=status, **fields)
