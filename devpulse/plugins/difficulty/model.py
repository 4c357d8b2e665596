"""The difficulty model: a weighted sum of features, placed on a reference distribution.

The raw score is a linear model in the unit of "expected gain": how much more often a
frontier model answers such a prompt right than a small local one. Its weights ship as data
(`weights.json`, written by `bench/fit_difficulty.py`, which says what each was fitted on).

The difficulty is the raw score's position among the reference prompts' scores (their
quantiles ship in the same file): 0.7 means harder than about 70% of the reference traffic.
So a target cloud share `c` is simply the threshold `1 - c`. Beyond the reference's range
the position keeps rising (or falling) smoothly, so no two different scores tie at 0 or 1.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

from devpulse.plugins.difficulty.features import extract

SHOWN = 3  # features named in a decision's reasons


@dataclass(frozen=True, slots=True)
class Score:
    """A prompt's difficulty in [0, 1] and the features that moved it most (name, effect)."""

    difficulty: float
    drivers: tuple[tuple[str, float], ...]

    def reason(self) -> str:
        parts = ", ".join(f"{name} {effect:+.3f}" for name, effect in self.drivers)
        return f"difficulty {self.difficulty:.2f}" + (f" ({parts})" if parts else "")


@dataclass(frozen=True, slots=True)
class Model:
    bias: float
    weights: dict[str, float]
    means: dict[str, float]
    quantiles: tuple[float, ...]

    def score(self, text: str) -> Score:
        features = extract(text)
        raw = self.bias + sum(w * features[name] for name, w in self.weights.items())
        # Each feature's effect against a typical reference prompt, largest first.
        effects = sorted(
            ((name, w * (features[name] - self.means[name])) for name, w in self.weights.items()),
            key=lambda item: -abs(item[1]),
        )
        shown = tuple((n, e) for n, e in effects[:SHOWN] if abs(e) >= 0.0005)
        return Score(self.position(raw), shown)

    def position(self, raw: float) -> float:
        """Where `raw` falls among the reference scores, in (0, 1)."""
        qs = self.quantiles
        steps = len(qs) - 1
        spread = (qs[-1] - qs[0]) or 1.0
        if raw <= qs[0]:
            return 0.5 / steps * math.exp((raw - qs[0]) / spread)
        if raw >= qs[-1]:
            return 1 - 0.5 / steps * math.exp((qs[-1] - raw) / spread)
        i = bisect.bisect_right(qs, raw)
        lo, hi = qs[i - 1], qs[i]
        within = (raw - lo) / (hi - lo) if hi > lo else 1.0
        # Knots sit at 0.5/steps .. 1 - 0.5/steps, leaving room for the tails.
        return (0.5 + (i - 1 + within) * (steps - 1) / steps) / steps


@cache
def load() -> Model:
    """The packaged model (read once per process)."""
    text = resources.files("devpulse.plugins.difficulty").joinpath("weights.json")
    doc = json.loads(text.read_text("utf-8"))
    weights = {str(k): float(v) for k, v in doc["weights"].items()}
    return Model(
        bias=float(doc["bias"]),
        weights=weights,
        means={k: float(doc["means"][k]) for k in weights},
        quantiles=tuple(float(q) for q in doc["quantiles"]),
    )
