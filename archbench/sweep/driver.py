"""The sweep driver: suite -> jobs -> executor -> store.

:func:`run_sweep` expands a suite into jobs, skips those already ``done`` in the store (and, by
default, re-runs those stored as ``failed``: failures such as out-of-memory are often transient),
runs the rest through an executor and stores each outcome as soon as it arrives, in its own
transaction. Before a job starts, the store is asked again whether it is done, so two sweeps of
one suite on one store share the work instead of repeating it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.config import RunConfig
from archbench.results import RunOutcome
from archbench.store import ResultStore
from archbench.sweep.executor import Executor, get_executor
from archbench.sweep.jobs import expand_jobs
from archbench.sweep.suite import Suite, load_suite

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    """Counts of a sweep: ``total`` jobs; ``skipped`` (already done); ``done``/``failed`` now;
    ``taken`` (finished by a concurrent sweep meanwhile); ``failures``: (job, reason);
    ``not_run``: (job, reason) of jobs whose trained weights are absent here (stored as
    ``skipped``, tried again by the next sweep; not failures)."""

    suite: str
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    taken: int = 0
    keys: list[str] = field(default_factory=list)
    failures: list[tuple[RunConfig, str]] = field(default_factory=list)
    not_run: list[tuple[RunConfig, str]] = field(default_factory=list)


def run_sweep(
    suite: Suite | str | Path,
    store: ResultStore,
    *,
    executor: str | Executor = "local",
    device: str | None = None,
    out_dir: str | Path | None = None,
    rerun_failed: bool = True,
    executor_options: dict[str, Any] | None = None,
    on_plan: Callable[[int, int, int], None] | None = None,
    on_start: Callable[[RunConfig], None] | None = None,
    on_result: Callable[[RunOutcome], None] | None = None,
) -> SweepSummary:
    """Run ``suite`` into ``store``.

    Args:
        suite: a parsed :class:`Suite`, a suite file or a built-in suite name.
        store: where results go (and where done jobs are looked up).
        executor: executor name (``local``) or instance.
        device: overrides the suite's device (``auto``, ``cpu``, ``cuda``).
        out_dir: folder of the output images (default: ``images/`` beside the store).
        rerun_failed: re-run jobs stored as failed (default) instead of skipping them.
        executor_options: keyword arguments of the executor named by ``executor`` (e.g. ``address``,
            ``gpus_per_job`` for ``ray``).
        on_plan: ``(to_run, total, not_run)`` once the plan is known (``not_run``: jobs of trained
            networks whose weights are absent); ``on_start(job)``,
            ``on_result(outcome)``: called per job (e.g. to drive a progress bar).

    Returns:
        A :class:`SweepSummary`.
    """
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    if isinstance(executor, str):
        out = Path(out_dir) if out_dir is not None else store.root / "images"
        executor = get_executor(executor, out_dir=out, **(executor_options or {}))
    dev = executor.resolve_device(device or suite.device)  # the executor's machines decide what auto means
    jobs = expand_jobs(suite, dev)
    summary = SweepSummary(suite.name, total=len(jobs), keys=[j.key for j in jobs])
    store.record_suite(suite.name, suite.reference, suite.to_json())
    store.add_to_suite(suite.name, summary.keys)
    statuses = store.statuses(summary.keys)
    skip = {"done"} if rerun_failed else {"done", "failed"}
    todo = [j for j in jobs if statuses.get(j.key) not in skip]
    summary.skipped = len(jobs) - len(todo)
    log.info("suite %s: %d jobs, %d already stored, %d to run on %s", suite.name, len(jobs), summary.skipped, len(todo), dev)
    todo = _store_absent_weights(todo, store, suite.name, summary)
    if on_plan:
        on_plan(len(todo), len(jobs), len(summary.not_run))
    if not todo:
        return summary

    def started(job: RunConfig) -> None:
        if on_start:
            on_start(job)

    def finished(outcome: RunOutcome) -> None:
        if store.put(outcome, suite.name):
            if outcome.status == "done":
                summary.done += 1
            else:
                summary.failed += 1
                summary.failures.append((outcome.config, outcome.error or "failed"))
        else:
            summary.taken += 1
        if on_result:
            on_result(outcome)

    def skip(job: RunConfig) -> bool:  # a concurrent sweep may have finished it meanwhile
        if store.statuses([job.key]).get(job.key) == "done":
            summary.taken += 1
            return True
        return False

    executor.run(todo, finished, started, skip)
    return summary


def _store_absent_weights(jobs: list[RunConfig], store: ResultStore, suite: str, summary: SweepSummary) -> list[RunConfig]:
    """Store the jobs of trained networks whose weights are absent here as ``skipped`` (with the
    reason: how to get the weights) instead of running them into failures; the rest to run."""
    import time

    from archbench.weights import pretrained_unavailable

    todo = []
    for job in jobs:
        why = pretrained_unavailable(job.arch) if job.init == "pretrained" else None
        if why is None:
            todo.append(job)
            continue
        now = time.time()
        store.put(RunOutcome(job, "skipped", f"not run: trained weights absent: {why}", [], now, now), suite)
        summary.not_run.append((job, why))
    if summary.not_run:
        log.warning("%d jobs not run: trained weights absent", len(summary.not_run))
    return todo
