"""Token estimates that do not undercount text which is not prose."""

from __future__ import annotations

import base64
import json
import random
import urllib.request

import pytest

from devpulse import Request, TaskClass
from devpulse.core.tokens import estimate_tokens
from tests.rig.llama_server import LlamaServer

RNG = random.Random(5)
BINARY = RNG.randbytes(100_000).decode("utf-8", "replace")  # a binary file read as a prompt
PROSE = (
    "DevPulse decides, per request, where each call goes, makes the local side reliable "
    "enough to route to, and keeps the books. "
) * 200


def shapes() -> dict[str, str]:
    rng = random.Random(9)
    raw = rng.randbytes(20_000)
    return {
        "prose": PROSE,
        "code": "def add(a: int, b: int) -> int:\n    return a + b  # the sum\n\n" * 300,
        "binary": BINARY[:30_000],
        "base64": base64.b64encode(raw).decode(),
        "hex": raw[:12_000].hex(),
        "json": json.dumps([{"id": i, "v": rng.random()} for i in range(600)]),
        "digits": "".join(rng.choice("0123456789") for _ in range(10_000)),
        "chinese": "数据隐私是我们的首要任务所有请求都必须在本地处理" * 200,
        "nul": "\0" * 10_000,
    }


def test_prose_is_four_characters_a_token() -> None:
    assert estimate_tokens(PROSE) == len(PROSE) // 4
    assert estimate_tokens("") == 0


def test_binary_text_is_not_counted_as_prose() -> None:
    # Gemma 3's tokenizer makes 77K tokens of this; characters / 4 said 25K.
    assert estimate_tokens(BINARY) > 0.7 * len(BINARY)


def test_long_text_is_estimated_from_samples_alike() -> None:
    binary = random.Random(6).randbytes(3_000_000).decode("utf-8", "replace")
    read_whole = sum(estimate_tokens(binary[i : i + 4096]) for i in range(0, len(binary), 4096))
    assert estimate_tokens(binary) == pytest.approx(read_whole, rel=0.05)
    assert estimate_tokens(PROSE * 100) == len(PROSE) * 100 // 4


def test_a_binary_prompt_is_long_context_work(make_router) -> None:
    classification = make_router().classify(Request.from_prompt(BINARY))
    assert classification.task_class is TaskClass.LONG_CONTEXT
    assert classification.task_rule.startswith("long_context (~")


def test_estimates_against_the_real_tokenizer(llama_server: LlamaServer) -> None:
    """Within 0.6x to 2x of what the served model's tokenizer counts, for every shape."""
    for name, text in shapes().items():
        request = urllib.request.Request(
            f"{llama_server.base_url}/tokenize",
            data=json.dumps({"content": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            real = len(json.load(reply)["tokens"])
        ratio = estimate_tokens(text) / real
        assert 0.6 < ratio < 2.0, (name, ratio)
