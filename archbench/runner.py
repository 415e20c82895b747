"""Running work: :func:`execute`, the one public function that runs resolved configurations, for
the CLI, sweeps, the Ray workers and Python callers alike.

The path of a run: a :class:`~archbench.config.RunConfig` (:func:`archbench.config.resolve`) ->
a :class:`~archbench.plan.Plan` (grouped by network, batched) -> :meth:`Plan.execute
<archbench.plan.Plan.execute>`, the one loop -> :class:`~archbench.results.RunOutcome` s, which
sweeps store (:class:`archbench.store.ResultStore`) and reports read back as a DataFrame
(:func:`archbench.load_results`). Whether a failure raises or becomes a failed outcome is the
plan's failure policy (:data:`~archbench.plan.STRICT`, :data:`~archbench.plan.LENIENT`; see
:mod:`archbench.plan`).

This module adds what the plan does not know: how to build a configuration's network
(:func:`build_network`: ``create_arch``, or the paper's stacked random network for a
``stacked(...)`` init) and :func:`run_task` (resolve, run strictly, collect) for Python.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.architectures.base import TappedNetwork
from archbench.config import RunConfig, parse_stacked, resolve
from archbench.plan import (  # noqa: F401  (re-exported: the plan's parts, for callers of the runner)
    FAILURE_POLICIES,
    LENIENT,
    STRICT,
    Batch,
    OutDir,
    Plan,
    Started,
    batches,
    default_batch_limit,
    failure_reason,
    group_by_network,
    slug,
)
from archbench.plan import plan as make_plan
from archbench.plan import prepare as prepare_plan
from archbench.results import Result, RunOutcome
from archbench.tasks.base import Progress
from archbench.tasks.stack import build_stacked

log = logging.getLogger(__name__)


def build_network(config: RunConfig) -> TappedNetwork:
    """The network of ``config``: ``create_arch(arch, init, seed, device)``, or the paper's stacked
    random network for a ``stacked(...)`` init (:func:`archbench.tasks.stack.build_stacked`)."""
    from archbench.architectures import create_arch

    stacked = parse_stacked(config.init)
    if stacked is None:
        return create_arch(config.arch, init=config.init, seed=config.seed, device=config.device)
    return build_stacked(
        config.arch, str(stacked["reference"]), candidates=int(stacked["candidates"]), size=int(stacked["size"]),
        iterations=int(stacked["iterations"]), seed=config.seed, init=str(stacked["base"]), device=config.device,
    ).net


def prepare(configs: Sequence[RunConfig], *, net: TappedNetwork | None = None, batch_images: int | None = None) -> Plan:
    """The validated plan of ``configs`` (:func:`archbench.plan.prepare` with
    :func:`build_network`): every network built and every batch checked, nothing run or written;
    invalid input raises its :class:`~archbench.errors.ArchbenchError`."""
    return prepare_plan(configs, net=net, build=build_network, batch_images=batch_images)


def execute(
    configs: Sequence[RunConfig] | Plan,
    *,
    failures: str = LENIENT,
    out_dir: OutDir = None,
    net: TappedNetwork | None = None,
    batch_images: int | None = None,
    progress: Progress | None = None,
    skip: Callable[[RunConfig], bool] | None = None,
    strict: bool | None = None,
) -> Iterator[Started | RunOutcome]:
    """Run ``configs``; yield :class:`~archbench.plan.Started` before each batch and a
    :class:`~archbench.results.RunOutcome` per configuration after it.

    Args:
        configs: resolved configurations (:func:`archbench.config.resolve`), or a :func:`prepare` d
            plan of them (the caller validated them first, as ``archbench run`` does).
        failures: :data:`~archbench.plan.LENIENT` (sweeps: failures become failed outcomes) or
            :data:`~archbench.plan.STRICT` (every batch validated before any runs; failures raise).
            ``strict=True`` is the same as ``failures="strict"``.
        out_dir: where images and ``results.csv``/``results.jsonl`` go (None: nothing written).
        net: a network to run every configuration on instead of building one per group (it must be
            what the configurations describe, or the caller's own, as ``archbench stack`` does).
        batch_images: largest batch (default :func:`~archbench.plan.default_batch_limit`).
        progress: ``(done, total)`` over each batch's optimisation.
        skip: ``skip(config) -> True`` drops a configuration right before its batch starts (a
            concurrent sweep finished it meanwhile).
    """
    if strict is not None:
        failures = STRICT if strict else LENIENT
    if isinstance(configs, Plan):
        work = configs
    elif failures == STRICT:
        work = prepare_plan(configs, net=net, build=build_network, batch_images=batch_images)
    else:
        work = make_plan(configs, net=net, build=build_network, batch_images=batch_images)
    return work.execute(out_dir, progress, failures=failures, skip=skip)


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

    @classmethod
    def collect(cls, configs: Sequence[RunConfig], events: Iterable[Any], out_dir: str | Path | None = None) -> RunReport:
        """The report of :func:`execute`'s events (run to the end) for ``configs`` written to ``out_dir``."""
        outcomes = [ev for ev in events if isinstance(ev, RunOutcome)]
        out = Path(out_dir) if out_dir is not None else None
        files = [out / "results.csv", out / "results.jsonl"] if out is not None and outcomes else []
        return cls(list(configs), outcomes, files)


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
    """Resolve (:func:`archbench.config.resolve`) and run ``task`` on ``arch`` for ``images``
    strictly (:func:`execute` with ``failures="strict"``), every image in one batch.

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
    configs = resolve(arch, task, images, **settings)
    out = Path(out_dir) if out_dir is not None else None
    events = execute(configs, failures=STRICT, out_dir=out, progress=progress, net=net,
                     batch_images=max(1, len(configs)))
    return RunReport.collect(configs, events, out)


__all__ = [
    "FAILURE_POLICIES",
    "LENIENT",
    "STRICT",
    "Batch",
    "Plan",
    "RunReport",
    "Started",
    "batches",
    "build_network",
    "execute",
    "group_by_network",
    "prepare",
    "run_task",
]
