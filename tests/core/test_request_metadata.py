"""Who asked, in the ledger: the caller's session and user ids and the answer's tool calls,
never text; `devpulse cost --by session` splits the books by them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devpulse import Chunk, Decision, Ledger, Request, Response, Router, Usage, hookimpl
from devpulse.cli import main
from devpulse.core.kinds import BackendSpec
from devpulse.core.ledger import MAX_ID_CHARS, SCHEMA_VERSION, Attempt, RequestRecord
from devpulse.core.types import ToolUseBlock, replay
from tests.support import router_with

V3 = Path(__file__).parent / "data" / "ledger-v3.sqlite3"  # written before request metadata
PROMPT = "Look up the weather in Lisbon and in Porto."


class Tools:
    """A backend kind whose answer asks for two tool calls."""

    def __init__(self, spec: BackendSpec) -> None:
        self.name, self.side = spec.name, spec.config.side

    def complete(self, request: Request, decision: Decision) -> Response:
        *_, last = self.stream(request, decision)
        assert last.response is not None
        return last.response

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        calls = [ToolUseBlock(f"toolu_{i}", "weather", {"city": "Lisbon"}) for i in range(2)]
        usage = Usage(input_tokens=20, output_tokens=10)
        yield from replay(Response(calls, decision.model, self.name, self.side, usage, 0.0))


class ToolsKind:
    @hookimpl
    def register_backend_kinds(self, register: Any) -> None:
        register("tools", Tools)


def agent_router(path: Path) -> Router:
    """A router whose one local backend answers with tool calls, booking to `path`."""
    return router_with(
        {
            "local": {"backend": "agent", "model": "m"},
            "backends": {"agent": {"side": "local", "kind": "tools"}},
            "preflight": {"enabled": False},
            "ledger": {"path": str(path)},
        },
        plugins=[ToolsKind()],
    )


def test_the_callers_ids_and_the_tool_call_count_are_booked_never_text(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    router = agent_router(path)
    long_id = "s" * (MAX_ID_CHARS + 50)
    router.invoke(Request.from_prompt(PROMPT, metadata={"session_id": "s-1", "user_id": "ana"}))
    list(router.stream(Request.from_prompt(PROMPT, metadata={"session_id": long_id})))
    router.invoke(PROMPT)
    rows = Ledger(path).rows()
    assert [(r["session_id"], r["user_id"], r["tool_calls"]) for r in rows] == [
        ("s-1", "ana", 2),
        ("s" * MAX_ID_CHARS, None, 2),
        (None, None, 2),
    ]
    assert b"Lisbon" not in path.read_bytes()


def test_a_ledger_from_before_request_metadata_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    path.write_bytes(V3.read_bytes())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    ledger = Ledger(path)
    assert ledger.schema_version == SCHEMA_VERSION
    old = ledger.rows()
    assert [(r["backend"], r["session_id"], r["tool_calls"]) for r in old] == [
        ("llama_server", None, 0),
        ("anthropic", None, 0),
    ]
    attempt = Attempt("cloud", "anthropic", "m", "answered", None, 0.1)
    ledger.record(RequestRecord("agentic", "public", [], "answered", [attempt], session_id="s"))
    assert ledger.rows()[-1]["session_id"] == "s"
    assert Ledger(path).schema_version == SCHEMA_VERSION  # opening again changes nothing


def test_cost_splits_spend_by_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)

    def book(session: str | None, side: str, cost: float, outcome: str = "answered") -> None:
        attempt = Attempt(side, "b", "m", outcome, None, 0.1)
        ledger.record(
            RequestRecord(
                "agentic",
                "public",
                [],
                outcome,
                [attempt],
                side=side,
                input_tokens=100,
                output_tokens=10,
                cost_usd=cost,
                counterfactual_usd=0.5,
                session_id=session,
                tool_calls=3 if outcome == "answered" else 0,
            )
        )

    book("alpha", "cloud", 0.5)
    book("alpha", "local", 0.0)
    book("beta", "cloud", 0.25)
    book("beta", "cloud", 0.0, "failed")
    book(None, "local", 0.0)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{path}"\n')
    assert main(["--config", str(cfg), "cost", "--by", "session", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok"
    assert list(report["by_session"]) == ["alpha", "beta", "(none)"]
    alpha, beta = report["by_session"]["alpha"], report["by_session"]["beta"]
    assert (alpha["requests"], alpha["answered"], alpha["spend_usd"]) == (2, 2, 0.5)
    assert (alpha["tool_calls"], alpha["input_tokens"]) == (6, 200)
    assert (beta["requests"], beta["answered"], beta["spend_usd"]) == (2, 1, 0.25)
    assert report["spend_usd"] == 0.75
    assert main(["--config", str(cfg), "cost", "--by", "session"]) == 0
    out = capsys.readouterr().out
    assert "  alpha: 2 requests (2 answered), 200 in 20 out, 6 tool calls, $0.5000" in out
    assert main(["--config", str(cfg), "cost", "--simulate", "--by", "user"]) == 2
    assert "--by reads the ledger" in capsys.readouterr().err


def test_the_ids_booked_are_the_ones_the_request_had_when_it_ended(tmp_path: Path) -> None:
    """The row is built behind the caller; a caller that reuses its metadata dict for the
    next request must not change the ids of the last one."""
    path = tmp_path / "l.sqlite3"
    router = agent_router(path)
    metadata = {"session_id": "first"}
    router.invoke(Request.from_prompt(PROMPT, metadata=metadata))
    metadata["session_id"] = "later"  # before the ledger's thread got to the row
    assert [r["session_id"] for r in router.ledger.rows()] == ["first"]
