"""The results store: an embedded SQLite database.

Default location ``archbench-results/results.db`` (``--store`` to choose). Schema version 2, each
fact in one place:

``runs`` -- one row per run (one :class:`~archbench.config.RunConfig`, one sweep job)::

    key TEXT PRIMARY KEY      the configuration's key (archbench.config.RunConfig.key)
    config TEXT               the resolved configuration (JSON; RunConfig.from_json reads it)
    arch, init, seed, task, image, size, iterations, device, judge
                              generated (virtual) columns read from ``config``, for SQL queries
    image_label TEXT          the image's short label (built-in name or file stem)
    status TEXT               'done' or 'failed'; error TEXT: the reason of a failure
    started, finished REAL    UNIX times; seconds REAL: run wall time; build_seconds REAL
    host TEXT                 where it was stored from; versions TEXT: JSON of package versions
    provenance TEXT           JSON: the network's weights source, executor details, migration
    attempts INTEGER          how many times it was stored (failed runs are retried)

``results`` -- one row per (run, layer): status, error, final loss, iterations, evaluations,
seconds, device, loss trace (JSON), image paths (JSON), ``extra`` (JSON: the task's provenance,
e.g. layer weights), ``stalled`` (1: the optimisation did not leave its start, 0: it did, NULL:
nothing was optimised or not recorded; :attr:`archbench.results.Result.stalled`); the index
``results_summary`` holds each result's position, status, final loss, device and ``stalled`` flag,
so that reports read those without touching the rows that carry the traces (a store whose index
predates the flag gets it rebuilt when it is first opened writable); ``scores`` -- one row per (run, layer,
metric) with the value (NULL where it could not be computed); ``suite_runs`` -- (suite, run key)
membership; ``suites`` -- each suite's resolved definition (JSON) and reference; ``leases`` --
which sweep is running which job (see below); ``meta`` -- the schema version.

Everything written is read back: :meth:`ResultStore.outcome` rebuilds a run's
:class:`~archbench.results.RunOutcome` with its :class:`~archbench.results.Result` s.

A schema-1 store (archbench before run configurations) is migrated in place when it is opened,
after a copy of it is kept as ``<file>.schema1.bak`` (see :mod:`archbench.store.migrate`).

Durability and concurrency: WAL journal, 60 s busy timeout, and every run written in its own
``BEGIN IMMEDIATE`` transaction, so a killed sweep (Ctrl-C, ``kill -9``) loses only the runs that
were in progress and several sweeps may write to one store at once. A ``done`` row is never
replaced (``INSERT ... ON CONFLICT(key) DO UPDATE ... WHERE status != 'done'``): the first finished
result of a run wins, and a failed row is replaced by a later attempt.

Sharing the work: before a sweep runs a job it *claims* it (:meth:`ResultStore.claim`): in one
``BEGIN IMMEDIATE`` transaction it checks that the job is not done and that no live sweep holds
it, and writes a ``leases`` row (key, owner, host, pid, expiry). The owner renews its leases while
it runs (:class:`archbench.store.leases.Heartbeat`) and drops each one when it stores the job's
result; a lease whose owner died expires (at once when the owner was a process on this host that
no longer exists, after its time-to-live otherwise), so another sweep -- on this machine or on
another one sharing the store -- takes the job over. Several sweeps on one store thus run each
job once.

The file is created when the store is first used (opening a store writes nothing), so a command
that fails before it stores anything leaves no empty store behind. Database errors (a corrupt
page, a full disk, a read-only file) raise :class:`~archbench.errors.StoreError` with one line.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from archbench.config import HasConfig, RunConfig
from archbench.errors import ConfigError, StoreError
from archbench.results import Result, RunOutcome
from archbench.store.leases import LeaseOwner, pid_alive

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("archbench-results") / "results.db"
SCHEMA_VERSION = 2

#: columns of ``runs`` generated from its ``config`` JSON: (name, SQL type, JSON path)
CONFIG_COLUMNS = (
    ("arch", "TEXT", "$.arch"),
    ("init", "TEXT", "$.init"),
    ("seed", "INTEGER", "$.seed"),
    ("task", "TEXT", "$.task"),
    ("image", "TEXT", "$.image"),
    ("size", "INTEGER", "$.size"),
    ("iterations", "INTEGER", "$.iterations"),
    ("device", "TEXT", "$.device"),
    ("judge", "TEXT", "$.judge"),
)

#: columns of the ``results_summary`` index: what reports read of a result without its trace
SUMMARY_COLUMNS = ("run_key", "layer", "position", "status", "final_loss", "device", "stalled")

_GENERATED = ",\n".join(f"    {n} {t} GENERATED ALWAYS AS (json_extract(config, '{p}')) VIRTUAL" for n, t, p in CONFIG_COLUMNS)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    config TEXT NOT NULL,
{_GENERATED},
    image_label TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    started REAL,
    finished REAL,
    seconds REAL,
    build_seconds REAL,
    host TEXT,
    versions TEXT NOT NULL,
    provenance TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS results (
    run_key TEXT NOT NULL,
    layer TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    final_loss REAL,
    iterations INTEGER,
    evaluations INTEGER,
    seconds REAL,
    device TEXT,
    loss_trace TEXT NOT NULL,
    paths TEXT NOT NULL,
    extra TEXT NOT NULL,
    stalled INTEGER,
    PRIMARY KEY (run_key, layer)
);
CREATE INDEX IF NOT EXISTS results_summary ON results({", ".join(SUMMARY_COLUMNS)});
CREATE TABLE IF NOT EXISTS scores (
    run_key TEXT NOT NULL,
    layer TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_key, layer, metric)
);
CREATE TABLE IF NOT EXISTS suite_runs (suite TEXT NOT NULL, run_key TEXT NOT NULL, PRIMARY KEY (suite, run_key));
CREATE TABLE IF NOT EXISTS suites (name TEXT PRIMARY KEY, reference TEXT, definition TEXT NOT NULL, updated REAL);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    acquired REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_owner ON leases(owner);
"""

