"""The neural-patches loss: matching by normalised cross-correlation, zero at the source, it
decreases under optimisation, the variety term, and ``--loss patches`` in texture and style."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archbench.architectures import create_arch
from archbench.errors import ConfigError
from archbench.images import load_image
from archbench.losses.patches import (
    PatchSource,
    default_patch_layers,
    extract_patches,
    match_patches,
    patch_loss,
    patch_source,
    patch_usage,
)
from archbench.optimizers import OptimConfig, minimize
from archbench.runner import run_task
from archbench.tasks import get_task
from archbench.tasks.reconstruct import white_noise

ARCH = "vgg19(width=0.25)"


@pytest.fixture(scope="module")
def net():
    return create_arch(ARCH, seed=0)


def source_of(vectors: torch.Tensor) -> PatchSource:
    """A PatchSource from raw patch vectors ``(S, N, K)``."""
    return PatchSource(vectors, 1.0 / vectors.norm(dim=-1))


def test_matching_uses_normalised_cross_correlation_not_the_raw_dot_product():
    # source patch 0 points the same way as the query; patch 1 is long and only roughly aligned,
    # so its raw dot product with the query is larger but its NCC is smaller
    v = torch.tensor([1.0, 0.0, 0.0, 0.0])
    w = torch.tensor([0.6, 0.8, 0.0, 0.0])
    src = source_of(torch.stack([v, 10 * w, torch.tensor([0.0, 0.0, 1.0, 0.0])])[None])
    query = (2 * v + 0.05 * torch.tensor([0.0, 0.0, 0.0, 1.0]))[None, None]
    assert float(query[0, 0] @ (10 * w)) > float(query[0, 0] @ v)  # raw dot product prefers patch 1
    j, _ = match_patches(query, src)
    assert j.tolist() == [[0]]


def test_matching_finds_the_shifted_and_scaled_source_patches():
    # output features = a crop of the source, scaled by 3: every output patch's best match is the
    # source patch at the crop offset (known answer), with NCC exactly 1
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(1, 4, 7, 8, generator=gen)
    out = 3 * src[:, :, 2:6, 1:7]  # 4 x 6 -> 2 x 4 output patches
    j, _ = match_patches(extract_patches(out), patch_source(src), max_elements=7)  # chunked
    src_w = 8 - 2  # source patches per row
    expected = [(y + 2) * src_w + (x + 1) for y in range(2) for x in range(4)]
    assert j[0].tolist() == expected


def test_matching_equals_brute_force_argmax_in_chunks_and_batches():
    gen = torch.Generator().manual_seed(1)
    out = torch.randn(2, 3, 6, 6, generator=gen)
    src = torch.randn(2, 3, 5, 7, generator=gen)
    p, q = extract_patches(out), extract_patches(src)
    ncc = F.normalize(p, dim=-1) @ F.normalize(q, dim=-1).transpose(1, 2)
    for max_elements in (1, 50, 1 << 20):
        j, i = match_patches(p, patch_source(src), max_elements=max_elements, reverse=True)
        assert torch.equal(j, ncc.argmax(2))
        assert torch.equal(i, ncc.argmax(1))
    # one source shared by a batch of two outputs
    j, _ = match_patches(p, patch_source(src[:1]))
    ncc0 = F.normalize(p, dim=-1) @ F.normalize(q[:1], dim=-1).transpose(1, 2)
    assert torch.equal(j, ncc0.argmax(2))


def test_loss_is_zero_when_the_image_equals_the_source(net):
    img = load_image("brick", 48)
    for layer in default_patch_layers(net):
        f = net(img, [layer])[layer]
        src = patch_source(f)
        energy = float(src.patches.pow(2).mean())  # random-weight features are tiny: compare relative
        assert float(patch_loss(f, src)) < 1e-9 * energy
        assert float(patch_loss(f, src, variety=1.0)) < 1e-9 * energy
        other = net(load_image("gravel", 48), [layer])[layer]
        assert float(patch_loss(other, src)) > 0.01 * energy


def test_loss_is_per_sample_and_no_gradient_flows_through_the_matching():
    gen = torch.Generator().manual_seed(2)
    src = patch_source(torch.randn(1, 3, 6, 6, generator=gen))
    x = torch.randn(3, 3, 6, 6, generator=gen, requires_grad=True)
    loss = patch_loss(x, src)
    assert loss.shape == (3,)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    # the gradient is that of the squared distance to the (constant) matched patches
    p = extract_patches(x.detach())
    j, _ = match_patches(p, src)
    matched = src.patches[0][j]  # (3, N, K)
    K, N = p.shape[-1], p.shape[1]
    patch_grad = 2 * (p - matched) / (N * K)
    expected = F.fold(patch_grad.transpose(1, 2), (6, 6), 3)
    torch.testing.assert_close(grad, expected)
    # sample 1's loss does not depend on sample 0
    x2 = x.detach().clone()
    x2[0] += 1.0
    torch.testing.assert_close(patch_loss(x2, src)[1:], loss.detach()[1:])


def test_loss_decreases_under_optimisation(net):
    layers = default_patch_layers(net)
    assert layers == ["conv3_1", "conv4_1"]
    img = load_image("brick", 32)
    with torch.no_grad():
        feats = net(img, layers)
    sources = {layer: patch_source(feats[layer]) for layer in layers}
    # random-weight features are tiny (σ = 0.015): scale each layer by its source's energy
    scale = {layer: 1.0 / float(sources[layer].patches.pow(2).mean()) for layer in layers}

    def objective(x: torch.Tensor) -> torch.Tensor:
        f = net(x, layers)
        return sum(scale[layer] * patch_loss(f[layer], sources[layer]) for layer in layers)

    x0 = white_noise((1, 3, 32, 32), 0, torch.device("cpu"))
    res = minimize(objective, x0, OptimConfig(iterations=15))
    start = float(objective(x0))
    assert float(res.final_loss[0]) < 0.5 * start


def test_variety_term_penalises_reusing_one_source_patch():
    gen = torch.Generator().manual_seed(3)
    src_f = torch.randn(1, 2, 5, 5, generator=gen)
    src = patch_source(src_f)
    # an output made of one source patch repeated: every output patch matches it exactly (plain
    # loss 0), but most source patches are never used
    tile = src_f[:, :, 1:4, 1:4]
    out = tile.repeat(1, 1, 1, 1).clone()
    assert float(patch_loss(out, src)) < 1e-10
    usage = patch_usage(out, src)
    assert float(usage["max_share"][0]) == 1.0 and float(usage["distinct"][0]) == pytest.approx(1 / src.count)
    out.requires_grad_(True)
    loss = patch_loss(out, src, variety=0.5)
    assert float(loss.detach()) > 0.01
    (grad,) = torch.autograd.grad(loss.sum(), out)
    assert float(grad.abs().sum()) > 0
    # on the source itself the usage is spread and the variety term is zero
    assert float(patch_usage(src_f, src)["distinct"][0]) == 1.0
    with pytest.raises(ConfigError, match="variety"):
        patch_loss(out, src, variety=-1)


def test_feature_map_smaller_than_a_patch_is_a_clear_error(net):
    with pytest.raises(ConfigError, match="smaller than a 3x3 patch"):
        extract_patches(torch.zeros(1, 2, 2, 5))
    task = get_task("texture")
    from archbench.tasks import TaskJob

    with pytest.raises(ConfigError, match="conv4_1.*needs at least 24 px"):
        task.validate(net, TaskJob(images=["brick"], size=16, options={"loss": "patches"}))
    with pytest.raises(ConfigError, match="unknown loss 'patch'; valid: gram, patches"):
        task.parse_options({"loss": "patch"})


def test_texture_and_style_with_loss_patches():
    rep = run_task(ARCH, "texture", ["brick"], size=32, iterations=6, device="cpu",
                   options={"loss": "patches"}, metrics=["spectrum"])
    (res,) = rep.results  # one problem of both patch layers (cumulative off for patches)
    assert res.layer == "conv3_1+conv4_1"
    assert res.extra["loss"] == "patches" and set(res.extra["layer_weights"]) == {"patches:conv3_1", "patches:conv4_1"}
    assert res.loss_trace[-1] < res.loss_trace[0]
    rep = run_task(ARCH, "style", ["astronaut"], size=32, iterations=4, device="cpu",
                   options={"style": "brick", "loss": "patches", "variety": 0.5}, metrics=["ssim"])
    (res,) = rep.results
    assert set(res.extra["layer_weights"]) == {"content:conv1_2", "patches:conv3_1", "patches:conv4_1", "tv"}
    assert res.extra["variety"] == 0.5 and res.status == "done"
