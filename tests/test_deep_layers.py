"""Issue 26: deep layers reconstruct under the default parameterisation (tiny images, few iterations)."""

from __future__ import annotations

import functools

import pytest
import torch

from archbench.errors import ConfigError
from archbench.tasks.param import FourierParam, PixelParam, make_param, spectrum_scale
from archbench.tasks.reconstruct import PRESETS, ReconstructOptions, start_images


def test_fourier_param_round_trips_images() -> None:
    p = FourierParam(3, 20, 16)
    x = torch.rand(2, 3, 20, 16)
    assert torch.allclose(p.decode(p.encode(x)), x, atol=1e-5)
    z = p.noise(2, seed=3, std=0.5, device=torch.device("cpu"))
    assert torch.allclose(p.encode(p.decode(z)), z, atol=1e-5)  # the start is exactly what it renders


def test_fourier_scale_is_one_over_f_and_white_at_decay_zero() -> None:
    s = spectrum_scale(32, 32, decay=1.0)
    assert s[0, 0] == 1 and s[0, 1] == 1  # lowest frequencies
    assert s[0, 16] == pytest.approx(1 / 16)  # f = 1/2 cycle per px vs f0 = 1/32
    assert torch.all(spectrum_scale(32, 32, decay=0.0) == 1)


def test_pink_start_is_faint_seeded_and_low_frequency() -> None:
    opts = ReconstructOptions()
    a = start_images(opts, (2, 3, 64, 64), seed=1, device=torch.device("cpu"))
    b = start_images(opts, (2, 3, 64, 64), seed=1, device=torch.device("cpu"))
    c = start_images(opts, (2, 3, 64, 64), seed=2, device=torch.device("cpu"))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[0], a[1])  # one draw for every image of the batch
    assert (a - 0.5).abs().max() < 0.1  # faint, around mid-grey
    # 1/f: neighbouring pixels are correlated, unlike white noise
    d = a - a.mean()
    corr = (d[..., 1:] * d[..., :-1]).mean() / d.pow(2).mean()
    white = start_images(ReconstructOptions(preset="paper"), (1, 3, 64, 64), seed=1, device=torch.device("cpu"))
    w = white - white.mean()
    assert corr > 0.5 > (w[..., 1:] * w[..., :-1]).mean() / w.pow(2).mean()


def test_presets_resolve_param_and_start_and_explicit_values_win() -> None:
    assert (ReconstructOptions().param, ReconstructOptions().start) == ("fourier", "pink")
    paper = ReconstructOptions(preset="paper")
    assert (paper.param, paper.start) == ("pixel", "noise") == tuple(PRESETS["paper"].values())
    assert ReconstructOptions(preset="paper", param="fourier").param == "fourier"
    for bad in ({"preset": "gatys"}, {"param": "wavelet"}, {"start": "blue"}, {"start_std": -1}, {"decay": float("nan")}):
        with pytest.raises(ConfigError):
            ReconstructOptions(**bad)
    with pytest.raises(ConfigError, match="unknown param"):
        make_param("wavelet", 3, 8, 8)
    assert isinstance(make_param("pixel", 3, 8, 8), PixelParam)


@functools.cache
def _deep_run(preset: str = "archbench", start: str | None = None) -> dict:
    """pool4 (4 x 4 positions) of a 64 px photo after 60 iterations (measured: the default's saved
    image reaches a loss of 0.0049 where the paper's reaches 0.0201; at 20 iterations the two are
    still level, the default's picture already better: SSIM 0.13 vs 0.05)."""
    from archbench import run_task

    options = {"layers": ["pool4"], "preset": preset, **({"start": start} if start else {})}
    report = run_task("vgg19", "reconstruct", ["astronaut"], size=64, iterations=60, options=options, metrics=["ssim"])
    (res,) = report.results
    assert res.status == "done"
    return {"loss": res.extra["result_loss"], "ssim": res.metrics["ssim"], "param": res.extra["param"]}


def test_default_lowers_a_deep_layers_loss_below_the_papers_in_the_same_iterations() -> None:
    """The loss of the saved image (clamped to [0, 1]) at pool4 after the same 60 iterations."""
    new = _deep_run()
    old = _deep_run("paper")
    assert (new["param"], old["param"]) == ("fourier", "pixel")
    assert new["loss"] < 0.5 * old["loss"], (new, old)
    assert new["ssim"] > old["ssim"] + 0.05, (new, old)


@pytest.mark.slow
def test_the_fourier_basis_alone_is_not_enough() -> None:
    """Measured in the study and held here: the Fourier basis from a white-noise start stays behind
    the Fourier basis from the pink start (the noise of the start sits in the deep features' near-null space)."""
    both = _deep_run()
    fourier_white = _deep_run("archbench", "noise")
    assert both["loss"] < fourier_white["loss"] and both["ssim"] > fourier_white["ssim"], (both, fourier_white)
