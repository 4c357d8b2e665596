"""Several cloud providers: the failover order per side, OpenAI-compatible clouds with their
keys, and the privacy partition over every backend declared cloud."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devpulse import (
    BackendError,
    Cause,
    Chunk,
    ConfigError,
    Decision,
    DevPulseError,
    Ledger,
    Request,
    Response,
    Router,
    Side,
    TaskClass,
    Usage,
    config_from_mapping,
    hookimpl,
)
from devpulse.core.kinds import BackendSpec
from devpulse.plugins.failover.plugin import Failover
from tests.plugins.privacy import secrets_factory as make
from tests.rig.fault_server import ANSWER, FaultServer
from tests.rig.llama_server import free_port
from tests.support import router_with

KEY_ENV = "DEVPULSE_TEST_OPENAI_KEY"
ORDER = [
    {"backend": "anthropic", "model": "claude-sonnet-4-6"},
    {"backend": "openai", "model": "gpt-4.1"},
]


def clouds(anthropic_url: str, openai_url: str, local_url: str, ledger: str) -> dict[str, Any]:
    """Cloud anthropic, then cloud openai (OpenAI-compatible), then the local server."""
    return {
        "cloud": {"backend": "anthropic", "model": "claude-sonnet-4-6"},
        "local": {"backend": "llama_server", "model": "local-model"},
        "backends": {
            "anthropic": {"base_url": anthropic_url, "api_key_env": "DEVPULSE_TEST_ANTHROPIC"},
            "openai": {
                "side": "cloud",
                "kind": "openai_compat",
                "base_url": f"{openai_url}/v1",
                "api_key_env": KEY_ENV,
            },
            "llama_server": {"base_url": f"{local_url}/v1"},
        },
        "prices": {"gpt-4.1": {"input": 2.0, "output": 8.0}},
        "preflight": {"enabled": False},
        "ledger": {"path": ledger},
        "failover": {"order": {"cloud": ORDER}, "backoff_s": 0.01, "cloud_timeout_s": 5.0},
    }


def attempts(router: Router) -> list[tuple[str, str, str]]:
    assert router.ledger is not None
    router.ledger.flush()  # the books are written behind the requests
    with sqlite3.connect(router.ledger.path) as db:
        return db.execute("SELECT side, backend, outcome FROM attempts ORDER BY n").fetchall()


def hard() -> Request:
    return Request.from_prompt("Design a multi-step plan.", task=TaskClass.REASONING, max_tokens=8)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-test-" + "x" * 24
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.setenv("DEVPULSE_TEST_ANTHROPIC", "sk-ant-test")
    return key


def test_a_529_on_the_first_cloud_goes_to_the_second_before_local(
    keys: str, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "l.sqlite3")
    with (
        FaultServer(["529"]) as anthropic,
        FaultServer(["ok"]) as openai,
        FaultServer(["ok"]) as local,
    ):
        router = router_with(clouds(anthropic.base_url, openai.base_url, local.base_url, ledger))
        answer = router.invoke(hard())
        assert (answer.text.strip(), answer.side, answer.backend) == (ANSWER, Side.CLOUD, "openai")
        assert attempts(router) == [
            ("cloud", "anthropic", "failed"),
            ("cloud", "openai", "answered"),
        ]
        assert (len(anthropic.bodies), len(openai.bodies), len(local.bodies)) == (1, 1, 0)
        assert (anthropic.keys[0] or "").endswith("sk-ant-test")  # each its own key
        assert openai.keys == [f"Bearer {keys}"]
        assert openai.bodies[0]["model"] == "gpt-4.1"


def test_when_both_clouds_fail_local_answers_last(keys: str, tmp_path: Path) -> None:
    ledger = str(tmp_path / "l.sqlite3")
    with (
        FaultServer(["529"]) as anthropic,
        FaultServer(["529"]) as openai,
        FaultServer(["ok"]) as local,
    ):
        router = router_with(clouds(anthropic.base_url, openai.base_url, local.base_url, ledger))
        streamed = list(router.stream(hard()))
        final = streamed[-1].response
        assert final is not None
        assert (final.side, final.backend) == (Side.LOCAL, "llama_server")
        assert [(s, b) for s, b, _ in attempts(router)] == [
            ("cloud", "anthropic"),
            ("cloud", "openai"),
            ("local", "llama_server"),
        ]
        assert router.ledger is not None
        (row,) = router.ledger.rows()
        assert row["cost_usd"] == 0.0  # local answered: the failed cloud attempts cost nothing


def test_sensitive_work_reaches_neither_cloud(keys: str, tmp_path: Path) -> None:
    ledger = str(tmp_path / "l.sqlite3")
    secret = make.github_token(random.Random(7))
    with (
        FaultServer(["ok"]) as anthropic,
        FaultServer(["ok"]) as openai,
        FaultServer(["529", "ok"]) as local,
    ):
        router = router_with(clouds(anthropic.base_url, openai.base_url, local.base_url, ledger))
        request = Request.from_prompt(
            f"Design a multi-step plan. token = {secret}", task=TaskClass.REASONING
        )
        with pytest.raises(DevPulseError):
            router.invoke(request)
        assert (anthropic.bodies, openai.bodies) == ([], [])


def test_an_openai_cloud_without_its_key_is_skipped_for_local_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("DEVPULSE_TEST_ANTHROPIC", "sk-ant-test")
    ledger = str(tmp_path / "l.sqlite3")
    with (
        FaultServer(["529"]) as anthropic,
        FaultServer(["ok"]) as openai,
        FaultServer(["ok"]) as local,
    ):
        router = router_with(clouds(anthropic.base_url, openai.base_url, local.base_url, ledger))
        answer = router.invoke(hard())
        assert (answer.side, answer.backend) == (Side.LOCAL, "llama_server")
        assert openai.bodies == []  # nothing was sent without the key
        assert router.ledger is not None
        router.ledger.flush()  # the books are written behind the requests
        with sqlite3.connect(ledger) as db:
            causes = [c for (c,) in db.execute("SELECT cause FROM attempts ORDER BY n")]
        assert causes == ["overloaded", "no_credentials", None]
        reasons = json.loads(Ledger(ledger).rows()[0]["reasons"])
        assert reasons[1:] == [
            "failover: anthropic overloaded -> openai",
            "failover: cloud no_credentials -> local",
        ]
        dead = f"http://127.0.0.1:{free_port()}"
        nowhere = router_with(clouds(anthropic.base_url, openai.base_url, dead, ledger))
        with pytest.raises(DevPulseError) as info:
            nowhere.invoke(hard())
        assert f"openai: no API key (set {KEY_ENV} in the environment)" in str(info.value)


def test_the_key_never_shows_in_config_or_doctor(
    keys: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from devpulse.cli import main  # noqa: PLC0415

    dead = f"http://127.0.0.1:{free_port()}"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[backends.openai]\nside = "cloud"\nkind = "openai_compat"\n'
        f'base_url = "{dead}/v1"\napi_key_env = "{KEY_ENV}"\n'
    )
    for args in (["config"], ["config", "--json"], ["doctor", "--json"]):
        main(["--config", str(cfg), *args])
        out, err = capsys.readouterr()
        assert keys not in out + err
        assert KEY_ENV in out or args[0] == "doctor"
    monkeypatch.delenv(KEY_ENV)
    main(["--config", str(cfg), "doctor", "--json"])
    (check,) = [c for c in json.loads(capsys.readouterr().out)["checks"] if "openai" in c["name"]]
    assert check == {
        "name": "backends.openai",
        "result": "warn",
        "detail": f"no API key: ${KEY_ENV} is not set (cloud work fails over to local)",
    }


# -- the order itself ---------------------------------------------------------------------


def failover(order: dict[str, list[dict[str, str]]]) -> Failover:
    user = clouds("http://a.test", "http://o.test", "http://l.test", "")
    user["failover"]["order"] = order
    user["backends"]["openrouter"] = {
        "side": "cloud",
        "kind": "openai_compat",
        "base_url": "https://openrouter.ai/api/v1",
        "api_key_env": "OPENROUTER_API_KEY",
    }
    user["prices"]["anthropic/claude"] = {"input": 3.0, "output": 15.0}
    return Failover(config_from_mapping(user))


def test_the_order_goes_on_from_the_failing_backend_then_to_the_other_side() -> None:
    plan = failover(
        {"cloud": [*ORDER, {"backend": "openrouter", "model": "anthropic/claude-sonnet-4"}]}
    )
    first = Decision(Side.CLOUD, "anthropic", "claude-sonnet-4-6", reasons=("table",))
    second = plan.fallback(first, "overloaded")
    assert second is not None
    assert (second.side, second.backend, second.model) == (Side.CLOUD, "openai", "gpt-4.1")
    assert second.reasons[-1] == "failover: anthropic overloaded -> openai"
    third = plan.fallback(second, "overloaded")
    assert third is not None
    assert (third.backend, third.model) == ("openrouter", "anthropic/claude-sonnet-4")
    last = plan.fallback(third, "overloaded")
    assert last is not None
    assert (last.side, last.backend) == (Side.LOCAL, "llama_server")


def test_a_fallback_never_goes_back_to_a_model_the_request_already_tried() -> None:
    plan = failover({"cloud": ORDER, "local": [{"backend": "ollama", "model": "llama3.1:8b"}]})
    local = Decision(Side.LOCAL, "llama_server", "local-model")
    cloud_tried = ("anthropic", "claude-sonnet-4-6")
    # The local order goes on first; then the cloud's default, or the next in its order.
    ollama = plan.fallback(local, "x", (cloud_tried, ("llama_server", "local-model")))
    assert ollama is not None
    assert ollama.backend == "ollama"
    tried = (cloud_tried, ("llama_server", "local-model"), ("ollama", "llama3.1:8b"))
    cloud = plan.fallback(ollama, "x", tried)
    assert cloud is not None
    assert (cloud.side, cloud.backend) == (Side.CLOUD, "openai")
    assert plan.fallback(cloud, "x", (*tried, ("openai", "gpt-4.1"))) is None


def test_another_model_on_a_server_the_request_tried_may_still_answer() -> None:
    """A model can fail alone (out of memory, a failed load): the next model in the order on
    the same server is still tried, once the order reaches it."""
    order = [
        {"backend": "llama_server", "model": "big"},
        {"backend": "ollama", "model": "mid"},
        {"backend": "llama_server", "model": "small"},
    ]
    plan = failover({"cloud": ORDER, "local": order})
    mid = Decision(Side.LOCAL, "ollama", "mid")
    following = plan.fallback(mid, "x", (("llama_server", "big"), ("ollama", "mid")))
    assert following is not None
    assert (following.backend, following.model) == ("llama_server", "small")


@pytest.mark.parametrize("way", ["invoke", "ainvoke"])
def test_a_cloud_that_failed_is_not_sent_the_request_again_after_local_fails(
    keys: str, tmp_path: Path, way: str
) -> None:
    """Cloud rate-limited (no retry-after: fail over now), then local asks for a retry-after
    longer than failover waits: nothing is left, so the request ends; the cloud that just
    failed is not asked again."""
    ledger = str(tmp_path / "l.sqlite3")
    with (
        FaultServer(["429_no_retry_after", "ok"]) as anthropic,
        FaultServer(["429"]) as local,  # OpenAI-shaped 429, retry-after 7 s
    ):
        config = clouds(anthropic.base_url, anthropic.base_url, local.base_url, ledger)
        config["failover"] = {"backoff_s": 0.01, "max_attempts": 4}
        router = router_with(config)
        ask = router.invoke if way == "invoke" else lambda r: asyncio.run(router.ainvoke(r))
        with pytest.raises(DevPulseError) as info:
            ask(hard())
        assert "no answer after 2 attempt(s)" in str(info.value)
        assert (len(anthropic.bodies), len(local.bodies)) == (1, 1)
        assert attempts(router) == [
            ("cloud", "anthropic", "failed"),
            ("local", "llama_server", "failed"),
        ]


def test_a_backend_the_order_does_not_name_starts_it_from_the_top() -> None:
    plan = failover({"cloud": [ORDER[1]]})
    elsewhere = plan.fallback(Decision(Side.CLOUD, "anthropic", "claude-sonnet-4-6"), "x")
    assert elsewhere is not None
    assert elsewhere.backend == "openai"
    assert failover({}).fallback(Decision(Side.CLOUD, "openai", "gpt-4.1"), "x").side is Side.LOCAL


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ({"cloud": [{"backend": "nowhere", "model": "m"}]}, "failover.order.cloud[0].backend:"),
        (
            {"local": [{"backend": "openai", "model": "gpt-4.1"}]},
            "failover.order.local[0].backend: backend 'openai' is cloud, not local",
        ),
        (
            {"cloud": [{"backend": "openai", "model": "o9"}]},
            "prices: no price for the cloud model 'o9' (failover.order.cloud[0])",
        ),
        ({"cloud": [{"backend": "openai"}]}, "failover.order.cloud[0].model: missing required"),
        ({"cloud": [{"backend": "openai", "model": " "}]}, "failover.order.cloud[0].model: give"),
        ({"moon": []}, "failover.order.moon: unknown side 'moon'"),
    ],
)
def test_a_bad_order_is_one_line_naming_the_key(order: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        failover(order)
    assert message in str(info.value)


# -- the privacy partition, for every backend declared cloud ------------------------------


class Recorder:
    """A backend kind that records what reached it and fails or answers as scripted."""

    seen: ClassVar[dict[str, list[str]]] = {}
    script: ClassVar[dict[str, str]] = {}

    def __init__(self, spec: BackendSpec) -> None:
        self.name, self.side = spec.name, spec.config.side

    def complete(self, request: Request, decision: Decision) -> Response:
        *_, last = self.stream(request, decision)
        assert last.response is not None
        return last.response

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        Recorder.seen.setdefault(self.name, []).append(request.text())
        step = Recorder.script.get(self.name, "ok")
        if step != "ok":
            raise BackendError(f"{self.name}: {step}", cause=Cause(step))
        usage = Usage(1, 1)
        yield Chunk("", Response("ok", decision.model, self.name, self.side, usage, 0.0))


class RecorderKind:
    @hookimpl
    def register_backend_kinds(self, register: Any) -> None:
        register("recorder", Recorder)


class Rogue:
    """A routing policy that sends everything to a backend of its choosing."""

    def __init__(self, backend: str, side: Side) -> None:
        self.decision = Decision(side, backend, "m", reasons=("rogue",))

    @hookimpl
    def route(self, request: Request, classification: Any) -> Decision:
        return self.decision


FAILURES = ["ok", "overloaded", "server_error", "rate_limited", "connection", "stream_cut"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_cloud=st.integers(1, 4),
    data=st.data(),
    seed=st.integers(0, 2**32),
    sensitive=st.booleans(),
    max_attempts=st.integers(1, 6),
)
def test_no_backend_declared_cloud_ever_sees_sensitive_work(
    n_cloud: int, data: st.DataObject, seed: int, sensitive: bool, max_attempts: int
) -> None:
    names = [f"cloud{i}" for i in range(n_cloud)]
    backends: dict[str, Any] = {n: {"side": "cloud", "kind": "recorder"} for n in names}
    backends["near"] = {"side": "local", "kind": "recorder"}
    backends["far"] = {"side": "local", "kind": "recorder"}
    order = data.draw(st.permutations(names))
    Recorder.seen = {}
    Recorder.script = {n: data.draw(st.sampled_from(FAILURES)) for n in [*names, "near", "far"]}
    target = data.draw(st.sampled_from([*names, "near", "far"]))
    user = {
        "cloud": {"backend": "cloud0", "model": "m"},
        "local": {"backend": "near", "model": "m"},
        "backends": backends,
        "prices": {"m": {"input": 1.0, "output": 1.0}},
        "preflight": {"enabled": False},
        "ledger": {"enabled": False},
        "failover": {
            "max_attempts": max_attempts,
            "backoff_s": 0.0,
            "order": {
                "cloud": [{"backend": n, "model": "m"} for n in order],
                "local": [{"backend": "far", "model": "m"}],
            },
        },
    }
    side = Side.CLOUD if target.startswith("cloud") else Side.LOCAL
    router = router_with(user, plugins=[RecorderKind(), Rogue(target, side)])
    secret = make.github_token(random.Random(seed))
    prompt = f"Plan it. token = {secret}" if sensitive else "Plan it."
    answer: Response | None = None
    message = ""
    try:
        answer = router.invoke(Request.from_prompt(prompt))
    except DevPulseError as error:  # a clean error, on one line
        message = str(error)
    assert "\n" not in message
    if answer is not None and sensitive:
        assert answer.side is Side.LOCAL
    if sensitive:
        for name in names:
            assert not any(secret in text for text in Recorder.seen.get(name, []))


class ModelFails:
    """llama_server cannot load `big`; ollama is down; anything else answers."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        self.calls.append(f"{decision.backend}/{decision.model}")
        if decision.backend == "ollama":
            raise BackendError("ollama: connection refused", cause=Cause.CONNECTION)
        if decision.model == "big":
            raise BackendError("llama_server: big failed to load", cause=Cause.SERVER_ERROR)
        return Response("ok", decision.model, decision.backend, decision.side)


def test_a_local_only_request_reaches_the_next_model_on_a_server_whose_other_model_failed(
    tmp_path: Path,
) -> None:
    order = [
        {"backend": "llama_server", "model": "big"},
        {"backend": "ollama", "model": "mid"},
        {"backend": "llama_server", "model": "small"},
    ]
    owner = ModelFails()
    router = router_with(
        {
            "local": {"backend": "llama_server", "model": "big"},
            "backends": {"ollama": {"kind": "ollama", "base_url": "http://127.0.0.1:9"}},
            "preflight": {"enabled": False},
            "ledger": {"path": str(tmp_path / "l.sqlite3")},
            "failover": {"retries": 0, "backoff_s": 0.001, "order": {"local": order}},
        },
        plugins=[owner],
    )
    request = Request.from_prompt("password=hunter2x9Q summarise this", task=TaskClass.DRAFTING)
    assert router.classify(request).local_only
    answer = router.invoke(request)
    assert (answer.backend, answer.model) == ("llama_server", "small")
    assert owner.calls == ["llama_server/big", "ollama/mid", "llama_server/small"]
