"""What an optimisation problem is: the objective contract, :class:`OptimConfig` (how to optimise)
and :class:`OptimResult` (what came out), shared by every optimiser (:mod:`~archbench.optimizers.lbfgs`,
:mod:`~archbench.optimizers.adam`) and by :func:`~archbench.optimizers.base.minimize`, which picks one.

Objective contract
------------------
An *objective* maps a batch of images ``x`` of shape ``(B, C, H, W)`` (any ``(B, ...)`` shape
works) to per-sample losses of shape ``(B,)``. Sample ``b``'s loss must depend only on ``x[b]``
(no batch statistics, no coupling between samples): the optimisers rely on it to run ``B``
independent problems in one forward/backward pass, and the gradient of ``losses.sum()`` with
respect to ``x[b]`` is then exactly the gradient of ``losses[b]``.

* :func:`minimize` takes ``objective(x) -> losses``: the whole batch is optimised at once.
* :func:`minimize_chunked` takes a *sliceable* objective ``objective(x, index) -> losses``, where
  ``index`` is a ``torch.long`` tensor on ``x``'s device holding the positions, in the full batch
  ``x0``, of the samples in ``x`` (``x`` is ``x0[index]`` moved by the optimiser). The objective
  selects its own per-sample targets with it, e.g. ``mse(net(x), target_features[index])``.
  Chunking lets the optimiser split the batch when it does not fit in memory (it halves the chunk
  size after a CUDA out-of-memory error and retries) without the caller knowing the chunk sizes.

Under ``precision="bf16"`` the objective runs inside ``torch.autocast(dtype=torch.bfloat16)``:
compute the final reduction in float32 (``features.float()`` before the loss) so that the loss is
accurate enough for the line search. With ``channels_last`` the optimiser passes ``x`` in the
channels-last memory format; convert the network once with
``net.to(memory_format=torch.channels_last)`` (see :func:`prepare_module`) for the speed-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from archbench.errors import ConfigError

log = logging.getLogger(__name__)

Objective = Callable[[torch.Tensor], torch.Tensor]
#: ``objective(x, index) -> losses``; ``index`` holds the positions of ``x``'s samples in ``x0``.
SliceableObjective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: called as ``progress(done, total)`` after each iteration, counted in sample-iterations
#: (iterations x samples, so ``total = iterations * B``); it must not read device tensors.
ProgressCallback = Callable[[int, int], None]

METHODS = ("lbfgs", "adam")
PRECISIONS = ("auto", "fp32", "bf16")
LINE_SEARCHES = ("backtracking", "none")


@dataclass
class OptimConfig:
    """How to optimise.

    Attributes:
        method: ``"lbfgs"`` (default, as in the paper) or ``"adam"``.
        iterations: iteration budget per sample. One iteration is one evaluation of the objective
            (loss and gradient) for every sample of the batch. For L-BFGS an iteration evaluates a
            trial step; a rejected trial (see ``line_search``) is retried with a shorter step in the
            next iteration, so accepted quasi-Newton steps <= iterations. Both counts are reported.
        history: L-BFGS history size (number of stored curvature pairs ``(s, y)``).
        lr: step size (L-BFGS: scale of the trial step, 1.0; Adam: learning rate, 0.05).
        tolerance_grad: a sample stops when the max-abs of its gradient falls to this fraction of
            the max-abs of its gradient at the start (``scale_free``; otherwise: below this value).
        tolerance_change: a sample stops when its loss changes by less than this (relative to the
            loss) or its step's max-abs is below it (in pixel units).
        scale_free: run every sample on its objective divided by a per-sample constant fixed at the
            start (see "Scale-free stopping" below), so that multiplying an objective by any
            positive constant changes nothing but the reported loss values. True by default;
            False gives the absolute thresholds of ``torch.optim.LBFGS`` (archbench's behaviour
            before issue 18).
        stall_loss, stall_move: thresholds of the ``stalled`` flag (see below): a sample stalled
            when its loss fell by less than ``stall_loss`` times its loss at the start, or when no
            pixel moved by ``stall_move`` (one 8-bit grey level, 1/255) or more.
        line_search: L-BFGS step acceptance. ``"backtracking"`` (default): a trial step is accepted
            if it satisfies the Armijo condition ``f(x + t d) <= f(x) + 1e-4 t g.d``; otherwise the
            next iteration tries a shorter step (quadratic interpolation, kept in ``[0.1 t, 0.5 t]``).
            ``"none"``: every finite trial step is accepted (``torch.optim.LBFGS`` without a line
            search, as in the PyTorch style-transfer tutorial).
        precision: ``"fp32"`` (the input's dtype, no autocast), ``"bf16"`` (objective under bf16
            autocast, TF32 for the remaining float32 matmuls/convolutions on CUDA) or ``"auto"``
            (fp32 everywhere until bf16 is shown within tolerance on a GPU, see below). The optimiser's own state is always float32 or wider.
            Measured on CPU (VGG-19 pool5 inversion, 64 px, 50 iterations): bf16 ended at 8x the
            fp32 loss; ``benchmarks/bench_optimizer.py`` records this difference per device.
        channels_last: pass 4-D inputs in the channels-last memory format; ``"auto"``: on CUDA only.
        compile: run the objective through ``torch.compile``.
        batch_size: largest chunk :func:`minimize_chunked` starts with (``None``: the whole batch).

    Scale-free stopping
        The optimisers' thresholds and the L-BFGS first step (``torch.optim.LBFGS``'s
        ``lr * min(1, 1/|g|_1)`` along ``-g``) are in the objective's own units, so a problem whose
        loss and gradient are tiny (a deep random network whose features hardly depend on the
        input: a relative loss of 1e-5 and gradients of 1e-7) took a first step of 1e-7 px, saw
        no change of the float32 loss and "converged" at its start. With ``scale_free`` each
        sample ``b`` is optimised on ``f_b(x) / c_b`` with ``c_b`` fixed at the start ``x0``:

        * L-BFGS: ``c_b = |∇f_b(x0)|_1``, so the first step is the unit-ℓ1 step ``lr·g/|g|_1``
          that ``torch.optim.LBFGS`` takes whenever ``|g|_1 >= 1``, at every scale; the curvature
          threshold ``s·y > 1e-10`` and the restarts' steps become relative to the start too;
        * Adam: ``c_b = max|∇f_b(x0)|`` (Adam's steps are scale-free already except for its ``eps``,
          which becomes 1e-8 of the start's largest gradient component).

        The gradient test is relative (``max|g| <= tolerance_grad · max|g(x0)|``), the loss-change
        test was already relative (``|Δf| <= tolerance_change · |f|``) and the step test is in
        pixels. Otherwise nothing changes: for a problem with ``|∇f(x0)|_1 >= 1`` the L-BFGS
        iterates are the same as without scaling except where one of those tiny thresholds
        decides. ``c_b = 1`` where the start's gradient is zero or not finite. Losses are reported
        in the objective's own units.

    Stalled samples
        :attr:`OptimResult.stalled` marks a sample that did not leave its start:
        ``f(x0) − f(x) < stall_loss · |f(x0)|`` (its loss fell by less than 0.1 %) or
        ``max |x − x0| < stall_move`` (no pixel changed by one 8-bit level). Both tests are
        scale-free. A stalled result scores its start (for a reconstruction: the noise), not the
        architecture.
    """

    method: str = "lbfgs"
    iterations: int = 500
    history: int = 100
    lr: float | None = None
    tolerance_grad: float = 1e-9
    tolerance_change: float = 1e-12
    line_search: str = "backtracking"
    precision: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool = False
    batch_size: int | None = None
    scale_free: bool = True
    stall_loss: float = 1e-3
    stall_move: float = 1 / 255

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown optimizer {self.method!r}; valid: {', '.join(METHODS)}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}")
        if self.history < 1:
            raise ConfigError(f"history must be >= 1, got {self.history}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.line_search not in LINE_SEARCHES:
            raise ConfigError(f"unknown line_search {self.line_search!r}; valid: {', '.join(LINE_SEARCHES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.channels_last not in (True, False, "auto"):
            raise ConfigError(f"channels_last must be true, false or 'auto', got {self.channels_last!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.tolerance_grad < 1 and self.scale_free:
            raise ConfigError(f"tolerance_grad is relative to the start's gradient: it must be in [0, 1), got {self.tolerance_grad}")
        if self.stall_loss < 0 or self.stall_move < 0:
            raise ConfigError("stall_loss and stall_move must be >= 0")

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
        iterations: iterations each sample actually ran, length ``B`` (fewer than the budget when it
            stopped or failed early; for L-BFGS accepted steps are in ``settings["accepted_steps"]``).
        evaluations: objective evaluations each sample used, length ``B``.
        failed: per sample ``None`` or the reason it failed (e.g. a non-finite loss). A failed sample
            keeps the last finite iterate.
        settings: what actually ran (resolved precision, channels_last, compile, chunk sizes, ...).
        initial_loss: per-sample loss at ``x0``, ``(B,)`` on the CPU (None: not recorded).
        stalled: per sample whether it did not leave its start (see :class:`OptimConfig`), set by
            :func:`minimize`; empty when not computed.
    """

    x: torch.Tensor
    loss_trace: torch.Tensor
    final_loss: torch.Tensor
    iterations: list[int]
    evaluations: list[int]
    failed: list[str | None] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)
    initial_loss: torch.Tensor | None = None
    stalled: list[bool] = field(default_factory=list)


