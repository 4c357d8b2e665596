"""A llama-server router with two model files (the rig's Gemma under two names), for babysit."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import psutil

from tests.rig.llama_server import LlamaServer

MODELS = ("alpha", "beta")


class TwoModels:
    """The router and what tests do to it directly (load, wait, find a model's process)."""

    def __init__(self, server: LlamaServer) -> None:
        self.server = server

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            f"{self.base_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)

    def states(self) -> dict[str, str]:
        with urllib.request.urlopen(f"{self.base_url}/models", timeout=10) as resp:
            return {m["id"]: m["status"]["value"] for m in json.load(resp)["data"]}

    def wait(self, model: str, state: str) -> None:
        deadline = time.monotonic() + 60
        while self.states().get(model) != state:
            assert time.monotonic() < deadline, f"{model} never became {state}"
            time.sleep(0.05)
        if state == "unloaded":
            while self.process(model) is not None:
                assert time.monotonic() < deadline, f"{model}'s process never ended"
                time.sleep(0.05)

    def load(self, model: str) -> None:
        if self.states().get(model) != "loaded":
            self.post("/models/load", {"model": model})
            self.wait(model, "loaded")

    def unload_all(self) -> None:
        for model in MODELS:
            if self.states().get(model) in ("loaded", "loading"):
                self.wait(model, "loaded")
                self.post("/models/unload", {"model": model})
                self.wait(model, "unloaded")

    def process(self, model: str) -> psutil.Process | None:
        for child in self.server.children():
            try:
                args = child.cmdline()
            except psutil.Error:
                continue
            if "--alias" in args and args[args.index("--alias") + 1] == model:
                return child
        return None

    def rss_mb(self) -> int:
        """Memory the model processes hold now, as the OS counts it."""
        total = 0
        for child in self.server.children():
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total // (1024 * 1024)
