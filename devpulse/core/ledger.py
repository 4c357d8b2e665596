"""The cost ledger: one SQLite row per request and one per attempt, never any text.

WAL mode, one connection per thread, and a busy timeout (`ledger.busy_timeout_s`), so many
async requests and several processes can write at once without losing a row. Reads take no
lock: they see the last commit at once, whoever is writing meanwhile. The file carries its
schema version (`PRAGMA user_version`); opening an older ledger migrates it forward in one
transaction (opening a current one only reads), and a ledger from a newer DevPulse is
refused rather than misread.

What is guaranteed: the router queues a request's rows (`queue_record`, `queue_begin_use`,
`queue_end_use`) and a thread of the ledger's own commits them behind it, so the request
never waits for SQLite (`core/writes.py`). Every read here (`rows`, which `devpulse cost`
uses, `in_flight`, `last_used`) first waits for everything queued before it, and at
interpreter exit, a normal end or Ctrl-C, whatever is still queued is committed: each
request gets its one row whether or not anyone closes the Router. Commits use
`synchronous=NORMAL`: a committed row survives the process crashing, not the machine losing
power. A process killed outright (SIGKILL, `os._exit`) loses what it had queued and not yet
committed: a few milliseconds of rows, or longer while another process holds the file's
write lock (up to the busy timeout); another process (babysit) sees a busy mark that much
later. Forked children (multiprocessing's workers) commit each write as it is made
(`core/writes.py`). `record` and the other writes wait for their own commit.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devpulse.core.breaker import Circuit
from devpulse.core.config import Config
from devpulse.core.errors import ConfigError
from devpulse.core.writes import Job, Outcome, Writes, flush_all

# Each entry takes the ledger from version N to N + 1. Version 0 is the first layout, which
# recorded no version; its statements are idempotent, so a brand-new file runs them all.
MIGRATIONS: tuple[str, ...] = (
    """
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
    """,
    # 1 -> 2: why each attempt failed, and the circuit breakers' state across processes.
    """
    ALTER TABLE attempts ADD COLUMN cause TEXT;
    CREATE TABLE circuits (
        backend TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        open_until REAL NOT NULL,
        last_cause TEXT,
        updated REAL NOT NULL
    );
    """,
    # 2 -> 3: which model each attempt is using right now, so that any process (babysit)
    # knows which models are busy and when each was last used. A row is written when an
    # attempt starts and finished when it ends, whatever the outcome.
    """
    CREATE TABLE uses (
        id INTEGER PRIMARY KEY,
        backend TEXT NOT NULL,
        model TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL
    );
    CREATE INDEX uses_open ON uses(finished, started);
    CREATE INDEX uses_model ON uses(backend, model, started);
    """,
    # 3 -> 4: who asked (the caller's session and user ids, from the request's metadata) and
    # how many tool calls the answer made, so spend can be split by session; never text.
    """
    ALTER TABLE requests ADD COLUMN session_id TEXT;
    ALTER TABLE requests ADD COLUMN user_id TEXT;
    ALTER TABLE requests ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX requests_session ON requests(session_id, ts);
    """,
    # 4 -> 5: prompt-cache tokens, which the cloud bills apart from input tokens (reads
    # cheaper, writes dearer); rows from before read 0.
    """
    ALTER TABLE requests ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    """,
)
# A caller's id is an id: longer ones are cut, so the ledger never holds a pasted document.
MAX_ID_CHARS = 128
SCHEMA_VERSION = len(MIGRATIONS)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attempt:
    side: str
    backend: str
    model: str
    outcome: str  # "answered", "failed", "skipped" (circuit open), "cancelled" or "abandoned"
    error_class: str | None
    latency_s: float
    ts: float = field(default_factory=time.time)
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    task_class: str
    privacy_level: str
    reasons: Sequence[str]
    outcome: str  # "answered", "failed", "refused", "abandoned", "cancelled"
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
    session_id: str | None = None
    user_id: str | None = None
    tool_calls: int = 0
    cache_read_tokens: int = 0  # prompt-cache tokens, apart from input_tokens
    cache_write_tokens: int = 0


@dataclass(slots=True)
class Use:
    """An attempt's busy mark in the `uses` table, queued: the writer fills in its row id."""

    backend: str
    model: str
    started: float
    id: int | None = None


def default_ledger_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "devpulse" / "ledger.sqlite3"


