"""Coarse-to-fine optimisation ("phases", as in Champandard's neural-doodle), for every task.

With the generic task option ``phases = N`` (``archbench run --phases N``; default 1 = off) a
task runs ``N`` times at increasing sizes:

    phase p = 1 … N runs at side  s_p = size // 2^(N−p)   (the last phase at the full size)

* Phase 1 starts where the task always starts (white noise, the content image, …).
* Phase ``p > 1`` starts, for every output (image label, layer label), from the result of phase
  ``p − 1`` for the same output, bilinearly upsampled to ``s_p`` (``align_corners=False``) and
  clamped to [0, 1]. Tasks read it through :attr:`TaskJob.start` /
  :meth:`TaskJob.start_batch`; everything else (references, layer weights, matching) is
  recomputed at each phase's size.
* **Budget:** every phase runs the full iteration budget (``--iters`` is *per phase*, as
  neural-doodle's ``--iterations``), so ``N`` phases run ``N × iters`` iterations in all. The
  coarse phases are cheap: phase ``p`` has ``4^−(N−p)`` of the full size's pixels.

The final :class:`TaskOutput` of each problem has the full size and:

* ``result``: the last phase's result; ``start``: phase 1's start (at phase 1's size);
* ``loss_trace``: the phases' traces concatenated (the values of different phases are losses at
  different sizes and are not comparable across a boundary);
* ``iterations``, ``evaluations``, ``seconds``: summed over the phases; ``final_loss`` and
  ``scores``: the last phase's;
* ``failed``: ``None``, or the first failure as ``"phase p/N: reason"`` (later phases still run
  from the failed phase's last finite iterate);
* ``stalled``: true when every phase stalled (the result never left its start), None when a
  phase did not say;
* ``extra``: the last phase's, plus ``extra["phases"]``: one record per phase with ``phase``,
  ``size``, ``iterations``, ``evaluations``, ``final_loss``, ``seconds``, ``failed`` and
  ``trace_start`` (index in ``loss_trace`` where the phase's trace begins).
"""

from __future__ import annotations

import dataclasses
import logging

import torch
import torch.nn.functional as F

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError
from archbench.tasks.base import GENERIC_OPTIONS, Progress, Task, TaskJob, TaskOutput, check_phases  # noqa: F401

log = logging.getLogger(__name__)

def phases_of(job: TaskJob) -> int:
    """The job's number of phases (option ``phases``, default 1)."""
    return check_phases(job.options.get("phases", 1))


def phase_sizes(size: int, phases: int) -> list[int]:
    """Sides of the phases: ``size // 2^(phases − p)`` for ``p = 1 … phases``.

    Raises:
        ConfigError: a phase would be smaller than 1 px.
    """
    sizes = [size >> (phases - p) for p in range(1, phases + 1)]
    if sizes[0] < 1:
        raise ConfigError(f"{phases} phases of a {size} px image would start below 1 px; use fewer phases")
    return sizes


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(3, H, W)`` image bilinearly resized to ``size × size`` (``align_corners=False``), in [0, 1]."""
    if image.shape[-1] == size and image.shape[-2] == size:
        return image.clamp(0, 1)
    out = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", align_corners=False)
    return out[0].clamp(0, 1).to(image.dtype)


def validate_phases(task: Task, net: TappedNetwork, job: TaskJob) -> None:
    """``task.validate`` at the size of every phase (the smallest must still fit the layers)."""
    n = phases_of(job)
    sizes = phase_sizes(job.size, n)
    for p, s in enumerate(sizes, 1):
        try:
            task.validate(net, dataclasses.replace(job, size=s))
        except ConfigError as exc:
            if n == 1:
                raise
            raise ConfigError(f"phase {p} of {n} ({s} px): {exc}") from None


def run_phases(task: Task, net: TappedNetwork, job: TaskJob, progress: Progress | None = None) -> list[TaskOutput]:
    """Run ``task`` on ``job`` with its ``phases`` option (see the module docstring)."""
    n = phases_of(job)
    if n == 1:
        return task.run(net, job, progress)
    sizes = phase_sizes(job.size, n)
    previous: dict[tuple[str, str], TaskOutput] | None = None
    history: dict[tuple[str, str], list[TaskOutput]] = {}
    order: list[tuple[str, str]] = []
    for p, s in enumerate(sizes):
        if previous is None:
            start = None if job.start is None else {k: resize(v, s) for k, v in job.start.items()}
        else:
            start = {k: resize(out.result, s).to(job.device) for k, out in previous.items()}
        phase_job = dataclasses.replace(job, size=s, start=start)

        def report(done: int, total: int, p: int = p) -> None:
            if progress:
                progress(p * total + done, n * total)

        log.info("phase %d of %d: %s at %d px", p + 1, n, task.name, s)
        outputs = task.run(net, phase_job, report)
        keyed: dict[tuple[str, str], TaskOutput] = {}
        for out in outputs:
            key = (out.image, out.layer)
            if key in keyed:
                raise ConfigError(
                    f"phases need one output per image and layer, but {out.image!r} / {out.layer!r} occurs twice "
                    "(the same image given twice?)"
                )
            keyed[key] = out
        if previous is None:
            order = list(keyed)
        elif set(keyed) != set(previous):
            raise RuntimeError(f"task {task.name!r} produced different outputs in phase {p + 1} than in phase {p}")
        for key, out in keyed.items():
            history.setdefault(key, []).append(out)
        previous = keyed
    return [_combine(history[key], sizes) for key in order]


def _combine(outs: list[TaskOutput], sizes: list[int]) -> TaskOutput:
    """One output from the phases' outputs of one problem (see the module docstring)."""
    n = len(outs)
    trace: list[float] = []
    records = []
    failed = None
    for p, (out, s) in enumerate(zip(outs, sizes, strict=True), 1):
        records.append(
            {
                "phase": p,
                "size": s,
                "iterations": out.iterations,
                "evaluations": out.evaluations,
                "final_loss": out.final_loss,
                "seconds": out.seconds,
                "failed": out.failed,
                "trace_start": len(trace),
            }
        )
        trace.extend(out.loss_trace)
        if out.failed and failed is None:
            failed = f"phase {p}/{n}: {out.failed}"
    last = outs[-1]
    stalls = [o.stalled for o in outs]
    return dataclasses.replace(
        last,
        stalled=None if any(v is None for v in stalls) else all(stalls),
        start=outs[0].start,
        loss_trace=trace,
        iterations=sum(o.iterations for o in outs),
        evaluations=sum(o.evaluations for o in outs),
        seconds=sum(o.seconds for o in outs),
        failed=failed,
        extra={**last.extra, "phases": records},
    )
