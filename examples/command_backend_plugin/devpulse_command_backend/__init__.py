"""A backend kind that answers with a local program: the prompt on stdin, lines on stdout."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from devpulse import (
    BackendError,
    Cause,
    Chunk,
    ConfigError,
    Decision,
    Request,
    Response,
    StreamIncomplete,
    TextBlock,
    Usage,
    hookimpl,
)
from devpulse.core.config import parse_table
from devpulse.core.kinds import BackendSpec

KIND = "command"


@dataclass(frozen=True, slots=True)
class Settings:
    """The keys of a `kind = "command"` table besides the core's (side, timeout_s...)."""

    command: tuple[str, ...]


class CommandBackend:
    """Runs `command` once per request; its stdout, line by line, is the answer."""

    def __init__(self, spec: BackendSpec) -> None:
        settings = parse_table(Settings, spec.options, spec.key)
        if not settings.command:
            raise ConfigError(f"{spec.key}.command: give the program and its arguments")
        self.name = spec.name
        self.side = spec.config.side
        self.command = settings.command

    def complete(self, request: Request, decision: Decision) -> Response:
        for chunk in self.stream(request, decision):
            if chunk.response is not None:
                return chunk.response
        raise StreamIncomplete(f"{self.name}: the program gave no answer")

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        started = time.perf_counter()
        try:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError as exc:
            raise BackendError(
                f"{self.name}: cannot run {self.command[0]!r} ({exc.strerror or exc})",
                cause=Cause.CONNECTION,
            ) from None
        first: float | None = None
        lines: list[str] = []
        try:
            # Fed from a thread: a program that prints before it has read everything
            # would otherwise fill one pipe while this waits on the other.
            threading.Thread(target=_feed, args=(process.stdin, request.text())).start()
            assert process.stdout is not None
            for line in process.stdout:
                if first is None:  # the answer is one text block, streamed line by line
                    first = time.perf_counter()
                    yield Chunk("block_start", 0, block=TextBlock(""))
                lines.append(line)
                yield Chunk("text_delta", 0, text=line)
            status = process.wait()
        finally:  # the caller stopped reading, or the core gave up waiting
            if process.poll() is None:
                process.kill()
                process.wait()
        if status != 0:
            raise BackendError(
                f"{self.name}: the program exited with {status}", cause=Cause.SERVER_ERROR
            )
        text = "".join(lines)
        usage = Usage(input_tokens=0, output_tokens=0)  # a program counts no tokens
        if first is not None:
            yield Chunk("block_stop", 0)
        yield Chunk("usage", usage=usage)
        yield Chunk(
            "message_stop",
            response=Response(
                text,
                model=decision.model,
                backend=self.name,
                side=self.side,
                usage=usage,
                latency_s=time.perf_counter() - started,
                first_token_s=first - started if first is not None else None,
            ),
        )


def _feed(stdin: Any, text: str) -> None:
    try:
        stdin.write(text)
    except OSError:
        pass  # a program may exit without reading its input
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


@hookimpl
def register_backend_kinds(register: Any) -> None:
    register(KIND, CommandBackend)
