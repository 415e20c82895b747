"""The one execution path: resolved configurations -> network -> task -> metrics -> results.

:func:`execute` takes :class:`~archbench.config.RunConfig` s, groups them by network (same arch,
init, seed and device: the network is built once per group), splits each group into batches of
configurations that differ only in their image (one batched optimisation per batch; a result does
not depend on the batch it ran in) and yields a :class:`Started` before and one
:class:`~archbench.results.RunOutcome` per configuration after each batch. ``archbench run``,
``archbench stack``, the local executor and the Ray executor's workers all call it.

Two modes:

* ``strict=True`` (``archbench run``, :func:`run_task`): every batch is validated (layers exist,
  images load, sizes fit) before anything runs or is written; an invalid input raises its
  :class:`~archbench.errors.ArchbenchError`.
* ``strict=False`` (sweeps): whatever goes wrong in a run -- a bad image, a non-finite loss, CUDA
  out of memory, any exception -- becomes a failed outcome with its reason, and the rest go on. A
  batch that fails as a whole falls back to running its configurations one by one, so only the
  bad one fails. ``KeyboardInterrupt`` is never caught, and neither is an
  :class:`~archbench.errors.OutputError` (the output folder cannot be written: disk full,
  read-only): every later job would fail the same way, so the sweep stops with that one error
  instead of storing each job as failed.

In strict mode, running out of memory (an image size or batch too large for this machine) raises
:class:`~archbench.errors.ResourceError` with one line instead of a traceback.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from archbench.architectures.base import TappedNetwork
from archbench.config import RunConfig, device_type, parse_stacked, resolve
from archbench.errors import ArchbenchError, OutputError, ResourceError
from archbench.images import save_image
from archbench.metrics import compute_metrics
from archbench.metrics.gram import get_judge, use_judge
from archbench.optimizers import OptimConfig
from archbench.results import Result, RunOutcome, package_versions, write_results
from archbench.tasks import TaskJob, get_task
from archbench.tasks.base import Progress, TaskOutput
from archbench.tasks.phases import run_phases, validate_phases

log = logging.getLogger(__name__)

#: where a configuration's files go: one folder for all (``archbench run``) or a folder per
#: configuration (sweeps: ``lambda c: root / c.key``)
OutDir = Path | Callable[[RunConfig], Path] | None


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "x"


def failure_reason(exc: BaseException) -> str:
    """One line saying why a run failed."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "out of memory: " + str(exc).strip().splitlines()[0]
    if isinstance(exc, ArchbenchError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed (CUDA or host memory)."""
    if isinstance(exc, MemoryError | torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text
                                              or "not enough memory" in text)


def free_memory() -> None:
    """Return cached CUDA memory after a failure or a finished network group."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------
# networks


def build_network(config: RunConfig) -> TappedNetwork:
    """The network of ``config``: ``create_arch(arch, init, seed, device)``, or the paper's stacked
    random network for a ``stacked(...)`` init (:func:`archbench.tasks.stack.build_stacked`)."""
    from archbench.architectures import create_arch

    stacked = parse_stacked(config.init)
    if stacked is None:
        return create_arch(config.arch, init=config.init, seed=config.seed, device=config.device)
    from archbench.tasks.stack import build_stacked

    return build_stacked(
        config.arch, str(stacked["reference"]), candidates=int(stacked["candidates"]), size=int(stacked["size"]),
        iterations=int(stacked["iterations"]), seed=config.seed, init=str(stacked["base"]), device=config.device,
    ).net


def group_by_network(configs: Sequence[RunConfig]) -> list[list[RunConfig]]:
    """Configurations grouped by :attr:`~archbench.config.RunConfig.network_key`, in order of first appearance."""
    groups: dict[tuple, list[RunConfig]] = {}
    for c in configs:
        groups.setdefault(c.network_key, []).append(c)
    return list(groups.values())


def default_batch_limit(device: str) -> int:
    """Largest batch by default: 16 images on CUDA; 1 on the CPU (where batching gains little and
    one run at a time keeps progress fine-grained)."""
    return 16 if device_type(device) == "cuda" else 1


def batches(group: Sequence[RunConfig], limit: int | None = None) -> list[list[RunConfig]]:
    """Split a network group into batches of at most ``limit`` configurations that differ only
    in their image (and never hold one image label twice)."""
    out: list[list[RunConfig]] = []
    open_batches: dict[str, list[RunConfig]] = {}
    for c in group:
        cap = limit or default_batch_limit(c.device)
        batch = open_batches.get(c.batch_key)
        if batch is None or len(batch) >= cap or any(b.image_label == c.image_label for b in batch):
            batch = open_batches[c.batch_key] = []
            out.append(batch)
        batch.append(c)
    return out


# ----------------------------------------------------------------------------------------------
# one batch


@dataclass
class Batch:
    """Validated configurations that differ only in their image, ready to run on ``net``."""

    configs: list[RunConfig]
    net: TappedNetwork
    job: TaskJob

    @classmethod
    def prepare(cls, configs: Sequence[RunConfig], net: TappedNetwork) -> Batch:
        """Validate ``configs`` (one batch) against ``net`` without running or writing anything."""
        first = configs[0]
        task = get_task(first.task)
        job = TaskJob(
            images=[c.image for c in configs],
            size=first.size,
            seed=first.seed,
            optim=OptimConfig(method=first.optimizer, iterations=first.iterations, history=first.history),
            options=first.task_options(),
            device=torch.device(first.device),
            metrics=tuple(first.metrics),
        )
        validate_phases(task, net, job)  # task.validate at every phase's size
        if first.judge:
            get_judge(first.judge)
        return cls(list(configs), net, job)

    def run(self, out_dir: OutDir = None, progress: Progress | None = None) -> list[Result]:
        """Optimise, score, and (with ``out_dir``) write the images and result files."""
        first = self.configs[0]
        log.info(
            "running %s on %s (%s, seed %d) at %d px for %d iterations on %s, %d image(s)",
            first.task, first.arch, first.init, first.seed, first.size, first.iterations, first.device,
            len(self.configs),
        )
        by_label = {c.image_label: c for c in self.configs}
        outputs = run_phases(get_task(first.task), self.net, self.job, progress)
        judge = get_judge(first.judge) if first.judge else None
        versions = package_versions()
        results = []
        for out in outputs:
            config = by_label[out.image]
            refs = {role: img.unsqueeze(0) for role, img in out.references.items()}
            names = [m for m in config.metrics if m not in out.scores]  # scores the task computed stay
            with use_judge(judge):
                values, unavailable = compute_metrics(names, out.result.unsqueeze(0), refs)
            for name, why in unavailable.items():
                log.info("metric %s unavailable: %s", name, why)
            res = Result(
                config=config,
                layer=out.layer,
                final_loss=out.final_loss,
                metrics={**{m: v[0] for m, v in values.items()}, **out.scores},
                iterations_run=out.iterations,
                evaluations=out.evaluations,
                seconds=out.seconds,
                device=str(self.job.device),
                status="failed" if out.failed else "done",
                error=out.failed,
                stalled=out.stalled,
                loss_trace=out.loss_trace,
                extra={**out.extra, **({"unavailable": unavailable} if unavailable else {})},
                versions=versions,
            )
            if out_dir is not None:
                _save_images(_folder(out_dir, config), out, res)
            results.append(res)
        if out_dir is not None:
            for folder in dict.fromkeys(_folder(out_dir, r.config) for r in results):
                write_results(folder, [r for r in results if _folder(out_dir, r.config) == folder])
        return results


def _folder(out_dir: Path | Callable[[RunConfig], Path], config: RunConfig) -> Path:
    return out_dir(config) if callable(out_dir) else Path(out_dir)


def _save_images(folder: Path, out: TaskOutput, res: Result) -> None:
    c = res.config
    base = folder / f"{slug(c.arch)}-{slug(c.init)}-s{c.seed}" / slug(out.image)
    images = {"target": out.references.get("target"), "start": out.start, "result": out.result}
    for kind, img in images.items():
        if img is not None:
            res.paths[kind] = str(save_image(img, base / f"{slug(out.layer)}-{kind}.png"))
    for role, img in out.references.items():
        if role != "target":
            res.paths[role] = str(save_image(img, base / f"{role}.png"))


def outcome_of(config: RunConfig, results: list[Result], started: float, seconds: float,
               build_seconds: float = 0.0, provenance: dict[str, Any] | None = None) -> RunOutcome:
    """The outcome of a run from its results: failed if there are none or any failed."""
    prov = dict(provenance or {})
    if not results:
        return RunOutcome(config, "failed", "the task produced no results", [], started, time.time(), seconds,
                          build_seconds, prov)
    failed = [r for r in results if r.status != "done"]
    error = "; ".join(f"{r.layer}: {r.error or r.status}" for r in failed) if failed else None
    return RunOutcome(config, "failed" if failed else "done", error, results, started, time.time(), seconds,
                      build_seconds, prov)


# ----------------------------------------------------------------------------------------------
# the execution path


@dataclass
class Started:
    """Event: the runs of ``configs`` are about to start (one batch)."""

    configs: list[RunConfig] = field(default_factory=list)


def execute(
    configs: Sequence[RunConfig],
    *,
    net: TappedNetwork | None = None,
    out_dir: OutDir = None,
    batch_images: int | None = None,
    strict: bool = False,
    progress: Progress | None = None,
    skip: Callable[[RunConfig], bool] | None = None,
) -> Iterator[Started | RunOutcome]:
    """Run ``configs``; yield :class:`Started` before each batch and a
    :class:`~archbench.results.RunOutcome` per configuration after it (see the module docstring).

    Args:
        configs: resolved configurations (:func:`archbench.config.resolve`).
        net: a network to run every configuration on instead of building one per group (it must be
            what the configurations describe, or the caller's own, as ``archbench stack`` does).
        out_dir: where images and ``results.csv``/``results.jsonl`` go (None: nothing written).
        batch_images: largest batch (default :func:`default_batch_limit`).
        strict: validate every batch before running any, and raise on invalid input.
        progress: ``(done, total)`` over each batch's optimisation.
        skip: ``skip(config) -> True`` drops a configuration right before its batch starts (a
            concurrent sweep finished it meanwhile).
    """
    if batch_images is not None and batch_images < 1:
        from archbench.errors import ConfigError

        raise ConfigError(f"batch_images must be >= 1, got {batch_images}")
    if strict:
        yield from prepare(configs, net=net, batch_images=batch_images).execute(out_dir, progress)
        return
    for group in group_by_network(configs):
        if skip is not None:
            group = [c for c in group if not skip(c)]
            if not group:
                continue
        t0 = time.perf_counter()
        group_net, error = net, None
        if group_net is None:
            try:
                group_net = build_network(group[0])
            except Exception as exc:
                error = "building the network failed: " + failure_reason(exc)
                log.warning("%s: %s", group[0].describe(), error)
                free_memory()
        build_seconds = time.perf_counter() - t0
        provenance = _network_provenance(group_net)
        for i, batch in enumerate(batches(group, batch_images)):
            if i > 0 and skip is not None:
                batch = [c for c in batch if not skip(c)]
            if not batch:
                continue
            yield Started(batch)
            if error is not None:
                now = time.time()
                for c in batch:
                    yield RunOutcome(c, "failed", error, [], now, now, 0.0, build_seconds, {})
                    build_seconds = 0.0
                continue
            for outcome in _run_batch_or_each(batch, group_net, out_dir, progress, provenance):
                outcome.build_seconds, build_seconds = build_seconds, 0.0
                yield outcome
        del group_net
        free_memory()


@contextmanager
def _memory_error(doing: str, advice: str) -> Iterator[None]:
    """Turn running out of memory while ``doing`` into one :class:`ResourceError` line."""
    try:
        yield
    except ArchbenchError:
        raise
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        free_memory()
        raise ResourceError(f"out of memory {doing} ({failure_reason(exc)}); try {advice}") from None


@dataclass
class Plan:
    """Validated batches with their networks, ready to run (see :func:`prepare`)."""

    batches: list[Batch] = field(default_factory=list)
    build_seconds: list[float] = field(default_factory=list)

    @property
    def configs(self) -> list[RunConfig]:
        return [c for b in self.batches for c in b.configs]

    def execute(self, out_dir: OutDir = None, progress: Progress | None = None) -> Iterator[Started | RunOutcome]:
        """Run the batches in order; yield :class:`Started` and one outcome per configuration."""
        for batch, build_seconds in zip(self.batches, self.build_seconds, strict=True):
            yield Started(batch.configs)
            started, t0 = time.time(), time.perf_counter()
            first = batch.configs[0]
            with _memory_error(f"running {first.task} on {first.arch} at {first.size} px with {len(batch.configs)} "
                               f"image(s) on {first.device}", "a smaller --size or fewer images"):
                results = batch.run(out_dir, progress)
            seconds = (time.perf_counter() - t0) / len(batch.configs)
            provenance = {**_network_provenance(batch.net), "batch": len(batch.configs)}
            for k, c in enumerate(batch.configs):
                mine = [r for r in results if r.key == c.key]
                yield outcome_of(c, mine, started, seconds, build_seconds if k == 0 else 0.0, provenance)

    def run(self, out_dir: OutDir = None, progress: Progress | None = None) -> list[RunOutcome]:
        """:meth:`execute` to the end; the outcomes."""
        return [ev for ev in self.execute(out_dir, progress) if isinstance(ev, RunOutcome)]


def prepare(configs: Sequence[RunConfig], *, net: TappedNetwork | None = None, batch_images: int | None = None) -> Plan:
    """Build every network and validate every batch of ``configs`` without running or writing
    anything; invalid input raises its :class:`~archbench.errors.ArchbenchError`."""
    plan = Plan()
    for group in group_by_network(configs):
        t0 = time.perf_counter()
        first = group[0]
        with _memory_error(f"preparing {first.task} on {first.arch} at {first.size} px on {first.device}",
                           "a smaller --size or architecture"):
            group_net = net if net is not None else build_network(first)
            build_seconds = time.perf_counter() - t0
            for batch in batches(group, batch_images):
                plan.batches.append(Batch.prepare(batch, group_net))
                plan.build_seconds.append(build_seconds)
                build_seconds = 0.0
    return plan


def _run_batch_or_each(batch: list[RunConfig], net: TappedNetwork, out_dir: OutDir, progress: Progress | None,
                       provenance: dict[str, Any]) -> list[RunOutcome]:
    """Run one batch; when it fails as a whole, run its configurations one by one."""
    started, t0 = time.time(), time.perf_counter()
    try:
        results = Batch.prepare(batch, net).run(out_dir, progress)
    except OutputError:
        raise  # the output folder cannot be written: every job would fail the same way
    except Exception as exc:
        reason = failure_reason(exc)
        if not isinstance(exc, ArchbenchError):
            log.debug("%s failed:\n%s", batch[0].describe(), traceback.format_exc())
        free_memory()
        if len(batch) == 1:
            log.warning("%s failed: %s", batch[0].describe(), reason)
            return [RunOutcome(batch[0], "failed", reason, [], started, time.time(), time.perf_counter() - t0, 0.0,
                               provenance)]
        log.info("batch of %d runs failed as a whole (%s); running them one by one", len(batch), reason)
        return [o for c in batch for o in _run_batch_or_each([c], net, out_dir, progress, provenance)]
    seconds = (time.perf_counter() - t0) / len(batch)
    provenance = {**provenance, "batch": len(batch)}
    return [outcome_of(c, [r for r in results if r.key == c.key], started, seconds, 0.0, provenance) for c in batch]


def _network_provenance(net: TappedNetwork | None) -> dict[str, Any]:
    """What a run records about its network beyond its configuration (trained weights' source,
    the stacked network's choices)."""
    extra = dict(net.provenance.extra) if net is not None else {}
    return {"network": extra} if extra else {}


# ----------------------------------------------------------------------------------------------
# Python convenience


@dataclass
class RunReport:
    """What :func:`run_task` produced.

    Attributes:
        configs: the resolved configurations (one per image).
        outcomes: one :class:`~archbench.results.RunOutcome` per configuration.
        files: result files written (empty when no ``out_dir``).
    """

    configs: list[RunConfig]
    outcomes: list[RunOutcome]
    files: list[Path] = field(default_factory=list)

    @property
    def results(self) -> list[Result]:
        """Every outcome's results, in order."""
        return [r for o in self.outcomes for r in o.results]


def run_configs(
    configs: Sequence[RunConfig],
    *,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    net: TappedNetwork | None = None,
    batch_images: int | None = None,
    plan: Plan | None = None,
) -> RunReport:
    """Run resolved ``configs`` strictly (invalid input raises before anything runs) and collect
    the outcomes; every image in one batch unless ``batch_images`` says otherwise. ``plan``: the
    :func:`prepare` d plan of these configurations, when the caller validated them first."""
    out = Path(out_dir) if out_dir is not None else None
    plan = plan or prepare(configs, net=net, batch_images=batch_images or max(1, len(configs)))
    outcomes = plan.run(out, progress)
    files = [out / "results.csv", out / "results.jsonl"] if out is not None and outcomes else []
    return RunReport(list(configs), outcomes, files)


def run_task(
    arch: str,
    task: str = "reconstruct",
    images: str | Sequence[str] = ("astronaut",),
    *,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    net: TappedNetwork | None = None,
    **settings: Any,
) -> RunReport:
    """Resolve (:func:`archbench.config.resolve`) and run ``task`` on ``arch`` for ``images``.

    Args:
        arch: architecture spec (``"vgg19"``, ``"vgg19(pool=max)"``, ``"tv:resnet18"``, ``"f.py:make"``).
        task: task name (``archbench list tasks``).
        images: built-in image names, files or folders.
        out_dir: where to write PNGs and ``results.csv``/``results.jsonl`` (nothing written if None).
        progress: callback ``(done, total)`` over the optimisation.
        net: an already built network to run on (built from ``arch``/``init``/``seed`` otherwise).
        **settings: anything :func:`archbench.config.resolve` takes: ``size``, ``iterations``,
            ``seed``, ``init``, ``device``, ``metrics``, ``options``, ``optimizer``, ``history``,
            ``judge``.

    Everything that can be validated is validated before any file is written.
    """
    return run_configs(resolve(arch, task, images, **settings), out_dir=out_dir, progress=progress, net=net)


__all__ = [
    "Batch",
    "Plan",
    "RunReport",
    "Started",
    "batches",
    "build_network",
    "execute",
    "group_by_network",
    "prepare",
    "run_configs",
    "run_task",
]
