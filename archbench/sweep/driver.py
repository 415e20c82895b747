"""The sweep driver: suite -> jobs -> executor -> store.

:func:`run_sweep` expands a suite into jobs, skips those already ``done`` in the store (and, by
default, re-runs those stored as ``failed``: failures such as out-of-memory are often transient),
runs the rest through an executor and stores each outcome as soon as it arrives, in its own
transaction.

**Concurrent sweeps split the work.** Right before a job runs, the sweep claims it in the store
(:meth:`archbench.store.ResultStore.claim`: a lease row taken in a transaction, renewed while the
sweep lives, dropped when its result is stored, expiring when its owner dies). A job another live
sweep holds is not run; once this sweep has run everything it could claim it waits for those jobs
and takes over any whose owner died. So several sweeps of one suite on one store -- processes on
one machine, or machines sharing the store -- run each job once, and each returns when the whole
suite is stored.

**Checked before anything runs or is written** (one-line :class:`~archbench.errors.ArchbenchError`):
the number of jobs (at most :data:`archbench.limits.MAX_JOBS`, ``max_jobs`` / ``ARCHBENCH_MAX_JOBS`` to
change it),
every job's configuration, that the store does not already hold a *different* suite of the same
name (its results would be mixed with this one's; ``redefine=True`` replaces the definition), and
that the image folder is writable. A write that fails while the sweep runs (disk full) stops it
with an :class:`~archbench.errors.OutputError`; what was stored stays stored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.config import RunConfig
from archbench.errors import ArchbenchError, ConfigError
from archbench.limits import MAX_JOBS, MAX_JOBS_ENV  # noqa: F401
from archbench.limits import max_jobs as max_jobs_limit
from archbench.results import RunOutcome
from archbench.store import ResultStore
from archbench.store.db import CLAIMED, HELD
from archbench.store.leases import Heartbeat, LeaseOwner, lease_seconds
from archbench.sweep.executor import Executor, get_executor
from archbench.sweep.jobs import expand_jobs
from archbench.sweep.suite import Suite, load_suite

log = logging.getLogger(__name__)

#: suite fields that do not change what a suite runs (ignored when comparing definitions)
_DESCRIPTIVE = ("path", "description")


@dataclass
class SweepSummary:
    """Counts of a sweep: ``total`` jobs; ``skipped`` (already stored when it started);
    ``done``/``failed`` (stored by this sweep); ``taken`` (finished by a concurrent sweep
    meanwhile); ``ran`` (jobs this sweep executed); ``failures``: (job, reason); ``not_run``:
    (job, reason) of jobs of trained networks whose weights are absent here (stored as
    ``skipped``, tried again by the next sweep; not failures)."""

    suite: str
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    taken: int = 0
    ran: int = 0
    keys: list[str] = field(default_factory=list)
    failures: list[tuple[RunConfig, str]] = field(default_factory=list)
    not_run: list[tuple[RunConfig, str]] = field(default_factory=list)


def count_jobs(suite: Suite) -> int:
    """How many jobs ``suite`` expands to at most, counted without resolving any (folders count
    their image files)."""
    from archbench.images import IMAGES, list_image_files
    from archbench.tasks import get_task

    def images(sources: list[str]) -> int:
        n = 0
        for src in sources:
            p = Path(src)
            if src not in IMAGES and p.is_dir():
                try:
                    n += len(list_image_files(p))
                except ArchbenchError:
                    n += 1
            else:
                n += 1
        return n

    total = 0
    for task in suite.tasks:
        t = get_task(task.name)
        if not t.takes_images:
            n_images = 1
        elif t.image_option and task.options.get(t.image_option):
            n_images = images([str(task.options[t.image_option])])
        else:
            n_images = images(list(task.images or suite.images))
        for arch in suite.archs:
            if task.archs is not None and arch.spec not in task.archs:
                continue
            seeds = arch.seeds or task.seeds or suite.seeds
            total += len(arch.inits or suite.inits) * len(seeds) * n_images
    return total


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def definition_conflict(stored: dict[str, Any] | None, suite: Suite) -> list[str]:
    """The fields in which ``suite`` differs from a definition ``stored`` under its name (fields
    only one side has -- written by another archbench version -- are not compared)."""
    if not stored:
        return []
    new = _plain(suite.to_json())
    return sorted(k for k in new.keys() & stored.keys() if k not in _DESCRIPTIVE and _plain(stored[k]) != new[k])


@dataclass
class SweepPlan:
    """A validated sweep, ready to run (see :func:`plan_sweep`); :meth:`run` runs it."""

    suite: Suite
    store: ResultStore
    executor: Executor
    device: str
    jobs: list[RunConfig]
    rerun_failed: bool = True
    redefine: bool = False

    def run(
        self,
        *,
        on_plan: Callable[[int, int, int], None] | None = None,
        on_start: Callable[[RunConfig], None] | None = None,
        on_result: Callable[[RunOutcome], None] | None = None,
        on_taken: Callable[[RunConfig], None] | None = None,
        on_wait: Callable[[int, dict[str, Any]], None] | None = None,
        lease_ttl: float | None = None,
        poll_seconds: float = 2.0,
    ) -> SweepSummary:
        """Record the suite, then claim and run every job not stored yet (see :func:`run_sweep`
        for the callbacks)."""
        suite, store, jobs = self.suite, self.store, self.jobs
        summary = SweepSummary(suite.name, total=len(jobs), keys=[j.key for j in jobs])
        if self.redefine:
            log.warning("suite %s re-defined in %s: %d earlier jobs left the suite", suite.name, store.path,
                        store.forget_suite(suite.name))
        store.record_suite(suite.name, suite.reference, suite.to_json())
        store.add_to_suite(suite.name, summary.keys)
        states = store.run_states(summary.keys)
        skip_status = {"done"} if self.rerun_failed else {"done", "failed"}
        todo = [j for j in jobs if states.get(j.key, ("", 0))[0] not in skip_status]
        summary.skipped = len(jobs) - len(todo)
        todo = _store_absent_weights(todo, store, suite.name, summary)
        log.info("suite %s: %d jobs, %d already stored, %d not run (weights absent), %d to run on %s", suite.name,
                 len(jobs), summary.skipped, len(summary.not_run), len(todo), self.device)
        if on_plan:
            on_plan(len(todo), len(jobs), len(summary.not_run))
        if not todo:
            return summary

        owner = LeaseOwner.this_process()
        ttl = lease_ttl or lease_seconds()
        seen = {k: attempts for k, (_status, attempts) in states.items()}
        waiting: dict[str, RunConfig] = {}

        def started(job: RunConfig) -> None:
            if on_start:
                on_start(job)

        def taken(job: RunConfig) -> None:
            summary.taken += 1
            if on_taken:
                on_taken(job)

        def finished(outcome: RunOutcome) -> None:
            summary.ran += 1
            if store.put(outcome, suite.name, owner):
                if outcome.status == "done":
                    summary.done += 1
                else:
                    summary.failed += 1
                    summary.failures.append((outcome.config, outcome.error or "failed"))
            else:
                summary.taken += 1  # finished by another sweep first (its lease had lapsed)
            if on_result:
                on_result(outcome)

        def skip(job: RunConfig) -> bool:
            """Claim ``job`` right before it runs; False: it is ours, run it."""
            state = store.claim(job.key, owner, ttl, seen.get(job.key, 0))
            if state == CLAIMED:
                waiting.pop(job.key, None)
                return False
            if state == HELD:
                waiting[job.key] = job
            else:  # done, or attempted by a concurrent sweep since this one looked
                waiting.pop(job.key, None)
                taken(job)
            return True

        heartbeat = Heartbeat(store.path, owner, ttl).start()
        try:
            self.executor.run(todo, finished, started, skip)
            while waiting:
                if on_wait:
                    on_wait(len(waiting), store.leases(waiting))
                log.info("waiting for %d jobs other sweeps are running", len(waiting))
                time.sleep(poll_seconds)
                now, holders = store.run_states(waiting), store.leases(waiting)
                retry = []
                for key, job in list(waiting.items()):
                    status, attempts = now.get(key, ("", 0))
                    if status == "done" or attempts > seen.get(key, 0):
                        del waiting[key]
                        taken(job)
                    elif key not in holders:  # its holder died or gave it up: take it over
                        del waiting[key]
                        retry.append(job)
                if retry:
                    self.executor.run(retry, finished, started, skip)
        finally:
            heartbeat.stop()
            try:
                store.release(owner)
            except ArchbenchError as exc:  # e.g. the disk is full: the leases expire by themselves
                log.warning("could not release the sweep's job leases: %s", exc)
        return summary


def plan_sweep(
    suite: Suite | str | Path,
    store: ResultStore,
    *,
    executor: str | Executor = "local",
    device: str | None = None,
    out_dir: str | Path | None = None,
    rerun_failed: bool = True,
    executor_options: dict[str, Any] | None = None,
    max_jobs: int | None = None,
    redefine: bool = False,
) -> SweepPlan:
    """Check everything a sweep can check before it runs or writes anything (see the module
    docstring) and return its :class:`SweepPlan`; arguments as for :func:`run_sweep`.

    Raises:
        ArchbenchError: what is wrong, in one line.
    """
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    limit = max_jobs_limit() if max_jobs is None else (max_jobs or None)
    estimate = count_jobs(suite)
    if limit is not None and estimate > limit:
        raise ConfigError(
            f"suite {suite.name} ({suite.path}) has {estimate} jobs, more than the limit of {limit} per sweep; "
            f"check its seeds and images, or allow it with --max-jobs {estimate} ({MAX_JOBS_ENV}={estimate})"
        )
    if isinstance(executor, str):
        out = Path(out_dir) if out_dir is not None else store.root / "images"
        executor = get_executor(executor, out_dir=out, **(executor_options or {}))
    dev = executor.resolve_device(device or suite.device)  # the executor's machines decide what auto means
    try:
        jobs = expand_jobs(suite, dev)
    except ArchbenchError as exc:
        raise type(exc)(f"{suite.path}: {exc}") from None
    stored = store.suite_definition(suite.name)
    conflict = definition_conflict(stored, suite)
    if conflict and not redefine:
        raise ConfigError(
            f"store {store.path or ':memory:'} already holds a suite named {suite.name!r} defined differently "
            f"(from {(stored or {}).get('path', '?')}; differs in {', '.join(conflict)}): its results would be mixed "
            "with this one's in reports and checks; rename this suite, use another --store, or pass --redefine "
            "to replace the definition"
        )
    executor.check_output()
    return SweepPlan(suite, store, executor, dev, jobs, rerun_failed, redefine=bool(conflict))


def run_sweep(
    suite: Suite | str | Path,
    store: ResultStore,
    *,
    executor: str | Executor = "local",
    device: str | None = None,
    out_dir: str | Path | None = None,
    rerun_failed: bool = True,
    executor_options: dict[str, Any] | None = None,
    max_jobs: int | None = None,
    redefine: bool = False,
    on_plan: Callable[[int, int, int], None] | None = None,
    on_start: Callable[[RunConfig], None] | None = None,
    on_result: Callable[[RunOutcome], None] | None = None,
    on_taken: Callable[[RunConfig], None] | None = None,
    on_wait: Callable[[int, dict[str, Any]], None] | None = None,
    lease_ttl: float | None = None,
    poll_seconds: float = 2.0,
) -> SweepSummary:
    """Run ``suite`` into ``store``: :func:`plan_sweep`, then :meth:`SweepPlan.run`.

    Args:
        suite: a parsed :class:`Suite`, a suite file or a built-in suite name.
        store: where results go (and where done jobs are looked up).
        executor: executor name (``local``) or instance.
        device: overrides the suite's device (``auto``, ``cpu``, ``cuda``).
        out_dir: folder of the output images (default: ``images/`` beside the store).
        rerun_failed: re-run jobs stored as failed (default) instead of skipping them.
        executor_options: keyword arguments of the executor named by ``executor`` (e.g. ``address``,
            ``gpus_per_job`` for ``ray``).
        max_jobs: refuse a suite of more jobs (default :func:`archbench.limits.max_jobs`; 0: no limit).
        redefine: the store holds a different suite of this name: make this its definition (the
            old one's jobs leave the suite; their results stay stored) instead of refusing.
        on_plan: ``(to_run, total, not_run)`` once the plan is known (``not_run``: jobs of trained
            networks whose weights are absent); ``on_start(job)``,
            ``on_result(outcome)``: called per job this sweep runs (e.g. to drive a progress bar);
            ``on_taken(job)``: a job a concurrent sweep finished instead; ``on_wait(n, leases)``:
            this sweep waits for ``n`` jobs other sweeps are running (``leases``: key -> holder).
        lease_ttl: seconds a job's lease lasts without renewal (default
            :func:`archbench.store.leases.lease_seconds`). ``poll_seconds``: how often a waiting
            sweep looks at the store.

    Returns:
        A :class:`SweepSummary`.
    """
    plan = plan_sweep(suite, store, executor=executor, device=device, out_dir=out_dir, rerun_failed=rerun_failed,
                      executor_options=executor_options, max_jobs=max_jobs, redefine=redefine)
    return plan.run(on_plan=on_plan, on_start=on_start, on_result=on_result, on_taken=on_taken, on_wait=on_wait,
                    lease_ttl=lease_ttl, poll_seconds=poll_seconds)


def _store_absent_weights(jobs: list[RunConfig], store: ResultStore, suite: str, summary: SweepSummary) -> list[RunConfig]:
    """Store the jobs of trained networks whose weights are absent here as ``skipped`` (with the
    reason: how to get the weights) instead of running them into failures; the rest to run."""
    from archbench.architectures.create import pretrained_unavailable

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
