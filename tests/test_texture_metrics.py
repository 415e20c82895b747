"""Texture metrics: zero for identical images, monotone in noise, shift/permutation invariance."""

from __future__ import annotations

import pytest
import torch

from archbench.metrics import get_metric
from archbench.metrics.texture import _ring_index, color_swd, spectrum_distance

TEXTURE_METRICS = ["spectrum", "color-swd"]


def _texture(seed: int = 0, size: int = 48) -> torch.Tensor:
    """A smooth, coloured, structured test image in [0, 1] (sum of random oriented sinusoids)."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij"
    )
    img = torch.zeros(3, size, size, dtype=torch.float64)
    for _ in range(6):
        fy, fx = (torch.randint(1, 6, (2,), generator=gen).double() / size).tolist()
        phase = float(torch.rand(1, generator=gen)) * 6.28
        colour = torch.rand(3, 1, 1, generator=gen, dtype=torch.float64)
        img += colour * torch.sin(6.283185 * (fy * yy + fx * xx) + phase)
    img = (img - img.min()) / (img.max() - img.min())
    return (0.1 + 0.8 * img).float().unsqueeze(0)


def _noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)


@pytest.mark.parametrize("name", TEXTURE_METRICS)
def test_registered_lower_is_better(name: str) -> None:
    metric = get_metric(name)
    assert not metric.higher_is_better and metric.requires == ()


@pytest.mark.parametrize("name", TEXTURE_METRICS)
def test_zero_for_identical_images(name: str) -> None:
    x = torch.cat([_texture(0), _texture(1)])
    assert get_metric(name)(x, x.clone()).abs().max().item() == 0.0


@pytest.mark.parametrize("name", TEXTURE_METRICS)
def test_larger_for_noisier_images(name: str) -> None:
    ref = _texture(2)
    scores = [get_metric(name)(_noisy(ref, s), ref).item() for s in (0.02, 0.08, 0.3)]
    assert 0 < scores[0] < scores[1] < scores[2], scores


@pytest.mark.parametrize("name", TEXTURE_METRICS)
def test_batched_equals_one_by_one(name: str) -> None:
    ref = _texture(3)
    outs = torch.cat([_noisy(ref, 0.05, seed=s) for s in range(3)] + [_texture(4)])
    fn = get_metric(name)
    batched = fn(outs, ref.expand(4, -1, -1, -1))
    single = torch.cat([fn(outs[i : i + 1], ref) for i in range(4)])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fn(outs, ref), batched)  # a one-image reference broadcasts


def test_spectrum_invariant_to_circular_shifts_but_not_to_blur() -> None:
    x = _noisy(_texture(5), 0.1)
    ref = _texture(6)
    base = spectrum_distance(x, ref)
    for shifts in [(1, 0), (7, 13), (-20, 5)]:
        rolled = torch.roll(x, shifts=shifts, dims=(2, 3))
        assert spectrum_distance(rolled, x).item() < 1e-6
        torch.testing.assert_close(spectrum_distance(rolled, ref), base, atol=1e-6, rtol=1e-6)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert spectrum_distance(blurred, x).item() > 0.1


def test_spectrum_compares_images_of_different_sizes() -> None:
    gen = torch.Generator().manual_seed(7)
    small, large = torch.rand(1, 3, 32, 32, generator=gen), torch.rand(1, 3, 64, 48, generator=gen)
    # two white-noise images of any size have the same expected flat spectrum (up to periodogram noise)
    same = spectrum_distance(small, large).item()
    assert same < 0.3 and same < spectrum_distance(small, _texture(8, size=64)).item() / 4


def test_spectrum_rings_partition_frequencies() -> None:
    idx, counts = _ring_index(12, 10, 5, torch.device("cpu"))
    assert idx.shape == (120,) and idx[0] == -1  # DC left out
    assert counts.sum().item() == int((idx >= 0).sum()) and (counts > 0).all()


def test_color_swd_ignores_pixel_positions_and_sees_colour() -> None:
    x = _texture(9)
    perm = torch.randperm(48 * 48, generator=torch.Generator().manual_seed(0))
    shuffled = x.flatten(2)[..., perm].view_as(x)
    assert color_swd(shuffled, x).item() < 1e-7
    tinted = (x + torch.tensor([0.1, 0.0, -0.05]).view(1, 3, 1, 1)).clamp(0, 1)
    assert color_swd(tinted, x).item() > 0.03
    # images of different sizes: same colours at another resolution score near zero
    half = torch.nn.functional.avg_pool2d(x, 2)
    assert color_swd(half, x).item() < color_swd(tinted, x).item() / 3


def test_color_swd_is_deterministic() -> None:
    x, y = _texture(10), _noisy(_texture(10), 0.1)
    assert color_swd(x, y).item() == color_swd(x, y).item()
