"""The optimisers' entry points: :func:`minimize` (picks the method of :class:`OptimConfig`),
:func:`minimize_chunked` (split into chunks, halved on CUDA out-of-memory) and
:func:`prepare_module`. The objective contract and the configuration and result types are in
:mod:`archbench.optimizers.problem` (re-exported here).
"""

from __future__ import annotations

import gc
import logging

import torch

from archbench.errors import ConfigError, OptimizationError
from archbench.optimizers.adam import adam
from archbench.optimizers.lbfgs import lbfgs
from archbench.optimizers.problem import (  # noqa: F401  (re-exported: the types of the optimisers' API)
    LINE_SEARCHES,
    METHODS,
    PRECISIONS,
    Objective,
    OptimConfig,
    OptimResult,
    ProgressCallback,
    SliceableObjective,
    stalled_flags,
    start_scale,
)
from archbench.optimizers.runtime import resolve_channels_last

log = logging.getLogger(__name__)


def minimize(
    objective: Objective,
    x0: torch.Tensor,
    config: OptimConfig | None = None,
    progress: ProgressCallback | None = None,
) -> OptimResult:
    """Minimise each sample's loss independently, starting from ``x0``.

    Args:
        objective: maps ``x`` of shape ``(B, ...)`` to losses of shape ``(B,)``; sample ``b``'s loss
            depends on ``x[b]`` only (see the module docstring).
        x0: starting point, ``(B, ...)``; not modified. Its device is where the work runs.
        config: optimiser settings (default :class:`OptimConfig`).
        progress: optional callback ``progress(k * B, iterations * B)`` after iteration ``k``.
    """
    config = config or OptimConfig()
    if x0.ndim < 1 or x0.shape[0] < 1:
        raise ConfigError(f"x0 must have a non-empty batch dimension, got shape {tuple(x0.shape)}")
    if not x0.is_floating_point():
        raise ConfigError(f"x0 must be a floating-point tensor, got {x0.dtype}")
    result = (lbfgs if config.method == "lbfgs" else adam)(objective, x0, config, progress)
    if result.initial_loss is not None:
        result.stalled = stalled_flags(x0, result.x, result.initial_loss, result.final_loss, config)
    return result


def _concat_results(parts: list[OptimResult]) -> OptimResult:
    T = max(p.loss_trace.shape[1] for p in parts)
    traces = []
    for p in parts:
        t = p.loss_trace
        if t.shape[1] < T:
            t = torch.cat([t, t[:, -1:].expand(-1, T - t.shape[1])], dim=1)
        traces.append(t)
    return OptimResult(
        x=torch.cat([p.x for p in parts]),
        loss_trace=torch.cat(traces),
        final_loss=torch.cat([p.final_loss for p in parts]),
        iterations=[i for p in parts for i in p.iterations],
        evaluations=[e for p in parts for e in p.evaluations],
        failed=[f for p in parts for f in p.failed],
        settings=_merge_settings([p.settings for p in parts]),
        initial_loss=None if any(p.initial_loss is None for p in parts) else torch.cat([p.initial_loss for p in parts]),
        stalled=[s for p in parts for s in p.stalled] if all(p.stalled for p in parts) else [],
    )


def _merge_settings(settings: list[dict[str, object]]) -> dict[str, object]:
    """Settings of chunks: per-sample lists concatenated, ``iterations_run`` the maximum."""
    out = dict(settings[0])
    for key, value in settings[0].items():
        if isinstance(value, list):
            out[key] = [v for s in settings for v in s.get(key, [])]  # type: ignore[union-attr]
        elif key == "iterations_run":
            out[key] = max(int(s.get(key, 0)) for s in settings)  # type: ignore[call-overload]
    return out


def minimize_chunked(
    objective: SliceableObjective,
    x0: torch.Tensor,
    config: OptimConfig | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> OptimResult:
    """:func:`minimize` in chunks of at most ``batch_size`` samples, halving it on CUDA OOM.

    Samples are independent, so the result equals one :func:`minimize` over the whole batch (up to
    floating-point differences of batched kernels). A chunk that raises
    ``torch.cuda.OutOfMemoryError`` is restarted from its ``x0`` with half the chunk size; the
    smaller size is kept for the remaining chunks. A single sample that does not fit raises
    :class:`OptimizationError`.

    Args:
        objective: ``objective(x, index) -> losses`` (see the module docstring); ``index`` is a
            ``torch.long`` tensor on ``x0``'s device with the positions of ``x``'s samples in ``x0``.
        x0: starting point of all samples, ``(B, ...)``.
        config: optimiser settings; ``config.batch_size`` is the default chunk size.
        batch_size: first chunk size to try (default ``config.batch_size``, else ``B``).
        progress: optional callback ``progress(sample_iterations_done, B * iterations)``.
    """
    config = config or OptimConfig()
    B = x0.shape[0]
    size = batch_size or config.batch_size or B
    if size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {size}")
    size = min(size, B)
    total = B * config.iterations
    parts: list[OptimResult] = []
    sizes: list[int] = []
    start = 0
    while start < B:
        stop = min(start + size, B)
        index = torch.arange(start, stop, device=x0.device)
        n = stop - start

        def chunk_objective(x: torch.Tensor, _index: torch.Tensor = index) -> torch.Tensor:
            return objective(x, _index)

        def chunk_progress(done: int, _total: int, _start: int = start) -> None:
            if progress is not None:
                progress(_start * config.iterations + done, total)

        oom = False
        try:
            result = minimize(chunk_objective, x0[start:stop], config, chunk_progress)
        except torch.cuda.OutOfMemoryError:
            oom = True  # handled below, outside the except block, so its traceback frees memory
        if oom:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if n == 1:
                raise OptimizationError(
                    "out of device memory with a single sample; use a smaller image or a shallower layer"
                ) from None
            size = max(1, n // 2)
            log.warning("out of device memory with %d samples per chunk; retrying with %d", n, size)
            continue
        parts.append(result)
        sizes.append(n)
        start = stop
    out = _concat_results(parts)
    out.settings["chunk_sizes"] = sizes
    return out


def prepare_module(module: torch.nn.Module, config: OptimConfig, device: torch.device | str) -> torch.nn.Module:
    """Move ``module`` to ``device`` in the memory format :func:`minimize` will feed it.

    With ``channels_last`` resolved to true (``"auto"``: on CUDA) the module's 4-D parameters are
    converted to channels-last, which is what makes cuDNN/oneDNN use their fastest kernels.
    """
    device = torch.device(device)
    module = module.to(device)
    if resolve_channels_last(config, device, ndim=4):
        module = module.to(memory_format=torch.channels_last)
    return module
