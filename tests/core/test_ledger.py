"""The ledger: concurrent writers lose nothing; refusals and failures are recorded; no text."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from devpulse import (
    ConfigError,
    Decision,
    Labels,
    Ledger,
    PrivacyBlocked,
    PrivacyLevel,
    Request,
    Response,
    Side,
    Usage,
    hookimpl,
)
from devpulse.core.ledger import SCHEMA_VERSION, Attempt, RequestRecord
from tests.support import router_with


def write_many(path: str, count: int, tag: str) -> None:
    ledger = Ledger(path)
    for i in range(count):
        ledger.record(
            RequestRecord(
                task_class="drafting",
                privacy_level="public",
                reasons=[tag],
                outcome="answered",
                attempts=[Attempt("local", "b", "m", "answered", None, 0.01)],
                side="local",
                backend="b",
                model="m",
                input_tokens=i,
                output_tokens=1,
            )
        )


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.sqlite3")
    Ledger(path)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=write_many, args=(path, 300, f"p{n}")) for n in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 600
        assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] == 600
        by_tag = dict(db.execute("SELECT reasons, count(*) FROM requests GROUP BY reasons"))
    assert by_tag == {'["p0"]': 300, '["p1"]': 300}


class Answer:
    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        if decision.backend == "broken":
            raise ConnectionResetError("reset")
        return Response(
            "the answer",
            "claude-sonnet-4-5-20250929" if decision.side is Side.CLOUD else decision.model,
            decision.backend,
            decision.side,
            Usage(1000, 200),
        )


class Secret:
    @hookimpl
    def classify(self, request: Request) -> Labels:
        return Labels(privacy_level=PrivacyLevel.SECRET)


class ToCloud:
    @hookimpl
    def route(self, request, classification):
        return Decision(Side.CLOUD, "anthropic", "claude-sonnet-4-5")


def test_answers_costs_refusals_and_failures_are_recorded(tmp_path: Path) -> None:
    ledger = {"ledger": {"path": str(tmp_path / "l.sqlite3")}}
    router = router_with(ledger, plugins=[Answer()])
    router.invoke("summarize the launch plan for project hummingbird")  # local
    router.invoke("Design a multi-step migration plan")  # cloud
    cost = router_with(
        {
            **ledger,
            "local": {"backend": "llama_server", "model": "m"},
            "backends": {
                "llama_server": {
                    "side": "local",
                    "kind": "openai_compat",
                    "base_url": "http://127.0.0.1:9/v1",
                },
                "broken": {"side": "local"},
            },
            "routing": {"drafting": {"side": "local", "backend": "broken"}},
            "failover": {"enabled": False},
        },
        plugins=[Answer()],
    )
    with pytest.raises(Exception, match="reset"):
        cost.invoke("summarize this")
    blocked = router_with(ledger, plugins=[Answer(), Secret(), ToCloud()])
    with pytest.raises(PrivacyBlocked):
        blocked.invoke("summarize this")
    rows = router.ledger.rows()
    assert [r["outcome"] for r in rows] == ["answered", "answered", "failed", "refused"]
    local, cloud, failed, refused = rows
    assert (local["side"], local["cost_usd"]) == ("local", 0.0)
    assert local["counterfactual_usd"] == pytest.approx((1000 * 3 + 200 * 15) / 1e6)
    assert cloud["side"] == "cloud"
    assert cloud["cost_usd"] == pytest.approx((1000 * 3 + 200 * 15) / 1e6)  # sonnet prices
    assert (failed["error_class"], failed["attempts"]) == ("DispatchFailed", 1)
    assert (refused["error_class"], refused["privacy_level"]) == ("PrivacyBlocked", "secret")
    raw = (
        Path(router.ledger.path).read_bytes() + Path(f"{router.ledger.path}-wal").read_bytes()
        if Path(f"{router.ledger.path}-wal").exists()
        else Path(router.ledger.path).read_bytes()
    )
    assert b"hummingbird" not in raw
    assert b"the answer" not in raw


# -- schema versions ---------------------------------------------------------------------

V0 = Path(__file__).parent / "data" / "ledger-v0.sqlite3"  # written by DevPulse 0.1.0


def test_a_ledger_from_the_first_schema_is_migrated_forward(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    path.write_bytes(V0.read_bytes())
    ledger = Ledger(path)
    assert ledger.schema_version == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [row[1] for row in db.execute("PRAGMA table_info(attempts)")]
    assert "cause" in columns
    old = ledger.rows()
    assert [(r["task_class"], r["outcome"], r["attempts"]) for r in old] == [
        ("drafting", "answered", 1),
        ("reasoning", "answered", 2),
        ("quick_qa", "refused", 0),
    ]
    ledger.record(
        RequestRecord(
            "drafting",
            "public",
            [],
            "failed",
            [Attempt("local", "llama_server", "m", "failed", "X", 0.1, cause="stream_cut")],
        )
    )
    assert len(ledger.rows()) == 4
    assert Ledger(path).schema_version == SCHEMA_VERSION  # opening again changes nothing


def test_a_ledger_from_a_newer_devpulse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match="newer than this DevPulse knows"):
        Ledger(path)


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_an_unwritable_ledger_names_the_path_and_the_fix(tmp_path: Path, where: str) -> None:
    if where == "proc":
        path = Path("/proc/devpulse/ledger.sqlite3")
    else:
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "ledger.sqlite3"
    with pytest.raises(ConfigError) as error:
        Ledger(path)
    assert str(error.value).startswith(
        f"cannot write the ledger at {path} (set ledger.path or XDG_DATA_HOME)"
    )
