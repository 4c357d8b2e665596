"""The ledger: concurrent writers lose nothing; refusals and failures are recorded; no text."""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path
from time import perf_counter as perf
from types import SimpleNamespace
from typing import Any

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
    TaskClass,
    Usage,
    hookimpl,
)
from devpulse.core import books
from devpulse.core.ledger import SCHEMA_VERSION, Attempt, RequestRecord
from tests.support import router_with

# Hard by the difficulty score (an arithmetic word problem): routes to the cloud.
WORD_PROBLEM = (
    "A train travels 180 km in 2 hours, then 240 km in 3 hours. "
    "How many km per hour did it average over the whole trip?"
)


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
    router.invoke(WORD_PROBLEM)  # cloud
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
        cost.invoke("summarize this", task=TaskClass.DRAFTING)
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


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION])
def test_a_database_of_something_else_is_refused_and_left_as_it_was(tmp_path, version) -> None:
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE requests (id INTEGER PRIMARY KEY, url TEXT)")
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        db.execute(f"PRAGMA user_version = {version}")
    before = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match=r"something else \(tables: requests, users\), not a"):
        Ledger(path)
    # Byte for byte: WAL mode, for one, is written in the header of the file.
    assert hashlib.md5(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.sqlite3"]  # no -wal, -shm
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert db.execute("PRAGMA user_version").fetchone()[0] == version
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert tables == {"requests", "users"}


@pytest.mark.parametrize("path", ["/dev/null", "."])
def test_a_ledger_that_is_not_a_regular_file_is_refused(path: str) -> None:
    with pytest.raises(ConfigError, match="is not a regular file"):
        Ledger(path)
    assert not Path(f"{path}-journal").exists()


def test_a_ledger_path_may_start_at_the_home_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    router = router_with({"ledger": {"path": "~/books/ledger.sqlite3"}})
    assert router.ledger.path == tmp_path / "books" / "ledger.sqlite3"
    assert router.ledger.path.is_file()


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


def test_uses_say_which_models_are_in_flight_and_when_each_was_last_used(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from devpulse import Ledger  # noqa: PLC0415

    path = tmp_path / "uses.sqlite3"
    ledger, other_process = Ledger(path), Ledger(path)
    a = ledger.begin_use("ollama", "a", at=100.0)
    b = other_process.begin_use("ollama", "b", at=110.0)
    assert ledger.in_flight(60.0, now=120.0) == {("ollama", "a"), ("ollama", "b")}
    other_process.end_use(b, at=130.0)
    assert ledger.in_flight(60.0, now=131.0) == {("ollama", "a")}
    # a start older than the request budget counts as finished: a crashed process
    assert ledger.in_flight(60.0, now=161.0) == set()
    assert ledger.last_used() == {("ollama", "a"): 100.0, ("ollama", "b"): 130.0}
    ledger.end_use(a, at=170.0)
    assert ledger.last_used()[("ollama", "a")] == 170.0


def test_each_local_attempt_is_booked_from_start_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from devpulse import Response, Side, hookimpl  # noqa: PLC0415
    from tests.support import router_with  # noqa: PLC0415

    seen: list[set[tuple[str, str]]] = []

    class Local:
        @hookimpl
        def dispatch(self, request: Request, decision: Decision) -> Response:
            seen.append(router.ledger.in_flight(60.0) if router.ledger else set())
            return Response("ok", decision.model, decision.backend, Side.LOCAL)

    router = router_with(
        {"ledger": {"path": str(tmp_path / "l.sqlite3")}, "preflight": {"enabled": False}},
        plugins=[Local()],
    )
    router.invoke("summarize this changelog")
    assert router.ledger is not None
    assert seen == [{("llama_server", "default")}]  # in flight while it answered
    assert router.ledger.in_flight(60.0) == set()  # finished with its outcome
    assert ("llama_server", "default") in router.ledger.last_used()


# -- Ctrl-C ------------------------------------------------------------------------------


class InterruptAfter(sqlite3.Connection):
    """A connection that raises Ctrl-C's KeyboardInterrupt just after `armed` returns, once:
    where CPython raises a SIGINT that arrived while SQLite waited in C (the busy wait)."""

    armed: str | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = super().execute(sql, *args)
        if sql == InterruptAfter.armed:
            InterruptAfter.armed = None
            raise KeyboardInterrupt
        return cursor


def record_entry(tag: str) -> RequestRecord:
    attempt = Attempt("local", "b", "m", "answered", None, 0.01)
    return RequestRecord("drafting", "public", [tag], "answered", [attempt])


def test_ctrl_c_just_after_begin_leaves_no_transaction_open(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "l.sqlite3"
    monkeypatch.setattr(
        sqlite3, "connect", functools.partial(sqlite3.connect, factory=InterruptAfter)
    )
    ledger = Ledger(path)
    InterruptAfter.armed = "BEGIN IMMEDIATE"
    with pytest.raises(KeyboardInterrupt):
        ledger.record(record_entry("interrupted"))
    ledger.record(record_entry("after"))  # no "cannot start a transaction within a transaction"
    other = sqlite3.connect(path, timeout=0, isolation_level=None)  # another process's writer
    other.execute("BEGIN IMMEDIATE")  # not "database is locked"
    other.execute("ROLLBACK")
    other.close()
    # the interrupted write was queued again, and went ahead of the next
    assert [r["reasons"] for r in ledger.rows()] == ['["interrupted"]', '["after"]']


# -- another process's write lock --------------------------------------------------------


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's writer, in the middle of a write transaction (SQLite's locks are
    per connection, so a second connection stands in for the other process)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_reads_and_opening_a_current_ledger_do_not_wait_for_another_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.sqlite3"
    Ledger(path).record(record_entry("kept"))
    holder = hold_write_lock(path)
    try:
        ledger = Ledger(path, busy_timeout_s=0)  # a wait would fail at once: none is made
        assert [r["reasons"] for r in ledger.rows()] == ['["kept"]']
        assert ledger.in_flight(60.0) == set()
        assert ledger.last_used() == {}
        assert ledger.load_circuits() == {}
    finally:
        holder.rollback()
        holder.close()


# -- prompt-cache tokens -----------------------------------------------------------------


class CachedCloud:
    """A cloud answer that read 100k tokens from the prompt cache and wrote 50k to it."""

    @hookimpl
    def route(self, request, classification):
        return Decision(Side.CLOUD, "anthropic", "claude-sonnet-4-5")

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        usage = Usage(10, 100, cache_read_tokens=100_000, cache_write_tokens=50_000)
        return Response("ok", "claude-sonnet-4-5", decision.backend, decision.side, usage)


def test_prompt_cache_tokens_are_recorded_and_priced(tmp_path: Path) -> None:
    router = router_with({"ledger": {"path": str(tmp_path / "l.sqlite3")}}, plugins=[CachedCloud()])
    router.invoke("hello")
    (row,) = router.ledger.rows()
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (100_000, 50_000)
    # sonnet: $3/M in, $15/M out; cache reads at 0.1x the input price, writes at 1.25x
    expected = (10 * 3 + 100 * 15 + 100_000 * 3 * 0.1 + 50_000 * 3 * 1.25) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)
    assert row["counterfactual_usd"] == pytest.approx(expected)  # the cloud model is sonnet


def test_a_model_may_carry_its_own_cache_prices(tmp_path: Path) -> None:
    prices = {"claude-sonnet-4": {"input": 3.0, "output": 15.0, "cache_read": 1.0}}
    config = {"ledger": {"path": str(tmp_path / "l.sqlite3")}, "prices": prices}
    router = router_with(config, plugins=[CachedCloud()])
    router.invoke("hello")
    (row,) = router.ledger.rows()
    expected = (10 * 3 + 100 * 15 + 100_000 * 1.0 + 50_000 * 3 * 1.25) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)


