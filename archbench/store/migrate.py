"""In-place migration of a schema-1 results store (archbench before run configurations) to schema 2.

Schema 1 kept a ``jobs`` table whose rows carried the per-layer metrics, losses, traces and paths
as JSON columns besides a ``results`` and a ``scores`` table with the same numbers, and a key that
did not record the ``gram`` metric's judge. The migration, in one transaction:

* keeps a byte copy of the store as ``<file>.schema1.bak`` first (a file-backed store);
* turns every job into a ``runs`` row whose configuration is rebuilt from the job's stored
  settings (arch, init, seed, task, options, metrics, image and its content digest, size,
  iterations, optimiser, device) plus the judge the job recorded in its results' ``extra``
  (``unrecorded`` for a job that scores ``gram`` but recorded none, e.g. a failed one); the run's
  key is that configuration's key, and ``provenance["migrated_from"]`` keeps the schema-1 key,
  suite and settings;
* copies every per-layer result (with its ``extra``), every score and every suite membership
  under the new key, and the suites' definitions as they are; ``stalled`` is NULL (schema 1 did
  not record it).

Nothing is dropped: a configuration the migration cannot express exactly keeps the job's own
values (a ``maximize`` job keeps its image, a style job its ``content`` option), so its key
differs from what ``archbench run`` would compute today and a sweep runs it again rather than
trust it. Runs whose configuration matches today's resolution keep their results across the
migration: a sweep of the same suite skips them.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from typing import TYPE_CHECKING, Any

from archbench.config import RunConfig
from archbench.metrics.gram import UNRECORDED
from archbench.store.schema import INSERT_RESULT, SCHEMA, SCHEMA_VERSION, statements

if TYPE_CHECKING:
    from archbench.store.db import ResultStore

log = logging.getLogger(__name__)


def _judge(metrics: list[str], extras: list[dict[str, Any]]) -> str | None:
    """The judge a schema-1 job recorded (``trained-vgg16``, ``random-vgg19``), ``unrecorded``, or
    None when the job did not score ``gram``."""
    if "gram" not in metrics:
        return None
    for extra in extras:
        label = extra.get("judge")
        if isinstance(label, str) and label:
            return label.split("(", 1)[0]
    return UNRECORDED


def config_from_v1(settings: dict[str, Any], image_source: str, extras: list[dict[str, Any]]) -> RunConfig:
    """The schema-2 configuration of a schema-1 job (its ``settings`` JSON and image source)."""
    image_id = str(settings.get("image", image_source))
    metrics = [str(m) for m in settings.get("metrics", [])]
    return RunConfig(
        arch=settings["arch"],
        init=settings["init"],
        seed=int(settings["seed"]),
        task=settings["task"],
        image=image_source,
        size=int(settings["size"]),
        iterations=int(settings["iterations"]),
        optimizer=settings.get("optimizer", "lbfgs"),
        history=int(settings.get("history", 100)),
        device=settings.get("device", "cpu"),
        options=settings.get("options", {}),
        metrics=tuple(metrics),
        judge=_judge(metrics, extras),
        digests={image_source: image_id} if image_id.startswith("sha256:") else {},
    )


def backup(store: ResultStore) -> None:
    """Copy a file-backed store to ``<file>.schema1.bak`` (after folding its WAL in)."""
    if store.path is None:
        return
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dst = store.path.with_name(store.path.name + ".schema1.bak")
    if not dst.exists():
        shutil.copy2(store.path, dst)
        log.warning("migrating results store %s from schema 1 to 2; the original is kept as %s", store.path, dst)


def migrate_v1(store: ResultStore) -> int:
    """Migrate ``store`` (schema 1) to schema 2 in place; returns the number of runs migrated."""
    try:
        backup(store)
    except (OSError, sqlite3.DatabaseError) as exc:
        from archbench.errors import ConfigError

        raise ConfigError(f"store {store.path} has schema 1 and cannot be migrated in place ({exc}); "
                          "make it writable and open it again (e.g. `archbench report --store FILE`)") from None
    with store.transaction() as c:
        if c.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] != "1":
            return 0  # another process migrated it while this one waited for the lock
        for old in ("results", "scores"):
            c.execute(f"ALTER TABLE {old} RENAME TO v1_{old}")
        for statement in statements(SCHEMA):
            c.execute(statement)
        extras: dict[str, list[dict[str, Any]]] = {}
        for job_key, extra in c.execute("SELECT job_key, extra FROM v1_results"):
            extras.setdefault(job_key, []).append(json.loads(extra or "{}"))
        new_key: dict[str, str] = {}
        jobs = c.execute(
            "SELECT key, suite, settings, image, image_source, layers, status, error, started, finished, seconds, "
            "build_seconds, device, host, versions, attempts FROM jobs ORDER BY rowid"
        ).fetchall()
        for (key, suite, settings, label, source, layers, status, error, started, finished, seconds, build_seconds,
             device, host, versions, attempts) in jobs:
            settings = json.loads(settings)
            config = config_from_v1(settings, source, extras.get(key, []))
            provenance = {"migrated_from": {"schema": 1, "key": key, "suite": suite, "settings": settings}}
            # every schema-1 setting is part of the configuration, so two jobs never share a key
            c.execute(
                "INSERT INTO runs (key, config, image_label, status, error, started, finished, seconds, "
                "build_seconds, host, versions, provenance, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (config.key, json.dumps(config.to_json(), sort_keys=True), label, status, error, started, finished,
                 seconds, build_seconds, host, versions or "{}", json.dumps(provenance, sort_keys=True), attempts),
            )
            new_key[key] = config.key
            order = {layer: i for i, layer in enumerate(json.loads(layers or "[]"))}
            for (layer, l_status, l_error, final_loss, iterations, evaluations, l_seconds, trace, paths,
                 extra) in c.execute(
                "SELECT layer, status, error, final_loss, iterations, evaluations, seconds, loss_trace, paths, extra "
                "FROM v1_results WHERE job_key = ?", (key,)
            ).fetchall():
                c.execute(
                    INSERT_RESULT,
                    (new_key[key], layer, order.get(layer, len(order)), l_status, l_error, final_loss, iterations,
                     evaluations, l_seconds, device, trace, paths, extra, None),  # stalled: not recorded
                )
        for job_key, layer, metric, value in c.execute("SELECT job_key, layer, metric, value FROM v1_scores").fetchall():
            if job_key in new_key:
                c.execute("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", (new_key[job_key], layer, metric, value))
        for suite, job_key in c.execute("SELECT suite, job_key FROM suite_jobs").fetchall():
            if job_key in new_key:
                c.execute("INSERT OR IGNORE INTO suite_runs VALUES (?, ?)", (suite, new_key[job_key]))
        for table in ("jobs", "v1_results", "v1_scores", "suite_jobs"):
            c.execute(f"DROP TABLE {table}")
        c.execute("DROP INDEX IF EXISTS jobs_status")
        c.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
    log.info("migrated %d runs of %s to schema %d", len(jobs), store.path or ":memory:", SCHEMA_VERSION)
    return len(jobs)
