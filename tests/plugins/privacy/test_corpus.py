"""Accuracy on the labelled corpus, as a regression gate (speed is measured in bench/)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from devpulse import config_from_mapping
from devpulse.plugins.privacy import Scanner
from devpulse.plugins.privacy.checks import PUBLIC_PREFIX

DATA = Path(__file__).resolve().parents[2] / "data" / "privacy"


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    with open(DATA / "config.toml", "rb") as fh:
        return Scanner(config_from_mapping(tomllib.load(fh)).privacy)


def load(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def recall(scanner: Scanner, corpus: list[dict], category: str) -> float:
    labelled = [e for e in corpus if category in e["expect"]]
    found = [e for e in labelled if category in {f.category for f in scanner.scan(e["text"])}]
    return len(found) / len(labelled)


def benign_flagged(scanner: Scanner, corpus: list[dict]) -> float:
    benign = [e for e in corpus if not e["expect"]]
    return sum(bool(scanner.scan(e["text"])) for e in benign) / len(benign)


@pytest.mark.parametrize("name", ["corpus.jsonl", "holdout.jsonl"])
def test_corpus_meets_the_targets(scanner: Scanner, name: str) -> None:
    corpus = load(name)
    assert len(corpus) >= 350
    assert recall(scanner, corpus, "secret") >= 0.97
    assert recall(scanner, corpus, "pii") >= 0.95
    assert recall(scanner, corpus, "internal") >= 0.95
    assert benign_flagged(scanner, corpus) <= 0.02


def test_no_finding_preview_reveals_corpus_secrets(scanner: Scanner) -> None:
    for entry in load("corpus.jsonl") + load("holdout.jsonl"):
        for finding in scanner.scan(entry["text"]):
            visible = finding.preview.split("…")[0]
            assert visible == "" or PUBLIC_PREFIX.fullmatch(visible), entry["id"]
