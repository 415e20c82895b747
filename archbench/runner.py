"""Run a task on an architecture and score it: the library behind ``archbench run`` and sweeps.

spec -> network -> task (optimisation) -> metrics -> :class:`~archbench.results.Result` rows,
and optionally the images and result files in an output folder.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from archbench.architectures import create_arch
from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError
from archbench.images import expand_sources, save_image
from archbench.metrics import compute_metrics, get_metric
from archbench.metrics.gram import Judge, judge_for, use_judge
from archbench.optimizers import OptimConfig
from archbench.results import Result, package_versions, write_results
from archbench.tasks import TaskJob, get_task
from archbench.tasks.base import Progress
from archbench.tasks.phases import run_phases, validate_phases

log = logging.getLogger(__name__)

#: (size, iterations) used when not given: the paper's settings on a GPU, and settings that
#: finish the default job in under 3 minutes on a 2-core CPU
GPU_DEFAULTS = (256, 500)
CPU_DEFAULTS = (128, 100)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is checked."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"invalid device {device!r}; valid: auto, cpu, cuda, cuda:N") from None


def default_size_iterations(device: torch.device) -> tuple[int, int]:
    """Default image size and iteration count for ``device``."""
    return GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "x"


@dataclass
class RunReport:
    """What :func:`run_task` produced.

    Attributes:
        results: one :class:`Result` per optimisation problem.
        unavailable: metric name -> why it could not be computed (e.g. missing weights).
        size, iterations, device: the settings actually used.
        files: result files written (empty when no ``out_dir``).
    """

    results: list[Result]
    unavailable: dict[str, str] = field(default_factory=dict)
    size: int = 0
    iterations: int = 0
    device: str = "cpu"
    files: list[Path] = field(default_factory=list)


@dataclass
class PreparedRun:
    """A validated run, ready to execute: see :func:`prepare_run`."""

    arch: str
    task: str
    init: str
    seed: int
    net: TappedNetwork
    job: TaskJob
    metrics: list[str]
    settings: dict[str, Any]
    judge: Judge | None = None  # the network that scores Gram distances (``gram`` metric)

    @property
    def size(self) -> int:
        return self.job.size

    @property
    def iterations(self) -> int:
        return self.job.optim.iterations

    @property
    def device(self) -> torch.device:
        return self.job.device

    def execute(
        self,
        out_dir: str | Path | Callable[[str], Path] | None = None,
        progress: Progress | None = None,
    ) -> RunReport:
        """Optimise, score, and (with ``out_dir``) write the images and result files.

        ``out_dir`` may also be a function of an image label giving that image's own folder (a
        sweep running several jobs as one batch writes each job's files into the job's folder).
        """
        log.info(
            "running %s on %s (%s, seed %d) at %d px for %d iterations on %s",
            self.task, self.arch, self.init, self.seed, self.size, self.iterations, self.device,
        )
        if out_dir is None or callable(out_dir):
            folder_of = out_dir
        else:
            root = Path(out_dir)

            def folder_of(_image: str) -> Path:
                return root

        outputs = run_phases(get_task(self.task), self.net, self.job, progress)
        versions = package_versions()
        report = RunReport(results=[], size=self.size, iterations=self.iterations, device=str(self.device))
        for out in outputs:
            refs = {role: img.unsqueeze(0) for role, img in out.references.items()}
            # scores the task computed itself (TaskOutput.scores) are not recomputed here
            names = [m for m in self.metrics if m not in out.scores]
            with use_judge(self.judge):
                values, unavailable = compute_metrics(names, out.result.unsqueeze(0), refs)
            report.unavailable.update(unavailable)
            res = Result(
                arch=self.arch,
                init=self.init,
                seed=self.seed,
                task=self.task,
                layer=out.layer,
                image=out.image,
                size=self.size,
                iterations=out.iterations,
                evaluations=out.evaluations,
                final_loss=out.final_loss,
                metrics={**{m: v[0] for m, v in values.items()}, **out.scores},
                seconds=out.seconds,
                device=str(self.device),
                status="failed" if out.failed else "done",
                error=out.failed,
                loss_trace=out.loss_trace,
                settings=dict(self.settings),
                extra={**out.extra, "judge": self.judge.label} if self.judge else out.extra,
                versions=versions,
            )
            if out_dir is not None:
                self._save_images(folder_of(out.image), out, res)
            report.results.append(res)
        if out_dir is not None:
            for folder in dict.fromkeys(folder_of(r.image) for r in report.results):
                mine = [r for r in report.results if folder_of(r.image) == folder]
                report.files += list(write_results(folder, mine))
        return report

    def _save_images(self, out_dir: Path, out, res: Result) -> None:
        base = out_dir / f"{slug(self.arch)}-{slug(self.init)}-s{self.seed}" / slug(out.image)
        images = {"target": out.references.get("target"), "start": out.start, "result": out.result}
        for kind, img in images.items():
            if img is not None:
                res.paths[kind] = str(save_image(img, base / f"{slug(out.layer)}-{kind}.png"))
        for role, img in out.references.items():
            if role != "target":
                res.paths[role] = str(save_image(img, base / f"{role}.png"))


def prepare_run(
    arch: str,
    task: str = "reconstruct",
    images: Sequence[str] = ("astronaut",),
    *,
    size: int | None = None,
    iterations: int | None = None,
    seed: int = 0,
    init: str = "gaussian:0.015",
    device: str | torch.device = "auto",
    metrics: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
    optimizer: str = "lbfgs",
    history: int = 100,
    net: TappedNetwork | None = None,
    judge: str = "auto",
) -> PreparedRun:
    """Resolve defaults, build the network and validate everything (names, layers, images, sizes,
    checkpoints) without running or writing anything. Arguments as for :func:`run_task`."""
    dev = resolve_device(device)
    d_size, d_iters = default_size_iterations(dev)
    size = size or d_size
    iterations = iterations or d_iters
    task_obj = get_task(task)
    optimizer = task_obj.fixed_optimizer or optimizer
    metric_names = list(metrics) if metrics is not None else list(task_obj.default_metrics)
    for name in metric_names:
        get_metric(name)
    # the Gram-distance judge; refuses a candidate that would grade itself
    judge_obj = judge_for(arch, init, seed, judge) if "gram" in metric_names else None
    job = TaskJob(
        images=expand_sources(list(images)),
        size=size,
        seed=seed,
        optim=OptimConfig(method=optimizer, iterations=iterations, history=history),
        options=dict(options or {}),
        device=dev,
    )
    if net is None:
        net = create_arch(arch, init=init, seed=seed, device=dev)
    validate_phases(task_obj, net, job)  # task.validate at every phase's size
    settings = {"iterations_budget": iterations, "optimizer": optimizer, "history": history, **job.options}
    return PreparedRun(arch, task, init, seed, net, job, metric_names, settings, judge_obj)


def run_task(
    arch: str,
    task: str = "reconstruct",
    images: Sequence[str] = ("astronaut",),
    *,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    **kwargs: Any,
) -> RunReport:
    """Build ``arch``, run ``task`` on ``images``, score the results and optionally save them.

    Args:
        arch: architecture spec (``"vgg19"``, ``"vgg19(pool=max)"``, ``"tv:resnet18"``, ``"f.py:make"``).
        task: task name (``archbench list tasks``).
        images: built-in image names, files or folders.
        out_dir: where to write PNGs and ``results.csv``/``results.jsonl`` (nothing written if None).
        progress: callback ``(done, total)`` over the optimisation.
        size: image side in pixels (default: 256 on GPU, 128 on CPU).
        iterations: optimiser iterations per problem (default: 500 on GPU, 100 on CPU).
        seed: seed of the weights and of the white-noise start.
        init: weight initialisation (see :mod:`archbench.architectures.init`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        metrics: metric names (default: the task's defaults).
        options: task options (e.g. ``{"layers": ["pool3"]}`` for reconstruct).
        optimizer: ``"lbfgs"`` or ``"adam"``; ``history``: L-BFGS history size.
        net: an already built network to reuse (built from ``arch``/``init``/``seed``).
        judge: network scoring the ``gram`` metric: ``auto``, ``trained-vgg16``, ``random-vgg19``
            (see :mod:`archbench.metrics.gram`; a candidate colliding with it is refused).

    Everything that can be validated is validated before any file is written.
    """
    return prepare_run(arch, task, images, **kwargs).execute(out_dir, progress)
