"""Which side a LangChain model runs on, from the serialized form LangChain passes callbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage

from devpulse import Router
from devpulse.core.errors import PrivacyBlocked
from devpulse.core.types import Side
from devpulse.integrations.langchain import DevPulseCallbackHandler, model_side
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
        ("http://localhost:11434/v1", Side.LOCAL),
        # a gateway on this machine forwards to the cloud: LiteLLM's proxy, a tunnel
        ("http://127.0.0.1:4000/v1", Side.CLOUD),
        ("http://localhost/v1", Side.CLOUD),
        ("http://localhost:99999/v1", Side.CLOUD),
        ("https://api.openai.com/v1", Side.CLOUD),
        ("https://openrouter.ai/api/v1", Side.CLOUD),
        ("http://127.0.0.1.evil.example/v1", Side.CLOUD),
        (None, Side.CLOUD),
    ],
)
def test_an_openai_client_is_local_only_when_it_points_at_a_server_on_this_machine(
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


class ChatOllama(GenericFakeChatModel):
    """Stands in for langchain-ollama's ChatOllama: LangChain cannot serialize it, so its
    callbacks get its repr, which names its fields."""

    model: str = "llama3"
    base_url: str | None = None


def ollama(**fields: Any) -> dict[str, Any]:
    serialized = dumpd(ChatOllama(messages=iter([]), **fields))
    assert serialized["type"] == "not_implemented"
    return serialized


@pytest.mark.parametrize(
    ("fields", "side"),
    [
        ({}, Side.LOCAL),  # the default: this machine
        ({"base_url": "http://127.0.0.1:11434"}, Side.LOCAL),
        ({"base_url": "http://localhost:11434"}, Side.LOCAL),
        ({"base_url": "http://192.0.2.2:11434"}, Side.CLOUD),
        ({"base_url": "https://ollama.com"}, Side.CLOUD),
        ({"model": "gpt-oss:120b-cloud"}, Side.CLOUD),
        ({"model": "deepseek-v3.1:671b-cloud", "base_url": "http://127.0.0.1:11434"}, Side.CLOUD),
        ({"model": "kimi-k2:cloud"}, Side.CLOUD),
        # a loopback URL written in another field does not hide the real one
        ({"model": "x base_url='http://127.0.0.1'", "base_url": "http://192.0.2.2"}, Side.CLOUD),
    ],
)
def test_a_local_runtime_is_local_only_on_this_machine_and_for_its_own_models(
    fields: dict[str, Any], side: Side
) -> None:
    assert model_side(ollama(**fields), {"ls_provider": "ollama"}) is side


def test_ollama_cloud_models_and_hosts_are_read_from_every_place_langchain_tells() -> None:
    assert model_side(ollama(), {"ls_model_name": "gpt-oss:20b-cloud"}) is Side.CLOUD
    remote = serialized("ChatLlamaCpp", base_url="http://192.0.2.2:8080")
    assert model_side(remote, {"ls_provider": "llamacpp"}) is Side.CLOUD
    assert model_side(serialized("ChatLlamaCpp", model_path="/m.gguf"), {}) is Side.LOCAL


def test_ollama_without_a_url_goes_where_ollama_host_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "192.0.2.2:11434")
    assert model_side(ollama(), {"ls_provider": "ollama"}) is Side.CLOUD
    assert model_side(ollama(base_url="http://127.0.0.1:11434"), {}) is Side.LOCAL
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11434")
    assert model_side(ollama(), {"ls_provider": "ollama"}) is Side.LOCAL
    # set so the server listens everywhere: the client connects to this machine
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0")
    assert model_side(ollama(), {"ls_provider": "ollama"}) is Side.LOCAL
    monkeypatch.setenv("OLLAMA_HOST", "[::]:11434")
    assert model_side(ollama(), {"ls_provider": "ollama"}) is Side.LOCAL


def test_the_guard_keeps_a_secret_off_an_ollama_on_another_machine(
    make_router: Callable[..., Router],
) -> None:
    handler = DevPulseCallbackHandler(make_router({"ledger": {"enabled": False}}))
    secret = "deploy with aws_access_key_id=AKIAZ3MXQ7PLR2VWK4TN"
    remote = ChatOllama(messages=iter([AIMessage("ok")]), base_url="http://192.0.2.2:11434")
    with pytest.raises(PrivacyBlocked):
        remote.invoke(secret, config={"callbacks": [handler]})
    here = ChatOllama(messages=iter([AIMessage("ok")]), base_url="http://127.0.0.1:11434")
    assert here.invoke(secret, config={"callbacks": [handler]}).content == "ok"