#: what :meth:`ResultStore.claim` answers: the job is now ours; done already; attempted by another
#: sweep since this one looked (``attempted``); being run by another live sweep (``held``)
CLAIMED, DONE, ATTEMPTED, HELD = "claimed", "done", "attempted", "held"


_F = TypeVar("_F", bound=Callable[..., Any])


def store_error(path: object, exc: sqlite3.Error) -> StoreError:
    """One line for a database error of the store at ``path``."""
    text = str(exc).strip() or type(exc).__name__
    low = text.lower()
    where = str(path)
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return StoreError(
            f"results store {where!r} is damaged ({text}); restore it from a copy, or recover what is readable "
            f"with `sqlite3 {where} .recover | sqlite3 recovered.db` and use --store recovered.db"
        )
    if "disk is full" in low or "disk full" in low:
        return StoreError(f"cannot write results store {where!r}: the disk is full; free some space and run again "
                          "(stored results are kept)")
    if "readonly" in low or "read-only" in low:
        return StoreError(f"results store {where!r} is read-only ({text}); use a writable --store")
    if "locked" in low or "busy" in low:
        return StoreError(f"results store {where!r} stayed locked by another process for over a minute ({text})")
    if "unable to open" in low:
        return StoreError(f"cannot open results store {where!r}: {text}")
    return StoreError(f"results store {where!r}: {text}")


def _guarded(method: _F) -> _F:
    """Turn database errors raised by a store method into :class:`StoreError` (bugs, such as a
    wrong SQL statement or a constraint violation, keep their own exception)."""

    @functools.wraps(method)
    def wrapper(self: ResultStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path or ":memory:", exc) from None

    return wrapper  # type: ignore[return-value]


