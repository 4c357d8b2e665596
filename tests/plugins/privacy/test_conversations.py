"""Privacy reads everything that leaves: system, tools, tool calls, tool results, thinking.

The agent case: a tool reads `.env`, its result goes into the next turn, and that turn (the
whole conversation) must stay local, however the rest of it looks.
"""

from __future__ import annotations

import base64
import random
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devpulse import (
    ImageBlock,
    Message,
    PrivacyLevel,
    Request,
    TaskClass,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from devpulse.core.blocks import block_text
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
    # a key with nothing under it, in a tool's input or schema (review 26)
    "tool_input_key",
    "tool_schema_key",
    # fields sent that hold no prose: an image's data and media type, the tool choice, a
    # thinking block's signature and redacted data
    "image_data",
    "image_media_type",
    "tool_choice",
    "tool_use_id",
    "tool_result_id",
    "thinking_signature",
    "redacted_thinking",
    # cut in two, over two text blocks that a provider's body runs together
    "split_user_text",
    "split_tool_result",
)


def plant(place: str, secret: str, turns: list[Message], cut: int = 1) -> Request:
    """`turns` with `secret` put in one place of the conversation (cut at `cut`, where it
    is split over two blocks)."""
    system: tuple[TextBlock, ...] = (TextBlock("You are a coding agent."),)
    tools = [READ_FILE]
    stop: tuple[str, ...] = ()
    choice = None
    if place == "stop_sequence":
        stop = ("END", secret)
    elif place == "system":
        system = (TextBlock(f"Deploy with {secret}"),)
    elif place == "tool_description":
        tools.append(Tool("deploy", f"Deploys using {secret}"))
    elif place == "tool_schema":
        tools.append(Tool("deploy", "", {"type": "object", "default": {"token": secret}}))
    elif place == "tool_schema_key":
        tools.append(Tool("deploy", "", {"type": "object", "properties": {secret: {}}}))
    elif place == "tool_choice":
        choice = ToolChoice("tool", secret)
    messages = [*turns, *planted_turns(place, secret, cut)]
    messages.append(Message("user", "Design a multi-step plan for the release."))
    return Request(
        messages=tuple(messages),
        system=system,
        tools=tuple(tools),
        task=TaskClass.REASONING,
        stop_sequences=stop,
        tool_choice=choice,
    )


def planted_turns(place: str, secret: str, cut: int) -> list[Message]:
    """The turns that carry `secret` where `place` is inside a message; none elsewhere."""
    halves = (TextBlock(f"use {secret[:cut]}"), TextBlock(f"{secret[cut:]} please"))
    read = Message("assistant", (ToolUseBlock("c9", "read_file", {"path": ".env"}),))
    env = f"DEBUG=1\nTOKEN={secret}\n"

    def called(given: dict[str, object]) -> list[Message]:
        return [Message("assistant", (ToolUseBlock("c9", "deploy", given),))]

    planted = {
        "split_user_text": [Message("user", halves)],
        "split_tool_result": [read, Message("user", (ToolResultBlock("c9", halves),))],
        "user_text": [Message("user", f"use {secret} please")],
        "assistant_text": [Message("assistant", f"I will use {secret}")],
        "tool_input": called({"key": secret}),
        "nested_tool_input": called({"key": {"auth": {"headers": [secret]}}}),
        "tool_input_key": called({"tokens": {secret: []}, "note": {}}),
        "tool_result": [read, Message("user", (ToolResultBlock("c9", env),))],
        "thinking": [Message("assistant", (ThinkingBlock(f"maybe {secret}", "sig"),))],
        "tool_use_id": [Message("assistant", (ToolUseBlock(secret, "read_file", {}),))],
        "tool_result_id": [Message("user", (ToolResultBlock(secret, "done"),))],
        "thinking_signature": [Message("assistant", (ThinkingBlock("let me see", secret),))],
        "redacted_thinking": [Message("assistant", (ThinkingBlock(redacted=secret),))],
        "image_data": [
            Message(
                "user",
                (
                    TextBlock("what is wrong here?"),
                    ImageBlock.from_bytes(env.encode(), "text/plain"),
                ),
            )
        ],
        "image_media_type": [Message("user", (ImageBlock(secret, "iVBORw0KGgo="),))],
    }
    return planted.get(place, [])


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


