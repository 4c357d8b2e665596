"""A protocol-faithful Ollama API server in front of a real llama-server in router mode.

Ollama itself cannot be installed here, so the real `ollama` client is tested against this:
the same endpoints, JSON shapes and status codes (`/api/version`, `/api/tags`, `/api/show`,
`/api/ps`, `/api/generate` for load and `keep_alive: 0` unload), while the models are real
llama-server processes, so loaded sizes are real resident memory and unloading really
frees it. Inference endpoints are added where the dispatch backends need them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from devpulse.plugins.preflight.gguf_meta import read_metadata
from tests.rig.llama_server import LlamaServer


def model_info(path: Path) -> dict[str, Any]:
    """GGUF metadata as Ollama's /api/show reports it: scalar keys; large arrays elided."""
    meta, _ = read_metadata(path)
    info = {k: v for k, v in meta.items() if not isinstance(v, list) and not k.endswith(".count")}
    info["tokenizer.ggml.tokens"] = []  # Ollama elides large arrays unless verbose
    return info


class OllamaRig:
    """Serves the Ollama API on a free loopback port; `models` maps Ollama names to GGUFs."""

    def __init__(self, router: LlamaServer, models: dict[str, Path]) -> None:
        self.router = router
        self.models = models
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._info = {name: model_info(path) for name, path in models.items()}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> OllamaRig:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what the endpoints do -------------------------------------------------------------

    def router_id(self, name: str) -> str:
        return self.models[name].stem

    def loaded(self) -> dict[str, psutil.Process]:
        """Ollama name -> the llama-server child process serving it."""
        out = {}
        for child in self.router.children():
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            for name, path in self.models.items():
                if str(path) in cmdline or path.name in " ".join(cmdline):
                    out[name] = child
        return out

    def load(self, name: str) -> None:
        self._router_post("/models/load", {"model": self.router_id(name)})
        deadline = time.monotonic() + 60
        while name not in self.loaded() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._wait_status(name, "loaded")

    def unload(self, name: str) -> None:
        self._router_post("/models/unload", {"model": self.router_id(name)})
        self._wait_status(name, "unloaded")

    def _wait_status(self, name: str, status: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{self.router.base_url}/models", timeout=10) as resp:
                states = {m["id"]: m["status"]["value"] for m in json.load(resp)["data"]}
            if states.get(self.router_id(name)) == status:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{name} did not become {status}")

    def _router_post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            f"{self.router.base_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.load(resp)

    def _tag(self, name: str) -> dict[str, Any]:
        path = self.models[name]
        info = self._info[name]
        return {
            "name": name,
            "model": name,
            "modified_at": datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(),
            "size": path.stat().st_size,
            "digest": "sha256:" + hashlib.sha256(path.name.encode()).hexdigest(),
            "details": {
                "format": "gguf",
                "family": info.get("general.architecture", ""),
                "families": [info.get("general.architecture", "")],
                "parameter_size": info.get("general.size_label", ""),
                "quantization_level": "Q4_K_M",
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        rig = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _model(self, body: dict[str, Any]) -> str | None:
                name = body.get("model") or body.get("name") or ""
                if name in rig.models:
                    return str(name)
                if f"{name}:latest" in rig.models:
                    return f"{name}:latest"
                self._json(404, {"error": f"model '{name}' not found"})
                return None

            def do_GET(self) -> None:
                rig.requests.append((f"GET {self.path}", {}))
                if self.path == "/api/version":
                    self._json(200, {"version": "0.6.3"})
                elif self.path == "/api/tags":
                    self._json(200, {"models": [rig._tag(n) for n in rig.models]})
                elif self.path == "/api/ps":
                    expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
                    self._json(
                        200,
                        {
                            "models": [
                                {
                                    **rig._tag(name),
                                    "size": proc.memory_info().rss,
                                    "size_vram": 0,
                                    "expires_at": expires,
                                    "context_length": 4096,
                                }
                                for name, proc in rig.loaded().items()
                            ]
                        },
                    )
                elif self.path == "/":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"Ollama is running")
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self._body()
                rig.requests.append((f"POST {self.path}", body))
                if self.path == "/api/show":
                    name = self._model(body)
                    if name:
                        info = rig._tag(name)
                        self._json(
                            200,
                            {
                                "modelfile": f"FROM {rig.models[name]}",
                                "parameters": "",
                                "template": "{{ .Prompt }}",
                                "details": info["details"],
                                "model_info": rig._info[name],
                                "capabilities": ["completion"],
                                "modified_at": info["modified_at"],
                            },
                        )
                elif self.path == "/api/generate" and not body.get("prompt"):
                    name = self._model(body)
                    if name:
                        unload = body.get("keep_alive") in (0, "0", "0s", "0m")
                        (rig.unload if unload else rig.load)(name)
                        self._json(
                            200,
                            {
                                "model": name,
                                "created_at": datetime.now(UTC).isoformat(),
                                "response": "",
                                "done": True,
                                "done_reason": "unload" if unload else "load",
                            },
                        )
                elif self.path == "/api/chat":
                    name = self._model(body)
                    if name:
                        self._chat(name, body)
                else:
                    self._json(404, {"error": f"{self.path} is not served by the rig"})

            def _chat(self, name: str, body: dict[str, Any]) -> None:
                """Ollama's /api/chat, answered by the server's /v1/chat/completions.

                Tools as Ollama has them: calls carry no ids and their arguments are an
                object; a tool result is a `tool` message, matched to its call by order. A
                streamed call is sent whole, in one line, once its arguments are complete.
                """
                options = body.get("options") or {}
                upstream = {
                    "model": rig.router_id(name),
                    "messages": openai_messages(body.get("messages", [])),
                    "max_tokens": options.get("num_predict", 128),
                    "stream": body.get("stream", True),
                }
                for key, option in (("stop", "stop"), ("temperature", "temperature")):
                    if option in options:
                        upstream[key] = options[option]
                if body.get("tools"):
                    upstream["tools"] = body["tools"]
                if upstream["stream"]:
                    upstream["stream_options"] = {"include_usage": True}
                req = urllib.request.Request(
                    f"{rig.router.base_url}/v1/chat/completions",
                    data=json.dumps(upstream).encode(),
                    headers={"Content-Type": "application/json"},
                )
                started = time.monotonic_ns()
                with urllib.request.urlopen(req, timeout=120) as resp:
                    if not upstream["stream"]:
                        data = json.load(resp)
                        choice = data["choices"][0]
                        message = {
                            "role": "assistant",
                            "content": choice["message"].get("content") or "",
                        }
                        calls = ollama_calls(choice["message"].get("tool_calls") or [])
                        if calls:
                            message["tool_calls"] = calls
                        self._json(
                            200,
                            {
                                **self._done(
                                    name,
                                    started,
                                    data.get("usage") or {},
                                    choice.get("finish_reason"),
                                ),
                                "message": message,
                            },
                        )
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-ndjson")
                    self.end_headers()
                    usage: dict[str, Any] = {}
                    finish = None
                    pending: dict[int, dict[str, Any]] = {}
                    for raw in resp:
                        line = raw.decode().strip()
                        if not line.startswith("data:") or line == "data: [DONE]":
                            continue
                        event = json.loads(line[5:])
                        usage = event.get("usage") or usage
                        for choice in event.get("choices") or ():
                            finish = choice.get("finish_reason") or finish
                            delta = choice.get("delta") or {}
                            for call in delta.get("tool_calls") or ():
                                index = int(call.get("index", 0))
                                if pending and index not in pending:
                                    self._calls(name, pending)
                                entry = pending.setdefault(index, {"name": "", "arguments": ""})
                                function = call.get("function") or {}
                                entry["name"] += function.get("name") or ""
                                entry["arguments"] += function.get("arguments") or ""
                            text = delta.get("content")
                            if text:
                                self._line(
                                    {
                                        "model": name,
                                        "created_at": datetime.now(UTC).isoformat(),
                                        "message": {"role": "assistant", "content": text},
                                        "done": False,
                                    }
                                )
                    self._calls(name, pending)
                    self._line(
                        {
                            **self._done(name, started, usage, finish),
                            "message": {"role": "assistant", "content": ""},
                        }
                    )

            def _calls(self, name: str, pending: dict[int, dict[str, Any]]) -> None:
                """Send the calls gathered so far, whole, as Ollama does (no ids)."""
                calls = ollama_calls([{"function": c} for _, c in sorted(pending.items())])
                pending.clear()
                if calls:
                    self._line(
                        {
                            "model": name,
                            "created_at": datetime.now(UTC).isoformat(),
                            "message": {"role": "assistant", "content": "", "tool_calls": calls},
                            "done": False,
                        }
                    )

            def _line(self, obj: dict[str, Any]) -> None:
                self.wfile.write(json.dumps(obj).encode() + b"\n")
                self.wfile.flush()

            @staticmethod
            def _done(
                name: str, started: int, usage: dict[str, Any], finish: str | None
            ) -> dict[str, Any]:
                return {
                    "model": name,
                    "created_at": datetime.now(UTC).isoformat(),
                    "done": True,
                    "done_reason": "length" if finish == "length" else "stop",
                    "total_duration": time.monotonic_ns() - started,
                    "prompt_eval_count": usage.get("prompt_tokens", 0),
                    "eval_count": usage.get("completion_tokens", 0),
                }

        return Handler


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's chat messages as OpenAI's: the rig gives calls the ids Ollama does not have.

    A `tool` message answers the next unanswered call of the assistant turn before it.
    """
    out: list[dict[str, Any]] = []
    waiting: list[str] = []
    for n, m in enumerate(messages):
        entry: dict[str, Any] = {"role": m["role"], "content": m.get("content", "")}
        if m.get("tool_calls"):
            ids = [f"call_{n}_{i}" for i in range(len(m["tool_calls"]))]
            entry["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": json.dumps(c["function"].get("arguments") or {}),
                    },
                }
                for call_id, c in zip(ids, m["tool_calls"], strict=True)
            ]
            waiting = ids
        elif m["role"] == "tool":
            entry["tool_call_id"] = waiting.pop(0) if waiting else "call_unknown"
        out.append(entry)
    return out


def ollama_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls as Ollama's: no id, arguments an object; a call whose arguments
    are not JSON (cut by the token limit) is not a call Ollama could parse, so none."""
    out = []
    for call in calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            continue
        out.append({"function": {"name": function.get("name", ""), "arguments": arguments}})
    return out