#: what :meth:`ResultStore.run_table` returns per run: (field, SQL expression)
RUN_TABLE = (
    ("rowid", "rowid"),
    ("key", "key"),
    ("arch", "arch"),
    ("init", "init"),
    ("seed", "seed"),
    ("task", "task"),
    ("options", "json_extract(config, '$.options')"),
    ("image", "image_label"),
    ("image_source", "image"),
    ("size", "size"),
    ("iterations", "iterations"),
    ("optimizer", "json_extract(config, '$.optimizer')"),
    ("history", "json_extract(config, '$.history')"),
    ("device", "device"),
    ("judge", "judge"),
    ("status", "status"),
    ("error", "error"),
    ("versions", "versions"),
)

#: columns of ``results`` in the order ``put`` writes them
RESULT_COLUMNS = (
    "run_key", "layer", "position", "status", "error", "final_loss", "iterations", "evaluations", "seconds",
    "device", "loss_trace", "paths", "extra", "stalled",
)
INSERT_RESULT = f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) VALUES ({', '.join('?' for _ in RESULT_COLUMNS)})"


def _set_wal(conn: sqlite3.Connection, patience: float = 60.0) -> None:
    """Put the database in WAL mode. Switching takes a lock SQLite does not wait for (no busy
    handler): when several processes open a new store at once, one of them gets "database is
    locked" at once, so try again for up to ``patience`` seconds. A read-only file keeps its mode."""
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "readonly" in text:
                return
            if "locked" not in text or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def flag(v: bool | None) -> int | None:
    """A flag as the store keeps it: 1, 0 or NULL."""
    return None if v is None else int(bool(v))


def finite(v: Any) -> float | None:
    """``v`` as a finite float, else None (what the store keeps of NaN and infinities)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def statements(script: str) -> list[str]:
    """The SQL statements of ``script`` (split at semicolons)."""
    return [s.strip() for s in script.split(";") if s.strip()]


@dataclass
class StoredRun(HasConfig):
    """One row of ``runs``, read back."""

    config: RunConfig
    status: str
    error: str | None
    attempts: int = 1
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    build_seconds: float | None = None
    host: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredResult(HasConfig):
    """One (run, layer) row read back from the store, with its run's configuration."""

    config: RunConfig
    layer: str
    status: str
    error: str | None
    metrics: dict[str, float | None]
    final_loss: float | None
    loss_trace: list[float] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    iterations: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    device: str = ""
    stalled: bool | None = None


