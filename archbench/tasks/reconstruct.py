"""Task 1 of the paper: invert a representation (reconstruction from noise).

x* = argmin_x  L(F_l(x), F_l(x0)) + λ_TV·TV^β(x) + λ_α·‖x‖_α^α

Presets (option ``preset``): ``archbench`` (the default) optimises the image in a 1/f-scaled
Fourier basis (``param="fourier"``) from faint pink noise around mid-grey (``start="pink"``);
``paper`` optimises pixels from uniform white noise (``param="pixel"``, ``start="noise"``), the
paper's method and archbench's default before issue 26. Under the paper's settings the deep layers
stay noise within a CPU budget (VGG-19, 128 px, 100 iterations: pool4/pool5 SSIM 0.08/0.02):
their random features barely see high frequencies, so the white-noise start's noise sits in their
near-null space and is never removed. From pink noise under the 1/f preconditioning the layout
forms from the low frequencies up (pool4/pool5 SSIM 0.27/0.17 at the same budget); the
study and its pictures are in ``docs/tasks.md`` ("Deep layers"), the benchmark in
``benchmarks/deep_layers.py``. ``param`` and ``start`` can be set on their own.

where F_l is the output of tap ``l``. The feature term is normalised (``normalize``):
``relative`` (default) divides by ‖F_l(x0)‖², the scale-free form that keeps L-BFGS moving with
small random weights (σ = 0.015 shrinks features about tenfold per stage, so absolute units stall
it); ``paper`` is the paper's 1/(2·N_l·M_l) with ω_l from the automatic pre-pass (the reciprocal
mean absolute input gradient of the layer's loss at the white-noise start); ``none`` is the raw
squared distance. The Mahendran–Vedaldi priors (TV^β, α-norm) are off by default, as in the paper.
Every layer is its own reconstruction; problems that share a layer are optimised as one batch.

Layers are chosen by name (``layers``) or by stride level (``levels``): ``levels = [2, 3, 4]``
reconstructs from the first spatial tap of each of those levels
(:meth:`~archbench.architectures.base.TappedNetwork.taps_at_level`: the output at 1/4, 1/8 and
1/16 of the input), whatever the architecture calls it, so that architectures are compared at
equal depth. Results are labelled with the tap's name and record the level in ``extra["level"]``;
a leaderboard's mean over a run's layers is then a multi-level score (the mean over those
levels), in which a network's later stages count as much as its first.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError
from archbench.images import image_label, load_image
from archbench.losses import FEATURE_NORMS, alpha_norm, feature_loss, tv_loss
from archbench.optimizers import minimize_chunked
from archbench.optimizers.base import OptimConfig, OptimResult, stalled_flags
from archbench.tasks.base import Progress, Task, TaskJob, TaskOutput, outputs_from_optim, register_task
from archbench.tasks.param import PARAMS, FourierParam, ImageParam, make_param

#: starts of the reconstruction: ``noise`` (uniform white noise in [0, 1], the paper's) or ``pink``
#: (faint 1/f noise around mid-grey: Fourier coefficients ``~ N(0, start_std²)``, see
#: :mod:`archbench.tasks.param`)
STARTS = ("noise", "pink")
#: the reconstruction presets: ``archbench`` (default, from the deep-layer study in
#: ``docs/tasks.md``) and ``paper`` (He et al.: pixels from white noise)
PRESETS: dict[str, dict[str, str]] = {
    "archbench": {"param": "fourier", "start": "pink"},
    "paper": {"param": "pixel", "start": "noise"},
}
DEFAULT_PRESET = "archbench"


def default_layers(net: TappedNetwork) -> list[str]:
    """The layers reconstructed by default: the architecture's own list if it declares one
    (``default_reconstruct_layers``), otherwise the first spatial tap at each stride level >= 1
    (pool1 ... pool5 for VGG)."""
    if net.default_reconstruct_layers:
        return list(net.default_reconstruct_layers)
    seen: dict[int, str] = {}
    for tap in net.taps:
        if tap.spatial and tap.level >= 1 and tap.level not in seen:
            seen[tap.level] = tap.name
    return [seen[k] for k in sorted(seen)]


def white_noise(shape: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    """Uniform white noise in [0, 1] from a seeded generator (same on every device).

    Every sample of the batch gets the same draw: a start depends only on the seed and the size,
    never on which other images share the batch, so a result is reproducible image by image.
    """
    gen = torch.Generator().manual_seed(int(seed))
    one = torch.rand((1, *shape[1:]), generator=gen)
    return one.expand(shape).contiguous().to(device)


def start_images(opts: ReconstructOptions, shape: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    """The reconstruction's start images ``shape = (B, 3, H, W)`` (option ``start``; the same draw
    for every sample): white noise, or faint 1/f noise rendered through the Fourier basis."""
    if opts.start == "noise":
        return white_noise(shape, seed, device)
    fourier = FourierParam(*shape[1:], decay=opts.decay, device=device)
    return fourier.decode(fourier.noise(shape[0], seed, opts.start_std, device))


@torch.no_grad()
def decode_result(res: OptimResult, param: ImageParam, starts: torch.Tensor, config: OptimConfig) -> OptimResult:
    """``res`` with its iterates as images (``param.decode``) and the stalled flags judged on the
    images (a pixel that moved by one grey level), whatever the parameterisation."""
    if param.name == "pixel":
        return dataclasses.replace(res, x=param.decode(res.x))
    x = param.decode(res.x)
    stalled = res.stalled
    if res.initial_loss is not None and stalled:
        stalled = stalled_flags(starts, x, res.initial_loss, res.final_loss, config)
    return dataclasses.replace(res, x=x, stalled=stalled)


@torch.no_grad()
def auto_layer_weight(net: TappedNetwork, layer: str, x0: torch.Tensor, target: torch.Tensor, norm: str) -> torch.Tensor:
    """The paper's automatic weight ω_l = 1 / mean |∂L_l/∂x| at ``x0`` (per sample, ``(B,)``)."""
    with torch.enable_grad():
        x = x0.detach().clone().requires_grad_(True)
        loss = feature_loss(net(x, [layer])[layer], target, norm)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return 1.0 / grad.abs().flatten(1).mean(1).clamp_min(1e-30)


