"""Executors: how a sweep's jobs are run.

An :class:`Executor` takes jobs (resolved :class:`~archbench.config.RunConfig` s) and streams one
:class:`~archbench.results.RunOutcome` per job to the driver's ``on_result`` callback as soon as
the job ends, so the driver can store it at once (an interrupted sweep then loses only the jobs
that were running). Executors are registered in :data:`EXECUTORS` (``archbench sweep --executor
NAME``); this module ships ``local``, :mod:`archbench.sweep.ray_executor` ships ``ray``.

Both run jobs through :func:`archbench.runner.execute`: one network per (arch, init, seed, device)
group, jobs that differ only in their image as one batch (``batch_images``), and whatever goes
wrong in a job -- a bad image, a non-finite loss, CUDA out of memory, any exception -- a failed
outcome with its reason while the sweep goes on. ``KeyboardInterrupt`` is not caught: the driver
stops, and stored results stay stored.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

from archbench.config import RunConfig
from archbench.errors import ConfigError
from archbench.registry import Registry
from archbench.results import RunOutcome

log = logging.getLogger(__name__)

OnResult = Callable[[RunOutcome], None]
OnStart = Callable[[RunConfig], None]
#: ``skip(job) -> True`` to drop a job right before it would start (e.g. done by another sweep)
Skip = Callable[[RunConfig], bool]


class Executor(ABC):
    """Runs jobs and reports each outcome through ``on_result`` as soon as it is known."""

    name: str = ""

    @abstractmethod
    def run(
        self, jobs: Sequence[RunConfig], on_result: OnResult, on_start: OnStart | None = None, skip: Skip | None = None
    ) -> None:
        """Run ``jobs``; call ``on_start(job)`` before and ``on_result(outcome)`` after each.

        A job for which ``skip(job)`` is true just before it starts is not run and not reported.
        """

    def check_output(self) -> None:
        """Raise :class:`~archbench.errors.OutputError` when a folder the executor writes to
        (``out_dir``; ``shared_dir``) is a file or not writable; called before any job runs."""
        from archbench.fileio import check_output_dir

        for attr, what in (("out_dir", "image folder"), ("shared_dir", "--shared-dir")):
            folder = getattr(self, attr, None)
            if folder is not None:
                check_output_dir(folder, what)

    def resolve_device(self, requested: str) -> str:
        """The device jobs run on for a requested one (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

        Default: this machine's (:func:`archbench.config.resolve_device`). Executors that run jobs
        on other machines (``ray``) ask their cluster instead. Called by the driver before the jobs
        are expanded.
        """
        from archbench.config import resolve_device

        return resolve_device(requested)


EXECUTORS: Registry[type[Executor]] = Registry("executor", entry_point_group="archbench.executors")


def register_executor(cls: type[Executor]) -> type[Executor]:
    """Class decorator registering an executor under its ``name``."""
    EXECUTORS.add(cls.name, cls)
    return cls


def get_executor(name: str, **kwargs) -> Executor:
    """An instance of the executor registered as ``name``."""
    return EXECUTORS.get(name)(**kwargs)


@register_executor
class LocalExecutor(Executor):
    """In-process executor (:func:`archbench.runner.execute` in this process).

    Args:
        out_dir: folder for the images of each job (``out_dir/<job key>/...``); None: no images.
        batch_images: largest batch of jobs that differ only in their image; default (None): 16 on
            CUDA, 1 on the CPU (:func:`archbench.runner.default_batch_limit`).
    """

    name = "local"

    def __init__(self, out_dir: str | Path | None = None, batch_images: int | None = None) -> None:
        if batch_images is not None and batch_images < 1:
            raise ConfigError(f"batch_images must be >= 1, got {batch_images}")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.batch_images = batch_images

    def run(
        self, jobs: Sequence[RunConfig], on_result: OnResult, on_start: OnStart | None = None, skip: Skip | None = None
    ) -> None:
        from archbench.runner import Started, execute

        root = self.out_dir
        out = (lambda c: root / c.key) if root is not None else None
        for event in execute(jobs, out_dir=out, batch_images=self.batch_images, skip=skip):
            if isinstance(event, Started):
                for job in event.configs:
                    if on_start:
                        on_start(job)
            else:
                on_result(event)
