"""The callback handler on a real ChatAnthropic, talking to the rig's `/v1/messages`.

A counting forwarder sits between the model and llama-server, so "the server sees nothing"
is measured, not assumed. ChatAnthropic is a cloud model to the guard wherever it points.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_anthropic import ChatAnthropic

from devpulse.cli import main
from devpulse.core.config import load_config
from devpulse.core.errors import PrivacyBlocked
from devpulse.core.pipeline import Router
from devpulse.integrations.langchain import DevPulseCallbackHandler
from tests.rig.llama_server import INSTRUCT_ALIAS, LlamaServer
from tests.rig.tcp_proxy import CountingProxy


def test_chat_anthropic_is_stopped_before_the_server_and_booked_when_clean(
    llama_instruct: LlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "devpulse.toml"
    config_file.write_text(f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n')
    handler = DevPulseCallbackHandler(Router(load_config(config_file)))
    with CountingProxy(llama_instruct.port) as proxy:
        model = ChatAnthropic(  # type: ignore[call-arg]
            model=INSTRUCT_ALIAS,
            base_url=proxy.base_url,
            api_key="not-needed-by-the-rig",
            max_tokens=12,
            max_retries=0,
            callbacks=[handler],
        )
        with pytest.raises(PrivacyBlocked, match="aws-access-key-id"):
            model.invoke("Why does this fail? aws_secret_access_key AKIAZ3MXQ7PLR2VWK4TN")
        assert proxy.connections == 0

        answer = model.invoke("Say hello in one word.")
        assert proxy.connections >= 1
    usage = answer.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0

    assert main(["--config", str(config_file), "cost", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok"
    assert report["requests"] == 2  # one refused, one answered
    assert report["answered"] == 1
    cloud = report["by_side"]["cloud"]
    # LangChain's input tokens hold the part the server read from its prompt cache; the
    # books keep that part apart, priced at the cache's rate
    cached = (usage.get("input_token_details") or {}).get("cache_read") or 0
    assert cloud["cache_read_tokens"] == cached
    assert (cloud["input_tokens"] + cached, cloud["output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
