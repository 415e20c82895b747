"""Texture scores that need no trained weights: power-spectrum distance and colour sliced Wasserstein.

Both compare *statistics* of two images, not pixels at the same place, so they suit synthesised
textures, which resemble their source without being aligned with it. Both are lower-is-better,
zero for identical images, batched and computed on the images' device in float64; the two images
may differ in size.

``spectrum`` -- radially averaged log power-spectrum distance
    For each image and colour channel ``c`` (values in ``[0, 1]``), the periodogram
    ``P_c(u) = |FFT2(x_c)(u)|² / (H·W)`` (power per pixel, so images of different sizes are
    comparable) is averaged over rings of the normalised frequency radius
    ``r = sqrt(f_y² + f_x²)`` (cycles per pixel): ``K = ⌊min side / 2⌋`` rings
    ``(k/(2K), (k+1)/(2K)]`` for ``k = 0 … K−1`` (the DC term, ``r = 0``, which is the mean colour,
    and the corners beyond ``r = 0.5`` are left out; ``min side`` is the smaller image's shorter
    side). With ``S_{c,k} = log10(mean of P_c over ring k + 1e-10)`` the distance is the root mean
    square over channels and rings: ``sqrt(mean_{c,k} (S_{c,k}(x) − S_{c,k}(y))²)``, in decades of
    power. It depends on ``|FFT|`` only, so it is invariant to circular shifts (``torch.roll``).

``color-swd`` -- sliced Wasserstein-2 distance between the RGB pixel distributions
    Each image is the empirical distribution of its ``H·W`` RGB points. Both are projected on
    ``P = 64`` unit directions of RGB space, drawn once from ``N(0, I₃)`` with a ``torch.Generator``
    seeded with 0 (fixed, so scores are comparable across runs and machines). For each direction the
    1-D Wasserstein-2 distance is computed between the sorted projections; when the pixel counts
    differ, both are compared at ``N = min(N_x, N_y)`` quantiles ``(i + 0.5)/N`` by linear
    interpolation. ``SWD = sqrt(mean_p W₂²)``, in pixel-value units. Pixel positions play no
    role, so it is invariant to any rearrangement of the pixels.
"""

from __future__ import annotations

import functools

import torch

from archbench.metrics.base import register_metric

SPECTRUM_EPS = 1e-10
SWD_PROJECTIONS = 64
SWD_SEED = 0


def _ring_index(h: int, w: int, n_rings: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Ring number of each frequency of an ``h x w`` FFT (``-1`` outside all rings) and ring sizes."""
    fy = torch.fft.fftfreq(h, device=device, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(w, device=device, dtype=torch.float64).view(1, -1)
    r = torch.sqrt(fy * fy + fx * fx).flatten()
    # ring k holds (k/(2K), (k+1)/(2K)]; ceil(r·2K) − 1 maps r to k, r = 0 to −1
    idx = torch.ceil(r * 2 * n_rings - 1e-9).long() - 1
    idx = torch.where((r > 0) & (idx < n_rings), idx, torch.full_like(idx, -1))
    counts = torch.bincount(idx[idx >= 0], minlength=n_rings)
    return idx, counts


def log_radial_spectrum(images: torch.Tensor, n_rings: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, H, W) -> ((B, C, n_rings), (n_rings,))``: log10 ring-averaged power per pixel, non-empty rings."""
    x = images.double()
    b, c, h, w = x.shape
    power = torch.fft.fft2(x).abs().pow(2).flatten(2) / (h * w)  # (B, C, H*W)
    idx, counts = _ring_index(h, w, n_rings, x.device)
    keep = idx >= 0
    sums = torch.zeros(b, c, n_rings, dtype=x.dtype, device=x.device)
    sums.index_add_(2, idx[keep], power[..., keep])
    mean = sums / counts.clamp_min(1).to(x.dtype)
    return torch.log10(mean + SPECTRUM_EPS), counts > 0


def spectrum_distance(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Radially averaged log power-spectrum distance per sample (module docstring), lower is better."""
    reference = reference.to(output.device)
    n_rings = min(*output.shape[-2:], *reference.shape[-2:]) // 2
    if n_rings < 1:
        raise ValueError("the spectrum distance needs images of at least 2 px per side")
    sx, okx = log_radial_spectrum(output, n_rings)
    sy, oky = log_radial_spectrum(reference, n_rings)
    ok = okx & oky
    d = (sx[..., ok] - sy[..., ok]).pow(2).mean(dim=(1, 2)).sqrt()
    return d.to(output.dtype)


@functools.lru_cache(maxsize=8)
def _directions(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True)


def _quantiles(sorted_values: torch.Tensor, n: int) -> torch.Tensor:
    """Values at quantiles ``(i + 0.5)/n`` of sorted samples along the last dim (linear interpolation)."""
    m = sorted_values.shape[-1]
    if m == n:
        return sorted_values
    pos = (torch.arange(n, dtype=torch.float64, device=sorted_values.device) + 0.5) * (m / n) - 0.5
    pos = pos.clamp(0, m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = pos - lo.to(pos.dtype)
    return sorted_values[..., lo] * (1 - frac) + sorted_values[..., hi] * frac


def color_swd(output: torch.Tensor, reference: torch.Tensor, n_projections: int = SWD_PROJECTIONS) -> torch.Tensor:
    """Sliced Wasserstein-2 distance between RGB pixel distributions (module docstring), lower is better."""
    reference = reference.to(output.device)
    if reference.shape[0] == 1 and output.shape[0] > 1:
        reference = reference.expand(output.shape[0], -1, -1, -1)
    dirs = _directions(n_projections, SWD_SEED).to(output.device)
    px = torch.einsum("pc,bcn->bpn", dirs, output.double().flatten(2))
    py = torch.einsum("pc,bcn->bpn", dirs, reference.double().flatten(2))
    n = min(px.shape[-1], py.shape[-1])
    qx = _quantiles(px.sort(dim=-1).values, n)
    qy = _quantiles(py.sort(dim=-1).values, n)
    d = (qx - qy).pow(2).mean(dim=(1, 2)).sqrt()
    return d.to(output.dtype)


register_metric(
    "spectrum",
    higher_is_better=False,
    description="radially averaged log power-spectrum distance (decades; shift-invariant texture score)",
)(spectrum_distance)
register_metric(
    "color-swd",
    higher_is_better=False,
    description="sliced Wasserstein distance between RGB pixel distributions (colour texture score)",
)(color_swd)
