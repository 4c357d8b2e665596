"""Backends raise errors whose fields say why (cause, status, retry-after, provider type),
read from what real clients get from a server speaking each provider's protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from devpulse import (
    BackendError,
    BudgetExhausted,
    Cause,
    Decision,
    DispatchFailed,
    FirstTokenTimeout,
    Request,
    Side,
    TaskClass,
    config_from_mapping,
)
from devpulse.core.config import Limits
from devpulse.plugins.backends import KINDS
from devpulse.plugins.backends.base import without_credentials
from devpulse.plugins.backends.openai_compat import status_error
from tests.rig.fault_server import ANSWER, FaultServer
from tests.support import router_with

DECISION = Decision(Side.LOCAL, "x", "some-model")
REQUEST = Request.from_prompt("hello", max_tokens=8, stream=True)


def backend(kind: str, url: str, limits: Limits | None = None):
    config = config_from_mapping(
        {"backends": {"x": {"side": "local", "kind": kind, "base_url": url}}}
    )
    return KINDS[kind]("x", config.backends["x"], limits or config.limits("x"))


def read(kind: str, url: str, mode: str, limits: Limits | None = None) -> list:
    """Every chunk of one answer, through the backend's sync or async stream."""
    found = backend(kind, url, limits)
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
        ("reset_mid", Cause.STREAM_CUT, None, None, None),
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
        ("reset_mid", Cause.STREAM_CUT, None, None, None),  # the SDK says "connection error"
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


class Interleaved(BaseHTTPRequestHandler):
    """Two Ollama errors whose responses cross: "A" gets a 500 without Retry-After and "B" a
    429 with one; A's body follows B's headers, and B's body follows A's. (The pauses only
    let the client read each part before the next: any order passes with the fix.)"""

    protocol_version = "HTTP/1.1"
    a_started = threading.Event()
    b_headers = threading.Event()
    a_body = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        prompt = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"][-1]
        body = b'{"error": "busy"}'
        if prompt["content"] == "A":
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            self.a_started.set()
            self.b_headers.wait(10)
            time.sleep(0.2)
            self.wfile.write(body)
            self.wfile.flush()
            self.a_body.set()
        else:
            self.a_started.wait(10)
            self.send_response(429)
            self.send_header("Retry-After", "30")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            self.b_headers.set()
            self.a_body.wait(10)
            time.sleep(0.2)
            self.wfile.write(body)


def test_concurrent_ollama_errors_keep_their_own_retry_after() -> None:
    for event in (Interleaved.a_started, Interleaved.b_headers, Interleaved.a_body):
        event.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Interleaved)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found = backend("ollama", f"http://127.0.0.1:{server.server_address[1]}")

    async def ask(prompt: str) -> BackendError:
        with pytest.raises(BackendError) as info:
            async for _ in found.astream(Request.from_prompt(prompt, stream=True), DECISION):
                pass
        return info.value

    async def both() -> list[BackendError]:
        return await asyncio.gather(ask("A"), ask("B"))

    try:
        a, b = asyncio.run(both())
    finally:
        server.shutdown()
    assert (a.status, a.retry_after_s) == (500, None)
    assert (b.status, b.retry_after_s) == (429, 30.0)


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


GUARD_S = 10.0  # generous; the server holds each stall for 30 s, the local limit is 45 s


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


# -- a sync read left on keep-alives hangs up, as the async path does ---------------------

WAIT_S = 20.0  # how long a test waits for what must happen; never a measurement


@pytest.mark.parametrize(
    "kind",
    [
        "openai_compat",  # SSE comments (": PROCESSING"), as OpenRouter sends while it queues
        "anthropic",  # `ping` events
    ],
)
def test_a_sync_attempt_given_up_on_keep_alives_closes_the_connection(kind, tmp_path) -> None:
    """The server sends only keep-alives, which make no chunk: after the first-token limit the
    worker must still stop reading and hang up, not read pings for as long as they come."""
    with FaultServer(["keepalive"], hang_s=60) as fault:
        path = {"openai_compat": "/v1", "anthropic": ""}[kind]
        router = router_with(
            {
                "backends": {
                    "near": {"side": "local", "kind": kind, "base_url": fault.base_url + path}
                },
                # A model named by its size in MB: preflight asks the server nothing.
                "routing": {"drafting": {"side": "local", "backend": "near", "model": "100"}},
                "ledger": {"path": str(tmp_path / "l.sqlite3")},
                "failover": {"enabled": False, "local_timeout_s": 0.5},
            }
        )
        with pytest.raises(FirstTokenTimeout):
            router.invoke("x", task=TaskClass.DRAFTING)
        assert fault.disconnected.wait(WAIT_S), "the server never saw the client hang up"
    assert router.ledger.rows()[0]["outcome"] == "failed"


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


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listener's queue is full: the handshake of a new connection never ends
    (Linux drops the SYN), as with a firewalled or overloaded host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, listener]:
        sock.close()


