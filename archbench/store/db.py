"""The results store: an embedded SQLite database.

Default location ``archbench-results/results.db`` (``--store`` to choose). :class:`ResultStore`
is this module's connection handling plus one mixin per job: :mod:`~archbench.store.schema`
(tables, upgrades in place, shared helpers), :mod:`~archbench.store.writes` (storing runs and
suites), :mod:`~archbench.store.queries` (reading) and :mod:`~archbench.store.leases` (which
sweep runs which job); :mod:`~archbench.store.migrate` migrates schema-1 stores. Schema version
2, each fact in one place:

``runs`` -- one row per run (one :class:`~archbench.config.RunConfig`, one sweep job)::

    key TEXT PRIMARY KEY      the configuration's key (archbench.config.RunConfig.key)
    config TEXT               the resolved configuration (JSON; RunConfig.from_json reads it)
    arch, init, seed, task, image, size, iterations, optimizer, history, device, judge
                              generated (virtual) columns read from ``config``, for SQL queries:
                              one per scalar field of RunConfig (archbench.store.schema)
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

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archbench.errors import ConfigError, StoreError
from archbench.store.leases import ATTEMPTED, CLAIMED, DONE, HELD, StoreLeases
from archbench.store.queries import StoredResult, StoredRun, StoreQueries
from archbench.store.schema import (
    DEFAULT_STORE,
    INSERT_RESULT,
    RESULT_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    finite,
    flag,
    generated_column,
    missing_config_columns,
    schema_version,
    set_wal,
    statements,
    store_error,
    summary_index_current,
)
from archbench.store.writes import StoreWrites

log = logging.getLogger(__name__)

__all__ = [
    "ATTEMPTED", "CLAIMED", "DEFAULT_STORE", "DONE", "HELD", "INSERT_RESULT", "RESULT_COLUMNS", "SCHEMA",
    "SCHEMA_VERSION", "SUMMARY_COLUMNS", "ResultStore", "StoredResult", "StoredRun", "finite", "flag", "statements",
    "store_error",
]


class ResultStore(StoreWrites, StoreQueries, StoreLeases):
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
                set_wal(conn)
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
        """Create the schema of a new store, migrate a schema-1 store, and add to a schema-2 store
        what it lacks (generated columns of newer settings, the ``stalled`` column, the current
        summary index); a read-only store is left as it is."""
        version = schema_version(self.conn)
        if version == 1:
            from archbench.store.migrate import migrate_v1  # loads torch (metrics.gram): only when needed

            migrate_v1(self)
            version = schema_version(self.conn)
        if version not in (None, SCHEMA_VERSION):
            raise ConfigError(f"store {name} has schema version {version}; this archbench reads {SCHEMA_VERSION}")
        have = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
        self._stalled_column = "stalled" in {row[1] for row in self.conn.execute("PRAGMA table_info(results)")}
        if (version == SCHEMA_VERSION and {"runs", "results", "scores", "suite_runs", "suites", "leases"} <= have
                and self._stalled_column and summary_index_current(self.conn)
                and not missing_config_columns(self.conn)):
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
                # a setting added to RunConfig since the store was written: its generated column
                for column in missing_config_columns(c):
                    c.execute(f"ALTER TABLE runs ADD COLUMN {generated_column(*column)}")
                # an index made before it held ``stalled``: rebuilt, so that reports stay index-only
                if not summary_index_current(self.conn):
                    c.execute("DROP INDEX IF EXISTS results_summary")
                    c.execute(f"CREATE INDEX results_summary ON results({', '.join(SUMMARY_COLUMNS)})")
            self._stalled_column = True
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc).lower() or "runs" not in have:
                raise
            log.debug("store %s is read-only: not adding the tables it lacks (%s)", name, exc)

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

    def resolve_path(self, path: str) -> Path:
        """An output-image path as stored, made absolute (relative paths are under :attr:`root`)."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p
