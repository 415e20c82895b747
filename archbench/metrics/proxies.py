"""Training-free proxies: numbers computed from a network at initialisation that are meant to
predict its trained accuracy (the ``proxies`` task, :mod:`archbench.tasks.proxies`, computes them).

Definitions as in Abdelfattah et al., *Zero-Cost Proxies for Lightweight NAS* (ICLR 2021:
``grad_norm``, ``snip``, ``synflow``, ``jacob_cov``) and Mellor et al., *Neural Architecture Search
without Training* (ICML 2021: ``naswot``; ``jacob_cov`` is the score of that paper's first arXiv
version, 2020, as Abdelfattah et al. implement it). "Weights" are the ``weight`` tensors of every
convolution and linear layer (as in Abdelfattah et al.'s ``get_layer_metric_array``: no biases, no
normalisation parameters); ``L`` is the mean cross-entropy of the network's logits on one batch
with given labels.

* ``grad_norm`` = Σ_W ‖∂L/∂W‖₂ (Frobenius norm per weight tensor, summed).
* ``snip`` = Σ_W Σ |W ⊙ ∂L/∂W| (connection sensitivity).
* ``synflow``: every parameter replaced by its absolute value, BatchNorm turned into the identity,
  the network run in float64 on an all-ones input of the batch's shape, ``R`` = Σ of its outputs;
  synflow = Σ_W Σ |W ⊙ ∂R/∂W|. Stored as its **natural logarithm** (the value spans hundreds of
  orders of magnitude across architectures; the log keeps the ranking and averages sensibly).
  See :func:`synflow` for what is done when float64 overflows or underflows.
* ``naswot``: for a batch of ``N`` images, the binary code ``c_i`` of every activation unit of the
  network (1 where the activation's input is > 0: for ReLU exactly "the unit is active"; for other
  activations the sign of the input), over every call of an activation function, modules and
  functional calls alike (:class:`ActivationCodes`); ``K[i, j] = N_A − Hamming(c_i, c_j)`` (the
  number of units on which images ``i`` and ``j`` agree); score = ``log |det K|``.
* ``jacob_cov``: ``J_i = ∂(Σ outputs)/∂x_i`` for every image of the batch (the network's input,
  after its preprocessing), flattened; ``σ`` = the correlation matrix of the rows of ``J``;
  score = ``−Σ_k [log(λ_k + 1e-5) + 1/(λ_k + 1e-5)]`` over its eigenvalues ``λ``.
* ``params``: number of parameters; ``flops``: floating-point operations of one forward pass of one
  image (``torch.utils.flop_counter``: 2 per multiply-accumulate of convolutions and matrix
  products; elementwise operations are not counted).

Each is higher = predicted better (for ``params`` and ``flops``: bigger networks tend to be more
accurate, so they are the baselines a proxy has to beat). They are registered below so that
their direction is known to rankings and reports; only the ``proxies`` task can compute them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from archbench.metrics.base import MetricUnavailable, register_metric

#: the proxies, in the order the task computes and reports them
PROXIES = ("synflow", "snip", "grad_norm", "naswot", "jacob_cov", "params", "flops")
#: ``k`` of jacob_cov (Abdelfattah et al.'s code)
JACOB_COV_K = 1e-5
#: layers whose ``weight`` counts as a weight of the proxies
WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


# ----------------------------------------------------------------------------------------------
# weights, gradients


def proxy_weights(module: nn.Module) -> list[torch.Tensor]:
    """The ``weight`` tensors of every convolution and linear layer of ``module`` (each once)."""
    out: list[torch.Tensor] = []
    seen: set[int] = set()
    for m in module.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, WEIGHTED) and isinstance(w, torch.Tensor) and id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    return out


#: elements per chunk of :func:`abs_dot` (bounds its temporaries to a few MB for any layer)
CHUNK = 1 << 20


def abs_dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """Σ |a ⊙ b| accumulated in float64, chunk by chunk (no full-size temporaries: VGG's first
    classifier layer has 103 M weights)."""
    a, b = a.detach().reshape(-1), b.detach().reshape(-1)
    total = 0.0
    for i in range(0, a.numel(), CHUNK):
        total += float(torch.dot(a[i : i + CHUNK].abs().double(), b[i : i + CHUNK].abs().double()))
    return total


def grad_norm(grads: Sequence[torch.Tensor | None]) -> float:
    """Σ over weight tensors of the Frobenius norm of the gradient (a missing gradient counts 0)."""
    return sum(math.sqrt(abs_dot(g, g)) for g in grads if g is not None)


def snip(weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> float:
    """Σ over weight tensors of Σ |W ⊙ ∂L/∂W| (a missing gradient counts 0)."""
    return sum(abs_dot(w, g) for w, g in zip(weights, grads, strict=True) if g is not None)


def parameter_count(module: nn.Module) -> int:
    """Number of parameters of ``module`` (shared tensors once)."""
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------
# NASWOT


def _activation_functions() -> set[Callable[..., Any]]:
    fns: set[Callable[..., Any]] = set()
    for name in ("relu", "relu_", "relu6", "hardtanh", "hardtanh_", "elu", "elu_", "selu", "selu_", "celu",
                 "celu_", "leaky_relu", "leaky_relu_", "rrelu", "rrelu_", "prelu", "gelu", "silu", "mish",
                 "hardswish", "hardsigmoid", "softplus", "sigmoid", "tanh", "logsigmoid", "softsign", "tanhshrink"):
        if hasattr(F, name):
            fns.add(getattr(F, name))
    for name in ("relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "selu", "selu_", "celu", "celu_", "prelu",
                 "rrelu", "rrelu_"):
        if hasattr(torch, name):
            fns.add(getattr(torch, name))
    for name in ("relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_"):
        fns.add(getattr(torch.Tensor, name))
    return fns


#: every activation function the codes are read from (nn modules call these too)
ACTIVATION_FUNCTIONS = frozenset(_activation_functions())


class ActivationCodes(TorchFunctionMode):
    """Inside ``with ActivationCodes(n) as codes:``, every call of an activation function on a
    tensor whose first dimension is the batch ``n`` adds its units' binary codes to NASWOT's kernel.

    Activation *functions* are intercepted (:data:`ACTIVATION_FUNCTIONS`), so ``nn.ReLU`` modules,
    ``F.relu`` / ``x.relu()`` calls in a forward method and every other activation (``nn.SiLU``,
    ``nn.Hardswish``, ``nn.Sigmoid`` ...) count once each. The code of a unit is ``input > 0``.

    Attributes:
        K: ``(n, n)`` float64, ``K[i, j]`` = number of units on which images ``i`` and ``j`` agree.
        units: ``N_A``, units counted; calls: activation calls counted; skipped: calls on tensors
            whose first dimension is not the batch (not counted).
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.K = torch.zeros(n, n, dtype=torch.float64)
        self.units = 0
        self.calls = 0
        self.skipped = 0

    def add(self, x: torch.Tensor) -> None:
        """Count the codes ``x > 0`` of a batch of activation inputs ``(n, ...)``."""
        c = (x.detach() > 0).reshape(self.n, -1)
        units = c.shape[1]
        if units == 0:
            return
        cf = c.float()
        agree_on = (cf @ cf.T).double().cpu()  # both active; exact integers (units < 2**24 per call)
        ones = cf.sum(1).double().cpu()
        # agreements = both active + both inactive = k + (units − s_i − s_j + k)
        self.K += 2 * agree_on - ones[:, None] - ones[None, :] + units
        self.units += units
        self.calls += 1

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        kwargs = kwargs or {}
        if func in ACTIVATION_FUNCTIONS and args and isinstance(args[0], torch.Tensor):
            x = args[0]
            if x.ndim >= 1 and x.shape[0] == self.n and x.is_floating_point():
                self.add(x)  # before the call: an in-place activation overwrites its input
            else:
                self.skipped += 1
        return func(*args, **kwargs)