@pytest.mark.skipif(sys.platform != "linux", reason="fills a listen queue the way Linux keeps it")
@pytest.mark.parametrize(("kind", "path"), [("anthropic", ""), ("openai_compat", "/v1")])
@MODES
def test_a_host_that_never_completes_the_handshake_is_a_connection_failure(
    unanswered_port, kind, path, mode
) -> None:
    url, limits = f"http://127.0.0.1:{unanswered_port}{path}", Limits(0.3, 30.0, 30.0)
    with pytest.raises(BackendError) as info:
        read(kind, url, mode, limits)
    assert info.value.cause is Cause.CONNECTION  # not a slow first token: nothing was sent


class ClosesReusedConnections(BaseHTTPRequestHandler):
    """Answers the first request on each connection, kept alive, and closes the connection
    without a word at the next one: a server dropping an idle keep-alive connection just as
    the client reuses it."""

    protocol_version = "HTTP/1.1"
    requests: ClassVar[list[int]] = []  # how many requests its connection had seen, each

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen = getattr(self, "seen", 0) + 1
        self.requests.append(self.seen)
        if self.seen > 1:
            self.close_connection = True
            return
        events = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "m",
                        "type": "message",
                        "role": "assistant",
                        "model": "m",
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 1, "output_tokens": 1},
                    },
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hi"},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 1},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        body = "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@MODES
def test_anthropic_sends_again_once_on_a_kept_alive_connection_the_server_closed(mode) -> None:
    ClosesReusedConnections.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ClosesReusedConnections)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found = backend("anthropic", f"http://127.0.0.1:{server.server_address[1]}")

    def twice() -> list[str]:
        if mode == "sync":
            return [found.complete(REQUEST, DECISION).text for _ in range(2)]

        async def answers() -> list[str]:
            return [(await found.acomplete(REQUEST, DECISION)).text for _ in range(2)]

        return asyncio.run(answers())

    try:
        assert twice() == ["Hi", "Hi"]
    finally:
        server.shutdown()
    # the second request met the closed connection, and was sent again on a new one
    assert ClosesReusedConnections.requests == [1, 2, 1]


def test_a_key_quoted_back_is_taken_out_in_every_form_it_was_sent() -> None:
    """As sent, URL-quoted (a gateway's log line), after its scheme; a key too short to be
    one, and no headers at all, leave the message as it is."""
    key = "k+/=Xk9pQ2mV7rT4wZ8n"
    said = f"bad key {key}; in the query: k%2B%2F%3DXk9pQ2mV7rT4wZ8n; in a form: k%2B%2F%3DXk9p"
    out = without_credentials(said, {"authorization": f"Bearer {key}"})
    assert out.startswith("bad key …[20 chars]; in the query: …[20 chars];")
    assert without_credentials(f"bad key {key}", {"x-api-key": key}) == "bad key …[20 chars]"
    assert without_credentials("user x rejected", {"authorization": "Bearer x"}) == (
        "user x rejected"
    )
    assert without_credentials("nothing sent", None) == "nothing sent"


def test_a_key_across_a_long_bodys_cut_is_taken_out_before_the_cut() -> None:
    """A body that is no JSON is cut to 200 characters; the key goes first, so no start of
    it is left where the cut falls inside it."""
    key = "gw-A1b2C3d4E5f6G7h8I9j0"
    request = httpx.Request(
        "POST", "http://gw.example/v1", headers={"Authorization": f"Bearer {key}"}
    )
    reply = httpx.Response(401, text="x" * 190 + key, request=request)
    error = status_error("gw", reply)
    assert "gw-A1b2" not in str(error)
