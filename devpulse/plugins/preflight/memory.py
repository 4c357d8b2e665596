"""Readings, estimates and verdicts: "does this model fit in memory right now?"."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from devpulse.core.config import Config
from devpulse.core.inline import Behind, must_not_block, on_the_loop
from devpulse.core.logs import get_logger
from devpulse.core.types import DeviceMemory, LoadedModel
from devpulse.plugins.preflight.estimator import (
    LLAMA_SERVER_DEFAULT,
    ONE_SLOT,
    Architecture,
    Estimate,
    ModelUnknown,
    Slots,
    estimate,
    read_gguf,
)
from devpulse.plugins.preflight.servers import (
    llama_server_model,
    loaded_models,
    ollama_architecture,
)

log = get_logger(__name__)

VerdictName = Literal["fits", "tight", "no_fit"]
# How long an estimate, or the finding that a model cannot be described, is kept. What a
# model needs changes only when a server restarts with another model or a file is replaced,
# far more slowly than free memory (preflight.cache_ttl_s, 2 s by default, is tuned for
# readings), so a fixed longer TTL: a server that starts later is described within this
# time, and a dead one costs one connection attempt (at most 1 s) per period on the request
# path instead of one per request.
ESTIMATE_TTL_S = 30.0
# On the event loop, a reading or an estimate up to this many TTLs old is used once more
# while a thread takes a new one (`core/inline.py`); an older one is taken in the request's
# thread, as off the loop.
LOOP_GRACE_TTLS = 2


Probe = Callable[[], list[list[DeviceMemory] | None]]


def every_probe(caller: Any) -> Probe:
    """The `probe_memory` hook's implementations (`caller` is the hook caller), called one by
    one: one that raises is left out, with one warning per plugin and error, and the others'
    devices still count. Called as one hook, the first error would fail every request that
    preflight checks, and every babysit sample."""
    told: set[tuple[str, str]] = set()

    def probe() -> list[list[DeviceMemory] | None]:
        found = []
        for impl in reversed(caller.get_hookimpls()):  # pluggy's own order
            try:
                found.append(impl.function())
            except Exception as exc:
                said = (impl.plugin_name, f"{type(exc).__name__}: {exc}")
                if said not in told:
                    told.add(said)
                    log.warning("preflight.probe_failed", plugin=said[0], error=said[1])
        return found

    return probe


@dataclass(frozen=True, slots=True)
class MemoryVerdict:
    verdict: VerdictName
    need_mb: int
    device: DeviceMemory
    reclaimable_mb: int = 0
    reasons: tuple[str, ...] = ()
    estimate: Estimate | None = None
    loaded: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "need_mb": self.need_mb,
            "free_mb": self.device.free_mb,
            "budget_mb": self.device.budget_mb,
            "reclaimable_mb": self.reclaimable_mb,
            "device": self.device.device,
            "reasons": list(self.reasons),
        }
        if self.estimate is not None:
            out["estimate"] = self.estimate.as_dict()
        if self.loaded:
            out["loaded"] = list(self.loaded)
        return out


@dataclass
class Memory:
    """Device readings (cached for a short TTL), model estimates (cached), and verdicts."""

    config: Config
    probe: Probe
    clock: Callable[[], float] = time.monotonic
    hook: Any = None  # the plugin manager's hook relay: loaded_models, unload_model
    # (backend, model) pairs with a request in flight now (the ledger's), asked only when
    # the models loaded count; None: nothing is known to be busy
    busy: Callable[[], Collection[tuple[str, str]]] | None = None
    _devices: tuple[float, list[DeviceMemory]] | None = None
    _estimates: dict[tuple[str, str, int], tuple[float, Estimate | ModelUnknown]] = field(
        default_factory=dict
    )
    _behind: Behind = field(default_factory=Behind)

    def devices(self, *, fresh: bool = False) -> list[DeviceMemory]:
        held = self._devices
        if not fresh and held is not None:
            age = self.clock() - held[0]
            ttl = self.config.preflight.cache_ttl_s
            if age <= ttl:
                return held[1]
            if age <= LOOP_GRACE_TTLS * ttl and on_the_loop():
                self._behind.refresh("devices", self._read_devices)
                return held[1]
        must_not_block("the memory probe")
        return self._read_devices()

    def _read_devices(self) -> list[DeviceMemory]:
        now = self.clock()
        readings = [d for found in self.probe() if found for d in found]
        self._devices = (now, readings)
        return readings

    def loaded(self) -> tuple[list[LoadedModel], list[str]]:
        """Models the local servers hold now, and a note for each that did not answer."""
        if self.hook is None:
            return [], []
        return loaded_models(self.config, self.hook)

    def target(self) -> DeviceMemory:
        """Where a model would load: the accelerator with the largest budget, else host RAM."""
        devices = self.devices()
        accelerators = [d for d in devices if d.kind != "host"]
        pool = accelerators or devices
        if not pool:
            raise ModelUnknown("no memory probe reported any device")
        return max(pool, key=lambda d: d.budget_mb)

    def estimate_for(
        self, spec: str, ctx: int | None = None, backend: str | None = None
    ) -> Estimate:
        """What `spec` needs: a number of MB, a .gguf path, or a model name a server knows.

        With `backend`, only that backend is asked (a single-model llama-server answers any
        name with its one model). Results, found or not, are kept for `ESTIMATE_TTL_S`.
        """
        key = (backend or "", spec, ctx or 0)
        cached = self._estimates.get(key)
        age = math.inf if cached is None else self.clock() - cached[0]
        if age > ESTIMATE_TTL_S:
            if age <= LOOP_GRACE_TTLS * ESTIMATE_TTL_S and on_the_loop():
                self._behind.refresh(key, lambda: self._estimate_into(key, spec, ctx, backend))
            else:
                must_not_block("estimating a model: files and servers")
                cached = self._estimate_into(key, spec, ctx, backend)
        assert cached is not None
        if isinstance(cached[1], ModelUnknown):
            raise cached[1]
        return cached[1]

    def _estimate_into(
        self, key: tuple[str, str, int], spec: str, ctx: int | None, backend: str | None
    ) -> tuple[float, Estimate | ModelUnknown]:
        now = self.clock()
        try:
            found: Estimate | ModelUnknown = self._estimate(spec, ctx, backend)
        except ModelUnknown as exc:
            found = exc
        self._estimates[key] = (now, found)
        return now, found

    def _estimate(self, spec: str, ctx: int | None, backend: str | None) -> Estimate:
        pre = self.config.preflight
        gpu = self.target().kind == "nvidia"
        megabytes = _as_megabytes(spec)
        if megabytes is not None:
            return Estimate(spec, ctx or pre.default_ctx, megabytes, 0, 0, 0, "given")
        source = pre.models.get(spec)
        if source is not None and source.need_mb is not None:
            return Estimate(
                spec, ctx or pre.default_ctx, source.need_mb, 0, 0, 0, "preflight.models"
            )
        path = source.gguf if source is not None else spec
        details: dict[str, Any] = {}
        if path is not None and (path.endswith(".gguf") or os.path.isfile(path)):
            arch = read_gguf(Path(path).expanduser())
            # a configured ctx is the model's default: a ctx asked for (--ctx) wins
            ctx = ctx or (source.ctx if source is not None else None)
            # a file is estimated as llama-server runs one by default
            slots = dataclasses.replace(LLAMA_SERVER_DEFAULT, known=False)
        else:
            arch, served_ctx, slots, details = self._from_servers(spec, backend)
            ctx = ctx or served_ctx
        found = estimate(
            arch,
            ctx or pre.default_ctx,
            cache_type=pre.kv_cache_type,
            overhead_mb=pre.runtime_overhead_mb,
            gpu=gpu,
            slots=slots,
        )
        return dataclasses.replace(found, details={**found.details, **details})

    def _from_servers(
        self, model: str, backend: str | None
    ) -> tuple[Architecture, int | None, Slots, dict[str, Any]]:
        """The architecture from a local server, the context it serves at, the slots it lays
        that context out over, and who said so."""
        candidates = [
            (name, b)
            for name, b in self.config.backends.items()
            if b.kind in ("ollama", "openai_compat")
            and b.side.value == "local"
            and b.base_url
            and backend in (None, name)
        ]
        problems = []
        for name, server in candidates:
            try:
                if server.kind == "ollama":
                    # Ollama runs one slot unless OLLAMA_NUM_PARALLEL says more
                    arch = ollama_architecture(server, model)
                    return arch, None, ONE_SLOT, {"served_by": name}
                served = llama_server_model(server, model, any_name=backend is not None)
            except ModelUnknown as exc:
                problems.append(str(exc))
                continue
            try:  # the server's own file: readable when the server runs on this machine
                arch = read_gguf(served.path)
            except ModelUnknown as exc:
                problems.append(f"{name} serves {served.model!r}, which cannot be described: {exc}")
                continue
            said = {"served_by": name, "served_model": served.model, "gguf": served.path}
            return arch, served.ctx or arch.context_length, served.slots, said
        where = "; ".join(problems) or "no local Ollama or llama-server backend is configured"
        raise ModelUnknown(
            f"unknown model {model!r}: not a number of MB, not a .gguf file, and {where}"
        )

    def judge(
        self,
        need_mb: int,
        *,
        with_reclaimable: bool = True,
        backend: str | None = None,
        model: str | None = None,
    ) -> MemoryVerdict:
        """fits (need <= fit_ratio x budget, or `model` is already loaded on `backend`), tight
        (fits only in the margin or after unloading idle models), or no_fit.

        Idle models are the ones babysit and auto-clean would unload: never a pinned one
        (`babysit.pins`) nor one serving a request (`busy`), so a verdict never counts on
        memory that nobody will free.
        """
        device = self.target()
        ratio = self.config.preflight.fit_ratio
        budget = device.budget_mb
        where = f"{device.device}: need {need_mb} MB, budget {budget} MB"
        if need_mb <= ratio * budget:
            return MemoryVerdict(
                "fits", need_mb, device, reasons=(f"{where} (fits within {ratio:.0%})",)
            )
        if need_mb <= budget:
            return MemoryVerdict(
                "tight", need_mb, device, reasons=(f"{where} (fits only within the safety margin)",)
            )
        if not with_reclaimable:
            return MemoryVerdict("no_fit", need_mb, device, reasons=(f"{where} (does not fit)",))
        must_not_block("asking the servers what they hold")
        loaded, notes = self.loaded()
        listing = tuple(m.as_dict() for m in loaded)
        # A model its server already holds needs no new memory (a single-model llama-server
        # answers every name with its one model; Ollama lists `gemma3` as `gemma3:latest`;
        # a llama-server router lists a model by its id, with its aliases beside it).
        resident = [
            m
            for m in loaded
            if backend is not None
            and m.backend == backend
            and ((model is not None and m.named(model)) or not m.unloadable)
        ]
        if resident:
            held = resident[0]
            return MemoryVerdict(
                "fits",
                need_mb,
                device,
                loaded=listing,
                reasons=(f"{where}; {held.backend}/{held.model} is already loaded", *notes),
            )
        # babysit's watchdog imports this module, so its policy is imported here, when used
        from devpulse.plugins.babysit.policy import frees_mb, victims  # noqa: PLC0415

        busy = self.busy() if self.busy is not None else ()
        pins = self.config.babysit.pins
        # only what unloading frees on this device: a model's VRAM part on a GPU
        idle = victims(loaded, busy=busy, pins=pins, last_used={}, kind=device.kind)
        reclaimable = sum(frees_mb(m, device.kind) for m in idle)
        if need_mb <= budget + reclaimable:
            names = ", ".join(f"{m.backend}/{m.model}" for m in idle)
            return MemoryVerdict(
                "tight",
                need_mb,
                device,
                reclaimable,
                loaded=listing,
                reasons=(
                    f"{where}; fits after unloading idle models ({names}: {reclaimable} MB)",
                    *notes,
                ),
            )
        return MemoryVerdict(
            "no_fit",
            need_mb,
            device,
            reclaimable,
            loaded=listing,
            reasons=(
                f"{where}, {reclaimable} MB reclaimable from loaded models (does not fit)",
                *notes,
            ),
        )


def _as_megabytes(spec: str) -> int | None:
    try:
        value = float(spec)
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:  # -0 and 0 too: no model needs nothing
        raise ModelUnknown(f"{spec!r} is not a positive number of MB")
    return math.ceil(value)
