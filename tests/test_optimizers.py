"""Batched optimisers: independence of samples, convergence, failure isolation, chunking, options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archbench.errors import ConfigError, OptimizationError
from archbench.optimizers import OptimConfig, lbfgs_reference, minimize, minimize_chunked
from archbench.optimizers.lbfgs import compact_direction, two_loop_direction

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These problems are tiny: one thread avoids OpenMP hand-offs that dominate on a busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- problems -------------------------------------------------------------------------------------
def tiny_net(dtype: torch.dtype = F64) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            p.requires_grad_(False)
    return net.to(dtype)


class Reconstruction:
    """Per-sample feature reconstruction ``|F(x) - F(x_b*)|^2 / |F(x_b*)|^2``; sliceable by index."""

    def __init__(self, n: int, size: int = 16, dtype: torch.dtype = F64, seed: int = 1) -> None:
        self.net = tiny_net(dtype)
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, size, size, generator=g, dtype=dtype)
        with torch.no_grad():
            self.target = self.net(self.images)
        self.norm = self.target.flatten(1).square().sum(1)
        self.calls: list[int] = []

    def start(self, seed: int = 2) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(self.images.shape, generator=g, dtype=self.images.dtype)

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append(x.shape[0])
        index = torch.arange(x.shape[0]) if index is None else index
        diff = self.net(x) - self.target[index]
        return diff.flatten(1).square().sum(1) / self.norm[index]

    def only(self, b: int):
        return lambda x: self(x, torch.tensor([b]))


def quadratic(n: int = 3, dim: int = 24, seed: int = 0):
    """Per-sample convex quadratics ``0.5 (x - c_b)^T A_b (x - c_b)``, minimum 0 at ``c_b``."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, dim, dim, generator=g, dtype=F64)
    A = M @ M.transpose(1, 2) / dim + 0.2 * torch.eye(dim, dtype=F64)
    c = torch.randn(n, dim, generator=g, dtype=F64)

    def objective(x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        index = torch.arange(x.shape[0]) if index is None else index
        r = x.reshape(x.shape[0], -1) - c[index]
        return 0.5 * torch.einsum("bi,bij,bj->b", r, A[index], r)

    return objective, c


# -- the direction --------------------------------------------------------------------------------
def test_compact_direction_matches_two_loop_with_scrambled_ring_and_empty_slots():
    torch.manual_seed(0)
    B, m, D = 2, 6, 30
    M = torch.randn(B, D, D, dtype=F64)
    A = M @ M.transpose(1, 2) / D + 0.5 * torch.eye(D, dtype=F64)
    SY = torch.zeros(B, 2 * m, D, dtype=F64)
    stamp = torch.full((B, m), -1)
    pairs = [[], []]
    # sample 0: 4 pairs in slots 3,1,5,0 (that is the chronological order); sample 1: full ring, wrapped
    layouts = [[3, 1, 5, 0], [2, 3, 4, 5, 0, 1]]
    for b, slots in enumerate(layouts):
        for n, slot in enumerate(slots):
            s = torch.randn(D, dtype=F64)
            y = A[b] @ s
            SY[b, slot], SY[b, m + slot] = s, y
            stamp[b, slot] = 10 + n
            pairs[b].append((s, y))
    S, Y = SY[:, :m], SY[:, m:]
    StY = S @ Y.transpose(1, 2)
    YtY = Y @ Y.transpose(1, 2)
    g = torch.randn(B, D, dtype=F64)
    gamma = torch.stack([torch.dot(p[-1][0], p[-1][1]) / torch.dot(p[-1][1], p[-1][1]) for p in pairs])
    d = compact_direction(g, SY, StY, YtY, stamp, gamma, (S @ g[:, :, None])[..., 0], (Y @ g[:, :, None])[..., 0])
    for b in range(B):
        expected = two_loop_direction(g[b], [p[0] for p in pairs[b]], [p[1] for p in pairs[b]])
        torch.testing.assert_close(d[b], expected, rtol=1e-9, atol=1e-12)


# -- convergence and agreement with torch.optim.LBFGS ---------------------------------------------
@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_quadratic_converges_to_known_minimum(method):
    objective, c = quadratic()
    x0 = torch.zeros(3, 1, 4, 6, dtype=F64)
    config = OptimConfig(method=method, iterations=60 if method == "lbfgs" else 600, history=10, lr=None)
    res = minimize(objective, x0, config)
    tol = 1e-5 if method == "lbfgs" else 1e-2
    torch.testing.assert_close(res.x.reshape(3, -1), c, atol=tol, rtol=0)
    assert all(f is None for f in res.failed)
    assert (res.final_loss < 1e-8 if method == "lbfgs" else res.final_loss < 1e-3).all()
    assert res.x.shape == x0.shape and res.loss_trace.shape[0] == 3


def test_without_line_search_follows_torch_lbfgs_step_by_step():
    """Same algorithm as torch.optim.LBFGS(line_search_fn=None): the loss traces coincide."""
    problem = Reconstruction(2, size=8)
    x0 = problem.start()
    config = OptimConfig(iterations=15, history=5, line_search="none")
    ours = minimize(problem, x0, config)
    for b in range(2):
        ref = lbfgs_reference(problem.only(b), x0[b : b + 1], config)
        assert ref.iterations == [15]
        torch.testing.assert_close(ours.loss_trace[b], ref.loss_trace[0], rtol=1e-7, atol=1e-12)
        torch.testing.assert_close(ours.x[b], ref.x[0], rtol=1e-6, atol=1e-9)


# -- scale-free stopping and the stalled flag ------------------------------------------------------
@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_a_tiny_objective_is_optimised_like_the_same_objective_at_unit_scale(method):
    """Multiplying an objective by 1e-9 changes nothing but the reported losses (scale-free rule);
    with the absolute thresholds it stops at its start and is flagged stalled."""
    problem = Reconstruction(2, size=8)
    x0 = problem.start()
    config = OptimConfig(method=method, iterations=20, history=5)
    big = minimize(problem, x0, config)
    tiny = minimize(lambda x: 1e-9 * problem(x), x0, config)
    assert tiny.iterations == big.iterations == [20, 20]
    torch.testing.assert_close(tiny.x, big.x, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(tiny.loss_trace, 1e-9 * big.loss_trace, rtol=1e-6, atol=0)
    torch.testing.assert_close(tiny.initial_loss, 1e-9 * big.initial_loss, rtol=1e-9, atol=0)
    assert big.stalled == tiny.stalled == [False, False]
    absolute = minimize(lambda x: 1e-9 * problem(x), x0, OptimConfig(method=method, iterations=20, history=5,
                                                                     scale_free=False))
    assert absolute.stalled == [True, True]
    assert (absolute.final_loss > 0.999 * absolute.initial_loss).all()


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_a_sample_that_cannot_move_is_stalled_and_the_others_are_not(method):
    problem = Reconstruction(2, size=8)
    x0 = problem.start()

    def objective(x: torch.Tensor) -> torch.Tensor:  # sample 1 is flat: zero gradient, loss 3
        loss = problem(x)
        return torch.stack([loss[0], 3.0 + 0.0 * x[1].sum()])

    res = minimize(objective, x0, OptimConfig(method=method, iterations=10, history=5))
    assert res.stalled == [False, True]
    assert res.iterations[1] == 0 and res.final_loss[1] == 3.0
    torch.testing.assert_close(res.x[1], x0[1])


def test_stalled_flags_are_scale_free_and_use_both_tests():
    from archbench.optimizers.base import stalled_flags

    cfg = OptimConfig()
    x0 = torch.zeros(4, 3, 2, 2)
    x = x0.clone()
    x[0] += 0.5  # moved, loss fell 50%: not stalled
    x[1] += 0.5  # moved, loss fell 0.01%: stalled (loss)
    x[2] += 1e-3  # loss fell 50% but no pixel moved by 1/255: stalled (image)
    f0 = torch.tensor([2e-9, 2e-9, 2e-9, float("nan")])
    f = torch.tensor([1e-9, 1.9998e-9, 1e-9, float("nan")])
    assert stalled_flags(x0, x, f0, f, cfg) == [False, True, True, True]


def test_reference_and_batched_reach_comparable_losses_on_vgg_reconstruction():
    from archbench.architectures import create_arch

    torch.manual_seed(0)
    net = create_arch("vgg11(fc=false)", init="gaussian:0.015", seed=0)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        target = net(images, ["pool2"])["pool2"]
    norm = target.flatten(1).square().sum(1)

    def objective(x):
        return (net(x, ["pool2"])["pool2"] - target).flatten(1).square().sum(1) / norm

    def single(b):
        return lambda x: (net(x, ["pool2"])["pool2"] - target[b]).flatten(1).square().sum(1) / norm[b]

    x0 = torch.rand(2, 3, 32, 32, generator=g)
    config = OptimConfig(iterations=40, history=20, line_search="none")
    ours = minimize(objective, x0, config)
    ref = [lbfgs_reference(single(b), x0[b : b + 1], config).final_loss.item() for b in range(2)]
    start = objective(x0)
    for b in range(2):
        assert ours.final_loss[b] < 0.2 * start[b]  # it really optimised
        assert ours.final_loss[b] <= 2.0 * ref[b] and ref[b] <= 2.0 * ours.final_loss[b]
    backtracked = minimize(objective, x0, OptimConfig(iterations=40, history=20))
    assert (backtracked.final_loss <= 2.0 * torch.tensor(ref, dtype=torch.float32)).all()


# -- independence of samples ----------------------------------------------------------------------
@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_batched_run_equals_each_sample_alone(method):
    problem = Reconstruction(3)
    x0 = problem.start()
    config = OptimConfig(method=method, iterations=25, history=8)
    batched = minimize(problem, x0, config)
    for b in range(3):
        alone = minimize(problem.only(b), x0[b : b + 1], config)
        assert alone.iterations[0] == batched.iterations[b]
        assert alone.evaluations[0] == batched.evaluations[b]
        if method == "lbfgs":
            assert alone.settings["accepted_steps"][0] == batched.settings["accepted_steps"][b]
        torch.testing.assert_close(alone.x[0], batched.x[b], rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(alone.final_loss[0], batched.final_loss[b], rtol=1e-4, atol=1e-10)
        T = alone.loss_trace.shape[1]
        torch.testing.assert_close(alone.loss_trace[0], batched.loss_trace[b, :T], rtol=1e-4, atol=1e-10)
    assert batched.final_loss.max() < 0.5 * problem(x0).min()


# -- failure isolation ----------------------------------------------------------------------------
class NanAfter:
    """Wraps an objective; sample ``bad``'s loss is NaN from evaluation number ``after`` on.

    The NaN is added as a constant so that the other samples' gradients stay finite (a
    ``torch.where`` on the losses would send ``0 * NaN`` to all of them).
    """

    def __init__(self, objective, bad: int, after: int) -> None:
        self.objective, self.bad, self.after, self.n = objective, bad, after, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        losses = self.objective(x)
        if self.n >= self.after:
            poison = torch.zeros_like(losses)
            poison[self.bad] = float("nan")
            losses = losses + poison
        self.n += 1
        return losses


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_non_finite_loss_fails_only_that_sample(method):
    problem = Reconstruction(3)
    x0 = problem.start()
    config = OptimConfig(method=method, iterations=20, history=8)
    clean = minimize(problem, x0, config)
    broken = minimize(NanAfter(problem, bad=1, after=6), x0, config)
    assert broken.failed[0] is None and broken.failed[2] is None
    assert broken.failed[1] == "non-finite loss at iteration 6"  # evaluation 6 is iteration 6
    assert broken.iterations[1] == 5
    for b in (0, 2):
        torch.testing.assert_close(broken.x[b], clean.x[b])
        assert broken.iterations[b] == clean.iterations[b]
    # the failed sample is frozen at its last finite iterate, with that iterate's loss
    assert torch.isfinite(broken.x[1]).all() and torch.isfinite(broken.final_loss[1])
    torch.testing.assert_close(problem.only(1)(broken.x[1:2])[0], broken.final_loss[1])
    assert torch.isfinite(broken.loss_trace).all()


def test_non_finite_start_fails_at_iteration_zero():
    problem = Reconstruction(2)
    x0 = problem.start()
    x0[0, 0, 0, 0] = float("nan")
    res = minimize(problem, x0, OptimConfig(iterations=5))
    assert res.failed == ["non-finite loss at iteration 0", None]
    assert res.iterations[0] == 0 and res.iterations[1] == 5


# -- chunking and out-of-memory -------------------------------------------------------------------
def test_out_of_memory_halves_the_chunk_and_gives_the_same_results():
    problem = Reconstruction(5)
    x0 = problem.start()
    config = OptimConfig(iterations=12, history=5)
    whole = minimize(problem, x0, config)

    def fragile(x, index):
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return problem(x, index)

    seen = []
    chunked = minimize_chunked(fragile, x0, config, progress=lambda done, total: seen.append((done, total)))
    assert chunked.settings["chunk_sizes"] == [2, 2, 1]
    torch.testing.assert_close(chunked.x, whole.x, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(chunked.final_loss, whole.final_loss, rtol=1e-5, atol=1e-12)
    assert chunked.iterations == whole.iterations and chunked.evaluations == whole.evaluations
    assert chunked.settings["accepted_steps"] == whole.settings["accepted_steps"]
    assert seen[-1] == (5 * 12, 5 * 12)


def test_out_of_memory_with_one_sample_is_a_clear_error():
    problem = Reconstruction(2)

    def hopeless(x, index):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(OptimizationError, match="single sample"):
        minimize_chunked(hopeless, problem.start(), OptimConfig(iterations=3))


def test_chunk_size_from_config():
    problem = Reconstruction(3)
    res = minimize_chunked(problem, problem.start(), OptimConfig(iterations=3, batch_size=2))
    assert res.settings["chunk_sizes"] == [2, 1]
    assert max(problem.calls) == 2


# -- options --------------------------------------------------------------------------------------
def test_precision_auto_is_fp32_on_cpu_and_bf16_autocasts():
    seen = {}

    def objective(x):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["dtype"] = x.dtype
        return x.flatten(1).square().sum(1)

    x0 = torch.ones(2, 3, 4, 4)
    res = minimize(objective, x0, OptimConfig(iterations=2))
    assert res.settings["precision"] == "fp32" and seen == {"autocast": False, "dtype": torch.float32}
    res = minimize(objective, x0, OptimConfig(iterations=2, precision="fp32"))
    assert res.settings["precision"] == "fp32" and not seen["autocast"]
    res = minimize(objective, x0, OptimConfig(iterations=2, precision="bf16"))
    assert res.settings["precision"] == "bf16" and seen["autocast"]
    assert res.x.dtype == torch.float32 and res.final_loss.dtype == torch.float32


def test_channels_last_gives_the_same_result():
    problem = Reconstruction(2)
    x0 = problem.start()
    formats = []

    def objective(x):
        formats.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return problem(x)

    config = OptimConfig(iterations=10, history=5)
    plain = minimize(problem, x0, config)
    cl = minimize(objective, x0, OptimConfig(iterations=10, history=5, channels_last=True))
    assert all(formats) and cl.settings["channels_last"] and not plain.settings["channels_last"]
    assert cl.x.is_contiguous()
    torch.testing.assert_close(cl.x, plain.x, rtol=1e-6, atol=1e-9)


def test_progress_counts_sample_iterations():
    problem = Reconstruction(2)
    calls = []
    minimize(problem, problem.start(), OptimConfig(iterations=4), lambda d, t: calls.append((d, t)))
    assert calls == [(2, 8), (4, 8), (6, 8), (8, 8)]


@pytest.mark.parametrize(
    "kwargs",
    [{"precision": "fp16"}, {"channels_last": "yes"}, {"line_search": "wolfe"}, {"batch_size": 0}, {"lr": 0}],
)
def test_invalid_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        OptimConfig(**kwargs)


def test_wrong_loss_shape_is_reported():
    with pytest.raises(OptimizationError, match="per-sample losses"):
        minimize(lambda x: x.sum(), torch.ones(2, 3), OptimConfig(iterations=2))
