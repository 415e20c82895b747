"""The results store: an embedded SQLite database.

Default location ``archbench-results/results.db`` (``--store`` to choose). Schema (version 1):

``jobs`` -- one row per job::

    key TEXT PRIMARY KEY      hash of the resolved configuration (archbench.sweep.jobs.Job.key)
    suite TEXT                suite that first stored it (membership: table suite_jobs)
    arch, init, seed, task    what ran
    layers TEXT               JSON list of the layers the job produced
    image, image_source       image label and source (built-in name or path)
    size, iterations          settings summary; settings TEXT: JSON of the full configuration
    metrics TEXT              JSON {layer: {metric: value}}
    final_loss TEXT           JSON {layer: loss}
    loss_trace TEXT           JSON {layer: [loss per iteration]}
    paths TEXT                JSON {layer: {kind: path}} of the output images
    status TEXT               'done' or 'failed'; error TEXT: the reason of a failure
    started, finished REAL    UNIX times; seconds REAL: job wall time; build_seconds REAL
    device TEXT, host TEXT    where it ran; versions TEXT: JSON of package versions
    attempts INTEGER          how many times it was stored (failed jobs are retried)

``results`` -- one row per (job, layer) with the same per-layer fields (for SQL queries);
``scores`` -- one row per (job, layer, metric) with the value; ``suite_jobs`` -- (suite, key);
``suites`` -- each suite's resolved definition (JSON) and reference; ``meta`` -- schema version.

Durability and concurrency: WAL journal, 60 s busy timeout, and every job written in its own
``BEGIN IMMEDIATE`` transaction, so a killed sweep (Ctrl-C, ``kill -9``) loses only the jobs that
were running and several sweeps may write to one store at once. A ``done`` row is never replaced
(``INSERT ... ON CONFLICT(key) DO UPDATE ... WHERE status != 'done'``): the first finished result
of a job wins, and a failed row is replaced by a later attempt.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("archbench-results") / "results.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    arch TEXT NOT NULL,
    init TEXT NOT NULL,
    seed INTEGER NOT NULL,
    task TEXT NOT NULL,
    layers TEXT NOT NULL,
    image TEXT NOT NULL,
    image_source TEXT NOT NULL,
    size INTEGER NOT NULL,
    iterations INTEGER NOT NULL,
    settings TEXT NOT NULL,
    metrics TEXT NOT NULL,
    final_loss TEXT NOT NULL,
    loss_trace TEXT NOT NULL,
    paths TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    started REAL,
    finished REAL,
    seconds REAL,
    build_seconds REAL,
    device TEXT,
    host TEXT,
    versions TEXT,
    attempts INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS results (
    job_key TEXT NOT NULL,
    layer TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    final_loss REAL,
    iterations INTEGER,
    evaluations INTEGER,
    seconds REAL,
    metrics TEXT NOT NULL,
    loss_trace TEXT NOT NULL,
    paths TEXT NOT NULL,
    extra TEXT NOT NULL,
    PRIMARY KEY (job_key, layer)
);
CREATE TABLE IF NOT EXISTS scores (
    job_key TEXT NOT NULL,
    layer TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (job_key, layer, metric)
);
CREATE TABLE IF NOT EXISTS suite_jobs (suite TEXT NOT NULL, job_key TEXT NOT NULL, PRIMARY KEY (suite, job_key));
CREATE TABLE IF NOT EXISTS suites (name TEXT PRIMARY KEY, reference TEXT, definition TEXT NOT NULL, updated REAL);
"""


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


@dataclass
class StoredResult:
    """One (job, layer) row read back from the store, with its job's identity."""

    key: str
    suite: str
    arch: str
    init: str
    seed: int
    task: str
    layer: str
    image: str
    status: str
    error: str | None
    metrics: dict[str, float | None]
    final_loss: float | None
    loss_trace: list[float]
    paths: dict[str, str]
    size: int = 0
    iterations: int = 0
    device: str = ""
    seconds: float = 0.0


