"""Losses on taps and image priors, all per sample (``(B, ...) -> (B,)``).

* :func:`feature_loss` -- ‖F(x) − F(x0)‖² with a named normalisation (reconstruction, content);
* :func:`tv_loss` -- total variation ``TV^β`` (β = 2: squared differences, the paper's R_TV);
* :func:`alpha_norm` -- the α-norm prior ‖x − mean‖_α^α of Mahendran & Vedaldi (α = 6).

Gram-matrix losses for texture and style live in :mod:`archbench.losses.gram`.
"""

from __future__ import annotations

import torch

from archbench.errors import ConfigError

#: feature-loss normalisations: name -> description
FEATURE_NORMS = {
    "relative": "‖F(x) − F(x0)‖² / ‖F(x0)‖² (scale-free; comparable across layers and architectures)",
    "paper": "‖F(x) − F(x0)‖² / (2·N·M) (He et al. 2016, before the layer weight ω)",
    "none": "‖F(x) − F(x0)‖²",
}


def feature_loss(f: torch.Tensor, target: torch.Tensor, norm: str = "relative") -> torch.Tensor:
    """Per-sample squared feature distance ``(B, ...) x (B, ...) -> (B,)`` with normalisation ``norm``."""
    if norm not in FEATURE_NORMS:
        raise ConfigError(f"unknown feature normalisation {norm!r}; valid: {', '.join(FEATURE_NORMS)}")
    diff = (f - target).flatten(1).pow(2).sum(1)
    if norm == "relative":
        return diff / target.flatten(1).pow(2).sum(1).clamp_min(1e-30)
    if norm == "paper":
        n = f.shape[1]
        m = f[0, 0].numel() if f.ndim > 2 else 1
        return diff / (2.0 * n * m)
    return diff


def tv_loss(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Total variation per sample: Σ ((x[i,j+1]−x[i,j])² + (x[i+1,j]−x[i,j])²)^(β/2).

    With β = 2 this is the sum of squared differences of adjacent pixels (the paper's R_TV).
    """
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    if beta == 2.0:
        return (dx.pow(2) + dy.pow(2)).flatten(1).sum(1)
    return (dx.pow(2) + dy.pow(2) + 1e-12).pow(beta / 2).flatten(1).sum(1)


def alpha_norm(x: torch.Tensor, alpha: float = 6.0) -> torch.Tensor:
    """α-norm prior per sample: Σ |x − 0.5|^α over pixels of an image in [0, 1] (Mahendran & Vedaldi)."""
    return (x - 0.5).abs().pow(alpha).flatten(1).sum(1)
