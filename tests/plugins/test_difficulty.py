"""The difficulty score: sensible on prompt kinds MMLU lacks, calibrated, and what it drives."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devpulse import (
    ConfigError,
    Labels,
    PrivacyLevel,
    Request,
    Side,
    TaskClass,
    config_from_mapping,
    hookimpl,
)
from devpulse.plugins.difficulty import features, model
from devpulse.plugins.privacy.spans import found_in

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing" / "mmlu" / "responses"

# A sanity set written for these tests (not from any benchmark): kinds of prompt MMLU lacks.
EASY = [
    "hi!",
    "thanks, that helped a lot",
    "Write a short poem about autumn leaves.",
    "Draft a friendly email inviting the team to Friday lunch.",
    "Imagine you are a pirate captain. Describe your ship.",
    "What is the capital of Australia?",
    "Summarize in one line: the meeting moved to Thursday.",
]
HARD = [
    "A bakery sells muffins for $3 each and cookies for $1.50 each. On Monday it sold 48 "
    "muffins and twice as many cookies. If it spends $40 on ingredients, how much profit did "
    "it make?",
    "Tom is 4 years older than his sister. In 6 years the sum of their ages will be 38. "
    "How old is Tom now?",
    "Write a Python function that returns the longest palindromic substring of a string.",
    "Implement a thread-safe LRU cache in Java with get and put in O(1).",
    "def merge(a, b):\n    out = []\n    while a and b:\n        out.append(a.pop(0))\n"
    "    return out + a + b\n\nWhy is this slow for long lists, and how would you fix it?",
]


def test_scores_lie_in_the_unit_interval_and_explain_themselves() -> None:
    scorer = model.load()
    for prompt in [*EASY, *HARD, "", "x" * 100_000, "7" * 5000]:
        score = scorer.score(prompt)
        assert 0 <= score.difficulty <= 1
        assert score.reason().startswith(f"difficulty {score.difficulty:.2f}")


def test_word_problems_and_code_rank_above_chit_chat_and_drafting() -> None:
    scorer = model.load()
    easy = [scorer.score(p).difficulty for p in EASY]
    hard = [scorer.score(p).difficulty for p in HARD]
    assert max(easy) < 0.3
    assert min(hard) > 0.7
    word_problem = scorer.score(HARD[0])
    assert word_problem.drivers[0][0] == "word_problem"


def test_position_is_monotone_and_strict_beyond_the_reference() -> None:
    scorer = model.load()
    lo, hi = scorer.quantiles[0], scorer.quantiles[-1]
    raws = [lo - 1, lo - 0.01, lo, (lo + hi) / 2, hi, hi + 0.01, hi + 1]
    positions = [scorer.position(r) for r in raws]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    assert positions[0] > 0
    assert positions[-1] < 1


@pytest.mark.parametrize(("share", "side"), [(0.0, Side.LOCAL), (1.0, Side.CLOUD)])
def test_cloud_share_ends_keep_everything_on_one_side(make_router, share, side) -> None:
    router = make_router({"routing": {"cloud_share": share}})
    for prompt in [*EASY, *HARD]:
        assert router.route(prompt).side is side


class Secret:
    @hookimpl
    def classify(self, request: Request) -> Labels:
        return Labels(privacy_level=PrivacyLevel.SECRET)


def test_explicit_task_and_privacy_win_over_difficulty(make_router) -> None:
    router = make_router()
    assert router.route(HARD[0]).side is Side.CLOUD
    assert router.route(HARD[0], task=TaskClass.DRAFTING).side is Side.LOCAL
    decision = make_router(plugins=[Secret()]).route(HARD[0])
    assert decision.classification is not None
    assert decision.classification.task_class is TaskClass.REASONING
    assert decision.side is Side.LOCAL


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, "routing.cloud_share: must be from 0 to 1"),
        (-0.1, "routing.cloud_share: must be from 0 to 1"),
        ("high", "routing.cloud_share: expected a number, got a string"),
    ],
)
def test_cloud_share_is_checked(value, message) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({"routing": {"cloud_share": value}})


def test_cloud_share_sits_beside_the_table() -> None:
    config = config_from_mapping({"routing": {"cloud_share": 0.25}})
    assert config.policy.cloud_share == 0.25
    assert set(config.routing) == set(TaskClass)


@pytest.mark.skipif(not DATA.is_dir(), reason="the shared routing data is not here")
@pytest.mark.parametrize("share", [0.1, 0.3, 0.5])
def test_cloud_share_setting_moves_the_measured_share(make_router, share) -> None:
    """On a sample of the development prompts, the share sent to the cloud is within 5 points."""
    csv.field_size_limit(1 << 30)
    prompts = []
    for path in sorted(DATA.glob("mmlu_*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            prompts += [row["prompt"] for row in csv.DictReader(fh)][::8]
    router = make_router({"routing": {"cloud_share": share}})
    cloud = sum(router.route(p).side is Side.CLOUD for p in prompts)
    assert abs(cloud / len(prompts) - share) <= 0.05


def _choice(question: str, options: list[str]) -> str:
    labels = "ABCD"
    return question + "".join(f"\n{labels[i]}. {o}" for i, o in enumerate(options)) + "\nAnswer:"


def test_answer_options_switch_the_open_request_priors_off() -> None:
    scorer = model.load()
    open_request = HARD[1]
    choice = _choice(open_request, ["10", "14", "18", "24"])
    assert scorer.score(open_request).drivers[0][0] == "word_problem"
    assert "word_problem" not in {name for name, _ in scorer.score(choice).drivers}
    assert scorer.score(choice).difficulty < 0.9 < scorer.score(open_request).difficulty


def test_the_adjustment_cannot_overturn_a_large_length_difference() -> None:
    """Eight times the tokens outranks plain wording, numbers and conditions: the fitted
    features other than length move a prompt by at most `bound` either way."""
    scorer = model.load()
    short = _choice(
        "If each of 3 boxes holds 4 red and 5 blue balls, and half the red ones are taken out "
        "of every box, how many balls are left?",
        ["21", "18", "24", "27"],
    )
    jargon = " ".join(["Pharmacokinetic considerations regarding hepatotoxicity"] * 40)
    long = _choice(jargon + ". Which statement is correct?", ["first", "second", "third", "fourth"])
    # The premise: three doublings of length outweigh the adjustment's whole range.
    assert 0 < 2 * scorer.bound < 3 * scorer.weights[scorer.anchor]
    assert scorer.score(long).difficulty > scorer.score(short).difficulty


# The features read text in C where they can; these say the shortcuts answer as the plain
# Python they replaced would, on any text.
_TEXT = st.lists(
    st.sampled_from(
        [
            *"aAé9 \n.,?{};=<>^_(`",
            *("if", "two", "half", "step", "```", "A. ", "B) ", "how many ", "prove "),
            *("write a function ", "who is ", "summarize ", "then "),
        ]
    ),
    max_size=400,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.integers(min_value=1, max_value=400))
def test_long_words_are_counted_as_one_by_one(text: str, long_run: int) -> None:
    words = [*(text + " " + "x" * long_run).encode().split()]
    assert features._long_words(words) == sum(len(w) >= features.LONG_WORD for w in words)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_the_pattern_set_says_what_each_pattern_would(text: str) -> None:
    data = text.encode()
    matching = features._matching(data)
    assert {p for p in features._PATTERNS if found_in(p, data)} == matching