class ResultStore:
    """A SQLite results store (see the module docstring for schema and guarantees).

    Args:
        path: database file; its folder is created. ``":memory:"`` for a throwaway store.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        if self.path is not None and self.path.exists() and self.path.is_dir():
            raise ConfigError(f"store {str(self.path)!r} is a folder; give a database file such as {self.path / 'results.db'}")
        self._conn: sqlite3.Connection | None = None
        self._stalled_column = True  # set when the schema is opened

    @property
    def exists(self) -> bool:
        """Whether the store's file exists (an in-memory store always does)."""
        return self.path is None or self.path.exists()

    @property
    def conn(self) -> sqlite3.Connection:
        """The database connection, opened (and the file and schema created) on first use."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        name = str(self.path) if self.path is not None else ":memory:"
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                from archbench.fileio import os_reason

                raise StoreError(f"cannot create results store {name!r}: {os_reason(exc)}") from None
        conn = None
        try:
            conn = sqlite3.connect(name, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 60000")
            if self.path is not None:
                _set_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
            self._open_schema(name)
        except sqlite3.DatabaseError as exc:
            self._conn = None
            if conn is not None:
                conn.close()
            if "not a database" in str(exc):
                raise StoreError(f"{name!r} is not an archbench results store (not an SQLite database)") from None
            raise store_error(name, exc) from None
        except BaseException:
            self._conn = None
            if conn is not None:
                conn.close()
            raise
        return conn

    def _open_schema(self, name: str) -> None:
        version = self._schema_version()
        if version == 1:
            from archbench.store.migrate import migrate_v1

            migrate_v1(self)
            version = self._schema_version()
        if version not in (None, SCHEMA_VERSION):
            raise ConfigError(f"store {name} has schema version {version}; this archbench reads {SCHEMA_VERSION}")
        have = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
        self._stalled_column = "stalled" in {row[1] for row in self.conn.execute("PRAGMA table_info(results)")}
        if (version == SCHEMA_VERSION and {"runs", "results", "scores", "suite_runs", "suites", "leases"} <= have
                and self._stalled_column and self._summary_index_current()):
            return  # nothing to create: a read-only store can be read
        try:
            with self.transaction() as c:
                # a store written by a pre-release schema 2 (before the ``stalled`` column): add it
                # first, the summary index holds it
                columns = {row[1] for row in c.execute("PRAGMA table_info(results)")}
                if columns and "stalled" not in columns:
                    c.execute("ALTER TABLE results ADD COLUMN stalled INTEGER")
                for statement in statements(SCHEMA):
                    c.execute(statement)
                c.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                # an index made before it held ``stalled``: rebuilt, so that reports stay index-only
                if not self._summary_index_current():
                    c.execute("DROP INDEX IF EXISTS results_summary")
                    c.execute(f"CREATE INDEX results_summary ON results({', '.join(SUMMARY_COLUMNS)})")
            self._stalled_column = True
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc).lower() or "runs" not in have:
                raise
            log.debug("store %s is read-only: not adding the tables it lacks (%s)", name, exc)

    def _summary_index_current(self) -> bool:
        """Whether ``results_summary`` holds :data:`SUMMARY_COLUMNS` (older stores lack ``stalled``)."""
        return tuple(r[2] for r in self.conn.execute("PRAGMA index_info(results_summary)")) == SUMMARY_COLUMNS

    def _schema_version(self) -> int | None:
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            return None
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return int(row[0]) if row else None

    @property
    def root(self) -> Path:
        """Folder the store lives in (relative output paths are relative to it)."""
        return self.path.resolve().parent if self.path is not None else Path.cwd()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # the error may have ended the transaction already
                pass
            raise
        conn.execute("COMMIT")

    # ------------------------------------------------------------------------------------------
    # writing

    @_guarded
    def record_suite(self, name: str, reference: str | None, definition: dict[str, Any]) -> None:
        """Remember a suite's definition and reference architecture."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO suites VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "reference = excluded.reference, definition = excluded.definition, updated = excluded.updated",
                (name, reference, json.dumps(definition, sort_keys=True, default=str), time.time()),
            )

    @_guarded
    def add_to_suite(self, suite: str, keys: Iterable[str]) -> None:
        """Mark runs as members of ``suite`` (a run may belong to several suites)."""
        with self.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO suite_runs VALUES (?, ?)", [(suite, k) for k in keys])

    @_guarded
    def suite_definition(self, name: str) -> dict[str, Any] | None:
        """The definition recorded for suite ``name`` (None when there is none)."""
        if not self.exists:
            return None
        row = self.conn.execute("SELECT definition FROM suites WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except (TypeError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @_guarded
    def forget_suite(self, name: str) -> int:
        """Drop the membership of every run in suite ``name`` and its definition (the runs and
        their results stay: other suites may share them); returns the memberships dropped."""
        with self.transaction() as c:
            n = c.execute("DELETE FROM suite_runs WHERE suite = ?", (name,)).rowcount
            c.execute("DELETE FROM suites WHERE name = ?", (name,))
        return n

    # ------------------------------------------------------------------------------------------
    # leases: which sweep runs which job

    @_guarded
    def claim(self, key: str, owner: LeaseOwner, ttl: float, seen_attempts: int = 0) -> str:
        """Claim the job ``key`` for ``owner`` for ``ttl`` seconds, in one transaction.

        Returns :data:`CLAIMED` (now ``owner``'s: run it; a claim ``owner`` already holds is
        renewed), :data:`DONE` (stored as done), :data:`ATTEMPTED` (stored by another sweep since
        this one saw ``seen_attempts`` attempts: not run again) or :data:`HELD` (another sweep
        holds a live lease on it). A lease whose owner died -- expired, or held by a process of
        this host that no longer exists -- is taken over.
        """
        now = time.time()
        with self.transaction() as c:
            row = c.execute("SELECT status, attempts FROM runs WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] == "done":
                return DONE
            if row is not None and int(row[1] or 0) > seen_attempts:
                return ATTEMPTED
            lease = c.execute("SELECT owner, host, pid, expires FROM leases WHERE key = ?", (key,)).fetchone()
            if lease is not None and lease[0] != owner.token and not self._lease_dead(lease, now):
                return HELD
            c.execute(
                "INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, "
                "host = excluded.host, pid = excluded.pid, acquired = excluded.acquired, expires = excluded.expires",
                (key, owner.token, owner.host, owner.pid, now, now + ttl),
            )
        return CLAIMED

    @staticmethod
    def _lease_dead(lease: tuple, now: float) -> bool:
        _owner, host, pid, expires = lease
        if expires is None or float(expires) <= now:
            return True
        return host == socket.gethostname() and not pid_alive(int(pid))

    @_guarded
    def renew(self, owner: LeaseOwner, ttl: float) -> int:
        """Push the expiry of every lease ``owner`` holds to now + ``ttl``; returns how many."""
        with self.transaction() as c:
            return c.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + ttl, owner.token)).rowcount

    @_guarded
    def release(self, owner: LeaseOwner, keys: Iterable[str] | None = None) -> int:
        """Drop ``owner``'s leases (all, or those among ``keys``); returns how many."""
        with self.transaction() as c:
            if keys is None:
                return c.execute("DELETE FROM leases WHERE owner = ?", (owner.token,)).rowcount
            return sum(c.execute("DELETE FROM leases WHERE owner = ? AND key = ?", (owner.token, k)).rowcount for k in keys)

    @_guarded
    def leases(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Live leases (all, or those among ``keys``): key -> owner, host, pid, acquired, expires."""
        if not self.exists:
            return {}
        now = time.time()
        rows = self.conn.execute("SELECT key, owner, host, pid, acquired, expires FROM leases").fetchall()
        wanted = set(keys) if keys is not None else None
        return {
            r[0]: {"owner": r[1], "host": r[2], "pid": r[3], "acquired": r[4], "expires": r[5]}
            for r in rows
            if (wanted is None or r[0] in wanted) and not self._lease_dead((r[1], r[2], r[3], r[5]), now)
        }

    # ------------------------------------------------------------------------------------------

    @_guarded
    def put(self, outcome: RunOutcome, suite: str | None = None, owner: LeaseOwner | None = None) -> bool:
        """Store one :class:`~archbench.results.RunOutcome` in its own transaction (and, with
        ``suite``, mark it a member of that suite); ``owner``'s lease on the run is dropped in the
        same transaction.

        Returns True when written, False when the run was already stored as done (by this or a
        concurrent sweep); a done row is never overwritten.
        """
        config = outcome.config
        results = outcome.results
        row = {
            "key": config.key,
            "config": json.dumps(config.to_json(), sort_keys=True),
            "image_label": config.image_label,
            "status": outcome.status,
            "error": outcome.error,
            "started": outcome.started,
            "finished": outcome.finished,
            "seconds": outcome.seconds,
            "build_seconds": outcome.build_seconds,
            "host": f"{socket.gethostname()} ({platform.machine()}, pid {os.getpid()})",
            "versions": json.dumps(results[0].versions if results else _versions(), sort_keys=True),
            "provenance": json.dumps(outcome.provenance, sort_keys=True, default=str),
        }
        cols = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "key")
        sql = (
            f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
            f"ON CONFLICT(key) DO UPDATE SET {updates}, attempts = runs.attempts + 1 WHERE runs.status != 'done'"
        )
        with self.transaction() as c:
            written = c.execute(sql, [row[k] for k in cols]).rowcount > 0
            if written:
                c.execute("DELETE FROM results WHERE run_key = ?", (config.key,))
                c.execute("DELETE FROM scores WHERE run_key = ?", (config.key,))
                for position, r in enumerate(results):
                    c.execute(
                        INSERT_RESULT,
                        (
                            config.key, r.layer, position, r.status, r.error, finite(r.final_loss), r.iterations,
                            r.evaluations, r.seconds, r.device, json.dumps([finite(v) for v in r.loss_trace]),
                            json.dumps(self._relpaths(r.paths)), json.dumps(r.extra, default=str), flag(r.stalled),
                        ),
                    )
                    c.executemany(
                        "INSERT INTO scores VALUES (?, ?, ?, ?)",
                        [(config.key, r.layer, m, finite(v)) for m, v in r.metrics.items()],
                    )
            if suite is not None:
                c.execute("INSERT OR IGNORE INTO suite_runs VALUES (?, ?)", (suite, config.key))
            if owner is not None:
                c.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (config.key, owner.token))
        return written

    def _relpaths(self, paths: dict[str, str]) -> dict[str, str]:
        out = {}
        root = self.root
        for kind, p in paths.items():
            pp = Path(p).resolve()
            try:
                out[kind] = str(pp.relative_to(root))
            except ValueError:
                out[kind] = str(pp)
        return out

    def resolve_path(self, path: str) -> Path:
        """An output-image path as stored, made absolute (relative paths are under :attr:`root`)."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    # ------------------------------------------------------------------------------------------
    # reading

    @_guarded
    def statuses(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """key -> status of stored runs (all, or those among ``keys``)."""
        return {k: v[0] for k, v in self.run_states(keys).items()}

    @_guarded
    def run_states(self, keys: Iterable[str] | None = None) -> dict[str, tuple[str, int]]:
        """key -> (status, attempts) of stored runs (all, or those among ``keys``)."""
        if not self.exists:
            return {}
        if keys is None:
            return {k: (s, int(a or 0)) for k, s, a in self.conn.execute("SELECT key, status, attempts FROM runs")}
        keys = list(keys)
        out: dict[str, tuple[str, int]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, status, attempts FROM runs WHERE key IN ({','.join('?' for _ in chunk)})"
            out.update({k: (s, int(a or 0)) for k, s, a in self.conn.execute(q, chunk)})
        return out

    @_guarded
    def suite_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT suite FROM suite_runs ORDER BY suite")]

    @_guarded
    def suite_reference(self, name: str) -> str | None:
        row = self.conn.execute("SELECT reference FROM suites WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _run_filter(self, suite: str | None, keys: Iterable[str] | None, column: str = "key") -> tuple[str, list[Any]]:
        where, args = [], []
        if suite is not None:
            where.append(f"{column} IN (SELECT run_key FROM suite_runs WHERE suite = ?)")
            args.append(suite)
        if keys is not None:
            keys = list(keys)
            if len(keys) > 500:  # beyond SQLite's bound-parameter limits: a temporary table
                self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_keys (key TEXT PRIMARY KEY)")
                self.conn.execute("DELETE FROM wanted_keys")
                self.conn.executemany("INSERT OR IGNORE INTO wanted_keys VALUES (?)", [(k,) for k in keys])
                where.append(f"{column} IN (SELECT key FROM wanted_keys)")
            else:
                where.append(f"{column} IN ({','.join('?' for _ in keys) or 'NULL'})")
                args.extend(keys)
        return (" WHERE " + " AND ".join(where)) if where else "", args

    @_guarded
    def runs(self, suite: str | None = None, keys: Iterable[str] | None = None, status: str | None = None) -> list[StoredRun]:
        """Stored runs (optionally of one suite and/or among ``keys``, and of one ``status``), in
        insertion order."""
        where, args = self._run_filter(suite, keys)
        if status is not None:
            where += (" AND " if where else " WHERE ") + "status = ?"
            args = [*args, status]
        rows = self.conn.execute(
            "SELECT config, status, error, attempts, started, finished, seconds, build_seconds, host, versions, "
            f"provenance FROM runs{where} ORDER BY rowid",
            args,
        )
        return [
            StoredRun(RunConfig.from_json(json.loads(r[0])), *r[1:9], json.loads(r[9] or "{}"), json.loads(r[10] or "{}"))
            for r in rows
        ]

    @_guarded
    def results(
        self,
        suite: str | None = None,
        keys: Iterable[str] | None = None,
        include_failed: bool = False,
        traces: bool = True,
    ) -> list[StoredResult]:
        """Per-layer results with their run's configuration (done runs only unless
        ``include_failed``), in insertion order; ``traces=False`` leaves loss traces out."""
        where, args = self._run_filter(suite, keys, "runs.key")
        if not include_failed:
            where += (" AND " if where else " WHERE ") + "runs.status = 'done'"
        trace_col = "results.loss_trace" if traces else "'[]'"
        opened = self.conn is not None  # opening checks whether ``stalled`` exists
        stalled_col = "results.stalled" if opened and self._stalled_column else "NULL"  # NULL: a read-only pre-release store
        q = (
            "SELECT runs.key, runs.config, results.layer, results.status, results.error, results.final_loss, "
            f"{trace_col}, results.paths, results.extra, results.iterations, results.evaluations, results.seconds, "
            f"results.device, {stalled_col} FROM runs JOIN results ON results.run_key = runs.key{where} "
            "ORDER BY runs.rowid, results.position"
        )
        scores: dict[tuple[str, str], dict[str, float | None]] = {}
        sq = f"SELECT scores.run_key, scores.layer, scores.metric, scores.value FROM scores JOIN runs ON runs.key = scores.run_key{where}"
        for key, layer, metric, value in self.conn.execute(sq, args):
            scores.setdefault((key, layer), {})[metric] = value
        configs: dict[str, RunConfig] = {}
        out: list[StoredResult] = []
        for r in self.conn.execute(q, args):
            config = configs.get(r[0])
            if config is None:
                config = configs[r[0]] = RunConfig.from_json(json.loads(r[1]))
            out.append(
                StoredResult(
                    config=config, layer=r[2], status=r[3], error=r[4],
                    metrics=scores.get((r[0], r[2]), {}), final_loss=r[5],
                    loss_trace=[v for v in json.loads(r[6]) if v is not None], paths=json.loads(r[7]),
                    extra=json.loads(r[8]), iterations=r[9] or 0, evaluations=r[10] or 0, seconds=r[11] or 0.0,
                    device=r[12] or "", stalled=None if r[13] is None else bool(r[13]),
                )
            )
        return out

    # -- tables for archbench.frame: plain rows, nothing parsed that the caller does not ask for --

    def run_table(
        self, suite: str | None = None, keys: Iterable[str] | None = None, include_failed: bool = False
    ) -> list[tuple]:
        """One tuple per run, in insertion order, with the fields of :data:`RUN_TABLE` (the
        identity of the run read from its configuration in SQL; no JSON parsed in Python)."""
        where, args = self._run_filter(suite, keys)
        if not include_failed:
            where += (" AND " if where else " WHERE ") + "status = 'done'"
        cols = ", ".join(expr for _, expr in RUN_TABLE)
        return self.conn.execute(f"SELECT {cols} FROM runs{where} ORDER BY rowid", args).fetchall()

    def suite_holds_every_run(self, suite: str) -> bool:
        """Whether every stored run is a member of ``suite`` (then filtering by it is a no-op)."""
        total = self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        members = self.conn.execute(
            "SELECT COUNT(*) FROM suite_runs JOIN runs ON runs.key = suite_runs.run_key WHERE suite_runs.suite = ?",
            (suite,)).fetchone()[0]
        return members == total

    def _done_filter(self, suite: str | None, keys: Iterable[str] | None, include_failed: bool) -> tuple[str, list[Any]]:
        where, args = self._run_filter(suite, keys, "runs.key")
        if not include_failed:
            where += (" AND " if where else " WHERE ") + "runs.status = 'done'"
        return where, args

    def score_table(
        self, suite: str | None = None, keys: Iterable[str] | None = None, include_failed: bool = False,
        chunk: int = 250_000,
    ) -> Iterator[list[tuple]]:
        """Chunks of ``(run rowid, layer, metric, value)`` tuples, one per stored score, of the runs
        :meth:`run_table` returns (scores of a run in layer, then metric order). Loss traces, image
        paths and provenance are never read."""
        where, args = self._done_filter(suite, keys, include_failed)
        cur = self.conn.execute(
            "SELECT runs.rowid, scores.layer, scores.metric, scores.value FROM runs "
            f"CROSS JOIN scores ON scores.run_key = runs.key{where}", args)
        while rows := cur.fetchmany(chunk):
            yield rows

    def result_table(
        self, suite: str | None = None, keys: Iterable[str] | None = None, include_failed: bool = False
    ) -> list[tuple]:
        """``(run rowid, layer, position, final loss, device, stalled)`` of every result of the runs
        :meth:`run_table` returns, read from the ``results_summary`` index (never from the rows
        that hold the traces). ``stalled`` is 1, 0 or None (not recorded; also for a read-only
        store written before the flag existed)."""
        conn = self.conn  # opening it learns whether the store has the column
        where, args = self._done_filter(suite, keys, include_failed)
        stalled = "results.stalled" if self._stalled_column else "NULL"
        return conn.execute(
            "SELECT runs.rowid, results.layer, results.position, results.final_loss, results.device, "
            f"{stalled} FROM runs "
            f"CROSS JOIN results INDEXED BY results_summary ON results.run_key = runs.key{where}", args).fetchall()

    def _result_column(self, column: str, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_results (key TEXT, layer TEXT)")
        self.conn.execute("DELETE FROM wanted_results")
        self.conn.executemany("INSERT INTO wanted_results VALUES (?, ?)", list(pairs))
        q = (f"SELECT results.run_key, results.layer, results.{column} FROM results JOIN wanted_results w "
             "ON results.run_key = w.key AND results.layer = w.layer")
        out = {(k, layer): json.loads(v) for k, layer, v in self.conn.execute(q)}
        self.conn.execute("DELETE FROM wanted_results")
        return out

    def loss_traces(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[float]]:
        """``{(run key, layer): loss trace}`` of the given results only (missing pairs are absent)."""
        return {k: [v for v in t if v is not None] for k, t in self._result_column("loss_trace", pairs).items()}

    def result_paths(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
        """``{(run key, layer): {image kind: path as stored}}`` of the given results only."""
        return self._result_column("paths", pairs)

    @_guarded
    def outcome(self, key: str) -> RunOutcome | None:
        """Everything stored of the run ``key`` as a :class:`~archbench.results.RunOutcome` (None if absent)."""
        runs = self.runs(keys=[key])
        if not runs:
            return None
        run = runs[0]
        results = [
            Result(
                config=r.config, layer=r.layer, final_loss=r.final_loss, metrics=r.metrics, iterations=r.iterations,
                evaluations=r.evaluations, seconds=r.seconds, device=r.device, status=r.status, error=r.error,
                loss_trace=r.loss_trace, extra=r.extra, paths={k: str(self.resolve_path(p)) for k, p in r.paths.items()},
                versions=run.versions, stalled=r.stalled,
            )
            for r in self.results(keys=[key], include_failed=True)
        ]
        return RunOutcome(run.config, run.status, run.error, results, run.started or 0.0, run.finished or 0.0,
                          run.seconds or 0.0, run.build_seconds or 0.0, run.provenance)

    @_guarded
    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0])


def _versions() -> dict[str, str]:
    from archbench.results import package_versions

    return package_versions()
