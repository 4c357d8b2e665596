"""A base URL with user info or a query string (`?key=...`, as gateways take a key) reaches
the server as it would through httpx: the path before the query, user info as Basic auth."""

from __future__ import annotations

from devpulse import config_from_mapping
from devpulse.plugins.backends.llama_host import call_json
from devpulse.plugins.backends.openai_compat import OpenAICompatBackend
from tests.support import recording_server


def backend(base_url: str, kind: str = "llama_server"):  # type: ignore[no-untyped-def]
    config = config_from_mapping(
        {"backends": {"b": {"side": "local", "kind": kind, "base_url": base_url}}}
    )
    return config.backends["b"]


def test_a_server_query_beside_v1_keeps_the_base_urls_query_and_sends_user_info() -> None:
    with recording_server({"role": "router"}) as (host, seen):  # as /props answers
        found = call_json(backend(f"http://user:pw%40123@{host}/v1/?key=K1"), "/props")
    assert found == {"role": "router"}
    assert seen == [("/props?key=K1", "Basic dXNlcjpwd0AxMjM=")]  # user:pw@123


def test_the_chat_endpoint_goes_before_the_base_urls_query() -> None:
    url = "http://127.0.0.1:9/v1?key=K1"
    sender = OpenAICompatBackend("b", backend(url, "openai_compat"))
    assert sender.url == "http://127.0.0.1:9/v1/chat/completions?key=K1"
