"""Privacy reads everything that leaves: system, tools, tool calls, tool results, thinking.

The agent case: a tool reads `.env`, its result goes into the next turn, and that turn (the
whole conversation) must stay local, however the rest of it looks.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devpulse import (
    Message,
    PrivacyLevel,
    Request,
    TaskClass,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolResultBlock,
    ToolUseBlock,
)
from devpulse.plugins.privacy.plugin import outbound_text
from tests.plugins.privacy import secrets_factory as make
from tests.support import router_with

ROUTER = router_with()
# Harmless prose: words, punctuation and newlines (no keyword of any rule is likely).
WORDS = st.text(alphabet=st.sampled_from(list("abcdefghij klmnop,.\n")), max_size=60)
READ_FILE = Tool("read_file", "Read a file", {"type": "object", "properties": {"path": {}}})


def test_a_secret_in_a_tool_result_keeps_the_conversation_local() -> None:
    key = make.openai_key(random.Random(1))
    request = Request(
        messages=(
            Message("user", "Plan a multi-step migration of the service."),
            Message("assistant", (ToolUseBlock("call_1", "read_file", {"path": ".env"}),)),
            Message("user", (ToolResultBlock("call_1", f"DEBUG=1\nOPENAI_API_KEY={key}\n"),)),
        ),
        tools=(READ_FILE,),
        task=TaskClass.AGENTIC,  # the routing table sends agentic work to the cloud
    )
    decision = ROUTER.route(request)
    assert decision.classification is not None
    assert decision.classification.privacy_level is PrivacyLevel.SECRET
    assert decision.side.value == "local"
    # Without the result, the same conversation goes to the cloud: the result decided it.
    clean = Request(messages=request.messages[:2], tools=request.tools, task=TaskClass.AGENTIC)
    assert ROUTER.route(clean).side.value == "cloud"


PLACES = (
    "system",
    "tool_description",
    "tool_schema",
    "user_text",
    "assistant_text",
    "tool_input",
    "nested_tool_input",
    "tool_result",
    "thinking",
    "stop_sequence",
    # cut in two, over two text blocks that a provider's body runs together
    "split_user_text",
    "split_tool_result",
)


def plant(place: str, secret: str, turns: list[Message], cut: int = 1) -> Request:
    """`turns` with `secret` put in one place of the conversation (cut at `cut`, where it
    is split over two blocks)."""
    system: tuple[TextBlock, ...] = (TextBlock("You are a coding agent."),)
    tools = [READ_FILE]
    messages = list(turns)
    stop: tuple[str, ...] = ()
    halves = (TextBlock(f"use {secret[:cut]}"), TextBlock(f"{secret[cut:]} please"))
    if place == "stop_sequence":
        stop = ("END", secret)
    elif place == "split_user_text":
        messages.append(Message("user", halves))
    elif place == "split_tool_result":
        messages += [
            Message("assistant", (ToolUseBlock("c9", "read_file", {"path": ".env"}),)),
            Message("user", (ToolResultBlock("c9", halves),)),
        ]
    elif place == "system":
        system = (TextBlock(f"Deploy with {secret}"),)
    elif place == "tool_description":
        tools.append(Tool("deploy", f"Deploys using {secret}"))
    elif place == "tool_schema":
        tools.append(Tool("deploy", "", {"type": "object", "default": {"token": secret}}))
    elif place == "user_text":
        messages.append(Message("user", f"use {secret} please"))
    elif place == "assistant_text":
        messages.append(Message("assistant", f"I will use {secret}"))
    elif place in ("tool_input", "nested_tool_input"):
        value = {"auth": {"headers": [secret]}} if place == "nested_tool_input" else secret
        messages.append(Message("assistant", (ToolUseBlock("c9", "deploy", {"key": value}),)))
    elif place == "tool_result":
        messages += [
            Message("assistant", (ToolUseBlock("c9", "read_file", {"path": ".env"}),)),
            Message("user", (ToolResultBlock("c9", f"TOKEN={secret}\n"),)),
        ]
    else:
        messages.append(Message("assistant", (ThinkingBlock(f"maybe {secret}", "sig"),)))
    messages.append(Message("user", "Design a multi-step plan for the release."))
    return Request(
        messages=tuple(messages),
        system=system,
        tools=tuple(tools),
        task=TaskClass.REASONING,
        stop_sequences=stop,
    )


TURNS = st.lists(
    st.builds(
        Message,
        st.sampled_from(["user", "assistant"]),
        st.lists(st.builds(TextBlock, WORDS), max_size=3),
    ),
    max_size=5,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=TURNS,
    place=st.sampled_from(PLACES),
    kind=st.sampled_from(make.STANDALONE),
    seed=st.integers(0, 2**32),
)
def test_a_secret_anywhere_in_a_conversation_never_goes_to_the_cloud(
    turns, place, kind, seed
) -> None:
    secret = kind(random.Random(seed))
    request = plant(place, secret, turns, cut=1 + seed % (len(secret) - 1))
    decision = ROUTER.route(request)
    assert decision.classification is not None
    assert decision.classification.local_only, (place, kind.__name__)
    assert decision.side.value == "local"
    # The findings' spans point into the text the classifier read, at the secret.
    text = outbound_text(request)
    start = text.index(secret)
    assert any(
        f.category == "secret" and f.span[0] < start + len(secret) and f.span[1] > start
        for f in decision.classification.findings
    )
