from __future__ import annotations

import pytest

from devpulse import Labels, PrivacyLevel, Request, Side, TaskClass, hookimpl

DEFAULT_SIDES = {
    TaskClass.AUTOCOMPLETE: Side.LOCAL,
    TaskClass.DRAFTING: Side.LOCAL,
    TaskClass.REFACTOR: Side.LOCAL,
    TaskClass.CODE_REVIEW: Side.LOCAL,
    TaskClass.QUICK_QA: Side.LOCAL,
    TaskClass.REASONING: Side.CLOUD,
    TaskClass.DOMAIN_EXPERT: Side.CLOUD,
    TaskClass.MULTIMODAL: Side.CLOUD,
    TaskClass.AGENTIC: Side.CLOUD,
    TaskClass.LONG_CONTEXT: Side.CLOUD,
}


@pytest.mark.parametrize(("task", "side"), DEFAULT_SIDES.items())
def test_default_table(make_router, task: TaskClass, side: Side) -> None:
    decision = make_router().route(Request.from_prompt("x", task=task))
    assert decision.side is side
    assert decision.backend == ("llama_server" if side is Side.LOCAL else "anthropic")
    assert decision.reasons
    assert task.value in decision.reasons[0]


def test_per_class_backend_and_model(make_router) -> None:
    router = make_router(
        {"routing": {"autocomplete": {"side": "local", "backend": "ollama", "model": "tiny"}}}
    )
    decision = router.route(Request.from_prompt("x", task=TaskClass.AUTOCOMPLETE))
    assert (decision.backend, decision.model) == ("ollama", "tiny")
    drafting = router.route(Request.from_prompt("x", task=TaskClass.DRAFTING))
    assert (drafting.backend, drafting.model) == ("llama_server", "default")


class Sensitive:
    @hookimpl
    def classify(self, request: Request) -> Labels:
        return Labels(privacy_level=PrivacyLevel.SECRET, reasons=("test says secret",))


def test_local_only_requests_stay_local_whatever_the_task(make_router) -> None:
    router = make_router(plugins=[Sensitive()])
    decision = router.route(Request.from_prompt("x", task=TaskClass.REASONING))
    assert decision.side is Side.LOCAL
    assert decision.backend == "llama_server"
    assert any("local-only" in r for r in decision.reasons)
