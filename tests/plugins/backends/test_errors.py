"""Backends raise errors whose fields say why (cause, status, retry-after, provider type),
read from what real clients get from a server speaking each provider's protocol."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devpulse import (
    BackendError,
    BudgetExhausted,
    Cause,
    Decision,
    DispatchFailed,
    Request,
    Side,
    TaskClass,
    config_from_mapping,
)
from devpulse.plugins.backends import KINDS
from tests.rig.fault_server import ANSWER, FaultServer
from tests.support import router_with

DECISION = Decision(Side.LOCAL, "x", "some-model")
REQUEST = Request.from_prompt("hello", max_tokens=8, stream=True)


def backend(kind: str, url: str):
    config = config_from_mapping(
        {"backends": {"x": {"side": "local", "kind": kind, "base_url": url}}}
    )
    return KINDS[kind]("x", config.backends["x"], config.limits("x"))


def read(kind: str, url: str, mode: str) -> list:
    """Every chunk of one answer, through the backend's sync or async stream."""
    found = backend(kind, url)
    if mode == "sync":
        return list(found.stream(REQUEST, DECISION))

    async def chunks() -> list:
        return [chunk async for chunk in found.astream(REQUEST, DECISION)]

    return asyncio.run(chunks())


def failure(kind: str, step: str, path: str = "", mode: str = "sync") -> BackendError:
    with FaultServer([step]) as fault, pytest.raises(BackendError) as info:
        read(kind, fault.base_url + path, mode)
    return info.value


# Every fault is met by the sync path and the async path alike.
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def ask(router, mode: str, prompt: str, **kwargs):
    """`Router.invoke`, or `Router.ainvoke` on a fresh event loop."""
    if mode == "sync":
        return router.invoke(prompt, **kwargs)
    return asyncio.run(router.ainvoke(prompt, **kwargs))


@pytest.mark.parametrize(
    ("step", "cause", "status", "retry_after", "kind"),
    [
        ("429", Cause.RATE_LIMITED, 429, 7.0, "rate_limit_error"),
        ("400_context", Cause.CONTEXT_LENGTH, 400, None, "exceed_context_size_error"),
        # The message mentions "harm" and "policy": it is still a plain server error.
        ("500", Cause.SERVER_ERROR, 500, None, "server_error"),
        ("cut", Cause.STREAM_CUT, None, None, None),
        ("no_stop", Cause.STREAM_CUT, None, None, None),
        ("malformed", Cause.MALFORMED_STREAM, None, None, None),
        ("reset", Cause.STREAM_CUT, None, None, None),
    ],
)
@MODES
def test_openai_compatible_errors(step, cause, status, retry_after, kind, mode) -> None:
    error = failure("openai_compat", step, "/v1", mode)
    assert (error.cause, error.status, error.retry_after_s, error.provider_type) == (
        cause,
        status,
        retry_after,
        kind,
    )


@pytest.mark.parametrize(
    ("step", "cause", "status", "retry_after", "kind"),
    [
        ("429", Cause.RATE_LIMITED, 429, 1.0, "rate_limit_error"),
        ("429_no_retry_after", Cause.RATE_LIMITED, 429, None, "rate_limit_error"),
        ("429_spend", Cause.SPEND_LIMIT, 429, None, "rate_limit_error"),
        ("529", Cause.OVERLOADED, 529, None, "overloaded_error"),
        ("500", Cause.SERVER_ERROR, 500, None, "api_error"),
        ("400_context", Cause.CONTEXT_LENGTH, 400, None, "invalid_request_error"),
        ("400_policy", Cause.BAD_REQUEST, 400, None, "invalid_request_error"),
        ("overloaded_event", Cause.OVERLOADED, 200, None, "overloaded_error"),
        ("cut", Cause.STREAM_CUT, None, None, None),
        ("malformed", Cause.MALFORMED_STREAM, None, None, None),
        ("no_stop", Cause.STREAM_CUT, None, None, None),
    ],
)
@MODES
def test_anthropic_errors(step, cause, status, retry_after, kind, mode) -> None:
    error = failure("anthropic", step, mode=mode)
    assert (error.cause, error.status, error.retry_after_s, error.provider_type) == (
        cause,
        status,
        retry_after,
        kind,
    )


@MODES
def test_ollama_keeps_the_retry_after_its_client_drops(mode) -> None:
    error = failure("ollama", "429", mode=mode)
    assert (error.cause, error.status, error.retry_after_s) == (Cause.RATE_LIMITED, 429, 1.0)
    assert failure("ollama", "500", mode=mode).cause is Cause.SERVER_ERROR


