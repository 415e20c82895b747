"""Training-free proxies: each one checked by hand on a network small enough to compute it in numpy,
then the task's plumbing (classifier or random head, BatchNorm modes, the store)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archbench.architectures import create_arch
from archbench.metrics import get_metric
from archbench.metrics.proxies import (
    PROXIES,
    ActivationCodes,
    count_flops,
    grad_norm,
    jacob_cov_score,
    naswot_score,
    parameter_count,
    proxy_weights,
    snip,
    synflow,
)
from archbench.runner import run_task
from archbench.tasks.proxies import ProxiesOptions, batchnorm_train_mode, proxy_batch, proxy_network

# -- a network small enough to check by hand -----------------------------------------------------
# x (N, 3, 2, 2) -> 1x1 conv (3 -> 2, bias) -> ReLU -> mean over the 4 pixels -> linear (2 -> 3, bias)
W1 = np.array([[0.5, -1.0, 0.25], [-0.75, 0.5, 1.0]])
B1 = np.array([0.1, -0.2])
W2 = np.array([[1.0, -0.5], [0.25, 0.75], [-1.5, 0.5]])
B2 = np.array([0.05, -0.1, 0.2])
X = np.array(
    [
        [[[0.2, -0.4], [0.9, 0.1]], [[-0.3, 0.8], [0.5, -0.7]], [[0.6, 0.0], [-0.2, 0.4]]],
        [[[-0.5, 0.3], [0.2, 0.7]], [[0.9, -0.1], [-0.6, 0.3]], [[0.1, 0.5], [0.8, -0.9]]],
        [[[0.7, 0.6], [-0.8, -0.2]], [[0.1, 0.2], [0.3, 0.9]], [[-0.4, -0.6], [0.5, 0.2]]],
    ]
)
Y = np.array([2, 0, 1])


class Tiny(nn.Module):
    def __init__(self, functional: bool = False, bn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.bn = nn.BatchNorm2d(2) if bn else nn.Identity()
        self.act = nn.ReLU()
        self.fc = nn.Linear(2, 3)
        self.functional = functional
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(W1).view(2, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor(B1))
            self.fc.weight.copy_(torch.tensor(W2))
            self.fc.bias.copy_(torch.tensor(B2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bn(self.conv(x))
        a = F.relu(z) if self.functional else self.act(z)
        return self.fc(a.mean((2, 3)))


def by_hand() -> dict[str, np.ndarray]:
    """Forward and backward of the tiny network in numpy."""
    n, p = X.shape[0], X.shape[2] * X.shape[3]
    xs = X.reshape(n, 3, p)  # (n, c, pixel)
    z = np.einsum("jc,ncp->njp", W1, xs) + B1[None, :, None]  # (n, 2, pixel)
    a = np.maximum(z, 0)
    h = a.mean(2)  # (n, 2)
    logits = h @ W2.T + B2
    soft = np.exp(logits - logits.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    onehot = np.eye(3)[Y]
    d_logits = (soft - onehot) / n  # mean cross-entropy
    g_w2 = d_logits.T @ h
    d_z = (d_logits @ W2)[:, :, None] / p * (z > 0)  # (n, 2, pixel)
    g_w1 = np.einsum("njp,ncp->jc", d_z, xs)
    # d(sum of logits)/dx for each image: sum_k W2[k, j] = colsum_j
    colsum = W2.sum(0)
    jac = np.einsum("j,njp,jc->ncp", colsum, (z > 0) / p, W1)  # (n, c, pixel)
    return {"z": z, "logits": logits, "g_w1": g_w1, "g_w2": g_w2, "jac": jac}


def torch_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(X, dtype=torch.float32), torch.tensor(Y)


def grads_of(net: nn.Module) -> tuple[list[torch.Tensor], tuple[torch.Tensor | None, ...]]:
    x, y = torch_batch()
    weights = proxy_weights(net)
    loss = F.cross_entropy(net(x), y)
    return weights, torch.autograd.grad(loss, weights)


# -- each proxy by hand --------------------------------------------------------------------------
def test_the_weights_are_the_conv_and_linear_weights_only():
    net = Tiny(bn=True)
    assert [tuple(w.shape) for w in proxy_weights(net)] == [(2, 3, 1, 1), (3, 2)]
    assert parameter_count(net) == 3 * 2 + 2 + 2 * 3 + 3 + 2 + 2  # conv, linear, BN affine


def test_grad_norm_by_hand():
    ref = by_hand()
    _, grads = grads_of(Tiny())
    expected = np.linalg.norm(ref["g_w1"]) + np.linalg.norm(ref["g_w2"])
    assert grad_norm(grads) == pytest.approx(expected, rel=1e-5)


def test_snip_by_hand():
    ref = by_hand()
    weights, grads = grads_of(Tiny())
    expected = np.abs(W1 * ref["g_w1"]).sum() + np.abs(W2 * ref["g_w2"]).sum()
    assert snip(weights, grads) == pytest.approx(expected, rel=1e-5)


def synflow_by_hand(n: int) -> float:
    """|weights|, all-ones input of n images: z = |W1| 1 + |b1| (every pixel), h = z,
    out = |W2| h + |b2|; R = n · Σ out. Σ|W2 ⊙ ∂R/∂W2| = n Σ_kj |W2_kj| h_j and
    Σ|W1 ⊙ ∂R/∂W1| = n Σ_jc |W1_jc| Σ_k |W2_kj| (the mean over pixels has derivative 1 in total)."""
    h = np.abs(W1).sum(1) + np.abs(B1)
    return n * (np.abs(W2) @ h).sum() + n * (np.abs(W1) * np.abs(W2).sum(0)[:, None]).sum()


def test_synflow_by_hand_and_batchnorm_is_the_identity():
    value, details = synflow(Tiny(), (3, 3, 2, 2))
    assert details["rescale_log2"] == [0, 0]
    assert value == pytest.approx(math.log(synflow_by_hand(3)), rel=1e-7)  # float32 weights
    bn = Tiny(bn=True)
    with torch.no_grad():  # statistics and affine parameters that synflow must ignore
        bn.bn.running_mean.fill_(5.0)
        bn.bn.running_var.fill_(0.01)
        bn.bn.weight.fill_(-3.0)
        bn.bn.bias.fill_(7.0)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    value_bn, _ = synflow(bn, (3, 3, 2, 2))
    assert value_bn == pytest.approx(value, rel=1e-12)
    for k, v in bn.state_dict().items():  # restored exactly, float32 again
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
    assert bn.conv.weight.min() < 0  # the signs are back


def test_synflow_rescales_instead_of_overflowing_or_underflowing():
    """A chain of L scalar layers of gains w_1 ... w_L: R = n·Π w and every layer's |W ⊙ ∂R/∂W|
    is R, so ln synflow = ln(L n) + Σ ln w. 100 gains of 1e4 overflow float64 forward and backward,
    100 of 1e-4 underflow both; a first gain of 1e-30 before 84 gains of 1e4 keeps the forward
    pass in range (1e306) but overflows the backward pass (1e336; rescaled exactly)."""
    for layers, first, w, sign in ((100, 1e4, 1e4, -1), (100, 1e-4, 1e-4, 1), (85, 1e-30, 1e4, -1)):
        net = nn.Sequential(*[nn.Linear(1, 1, bias=False) for _ in range(layers)])
        with torch.no_grad():
            for layer in net:
                layer.weight.fill_(w)
            net[0].weight.fill_(first)
        value, details = synflow(net, (2, 1))
        e_in, e_out = details["rescale_log2"]
        assert e_out * sign > 0 and (e_in == 0) == (layers == 85)
        expected = math.log(layers * 2) + math.log(np.float32(first)) + (layers - 1) * math.log(np.float32(w))
        assert value == pytest.approx(expected, rel=1e-9)


def test_naswot_by_hand_and_functional_relus_count():
    z = by_hand()["z"]
    codes = (z > 0).reshape(3, -1).astype(float)
    units = codes.shape[1]
    hamming = np.abs(codes[:, None, :] - codes[None, :, :]).sum(2)
    expected = np.linalg.slogdet(units - hamming)[1]
    x, _ = torch_batch()
    for functional in (False, True):
        with torch.no_grad(), ActivationCodes(3) as c:
            Tiny(functional=functional)(x)
        assert c.calls == 1 and c.units == units == 8
        np.testing.assert_array_equal(c.K.numpy(), units - hamming)
        assert naswot_score(c.K) == pytest.approx(expected, rel=1e-12)


def test_naswot_reads_other_activations_by_the_sign_of_their_input():
    x = torch.tensor([[-1.0, 2.0, 0.5], [3.0, -0.5, 0.0]])
    with ActivationCodes(2) as c:
        nn.SiLU()(x)
        torch.sigmoid(x)
        nn.Hardswish()(x.view(2, 3, 1, 1))
        x.sum()  # not an activation
        nn.ReLU()(torch.ones(5))  # not a batch of 2: skipped
    codes = (x > 0).double()
    k = 3 * (codes @ codes.T + (1 - codes) @ (1 - codes).T)
    assert c.calls == 3 and c.skipped == 1 and c.units == 9
    torch.testing.assert_close(c.K, k)


def test_jacob_cov_by_hand():
    ref = by_hand()
    x, _ = torch_batch()
    x.requires_grad_(True)
    (jac,) = torch.autograd.grad(Tiny()(x).sum(), x)
    np.testing.assert_allclose(jac.reshape(3, 3, 4).numpy(), ref["jac"], rtol=1e-5, atol=1e-7)
    corr = np.corrcoef(ref["jac"].reshape(3, -1))
    lam = np.linalg.eigvalsh(corr)
    expected = -np.sum(np.log(lam + 1e-5) + 1 / (lam + 1e-5))
    assert jacob_cov_score(jac) == pytest.approx(expected, rel=1e-5)
    assert math.isnan(jacob_cov_score(torch.zeros(3, 12)))  # constant rows: undefined


def test_flops_and_params_by_hand():
    x, _ = torch_batch()
    # 1x1 conv: 2 FLOPs x 3 inputs x 2 outputs x 4 pixels; linear: 2 x 2 x 3 (biases not counted)
    assert count_flops(Tiny(), x[:1]) == 2 * 3 * 2 * 4 + 2 * 2 * 3
    assert parameter_count(Tiny()) == 17


# -- the task ------------------------------------------------------------------------------------
TINY_FILE = '''
import torch
from torch import nn


def tiny(classes: int = 5):
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes),
    )
'''


def test_the_task_equals_the_definitions_on_its_batch(tmp_path):
    """A plain module with its own classifier, through resolve -> execute -> Result.metrics; BatchNorm
    in train mode for the gradient proxies and the network unchanged afterwards."""
    (tmp_path / "tiny.py").write_text(TINY_FILE)
    spec = f"{tmp_path / 'tiny.py'}:tiny"
    (r,) = run_task(spec, "proxies", size=8, init="kaiming", seed=3, device="cpu").results
    assert r.status == "done" and r.image == "noise" and r.layer == "network" and r.stalled is None
    assert set(r.metrics) == set(PROXIES) and all(r.metrics[p] is not None for p in PROXIES)
    assert r.extra["classifier"] == "own" and r.extra["classes"] == 5 and len(r.extra["batch"]) == 12
    assert r.iterations_run == 0 and r.loss_trace == []

    net = create_arch(spec, init="kaiming", seed=3)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    images, _ = proxy_batch(ProxiesOptions(), 8)
    x = net.preprocess(images)
    labels = torch.randint(0, 5, (12,), generator=torch.Generator().manual_seed(3))
    model = net.model
    weights = proxy_weights(model)
    with batchnorm_train_mode(model, weights), torch.enable_grad():
        assert model[1].training and not model[0].training
        xg = x.clone().requires_grad_(True)
        with ActivationCodes(12) as codes:
            logits = model(xg)
        loss = F.cross_entropy(logits, labels)
        grads = torch.autograd.grad(loss, weights, retain_graph=True)
        (jac,) = torch.autograd.grad(logits.sum(), xg)
    assert r.final_loss == pytest.approx(loss.item(), rel=1e-6)
    assert r.metrics["grad_norm"] == pytest.approx(grad_norm(grads), rel=1e-6)
    assert r.metrics["snip"] == pytest.approx(snip(weights, grads), rel=1e-6)
    assert r.metrics["jacob_cov"] == pytest.approx(jacob_cov_score(jac), rel=1e-6)
    assert r.metrics["naswot"] == pytest.approx(naswot_score(codes.K), rel=1e-9)
    assert r.metrics["synflow"] == pytest.approx(synflow(model, (12, 3, 8, 8))[0], rel=1e-9)
    assert r.metrics["params"] == parameter_count(model)
    assert r.metrics["flops"] == count_flops(model, x[:1])
    # BatchNorm ran on batch statistics, and its running statistics are as they were
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def test_a_network_without_a_classifier_gets_a_seeded_random_head():
    net = create_arch("vgg11", init="gaussian:0.015", seed=1)
    module, info = proxy_network(net, 32, seed=1)
    assert info["classifier"] == "random linear head on the global average pool of tap pool5 (512 -> 1000)"
    assert info["head_init"] == "gaussian:0.015"
    assert module.head.weight.std().item() == pytest.approx(0.015, rel=0.05)
    again, _ = proxy_network(create_arch("vgg11", init="gaussian:0.015", seed=1), 32, seed=1)
    other, _ = proxy_network(net, 32, seed=2)
    assert torch.equal(module.head.weight, again.head.weight) and not torch.equal(module.head.weight, other.head.weight)
    _, fc = proxy_network(create_arch("vgg11(fc=true)", init="native"), 32)
    assert fc["classifier"] == "random linear head on the tap fc7 (4096 -> 1000)" and fc["head_init"] == "kaiming"


def test_proxies_are_stored_like_every_score(tmp_path):
    from archbench.store import ResultStore
    from archbench.sweep import run_sweep

    suite = tmp_path / "p.toml"
    suite.write_text(
        'name = "p"\nseeds = [0]\ninits = ["kaiming", "native"]\nsize = 32\ndevice = "cpu"\narchs = ["vgg11"]\n'
        '[[task]]\nname = "proxies"\nmetrics = ["naswot", "params"]\n'
    )
    store = ResultStore(tmp_path / "r.db")
    summary = run_sweep(suite, store)
    assert summary.done == 2 and summary.failed == 0
    rows = store.results()
    assert {r.init for r in rows} == {"kaiming", "native"}
    assert all(set(r.metrics) == {"naswot", "params"} and r.metrics["params"] > 9e6 for r in rows)
    assert all(r.stalled is None and r.layer == "network" for r in rows)


def test_options_and_directions():
    from archbench.errors import ConfigError
    from archbench.tasks import get_task

    task = get_task("proxies")
    assert task.parse_options({"images": "coffee,chelsea"}).sources == ["coffee", "chelsea"]
    for bad in ({"proxies": ["fisher"]}, {"classes": 1}, {"images": []}, {"mirror": "yes"}):
        with pytest.raises(ConfigError):
            task.parse_options(bad)
    assert all(get_metric(p).higher_is_better for p in PROXIES)


def test_the_cpu_proxies_suite_covers_the_accuracy_suites_networks():
    from archbench.sweep import expand_jobs, load_suite
    from tests.conftest import ROOT

    proxies = load_suite(ROOT / "benchmarks" / "suites" / "proxies_cpu.toml")
    accuracy = load_suite(ROOT / "benchmarks" / "suites" / "accuracy_cpu.toml")
    assert [a.spec for a in proxies.archs] == [a.spec for a in accuracy.archs]
    jobs = expand_jobs(proxies, "cpu")
    assert len(jobs) == 26 * 3 and {j.task for j in jobs} == {"proxies"} and {j.size for j in jobs} == {64}
    assert {j.init for j in jobs} == {"kaiming", "gaussian:0.015", "native"}
