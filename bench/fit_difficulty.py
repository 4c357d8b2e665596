"""Refit the difficulty model's weights and its reference quantiles; print how well it transfers.

Run: `python bench/fit_difficulty.py [--data ../shared/data/routing] [--shuffles N] [--write]`.

What it fits, and on what:
- Data: RouteLLM's per-prompt results on the development half of MMLU (29 subjects, 7,658
  prompts; ../shared/data/routing/README.md). The target is the strong model's gain over the
  weak one on each prompt (1, 0 or -1): the quality a cloud call buys there.
- Fitted features (`FITTED`): ridge regression on standardised features, strongly
  regularised (MMLU's per-prompt signal is weak and much of it is between subjects), with
  the sign each feature should have fixed in advance: a feature whose fit comes out with the
  other sign is dropped and the rest refitted.
- Shape of the score: the token count's term (`ANCHOR`) plus the other fitted features as
  one adjustment, clipped to `BOUND` standard deviations of the anchor's term. Length is the
  ranking known to transfer; the rest, fitted on 29 subjects, may refine it but not overturn
  it (in cross-validation the unbounded sum fell far below length on some folds of subjects).
- Hand-set features (`PRIORS`): the shapes MMLU does not contain (arithmetic word problems,
  code, requests for open-ended prose, short recall questions, requests to derive, prove or
  design, code to write, multi-step structure, formal notation) cannot be fitted on it.
  Their weights are set in the same unit (expected gain) from what is known about small
  models in general, signs by reasoning and sizes so that a short request of the kind ranks
  in the hardest ~30% (or, for prose and recall, the easiest); they are not tuned on any
  benchmark. They describe open requests and count zero on a prompt that offers answer
  options (feature `options`): on MMLU, all multiple-choice, they marked no more gain than
  average and, ranked first, pushed the router below longest-first at low cloud shares. The
  fitted features are fitted to what the priors leave unexplained.
- Transfer: cross-validation by subject (six folds of whole subjects, five shuffles by
  default); for each test fold, the APGR of the model's ranking minus that of longest-first,
  and the same for the gap recovered at 10% and 20% cloud share.
- Reference quantiles: the model's raw score on every development prompt, at 201 evenly
  spaced quantiles. DevPulse's difficulty is a prompt's position in that distribution, so
  `routing.cloud_share = c` sends prompts with difficulty >= 1 - c to the cloud: about a
  share c of MMLU-like traffic.

With --write it replaces devpulse/plugins/difficulty/weights.json. numpy is needed here only.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devpulse.plugins.difficulty.features import extract  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "routing"
WEIGHTS = ROOT / "devpulse" / "plugins" / "difficulty" / "weights.json"
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
# Fitted features and the sign each must have: longer, more numbers, more conditions make a
# prompt harder; jargon density marks recall (both models
# know the fact), plain wording marks reasoning.
FITTED = {
    "tokens": 1,
    "numbers": 1,
    "conditions": 1,
    "long_words": -1,
}
# Expected gain, set by hand: a maths word problem is where a small model loses most; asking
# for code costs it more than asking for facts; open-ended writing and recalling a fact cost
# it little. A request to derive, prove or design, or to write code, is worth about 0.06: on
# its own, enough to lift a one-line request (about 15 tokens, -0.02 against a typical prompt)
# into the hardest ~10-20% of MMLU-like traffic. Structure (three markers) and formal
# notation (four marks) add up to 0.04 and 0.03: they strengthen a request, never make one.
ANCHOR = "tokens"
BOUND = 1.0  # the adjustment's limit, in standard deviations of the anchor's term
MIN_ANCHOR = 1e-3  # the anchor's weight where the fit drops it (expected gain per doubling)
PRIORS = {
    "word_problem": 0.15,
    "code": 0.10,
    "prose": -0.10,
    "recall": -0.05,
    "derive": 0.06,
    "code_request": 0.06,
    "structure": 0.04,
    "formal": 0.03,
}
LAMBDA = 1.0
QUANTILES = 201


def load(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    csv.field_size_limit(1 << 30)
    subjects, prompts, gains = [], [], []
    for path in sorted((root / "mmlu" / "responses").glob("mmlu_*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                subjects.append(path.stem.removeprefix("mmlu_"))
                prompts.append(row["prompt"])
                gains.append((row[STRONG] == "True") - (row[WEAK] == "True"))
    return subjects, prompts, np.array(gains, float)


def apgr(score: np.ndarray, gain: np.ndarray) -> tuple[float, float, float]:
    """APGR, CPT50 and CPT80 of ranking by `score`, ties shared (as the scorer does)."""
    order = np.argsort(-score, kind="stable")
    s, g = score[order], np.cumsum(gain[order])
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    k = np.r_[0, ends + 1].astype(float)
    total = g[-1]
    gk = np.r_[0.0, g[ends]] / total
    area = float(np.sum(np.diff(k) * (gk[1:] + gk[:-1]) / 2) / len(s))

    def cpt(target: float) -> float:
        i = int(np.argmax(gk >= target))
        k0, k1, g0, g1 = k[i - 1], k[i], gk[i - 1], gk[i]
        return float((k0 + (k1 - k0) * (target - g0) / ((g1 - g0) or 1)) / len(s))

    return area, cpt(0.5), cpt(0.8)


def fit(
    x: np.ndarray, y: np.ndarray, names: list[str], fitted: list[str]
) -> tuple[dict[str, float], float]:
    """Sign-constrained ridge: drop a feature whose weight has the wrong sign, refit.

    `x` has every feature (columns in the order of `names`); the hand-set ones' share of the
    gain is taken off the target first, so the fitted weights explain what the priors do not.
    The result holds the fitted weights only, and the bias.
    """
    y = y - raw(x, names, PRIORS, 0.0) * (1 - x[:, names.index("options")])
    active = list(fitted)
    while True:
        cols = [names.index(n) for n in active]
        z = x[:, cols]
        mu, sd = z.mean(0), z.std(0) + 1e-9
        zs = (z - mu) / sd
        a = zs.T @ zs + LAMBDA * len(zs) * np.eye(len(cols))
        w = np.linalg.solve(a, zs.T @ (y - y.mean())) / sd
        wrong = [n for n, wi in zip(active, w, strict=True) if np.sign(wi) != FITTED[n]]
        if not wrong:
            return dict(zip(active, map(float, w), strict=True)), float(y.mean() - mu @ w)
        active = [n for n in active if n not in wrong]


def raw(x: np.ndarray, names: list[str], weights: dict[str, float], bias: float) -> np.ndarray:
    return bias + sum(x[:, names.index(n)] * w for n, w in weights.items())


def build(x: np.ndarray, y: np.ndarray, names: list[str], fitted: list[str]) -> dict:
    """The model fitted on (x, y), in the form weights.json ships (quantiles aside)."""
    weights, bias = fit(x, y, names, fitted)
    # On a few folds of subjects the anchor comes out with the wrong sign: keep it, at a
    # token weight, so the score stays the length ranking with a bounded adjustment.
    weights.setdefault(ANCHOR, MIN_ANCHOR)
    means = {n: float(x[:, names.index(n)].mean()) for n in weights}
    adjust = [n for n in weights if n != ANCHOR]
    # The ridge's bias is for the plain sum; the adjustment is centred on the means instead.
    bias += sum(weights[n] * means[n] for n in adjust)
    bound = BOUND * float(np.std(weights[ANCHOR] * x[:, names.index(ANCHOR)]))
    return {
        "bias": bias,
        "anchor": ANCHOR,
        "weights": {**weights, **PRIORS},
        "fitted": sorted(adjust),
        "open_only": sorted(PRIORS),
        "bound": bound,
        "means": means,
    }


def score(x: np.ndarray, names: list[str], model: dict) -> np.ndarray:
    """The raw score, as devpulse/plugins/difficulty/model.py computes it."""
    col = {n: x[:, names.index(n)] for n in model["weights"]}
    is_open = 1 - x[:, names.index("options")]
    adjust = sum(
        model["weights"][n] * (col[n] - model["means"][n]) for n in model["fitted"]
    ) + np.zeros(len(x))
    priors = sum(model["weights"][n] * col[n] for n in model["open_only"]) * is_open
    anchor = model["weights"][model["anchor"]] * col[model["anchor"]]
    return model["bias"] + anchor + np.clip(adjust, -model["bound"], model["bound"]) + priors


def pgr_at(score: np.ndarray, gain: np.ndarray, share: float) -> float:
    """The share of the gap recovered by sending the top `share` of prompts to the cloud."""
    order = np.argsort(-score, kind="stable")
    return float(gain[order[: round(share * len(score))]].sum() / gain.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--shuffles", type=int, default=5, help="shuffles of the subject folds")
    ap.add_argument("--write", action="store_true", help="write weights.json")
    args = ap.parse_args()
    subjects, prompts, y = load(args.data)
    feats = [extract(p) for p in prompts]
    names = list(feats[0])
    x = np.array([[f[n] for n in names] for f in feats])
    chars = np.array([len(p) for p in prompts], float)
    fitted = [n for n in names if n in FITTED]

    print(f"fitted on {len(y)} prompts, {len(set(subjects))} MMLU subjects (development half)")
    print(f"  longest-first: APGR {apgr(chars, y)[0]:.3f}")
    for n in names:
        print(f"  {n:13s} alone: APGR {apgr(x[:, names.index(n)], y)[0]:.3f}")

    subject_ids = sorted(set(subjects))
    diffs, model_apgr, length_apgr, at10, at20 = [], [], [], [], []
    for seed in range(args.shuffles):
        order = subject_ids[:]
        random.Random(seed).shuffle(order)
        fold = {s: i % 6 for i, s in enumerate(order)}
        f_of = np.array([fold[s] for s in subjects])
        for k in range(6):
            train, test = f_of != k, f_of == k
            mine = score(x[test], names, build(x[train], y[train], names, fitted))
            model_apgr.append(apgr(mine, y[test])[0])
            length_apgr.append(apgr(chars[test], y[test])[0])
            diffs.append(model_apgr[-1] - length_apgr[-1])
            at10.append(pgr_at(mine, y[test], 0.1) - pgr_at(chars[test], y[test], 0.1))
            at20.append(pgr_at(mine, y[test], 0.2) - pgr_at(chars[test], y[test], 0.2))
    d = np.array(diffs)
    print(
        f"cross-validation by subject (6 folds x {args.shuffles} shuffles): model APGR"
        f" {np.mean(model_apgr):.3f} vs longest-first {np.mean(length_apgr):.3f} on the same"
        f" folds; difference mean {d.mean():+.3f}, 10th percentile {np.percentile(d, 10):+.3f},"
        f" worst {d.min():+.3f}, folds at or above longest-first {np.mean(d >= 0):.0%};"
        f" gap recovered at 10% / 20% cloud share vs longest-first {np.mean(at10):+.3f} /"
        f" {np.mean(at20):+.3f}"
    )

    model = build(x, y, names, fitted)
    scores = score(x, names, model)
    a, c50, c80 = apgr(scores, y)
    print(f"full fit, on the data it was fitted on: APGR {a:.3f} CPT50 {c50:.1%} CPT80 {c80:.1%}")
    print(
        "  PGR at 10% / 20% / 30% / 50% cloud share: "
        + " / ".join(f"{pgr_at(scores, y, c):.3f}" for c in (0.1, 0.2, 0.3, 0.5))
        + " (longest-first "
        + " / ".join(f"{pgr_at(chars, y, c):.3f}" for c in (0.1, 0.2, 0.3, 0.5))
        + ")"
    )
    print(
        "  weights (expected gain per unit): "
        + ", ".join(f"{n} {w:+.4f}" for n, w in model["weights"].items())
        + f"; adjustment bound +-{model['bound']:.4f}"
    )
    if args.write:
        doc = {
            "about": "bench/fit_difficulty.py: ridge on RouteLLM's MMLU development half "
            f"(29 subjects, {len(y)} prompts; target = strong minus weak correctness) for "
            "the anchor and the fitted features, the latter as an adjustment clipped to "
            "+-bound; hand-set priors for the others, counted only on prompts without answer "
            "options; quantiles of the raw score on the same prompts.",
            **model,
            "quantiles": [float(q) for q in np.quantile(scores, np.linspace(0, 1, QUANTILES))],
        }
        WEIGHTS.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {WEIGHTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
