"""The store's schema (version 2), its upgrades in place, and the helpers every part of the store
shares (database errors as one line, flags and finite numbers as stored).

Tables (see :mod:`archbench.store.db` for the guarantees)::

    runs        one row per run: key, config (the RunConfig JSON), one generated column per scalar
                field of RunConfig (derived from dataclasses.fields: adding a setting adds its
                column), image_label, status, error, times, host, versions, provenance, attempts
    results     one row per (run, layer): status, error, final loss, iterations (run), evaluations,
                seconds, device, loss trace, paths, extra, stalled
    scores      one row per (run, layer, metric)
    suite_runs, suites, leases, meta

Opening a store brings it up to date without changing what it holds: a generated column for a
setting added since the store was written, the ``stalled`` column and the ``results_summary``
index of a pre-release schema 2 (a read-only store is read as it is; queries read settings from
the configuration's JSON, so they never need the generated columns).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from archbench.config import JSON, LABEL, RunConfig, sql_type
from archbench.errors import StoreError

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("archbench-results") / "results.db"
SCHEMA_VERSION = 2

#: columns of the ``results_summary`` index: what reports read of a result without its trace
SUMMARY_COLUMNS = ("run_key", "layer", "position", "status", "final_loss", "device", "stalled")


def config_columns() -> list[tuple[str, str, str]]:
    """Generated columns of ``runs``: ``(name, SQL type, JSON path)`` of every scalar field of
    :class:`~archbench.config.RunConfig`, in field order."""
    return [(f.name, t, f"$.{f.name}") for f in fields(RunConfig) if (t := sql_type(f)) is not None]


def generated_column(name: str, sql: str, path: str) -> str:
    return f"{name} {sql} GENERATED ALWAYS AS (json_extract(config, '{path}')) VIRTUAL"


def _generated() -> str:
    return ",\n".join(f"    {generated_column(*c)}" for c in config_columns())


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    config TEXT NOT NULL,
{_generated()},
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


def run_table_columns() -> list[tuple[str, str]]:
    """What :meth:`~archbench.store.ResultStore.run_table` returns per run: ``(field, SQL
    expression)``: ``rowid``, ``key``, the columns of every :class:`~archbench.config.RunConfig`
    field the results table shows (by its ``frame`` metadata, read from the configuration's JSON),
    ``status``, ``error`` and ``versions``."""
    out = [("rowid", "rowid"), ("key", "key")]
    for f in fields(RunConfig):
        how = f.metadata.get("frame", "value")
        if how is None:
            continue
        value = f"json_extract(config, '$.{f.name}')"
        if how == LABEL:
            out += [(f.name, f"{f.name}_label"), (f"{f.name}_source", value)]
        else:
            out.append((f.name, value if how == JSON or sql_type(f) else f"json(json_extract(config, '$.{f.name}'))"))
    return out + [("status", "status"), ("error", "error"), ("versions", "versions")]


#: columns of ``results`` in the order ``put`` writes them
RESULT_COLUMNS = (
    "run_key", "layer", "position", "status", "error", "final_loss", "iterations", "evaluations", "seconds",
    "device", "loss_trace", "paths", "extra", "stalled",
)
INSERT_RESULT = f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) VALUES ({', '.join('?' for _ in RESULT_COLUMNS)})"



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


def guarded(method: _F) -> _F:
    """Turn database errors raised by a store method into :class:`StoreError` (bugs, such as a
    wrong SQL statement or a constraint violation, keep their own exception)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path or ":memory:", exc) from None

    return wrapper  # type: ignore[return-value]


def set_wal(conn: sqlite3.Connection, patience: float = 60.0) -> None:
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



def missing_config_columns(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """The generated columns of :func:`config_columns` that the ``runs`` table lacks (settings
    added after the store was written)."""
    have = {row[1] for row in conn.execute("PRAGMA table_xinfo(runs)")}
    return [c for c in config_columns() if have and c[0] not in have]


def summary_index_current(conn: sqlite3.Connection) -> bool:
    """Whether ``results_summary`` holds :data:`SUMMARY_COLUMNS` (older stores lack ``stalled``)."""
    return tuple(r[2] for r in conn.execute("PRAGMA index_info(results_summary)")) == SUMMARY_COLUMNS


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The version a store records (None for a new, empty one)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return int(row[0]) if row else None