def parse_levels(value: object) -> list[int]:
    """``levels`` as a list of distinct stride levels (integers >= 0, order kept): accepts a list,
    a tuple, one integer or ``"2,3,4"``."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else [value]
    out: list[int] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        try:
            level = int(text) if not isinstance(text, bool | float) else None
        except (TypeError, ValueError):
            level = None
        if level is None or level < 0:
            raise ConfigError(f"levels must be stride levels (integers >= 0), e.g. [2, 3, 4]; got {value!r}")
        if level not in out:
            out.append(level)
    if not out:
        raise ConfigError("levels is empty; give stride levels, e.g. [2, 3, 4]")
    return out


def taps_for_levels(net: TappedNetwork, levels: list[int]) -> list[str]:
    """The first spatial tap of each stride level in ``levels`` (see :class:`ReconstructOptions`).

    Raises:
        ConfigError: ``net`` has no spatial tap at one of the levels (the message lists its levels).
    """
    names = []
    for level in levels:
        taps = net.taps_at_level(level)
        if not taps:
            have = sorted({t.level for t in net.taps if t.spatial})
            arch = net.provenance.spec or type(net).__name__
            raise ConfigError(
                f"{arch} has no spatial tap at stride level {level}; its levels: {', '.join(map(str, have))}"
            )
        names.append(taps[0].name)
    return names


@dataclass
class ReconstructOptions:
    """Options of the reconstruction task.

    Attributes:
        layers: taps to reconstruct from, each separately (default: pool1 ... pool5 for VGG).
        levels: instead of ``layers``, stride levels: the first spatial tap of each level (output
            at 1/2**level of the input), e.g. ``[2, 3, 4]``; an architecture without a tap at one
            of them is refused.
        normalize: feature-loss normalisation: relative (default), paper, none.
        tv_weight: weight λ_TV of the TV^β prior (0 = off, the paper's setting).
        tv_beta: β of the TV prior (2 = squared differences).
        alpha_weight: weight λ_α of the α-norm prior (0 = off).
        alpha: α of the α-norm prior.
        preset: ``archbench`` (default: ``param="fourier"``, ``start="pink"``) or ``paper``
            (``param="pixel"``, ``start="noise"``: the paper's white-noise start in pixels).
        param: image parameterisation the optimiser moves (:mod:`archbench.tasks.param`):
            ``fourier`` (1/f-scaled Fourier coefficients) or ``pixel``; ``None``: the preset's.
        start: ``noise`` (uniform white noise) or ``pink`` (faint 1/f noise around grey);
            ``None``: the preset's.
        start_std: std of the ``pink`` start's Fourier coefficients (0.01: within about 0.01 of
            mid-grey).
        decay: exponent of the Fourier parameterisation's spectral scale ``f^-decay``.
    """

    layers: list[str] | None = None
    levels: list[int] | None = None
    normalize: str = "relative"
    tv_weight: float = 0.0
    tv_beta: float = 2.0
    alpha_weight: float = 0.0
    alpha: float = 6.0
    preset: str = DEFAULT_PRESET
    param: str | None = None
    start: str | None = None
    start_std: float = 0.01
    decay: float = 1.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown reconstruct preset {self.preset!r}; valid: {', '.join(PRESETS)}")
        self.param = self.param if self.param is not None else PRESETS[self.preset]["param"]
        self.start = self.start if self.start is not None else PRESETS[self.preset]["start"]
        if self.param not in PARAMS:
            raise ConfigError(f"unknown param {self.param!r}; valid: {', '.join(PARAMS)}")
        if self.start not in STARTS:
            raise ConfigError(f"unknown start {self.start!r}; valid: {', '.join(STARTS)}")
        for name in ("start_std", "decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if isinstance(self.layers, str):
            self.layers = [s for s in self.layers.split(",") if s]
        if self.levels is not None:
            self.levels = parse_levels(self.levels)
            if self.layers:
                raise ConfigError("give layers or levels, not both")
        if self.normalize not in FEATURE_NORMS:
            raise ConfigError(f"unknown normalize={self.normalize!r}; valid: {', '.join(FEATURE_NORMS)}")
        for name in ("tv_weight", "alpha_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")


class ReconstructObjective:
    """Per-sample reconstruction loss for a batch sharing one layer.

    Call as ``objective(z)`` for the whole batch or ``objective(z, index)`` for the samples
    ``index`` of it (so an optimiser may split the batch into chunks); ``z`` are the coordinates of
    the parameterisation ``param`` (default: the images themselves).
    """

    def __init__(
        self,
        net: TappedNetwork,
        layer: str,
        targets: torch.Tensor,
        weights: torch.Tensor,
        opts: ReconstructOptions,
        param: ImageParam | None = None,
    ) -> None:
        self.net, self.layer, self.targets, self.weights, self.opts = net, layer, targets, weights, opts
        self.param = param

    def __call__(self, z: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        targets = self.targets if index is None else self.targets[index]
        weights = self.weights if index is None else self.weights[index]
        x = self.param.decode(z) if self.param is not None else z
        f = self.net(x, [self.layer])[self.layer]
        loss = weights * feature_loss(f.float(), targets, self.opts.normalize)
        if self.opts.tv_weight:
            loss = loss + self.opts.tv_weight * tv_loss(x, self.opts.tv_beta)
        if self.opts.alpha_weight:
            loss = loss + self.opts.alpha_weight * alpha_norm(x, self.opts.alpha)
        return loss


@register_task
class Reconstruct(Task):
    """Reconstruct each image from white noise through one layer's features."""

    name = "reconstruct"
    description = "invert a layer's features from white noise (He et al. 2016, task 1)"
    default_metrics = ("ssim", "psnr")
    Options = ReconstructOptions

    def layers(self, net: TappedNetwork, opts: ReconstructOptions) -> list[str]:
        layers = taps_for_levels(net, opts.levels) if opts.levels else (opts.layers or default_layers(net))
        if not layers:
            taps = ", ".join(t.name for t in net.taps) or "none"
            raise ConfigError(f"the network has no downsampled layer to reconstruct by default; pass --layer (layers: {taps})")
        for layer in layers:
            net.tap(layer)
        return layers

    def validate(self, net: TappedNetwork, job: TaskJob) -> None:
        opts = self.parse_options(job.options)
        layers = self.layers(net, opts)
        need = max(net.tap(layer).min_size for layer in layers)
        net.check_input_size(job.size, job.size, layers)
        for src in job.images:
            load_image(src, job.size, min_side=need)

    def run(self, net: TappedNetwork, job: TaskJob, progress: Progress | None = None) -> list[TaskOutput]:
        opts = self.parse_options(job.options)
        layers = self.layers(net, opts)
        device = job.device
        need = max(net.tap(layer).min_size for layer in layers)
        targets = torch.cat([load_image(s, job.size, min_side=need) for s in job.images]).to(device)
        n_img = targets.shape[0]
        noise = start_images(opts, tuple(targets.shape), job.seed, device)
        param = make_param(opts.param, *targets.shape[1:], decay=opts.decay, device=device)
        labels = [image_label(s) for s in job.images]
        total = job.optim.iterations * n_img * len(layers)
        outputs: list[TaskOutput] = []
        for g, layer in enumerate(layers):
            t0 = time.perf_counter()
            starts = job.start_batch(labels, layer, noise)  # job.start: set by coarse-to-fine phases
            with torch.no_grad():
                feats = net(targets, [layer])[layer].float()
            if opts.normalize == "paper":
                weights = auto_layer_weight(net, layer, starts, feats, opts.normalize)
            else:
                weights = torch.ones(n_img, device=device)
            objective = ReconstructObjective(net, layer, feats, weights, opts, param)
            offset = g * job.optim.iterations * n_img

            def report(done: int, _total: int, offset: int = offset) -> None:
                if progress:
                    progress(offset + done, total)

            res = minimize_chunked(objective, param.encode(starts), job.optim, progress=report)
            res = decode_result(res, param, starts, job.optim)
            with torch.no_grad():  # the loss of the image as saved (clamped to [0, 1]), comparable across settings
                saved = feature_loss(net(res.x.clamp(0, 1), [layer])[layer].float(), feats, "relative")
            seconds = (time.perf_counter() - t0) / n_img
            outputs += outputs_from_optim(
                res, job.images, layer, starts,
                references=[{"target": targets[b]} for b in range(len(job.images))],
                seconds=seconds,
                extra=[{"layer_weight": float(weights[b]), "normalize": opts.normalize, "level": net.tap(layer).level,
                        "param": opts.param, "start": opts.start, "result_loss": float(saved[b])}
                       for b in range(len(job.images))],
            )
        return outputs
