"""What babysit decides, as pure functions: which models may go, in what order, and when."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from devpulse.core.types import LoadedModel

Key = tuple[str, str]  # (backend, model)


def pinned(model: LoadedModel, pins: Collection[str]) -> bool:
    """A pin names a model (`gemma3:270m`) or one backend's model (`ollama/gemma3:270m`)."""
    return model.model in pins or f"{model.backend}/{model.model}" in pins


def victims(
    loaded: Iterable[LoadedModel],
    *,
    busy: Collection[Key],
    pins: Collection[str],
    last_used: Mapping[Key, float],
) -> list[LoadedModel]:
    """The models that may be unloaded, in the order to unload them.

    Never one its server cannot let go, one with a request in flight, or a pinned one.
    Least recently used first (never used counts as oldest); on a tie, the larger first.
    """
    idle = [
        m
        for m in loaded
        if m.unloadable and (m.backend, m.model) not in busy and not pinned(m, pins)
    ]
    return sorted(
        idle, key=lambda m: (last_used.get((m.backend, m.model), float("-inf")), -m.size_mb)
    )


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
