"""Optimiser configuration, result type and the :func:`minimize` dispatcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from archbench.errors import ConfigError

Objective = Callable[[torch.Tensor], torch.Tensor]
#: called as ``progress(iteration, total_iterations)`` after each iteration
ProgressCallback = Callable[[int, int], None]

METHODS = ("lbfgs", "adam")


@dataclass
class OptimConfig:
    """How to optimise.

    Attributes:
        method: ``"lbfgs"`` (default, as in the paper) or ``"adam"``.
        iterations: iteration budget per sample. For L-BFGS one iteration is one quasi-Newton
            step (which may take more than one loss evaluation); evaluations are reported too.
        history: L-BFGS history size (number of stored curvature pairs).
        lr: step size (L-BFGS: initial step scale, 1.0; Adam: learning rate).
        tolerance_grad: a sample stops when the max-abs of its gradient falls below this.
        tolerance_change: a sample stops when its loss changes less than this (relative).
    """

    method: str = "lbfgs"
    iterations: int = 500
    history: int = 100
    lr: float | None = None
    tolerance_grad: float = 1e-9
    tolerance_change: float = 1e-12

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown optimizer {self.method!r}; valid: {', '.join(METHODS)}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}")
        if self.history < 1:
            raise ConfigError(f"history must be >= 1, got {self.history}")

    @property
    def step_size(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1.0 if self.method == "lbfgs" else 0.05


@dataclass
class OptimResult:
    """Outcome of :func:`minimize` for a batch of ``B`` samples.

    Attributes:
        x: optimised images, ``(B, C, H, W)`` (detached).
        loss_trace: per-sample loss after each iteration, ``(B, T)`` on the CPU; ``T`` is the number
            of iterations run (samples that stopped early repeat their last value).
        final_loss: per-sample final loss, ``(B,)`` on the CPU.
        iterations: iterations each sample actually ran, length ``B``.
        evaluations: objective evaluations each sample used, length ``B``.
        failed: per sample ``None`` or the reason it failed (e.g. a non-finite loss). A failed sample
            keeps the last finite iterate.
    """

    x: torch.Tensor
    loss_trace: torch.Tensor
    final_loss: torch.Tensor
    iterations: list[int]
    evaluations: list[int]
    failed: list[str | None] = field(default_factory=list)


def minimize(
    objective: Objective,
    x0: torch.Tensor,
    config: OptimConfig | None = None,
    progress: ProgressCallback | None = None,
) -> OptimResult:
    """Minimise each sample's loss independently, starting from ``x0``.

    Args:
        objective: maps ``x`` of shape ``(B, ...)`` to losses of shape ``(B,)``.
        x0: starting point, ``(B, ...)``; not modified.
        config: optimiser settings (default :class:`OptimConfig`).
        progress: optional callback after each iteration.
    """
    config = config or OptimConfig()
    if config.method == "lbfgs":
        from archbench.optimizers.lbfgs import lbfgs

        return lbfgs(objective, x0, config, progress)
    from archbench.optimizers.adam import adam

    return adam(objective, x0, config, progress)
