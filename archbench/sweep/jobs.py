"""Jobs: the unit of work of a sweep, and the expansion of a suite into jobs.

One job = one architecture (spec with options) × one init × one seed × one task (with its
settings) × one image. The layers a task optimises (e.g. pool1 ... pool5 for reconstruct) stay
inside the job, so a job yields one :class:`~archbench.results.Result` per layer.

A job's key is the first 20 hex digits of the SHA-256 of its resolved configuration (canonical
JSON of arch, init, seed, task, options, metrics, image identity, size, iterations, optimiser,
history and device type). The suite name is not part of the key: two suites that contain the same
configuration share the stored result. Image files are identified by their content hash, so
moving a folder keeps the keys and editing an image changes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from archbench.sweep.suite import Suite

log = logging.getLogger(__name__)

#: bump when the meaning of a job configuration changes (invalidates every stored key)
JOB_FORMAT = 1


@lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def image_identity(source: str) -> str:
    """``name`` for a built-in image, ``sha256:<16 hex>`` of a file's bytes, or ``missing:<path>``."""
    from archbench.images import IMAGES

    if source in IMAGES:
        return source
    p = Path(source)
    try:
        st = p.stat()
        return "sha256:" + _file_digest(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return f"missing:{source}"


@dataclass
class Job:
    """One unit of work (see the module docstring).

    Attributes:
        suite: name of the suite that asked for it (not part of the key).
        arch: canonical architecture spec; ``init``, ``seed``: weights.
        task: task name; ``options``: task options; ``metrics``: metric names (resolved).
        image: image source (built-in name or path); ``image_label``: its short label.
        size, iterations, optimizer, history: optimisation settings.
        device: device to run on (``cpu``, ``cuda``, ``cuda:1``).
    """

    suite: str
    arch: str
    init: str
    seed: int
    task: str
    image: str
    image_label: str
    size: int
    iterations: int
    options: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    optimizer: str = "lbfgs"
    history: int = 100
    device: str = "cpu"

    def config(self) -> dict[str, Any]:
        """The resolved configuration the key hashes (JSON-serialisable)."""
        return {
            "format": JOB_FORMAT,
            "arch": self.arch,
            "init": self.init,
            "seed": self.seed,
            "task": self.task,
            "options": self.options,
            "metrics": sorted(self.metrics),
            "image": image_identity(self.image),
            "size": self.size,
            "iterations": self.iterations,
            "optimizer": self.optimizer,
            "history": self.history,
            "device": self.device.split(":")[0],
        }

    @property
    def key(self) -> str:
        """SHA-256 (20 hex digits) of the canonical JSON of :meth:`config`."""
        blob = json.dumps(self.config(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def network_key(self) -> tuple[str, str, int, str]:
        """Jobs with the same network key can share one built network."""
        return (self.arch, self.init, self.seed, self.device)

    def describe(self) -> str:
        return f"{self.task} · {self.arch} · {self.init} · seed {self.seed} · {self.image_label}"


def expand_jobs(suite: Suite, device: str) -> list[Job]:
    """All jobs of ``suite`` on ``device``, in a stable order (arch, init, seed, task, image).

    Seeds and images of a task override the suite's; seeds of an arch override both (an arch with
    a fixed seed list, e.g. a trained network with seed 0 only). Size and iterations default to the
    runner's defaults for the device.
    """
    import torch

    from archbench.images import expand_sources, image_label
    from archbench.runner import default_size_iterations
    from archbench.tasks import get_task

    d_size, d_iters = default_size_iterations(torch.device(device))
    jobs: list[Job] = []
    seen: set[str] = set()
    for arch in suite.archs:
        for init in arch.inits or suite.inits:
            for task in suite.tasks:
                if task.archs is not None and arch.spec not in task.archs:
                    continue
                seeds = arch.seeds or task.seeds or suite.seeds
                metrics = list(task.metrics or get_task(task.name).default_metrics)
                try:
                    images = expand_sources(list(task.images or suite.images))
                except Exception:  # an unreadable folder: keep the entry, the job fails with the reason
                    images = list(task.images or suite.images)
                for seed in seeds:
                    for img in images:
                        job = Job(
                            suite=suite.name,
                            arch=arch.spec,
                            init=init,
                            seed=seed,
                            task=task.name,
                            image=img,
                            image_label=image_label(img),
                            size=task.size or suite.size or d_size,
                            iterations=task.iterations or suite.iterations or d_iters,
                            options=dict(task.options),
                            metrics=metrics,
                            optimizer=suite.optimizer,
                            history=suite.history,
                            device=device,
                        )
                        if job.key not in seen:
                            seen.add(job.key)
                            jobs.append(job)
    log.info("suite %s: %d jobs", suite.name, len(jobs))
    return jobs
