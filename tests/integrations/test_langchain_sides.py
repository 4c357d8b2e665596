"""Which side a LangChain model runs on, from the serialized form LangChain passes callbacks."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.load import dumpd

from devpulse.core.types import Side
from devpulse.integrations.langchain import model_side
from devpulse.integrations.langchain.sides import is_loopback


def serialized(name: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain", "chat_models", name],
        "kwargs": kwargs,
    }


def test_a_real_chat_anthropic_is_a_cloud_model_even_on_a_loopback_url() -> None:
    model = ChatAnthropic(model="claude-sonnet-4-5", base_url="http://127.0.0.1:9", api_key="k")  # type: ignore[call-arg]
    assert model_side(dumpd(model), {"ls_provider": "anthropic"}) is Side.CLOUD
    assert model_side(dumpd(model), {}, local=["ChatAnthropic"]) is Side.LOCAL


@pytest.mark.parametrize(
    ("url", "side"),
    [
        ("http://127.0.0.1:8080/v1", Side.LOCAL),
        ("http://localhost:1234/v1", Side.LOCAL),
        ("http://[::1]:8000/v1", Side.LOCAL),
        ("https://api.openai.com/v1", Side.CLOUD),
        ("https://openrouter.ai/api/v1", Side.CLOUD),
        ("http://127.0.0.1.evil.example/v1", Side.CLOUD),
        (None, Side.CLOUD),
    ],
)
def test_an_openai_client_is_local_only_when_it_points_at_this_machine(
    url: str | None, side: Side
) -> None:
    kwargs = {"openai_api_base": url} if url else {}
    assert model_side(serialized("ChatOpenAI", **kwargs), {"ls_provider": "openai"}) is side


@pytest.mark.parametrize(
    ("name", "provider", "side"),
    [
        ("ChatOllama", "ollama", Side.LOCAL),
        ("ChatLlamaCpp", "llamacpp", Side.LOCAL),
        ("ChatGoogleGenerativeAI", "google_genai", Side.CLOUD),
        ("ChatBedrockConverse", "amazon_bedrock", Side.CLOUD),
        ("SomethingNew", "somethingnew", Side.CLOUD),  # unknown: treated as a cloud
        ("DevPulseChatModel", "devpulse", None),  # routes itself
    ],
)
def test_known_classes_and_providers(name: str, provider: str, side: Side | None) -> None:
    assert model_side(serialized(name), {"ls_provider": provider}) is side


def test_the_side_of_unknown_models_can_be_set() -> None:
    assert model_side(serialized("Mine"), {}, unknown_side=Side.LOCAL) is Side.LOCAL
    assert model_side(serialized("ChatOllama"), {}, cloud=["chatollama"]) is Side.CLOUD


@pytest.mark.parametrize("url", ["", "not a url", "http://[bad", "http://0x7f.0.0.1:80"])
def test_odd_urls_are_not_loopback(url: str) -> None:
    assert not is_loopback(url)
