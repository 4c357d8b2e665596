"""Which side a LangChain model runs on, from what LangChain tells its callbacks.

A chat model's callbacks receive its serialized form (class path, constructor arguments with
secrets masked) and its LangSmith parameters (``ls_provider``, ``ls_model_name``). The side
follows from them:

- a class or provider the user named in ``local`` or ``cloud`` takes that side;
- a local runtime's client (Ollama, llama.cpp, LM Studio) is local when its URL is a
  loopback address or unset (its default is this machine; Ollama's is ``OLLAMA_HOST``), and
  a cloud when it points elsewhere or names one of Ollama's cloud models (``-cloud``,
  ``:cloud``), which the local daemon forwards to ollama.com;
- an OpenAI-compatible client whose base URL is a loopback address, on a port a local model
  server listens on by default (LOCAL_SERVER_PORTS), is local: that is how llama-server, LM
  Studio, vLLM and Ollama's OpenAI endpoint are reached on this machine. On another port it
  is a cloud: a gateway on this machine (LiteLLM's proxy listens on 4000, an SSH tunnel
  anywhere) forwards to a cloud provider (review 26);
- every other known provider is a cloud;
- anything else is ``unknown_side``, cloud by default, so that a model nobody classified can
  never receive a sensitive prompt.

A loopback URL does not make ChatAnthropic local: an Anthropic URL on this machine is most
often a proxy to the cloud. Name it in ``local`` if it is not.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

import re2

from devpulse.core.types import Side

# Lower-case class names and LangSmith provider names.
LOCAL_MODELS = frozenset(
    {"chatollama", "ollamallm", "ollama", "chatllamacpp", "llamacpp", "llama_cpp", "lmstudio"}
)
# OpenAI-compatible clients: local when pointed at this machine, cloud otherwise.
OPENAI_COMPATIBLE = frozenset({"chatopenai", "openai", "baseopenai", "openai_compatible"})
CLOUD_MODELS = frozenset(
    {
        "chatanthropic",
        "anthropic",
        "chatanthropicvertex",
        "azure",
        "azurechatopenai",
        "azure_openai",
        "chatgooglegenerativeai",
        "google_genai",
        "chatvertexai",
        "google_vertexai",
        "vertexai",
        "chatbedrock",
        "chatbedrockconverse",
        "amazon_bedrock",
        "bedrock",
        "chatmistralai",
        "mistral",
        "mistralai",
        "chatcohere",
        "cohere",
        "chatgroq",
        "groq",
        "chatfireworks",
        "fireworks",
        "chattogether",
        "together",
        "chatdeepseek",
        "deepseek",
        "chatxai",
        "xai",
        "chatperplexity",
        "perplexity",
        "chatopenrouter",
        "openrouter",
    }
)
# The ports local model servers listen on by default: llama-server's, LM Studio's, vLLM's and
# Ollama's.
LOCAL_SERVER_PORTS = frozenset({8080, 1234, 8000, 11434})
# Models that route themselves through DevPulse: the router guards and books them.
ROUTED = frozenset({"devpulsechatmodel", "devpulse"})
URL_KEYS = ("base_url", "openai_api_base", "api_base", "endpoint_url")
# Ollama's cloud models: the local daemon forwards them to ollama.com.
CLOUD_TAGS = ("-cloud", ":cloud")
# A field in the repr LangChain sends for a model it cannot serialize (ChatOllama):
# ``base_url='http://host:11434'``.
REPR_FIELD = re2.compile(r"""(?:^|[(,\s])(\w+)=(?:'([^']*)'|"([^"]*)")""")


def model_names(
    serialized: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None
) -> tuple[str, str]:
    """The model's class name and its LangSmith provider, as LangChain reports them."""
    serialized = serialized or {}
    path = serialized.get("id")
    name = path[-1] if isinstance(path, list) and path else serialized.get("name")
    provider = (metadata or {}).get("ls_provider")
    return (str(name) if name else "", str(provider) if provider else "")


def model_side(
    serialized: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None = None,
    *,
    local: Collection[str] = (),
    cloud: Collection[str] = (),
    unknown_side: Side = Side.CLOUD,
) -> Side | None:
    """The side the model behind a callback runs on; None for a model DevPulse routes itself.

    `local` and `cloud` name class names or providers (any case) whose side the user fixes.
    """
    name, provider = model_names(serialized, metadata)
    keys = {name.lower(), provider.lower()} - {""}
    if keys & {k.lower() for k in local}:
        return Side.LOCAL
    if keys & {k.lower() for k in cloud}:
        return Side.CLOUD
    if keys & ROUTED:
        return None
    if keys & LOCAL_MODELS:
        return Side.LOCAL if _runs_here(serialized, metadata, keys) else Side.CLOUD
    if keys & OPENAI_COMPATIBLE:
        url = base_url(serialized)
        return Side.LOCAL if url is not None and _local_server(url) else Side.CLOUD
    if keys & CLOUD_MODELS:
        return Side.CLOUD
    return unknown_side


def _runs_here(
    serialized: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None, keys: set[str]
) -> bool:
    """Whether a local runtime's client talks to this machine about a model that runs here."""
    fields = _fields(serialized)
    models = [(metadata or {}).get("ls_model_name"), *fields.get("model", ())]
    if any(isinstance(m, str) and m.lower().endswith(CLOUD_TAGS) for m in models):
        return False
    urls = [u for k in URL_KEYS for u in fields.get(k, ()) if u]
    if not urls and any("ollama" in k for k in keys):  # Ollama's client reads OLLAMA_HOST
        urls = [os.environ["OLLAMA_HOST"]] if os.environ.get("OLLAMA_HOST") else []
    return all(is_loopback(u) for u in urls)


def _fields(serialized: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """The string arguments a model was built with: its serialized ``kwargs``, or for a
    model LangChain cannot serialize, every ``name='value'`` in its repr (all of them: a
    field name repeated inside another field's value must not hide the real one)."""
    found: dict[str, list[str]] = {}
    kwargs = (serialized or {}).get("kwargs")
    if isinstance(kwargs, Mapping):
        for key, value in kwargs.items():
            if isinstance(value, str):
                found.setdefault(str(key), []).append(value)
    text = (serialized or {}).get("repr")
    if isinstance(text, str):
        for match in REPR_FIELD.finditer(text):
            found.setdefault(match.group(1), []).append(match.group(2) or match.group(3) or "")
    return found


def base_url(serialized: Mapping[str, Any] | None) -> str | None:
    """The base URL the model was built with, if its serialized arguments carry one."""
    kwargs = (serialized or {}).get("kwargs")
    if not isinstance(kwargs, Mapping):
        return None
    for key in URL_KEYS:
        value = kwargs.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _local_server(url: str) -> bool:
    """Whether `url` reaches a local model server's default port on this machine."""
    try:
        port = urlsplit(url if "//" in url else f"//{url}").port
    except ValueError:
        return False
    return is_loopback(url) and port in LOCAL_SERVER_PORTS


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine: localhost, a loopback address, or the unspecified
    address (``OLLAMA_HOST=0.0.0.0``, set so the server listens everywhere: a client
    connecting there reaches this machine)."""
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
