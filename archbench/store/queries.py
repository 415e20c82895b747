"""Reading the results store: runs, per-layer results, the plain tables :mod:`archbench.frame`
builds its DataFrame from, and single runs' outcomes (a mixin of
:class:`archbench.store.ResultStore`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from archbench.config import HasConfig, RunConfig
from archbench.results import Result, RunOutcome
from archbench.store.schema import guarded, run_table_columns


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
    iterations_run: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    device: str = ""
    stalled: bool | None = None


class StoreQueries:
    """What reads a store (uses the store's ``conn``, ``exists`` and ``resolve_path``)."""

    @guarded
    def statuses(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """key -> status of stored runs (all, or those among ``keys``)."""
        return {k: v[0] for k, v in self.run_states(keys).items()}

    @guarded
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

    @guarded
    def suite_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT suite FROM suite_runs ORDER BY suite")]

    @guarded
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

    @guarded
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

    @guarded
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
                    extra=json.loads(r[8]), iterations_run=r[9] or 0, evaluations=r[10] or 0, seconds=r[11] or 0.0,
                    device=r[12] or "", stalled=None if r[13] is None else bool(r[13]),
                )
            )
        return out

    # -- tables for archbench.frame: plain rows, nothing parsed that the caller does not ask for --

    def run_table(
        self, suite: str | None = None, keys: Iterable[str] | None = None, include_failed: bool = False
    ) -> list[tuple]:
        """One tuple per run, in insertion order, with the fields of :func:`~archbench.store.schema.run_table_columns` (the
        identity of the run read from its configuration in SQL; no JSON parsed in Python)."""
        where, args = self._run_filter(suite, keys)
        if not include_failed:
            where += (" AND " if where else " WHERE ") + "status = 'done'"
        cols = ", ".join(expr for _, expr in run_table_columns())
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

    @guarded
    def outcome(self, key: str) -> RunOutcome | None:
        """Everything stored of the run ``key`` as a :class:`~archbench.results.RunOutcome` (None if absent)."""
        runs = self.runs(keys=[key])
        if not runs:
            return None
        run = runs[0]
        results = [
            Result(
                config=r.config, layer=r.layer, final_loss=r.final_loss, metrics=r.metrics, iterations_run=r.iterations_run,
                evaluations=r.evaluations, seconds=r.seconds, device=r.device, status=r.status, error=r.error,
                loss_trace=r.loss_trace, extra=r.extra, paths={k: str(self.resolve_path(p)) for k, p in r.paths.items()},
                versions=run.versions, stalled=r.stalled,
            )
            for r in self.results(keys=[key], include_failed=True)
        ]
        return RunOutcome(run.config, run.status, run.error, results, run.started or 0.0, run.finished or 0.0,
                          run.seconds or 0.0, run.build_seconds or 0.0, run.provenance)

    @guarded
    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0])
