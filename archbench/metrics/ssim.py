"""SSIM (Wang et al. 2004) and PSNR, batched in torch on the images' device.

SSIM uses an 11x11 Gaussian window with sigma 1.5 over each channel, constants K1 = 0.01,
K2 = 0.03, data range 1, population (not sample) covariance, valid-region averaging (the window
must lie inside the image) and the mean over channels. It matches
``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)`` within 1e-4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archbench.metrics.base import register_metric


def _gaussian_window(sigma: float, radius: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def _match_size(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    if reference.shape[-2:] != output.shape[-2:]:
        reference = F.interpolate(reference, size=output.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    return reference


def ssim(output: torch.Tensor, reference: torch.Tensor, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity per sample, ``(B, C, H, W) x (B, C, H, W) -> (B,)``."""
    x = output.double().clamp(0, 1)
    y = _match_size(output, reference).double().clamp(0, 1)
    radius = int(3.5 * sigma + 0.5)  # skimage truncate=3.5 -> 11x11 for sigma 1.5
    if min(x.shape[-2:]) < 2 * radius + 1:
        raise ValueError(f"SSIM needs images of at least {2 * radius + 1} px per side")
    C = x.shape[1]
    g = _gaussian_window(sigma, radius, x.device, x.dtype)
    kx = g.view(1, 1, 1, -1).expand(C, 1, 1, -1)
    ky = g.view(1, 1, -1, 1).expand(C, 1, -1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kx, groups=C), ky, groups=C)  # valid region only

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)).to(output.dtype)


def psnr(output: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per sample: 10·log10(range² / MSE)."""
    x = output.double().clamp(0, 1)
    y = _match_size(output, reference).double().clamp(0, 1)
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    return (10 * torch.log10(data_range**2 / mse)).to(output.dtype)


register_metric("ssim", higher_is_better=True, description="structural similarity to the target (Wang et al. 2004)")(ssim)
register_metric("psnr", higher_is_better=True, description="peak signal-to-noise ratio to the target, dB")(psnr)
