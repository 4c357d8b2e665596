from __future__ import annotations

import pytest

from devpulse import Image, Message, Request, TaskClass


@pytest.mark.parametrize(
    ("prompt", "task", "rule"),
    [
        ("Refactor this function:\ndef f(x):\n    return x", TaskClass.REFACTOR, "refactor_verb"),
        ("rename `foo` to `bar` here:\nfoo = 1;\n", TaskClass.REFACTOR, "refactor_verb"),
        ("Review this diff for bugs:\n```\n-a\n+b\n```", TaskClass.CODE_REVIEW, "review_request"),
    ],
)
def test_code_wording_rules_need_code(make_router, prompt: str, task: TaskClass, rule: str) -> None:
    classification = make_router().classify(Request.from_prompt(prompt))
    assert classification.task_class is task
    assert classification.task_rule == rule


@pytest.mark.parametrize(
    "prompt",
    [
        "Review the evidence the court admitted and say which objection fails.",
        "summarize this changelog",
        "Design a multi-step migration plan for our billing system across three services",
        "What are the compliance obligations of a clinical trial sponsor in the EU?",
    ],
)
def test_wording_without_a_shape_routes_by_difficulty(make_router, prompt: str) -> None:
    """Topic words name no class any more: the difficulty does, against the threshold."""
    classification = make_router().classify(Request.from_prompt(prompt))
    assert classification.difficulty is not None
    hard = classification.difficulty >= 0.7
    assert classification.task_class is (TaskClass.REASONING if hard else TaskClass.QUICK_QA)
    assert classification.task_rule.startswith("difficult (" if hard else "easy (")


def test_fill_in_the_middle_is_autocomplete(make_router) -> None:
    router = make_router()
    by_suffix = router.classify(Request.from_prompt("def add(a, b):\n    ", suffix="\n"))
    assert by_suffix.task_class is TaskClass.AUTOCOMPLETE
    by_marker = router.classify(Request.from_prompt("<|fim_prefix|>x = <|fim_suffix|>"))
    assert by_marker.task_class is TaskClass.AUTOCOMPLETE


def test_images_are_multimodal(make_router) -> None:
    request = Request(messages=(Message("user", "what is this?", (Image("image/png", "AAAA"),)),))
    assert make_router().classify(request).task_class is TaskClass.MULTIMODAL


def test_tools_with_planning_language_are_agentic(make_router) -> None:
    tools = ({"name": "run_shell", "description": "run a command", "input_schema": {}},)
    agentic = Request.from_prompt(
        "Plan the steps to upgrade every service, then do it", tools=tools
    )
    assert make_router().classify(agentic).task_class is TaskClass.AGENTIC
    no_plan = Request.from_prompt("what time is it?", tools=tools)
    assert make_router().classify(no_plan).task_class is TaskClass.QUICK_QA


def test_long_context_threshold_is_configurable(make_router) -> None:
    prompt = "lorem ipsum " * 2000  # ~24 000 characters, ~6 000 tokens
    assert (
        make_router().classify(Request.from_prompt(prompt)).task_class is not TaskClass.LONG_CONTEXT
    )
    small = make_router({"classify": {"long_context_tokens": 1000}})
    classification = small.classify(Request.from_prompt(prompt))
    assert classification.task_class is TaskClass.LONG_CONTEXT
    assert "1000" in classification.task_rule


def test_explicit_task_always_wins(make_router) -> None:
    request = Request.from_prompt("summarize this changelog", task=TaskClass.REASONING)
    classification = make_router().classify(request)
    assert classification.task_class is TaskClass.REASONING
    assert classification.task_rule == "explicit"


def test_explicit_task_still_reports_the_difficulty(make_router) -> None:
    request = Request.from_prompt("hello", task=TaskClass.REASONING)
    classification = make_router().classify(request)
    assert classification.difficulty is not None
    assert 0 <= classification.difficulty < 0.3
