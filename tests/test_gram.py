"""Gram losses, layer weighting and the judge's Gram distance."""

from __future__ import annotations

import pytest
import torch

from archbench.architectures import create_arch
from archbench.errors import ConfigError
from archbench.losses.gram import GRAM_NORMS, gram_loss, gram_matrix
from archbench.metrics.gram import JUDGE_SEED, RANDOM_VGG19, TRAINED_VGG16, collision, gram_distance, judge_for
from archbench.tasks.weighting import Term, WeightedObjective, input_gradient_means, normalize_gradient


def _direct(f: torch.Tensor, g: torch.Tensor, norm: str) -> float:
    """The table's formulas written out with explicit loops over the N x M matrix of one image."""
    N, M = f.shape[0], f.shape[1] * f.shape[2]
    F, P = f.reshape(N, M).double(), g.reshape(N, M).double()
    G = torch.zeros(N, N, dtype=torch.float64)
    A = torch.zeros(N, N, dtype=torch.float64)
    for i in range(N):
        for j in range(N):
            G[i, j] = (F[i] * F[j]).sum()
            A[i, j] = (P[i] * P[j]).sum()
    sq = ((G - A) ** 2).sum()
    return {
        "paper": sq / (4 * N**2 * M**2),
        "m": ((G / M - A / M) ** 2).sum() / (4 * N**2),
        "hw": ((G / M - A / M) ** 2).mean(),
        "nm": ((G / (N * M) - A / (N * M)) ** 2).mean(),
        "chw": ((G / (N * M) - A / (N * M)) ** 2).mean(),
    }[norm].item()


@pytest.mark.parametrize("norm", list(GRAM_NORMS))
def test_gram_loss_matches_its_formula(norm: str) -> None:
    gen = torch.Generator().manual_seed(1)
    f = torch.randn(2, 5, 4, 3, generator=gen)
    g = torch.randn(2, 5, 4, 3, generator=gen)
    losses = gram_loss(f, gram_matrix(g, norm), norm)
    assert losses.shape == (2,)
    for b in range(2):
        assert losses[b].item() == pytest.approx(_direct(f[b], g[b], norm), rel=1e-5)
    # the Gram itself: F Fᵀ for the paper's convention
    assert torch.allclose(gram_matrix(f, "paper")[0], f[0].reshape(5, -1) @ f[0].reshape(5, -1).T, atol=1e-5)


def test_unknown_gram_norm_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="valid: paper"):
        gram_matrix(torch.zeros(1, 2, 2, 2), "frobenius")


def _texture_objective(weighting: str) -> tuple[WeightedObjective, torch.Tensor]:
    net = create_arch("vgg11(fc=false)", seed=3)
    gen = torch.Generator().manual_seed(0)
    src = torch.rand(2, 3, 32, 32, generator=gen)
    x0 = torch.rand(2, 3, 32, 32, generator=gen)
    layers = ["conv1_1", "conv2_1", "conv3_1", "conv4_1"]
    with torch.no_grad():
        feats = net(src, layers)
    terms = [Term(f"gram:{name}", "gram", name, gram_matrix(feats[name], "paper"), 1.0, "paper") for name in layers]
    return WeightedObjective(net, terms, weighting), x0


def test_auto_weighting_equalises_input_gradients_at_the_start() -> None:
    obj, x0 = _texture_objective("none")
    before = input_gradient_means(obj, x0)
    # random weights: deeper layers' gradients are orders of magnitude smaller without weighting
    assert before.max() / before.min() > 100
    obj, x0 = _texture_objective("auto")
    obj.calibrate(x0)
    after = input_gradient_means(obj, x0)
    assert after.shape == (4, 2)
    assert torch.allclose(after, torch.ones_like(after), rtol=0.03)
    assert (after.max(0).values / after.min(0).values).max() < 1.03


def test_inverse_loss_weighting_makes_start_losses_one() -> None:
    obj, x0 = _texture_objective("inverse-loss")
    obj.calibrate(x0)
    with torch.no_grad():
        losses = torch.stack(obj.term_losses(x0)) * obj.weights()
    assert torch.allclose(losses, torch.ones_like(losses), rtol=1e-4)


def test_normalize_gradient_scales_the_feature_gradient_to_unit_l1() -> None:
    f = torch.randn(3, 4, 5, 5, requires_grad=True)
    strength = torch.tensor([1.0, 2.0, 0.5])
    (normalize_gradient(f, strength) ** 2 * 7).sum().backward()
    l1 = f.grad.abs().flatten(1).sum(1)
    assert torch.allclose(l1, strength, rtol=1e-4)
    # the objective's value is the weighted sum; layers' feature gradients are normalised
    obj, x0 = _texture_objective("normalize-gradients")
    ref, _ = _texture_objective("none")
    with torch.no_grad():
        assert torch.allclose(obj(x0), ref(x0), rtol=1e-5)
    x = x0.clone().requires_grad_(True)
    obj(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gram_distance_is_zero_for_identical_images_and_scale_free() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 32, 32, generator=gen)
    b = torch.rand(1, 3, 32, 32, generator=gen)
    assert gram_distance(a, a, RANDOM_VGG19).item() == pytest.approx(0.0, abs=1e-12)
    d = gram_distance(b, a, RANDOM_VGG19).item()
    assert d > 0
    # a tiled copy has (nearly) the same Gram statistics at a larger size
    tiled = a.repeat(1, 1, 2, 2)
    assert gram_distance(tiled, a, RANDOM_VGG19).item() < d


def test_judge_refuses_a_seed_collision() -> None:
    with pytest.raises(ConfigError, match="reserved"):
        judge_for("vgg19", "gaussian:0.015", JUDGE_SEED, "random-vgg19")
    with pytest.raises(ConfigError, match="reserved"):
        judge_for("vgg19(pool=max)", "kaiming", JUDGE_SEED, "random-vgg19")
    assert judge_for("vgg19", "gaussian:0.015", 0, "random-vgg19") is RANDOM_VGG19
    # a trained judge does not collide with a random candidate, but refuses to grade itself
    assert collision(TRAINED_VGG16, "vgg19", "gaussian:0.015", JUDGE_SEED) is None
    assert collision(TRAINED_VGG16, "vgg16", "pretrained", 0) is not None
    with pytest.raises(ConfigError, match="unknown judge"):
        judge_for("vgg19", "gaussian:0.015", 0, "lpips")