# -- local servers stream underneath, so their stalls end at the stall limit ---------------


def local_fault(fault: FaultServer, tmp_path: Path, **failover: object) -> dict:
    return {
        "backends": {
            "llama_server": {
                "side": "local",
                "kind": "openai_compat",
                "base_url": f"{fault.base_url}/v1",
            }
        },
        "ledger": {"path": str(tmp_path / "l.sqlite3")},
        "failover": failover,
    }


GUARD_S = 10.0  # generous; the server holds each stall for 30 s, the local limit is 120 s


@MODES
def test_a_local_server_that_stalls_mid_answer_is_left_at_the_stall_limit(tmp_path, mode) -> None:
    with FaultServer(["stall"], hang_s=30) as fault:
        router = router_with(local_fault(fault, tmp_path, enabled=False, stall_timeout_s=0.5))
        start = time.monotonic()
        with pytest.raises(DispatchFailed, match=r"stalled for more than 0\.5s"):
            ask(router, mode, "x", task=TaskClass.DRAFTING)
        assert time.monotonic() - start < GUARD_S
        assert router.ledger.rows()[0]["outcome"] == "failed"


@MODES
def test_a_local_server_streams_a_normal_answer(tmp_path, mode) -> None:
    with FaultServer(["ok"]) as fault:
        router = router_with(local_fault(fault, tmp_path))
        response = ask(router, mode, "x", task=TaskClass.DRAFTING)
        assert fault.bodies[0]["stream"] is True
    assert response.text.strip() == ANSWER
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)


@MODES
@pytest.mark.parametrize(("cloud", "local"), [("silence", "stall"), ("stall", "slow_first_token")])
def test_the_budget_bounds_the_whole_request_whatever_both_sides_do(
    tmp_path, cloud, local, mode
) -> None:
    with FaultServer([cloud], hang_s=30) as cloud_fault, FaultServer([local], hang_s=30) as near:
        config = local_fault(near, tmp_path, budget_s=1.0)
        config["cloud"] = {"backend": "cloud", "model": "claude-sonnet-4-6"}
        config["backends"]["cloud"] = {
            "side": "cloud",
            "kind": "anthropic",
            "base_url": cloud_fault.base_url,
        }
        router = router_with(config)
        start = time.monotonic()
        with pytest.raises(BudgetExhausted):
            ask(router, mode, "x", task=TaskClass.REASONING)
        assert time.monotonic() - start < GUARD_S


# -- a context overflow is one line: the model's context, and the request's size ---------


@pytest.mark.parametrize(
    ("kind", "path", "message"),
    [
        (
            "anthropic",
            "",
            "x: the request (250000 tokens) does not fit the model's context (200000 tokens)",
        ),
        (
            "openai_compat",
            "/v1",
            "x: the request does not fit the model's context (HTTP 400: the request exceeds "
            "the available context size, try increasing it)",
        ),
    ],
)
@MODES
def test_context_overflow_says_both_sizes(kind: str, path: str, message: str, mode) -> None:
    error = failure(kind, "400_context", path, mode)
    assert (error.cause, str(error)) == (Cause.CONTEXT_LENGTH, message)


@pytest.mark.parametrize(
    ("message", "fields", "expected"),
    [
        (
            "request (5024 tokens) exceeds the available context size (4096 tokens), try "
            "increasing it",
            {},
            " (5024 tokens) does not fit the model's context (4096 tokens)",
        ),
        (
            "the request exceeds the available context size",
            {"request_tokens": 77000, "context_tokens": 2048},
            " (77000 tokens) does not fit the model's context (2048 tokens)",
        ),
        (
            "This model's maximum context length is 8192 tokens. However, your messages "
            "resulted in 9000 tokens.",
            {},
            " (9000 tokens) does not fit the model's context (8192 tokens)",
        ),
        (
            "input length exceeds the context length",
            {"status": 400},
            " does not fit the model's context (HTTP 400: input length exceeds the context length)",
        ),
    ],
)
def test_context_error_reads_the_sizes_each_server_gives(message, fields, expected) -> None:
    from devpulse.plugins.backends.base import context_error  # noqa: PLC0415

    error = context_error("b", message, **fields)
    assert error.cause is Cause.CONTEXT_LENGTH
    assert str(error) == f"b: the request{expected}"