def naswot_score(K: torch.Tensor) -> float:
    """``log |det K|`` (natural log, float64); ``-inf`` when ``K`` is singular."""
    sign, logabsdet = torch.linalg.slogdet(K.double())
    return float(logabsdet) if float(sign) != 0 else float("-inf")


# ----------------------------------------------------------------------------------------------
# jacob_cov


def jacob_cov_score(jacobians: torch.Tensor, k: float = JACOB_COV_K) -> float:
    """``−Σ [log(λ + k) + 1/(λ + k)]`` over the eigenvalues λ of the correlation matrix of the
    rows of ``jacobians`` ``(N, ...)`` (each image's flattened input gradient), in float64.
    NaN when a row is constant (its correlation is undefined)."""
    J = jacobians.detach().double().reshape(jacobians.shape[0], -1).cpu()
    corr = torch.corrcoef(J)
    if not bool(torch.isfinite(corr).all()):
        return float("nan")
    lam = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(lam + k) + 1.0 / (lam + k)).sum())


# ----------------------------------------------------------------------------------------------
# synflow


@contextlib.contextmanager
def _synflow_state(module: nn.Module, scale: float) -> Iterator[list[torch.Tensor]]:
    """Inside the block ``module`` runs synflow's network: every parameter ``|p|`` in float64
    (biases also times ``scale``), every other floating buffer in float64, every BatchNorm the
    identity (weight 1, bias 0, running mean 0, variance 1, eps 0), every module in eval mode.
    Yields the float64 weights (:func:`proxy_weights` order) with ``requires_grad``. Restores
    every parameter, buffer and attribute afterwards (tied parameters stay tied)."""
    weights = proxy_weights(module)
    weight_index = {id(w): i for i, w in enumerate(weights)}
    new_weights: list[torch.Tensor | None] = [None] * len(weights)
    saved: list[tuple[dict[str, Any] | nn.Module, str, Any]] = []  # (dict or module, key, old value)
    replaced: dict[int, nn.Parameter] = {}

    def put(table: dict[str, Any], key: str, value: Any) -> None:
        saved.append((table, key, table.get(key)))
        table[key] = value

    try:
        for m in module.modules():
            saved.append((m, "training", m.training))
            m.training = False
            bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
            for name, p in list(m._parameters.items()):
                if p is None:
                    continue
                q = replaced.get(id(p))
                if q is None:
                    if bn and name in ("weight", "bias"):
                        value = torch.full(p.shape, 1.0 if name == "weight" else 0.0, dtype=torch.float64, device=p.device)
                    else:
                        value = p.detach().to(torch.float64, copy=True).abs_()  # in place: no second copy
                        if name == "bias":
                            value.mul_(scale)
                    q = replaced[id(p)] = nn.Parameter(value, requires_grad=id(p) in weight_index)
                    if id(p) in weight_index:
                        new_weights[weight_index[id(p)]] = q
                put(m._parameters, name, q)
            for name, b in list(m._buffers.items()):
                if b is not None and b.is_floating_point():
                    put(m._buffers, name, b.double())
            if bn:
                saved.append((m, "eps", m.eps))
                m.eps = 0.0
                dev = next((t.device for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))), None)
                put(m._buffers, "running_mean", torch.zeros(m.num_features, dtype=torch.float64, device=dev))
                put(m._buffers, "running_var", torch.ones(m.num_features, dtype=torch.float64, device=dev))
        yield [w for w in new_weights if w is not None]
    finally:
        for table, key, old in reversed(saved):
            if isinstance(table, dict):
                table[key] = old
            else:
                setattr(table, key, old)


