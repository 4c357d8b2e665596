"""Every way a provider misbehaves, with the real anthropic SDK against a fault-injecting
server and the real llama-server rig as the local fallback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devpulse import DevPulseError, Request, Router, Side, TaskClass
from tests.rig.fault_server import ANSWER, FaultServer, hybrid_config
from tests.rig.llama_server import LlamaServer
from tests.support import router_with

pytestmark = pytest.mark.rig


def config(fault: FaultServer, local: LlamaServer, tmp: Path, **failover: object) -> dict:
    return hybrid_config(
        fault,
        local.base_url,
        str(tmp / "ledger.sqlite3"),
        **{
            "cloud_timeout_s": 1.5,
            "connect_timeout_s": 1.0,
            "backoff_s": 0.05,
            "breaker_cooldown_s": 2.0,
            **failover,
        },
    )


@pytest.fixture
def scenario(llama_server: LlamaServer, tmp_path: Path) -> Iterator:
    servers: list[FaultServer] = []

    def start(script: list[str], **failover: object) -> tuple[FaultServer, Router]:
        fault = FaultServer(script, hang_s=20).__enter__()
        servers.append(fault)
        return fault, router_with(config(fault, llama_server, tmp_path, **failover))

    yield start
    for fault in servers:
        fault.__exit__()


def hard(max_tokens: int = 6) -> Request:
    return Request.from_prompt(
        "Design a multi-step plan.", task=TaskClass.REASONING, max_tokens=max_tokens
    )


def sides(router: Router) -> list[list[str]]:
    """Per request, the side of each attempt, from the ledger."""
    import sqlite3  # noqa: PLC0415

    router.ledger.flush()  # the books are written behind the requests
    with sqlite3.connect(router.ledger.path) as db:
        rows = db.execute("SELECT request_id, side, outcome FROM attempts ORDER BY request_id, n")
        out: dict[int, list[str]] = {}
        for request_id, side, outcome in rows:
            out.setdefault(request_id, []).append(f"{side}:{outcome}")
    return list(out.values())


def causes(router: Router) -> list[str | None]:
    """The recorded cause of each attempt of the last request."""
    import sqlite3  # noqa: PLC0415

    router.ledger.flush()  # the books are written behind the requests
    with sqlite3.connect(router.ledger.path) as db:
        rows = db.execute(
            "SELECT cause FROM attempts WHERE request_id = (SELECT MAX(id) FROM requests)"
            " ORDER BY n"
        )
        return [cause for (cause,) in rows]


# How long each takes is a figure for bench/failover.py, not an assertion here.
@pytest.mark.parametrize(
    ("script", "answered_by", "attempts", "cause"),
    [
        (["ok"], "cloud", ["cloud:answered"], None),
        (["429", "ok"], "cloud", ["cloud:failed", "cloud:answered"], "rate_limited"),
        (["429_no_retry_after"], "local", ["cloud:failed", "local:answered"], "rate_limited"),
        (["529"], "local", ["cloud:failed", "local:answered"], "overloaded"),
        (["500", "ok"], "cloud", ["cloud:failed", "cloud:answered"], "server_error"),
        (["503"], "local", ["cloud:failed", "cloud:failed", "local:answered"], "server_error"),
        (["reset", "ok"], "cloud", ["cloud:failed", "cloud:answered"], "connection"),
        (["silence"], "local", ["cloud:failed", "local:answered"], "no_first_token"),
        (["slow_first_token"], "local", ["cloud:failed", "local:answered"], "no_first_token"),
        (["cut", "ok"], "cloud", ["cloud:failed", "cloud:answered"], "stream_cut"),
        (["stall"], "local", ["cloud:failed", "local:answered"], "stalled"),
        (["malformed", "ok"], "cloud", ["cloud:failed", "cloud:answered"], "malformed_stream"),
        (["overloaded_event"], "local", ["cloud:failed", "local:answered"], "overloaded"),
        (["no_stop", "ok"], "cloud", ["cloud:failed", "cloud:answered"], "stream_cut"),
        (["429_spend"], "local", ["cloud:failed", "local:answered"], "spend_limit"),
    ],
)
def test_scenario(scenario, script, answered_by, attempts, cause) -> None:
    fault, router = scenario(script)
    response = router.invoke(hard())
    assert causes(router)[0] == cause
    assert response.side.value == answered_by
    assert response.text.strip()
    if answered_by == "cloud":
        assert response.text.strip() == ANSWER
        assert response.usage.input_tokens == 12
    assert sides(router) == [attempts]
    assert len(fault.bodies) == sum(a.startswith("cloud") for a in attempts)
    assert router.ledger.rows()[0]["outcome"] == "answered"
    assert router.invoke(hard()).text.strip()  # and the router stays healthy afterwards


def test_429_waits_at_least_retry_after(scenario) -> None:
    _, router = scenario(["429", "ok"])
    start = time.monotonic()
    router.invoke(hard())
    assert time.monotonic() - start >= 1.0  # a lower bound: a loaded machine only adds time


@pytest.mark.parametrize(
    ("script", "cause"),
    [
        (["400_policy"], "content filtering"),
        (["400_context"], "does not fit the model's context"),
        (["401"], "invalid x-api-key"),  # a key the provider rejects is the caller's to fix
    ],
)
def test_errors_no_other_attempt_can_fix_surface_cleanly(scenario, script, cause) -> None:
    fault, router = scenario(script)
    with pytest.raises(DevPulseError, match=cause):
        router.invoke(hard())
    assert len(fault.bodies) == 1
    assert sides(router) == [["cloud:failed"]]
    assert router.ledger.rows()[0]["outcome"] == "failed"


def test_with_no_cloud_key_set_cloud_work_fails_over_to_local(
    llama_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The capacity hedge on a machine with no cloud side yet: nothing is sent anywhere but
    the local rig, and the circuit stays closed (a missing key says nothing of the API)."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with FaultServer(["ok"]) as unused:
        cfg = config(unused, llama_server, tmp_path)
    cfg["backends"]["cloud"]["base_url"] = "https://api.anthropic.com"
    router = router_with(cfg)
    response = router.invoke(hard())
    assert response.side is Side.LOCAL
    assert sides(router) == [["cloud:failed", "local:answered"]]
    assert causes(router) == ["no_credentials", None]
    assert "failover: cloud no_credentials -> local" in router.ledger.rows()[0]["reasons"]
    assert router.breakers.states().get("cloud", {}).get("state", "closed") == "closed"


def test_context_length_moves_to_a_larger_model(scenario) -> None:
    fault, router = scenario(
        ["400_context", "ok"], larger_context={"claude-sonnet-4-6": "claude-sonnet-4-6-1m"}
    )
    response = router.invoke(hard())
    assert response.side is Side.CLOUD
    assert [b["model"] for b in fault.bodies] == ["claude-sonnet-4-6", "claude-sonnet-4-6-1m"]


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_skips_the_cloud_then_one_probe_closes_it(scenario) -> None:
    fault, router = scenario(lambda n: "529" if n < 3 else "ok", breaker_threshold=3)
    router.breakers.clock = clock = Clock()
    for _ in range(3):  # three 529s in a row: each request falls back to local
        assert router.invoke(hard()).side is Side.LOCAL
    assert len(fault.bodies) == 3
    assert router.breakers.states()["cloud"]["state"] == "open"
    assert router.invoke(hard()).side is Side.LOCAL  # open: the cloud is not asked at all
    assert len(fault.bodies) == 3
    assert sides(router)[-1] == ["cloud:skipped", "local:answered"]
    clock.now += 2.1  # past the cool-down: half-open
    assert router.breakers.states()["cloud"]["state"] == "half_open"
    assert router.invoke(hard()).side is Side.CLOUD  # the probe succeeds and closes it
    assert router.breakers.states() == {}


def test_a_stream_cut_mid_answer_restarts_and_says_so(scenario) -> None:
    _, router = scenario(["cut", "ok"])
    chunks = list(router.stream(hard()))
    restart = [i for i, c in enumerate(chunks) if c.restart]
    assert len(restart) == 1
    assert "".join(c.text for c in chunks[restart[0] + 1 :]).strip() == ANSWER
    assert chunks[-1].response is not None


def test_sensitive_work_with_local_down_is_a_clean_error_and_never_reaches_the_cloud(
    tmp_path: Path,
) -> None:
    with FaultServer(["ok"]) as fault:
        cfg = hybrid_config(fault, "http://127.0.0.1:9", str(tmp_path / "l.sqlite3"))
        router = router_with(cfg)
        secret = "password = 'Zq4!mX8pR2vT9kLw'"
        with pytest.raises(DevPulseError, match="nothing answers"):
            router.invoke(
                Request.from_prompt(f"Design a plan to rotate {secret}", task=TaskClass.REASONING)
            )
        assert fault.bodies == []


def test_status_and_a_new_process_see_the_circuit_the_last_one_opened(scenario, capsys) -> None:
    import json  # noqa: PLC0415

    from devpulse.cli import main  # noqa: PLC0415

    # The default threshold (three failures in a row), and a cool-down that outlasts the test.
    fault, router = scenario(["529"], breaker_cooldown_s=600.0)
    for _ in range(3):
        router.invoke(hard())
    cfg = Path(router.ledger.path).parent / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{router.ledger.path}"\n')
    capsys.readouterr()  # drop what the library logged while failing over
    assert main(["--config", str(cfg), "status", "--json"]) == 0
    circuits = json.loads(capsys.readouterr().out)["circuits"]
    assert circuits["cloud"]["state"] == "open"
    assert circuits["cloud"]["last_cause"] == "overloaded"
    assert "llama_server" not in circuits  # healthy: nothing recorded
    # A new Router (the next `devpulse ask`) starts from the open circuit: no cloud call.
    again = router_with(
        config(fault, _local(router), Path(router.ledger.path).parent, breaker_cooldown_s=600.0)
    )
    assert again.invoke(hard()).side is Side.LOCAL
    assert len(fault.bodies) == 3


def _local(router: Router) -> LlamaServer:
    """The rig the router's local backend points at (only its base_url is read)."""
    url = router.config.backends["llama_server"].base_url or ""

    class Local:
        base_url = url.removesuffix("/v1")

    return Local()  # type: ignore[return-value]
