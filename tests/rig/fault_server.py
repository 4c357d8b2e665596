"""A fault-injecting server that speaks Anthropic's Messages API (JSON errors and SSE), and
OpenAI's chat completions for the steps a local server can take (`/v1/chat/completions`).

Each request is answered by the next step of a script: a good answer, or one of the ways a
provider misbehaves. Every request body is recorded, so tests can prove what reached "the
cloud" (and that nothing sensitive ever did).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "Cloud answer."
STEPS = (
    "ok",
    "429",
    "429_no_retry_after",
    "429_spend",
    "529",
    "500",
    "503",
    "reset",
    "silence",
    "slow_first_token",
    "cut",
    "stall",
    "reset_mid",
    "malformed",
    "overloaded_event",
    "no_stop",
    "400_context",
    "400_policy",
    "401_echo",
    "drip",
    "keepalive",
)


class FaultServer:
    """`script(n)` names the step for the n-th request (from 0); a list repeats its last."""

    def __init__(self, script: list[str] | Callable[[int], str], *, hang_s: float = 30) -> None:
        self.script = script
        self.hang_s = hang_s
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str | None] = []  # each request's API key header, as sent
        # Set when a client hangs up in the middle of a "drip" answer.
        self.disconnected = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def step(self, n: int) -> str:
        if callable(self.script):
            return self.script(n)
        return self.script[min(n, len(self.script) - 1)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fault = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def handle(self) -> None:
                # The client gives up on the steps built to make it give up.
                with contextlib.suppress(OSError):
                    super().handle()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fault._lock:
                    n = len(fault.bodies)
                    fault.bodies.append(body)
                    auth = self.headers.get("Authorization") or ""
                    fault.keys.append(self.headers.get("x-api-key") or auth or None)
                step = fault.step(n)
                prefix = {"/api/chat": "ollama_"}.get(self.path, "")
                if self.path.endswith("/chat/completions"):
                    prefix = "openai_"
                handler = getattr(self, f"{prefix}{step}", None) if prefix else None
                if handler is not None:
                    handler(body)
                    return
                getattr(self, f"step_{step}")(body)

            # -- plain HTTP errors --------------------------------------------------------

            def _error(
                self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
            ) -> None:
                error = {"type": "error", "error": {"type": kind, "message": message}}
                self._json(status, error, headers)

            def _json(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def step_429(self, body: dict[str, Any]) -> None:
                self._error(429, "rate_limit_error", "Rate limited", {"retry-after": "1"})

            def step_429_no_retry_after(self, body: dict[str, Any]) -> None:
                self._error(429, "rate_limit_error", "Rate limited")

            def step_429_spend(self, body: dict[str, Any]) -> None:
                self._error(
                    429,
                    "rate_limit_error",
                    "You have reached your specified workspace API spend limit.",
                )

            def step_529(self, body: dict[str, Any]) -> None:
                self._error(529, "overloaded_error", "Overloaded")

            def step_500(self, body: dict[str, Any]) -> None:
                self._error(500, "api_error", "Internal server error")

            def step_503(self, body: dict[str, Any]) -> None:
                self._error(503, "api_error", "Service unavailable")

            def step_400_context(self, body: dict[str, Any]) -> None:
                self._error(
                    400,
                    "invalid_request_error",
                    "prompt is too long: 250000 tokens > 200000 maximum",
                )

            def step_401(self, body: dict[str, Any]) -> None:
                self._error(401, "authentication_error", "invalid x-api-key")

            def step_401_echo(self, body: dict[str, Any]) -> None:
                """A gateway that quotes the key it turned down."""
                key = self.headers.get("x-api-key") or self.headers.get("Authorization") or ""
                self._error(401, "authentication_error", f"invalid x-api-key: {key}")

            def step_401_incorrect(self, body: dict[str, Any]) -> None:
                """OpenAI's wording, from a gateway that does not mask the key it quotes."""
                sent = self.headers.get("Authorization") or ""
                key = self.headers.get("x-api-key") or sent.partition(" ")[2]
                self._error(401, "invalid_request_error", f"Incorrect API key provided: {key}.")

            def step_400_policy(self, body: dict[str, Any]) -> None:
                self._error(
                    400, "invalid_request_error", "Output blocked by content filtering policy"
                )

            # -- transport faults ---------------------------------------------------------

            def step_reset(self, body: dict[str, Any]) -> None:
                """Close with a TCP reset before any byte of a response."""
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True

            def step_silence(self, body: dict[str, Any]) -> None:
                time.sleep(fault.hang_s)
                self.close_connection = True

            # -- streams --------------------------------------------------------------------

            def _start_stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            def _event(self, name: str, data: dict[str, Any] | str) -> None:
                payload = data if isinstance(data, str) else json.dumps(data)
                self.wfile.write(f"event: {name}\ndata: {payload}\n\n".encode())
                self.wfile.flush()

            def _opening(self, body: dict[str, Any]) -> None:
                self._event("message_start", _message_start(body))
                self._event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )

            def _delta(self, text: str) -> None:
                self._event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )

            def _closing(self, *, stop: bool = True) -> None:
                self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
                self._event(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": 3},
                    },
                )
                if stop:
                    self._event("message_stop", {"type": "message_stop"})

            def step_ok(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._answer(body)

            def _answer(self, body: dict[str, Any]) -> None:
                self._opening(body)
                for word in ANSWER.split(" "):
                    self._delta(word + " ")
                self._closing()

            def step_slow_first_token(self, body: dict[str, Any]) -> None:
                self._start_stream()
                time.sleep(fault.hang_s)
                self._answer(body)

            def step_cut(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._opening(body)
                self._delta("Cloud ")
                self.wfile.write(b'event: content_block_delta\ndata: {"type": "cont')
                self.wfile.flush()
                self.connection.close()

            def step_reset_mid(self, body: dict[str, Any]) -> None:
                """Begin the answer, then close with a TCP reset."""
                self._start_stream()
                self._opening(body)
                self._delta("Cloud ")
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()

            def step_stall(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._opening(body)
                self._delta("Cloud ")
                time.sleep(fault.hang_s)

            def step_malformed(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._opening(body)
                self._event("content_block_delta", "{this is not json")
                self._closing()

            def step_overloaded_event(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._opening(body)
                self._event(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                )

            def step_drip(self, body: dict[str, Any]) -> None:
                """A word every 20 ms, until the client hangs up (then `disconnected` is set)."""
                self._start_stream()
                self._opening(body)
                self._drip(lambda: self._delta("Cloud "))

            def step_keepalive(self, body: dict[str, Any]) -> None:
                """`message_start`, then only `ping` events (no content) every 20 ms, until
                the client hangs up (then `disconnected` is set)."""
                self._start_stream()
                self._event("message_start", _message_start(body))
                self._drip(lambda: self._event("ping", {"type": "ping"}))

            def _drip(self, send: Callable[[], None]) -> None:
                deadline = time.monotonic() + fault.hang_s
                try:
                    while time.monotonic() < deadline:
                        send()
                        time.sleep(0.02)
                except OSError:  # a broken pipe or a reset: the client closed the connection
                    fault.disconnected.set()

            def step_no_stop(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._opening(body)
                self._delta("Cloud ")
                self._closing(stop=False)

            # -- OpenAI-compatible streams (llama-server, LM Studio, vLLM) ------------------

            def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> None:
                event = {
                    "object": "chat.completion.chunk",
                    "model": "fault",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()

            def _openai_answer(self, *, stall_after_first: bool = False) -> None:
                self._start_stream()
                words = ANSWER.split(" ")
                for i, word in enumerate(words):
                    self._chunk({"content": word + " "})
                    if stall_after_first and i == 0:
                        time.sleep(fault.hang_s)
                self._chunk({}, "stop")
                usage = {"prompt_tokens": 12, "completion_tokens": 3}
                self.wfile.write(
                    f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
                )
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def openai_ok(self, body: dict[str, Any]) -> None:
                self._openai_answer()

            def openai_tool_call(self, body: dict[str, Any]) -> None:
                """A model that calls `get_weather` for the last word of the last user text,
                streamed in OpenAI's shape: the call's id and name, then its arguments."""
                users = [m for m in body.get("messages", []) if m.get("role") == "user"]
                text = users[-1].get("content") if users else ""
                if isinstance(text, list):
                    text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
                city = str(text).rstrip(".?! ").split(" ")[-1]
                call = {"index": 0, "id": f"call_{len(fault.bodies)}", "type": "function"}
                self._start_stream()
                self._chunk({"tool_calls": [{**call, "function": {"name": "get_weather"}}]})
                arguments = json.dumps({"city": city})
                for part in (arguments[:5], arguments[5:]):
                    self._chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
                self._chunk({}, "tool_calls")
                usage = {
                    "prompt_tokens": 10 * len(body.get("messages", [])),
                    "completion_tokens": 9,
                }
                self.wfile.write(
                    f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
                )
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def openai_stall(self, body: dict[str, Any]) -> None:
                self._openai_answer(stall_after_first=True)

            def openai_slow_first_token(self, body: dict[str, Any]) -> None:
                self._start_stream()
                time.sleep(fault.hang_s)
                self._openai_answer()

            def openai_cut(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._chunk({"content": "Cloud "})
                self.wfile.write(b'data: {"choices": [{"delta": {"cont')
                self.wfile.flush()
                self.connection.close()

            def openai_reset_mid(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._chunk({"content": "Cloud "})
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()

            def openai_drip(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._drip(lambda: self._chunk({"content": "Cloud "}))

            def ollama_drip(self, body: dict[str, Any]) -> None:
                """Ollama's /api/chat: one NDJSON part every 20 ms, until the client hangs up."""
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                part = {"model": "fault", "message": {"role": "assistant", "content": "Cloud "}}
                self._drip(
                    lambda: (self.wfile.write(f"{json.dumps(part)}\n".encode()), self.wfile.flush())
                )

            def openai_keepalive(self, body: dict[str, Any]) -> None:
                """Only SSE comments (as OpenRouter sends while it queues) every 20 ms, until
                the client hangs up."""
                self._start_stream()
                self._drip(lambda: (self.wfile.write(b": PROCESSING\n\n"), self.wfile.flush()))

            def openai_no_stop(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self._chunk({"content": "Cloud "})
                self._chunk({}, "stop")

            def openai_error_event_echo(self, body: dict[str, Any]) -> None:
                """A gateway's error event inside a 200 stream that quotes the key sent."""
                self._start_stream()
                key = self.headers.get("Authorization") or ""
                error = {"error": {"message": f"Incorrect API key provided: {key}", "code": 401}}
                self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                self.wfile.flush()

            def openai_malformed(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self.wfile.write(b"data: {this is not json\n\n")
                self.wfile.flush()

            def openai_429(self, body: dict[str, Any]) -> None:
                self._openai_error(
                    429, "rate_limit_error", "Too many requests", {"Retry-After": "7"}
                )

            def openai_400_context(self, body: dict[str, Any]) -> None:
                self._openai_error(
                    400,
                    "exceed_context_size_error",
                    "the request exceeds the available context size, try increasing it",
                )

            def openai_500(self, body: dict[str, Any]) -> None:
                self._openai_error(500, "server_error", "pharmacy harm policy text")

            def _openai_error(
                self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
            ) -> None:
                error = {"error": {"code": status, "message": message, "type": kind}}
                self._json(status, error, headers)

        return Handler


def _message_start(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_fault",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    }


def hybrid_config(
    fault: FaultServer, local_url: str, ledger: str, **failover: Any
) -> dict[str, Any]:
    """A config whose cloud is `fault` (through the anthropic SDK) and whose local side is
    the llama-server rig at `local_url` (OpenAI-compatible)."""
    return {
        "cloud": {"backend": "cloud", "model": "claude-sonnet-4-6"},
        "local": {"backend": "llama_server", "model": "gemma-3-270m"},
        "backends": {
            "cloud": {"side": "cloud", "kind": "anthropic", "base_url": fault.base_url},
            "llama_server": {
                "side": "local",
                "kind": "openai_compat",
                "base_url": f"{local_url}/v1",
            },
        },
        "ledger": {"path": ledger},
        "failover": failover,
    }