def start_scale(g: torch.Tensor, ok: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample divisor ``c_b`` of a scale-free run (see :class:`OptimConfig`): the ℓ1 norm
    (``norm="l1"``) or the max-abs (``"max"``) of each row of the start's gradient ``g`` ``(B, D)``;
    1 where it is zero or not finite, or where ``ok`` is false."""
    c = g.abs().sum(1) if norm == "l1" else g.abs().amax(1)
    good = ok & torch.isfinite(c) & (c > 0)
    return torch.where(good, c, torch.ones_like(c))


def stalled_flags(x0: torch.Tensor, x: torch.Tensor, f0: torch.Tensor, f: torch.Tensor, config: OptimConfig) -> list[bool]:
    """Whether each sample did not leave its start: its loss fell by less than ``stall_loss ·
    |f0|`` or no element of ``x`` moved by ``stall_move`` or more (see :class:`OptimConfig`).
    A sample whose losses are not finite counts as stalled when it did not move."""
    moved = (x.detach().float().flatten(1) - x0.detach().float().flatten(1).to(x.device)).abs().amax(1).cpu()
    f0, f = f0.double().cpu(), f.double().cpu()
    decreased = (f0 - f) >= config.stall_loss * f0.abs()  # NaN compares false
    return [bool(v) for v in (~decreased | (moved < config.stall_move))]
