"""Gram matrices and Gram (texture/style) losses with named normalisations, per sample.

For features ``F`` of one image at one layer, reshaped to ``N x M`` (``N`` feature maps of
``M = H·W`` positions), the Gram matrix is ``G = F Fᵀ / c`` and the layer loss
``E = k · ‖G − A‖²`` with ``A`` the Gram of the reference. Tools differ in ``c`` and ``k``; each
convention has a name:

========== ================== ====================== ===============================================
name       Gram ``G``         loss ``E``             used by
========== ================== ====================== ===============================================
``paper``  ``FFᵀ``            ``‖G−A‖²/(4N²M²)``     Gatys et al. 2015, He et al. 2016 (default)
``m``      ``FFᵀ/M``          ``‖G−A‖²/(4N²)``       DeepTextures (Gatys' texture code): w/4·Σ(G−A)²/N²
``hw``     ``FFᵀ/(H·W)``      ``mean((G−A)²)``       Gatys' official PyTorch style transfer
``nm``     ``FFᵀ/(N·M)``      ``mean((G−A)²)``       PyTorch tutorial (``a·b·c·d`` with batch a = 1)
``chw``    ``FFᵀ/(C·H·W)``    ``mean((G−A)²)``       jcjohnson/neural-style
========== ================== ====================== ===============================================

``mean`` is over the ``N²`` entries of the Gram. ``paper`` and ``m`` are the same loss (the
``M²`` moves into the Gram); ``hw`` is ``4×`` ``m``; ``nm`` and ``chw`` are the same formula for
one image (``N = C``, ``M = H·W``) and are kept as separate names only so that a preset can say
which tool it follows. All functions work on a batch: ``(B, N, H, W) -> (B, N, N)`` or ``(B,)``.
"""

from __future__ import annotations

import torch

from archbench.errors import ConfigError

#: Gram normalisations: name -> formula (see the module docstring)
GRAM_NORMS: dict[str, str] = {
    "paper": "G = FFᵀ, E = ‖G − A‖² / (4·N²·M²)  (Gatys et al. 2015; He et al. 2016)",
    "m": "G = FFᵀ/M, E = ‖G − A‖² / (4·N²)  (DeepTextures)",
    "hw": "G = FFᵀ/(H·W), E = mean((G − A)²)  (Gatys official PyTorch)",
    "nm": "G = FFᵀ/(N·M), E = mean((G − A)²)  (PyTorch tutorial)",
    "chw": "G = FFᵀ/(C·H·W), E = mean((G − A)²)  (jcjohnson/neural-style)",
}
DEFAULT_GRAM_NORM = "paper"


def check_gram_norm(norm: str) -> str:
    """Return ``norm`` if it is a known Gram normalisation, else raise :class:`ConfigError`."""
    if norm not in GRAM_NORMS:
        raise ConfigError(f"unknown Gram normalisation {norm!r}; valid: {', '.join(GRAM_NORMS)}")
    return norm


def gram_matrix(f: torch.Tensor, norm: str = DEFAULT_GRAM_NORM) -> torch.Tensor:
    """Per-sample Gram matrix ``(B, N, H, W) -> (B, N, N)``, ``G = F Fᵀ / c`` (``c`` by ``norm``).

    Computed in float32 (or the input's dtype if wider), outside autocast.
    """
    check_gram_norm(norm)
    if f.ndim == 2:  # (B, N) vectors: one position
        f = f[:, :, None, None]
    B, N = f.shape[:2]
    M = f[0, 0].numel()
    flat = f.reshape(B, N, M)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    # no autocast: a bf16 Gram would be too coarse for the loss and the line search
    with torch.autocast(device_type=flat.device.type, enabled=False):
        G = torch.bmm(flat, flat.transpose(1, 2))
    if norm == "paper":
        return G
    if norm in ("m", "hw"):
        return G / M
    return G / (N * M)  # nm, chw


def gram_loss(
    f: torch.Tensor, target: torch.Tensor, norm: str = DEFAULT_GRAM_NORM, *, m: int | None = None
) -> torch.Tensor:
    """Per-sample Gram loss ``(B,)`` between features ``f`` and a target Gram ``target``.

    Args:
        f: features ``(B, N, H, W)``.
        target: the reference's Gram ``(B, N, N)`` (or ``(1, N, N)``), made by :func:`gram_matrix`
            with the same ``norm`` (from features of the same ``N``; ``M`` may differ).
        norm: normalisation name (:data:`GRAM_NORMS`).
        m: the ``M`` to use in ``paper``'s ``1/(4N²M²)`` (default: ``f``'s own ``H·W``).
    """
    G = gram_matrix(f, norm)
    N = G.shape[1]
    sq = (G - target.to(G.dtype)).pow(2).flatten(1).sum(1)
    if norm == "paper":
        M = m if m is not None else (f[0, 0].numel() if f.ndim > 2 else 1)
        return sq / (4.0 * N * N * float(M) ** 2)
    if norm == "m":
        return sq / (4.0 * N * N)
    return sq / (N * N)  # mean over the N² entries
