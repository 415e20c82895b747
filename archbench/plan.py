"""The run plan: resolved configurations grouped by network and batched, and the one loop that
runs them (:meth:`Plan.execute`).

A :class:`Plan` groups :class:`~archbench.config.RunConfig` s by network (same arch, init, seed
and device: the network is built once per group) and splits each group into batches of
configurations that differ only in their image (one batched optimisation per batch; a result does
not depend on the batch it ran in). :meth:`Plan.execute` yields a :class:`Started` before and one
:class:`~archbench.results.RunOutcome` per configuration after each batch. Nothing else runs a job:
:func:`archbench.runner.execute` (the CLI, sweeps, the Ray workers, Python) and the stacked
network's candidate reconstructions (:mod:`archbench.tasks.stack`) go through it.

What happens when something fails is the plan's *failure policy*:

* :data:`STRICT` (``archbench run``, :func:`archbench.runner.run_task`): :func:`prepare` builds
  every network and validates every batch (layers exist, images load, sizes fit) before anything
  runs or is written; an invalid input raises its :class:`~archbench.errors.ArchbenchError`, and
  running out of memory raises :class:`~archbench.errors.ResourceError` with one line instead of
  a traceback.
* :data:`LENIENT` (sweeps): networks are built when their group comes; whatever goes wrong in a
  run -- a network that cannot be built, a bad image, a non-finite loss, CUDA out of memory, any
  exception -- becomes a failed outcome with its reason, and the rest go on. A batch that fails
  as a whole falls back to running its configurations one by one, so only the bad one fails.
  ``KeyboardInterrupt`` is never caught, and neither is an :class:`~archbench.errors.OutputError`
  (the output folder cannot be written: disk full, read-only): every later job would fail the
  same way, so the sweep stops with that one error instead of storing each job as failed.

This module runs networks it is given or builds them with the ``build`` function it is given
(:func:`archbench.runner.build_network` knows the stacked init); it knows nothing above a run.
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
from archbench.config import RunConfig, device_type
from archbench.errors import ArchbenchError, ConfigError, OutputError, ResourceError
from archbench.images import save_image
from archbench.metrics import compute_metrics
from archbench.metrics.gram import get_judge, use_judge
from archbench.optimizers import OptimConfig
from archbench.results import Result, RunOutcome, package_versions, write_results
from archbench.tasks import TaskJob, get_task
from archbench.tasks.base import Progress, TaskOutput
from archbench.tasks.phases import run_phases, validate_phases

log = logging.getLogger(__name__)

#: failure policies of :meth:`Plan.execute` (see the module docstring)
STRICT, LENIENT = "strict", "lenient"
FAILURE_POLICIES = (STRICT, LENIENT)

#: where a configuration's files go: one folder for all (``archbench run``) or a folder per
#: configuration (sweeps: ``lambda c: root / c.key``)
OutDir = Path | Callable[[RunConfig], Path] | None
#: builds the network of a configuration (:func:`archbench.runner.build_network`)
Build = Callable[[RunConfig], TappedNetwork]


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
                _save_images(_folder(out_dir, config), out, res, shared=not callable(out_dir))
            results.append(res)
        if out_dir is not None:
            for folder in dict.fromkeys(_folder(out_dir, r.config) for r in results):
                write_results(folder, [r for r in results if _folder(out_dir, r.config) == folder])
        return results


def _folder(out_dir: Path | Callable[[RunConfig], Path], config: RunConfig) -> Path:
    return out_dir(config) if callable(out_dir) else Path(out_dir)


def _save_images(folder: Path, out: TaskOutput, res: Result, *, shared: bool) -> None:
    """Write a result's PNGs under ``folder``: ``ARCH-INIT-sSEED/IMAGE/``, then, where the folder is
    shared by runs (``archbench run``'s ``--out``, ``run_task(out_dir=...)``), one folder per run
    ``TASK-KEY/``, so that two runs differing only in their settings (iterations, size, options)
    never overwrite each other's pictures; a sweep's folder is already one per run key."""
    c = res.config
    base = folder / f"{slug(c.arch)}-{slug(c.init)}-s{c.seed}" / slug(out.image)
    if shared:
        base = base / f"{slug(c.task)}-{c.key}"
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


@dataclass
class Started:
    """Event: the runs of ``configs`` are about to start (one batch)."""

    configs: list[RunConfig] = field(default_factory=list)


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
class Group:
    """Configurations that share a network, in batches.

    Attributes:
        batches: the batches (:func:`batches`), in order.
        net: the network, once built (or given); None until then.
        build_seconds: time spent building it (0 when given).
        prepared: the validated batches (:meth:`Batch.prepare`), once :func:`prepare` checked them.
    """

    batches: list[list[RunConfig]]
    net: TappedNetwork | None = None
    build_seconds: float = 0.0
    prepared: list[Batch] | None = None


@dataclass
class Plan:
    """Configurations grouped by network and batched, ready to run (:func:`plan` makes one,
    :func:`prepare` a validated one)."""

    groups: list[Group] = field(default_factory=list)
    build: Build | None = None
    batch_images: int | None = None

    @property
    def configs(self) -> list[RunConfig]:
        return [c for g in self.groups for b in g.batches for c in b]

    @property
    def batches(self) -> list[Batch]:
        """The validated batches of a prepared plan."""
        return [b for g in self.groups for b in (g.prepared or [])]

    def execute(
        self,
        out_dir: OutDir = None,
        progress: Progress | None = None,
        *,
        failures: str = STRICT,
        skip: Callable[[RunConfig], bool] | None = None,
    ) -> Iterator[Started | RunOutcome]:
        """Run the batches in order; yield :class:`Started` before each and one outcome per
        configuration after it.

        Args:
            out_dir: where images and ``results.csv``/``results.jsonl`` go (None: nothing written).
            progress: ``(done, total)`` over each batch's optimisation.
            failures: :data:`STRICT` (raise) or :data:`LENIENT` (failed outcomes; see the module docstring).
            skip: ``skip(config) -> True`` drops a configuration right before its batch starts (a
                concurrent sweep finished it meanwhile).
        """
        if failures not in FAILURE_POLICIES:
            raise ConfigError(f"unknown failure policy {failures!r}; valid: {', '.join(FAILURE_POLICIES)}")
        strict = failures == STRICT
        for group in self.groups:
            configs = [c for b in group.batches for c in b]
            kept = [c for c in configs if skip is None or not skip(c)]
            if not kept:
                continue
            todo = group.batches if len(kept) == len(configs) else batches(kept, self.batch_images)
            net, error, build_seconds = self._network(group, strict)
            provenance = _network_provenance(net)
            for i, batch in enumerate(todo):
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
                if strict:
                    ready = [b for b in group.prepared or [] if b.configs == batch]
                    outcomes = _run_strict(ready[0] if ready else _prepare_batch(batch, net), out_dir, progress,
                                           provenance)
                else:
                    outcomes = _run_batch_or_each(batch, net, out_dir, progress, provenance)
                for outcome in outcomes:
                    outcome.build_seconds, build_seconds = build_seconds, 0.0
                    yield outcome
            del net
            free_memory()

    def _network(self, group: Group, strict: bool) -> tuple[TappedNetwork | None, str | None, float]:
        """The group's network (built now unless it was given or prepared), the reason it could
        not be built (lenient only), and its build time."""
        if group.net is not None:
            return group.net, None, group.build_seconds
        first = group.batches[0][0]
        if self.build is None:
            raise ConfigError("a plan without networks needs a build function (archbench.runner.build_network)")
        t0 = time.perf_counter()
        if strict:
            with _memory_error(f"preparing {first.task} on {first.arch} at {first.size} px on {first.device}",
                               "a smaller --size or architecture"):
                return self.build(first), None, time.perf_counter() - t0
        try:
            return self.build(first), None, time.perf_counter() - t0
        except Exception as exc:
            error = "building the network failed: " + failure_reason(exc)
            log.warning("%s: %s", first.describe(), error)
            free_memory()
            return None, error, time.perf_counter() - t0

    def run(self, out_dir: OutDir = None, progress: Progress | None = None, *, failures: str = STRICT) -> list[RunOutcome]:
        """:meth:`execute` to the end; the outcomes."""
        return [ev for ev in self.execute(out_dir, progress, failures=failures) if isinstance(ev, RunOutcome)]


def plan(configs: Sequence[RunConfig], *, net: TappedNetwork | None = None, build: Build | None = None,
         batch_images: int | None = None) -> Plan:
    """The plan of ``configs``: grouped by network and batched (at most ``batch_images`` per
    batch, default :func:`default_batch_limit`), nothing built or checked yet. ``net``: one
    network for every group (the caller's); else ``build`` builds each group's when it runs."""
    if batch_images is not None and batch_images < 1:
        raise ConfigError(f"batch_images must be >= 1, got {batch_images}")
    groups = [Group(batches(g, batch_images), net=net) for g in group_by_network(configs)]
    return Plan(groups, build, batch_images)


def prepare(configs: Sequence[RunConfig], *, net: TappedNetwork | None = None, build: Build | None = None,
            batch_images: int | None = None) -> Plan:
    """:func:`plan`, with every network built and every batch validated, without running or
    writing anything; invalid input raises its :class:`~archbench.errors.ArchbenchError`."""
    p = plan(configs, net=net, build=build, batch_images=batch_images)
    for group in p.groups:
        group.net, _, group.build_seconds = p._network(group, strict=True)
        first = group.batches[0][0]
        with _memory_error(f"preparing {first.task} on {first.arch} at {first.size} px on {first.device}",
                           "a smaller --size or architecture"):
            group.prepared = [Batch.prepare(b, group.net) for b in group.batches]
    return p


def _prepare_batch(batch: list[RunConfig], net: TappedNetwork) -> Batch:
    first = batch[0]
    with _memory_error(f"preparing {first.task} on {first.arch} at {first.size} px on {first.device}",
                       "a smaller --size or architecture"):
        return Batch.prepare(batch, net)


def _run_strict(batch: Batch, out_dir: OutDir, progress: Progress | None,
                provenance: dict[str, Any]) -> list[RunOutcome]:
    """Run one validated batch; failures raise."""
    started, t0 = time.time(), time.perf_counter()
    first = batch.configs[0]
    with _memory_error(f"running {first.task} on {first.arch} at {first.size} px with {len(batch.configs)} "
                       f"image(s) on {first.device}", "a smaller --size or fewer images"):
        results = batch.run(out_dir, progress)
    seconds = (time.perf_counter() - t0) / len(batch.configs)
    provenance = {**provenance, "batch": len(batch.configs)}
    return [outcome_of(c, [r for r in results if r.key == c.key], started, seconds, 0.0, provenance)
            for c in batch.configs]


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


