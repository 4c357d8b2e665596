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

    with sqlite3.connect(router.ledger.path) as db:
        rows = db.execute("SELECT request_id, side, outcome FROM attempts ORDER BY request_id, n")
        out: dict[int, list[str]] = {}
        for request_id, side, outcome in rows:
            out.setdefault(request_id, []).append(f"{side}:{outcome}")
    return list(out.values())


def timed(router: Router, request: Request | None = None):
    start = time.monotonic()
    response = router.invoke(request or hard())
    return response, time.monotonic() - start


@pytest.mark.parametrize(
    ("script", "answered_by", "attempts", "max_s"),
    [
        (["ok"], "cloud", ["cloud:answered"], 3),
        (["429", "ok"], "cloud", ["cloud:failed", "cloud:answered"], 4),  # waits retry-after 1s
        (["429_no_retry_after"], "local", ["cloud:failed", "local:answered"], 5),
        (["529"], "local", ["cloud:failed", "local:answered"], 5),
        (["500", "ok"], "cloud", ["cloud:failed", "cloud:answered"], 3),
        (["503"], "local", ["cloud:failed", "cloud:failed", "local:answered"], 6),
        (["reset", "ok"], "cloud", ["cloud:failed", "cloud:answered"], 3),
        (["silence"], "local", ["cloud:failed", "local:answered"], 6),
        (["slow_first_token"], "local", ["cloud:failed", "local:answered"], 6),
        (["cut", "ok"], "cloud", ["cloud:failed", "cloud:answered"], 3),
        (["stall"], "local", ["cloud:failed", "local:answered"], 6),
        (["malformed", "ok"], "cloud", ["cloud:failed", "cloud:answered"], 3),
        (["overloaded_event"], "local", ["cloud:failed", "local:answered"], 5),
        (["no_stop", "ok"], "cloud", ["cloud:failed", "cloud:answered"], 3),
        (["429_spend"], "local", ["cloud:failed", "local:answered"], 5),
    ],
)
def test_scenario(scenario, script, answered_by, attempts, max_s) -> None:
    fault, router = scenario(script)
    response, elapsed = timed(router)
    assert response.side.value == answered_by
    assert response.text.strip()
    if answered_by == "cloud":
        assert response.text.strip() == ANSWER
        assert response.usage.input_tokens == 12
    assert sides(router) == [attempts]
    assert len(fault.bodies) == sum(a.startswith("cloud") for a in attempts)
    assert elapsed < max_s
    assert router.ledger.rows()[0]["outcome"] == "answered"
    assert router.invoke(hard()).text.strip()  # and the router stays healthy afterwards


def test_429_waits_at_least_retry_after(scenario) -> None:
    _, router = scenario(["429", "ok"])
    _, elapsed = timed(router)
    assert elapsed >= 1.0


@pytest.mark.parametrize(
    ("script", "cause"),
    [(["400_policy"], "content filtering"), (["400_context"], "prompt is too long")],
)
def test_errors_no_other_attempt_can_fix_surface_cleanly(scenario, script, cause) -> None:
    fault, router = scenario(script)
    with pytest.raises(DevPulseError, match=cause):
        router.invoke(hard())
    assert len(fault.bodies) == 1
    assert sides(router) == [["cloud:failed"]]
    assert router.ledger.rows()[0]["outcome"] == "failed"


def test_context_length_moves_to_a_larger_model(scenario) -> None:
    fault, router = scenario(
        ["400_context", "ok"], larger_context={"claude-sonnet-4-6": "claude-sonnet-4-6-1m"}
    )
    response = router.invoke(hard())
    assert response.side is Side.CLOUD
    assert [b["model"] for b in fault.bodies] == ["claude-sonnet-4-6", "claude-sonnet-4-6-1m"]


def test_the_circuit_opens_skips_the_cloud_then_one_probe_closes_it(scenario) -> None:
    fault, router = scenario(lambda n: "529" if n < 3 else "ok", breaker_threshold=3)
    for _ in range(3):  # three 529s in a row: each request falls back to local
        assert router.invoke(hard()).side is Side.LOCAL
    assert len(fault.bodies) == 3
    start = time.monotonic()
    assert router.invoke(hard()).side is Side.LOCAL  # open: zero attempts on the cloud
    assert len(fault.bodies) == 3
    assert sides(router)[-1] == ["local:answered"]
    assert router.pm.get_plugin("devpulse.failover").breakers.states()["cloud"]["state"] == "open"
    time.sleep(max(0.0, 2.1 - (time.monotonic() - start)))
    assert router.invoke(hard()).side is Side.CLOUD  # the probe succeeds and closes it
    assert router.pm.get_plugin("devpulse.failover").breakers.states()["cloud"]["state"] == "closed"


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


def test_status_replays_the_circuits_from_the_ledger(scenario, capsys) -> None:
    import json  # noqa: PLC0415

    from devpulse.cli import main  # noqa: PLC0415

    _, router = scenario(["529"])  # the default threshold: three failures in a row
    for _ in range(3):
        router.invoke(hard())
    cfg = Path(router.ledger.path).parent / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{router.ledger.path}"\n')
    capsys.readouterr()  # drop what the library logged while failing over
    assert main(["--config", str(cfg), "status", "--json"]) == 0
    circuits = json.loads(capsys.readouterr().out)["circuits"]
    assert circuits["cloud"]["state"] == "open"
    assert circuits["cloud"]["last_error"] == "OverloadedError"
    assert circuits["llama_server"]["state"] == "closed"
