"""Readings, estimates and verdicts: "does this model fit in memory right now?"."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from devpulse.core.config import Config
from devpulse.core.types import DeviceMemory
from devpulse.plugins.preflight.estimator import Estimate, ModelUnknown, estimate, read_gguf
from devpulse.plugins.preflight.servers import loaded_models, ollama_architecture

VerdictName = Literal["fits", "tight", "no_fit"]


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
    probe: Callable[[], list[list[DeviceMemory] | None]]
    clock: Callable[[], float] = time.monotonic
    _devices: tuple[float, list[DeviceMemory]] | None = None
    _estimates: dict[tuple[str, str, int], Estimate | ModelUnknown] = field(default_factory=dict)

    def devices(self, *, fresh: bool = False) -> list[DeviceMemory]:
        now = self.clock()
        if (
            fresh
            or self._devices is None
            or now - self._devices[0] > self.config.preflight.cache_ttl_s
        ):
            readings = [d for found in self.probe() if found for d in found]
            self._devices = (now, readings)
        return self._devices[1]

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
        """What `spec` needs: a number of MB, a .gguf path, or a model name a server knows."""
        ctx = ctx or self.config.preflight.default_ctx
        key = (backend or "", spec, ctx)
        cached = self._estimates.get(key)
        if cached is None:
            try:
                cached = self._estimate(spec, ctx, backend)
            except ModelUnknown as exc:
                cached = exc
            self._estimates[key] = cached
        if isinstance(cached, ModelUnknown):
            raise cached
        return cached

    def _estimate(self, spec: str, ctx: int, backend: str | None) -> Estimate:
        pre = self.config.preflight
        gpu = self.target().kind == "nvidia"
        megabytes = _as_megabytes(spec)
        if megabytes is not None:
            return Estimate(spec, ctx, megabytes, 0, 0, 0, "given")
        source = pre.models.get(spec)
        if source is not None and source.need_mb is not None:
            return Estimate(spec, ctx, source.need_mb, 0, 0, 0, "preflight.models")
        path = source.gguf if source is not None else spec
        if path is not None and (path.endswith(".gguf") or os.path.isfile(path)):
            arch = read_gguf(Path(path).expanduser())
            ctx = (source.ctx or ctx) if source is not None else ctx
        else:
            arch = self._from_servers(spec, backend)
        return estimate(
            arch, ctx, cache_type=pre.kv_cache_type, overhead_mb=pre.runtime_overhead_mb, gpu=gpu
        )

    def _from_servers(self, model: str, backend: str | None) -> Any:
        candidates = [
            (name, b)
            for name, b in self.config.backends.items()
            if b.kind == "ollama" and b.side.value == "local" and backend in (None, name)
        ]
        problems = []
        for _, server in candidates:
            try:
                return ollama_architecture(server, model)
            except ModelUnknown as exc:
                problems.append(str(exc))
        where = "; ".join(problems) or "no local Ollama backend is configured"
        raise ModelUnknown(
            f"unknown model {model!r}: not a number of MB, not a .gguf file, and {where}"
        )

    def judge(self, need_mb: int, *, with_reclaimable: bool = True) -> MemoryVerdict:
        """fits (need <= fit_ratio x budget), tight (fits only in the margin or after unloading
        idle models), or no_fit."""
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
        loaded, notes = loaded_models(self.config)
        reclaimable = sum(m.size_mb for m in loaded)
        listing = tuple(m.as_dict() for m in loaded)
        if need_mb <= budget + reclaimable:
            names = ", ".join(f"{m.backend}/{m.model}" for m in loaded)
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
    if not math.isfinite(value) or value < 0:
        raise ModelUnknown(f"{spec!r} is not a positive number of MB")
    return math.ceil(value)
