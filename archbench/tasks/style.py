"""Task 3 of the paper: style transfer (Gatys et al. 2016) with the paper's method.

x* = argmin_x  α·Σ_c ω_c·L_content,c(x, x_c) + β·Σ_l μ_l·E_l(x, x_s) + γ·R_TV(x)

* content layer ``conv2_2`` under ``paper`` (feature loss 1/(2NM)·‖F − P‖², the paper's form),
  ``conv1_2`` under ``archbench`` (the last tap at stride level 0; the issue-26 study), style layers
  ``conv1_1 … conv5_1`` (Gram loss, :mod:`archbench.losses.gram`); α:β:γ = 0.1:1:1000 under the
  default preset ``archbench`` (the issue-19 and issue-26 studies, ``docs/tasks.md``), 100:1:1000
  under ``paper``;
* ω, μ from the weighting scheme (default ``auto``, the paper's pre-pass, see
  :mod:`archbench.tasks.weighting`), computed at white noise of the content's size whatever the
  start (at the content image the content term's gradient is zero);
* R_TV is the squared-difference total variation. Under ``tv_norm="mean"`` (the paper preset's
  default) it is divided by the number of pixel values C·H·W: with layer terms normalised to unit
  mean input gradient, the raw sum times γ = 1000 would outweigh every other term by about four
  orders of magnitude at 256 px and flatten the image. ``tv_norm="sum"`` is the literal sum.
* start from the content image (``start="content"``, the ``archbench`` preset's), white noise
  (``"noise"``, the ``paper`` preset's) or ``"faint"`` noise.

The content images are the job's images (or the ``content`` option); one ``style`` image is used
for all of them. Results are compared with the content image (role ``target``) and the style image
(role ``style``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from archbench.architectures.base import IMAGENET_MEAN, TappedNetwork
from archbench.errors import ConfigError
from archbench.images import image_label, load_image
from archbench.losses.gram import check_gram_norm
from archbench.losses.patches import check_patch_layers, default_patch_layers
from archbench.tasks.base import Progress, Task, TaskJob, TaskOutput, outputs_from_optim, register_task
from archbench.tasks.presets import DEFAULT_PRESET, get_preset
from archbench.tasks.reconstruct import white_noise
from archbench.tasks.texture import (
    check_layers,
    check_style_loss,
    default_content_layers,
    default_style_layers,
    layer_weights_for,
    run_batches,
    set_label,
    split_floats,
    split_layers,
    style_term,
)
from archbench.tasks.weighting import CONTENT_NORMS, TV_NORMS, Term, WeightedObjective, check_weighting

STARTS = ("noise", "content", "faint")


@dataclass
class StyleOptions:
    """Options of the style task (``None`` = the preset's value).

    Attributes:
        style: the style image (built-in name or path); required.
        content: the content image, overriding the job's images.
        preset: ``archbench`` (default), ``paper``, ``gatys-style``, ``pytorch-tutorial``, ``neural-style``.
        content_layers, style_layers: taps of the content and style terms.
        content_weight, style_weight, tv_weight: α, β, γ.
        style_layer_weights: per-style-layer weights (one per layer or one for all).
        weighting: ``auto``, ``none``, ``inverse-loss``, ``normalize-gradients``.
        gram_norm: Gram normalisation; content_norm: content-loss normalisation
            (``paper``, ``relative``, ``none``, ``mse``); tv_norm: ``mean`` or ``sum``.
        start: ``noise`` (white noise), ``content`` (the content image) or ``faint``
            (ImageNet mean colour plus N(0, 0.001/255) noise, as jcjohnson/neural-style).
        loss: style loss ``gram`` (default) or ``patches`` (neural patches on the patch layers,
            default conv3_1, conv4_1; ``style_layers`` overrides; content unchanged).
        variety: weight of the patch loss's variety (coverage) term (0 = off).
    """

    style: str | None = None
    content: str | None = None
    preset: str = DEFAULT_PRESET
    content_layers: list[str] | None = None
    style_layers: list[str] | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    style_layer_weights: list[float] | None = None
    weighting: str | None = None
    gram_norm: str | None = None
    content_norm: str | None = None
    tv_norm: str | None = None
    start: str | None = None
    loss: str = "gram"
    variety: float = 0.0

    def __post_init__(self) -> None:
        check_style_loss(self.loss, self.variety)
        if isinstance(self.style, list | tuple):
            if len(self.style) != 1:
                raise ConfigError("style transfer takes one style image")
            self.style = self.style[0]
        if not self.style:
            raise ConfigError("style transfer needs a style image: --style NAME_OR_PATH")
        p = get_preset(self.preset)
        self.content_layers = split_layers(self.content_layers)
        self.style_layers = split_layers(self.style_layers)
        self.style_layer_weights = split_floats(self.style_layer_weights)
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            value = getattr(p, name) if value is None else float(value)
            if not value >= 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
            setattr(self, name, value)
        self.weighting = check_weighting(self.weighting or p.weighting)
        self.gram_norm = check_gram_norm(self.gram_norm or p.gram_norm)
        self.content_norm = self.content_norm or p.content_norm
        if self.content_norm not in CONTENT_NORMS:
            raise ConfigError(f"unknown content_norm {self.content_norm!r}; valid: {', '.join(CONTENT_NORMS)}")
        self.tv_norm = self.tv_norm or p.tv_norm
        if self.tv_norm not in TV_NORMS:
            raise ConfigError(f"unknown tv_norm {self.tv_norm!r}; valid: {', '.join(TV_NORMS)}")
        self.start = self.start or p.start
        if self.start not in STARTS:
            raise ConfigError(f"unknown start {self.start!r}; valid: {', '.join(STARTS)}")


@register_task
class Style(Task):
    """Transfer the style of one image onto each content image."""

    name = "style"
    description = "style transfer: content conv2_2, style conv1_1..conv5_1, α:β:γ 100:1:1000 (He et al. 2016, task 3)"
    default_metrics = ("ssim", "gram", "stylization")
    Options = StyleOptions
    image_option = "content"
    path_options = ("style", "content")

    def layers(self, net: TappedNetwork, opts: StyleOptions) -> tuple[list[str], list[str]]:
        """(content layers, style layers) for ``net``."""
        preset = get_preset(opts.preset)
        content = opts.content_layers
        style = opts.style_layers
        if content is None:
            content = list(preset.content_layers) if not preset.arch_layers and preset.content_layers else None
            content = content or default_content_layers(net, preset.content_level)
        if style is None and opts.loss == "patches":
            style = default_patch_layers(net)
        if style is None:
            style = list(preset.style_layers) if not preset.arch_layers and preset.style_layers else None
            style = style or default_style_layers(net)
        return list(content), list(style)

    def style_weights(self, style_layers: list[str], opts: StyleOptions) -> list[float]:
        given = opts.style_layer_weights
        preset = get_preset(opts.preset)
        if given is None and preset.style_layer_weights and opts.style_layers is None and opts.loss == "gram":
            given = list(preset.style_layer_weights)
        return layer_weights_for(style_layers, given, "style_layer_weights")

    def contents(self, job: TaskJob, opts: StyleOptions) -> list[str]:
        return [opts.content] if opts.content else list(job.images)

    def validate(self, net: TappedNetwork, job: TaskJob) -> None:
        opts = self.parse_options(job.options)
        content_layers, style_layers = self.layers(net, opts)
        check_layers(net, content_layers + style_layers, job.size)
        if opts.loss == "patches":
            check_patch_layers(net, style_layers, job.size)
        self.style_weights(style_layers, opts)
        load_image(opts.style, job.size)
        for src in self.contents(job, opts):
            load_image(src, job.size)

    def start_images(self, contents: torch.Tensor, opts: StyleOptions, seed: int) -> torch.Tensor:
        if opts.start == "content":
            return contents.clone()
        if opts.start == "faint":
            gen = torch.Generator().manual_seed(int(seed))
            noise = torch.randn(tuple(contents.shape), generator=gen) * (0.001 / 255)
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            return (mean + noise).to(contents.device)
        return white_noise(tuple(contents.shape), seed, contents.device)

    def run(self, net: TappedNetwork, job: TaskJob, progress: Progress | None = None) -> list[TaskOutput]:
        opts = self.parse_options(job.options)
        content_layers, style_layers = self.layers(net, opts)
        sources = self.contents(job, opts)
        device = job.device
        contents = torch.cat([load_image(s, job.size) for s in sources]).to(device)
        style_img = load_image(opts.style, job.size).to(device)
        n_img = contents.shape[0]
        label = f"c:{'+'.join(content_layers)} s:{set_label(style_layers, True)}"
        labels = [image_label(s) for s in sources]
        starts = job.start_batch(labels, label, self.start_images(contents, opts, job.seed))  # phases
        t0 = time.perf_counter()
        with torch.no_grad():
            cfeats = net(contents, content_layers)
            sfeats = net(style_img, style_layers)
        terms: list[Term] = []
        for layer in content_layers:
            terms.append(
                Term(f"content:{layer}", "feature", layer, cfeats[layer].float(), opts.content_weight, opts.content_norm)
            )
        for layer, w in zip(style_layers, self.style_weights(style_layers, opts), strict=True):
            terms.append(
                style_term(layer, sfeats[layer], opts.style_weight * w, opts.loss, opts.gram_norm, opts.variety, "style")
            )
        if opts.tv_weight:
            terms.append(Term("tv", "tv", None, None, opts.tv_weight, opts.tv_norm))
        objective = WeightedObjective(net, terms, opts.weighting)
        total = job.optim.iterations * n_img
        # the paper's pre-pass is at white noise, whatever the start: at the content image (``start=
        # content``, or a later phase's upsampled result) the content term's gradient is zero or
        # nearly so, and ``auto`` would give it an unbounded weight that freezes the image
        noise = white_noise(tuple(starts.shape), job.seed, starts.device)
        res = run_batches(objective, starts, job.optim, progress, 0, total, calibrate_at=noise)
        seconds = (time.perf_counter() - t0) / n_img
        return outputs_from_optim(
            res, sources, label, starts,
            references=[{"target": contents[b], "style": style_img[0]} for b in range(len(sources))],
            seconds=seconds,
            extra=[{
                "style": image_label(opts.style),
                "content_layers": content_layers,
                "style_layers": style_layers,
                "layer_weights": objective.describe(b),
                "weighting": opts.weighting,
                "gram_norm": opts.gram_norm,
                "content_norm": opts.content_norm,
                "tv_norm": opts.tv_norm,
                "alpha_beta_gamma": [opts.content_weight, opts.style_weight, opts.tv_weight],
                "start": opts.start,
                "preset": opts.preset,
                "loss": opts.loss,
                **({"variety": opts.variety} if opts.loss == "patches" else {}),
            } for b in range(len(sources))],
        )