@dataclass
class StoredJob:
    """One row of ``jobs`` (the per-layer fields as dicts keyed by layer)."""

    key: str
    suite: str
    arch: str
    init: str
    seed: int
    task: str
    image: str
    status: str
    error: str | None
    layers: list[str] = field(default_factory=list)
    attempts: int = 1
    seconds: float | None = None
    device: str | None = None


class ResultStore:
    """A SQLite results store (see the module docstring for schema and guarantees).

    Args:
        path: database file; its folder is created. ``":memory:"`` for a throwaway store.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        if self.path is not None:
            if self.path.exists() and self.path.is_dir():
                raise ConfigError(f"store {str(self.path)!r} is a folder; give a database file such as {self.path / 'results.db'}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 60000")
            if self.path is not None:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
            with self.transaction():
                for statement in _statements(_SCHEMA):
                    self.conn.execute(statement)
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if row is None:
                    self.conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) != SCHEMA_VERSION:
                    raise ConfigError(f"store {path} has schema version {row[0]}; this archbench reads {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open results store {str(path)!r}: {exc}") from None

    @property
    def root(self) -> Path:
        """Folder the store lives in (relative output paths are relative to it)."""
        return self.path.resolve().parent if self.path is not None else Path.cwd()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------------------------------
    # writing

    def record_suite(self, name: str, reference: str | None, definition: dict[str, Any]) -> None:
        """Remember a suite's definition and reference architecture."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO suites VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "reference = excluded.reference, definition = excluded.definition, updated = excluded.updated",
                (name, reference, json.dumps(definition, sort_keys=True, default=str), time.time()),
            )

    def add_to_suite(self, suite: str, keys: Iterable[str]) -> None:
        """Mark jobs as members of ``suite`` (a job may belong to several suites)."""
        with self.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO suite_jobs VALUES (?, ?)", [(suite, k) for k in keys])

    def put(self, outcome: Any) -> bool:
        """Store one :class:`~archbench.sweep.executor.JobOutcome` in its own transaction.

        Returns True when written, False when the job was already stored as done (by this or a
        concurrent sweep); a done row is never overwritten.
        """
        job = outcome.job
        results = outcome.results
        rel = self._relpaths
        metrics = {r.layer: {m: _finite(v) for m, v in r.metrics.items()} for r in results}
        row = {
            "key": job.key,
            "suite": job.suite,
            "arch": job.arch,
            "init": job.init,
            "seed": job.seed,
            "task": job.task,
            "layers": json.dumps([r.layer for r in results]),
            "image": job.image_label,
            "image_source": job.image,
            "size": job.size,
            "iterations": job.iterations,
            "settings": json.dumps(job.config(), sort_keys=True, default=str),
            "metrics": json.dumps(metrics, sort_keys=True),
            "final_loss": json.dumps({r.layer: _finite(r.final_loss) for r in results}),
            "loss_trace": json.dumps({r.layer: [_finite(v) for v in r.loss_trace] for r in results}),
            "paths": json.dumps({r.layer: rel(r.paths) for r in results}),
            "status": outcome.status,
            "error": outcome.error,
            "started": outcome.started,
            "finished": outcome.finished,
            "seconds": outcome.seconds,
            "build_seconds": outcome.build_seconds,
            "device": job.device,
            "host": f"{socket.gethostname()} ({platform.machine()}, pid {os.getpid()})",
            "versions": json.dumps(results[0].versions if results else _versions(), sort_keys=True),
        }
        cols = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("key", "suite"))
        sql = (
            f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
            f"ON CONFLICT(key) DO UPDATE SET {updates}, attempts = jobs.attempts + 1 WHERE jobs.status != 'done'"
        )
        with self.transaction() as c:
            cur = c.execute(sql, [row[k] for k in cols])
            written = cur.rowcount > 0
            if written:
                c.execute("DELETE FROM results WHERE job_key = ?", (job.key,))
                c.execute("DELETE FROM scores WHERE job_key = ?", (job.key,))
                for r in results:
                    c.execute(
                        "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            job.key, r.layer, r.status, r.error, _finite(r.final_loss), r.iterations, r.evaluations,
                            r.seconds, json.dumps(metrics[r.layer]), json.dumps([_finite(v) for v in r.loss_trace]),
                            json.dumps(rel(r.paths)), json.dumps(r.extra, default=str),
                        ),
                    )
                    c.executemany(
                        "INSERT INTO scores VALUES (?, ?, ?, ?)",
                        [(job.key, r.layer, m, v) for m, v in metrics[r.layer].items()],
                    )
            c.execute("INSERT OR IGNORE INTO suite_jobs VALUES (?, ?)", (job.suite, job.key))
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

    def statuses(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """key -> status of stored jobs (all, or those among ``keys``)."""
        if keys is None:
            return dict(self.conn.execute("SELECT key, status FROM jobs"))
        keys = list(keys)
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, status FROM jobs WHERE key IN ({','.join('?' for _ in chunk)})"
            out.update(dict(self.conn.execute(q, chunk)))
        return out

    def suite_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT suite FROM suite_jobs ORDER BY suite")]

    def suite_reference(self, name: str) -> str | None:
        row = self.conn.execute("SELECT reference FROM suites WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def suite_keys(self, name: str) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT job_key FROM suite_jobs WHERE suite = ?", (name,))}

    def _job_filter(self, suite: str | None, keys: Iterable[str] | None) -> tuple[str, list[Any]]:
        where, args = [], []
        if suite is not None:
            where.append("key IN (SELECT job_key FROM suite_jobs WHERE suite = ?)")
            args.append(suite)
        if keys is not None:
            keys = list(keys)
            where.append(f"key IN ({','.join('?' for _ in keys) or 'NULL'})")
            args.extend(keys)
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def jobs(self, suite: str | None = None, keys: Iterable[str] | None = None) -> list[StoredJob]:
        """Stored jobs (optionally of one suite and/or among ``keys``), in insertion order."""
        where, args = self._job_filter(suite, keys)
        rows = self.conn.execute(
            "SELECT key, suite, arch, init, seed, task, image, status, error, layers, attempts, seconds, device "
            f"FROM jobs{where} ORDER BY rowid",
            args,
        )
        return [
            StoredJob(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]), r[10], r[11], r[12])
            for r in rows
        ]

    def results(
        self, suite: str | None = None, keys: Iterable[str] | None = None, include_failed: bool = False
    ) -> list[StoredResult]:
        """Per-layer results joined with their job (done jobs only unless ``include_failed``)."""
        where, args = self._job_filter(suite, keys)
        if not include_failed:
            where += (" AND " if where else " WHERE ") + "status = 'done'"
        q = (
            "SELECT key, suite, arch, init, seed, task, image, status, error, metrics, final_loss, loss_trace, "
            f"paths, layers, size, iterations, device, seconds FROM jobs{where} ORDER BY rowid"
        )
        out: list[StoredResult] = []
        for r in self.conn.execute(q, args):
            metrics, losses, traces, paths = (json.loads(r[i]) for i in (9, 10, 11, 12))
            for layer in json.loads(r[13]):
                out.append(
                    StoredResult(
                        key=r[0], suite=r[1], arch=r[2], init=r[3], seed=r[4], task=r[5], layer=layer, image=r[6],
                        status=r[7], error=r[8], metrics=metrics.get(layer, {}), final_loss=losses.get(layer),
                        loss_trace=[v for v in traces.get(layer, []) if v is not None], paths=paths.get(layer, {}),
                        size=r[14], iterations=r[15], device=r[16] or "", seconds=r[17] or 0.0,
                    )
                )
        return out

    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0])


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _versions() -> dict[str, str]:
    from archbench.results import package_versions

    return package_versions()