def ledger_path(config: Config) -> Path:
    """The ledger's file: `ledger.path` (a leading ~ is the home folder), else the default."""
    return Path(config.ledger.path).expanduser() if config.ledger.path else default_ledger_path()


# SQLite keeps each file's lock state in per-process memory that a forked child inherits:
# forked in the middle of a transaction, a child's own connection to the file waits for
# locks nobody will release (a multiprocessing worker writing its rows hung so). So a fork
# waits until no transaction of this process is open, and a child never uses, nor closes,
# the connections it inherited (SQLite: "do not carry an open connection across a fork").
_ACTIVE = threading.RLock()  # held by every transaction, and by a fork while it forks
_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()
_inherited: list[sqlite3.Connection] = []  # a child's parent connections, kept unclosed


def _before_fork() -> None:
    _ACTIVE.acquire()


def _after_fork_in_parent() -> None:
    _ACTIVE.release()


def _after_fork_in_child() -> None:
    global _ACTIVE  # noqa: PLW0603  # the parent's lock, held for the fork, is not ours
    _ACTIVE = threading.RLock()
    for ledger in list(_ledgers):
        db = getattr(ledger._local, "db", None)
        if db is not None:
            _inherited.append(db)  # closing it could checkpoint the parent's WAL
        ledger._local = threading.local()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


# Columns only a DevPulse ledger's requests table has, in every version.
_OWN_COLUMNS = frozenset({"task_class", "privacy_level", "counterfactual_usd", "attempts"})


def _someone_elses(db: sqlite3.Connection) -> str:
    """The tables of a database that is not a DevPulse ledger, named; "" for a ledger or a
    new, empty file."""
    tables = sorted(
        row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
    )
    if not tables:
        return ""
    columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    if columns >= _OWN_COLUMNS:
        return ""
    return ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")


