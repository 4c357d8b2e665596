"""What babysit decides, as pure functions: which models may go, in what order, and when."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from devpulse.core.types import LoadedModel

Key = tuple[str, str]  # (backend, model)


def pinned(model: LoadedModel, pins: Collection[str]) -> bool:
    """A pin names a model (`gemma3:270m`, or one of its aliases) or one backend's model
    (`ollama/gemma3:270m`); a pin without a tag names the `:latest` one, as Ollama reads it."""
    scope = f"{model.backend}/"
    return any(model.named(pin.removeprefix(scope)) for pin in pins)


def in_use(model: LoadedModel, busy: Collection[Key]) -> bool:
    """Whether a request is in flight on `model`."""
    return any(_names(key, model) for key in busy)


def last_use(model: LoadedModel, last_used: Mapping[Key, float]) -> float | None:
    """When `model` was last used under any of its names, or None if never."""
    return max((t for key, t in last_used.items() if _names(key, model)), default=None)


def _names(key: Key, model: LoadedModel) -> bool:
    # The ledger keeps the name a request gave (`gemma3`, or a llama-server alias); the
    # server lists its own (`gemma3:latest`, or the model's id beside its aliases).
    return key[0] == model.backend and model.named(key[1])


def frees_mb(model: LoadedModel, kind: str | None) -> int:
    """What unloading `model` frees on a device of `kind` (a `DeviceMemory.kind`): its VRAM
    part on an NVIDIA GPU, the rest on the host. Its whole size where the server does not
    say how it is split (`vram_mb` None), on unified memory (`apple`), or with no `kind`."""
    if model.vram_mb is None or kind not in ("nvidia", "host"):
        return model.size_mb
    vram = max(0, min(model.vram_mb, model.size_mb))
    return vram if kind == "nvidia" else model.size_mb - vram


def victims(
    loaded: Iterable[LoadedModel],
    *,
    busy: Collection[Key],
    pins: Collection[str],
    last_used: Mapping[Key, float],
    kind: str | None = None,
) -> list[LoadedModel]:
    """The models that may be unloaded to free memory on a device of `kind`, in the order
    to unload them.

    Never one its server cannot let go, one with a request in flight, a pinned one, or one
    that holds nothing on that device (`frees_mb`). Least recently used first (never used
    counts as oldest); on a tie, the one that frees more first.
    """
    idle = [
        m
        for m in loaded
        if m.unloadable and not in_use(m, busy) and not pinned(m, pins) and frees_mb(m, kind) > 0
    ]

    def age(m: LoadedModel) -> tuple[float, int]:
        used = last_use(m, last_used)
        return (float("-inf") if used is None else used, -frees_mb(m, kind))

    return sorted(idle, key=age)


@dataclass
class Gauge:
    """Pressure with hysteresis: free memory below `target_mb` on `samples` readings in a row
    starts an episode; it ends once free memory is back at `target_mb + hysteresis_mb`."""

    target_mb: int
    hysteresis_mb: int
    samples: int = 2
    below: int = 0
    episode: bool = False

    @property
    def goal_mb(self) -> int:
        return self.target_mb + self.hysteresis_mb

    def observe(self, free_mb: int) -> bool:
        """Take one reading; True while under pressure (act now)."""
        self.below = self.below + 1 if free_mb < self.target_mb else 0
        if self.below >= self.samples:
            self.episode = True
        elif self.episode and free_mb >= self.goal_mb:
            self.episode = False
        return self.episode and free_mb < self.goal_mb