#: step (base-2 exponent) of synflow's rescaling, and the largest exponent tried
SYNFLOW_STEP = 256
SYNFLOW_MAX_EXPONENT = 960
#: values below this count as underflowed (float64's smallest normal number is 2.2e-308; below it
#: precision is lost)
SYNFLOW_TINY = 1e-290


def _usable(value: float) -> bool:
    return math.isfinite(value) and value >= SYNFLOW_TINY


@dataclass
class _SynflowTry:
    e_in: int  # input and biases scaled by 2**e_in
    e_out: int  # backward seeded with 2**e_out instead of 1
    R: float = float("nan")
    score: float = float("nan")
    grads_finite: bool = False
    underflowed: int = 0  # weight tensors (nonzero, used) whose gradient underflowed

    def describe(self) -> str:
        return f"(2**{self.e_in}, 2**{self.e_out}): R={self.R:.3g}, score={self.score:.3g}"


def _synflow_at(module: nn.Module, shape: Sequence[int], device: torch.device | str, e_in: int, e_out: int) -> _SynflowTry:
    """One evaluation of synflow's network: input and biases times ``2**e_in``, backward seeded with
    ``2**e_out`` (values in those scales' units)."""
    out = _SynflowTry(e_in, e_out)
    t = 2.0**e_in
    with _synflow_state(module, t) as weights, torch.enable_grad():
        R = module(torch.full(tuple(shape), t, dtype=torch.float64, device=device)).sum()
        out.R = float(R.detach())
        if not _usable(out.R):
            return out
        seed = torch.tensor(2.0**e_out, dtype=torch.float64, device=R.device)
        grads = torch.autograd.grad(R, weights, grad_outputs=seed, allow_unused=True)
        del R
        used = [(w.detach(), g) for w, g in zip(weights, grads, strict=True) if g is not None]
        del grads
        out.grads_finite = all(bool(torch.isfinite(g).all()) for _, g in used)
        out.underflowed = sum(1 for w, g in used if float(w.max()) > 0 and float(g.abs().max()) < SYNFLOW_TINY)
        out.score = sum(abs_dot(w, g) for w, g in used)
    return out


