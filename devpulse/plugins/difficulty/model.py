"""The difficulty model: prompt length, a bounded adjustment, and the open-request priors.

The raw score is in the unit of "expected gain": how much more often a frontier model answers
such a prompt right than a small local one. It has three parts, with weights shipped as data
(`weights.json`, written by `bench/fit_difficulty.py`, which says what each was fitted on):

- the anchor: the token count's term. Longest-first is the one ranking known to transfer
  across subjects, so the score starts from it;
- the other fitted features (jargon, quantities, conditions), as one adjustment against a
  typical reference prompt, clipped to `bound` (one standard deviation of the anchor's term
  on the reference). Fitted on 29 subjects, they refine the length ranking and cannot
  overturn it: a longer prompt outranks a shorter one unless it is within about a standard
  deviation of length of it;
- the hand-set priors (word problems, code, requests to derive or write code, prose,
  recall...), which describe open requests. A prompt that offers answer options (feature
  `options`) is a choice among given answers, where those features were measured to mark no
  more gain than average: for it they count zero.

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
    anchor: str  # the length feature the score starts from
    weights: dict[str, float]  # every feature's weight: the anchor, fitted ones, priors
    fitted: frozenset[str]  # the bounded adjustment (the anchor excluded)
    open_only: frozenset[str]  # priors that count only when no answer options are offered
    bound: float  # the adjustment's limit, either way
    means: dict[str, float]  # the reference's means of the anchor and the fitted features
    quantiles: tuple[float, ...]

    def score(self, text: str, tokens: int | None = None) -> Score:
        """`text`'s difficulty; `tokens` is `estimate_tokens(text)` where the caller has it."""
        features = extract(text, tokens)
        skipped = self.open_only if features["options"] else frozenset()
        # Each feature's effect: the anchor and the fitted ones against a typical reference
        # prompt (their means), the hand-set priors as they stand (w * f); the fitted apart.
        fixed, adjusting = [], []
        for name, w in self.weights.items():
            if name in self.fitted:
                adjusting.append((name, w * (features[name] - self.means[name])))
            elif name == self.anchor:
                fixed.append((name, w * (features[name] - self.means[name])))
            elif name not in skipped:
                fixed.append((name, w * features[name]))
        adjust = sum(e for _, e in adjusting)
        clipped = min(self.bound, max(-self.bound, adjust))
        raw = self.bias + self.weights[self.anchor] * self.means[self.anchor] + clipped
        raw += sum(e for _, e in fixed)
        scale = clipped / adjust if adjust else 1.0
        effects = fixed + [(n, e * scale) for n, e in adjusting]
        effects.sort(key=lambda item: -abs(item[1]))
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
    anchor = str(doc["anchor"])
    return Model(
        bias=float(doc["bias"]),
        anchor=anchor,
        weights=weights,
        fitted=frozenset(str(n) for n in doc["fitted"]) - {anchor},
        open_only=frozenset(str(n) for n in doc["open_only"]),
        bound=float(doc["bound"]),
        means={k: float(v) for k, v in doc["means"].items()},
        quantiles=tuple(float(q) for q in doc["quantiles"]),
    )
