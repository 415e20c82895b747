"""Activation maximisation: the input that most excites a channel (or its centre unit).

For channel ``c`` of layer ``l`` (rectified output ``F_l``), with the image ``x = R(θ)`` rendered
from parameters ``θ``:

    θ* = argmin_θ  −a_c(J_t(R(θ))) / d_c  +  λ_TV · mean_{pixels}((∂_x x)² + (∂_y x)²)

* ``a_c(x)`` is the mean of ``F_l(x)[c]`` over positions (``unit=channel``, default) or its value at
  the centre position ``(h // 2, w // 2)`` (``unit=center``);
* ``d_c = μ_c + σ_c`` is the mean plus the standard deviation of ``F_l[c]`` over every position of
  the natural reference images (the built-in photos resized to the task size), floored at 1e-6
  times the layer's largest ``d``. Dividing by it makes the loss the *relative activation*, the
  same number the ``activation`` score reports, so the priors' weights mean the same thing on
  every architecture and weight scale (random VGG's activations shrink about tenfold per stage);
* ``J_t`` is the jitter of step ``t``: a circular shift by ``(dy, dx)`` drawn uniformly from
  ``[−jitter, jitter]²`` by a generator seeded with the job's seed (one shift per step for the whole
  batch, so a channel's result does not depend on which other channels run with it);
* ``R`` is the parameterisation: ``pixel`` (θ is the image, kept in [0, 1] by clipping after every
  step) or ``fourier`` (θ are the real-FFT coefficients of a colour-decorrelated image:
  ``x = sigmoid(M · irfft2(s ⊙ θ))`` with the 1/f scale ``s`` and the colour matrix ``M`` below).

Between Adam steps the remaining priors act on θ: *L2 decay* ``θ ← (1 − l2_decay)·θ`` (towards mid
grey: for ``pixel`` the decay acts on ``θ − 0.5``), and every ``blur_every`` steps a *Gaussian blur*
of standard deviation ``blur_sigma`` pixels (circular, applied exactly in the Fourier domain; for
``fourier`` it multiplies the coefficients, i.e. it blurs the image before the sigmoid).

Why this task runs its own Adam loop instead of :func:`archbench.optimizers.minimize`: the decay,
the blur and the pixel clipping change θ *between* steps, which ``minimize`` has no hook for, and
L-BFGS would be wrong here anyway (its curvature pairs assume a fixed, deterministic objective,
which jitter and the between-step priors break). The loop is the same batched Adam: Adam's update
is elementwise, so the channels of a batch are independent problems. ``job.optim.iterations`` and
``job.optim.lr`` (default 0.05 for ``pixel``, 0.5 for ``fourier``: :data:`DEFAULT_LR`) are
honoured, ``job.optim.method`` is not (always Adam, recorded in ``extra["optimizer"]``), and
``job.optim.batch_size`` splits the channels into chunks.

Every channel starts from the same seeded start (uniform white noise in [0, 1] for ``pixel``,
coefficients drawn from N(0, 0.01²) for ``fourier``: a nearly flat grey image), so the differences
between channels' images come from the channels alone. With coarse-to-fine phases
(:mod:`archbench.tasks.phases`) a later phase starts each channel from its upsampled previous
result (``fourier``: the coefficients that render it, through the inverse sigmoid).

Over 500 lines on purpose: one task with the pieces only it uses (options, its two
parameterisations with blur and decay, the priors, the diversity score); split, each part would be
read only from here.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError, UnknownNameError
from archbench.images import list_images, load_image
from archbench.metrics.base import MetricUnavailable, get_metric
from archbench.metrics.maximize import (
    pairwise_metric_distance,
    pairwise_pixel_distance,
    relative_activation,
    total_variation,
)
from archbench.optimizers.problem import stalled_flags
from archbench.tasks.base import NO_IMAGE, Progress, Task, TaskJob, TaskOutput, register_task
from archbench.tasks.param import frequencies

log = logging.getLogger(__name__)

PARAMS = ("pixel", "fourier")
UNITS = ("channel", "center")
#: channels maximised when the option is not given
DEFAULT_CHANNEL_COUNT = 8
#: Adam step size per parameterisation when ``job.optim.lr`` is not set. Adam moves every
#: coordinate of θ by about ``lr`` per step: in pixels that is a coherent change of any pattern, in
#: Fourier coefficients a narrowband pattern gets only a few coordinates' worth, so the Fourier
#: parameterisation needs the larger step (measured on oriented edge filters: at 0.05 it reached a
#: third of the pixel parameterisation's activation in 100 steps, at 0.5 about 80%).
DEFAULT_LR = {"pixel": 0.05, "fourier": 0.5}
#: std of the starting Fourier coefficients
FOURIER_INIT_STD = 0.01
#: the ``image`` label of every output (the problems start from noise, not from an image)
IMAGE_LABEL = NO_IMAGE
#: the metric tried first for ``diversity``
DIVERSITY_METRIC = "lpips-alex"

#: Colour matrix ``M`` of the Fourier parameterisation: RGB = M · (independent components).
#: Columns are the principal axes of the RGB covariance of the six built-in photos (pixels at
#: 256 px), each scaled by the square root of its eigenvalue and all divided by the largest one
#: (so the luminance-like first column has unit gain), signed so that each column's largest entry
#: is positive. :func:`colour_matrix` recomputes it from any images.
COLOUR_MATRIX = (
    (0.6316, 0.2633, -0.0261),
    (0.5792, -0.0632, 0.0678),
    (0.5153, -0.2517, -0.0443),
)


def colour_matrix(images: torch.Tensor) -> torch.Tensor:
    """The decorrelating colour matrix of ``images`` ``(N, 3, H, W)`` (see :data:`COLOUR_MATRIX`).

    With ``C = U Λ Uᵀ`` the covariance of the RGB values of all pixels, ``M = U Λ^½ / λ_max^½``
    (columns by decreasing eigenvalue, each signed so its largest-magnitude entry is positive);
    ``M Mᵀ = C / λ_max``, so unit-variance independent components get natural colour statistics.
    """
    x = images.double().permute(1, 0, 2, 3).flatten(1)
    cov = torch.cov(x)
    evals, evecs = torch.linalg.eigh(cov)
    order = torch.argsort(evals, descending=True)
    evals, evecs = evals[order].clamp_min(0), evecs[:, order]
    idx = evecs.abs().argmax(0)
    signs = torch.sign(evecs[idx, torch.arange(3)])
    m = evecs * signs * evals.sqrt()
    return (m / evals[0].sqrt()).float()


def parse_channels(spec: Any, n_channels: int, layer: str) -> list[int]:
    """Resolve the ``channels`` option for a layer with ``n_channels`` channels.

    * ``None``: :data:`DEFAULT_CHANNEL_COUNT` evenly spaced channels (all if the layer has fewer);
    * an integer ``N`` (or ``"N"``): ``N`` evenly spaced channels ``floor(i·C/N)``, ``i = 0..N−1``
      (channel 0 first; the first ``N`` channels when ``N = C``);
    * a list or tuple of integers, or ``"0,5,9"``: exactly those channels (one channel: ``"5,"``);
    * ``"all"``: every channel.

    Raises:
        ConfigError: malformed spec, a count outside ``1..C`` or an index outside ``0..C−1``.
    """
    if spec is None:
        n = min(DEFAULT_CHANNEL_COUNT, n_channels)
        return [i * n_channels // n for i in range(n)]
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == "all":
            return list(range(n_channels))
        if "," in text:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            try:
                spec = [int(p) for p in parts]
            except ValueError:
                raise ConfigError(f"malformed channels={spec!r}; expected N, a list like 0,5,9, or all") from None
        else:
            try:
                spec = int(text)
            except ValueError:
                raise ConfigError(f"malformed channels={spec!r}; expected N, a list like 0,5,9, or all") from None
    if isinstance(spec, bool):
        raise ConfigError(f"malformed channels={spec!r}; expected N, a list like 0,5,9, or all")
    if isinstance(spec, int):
        if not 1 <= spec <= n_channels:
            raise ConfigError(
                f"channels={spec} asks for {spec} channels but layer {layer!r} has {n_channels} (valid counts 1..{n_channels})"
            )
        return [i * n_channels // spec for i in range(spec)]
    if isinstance(spec, (list, tuple)):
        out: list[int] = []
        for c in spec:
            if isinstance(c, bool) or not isinstance(c, int):
                raise ConfigError(f"malformed channel index {c!r} in channels; expected integers")
            if not 0 <= c < n_channels:
                raise ConfigError(
                    f"channel {c} is out of range for layer {layer!r} with {n_channels} channels (valid 0..{n_channels - 1})"
                )
            if c not in out:
                out.append(c)
        if not out:
            raise ConfigError("channels is an empty list")
        return out
    raise ConfigError(f"malformed channels={spec!r}; expected N, a list like 0,5,9, or all")


def default_layer(net: TappedNetwork) -> str:
    """The layer maximised by default: the architecture's ``default_maximize_layer`` if it declares
    one, else the last spatial tap at stride level 3 (VGG: conv4_4), else the deepest spatial tap."""
    if net.default_maximize_layer:
        return net.default_maximize_layer
    spatial = [t for t in net.taps if t.spatial]
    if not spatial:
        raise ConfigError("the network has no spatial layer to maximise; pass --layer")
    at3 = [t for t in spatial if t.level == 3]
    return (at3[-1] if at3 else spatial[-1]).name


@dataclass
class MaximizeOptions:
    """Options of the activation-maximisation task (defaults in brackets).

    Attributes:
        layers: taps whose channels are maximised, each separately [:func:`default_layer`].
        channels: which channels, see :func:`parse_channels` [8 evenly spaced].
        unit: ``channel`` (mean over positions) or ``center`` (the centre unit) [channel].
        param: image parameterisation ``pixel`` or ``fourier`` [pixel].
        l2_decay: per-step multiplicative decay of θ towards mid grey [0.01].
        blur_every: apply the Gaussian blur every this many steps (0 = never) [4].
        blur_sigma: standard deviation of the blur in pixels [0.5].
        jitter: largest random circular shift per step, in pixels (0 = off) [4].
        tv_weight: weight λ_TV of the squared-difference TV prior in the loss [0].
        natural: natural reference images for the relative activation: ``photos`` (the built-in
            photos) or a comma-separated list of built-in names or files [photos].
    """

    layers: list[str] | None = None
    channels: Any = None
    unit: str = "channel"
    param: str = "pixel"
    l2_decay: float = 0.01
    blur_every: int = 4
    blur_sigma: float = 0.5
    jitter: int = 4
    tv_weight: float = 0.0
    natural: Any = "photos"

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):
            self.layers = [s.strip() for s in self.layers.split(",") if s.strip()]
        if self.unit not in UNITS:
            raise ConfigError(f"unknown unit={self.unit!r}; valid: {', '.join(UNITS)}")
        if self.param not in PARAMS:
            raise ConfigError(f"unknown param={self.param!r}; valid: {', '.join(PARAMS)}")
        if not 0 <= self.l2_decay < 1:
            raise ConfigError(f"l2_decay must be in [0, 1), got {self.l2_decay}")
        if isinstance(self.blur_every, bool) or not isinstance(self.blur_every, int) or self.blur_every < 0:
            raise ConfigError(f"blur_every must be an integer >= 0, got {self.blur_every!r}")
        if self.blur_sigma < 0:
            raise ConfigError(f"blur_sigma must be >= 0, got {self.blur_sigma}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int) or self.jitter < 0:
            raise ConfigError(f"jitter must be an integer >= 0 (pixels), got {self.jitter!r}")
        if self.tv_weight < 0:
            raise ConfigError(f"tv_weight must be >= 0, got {self.tv_weight}")
        if isinstance(self.natural, (list, tuple)):
            self.natural = ",".join(str(s) for s in self.natural)
        if not isinstance(self.natural, str) or not self.natural.strip():
            raise ConfigError(f"natural must be 'photos' or a comma-separated list of images, got {self.natural!r}")

    def natural_sources(self) -> list[str]:
        """The natural reference images as sources for :func:`~archbench.images.load_image`."""
        if self.natural.strip() == "photos":
            return list_images("photo")
        return [s.strip() for s in self.natural.split(",") if s.strip()]


# -- parameterisations ------------------------------------------------------------------------------


def gaussian_transfer(h: int, w: int, sigma: float, device: torch.device) -> torch.Tensor:
    """Fourier transfer function ``exp(−2π²σ²f²)`` of a Gaussian blur of std ``sigma`` px, ``(h, w//2+1)``."""
    f = frequencies(h, w, device)
    return torch.exp(-2 * math.pi**2 * sigma**2 * f.pow(2))


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Circular Gaussian blur of std ``sigma`` px of ``(..., H, W)`` images, exact in the Fourier domain."""
    h, w = images.shape[-2:]
    spec = torch.fft.rfft2(images)
    return torch.fft.irfft2(spec * gaussian_transfer(h, w, sigma, images.device), s=(h, w))


class PixelParam:
    """θ is the image itself; clipped to [0, 1] after every step; decay pulls it towards 0.5."""

    name = "pixel"

    def __init__(self, start: torch.Tensor) -> None:
        self.theta = start.detach().clone().requires_grad_(True)

    def render(self) -> torch.Tensor:
        return self.theta

    @torch.no_grad()
    def decay(self, rate: float) -> None:
        self.theta.sub_(0.5).mul_(1 - rate).add_(0.5)

    @torch.no_grad()
    def blur(self, sigma: float) -> None:
        self.theta.copy_(gaussian_blur(self.theta, sigma))

    @torch.no_grad()
    def project(self) -> None:
        self.theta.clamp_(0, 1)


class FourierParam:
    """θ holds real and imaginary parts of the ``rfft2`` coefficients of 3 decorrelated channels.

    ``x = sigmoid(M · irfft2(s ⊙ θ, norm="ortho"))`` with ``s(f) = 1 / max(f, 1/max(H, W))``
    normalised to unit root-mean-square over the coefficients (so a unit change of every
    coefficient changes pixels by about one unit, as in the pixel parameterisation), and
    ``M`` = :data:`COLOUR_MATRIX`. Decay shrinks θ (towards a flat grey image); blur multiplies θ
    by the Gaussian transfer function (a circular blur of the image before the sigmoid, exact
    because ``M`` acts per pixel and commutes with the blur).
    """

    name = "fourier"

    def __init__(
        self,
        batch: int,
        h: int,
        w: int,
        generator: torch.Generator,
        device: torch.device,
        start: torch.Tensor | None = None,
    ) -> None:
        self.h, self.w = h, w
        f = frequencies(h, w, device)
        scale = 1.0 / f.clamp_min(1.0 / max(h, w))
        self.scale = scale / scale.pow(2).mean().sqrt()
        self.matrix = torch.tensor(COLOUR_MATRIX, device=device)
        if start is None:
            theta = torch.randn((1, 3, h, w // 2 + 1, 2), generator=generator) * FOURIER_INIT_STD
            theta = theta.to(device).expand(batch, -1, -1, -1, -1)
        else:
            theta = self.invert(start.to(device))
        self.theta = theta.clone().requires_grad_(True)

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        """θ that renders ``images`` (clamped to [0.001, 0.999], where the sigmoid is invertible)."""
        pre = torch.logit(images.float().clamp(1e-3, 1 - 1e-3))
        decorrelated = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.matrix), pre)
        spec = torch.fft.rfft2(decorrelated, norm="ortho") / self.scale
        return torch.view_as_real(spec).contiguous()

    def render(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.theta) * self.scale
        decorrelated = torch.fft.irfft2(spec, s=(self.h, self.w), norm="ortho")
        rgb = torch.einsum("ij,bjhw->bihw", self.matrix, decorrelated)
        return torch.sigmoid(rgb)

    @torch.no_grad()
    def decay(self, rate: float) -> None:
        self.theta.mul_(1 - rate)

    @torch.no_grad()
    def blur(self, sigma: float) -> None:
        self.theta.mul_(gaussian_transfer(self.h, self.w, sigma, self.theta.device)[..., None])

    def project(self) -> None:
        pass


# -- objective -----------------------------------------------------------------------------------


def unit_activation(features: torch.Tensor, channels: torch.Tensor, unit: str) -> torch.Tensor:
    """Activation ``a_c`` of channel ``channels[b]`` of sample ``b``: ``(B, C, ...) -> (B,)``.

    ``unit="channel"``: mean over positions; ``"center"``: the value at ``(h // 2, w // 2)``. A
    non-spatial tap ``(B, C)`` gives the channel's value in both cases.
    """
    picked = features[torch.arange(features.shape[0], device=features.device), channels]
    if picked.ndim == 1:
        return picked.float()
    if unit == "center":
        h, w = picked.shape[-2:]
        return picked[:, h // 2, w // 2].float()
    return picked.flatten(1).float().mean(1)


class MaximizeObjective:
    """Per-sample loss ``−a_c(x)/d_c + λ_TV·mean((∂_x x)² + (∂_y x)²)`` for a batch of channels.

    Call as ``objective(x)`` for the whole batch (sample ``b`` maximises ``channels[b]``) or
    ``objective(x, index)`` for the samples ``index`` of it. ``x`` is the (jittered) image in [0, 1].
    """

    def __init__(
        self,
        net: TappedNetwork,
        layer: str,
        channels: torch.Tensor,
        denominators: torch.Tensor,
        unit: str = "channel",
        tv_weight: float = 0.0,
    ) -> None:
        self.net, self.layer, self.unit, self.tv_weight = net, layer, unit, tv_weight
        self.channels, self.denominators = channels, denominators

    def activation(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Raw activation ``a_c(x)`` per sample, ``(B,)``."""
        channels = self.channels if index is None else self.channels[index]
        return unit_activation(self.net(x, [self.layer])[self.layer], channels, self.unit)

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        den = self.denominators if index is None else self.denominators[index]
        loss = -self.activation(x, index) / den
        if self.tv_weight:
            dx = x[..., :-1, 1:] - x[..., :-1, :-1]
            dy = x[..., 1:, :-1] - x[..., :-1, :-1]
            loss = loss + self.tv_weight * (dx.pow(2) + dy.pow(2)).flatten(1).mean(1)
        return loss


@torch.no_grad()
def natural_statistics(
    net: TappedNetwork, layer: str, images: torch.Tensor, chunk: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``(C,), (C,)`` of ``F_layer`` over all positions of ``images``."""
    feats = torch.cat([net(images[s : s + chunk], [layer])[layer].float() for s in range(0, len(images), chunk)])
    per_channel = feats.transpose(0, 1).flatten(1)
    return per_channel.mean(1), per_channel.std(1, correction=0)


def jitter_shifts(iterations: int, jitter: int, seed: int) -> list[tuple[int, int]]:
    """The ``(dy, dx)`` shift of every step, uniform in ``[−jitter, jitter]²`` from a seeded generator."""
    if jitter == 0:
        return [(0, 0)] * iterations
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    s = torch.randint(-jitter, jitter + 1, (iterations, 2), generator=gen)
    return [(int(a), int(b)) for a, b in s]


@dataclass
class _ChunkResult:
    images: torch.Tensor
    starts: torch.Tensor
    trace: torch.Tensor


def optimise_channels(
    objective: MaximizeObjective,
    index: torch.Tensor,
    size: int,
    opts: MaximizeOptions,
    iterations: int,
    lr: float,
    seed: int,
    device: torch.device,
    progress: Progress | None = None,
    start: torch.Tensor | None = None,
) -> _ChunkResult:
    """Adam with the between-step priors for the channels ``objective.channels[index]``.

    ``start``: ``None`` (the seeded start shared by all channels) or one image per channel
    ``(B, 3, size, size)`` (e.g. the upsampled result of a coarser phase). Returns the final images
    (clipped to [0, 1]), the start images and the loss trace ``(B, T)`` (the loss of each step's
    jittered image, before the step).
    """
    b = len(index)
    gen = torch.Generator().manual_seed(int(seed))
    if opts.param == "pixel":
        if start is None:
            start = torch.rand((1, 3, size, size), generator=gen).to(device).expand(b, -1, -1, -1)
        param: PixelParam | FourierParam = PixelParam(start.to(device).clamp(0, 1))
    else:
        param = FourierParam(b, size, size, gen, device, start)
    with torch.no_grad():
        starts = param.render().detach().clone()
    opt = torch.optim.Adam([param.theta], lr=lr)
    shifts = jitter_shifts(iterations, opts.jitter, seed)
    trace = torch.empty(b, iterations, device=device)
    for it in range(iterations):
        opt.zero_grad(set_to_none=True)
        x = param.render()
        dy, dx = shifts[it]
        if dy or dx:
            x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        losses = objective(x, index)
        losses.sum().backward()
        opt.step()
        if opts.l2_decay:
            param.decay(opts.l2_decay)
        if opts.blur_every and opts.blur_sigma > 0 and (it + 1) % opts.blur_every == 0:
            param.blur(opts.blur_sigma)
        param.project()
        trace[:, it] = losses.detach()
        if progress:
            progress(it + 1, iterations)
    with torch.no_grad():
        images = param.render().detach().clamp(0, 1)
    return _ChunkResult(images, starts, trace.cpu())


def diversity_scores(images: torch.Tensor) -> tuple[float | None, float | None, str, str | None]:
    """``(diversity, diversity_pixel, metric used, note)`` of a set of images ``(N, 3, H, W)``.

    ``diversity`` is the mean pairwise ``lpips-alex`` when that metric and its weights are
    available, otherwise the pixel distance; both are ``None`` for fewer than two images.
    """
    if images.shape[0] < 2:
        return None, None, "none", "a single channel has no diversity"
    pixel = pairwise_pixel_distance(images)
    try:
        metric = get_metric(DIVERSITY_METRIC)
        return pairwise_metric_distance(images, metric), pixel, DIVERSITY_METRIC, None
    except (MetricUnavailable, UnknownNameError, ValueError) as exc:
        log.info("diversity falls back to pixel distance: %s", exc)
        return pixel, pixel, "pixel-rms", str(exc)


@register_task
class Maximize(Task):
    """Synthesise, for each chosen channel of each layer, the image that most excites it."""

    name = "maximize"
    description = "activation maximisation: the image each channel responds to most (priors: decay, blur, jitter, TV, Fourier)"
    default_metrics = ("activation", "diversity", "diversity_pixel", "tv")
    Options = MaximizeOptions
    fixed_optimizer = "adam"  # priors act between steps; see the module docstring
    takes_images = False  # every problem starts from noise (outputs are labelled IMAGE_LABEL)
    path_options = ("natural",)

    def layers(self, net: TappedNetwork, opts: MaximizeOptions) -> list[str]:
        layers = opts.layers or [default_layer(net)]
        for layer in layers:
            tap = net.tap(layer)
            if opts.unit == "center" and not tap.spatial:
                raise ConfigError(f"unit=center needs a spatial layer; {layer!r} is fully connected")
        return layers

    def plan(self, net: TappedNetwork, opts: MaximizeOptions) -> list[tuple[str, list[int]]]:
        """``(layer, channels)`` for every layer, validated."""
        return [(layer, parse_channels(opts.channels, net.tap(layer).channels, layer)) for layer in self.layers(net, opts)]

    def validate(self, net: TappedNetwork, job: TaskJob) -> None:
        opts = self.parse_options(job.options)
        plan = self.plan(net, opts)
        layers = [layer for layer, _ in plan]
        net.check_input_size(job.size, job.size, layers)
        for src in opts.natural_sources():
            load_image(src, job.size)

    def run(self, net: TappedNetwork, job: TaskJob, progress: Progress | None = None) -> list[TaskOutput]:
        opts = self.parse_options(job.options)
        plan = self.plan(net, opts)
        device, size, iterations = job.device, job.size, job.optim.iterations
        lr = job.optim.lr if job.optim.lr is not None else DEFAULT_LR[opts.param]
        natural_sources = opts.natural_sources()
        natural = torch.cat([load_image(s, size) for s in natural_sources]).to(device)
        total = iterations * sum(len(ch) for _, ch in plan)
        done = 0
        outputs: list[TaskOutput] = []
        for layer, channels in plan:
            t0 = time.perf_counter()
            mean, std = natural_statistics(net, layer, natural)
            den_all = mean + std
            floor = max(float(den_all.max()) * 1e-6, 1e-30)
            ch = torch.tensor(channels, device=device)
            den = den_all[ch].clamp_min(floor)
            objective = MaximizeObjective(net, layer, ch, den, opts.unit, opts.tv_weight)
            chunk = job.optim.batch_size or len(channels)
            parts: list[_ChunkResult] = []
            for s in range(0, len(channels), chunk):
                index = torch.arange(s, min(s + chunk, len(channels)), device=device)

                def report(it: int, _iters: int, base: int = done, n: int = len(index)) -> None:
                    if progress:
                        progress(base + it * n, total)

                start = None
                given = job.start  # coarse-to-fine phases: the previous results
                if given is not None:
                    keys = [(IMAGE_LABEL, f"{layer}:c{channels[i]}") for i in index.tolist()]
                    missing = [k[1] for k in keys if k not in given]
                    if missing:
                        raise ValueError(f"no start image for {', '.join(missing)}")
                    start = torch.stack([given[k] for k in keys]).to(device)
                parts.append(
                    optimise_channels(objective, index, size, opts, iterations, lr, job.seed, device, report, start)
                )
                done += iterations * len(index)
            images = torch.cat([p.images for p in parts])
            starts = torch.cat([p.starts for p in parts])
            trace = torch.cat([p.trace for p in parts])
            with torch.no_grad():
                achieved = objective.activation(images)
                at_start = objective.activation(starts)
                final_loss = objective(images).cpu()
                start_loss = objective(starts).cpu()
            stalled = stalled_flags(starts, images, start_loss, final_loss, job.optim)
            rel = relative_activation(achieved, mean[ch], std[ch], floor).cpu()
            rel_start = relative_activation(at_start, mean[ch], std[ch], floor).cpu()
            tvs = total_variation(images).cpu()
            diversity, diversity_pixel, div_metric, div_note = diversity_scores(images)
            seconds = (time.perf_counter() - t0) / len(channels)
            settings = {
                "optimizer": "adam",
                "lr": lr,
                "param": opts.param,
                "unit": opts.unit,
                "l2_decay": opts.l2_decay,
                "blur_every": opts.blur_every,
                "blur_sigma": opts.blur_sigma,
                "jitter": opts.jitter,
                "tv_weight": opts.tv_weight,
                "natural_images": natural_sources,
            }
            for b, c in enumerate(channels):
                scores = {"activation": float(rel[b]), "tv": float(tvs[b])}
                if diversity is not None:
                    scores["diversity"] = diversity
                    scores["diversity_pixel"] = float(diversity_pixel)
                finite = math.isfinite(float(final_loss[b]))
                outputs.append(
                    TaskOutput(
                        image=IMAGE_LABEL,
                        layer=f"{layer}:c{c}",
                        result=images[b],
                        start=starts[b],
                        references={},
                        final_loss=float(final_loss[b]),
                        loss_trace=trace[b].tolist(),
                        iterations=iterations,
                        evaluations=iterations + 1,
                        seconds=seconds,
                        failed=None if finite else "non-finite loss",
                        extra={
                            **settings,
                            "layer_name": layer,
                            "channel": c,
                            "activation_raw": float(achieved[b]),
                            "activation_start_raw": float(at_start[b]),
                            "activation_start": float(rel_start[b]),
                            "natural_mean": float(mean[c]),
                            "natural_std": float(std[c]),
                            "natural_floor_used": bool(float(den_all[c]) < floor),
                            "diversity_metric": div_metric,
                            "diversity_note": div_note,
                            "channels": channels,
                        },
                        scores=scores,
                        stalled=stalled[b],
                    )
                )
            log.info(
                "maximize %s: %d channels, relative activation %.3g (start %.3g), diversity %s (%s)",
                layer, len(channels), float(rel.mean()), float(rel_start.mean()), diversity, div_metric,
            )
        return outputs
