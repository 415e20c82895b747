"""How the objective is run: precision (autocast/TF32), memory format, compilation.

Shared by the optimisers. The optimisers keep their state as flat ``(B, D)`` tensors; the order of
the ``D`` elements is free (every operation on them is element-wise or a per-sample dot product),
so with channels-last the flat state *is* the channels-last memory of the images and no copy is
made when handing ``x`` to the objective.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from archbench.errors import OptimizationError
from archbench.optimizers.problem import Objective, OptimConfig

log = logging.getLogger(__name__)


def resolve_precision(config: OptimConfig, device: torch.device, dtype: torch.dtype) -> str:
    """``"fp32"`` or ``"bf16"``; ``"auto"`` means fp32 everywhere for now: bf16 is opt-in until a GPU
    measurement shows its scores within tolerance of fp32 (on CPU it ended at 8x the fp32 loss)."""
    if dtype == torch.float64:
        return "fp32"
    if config.precision == "auto":
        return "fp32"
    return config.precision


def resolve_channels_last(config: OptimConfig, device: torch.device, ndim: int) -> bool:
    """Whether 4-D inputs go channels-last (``"auto"``: on CUDA)."""
    if ndim != 4:
        return False
    if config.channels_last == "auto":
        return device.type == "cuda"
    return bool(config.channels_last)


@contextlib.contextmanager
def _tf32(device: torch.device) -> Iterator[None]:
    """Allow TF32 for float32 matmuls and convolutions on CUDA inside the block, then restore."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and conv is not None and hasattr(conv, "fp32_precision"):
        old = (matmul.fp32_precision, conv.fp32_precision)
        matmul.fp32_precision, conv.fp32_precision = "tf32", "tf32"
        try:
            yield
        finally:
            matmul.fp32_precision, conv.fp32_precision = old
    else:  # older torch
        old_mm, old_conv = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(old_mm)
            torch.backends.cudnn.allow_tf32 = old_conv


@dataclass
class Evaluator:
    """Evaluates a batched objective on flat ``(B, D)`` iterates.

    Attributes:
        objective: the (possibly compiled) objective ``x -> losses``.
        shape: shape of one batch of images, ``(B, C, H, W)``.
        precision: resolved precision, ``"fp32"`` or ``"bf16"``.
        channels_last: whether the flat layout is channels-last.
        compiled: whether the objective went through ``torch.compile``.
    """

    objective: Objective
    shape: tuple[int, ...]
    device: torch.device
    precision: str
    channels_last: bool
    compiled: bool

    @classmethod
    def create(cls, objective: Objective, x0: torch.Tensor, config: OptimConfig) -> Evaluator:
        device = x0.device
        precision = resolve_precision(config, device, x0.dtype)
        cl = resolve_channels_last(config, device, x0.ndim)
        compiled = False
        if config.compile:
            objective = torch.compile(objective, dynamic=False)
            compiled = True
        return cls(objective, tuple(x0.shape), device, precision, cl, compiled)

    @property
    def settings(self) -> dict[str, object]:
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compiled}

    def flatten(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, D)`` in this evaluator's layout (a view when the layout matches)."""
        if self.channels_last:
            t = t.permute(0, 2, 3, 1)
        return t.reshape(t.shape[0], -1)

    def unflatten(self, flat: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` -> ``(B, C, H, W)`` view (channels-last strides when enabled)."""
        if self.channels_last:
            B, C, H, W = self.shape
            return flat.view(flat.shape[0], H, W, C).permute(0, 3, 1, 2)
        return flat.view(flat.shape[0], *self.shape[1:])

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        if self.precision == "bf16":
            with _tf32(self.device), torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

    def losses(self, flat: torch.Tensor) -> torch.Tensor:
        """Per-sample losses at ``flat`` (no gradient), in ``flat``'s dtype."""
        with torch.no_grad(), self._context():
            out = self.objective(self.unflatten(flat))
        return out.detach().to(flat.dtype)

    def loss_and_grad(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample losses ``(B,)`` and gradients ``(B, D)`` at ``flat``.

        The gradient of ``losses.sum()`` is each sample's own gradient because samples are
        independent (see the objective contract in :mod:`archbench.optimizers.base`).
        """
        x = self.unflatten(flat).detach().requires_grad_(True)
        with torch.enable_grad():
            with self._context():
                out = self.objective(x)
            if out.shape != (flat.shape[0],):
                raise OptimizationError(
                    f"the objective must return per-sample losses of shape ({flat.shape[0]},), got {tuple(out.shape)}"
                )
            (grad,) = torch.autograd.grad(out.sum(), x)
        return out.detach().to(flat.dtype), self.flatten(grad).to(flat.dtype)