class Ledger:
    """Append-only records of requests and attempts in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s  # how long a write waits for another's lock
        self._local = threading.local()
        _ledgers.add(self)
        # Writes are queued and group-committed (`core/writes.py`): a request's rows are
        # written behind it, and reads see every write queued before them.
        self._writes = Writes(self._commit, key=str(self.path.resolve()), retry=_locked)
        if self.path.exists() and not self.path.is_file():  # /dev/null: SQLite would put its
            raise ConfigError(  # journal beside it, in /dev
                f"the ledger at {self.path} is not a regular file; set ledger.path to one"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.schema_version = self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot write the ledger at {self.path} (set ledger.path or XDG_DATA_HOME): "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None

    def _migrate(self) -> int:
        """Bring the file to `SCHEMA_VERSION`; only a migration takes the write lock, so a
        current ledger opens while another process writes (WAL readers never wait)."""
        with self._transaction(write=False) as db:
            version = self._version(db)
        if version < SCHEMA_VERSION:
            with self._transaction() as db:
                version = self._version(db)  # another process may have migrated it meanwhile
                for step in MIGRATIONS[version:]:
                    for statement in _statements(step):
                        db.execute(statement)
                if version < SCHEMA_VERSION:
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
            # what the write lock proved: a file nobody may write is refused up front
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return SCHEMA_VERSION

    def _version(self, db: sqlite3.Connection) -> int:
        """The file's schema version, once it is known to be a ledger this DevPulse reads."""
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"the ledger at {self.path} has schema version {version}, newer than this "
                f"DevPulse knows ({SCHEMA_VERSION}); upgrade DevPulse or set ledger.path"
            )
        return version

    @classmethod
    def from_config(cls, config: Config) -> Ledger:
        return cls(ledger_path(config), busy_timeout_s=config.ledger.busy_timeout_s)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        # Checked before anything is written, WAL mode included (it is a setting of the
        # file, not of this connection): their file is left as it was, byte for byte.
        other = _someone_elses(db)
        if other:
            db.close()
            raise ConfigError(
                f"{self.path} is an SQLite database of something else (tables: {other}), "
                "not a DevPulse ledger; set ledger.path to a file of its own"
            )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        return db

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction on this thread's connection: a write takes the file's write lock
        at once (waiting up to the busy timeout); a read (`write=False`) takes none and
        reads the last commit, whoever is writing meanwhile."""
        with _ACTIVE:  # a fork waits for it: see _before_fork
            db = getattr(self._local, "db", None)
            if db is None:
                db = self._local.db = self._connect()
            # Set just before COMMIT, cleared by BEGIN and ROLLBACK: with no transaction
            # open, it says the last COMMIT went through (`_commit`, on a Ctrl-C).
            self._local.committing = False
            try:
                # Inside the try: a Ctrl-C raised just as BEGIN returns (SQLite's busy wait is
                # C code; Python raises the signal after it) must not leave the transaction
                # open, holding the file's write lock for the rest of the process.
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
                yield db
                self._local.committing = True
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    self._local.committing = False
                    db.execute("ROLLBACK")
                raise

    def _write(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """Run `write` in a transaction, committed before this returns; concurrent writes
        share one commit (each in its own savepoint, so one failing spoils no other)."""
        return self._writes.write(write)

    def flush(self) -> None:
        """Return once every write queued so far, by any `Ledger` of this process on the
        same file, is committed. Every read here does this first."""
        self._writes.flush()
        flush_all(self._writes.key)

    def _commit(self, batch: list[Job]) -> None:
        """Commit `batch` in one transaction; if the transaction fails, raise, settling no
        write (`Writes` fails them, or keeps them queued while the file is locked)."""
        results: list[tuple[Outcome, Any, BaseException | None]] = []
        try:
            with self._transaction() as db:
                if len(batch) == 1:
                    write, outcome = batch[0]
                    results.append((outcome, write(db), None))
                else:
                    for write, outcome in batch:
                        db.execute("SAVEPOINT one")
                        try:
                            results.append((outcome, write(db), None))
                        except Exception as exc:
                            db.execute("ROLLBACK TO one")
                            results.append((outcome, None, exc))
                        db.execute("RELEASE one")
            for outcome, value, error in results:
                _settle(outcome, value, error)
        except Exception:
            raise
        except BaseException:
            # A Ctrl-C: before the COMMIT went through, the outcomes stay unsettled and
            # `Writes` queues the writes again; after it (just as it returned, or while
            # settling), they are settled here, or the next commit would write them twice.
            if self._local.committing and not self._local.db.in_transaction:
                for outcome, value, error in results:
                    _settle(outcome, value, error)
            raise

    def record(self, entry: RequestRecord) -> int:
        """Write the request and its attempts in one transaction; returns the request id."""
        return self._write(functools.partial(_record, entry))

    def queue_record(self, entry: RequestRecord | Callable[[], RequestRecord]) -> None:
        """`record`, queued: committed behind the caller (see the module's guarantee). A
        callable is called by the writing thread, to build the row off the caller's path."""
        self._writes.submit(functools.partial(_record_built, entry))

    def load_circuits(self) -> dict[str, Circuit]:
        """The circuit breakers' last recorded state, by backend."""
        self.flush()
        with self._transaction(write=False) as db:
            found = db.execute(
                "SELECT backend, failures, open_until, last_cause FROM circuits"
            ).fetchall()
        return {name: Circuit(failures, until, cause) for name, failures, until, cause in found}

    def save_circuit(self, backend: str, circuit: Circuit, at: float) -> None:
        """Record a circuit's new state (a closed circuit with no failures clears the row),
        queued like a request's rows: the process's breaker holds the state it acts on, and
        the request that changed it never waits for SQLite (another process holding the
        file's lock would otherwise hold up its failover for the busy timeout). States of
        one backend are committed in the order they came."""

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO circuits (backend, failures, open_until, last_cause, updated)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(backend) DO UPDATE SET"
                " failures = excluded.failures, open_until = excluded.open_until,"
                " last_cause = excluded.last_cause, updated = excluded.updated",
                (backend, circuit.failures, circuit.open_until, circuit.last_cause, at),
            )

        self._writes.submit(write)

    def begin_use(self, backend: str, model: str, at: float | None = None) -> int:
        """Record that an attempt starts on `model`; returns the row `end_use` finishes."""
        started = time.time() if at is None else at

        def write(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO uses (backend, model, started) VALUES (?, ?, ?)",
                (backend, model, started),
            )
            return int(cursor.lastrowid or 0)

        return self._write(write)

    def queue_begin_use(self, backend: str, model: str) -> Use:
        """`begin_use`, queued: returns the mark that `queue_end_use` finishes."""
        use = Use(backend, model, time.time())

        def write(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "INSERT INTO uses (backend, model, started) VALUES (?, ?, ?)",
                (use.backend, use.model, use.started),
            )
            use.id = int(cursor.lastrowid or 0)

        self._writes.submit(write)
        return use

    def queue_end_use(self, use: Use) -> None:
        """`end_use`, queued behind the `queue_begin_use` that made `use`."""
        finished = time.time()

        def write(db: sqlite3.Connection) -> None:
            if use.id is not None:  # else its start was never written: nothing to finish
                # The whole mark, not the id alone: a begin whose commit failed leaves an
                # id that SQLite hands out again, perhaps to another process's attempt.
                db.execute(
                    "UPDATE uses SET finished = ? WHERE id = ? AND backend = ? AND model = ?"
                    " AND started = ?",
                    (finished, use.id, use.backend, use.model, use.started),
                )

        self._writes.submit(write)

    def end_use(self, use_id: int, at: float | None = None) -> None:
        """Record that the attempt of `begin_use` ended (answered, failed or abandoned)."""
        finished = time.time() if at is None else at
        self._write(
            lambda db: db.execute("UPDATE uses SET finished = ? WHERE id = ?", (finished, use_id))
        )

    def in_flight(self, max_age_s: float, now: float | None = None) -> set[tuple[str, str]]:
        """(backend, model) pairs with an attempt running now, in any process.

        An unfinished row older than `max_age_s` (the request budget) counts as finished: a
        process that crashed mid-request must not keep its model busy forever.
        """
        now = time.time() if now is None else now
        self.flush()
        with self._transaction(write=False) as db:
            found = db.execute(
                "SELECT DISTINCT backend, model FROM uses WHERE finished IS NULL AND started > ?",
                (now - max_age_s,),
            ).fetchall()
        return {(backend, model) for backend, model in found}

    def last_used(self) -> dict[tuple[str, str], float]:
        """When each (backend, model) was last used: its latest attempt's end, or start."""
        self.flush()
        with self._transaction(write=False) as db:
            found = db.execute(
                "SELECT backend, model, MAX(COALESCE(finished, started)) FROM uses"
                " GROUP BY backend, model"
            ).fetchall()
        return {(backend, model): float(at) for backend, model, at in found}

    def rows(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Request rows since a Unix time, oldest first."""
        self.flush()
        with self._transaction(write=False) as db:
            db.row_factory = sqlite3.Row
            try:
                found = db.execute(
                    "SELECT * FROM requests WHERE ts >= ? ORDER BY id", (since,)
                ).fetchall()
            finally:
                db.row_factory = None
        return [dict(r) for r in found]


def _record_built(
    entry: RequestRecord | Callable[[], RequestRecord], db: sqlite3.Connection
) -> int:
    return _record(entry if isinstance(entry, RequestRecord) else entry(), db)


def _record(entry: RequestRecord, db: sqlite3.Connection) -> int:
    """The request's row and its attempts' rows; returns the request id."""
    cursor = db.execute(
        "INSERT INTO requests (ts, task_class, privacy_level, side, backend, model,"
        " reasons, input_tokens, output_tokens, latency_s, first_token_s, outcome,"
        " error_class, attempts, cost_usd, counterfactual_usd, session_id, user_id,"
        " tool_calls, cache_read_tokens, cache_write_tokens)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            _id(entry.session_id),
            _id(entry.user_id),
            entry.tool_calls,
            entry.cache_read_tokens,
            entry.cache_write_tokens,
        ),
    )
    request_id = int(cursor.lastrowid or 0)
    db.executemany(
        "INSERT INTO attempts (request_id, n, ts, side, backend, model, outcome,"
        " error_class, latency_s, cause) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                a.cause,
            )
            for n, a in enumerate(entry.attempts, start=1)
        ],
    )
    return request_id


def _locked(error: BaseException) -> bool:
    """Whether a commit failed only because another connection held the file's lock."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error)  # pragma: no cover  # Python before 3.11


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (executescript would commit our transaction)."""
    return [part.strip() for part in script.split(";") if part.strip()]


def _id(value: str | None) -> str | None:
    return value[:MAX_ID_CHARS] if value else None


def _settle(outcome: Outcome, value: Any, error: BaseException | None) -> None:
    """Settle `outcome`, unless it is settled (a caller may have cancelled it)."""
    if outcome.done():
        return
    if error is None:
        outcome.set_result(value)
    else:
        outcome.set_exception(error)
