"""The expansion of a suite into jobs: one resolved :class:`~archbench.config.RunConfig` per job.

One job = one architecture (spec with options) × one init × one seed × one task (with its
settings) × one image. The layers a task optimises (e.g. pool1 ... pool5 for reconstruct) stay
inside the job, so a job yields one :class:`~archbench.results.Result` per layer. A job's key is
its configuration's key (:attr:`archbench.config.RunConfig.key`): the suite's name is not part of
it, so two suites that contain the same configuration share the stored result, and
``archbench run`` with the same settings produces the same key.
"""

from __future__ import annotations

import logging

from archbench.config import RunConfig, resolve
from archbench.sweep.suite import Suite

log = logging.getLogger(__name__)


def expand_jobs(suite: Suite, device: str) -> list[RunConfig]:
    """All jobs of ``suite`` on ``device`` (already resolved: ``cpu``, ``cuda``, ``cuda:N``), in a
    stable order (arch, init, task, seed, image), each configuration once.

    Seeds and images of a task override the suite's; seeds of an arch override both (an arch with
    a fixed seed list, e.g. a trained network with seed 0 only). Settings resolve as for
    ``archbench run`` (:func:`archbench.config.resolve`): a task's ``size``/``iterations`` >
    its preset's budget > the suite's ``size``/``iterations`` > the device's defaults.

    Raises:
        ArchbenchError: a value that cannot be resolved (e.g. a judge whose weights are absent).
    """
    jobs: list[RunConfig] = []
    seen: set[str] = set()
    for arch in suite.archs:
        for init in arch.inits or suite.inits:
            for task in suite.tasks:
                if task.archs is not None and arch.spec not in task.archs:
                    continue
                if task.inits is not None and init not in task.inits:
                    continue
                for seed in arch.seeds or task.seeds or suite.seeds:
                    for config in resolve(
                        arch.spec, task.name, list(task.images or suite.images), init=init, seed=seed,
                        size=task.size, iterations=task.iterations, base_size=suite.size,
                        base_iterations=suite.iterations, optimizer=suite.optimizer, history=suite.history,
                        options=task.options, metrics=task.metrics, device=device, judge=suite.judge,
                    ):
                        if config.key not in seen:
                            seen.add(config.key)
                            jobs.append(config)
    log.info("suite %s: %d jobs", suite.name, len(jobs))
    return jobs