def test_a_ledger_from_before_cache_tokens_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    from devpulse.core.ledger import MIGRATIONS, _statements  # noqa: PLC0415

    path = tmp_path / "v4.sqlite3"
    with sqlite3.connect(path) as db:
        for step in MIGRATIONS[:4]:
            for statement in _statements(step):
                db.execute(statement)
        db.execute("PRAGMA user_version = 4")
        db.execute(
            "INSERT INTO requests (ts, task_class, privacy_level, side, reasons, outcome,"
            " attempts, cost_usd, counterfactual_usd, input_tokens, output_tokens)"
            " VALUES (1e9, 'drafting', 'public', 'cloud', '[]', 'answered', 1, 0.5, 0.5, 10, 2)"
        )
    ledger = Ledger(path)
    assert ledger.schema_version == SCHEMA_VERSION == 5
    (old,) = ledger.rows()
    assert (old["input_tokens"], old["cost_usd"]) == (10, 0.5)
    assert (old["cache_read_tokens"], old["cache_write_tokens"]) == (0, 0)


class FailsThenAnswers:
    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        if decision.backend == "broken":
            raise ConnectionResetError("reset")
        return Response("ok", decision.model, decision.backend, decision.side, Usage(10, 2))


def test_a_breaker_save_the_lock_refuses_is_queued_and_neither_hides_the_error_nor_stops_failover(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.sqlite3"
    config = {
        "ledger": {"path": str(path), "busy_timeout_s": 0},
        "backends": {"broken": {"side": "local"}},
        "routing": {"drafting": {"side": "local", "backend": "broken"}},
        "preflight": {"enabled": False},
    }
    router = router_with(config, plugins=[FailsThenAnswers()])
    assert router.ledger is not None
    holder = hold_write_lock(path)
    try:
        answer = router.invoke("summarize this", task=TaskClass.DRAFTING)
    finally:
        holder.rollback()
        holder.close()
    assert answer.backend != "broken"  # failed over, though the breaker's save failed
    assert [r["outcome"] for r in router.ledger.rows()] == ["answered"]  # and its row kept
    with sqlite3.connect(path) as db:
        failed = db.execute("SELECT error_class, cause FROM attempts WHERE n = 1").fetchone()
        circuit = db.execute("SELECT failures FROM circuits WHERE backend = 'broken'").fetchone()
    assert failed == ("ConnectionResetError", "connection")  # the dispatch's error, not the lock
    # the breaker's state, written once the lock was released
    assert circuit == (router.breakers.states()["broken"]["consecutive_failures"],)


def test_ctrl_c_just_after_commit_does_not_write_the_rows_twice(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(
        sqlite3, "connect", functools.partial(sqlite3.connect, factory=InterruptAfter)
    )
    ledger = Ledger(tmp_path / "l.sqlite3")
    InterruptAfter.armed = "COMMIT"  # the commit went through; the Ctrl-C lands just after
    with pytest.raises(KeyboardInterrupt):
        ledger.record(record_entry("once"))
    ledger.record(record_entry("next"))
    assert [r["reasons"] for r in ledger.rows()] == ['["once"]', '["next"]']


def test_a_request_row_is_built_off_the_requests_path_with_the_time_it_was_queued(
    tmp_path: Path, monkeypatch
) -> None:
    """The books' row (costs included) is built by whoever commits it (the ledger's thread,
    or a read's flush), never by the request's thread while it answers; its time is still
    when the request ended, not when the row was built."""
    answering = threading.Event()
    built: list[tuple[bool, bool]] = []  # (by the caller's thread, while it was answering)
    entry = books.Book.entry

    def watched(self: books.Book, *args: Any) -> RequestRecord:
        caller = threading.current_thread() is threading.main_thread()
        built.append((caller, answering.is_set()))
        return entry(self, *args)

    monkeypatch.setattr(books.Book, "entry", watched)
    # The books' wall clock only: the row's time is read when the books are queued.
    monkeypatch.setattr(books, "time", SimpleNamespace(time=lambda: 1_000.0, perf_counter=perf))
    router = router_with({"ledger": {"path": str(tmp_path / "l.sqlite3")}}, plugins=[CachedCloud()])
    answering.set()
    router.invoke("hello")
    answering.clear()
    (row,) = router.ledger.rows()
    assert len(built) == 1
    assert built != [(True, True)]
    assert row["ts"] == 1_000.0
    assert (row["outcome"], row["side"]) == ("answered", "cloud")
    assert row["cost_usd"] > 0  # priced there too


class NoUsage:
    """A cloud answer whose stream carried no usage event (its usage reads as zero)."""

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        return Response("a short answer", "claude-sonnet-4-5", decision.backend, decision.side)


def test_an_answer_without_usage_is_booked_with_estimated_tokens_and_says_so(
    tmp_path: Path,
) -> None:
    router = router_with({"ledger": {"path": str(tmp_path / "l.sqlite3")}}, plugins=[NoUsage()])
    answer = router.invoke("Plan the billing migration.", task=TaskClass.REASONING)
    assert (answer.side, answer.usage.input_tokens) == (Side.CLOUD, 0)  # as it came
    (row,) = router.ledger.rows()
    assert row["input_tokens"] > 0
    assert row["output_tokens"] > 0
    assert row["cost_usd"] > 0
    assert books.USAGE_ESTIMATED in json.loads(row["reasons"])


def test_an_answer_with_usage_is_booked_as_reported(tmp_path: Path) -> None:
    router = router_with({"ledger": {"path": str(tmp_path / "l.sqlite3")}}, plugins=[CachedCloud()])
    router.invoke("hello")
    (row,) = router.ledger.rows()
    assert (row["input_tokens"], row["output_tokens"]) == (10, 100)
    assert books.USAGE_ESTIMATED not in json.loads(row["reasons"])
