"""Writing to the results store: one run per transaction, suites' definitions and memberships
(a mixin of :class:`archbench.store.ResultStore`; see :mod:`archbench.store.db` for the guarantees)."""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from archbench.results import RunOutcome, package_versions
from archbench.store.leases import LeaseOwner
from archbench.store.schema import INSERT_RESULT, finite, flag, guarded


class StoreWrites:
    """What writes to a store (uses the store's ``conn``, ``transaction`` and ``root``)."""

    @guarded
    def record_suite(self, name: str, reference: str | None, definition: dict[str, Any]) -> None:
        """Remember a suite's definition and reference architecture."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO suites VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "reference = excluded.reference, definition = excluded.definition, updated = excluded.updated",
                (name, reference, json.dumps(definition, sort_keys=True, default=str), time.time()),
            )

    @guarded
    def add_to_suite(self, suite: str, keys: Iterable[str]) -> None:
        """Mark runs as members of ``suite`` (a run may belong to several suites)."""
        with self.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO suite_runs VALUES (?, ?)", [(suite, k) for k in keys])

    @guarded
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

    @guarded
    def forget_suite(self, name: str) -> int:
        """Drop the membership of every run in suite ``name`` and its definition (the runs and
        their results stay: other suites may share them); returns the memberships dropped."""
        with self.transaction() as c:
            n = c.execute("DELETE FROM suite_runs WHERE suite = ?", (name,)).rowcount
            c.execute("DELETE FROM suites WHERE name = ?", (name,))
        return n

    @guarded
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
            "versions": json.dumps(results[0].versions if results else package_versions(), sort_keys=True),
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
                            config.key, r.layer, position, r.status, r.error, finite(r.final_loss), r.iterations_run,
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