def synflow(module: nn.Module, shape: Sequence[int], device: torch.device | str = "cpu") -> tuple[float, dict[str, Any]]:
    """``(ln synflow, details)`` of ``module`` (a network from preprocessed images to logits) for
    an all-ones input of ``shape`` (the batch's shape).

    Computed in float64 (see the module docstring). Where float64 still overflows or underflows
    (deep networks whose gains multiply past 1e±308), it is recomputed on rescaled numbers, in
    steps of ``2**256``, and the scales are divided out of the result (in the log):

    * the **backward pass** is seeded with ``s = 2**e_out`` instead of 1 when gradients overflow,
      or when a weight's gradient underflows (falls below :data:`SYNFLOW_TINY` near float64's
      smallest normal number) and a larger seed brings it back. Gradients are linear in the seed,
      so this is exact for every network;
    * the **forward pass** runs on an input of ``t = 2**e_in`` (and every bias times ``t``) when
      ``R`` overflows or underflows. Exact for networks built of convolutions, linear layers, ReLU,
      pooling, concatenation, sums and BatchNorm-as-identity (positively homogeneous of degree 1
      in the input and the biases jointly, so ``R`` and every ``W ⊙ ∂R/∂W`` scale by ``t``);
      approximate for networks with gates (sigmoid, hard-swish) or other normalisations.

    ``details``: ``rescale_log2`` = ``[e_in, e_out]`` (``[0, 0]``: the plain definition) and
    ``log_R``. When no scale works the value is NaN and ``details["error"]`` says why.
    """
    tries: list[_SynflowTry] = []
    e_in = e_out = 0
    best: _SynflowTry | None = None
    while abs(e_in) <= SYNFLOW_MAX_EXPONENT and abs(e_out) <= SYNFLOW_MAX_EXPONENT and len(tries) < 16:
        now = _synflow_at(module, shape, device, e_in, e_out)
        tries.append(now)
        if not _usable(now.R):  # the forward pass: overflow -> smaller input, underflow -> larger
            e_in += -SYNFLOW_STEP if not math.isfinite(now.R) else SYNFLOW_STEP
            continue
        if not now.grads_finite or not math.isfinite(now.score):  # the backward pass overflowed
            if best is not None:
                break  # a larger seed helped some gradients but overflows others: keep the previous
            e_out -= SYNFLOW_STEP
            continue
        if best is not None and now.underflowed >= best.underflowed:
            break  # a larger seed does not bring those gradients back: they are zeros, not underflow
        best = now
        if now.underflowed == 0 and _usable(now.score):
            break
        e_out += SYNFLOW_STEP
    if best is not None and _usable(best.score):
        ln2 = math.log(2.0)
        shift = (best.e_in + best.e_out) * ln2
        return math.log(best.score) - shift, {"rescale_log2": [best.e_in, best.e_out],
                                              "log_R": math.log(best.R) - best.e_in * ln2}
    return float("nan"), {"rescale_log2": None, "error": "float64 overflowed or underflowed at every scale tried: "
                          + "; ".join(t.describe() for t in tries)}


# ----------------------------------------------------------------------------------------------
# FLOPs


def count_flops(module: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``module(x)`` counted by ``torch.utils.flop_counter.FlopCounterMode`` (no gradients)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(x)
    return int(counter.get_total_flops())


# ----------------------------------------------------------------------------------------------
# registration (direction and meaning; only the proxies task computes them)


def _task_score(name: str):
    def fn(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        raise MetricUnavailable(f"{name!r} is a score of the proxies task (archbench run --task proxies)")

    fn.__name__ = name
    return fn


_DESCRIPTIONS = {
    "synflow": "proxies: ln Σ|W ⊙ ∂R/∂W|, |weights|, BN identity, all-ones input, float64 (Abdelfattah et al. 2021)",
    "snip": "proxies: Σ|W ⊙ ∂L/∂W|, cross-entropy on the proxy batch (Abdelfattah et al. 2021)",
    "grad_norm": "proxies: Σ over weight tensors of ‖∂L/∂W‖₂ (Abdelfattah et al. 2021)",
    "naswot": "proxies: log|det K| of the activation codes' agreement kernel (Mellor et al. 2021)",
    "jacob_cov": "proxies: −Σ(log(λ+k) + 1/(λ+k)) over the eigenvalues of the input-Jacobian correlations (Mellor et al.; Abdelfattah et al. 2021)",
    "params": "proxies: parameter count of the network the proxies run on",
    "flops": "proxies: FLOPs of one forward pass of one image at the run's size (torch.utils.flop_counter)",
}

for _name in PROXIES:
    register_metric(_name, higher_is_better=True, description=_DESCRIPTIONS[_name])(_task_score(_name))
