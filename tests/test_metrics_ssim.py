"""SSIM agrees with scikit-image; PSNR is checked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from skimage.metrics import structural_similarity

from archbench.metrics import compute_metrics, get_metric, list_metrics


@pytest.mark.parametrize("shape", [(2, 3, 40, 52), (1, 3, 64, 64)])
def test_ssim_matches_skimage(shape):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(shape, generator=g)
    b = (a + 0.15 * torch.randn(shape, generator=g)).clamp(0, 1)
    ours = get_metric("ssim")(a, b)
    for i in range(shape[0]):
        ref = structural_similarity(
            a[i].permute(1, 2, 0).numpy(), b[i].permute(1, 2, 0).numpy(),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1,
        )
        assert abs(float(ours[i]) - ref) < 1e-4
    assert torch.allclose(get_metric("ssim")(a, a), torch.ones(shape[0]), atol=1e-6)


def test_psnr_by_hand():
    a = torch.zeros(1, 3, 16, 16)
    b = torch.full((1, 3, 16, 16), 0.1)
    # MSE = 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert abs(float(get_metric("psnr")(b, a)) - 20.0) < 1e-4
    c = a.clone()
    c[0, 0, 0, 0] = 1.0  # one pixel off by 1: MSE = 1/768
    assert abs(float(get_metric("psnr")(c, a)) - 10 * math.log10(768)) < 1e-4


def test_metric_directions_and_batching():
    assert get_metric("ssim").higher_is_better and get_metric("psnr").higher_is_better
    assert {"ssim", "psnr"} <= set(list_metrics())
    out = torch.rand(3, 3, 24, 24)
    ref = torch.rand(1, 3, 24, 24)
    values, missing = compute_metrics(["ssim"], out, {"target": ref})
    assert not missing and len(values["ssim"]) == 3
    single = [float(get_metric("ssim")(out[i : i + 1], ref)) for i in range(3)]
    assert values["ssim"] == pytest.approx(single, abs=1e-6)
