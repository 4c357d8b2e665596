"""The cost ledger: one SQLite row per request and one per attempt, never any text.

WAL mode, one connection per thread, and a busy timeout, so many async requests and several
processes can write at once without losing a row.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devpulse.core.config import Config
from devpulse.core.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    task_class TEXT NOT NULL,
    privacy_level TEXT NOT NULL,
    side TEXT,
    backend TEXT,
    model TEXT,
    reasons TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL,
    first_token_s REAL,
    outcome TEXT NOT NULL,
    error_class TEXT,
    attempts INTEGER NOT NULL,
    cost_usd REAL NOT NULL DEFAULT 0,
    counterfactual_usd REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS attempts (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    n INTEGER NOT NULL,
    ts REAL NOT NULL,
    side TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_class TEXT,
    latency_s REAL NOT NULL,
    PRIMARY KEY (request_id, n)
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    side: str
    backend: str
    model: str
    outcome: str  # "answered" or "failed"
    error_class: str | None
    latency_s: float
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    task_class: str
    privacy_level: str
    reasons: Sequence[str]
    outcome: str  # "answered", "failed", "refused"
    attempts: Sequence[Attempt]
    side: str | None = None
    backend: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float | None = None
    first_token_s: float | None = None
    error_class: str | None = None
    cost_usd: float = 0.0
    counterfactual_usd: float = 0.0
    ts: float = field(default_factory=time.time)


def default_ledger_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "devpulse" / "ledger.sqlite3"


class Ledger:
    """Append-only records of requests and attempts in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"ledger.path: cannot use {self.path} ({exc})") from None
        self._local = threading.local()

    @classmethod
    def from_config(cls, config: Config) -> Ledger:
        return cls(config.ledger.path or default_ledger_path())

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def record(self, entry: RequestRecord) -> int:
        """Write the request and its attempts in one transaction; returns the request id."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO requests (ts, task_class, privacy_level, side, backend, model,"
                " reasons, input_tokens, output_tokens, latency_s, first_token_s, outcome,"
                " error_class, attempts, cost_usd, counterfactual_usd)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.ts,
                    entry.task_class,
                    entry.privacy_level,
                    entry.side,
                    entry.backend,
                    entry.model,
                    json.dumps(list(entry.reasons)),
                    entry.input_tokens,
                    entry.output_tokens,
                    entry.latency_s,
                    entry.first_token_s,
                    entry.outcome,
                    entry.error_class,
                    len(entry.attempts),
                    entry.cost_usd,
                    entry.counterfactual_usd,
                ),
            )
            request_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO attempts (request_id, n, ts, side, backend, model, outcome,"
                " error_class, latency_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        request_id,
                        n,
                        a.ts,
                        a.side,
                        a.backend,
                        a.model,
                        a.outcome,
                        a.error_class,
                        a.latency_s,
                    )
                    for n, a in enumerate(entry.attempts, start=1)
                ],
            )
        return request_id

    def recent_attempts(self, limit: int = 500) -> list[dict[str, Any]]:
        """The latest attempts, oldest first."""
        with self._transaction() as db:
            found = db.execute(
                "SELECT ts, backend, side, outcome, error_class FROM attempts"
                " ORDER BY ts DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("ts", "backend", "side", "outcome", "error_class")
        return [dict(zip(keys, row, strict=True)) for row in reversed(found)]

    def rows(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Request rows since a Unix time, oldest first."""
        with self._transaction() as db:
            db.row_factory = sqlite3.Row
            try:
                found = db.execute(
                    "SELECT * FROM requests WHERE ts >= ? ORDER BY id", (since,)
                ).fetchall()
            finally:
                db.row_factory = None
        return [dict(r) for r in found]
