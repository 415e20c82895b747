"""Executors: how a sweep's jobs are run.

An :class:`Executor` takes jobs and streams one :class:`JobOutcome` per job to the driver's
``on_result`` callback as soon as the job ends, so the driver can store it at once (an interrupted
sweep then loses only the jobs that were running). Executors are registered in :data:`EXECUTORS`
(``archbench sweep --executor NAME``); this module ships ``local``.

The local executor runs jobs in this process. It groups jobs that share a network (same arch,
init, seed and device) and builds that network once for the group (``run_task(net=...)``); jobs
of a group that differ only in their image run as one batched optimisation (``batch_images``). Whatever goes wrong in a job -- a bad image, a non-finite loss, CUDA out
of memory, any exception -- becomes a failed outcome with its reason; the sweep goes on.
``KeyboardInterrupt`` is not caught: the driver stops, and stored results stay stored.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.errors import ArchbenchError
from archbench.registry import Registry
from archbench.results import Result
from archbench.sweep.jobs import Job

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    """What one job produced.

    Attributes:
        job: the job.
        status: ``"done"`` or ``"failed"``.
        error: the reason of a failure (one line), else None.
        results: one :class:`Result` per layer (may be partial or empty for a failed job).
        started, finished: UNIX times; ``seconds``: wall time of the job (network build excluded).
        build_seconds: time spent building the network for this job (0 when reused).
    """

    job: Job
    status: str
    error: str | None = None
    results: list[Result] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    seconds: float = 0.0
    build_seconds: float = 0.0


OnResult = Callable[[JobOutcome], None]
OnStart = Callable[[Job], None]
#: ``skip(job) -> True`` to drop a job right before it would start (e.g. done by another sweep)
Skip = Callable[[Job], bool]


class Executor(ABC):
    """Runs jobs and reports each outcome through ``on_result`` as soon as it is known."""

    name: str = ""

    @abstractmethod
    def run(
        self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None, skip: Skip | None = None
    ) -> None:
        """Run ``jobs``; call ``on_start(job)`` before and ``on_result(outcome)`` after each.

        A job for which ``skip(job)`` is true just before it starts is not run and not reported.
        """

    def resolve_device(self, requested: str) -> str:
        """The device jobs run on for a requested one (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

        Default: this machine's (``auto`` -> ``cuda`` when it has a GPU; ``cuda`` without one is a
        :class:`~archbench.errors.ConfigError`). Executors that run jobs on other machines (``ray``)
        ask their cluster instead. Called by the driver before the jobs are expanded.
        """
        from archbench.runner import resolve_device

        return str(resolve_device(requested))


EXECUTORS: Registry[type[Executor]] = Registry("executor", entry_point_group="archbench.executors")


def register_executor(cls: type[Executor]) -> type[Executor]:
    """Class decorator registering an executor under its ``name``."""
    EXECUTORS.add(cls.name, cls)
    return cls


def get_executor(name: str, **kwargs) -> Executor:
    """An instance of the executor registered as ``name``."""
    return EXECUTORS.get(name)(**kwargs)


def failure_reason(exc: BaseException) -> str:
    """One line saying why a job failed."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return "out of memory: " + str(exc).strip().splitlines()[0]
    except Exception:  # pragma: no cover
        pass
    if isinstance(exc, ArchbenchError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _free_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover
        pass


def group_by_network(jobs: Sequence[Job]) -> list[list[Job]]:
    """Jobs grouped by :attr:`Job.network_key`, groups in order of first appearance."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.network_key, []).append(job)
    return list(groups.values())


@dataclass
class GroupNetwork:
    """The network shared by a group of jobs (see :func:`group_by_network`), or why building it failed.

    Attributes:
        net: the built :class:`~archbench.architectures.base.TappedNetwork` (None when the build failed).
        error: one line saying why the build failed, else None.
        seconds: build time.
    """

    net: Any = None
    error: str | None = None
    seconds: float = 0.0


def build_group_network(job: Job) -> GroupNetwork:
    """Build the network of ``job`` (and of every job with the same :attr:`Job.network_key`).

    Any exception becomes :attr:`GroupNetwork.error` (``building the network failed: ...``), so the
    jobs of the group fail with that reason and the sweep goes on.
    """
    from archbench.sweep.network import build_network

    t0 = time.perf_counter()
    try:
        net = build_network(job.arch, job.init, job.seed, job.device)
    except Exception as exc:
        error = "building the network failed: " + failure_reason(exc)
        log.warning("%s: %s", job.describe(), error)
        _free_memory()
        return GroupNetwork(None, error, time.perf_counter() - t0)
    return GroupNetwork(net, None, time.perf_counter() - t0)


@register_executor
class LocalExecutor(Executor):
    """In-process executor; one network built per (arch, init, seed, device) group.

    Within a group, jobs that differ only in their image run as **one batch** of up to
    ``batch_images`` images (one optimisation over the batch; results do not depend on the batch,
    see :func:`archbench.tasks.reconstruct.white_noise`). A batch that cannot be prepared (a bad
    image, say) or fails as a whole falls back to running its jobs one by one, so only the bad job
    fails.

    Args:
        out_dir: folder for the images of each job (``out_dir/<job key>/...``); None: no images.
        batch_images: largest batch; default (None): 16 on CUDA, 1 on the CPU (where batching
            gains little and one job at a time keeps progress fine-grained).
    """

    name = "local"

    def __init__(self, out_dir: str | Path | None = None, batch_images: int | None = None) -> None:
        if batch_images is not None and batch_images < 1:
            from archbench.errors import ConfigError

            raise ConfigError(f"batch_images must be >= 1, got {batch_images}")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.batch_images = batch_images

    def run(
        self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None, skip: Skip | None = None
    ) -> None:
        for group in group_by_network(jobs):
            if skip is not None:
                group = [j for j in group if not skip(j)]
                if not group:
                    continue
            built = build_group_network(group[0])
            build_seconds = built.seconds
            for i, batch in enumerate(self.batches(group)):
                if i > 0 and skip is not None:
                    batch = [j for j in batch if not skip(j)]
                if not batch:
                    continue
                if on_start:
                    for job in batch:
                        on_start(job)
                for outcome in self.run_batch(batch, built, build_seconds):
                    on_result(outcome)
                build_seconds = 0.0
            del built
            _free_memory()

    def batches(self, group: Sequence[Job]) -> list[list[Job]]:
        """Split a network group into batches of jobs that differ only in their image."""
        batches: list[list[Job]] = []
        open_batches: dict[str, list[Job]] = {}
        for job in group:
            limit = self.batch_images or (16 if job.device.startswith("cuda") else 1)
            settings = json.dumps(
                [job.task, job.options, job.size, job.iterations, sorted(job.metrics), job.optimizer, job.history],
                sort_keys=True, default=str,
            )
            batch = open_batches.get(settings)
            if batch is None or len(batch) >= limit or any(j.image_label == job.image_label for j in batch):
                batch = open_batches[settings] = []
                batches.append(batch)
            batch.append(job)
        return batches

    def run_batch(self, batch: Sequence[Job], built: GroupNetwork, build_seconds: float = 0.0) -> list[JobOutcome]:
        """Run jobs that differ only in their image as one optimisation; one outcome per job."""
        if len(batch) == 1 or built.error is not None:
            return [self.run_job(job, built, build_seconds if k == 0 else 0.0) for k, job in enumerate(batch)]
        from archbench.runner import prepare_run

        first = batch[0]
        started, t0 = time.time(), time.perf_counter()
        by_label = {job.image_label: job for job in batch}
        try:
            prepared = prepare_run(
                first.arch, first.task, [job.image for job in batch], size=first.size, iterations=first.iterations,
                seed=first.seed, init=first.init, device=first.device, metrics=first.metrics,
                options=dict(first.options), optimizer=first.optimizer, history=first.history, net=built.net,
            )
            out = (lambda label: self.out_dir / by_label[label].key) if self.out_dir is not None else None
            report = prepared.execute(out)
        except Exception as exc:
            log.info("batch of %d jobs failed as a whole (%s); running them one by one", len(batch), failure_reason(exc))
            _free_memory()
            return [self.run_job(job, built, build_seconds if k == 0 else 0.0) for k, job in enumerate(batch)]
        seconds = (time.perf_counter() - t0) / len(batch)
        return [
            self._outcome(job, [r for r in report.results if r.image == job.image_label], started, seconds,
                          build_seconds if k == 0 else 0.0)
            for k, job in enumerate(batch)
        ]

    def run_job(self, job: Job, built: GroupNetwork, build_seconds: float = 0.0) -> JobOutcome:
        """Run one job on the network ``built`` for its group (a failed build fails the job).

        ``build_seconds`` is charged to this job (the first of its group)."""
        started = time.time()
        if built.error is not None:
            return JobOutcome(job, "failed", built.error, [], started, time.time(), 0.0)
        return self._run_one(job, built.net, started, build_seconds)

    def _run_one(self, job: Job, net, started: float, build_seconds: float) -> JobOutcome:
        from archbench.runner import run_task

        t0 = time.perf_counter()
        try:
            report = run_task(
                job.arch,
                job.task,
                [job.image],
                size=job.size,
                iterations=job.iterations,
                seed=job.seed,
                init=job.init,
                device=job.device,
                metrics=job.metrics,
                options=dict(job.options),
                optimizer=job.optimizer,
                history=job.history,
                out_dir=(self.out_dir / job.key) if self.out_dir is not None else None,
                net=net,
            )
        except Exception as exc:
            reason = failure_reason(exc)
            if not isinstance(exc, ArchbenchError):
                log.debug("job %s failed:\n%s", job.key, traceback.format_exc())
            log.warning("%s failed: %s", job.describe(), reason)
            _free_memory()
            return JobOutcome(job, "failed", reason, [], started, time.time(), time.perf_counter() - t0, build_seconds)
        return self._outcome(job, report.results, started, time.perf_counter() - t0, build_seconds)

    @staticmethod
    def _outcome(job: Job, results: list[Result], started: float, seconds: float, build_seconds: float) -> JobOutcome:
        """The outcome of a job from its results: failed if there are none or any failed."""
        if not results:
            return JobOutcome(job, "failed", "the task produced no results", [], started, time.time(), seconds, build_seconds)
        failed = [r for r in results if r.status != "done"]
        error = "; ".join(f"{r.layer}: {r.error or r.status}" for r in failed) if failed else None
        return JobOutcome(job, "failed" if failed else "done", error, results, started, time.time(), seconds, build_seconds)