def test_maps_keyed_by_random_ids_keep_a_conversation_public() -> None:
    """Review 27: a key read on a line of its own (a Firestore id, a nanoid) read as a token;
    read in its path, it is an id's."""
    rng = random.Random(27)
    letters = string.ascii_letters + string.digits
    for n in range(100):
        ids = ["".join(rng.choice(letters) for _ in range(20)) for _ in range(3)]
        given = {"docs": {i: {"title": "draft", "tags": []} for i in ids}, "seen": {ids[0]: True}}
        request = Request(
            messages=(
                Message("user", "Merge the drafts."),
                Message("assistant", (ToolUseBlock("toolu_01x", "merge", given),)),
            ),
            tools=(Tool("merge", "", {"type": "object", "properties": {i: {} for i in ids}}),),
        )
        classification = ROUTER.route(request).classification
        assert classification is not None
        assert not classification.findings, n


def test_what_a_provider_writes_in_a_thinking_block_keeps_a_conversation_public() -> None:
    """A signature and redacted data are base64 of random bytes: read under their names,
    none of 200 makes a conversation local (alone, one in 40 read as a token)."""
    rng = random.Random(26)
    for n in range(200):
        opaque = base64.b64encode(rng.randbytes(rng.choice([48, 200, 700]))).decode()
        block = (
            ThinkingBlock("checking the plan", opaque) if n % 2 else ThinkingBlock(redacted=opaque)
        )
        request = Request(
            messages=(Message("user", "Plan the release."), Message("assistant", (block,)))
        )
        classification = ROUTER.route(request).classification
        assert classification is not None
        assert not classification.findings, n


def test_an_image_is_not_read_as_text_but_a_text_file_sent_as_one_is() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    assert list(block_text(ImageBlock.from_bytes(png, "image/png"))) == ["image/png"]
    env = ImageBlock.from_bytes(b"DEBUG=1\n", "text/plain")
    assert list(block_text(env)) == ["text/plain", "DEBUG=1\n"]
    # Latin-1, or a stray byte, is still read (review 27); so is base64 with no padding
    latin = ImageBlock.from_bytes("PASSWORT=Gr\xfcn-7x!Qz\n".encode("latin-1"), "text/plain")
    assert list(block_text(latin))[1].startswith("PASSWORT=Gr\ufffdn")
    unpadded = ImageBlock("text/plain", base64.b64encode(b"DEBUG=1").decode().rstrip("="))
    assert list(block_text(unpadded))[1] == "DEBUG=1"
    assert list(block_text(ImageBlock("image/png", "not base64!"))) == ["image/png"]
    # a text whose first letters are an image format's (BMP's BM, RIFF) is read as text
    for text in ("BMW_API_KEY=abc\n", "RIFF notes: tempo 120\n"):
        assert list(block_text(ImageBlock.from_bytes(text.encode(), "text/plain")))[1] == text
    bmp = b"BM" + (1234).to_bytes(4, "little") + bytes(4) + b"DEBUG=1" * 10
    webp = b"RIFF" + (1234).to_bytes(4, "little") + b"WEBPVP8 " + b"DEBUG=1" * 10
    for image in (bmp, webp):
        assert list(block_text(ImageBlock.from_bytes(image, "image/bmp"))) == ["image/bmp"]


def test_the_ids_providers_give_tool_calls_keep_a_conversation_public() -> None:
    """Read whole, an id with 32 random letters and digits after its prefix read as a token
    (one in three here); the providers' own (22 or 24 after the prefix) did not."""
    rng = random.Random(7)
    letters = string.ascii_letters + string.digits
    for n in range(200):
        prefix = ("toolu_01", "toolu_", "call_", "fc_", "srvtoolu_")[n % 5]
        call_id = prefix + "".join(rng.choice(letters) for _ in range(rng.choice([22, 24, 32])))
        request = Request(
            messages=(
                Message("user", "Plan the release."),
                Message("assistant", (ToolUseBlock(call_id, "read_file", {"path": "notes.md"}),)),
                Message("user", (ToolResultBlock(call_id, "release on friday"),)),
            )
        )
        classification = ROUTER.route(request).classification
        assert classification is not None
        assert not classification.findings, call_id


def test_a_tool_schema_that_asks_for_credentials_holds_none() -> None:
    """A login tool's schema names its fields password and token; it holds no value (review
    27: `properties.password.format: password` then the next key read as the password)."""
    schema = {
        "type": "object",
        "properties": {
            "api_key": {"type": "string", "description": "Your secret API key"},
            "password": {"type": "string", "format": "password", "writeOnly": True},
            "client_secret": {"type": "string"},
        },
    }
    request = Request(messages=(Message("user", "log in"),), tools=(Tool("login", "", schema),))
    classification = ROUTER.route(request).classification
    assert classification is not None
    assert not classification.findings
