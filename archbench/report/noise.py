"""How much a suite's scores move without any change of code: the noise a baseline's tolerances come from.

Two sources are measured by ``archbench baseline save``:

* **Floating-point kernels** (what another machine changes). Each score is re-measured by running
  the suite again, in a fresh store, under *perturbations* that emulate other CPUs: PyTorch's own
  kernels (``ATEN_CPU_CAPABILITY=default|avx2|avx512``), oneDNN's convolutions
  (``ONEDNN_MAX_CPU_ISA=SSE41|AVX2``), MKL's reproducibility mode (``MKL_CBWR=COMPATIBLE``) and one
  torch thread (``OMP_NUM_THREADS=1``). Each machine is deterministic on its own; L-BFGS on Gram
  losses amplifies last-bit differences, so two CPUs disagree by more than rounding. ``kernels``
  of a score is the largest ``|mean under a perturbation − mean|`` over the perturbations.
* **Seeds** (how precisely the suite's design measures a score at all). The suite is run again
  with ``noise_seeds`` seeds; for each score, the pooled within-image standard deviation across
  seeds ``s_w`` (seeds vary, each image compared with itself) gives the standard error of the
  suite's mean over its ``n`` (image, seed) observations: ``seeds = s_w / √n``.

The tolerance rule (:func:`tolerance`)::

    tolerance = max(floor(metric, |mean|), KERNEL_FACTOR · kernels, SEED_FACTOR · seeds)

``KERNEL_FACTOR = 4``: another CPU may differ by more than the few emulated here (measured: the
largest kernel move of the ``ci`` suite is 0.16 of its seed standard error). ``SEED_FACTOR = 1``:
a move below one standard error of the suite's own mean is within what the suite can resolve.
The floor is the metric's resolution (:data:`FLOORS`). On the ``ci`` suite a real regression --
15 → 12 iterations, uniform instead of automatic layer weights -- moves its scores by 3 to 400
tolerances (tests in ``tests/test_check.py``).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.errors import ConfigError

log = logging.getLogger(__name__)

KERNEL_FACTOR = 4.0
SEED_FACTOR = 1.0
#: ``(absolute, relative)`` resolution of a metric: the tolerance is never below ``max(abs, rel·|mean|)``
FLOORS: dict[str, tuple[float, float]] = {
    "ssim": (0.002, 0.0),
    "psnr": (0.02, 0.0),
    "lpips": (0.002, 0.0),
    # the quality scales are ratios of order 1 that sit near 0 for poor results: an absolute floor
    "texture-quality": (0.002, 0.0),
    "stylization": (0.002, 0.0),
    "*": (0.0, 0.005),
}
#: the score of the optimisation itself: reported with its own tolerance, never gating
LOSS = "final_loss"

#: name -> environment of the perturbations that emulate other CPUs
PERTURBATIONS: dict[str, dict[str, str]] = {
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten-avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "threads-1": {"OMP_NUM_THREADS": "1"},
}
#: the environment variables the perturbations set (a check names them when they are set)
PERTURBATION_VARIABLES = sorted({k for env in PERTURBATIONS.values() for k in env})


def floor(metric: str, mean: float) -> float:
    """The resolution of ``metric`` at ``mean`` (see :data:`FLOORS`)."""
    from archbench.metric_info import base_metric

    a, r = FLOORS.get(base_metric(metric), FLOORS["*"])
    return max(a, r * abs(mean))


@dataclass
class Noise:
    """The measured noise of one score.

    Attributes:
        kernels: largest move of the mean under a perturbation (None: not measured).
        seeds: standard error of the mean from the seed spread (None: not measured).
        perturbations: perturbation name -> the mean under it.
        seeds_used: how many seeds the seed spread was measured over.
    """

    kernels: float | None = None
    seeds: float | None = None
    perturbations: dict[str, float] = field(default_factory=dict)
    seeds_used: int = 0


def tolerance(metric: str, mean: float, noise: Noise) -> float:
    """``max(floor, KERNEL_FACTOR · kernels, SEED_FACTOR · seeds)`` (see the module docstring)."""
    return max(
        floor(metric, mean),
        KERNEL_FACTOR * (noise.kernels or 0.0),
        SEED_FACTOR * (noise.seeds or 0.0),
    )


def rule_text() -> str:
    """The tolerance rule in words (stored in every baseline)."""
    floors = ", ".join(
        f"{m} {a:g}" if a else f"{m} {r:.1%} of the mean" for m, (a, r) in FLOORS.items() if m != "*"
    ) + f", any other {FLOORS['*'][1]:.1%} of the mean"
    return (
        f"tolerance = max(floor, {KERNEL_FACTOR:g} x kernels, {SEED_FACTOR:g} x seeds); kernels: the largest move "
        "of the score's mean when the suite is re-run under perturbations that emulate other CPUs; seeds: the "
        "standard error of the score's mean from the pooled within-image spread across seeds; floors: "
        f"{floors}. final_loss is reported with its own tolerance and never fails the check."
    )


# ----------------------------------------------------------------------------------------------
# measuring


def available_perturbations() -> list[str]:
    """The perturbations that change something on this machine (the machine's own ATen
    capability is the baseline itself; ``aten-avx512`` only where the CPU has AVX-512)."""
    import torch

    own = torch.backends.cpu.get_cpu_capability().lower()
    names = []
    for name, env in PERTURBATIONS.items():
        cap = env.get("ATEN_CPU_CAPABILITY")
        if cap is not None and (cap == own or (cap == "avx512" and own != "avx512")):
            continue
        names.append(name)
    return names


def _sweep_in_subprocess(suite_ref: str, store: Path, env: dict[str, str]) -> None:
    """Run ``archbench sweep SUITE --store STORE --device cpu`` in a fresh process with ``env``
    (kernel choices are read when the process starts)."""
    full = {**os.environ, **env}
    cmd = [sys.executable, "-m", "archbench", "sweep", suite_ref, "--store", str(store), "--device", "cpu"]
    proc = subprocess.run(cmd, env=full, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1: some jobs failed; their scores are absent, as in the baseline
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"the noise run under {env} failed (exit {proc.returncode}): {tail[0]}")


def measure_kernels(suite_ref: str, names: Sequence[str], entries: Iterable[Any]) -> dict[tuple, dict[str, float]]:
    """Score key -> {perturbation: mean} for every perturbation in ``names``.

    ``entries``: the baseline's score keys; ``score_means`` computes each run's means.
    """
    from archbench.store import ResultStore

    out: dict[tuple, dict[str, float]] = defaultdict(dict)
    with tempfile.TemporaryDirectory(prefix="archbench-noise-") as tmp:
        for name in names:
            log.info("noise: re-running %s under %s", suite_ref, name)
            store = Path(tmp) / f"{name}.db"
            _sweep_in_subprocess(suite_ref, store, PERTURBATIONS[name])
            with ResultStore(store) as db:
                for key, obs in score_observations(db.results(traces=False)).items():
                    out[key][name] = _mean(obs.values())
    wanted = set(entries)
    return {k: v for k, v in out.items() if k in wanted}


def measure_seeds(suite: Any, seeds: int, device: str | None = None) -> dict[tuple, tuple[float, int]]:
    """Score key -> (pooled within-image standard deviation across ``seeds`` seeds, seeds used),
    from a run of ``suite`` with its seeds replaced by ``0 .. seeds-1`` (architectures and tasks
    that pin their own seeds keep them)."""
    import dataclasses

    from archbench.store import ResultStore
    from archbench.sweep import run_sweep

    wide = dataclasses.replace(suite, seeds=list(range(seeds)),
                               tasks=[dataclasses.replace(t, seeds=None) for t in suite.tasks])
    with tempfile.TemporaryDirectory(prefix="archbench-seeds-") as tmp, ResultStore(Path(tmp) / "seeds.db") as db:
        log.info("noise: re-running %s with %d seeds", suite.name, seeds)
        run_sweep(wide, db, device=device, out_dir=Path(tmp) / "images")
        observations = score_observations(db.results(traces=False))
    out = {}
    for key, obs in observations.items():
        by_image: dict[str, list[float]] = defaultdict(list)
        for (image, _seed), v in obs.items():
            by_image[image].append(v)
        ss = sum(sum((v - _mean(vs)) ** 2 for v in vs) for vs in by_image.values())
        dof = sum(len(vs) - 1 for vs in by_image.values())
        used = max((len(vs) for vs in by_image.values()), default=0)
        out[key] = (math.sqrt(ss / dof) if dof > 0 else 0.0, used)
    return out


# ----------------------------------------------------------------------------------------------
# scores


def _judged(metric: str) -> bool:
    from archbench.metric_info import is_judged

    return is_judged(metric)


def score_key(task: str, arch: str, init: str, layer: str, metric: str, judge: str | None) -> tuple:
    """The identity of a score in a baseline: (task, arch, init, layer, metric, judge or "")."""
    return (task, arch, init, layer, metric, judge or "")


def score_observations(results: Iterable[Any]) -> dict[tuple, dict[tuple[str, int], float]]:
    """Score key -> {(image, seed): value} of every metric and ``final_loss`` of ``results``
    (stored results: per layer, with their run's configuration); non-finite values are left out."""
    out: dict[tuple, dict[tuple[str, int], float]] = defaultdict(dict)
    for r in results:
        values = dict(r.metrics)
        values[LOSS] = r.final_loss
        for m, v in values.items():
            if v is not None and math.isfinite(v):
                judge = r.judge if _judged(m) else None
                out[score_key(r.task, r.arch, r.init, r.layer, m, judge)][(r.image, r.seed)] = float(v)
    return dict(out)


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals)
