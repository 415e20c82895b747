"""Task 2 of the paper: texture synthesis by Gram matching (Gatys et al. 2015) from white noise.

x* = argmin_x Σ_l w_l · E_l(x),  E_l = Gram loss of layer l (normalisation ``gram_norm``, default
the paper's 1/(4N²M²)·‖G − A‖²), w_l from the weighting scheme (default ``auto``: the paper's
reciprocal mean absolute input gradient at the white-noise start; see
:mod:`archbench.tasks.weighting`).

By default the layers are used in cumulative sets, each set one problem: {conv1_1},
{conv1_1, conv2_1}, … up to conv5_1 for VGG (labelled ``conv1_1``, ``conv1_1..conv2_1``, …).
``cumulative=False`` makes one problem of all the layers. Problems that share a layer set are
optimised as one batch over the texture images.

``loss="patches"`` replaces the Gram terms by the neural-patches loss
(:mod:`archbench.losses.patches`) on the patch layers (default conv3_1, conv4_1), one problem of
all of them unless ``cumulative=True``; ``variety`` weights its variety term.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError
from archbench.images import image_label, load_image
from archbench.losses.gram import check_gram_norm, gram_matrix
from archbench.losses.patches import check_patch_layers, default_patch_layers, patch_source
from archbench.optimizers import OptimConfig, minimize_chunked
from archbench.tasks.base import Progress, Task, TaskJob, TaskOutput, outputs_from_optim, register_task
from archbench.tasks.presets import DEFAULT_PRESET, Preset, get_preset
from archbench.tasks.reconstruct import white_noise
from archbench.tasks.weighting import Term, WeightedObjective, check_weighting

#: texture/style losses: ``gram`` (Gatys et al., the paper) or ``patches`` (neural patches, Li & Wand
#: 2016 as used by Champandard 2016; :mod:`archbench.losses.patches`)
STYLE_LOSSES = ("gram", "patches")


def check_style_loss(loss: str, variety: float) -> str:
    """Validate the ``loss`` and ``variety`` options; returns ``loss``."""
    if loss not in STYLE_LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; valid: {', '.join(STYLE_LOSSES)}")
    if not float(variety) >= 0:
        raise ConfigError(f"variety must be >= 0, got {variety}")
    return loss


def style_term(layer: str, feats: torch.Tensor, weight: float, loss: str, gram_norm: str, variety: float, prefix: str) -> Term:
    """The texture/style term of ``layer`` for source features ``feats``: a Gram term, or with
    ``loss="patches"`` a neural-patches term (named ``patches:LAYER``)."""
    f = feats.float()
    if loss == "patches":
        return Term(f"patches:{layer}", "patches", layer, patch_source(f), weight, "mean", variety=float(variety))
    return Term(f"{prefix}:{layer}", "gram", layer, gram_matrix(f, gram_norm), weight, gram_norm, gram_m=f[0, 0].numel())


def split_layers(value: Any) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(v) for v in value]


def split_floats(value: Any) -> list[float] | None:
    """``"1,2"``, ``[1, 2]`` or ``1.5`` -> list of floats; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [s for s in value.split(",") if s.strip()]
    if isinstance(value, int | float):
        value = [value]
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"expected numbers, got {value!r}") from None


def default_style_layers(net: TappedNetwork) -> list[str]:
    """Gram layers by default: the net's ``default_style_layers`` if declared; ``conv1_1 … conv5_1``
    when the net has them (VGG); otherwise the first spatial tap of each stride level 0 … 4,
    preferring a tap not named ``pool*``."""
    if net.default_style_layers:
        return list(net.default_style_layers)
    names = set(net.tap_names)
    vgg = [f"conv{s}_1" for s in range(1, 6)]
    if all(n in names for n in vgg):
        return vgg
    out = []
    for level in range(5):
        taps = net.taps_at_level(level)
        if not taps:
            continue
        non_pool = [t for t in taps if not t.name.startswith("pool")]
        out.append((non_pool or taps)[0].name)
    if not out:
        raise ConfigError("the network has no spatial taps at stride levels 0..4 for Gram losses; give --layers")
    return out


def default_content_layers(net: TappedNetwork, level: int = 1) -> list[str]:
    """Content layer by default: the net's ``default_content_layers`` if declared; at ``level`` 1
    (the paper's) ``conv2_2`` when present; otherwise the last spatial tap at stride level
    ``level`` (``conv1_2`` on VGG at level 0), falling back to level 1, then 0."""
    if net.default_content_layers:
        return list(net.default_content_layers)
    if level == 1 and "conv2_2" in net.tap_names:
        return ["conv2_2"]
    taps = net.taps_at_level(level) or net.taps_at_level(1) or net.taps_at_level(0)
    if not taps:
        raise ConfigError("the network has no spatial tap at stride level 1 for the content loss; give content_layers")
    return [taps[-1].name]


def set_label(layers: list[str], cumulative: bool) -> str:
    """Label of a layer set: ``conv1_1``, ``conv1_1..conv3_1`` (cumulative) or ``a+b`` (a free set)."""
    if len(layers) == 1:
        return layers[0]
    return f"{layers[0]}..{layers[-1]}" if cumulative else "+".join(layers)


def check_layers(net: TappedNetwork, layers: list[str], size: int) -> None:
    """Every layer exists and is spatial, and ``size`` is large enough for all of them."""
    for layer in layers:
        if not net.tap(layer).spatial:
            raise ConfigError(f"layer {layer!r} is not spatial; Gram and content losses need conv/pool taps")
    net.check_input_size(size, size, layers)


def layer_weights_for(layers: list[str], given: list[float] | None, what: str = "layer_weights") -> list[float]:
    """Per-layer fixed weights: ``given`` (one per layer, or one for all) or ones."""
    if given is None:
        return [1.0] * len(layers)
    if len(given) == 1:
        return given * len(layers)
    if len(given) != len(layers):
        raise ConfigError(f"{what} has {len(given)} values for {len(layers)} layers ({', '.join(layers)})")
    return list(given)


def run_batches(
    objective: WeightedObjective, starts: torch.Tensor, optim: OptimConfig, progress: Progress | None, offset: int, total: int,
    calibrate_at: torch.Tensor | None = None,
):
    """Calibrate ``objective`` at ``calibrate_at`` (default: ``starts``) and minimise it from
    ``starts``; returns the optimiser's result."""
    objective.calibrate(starts if calibrate_at is None else calibrate_at)

    def report(done: int, _total: int) -> None:
        if progress:
            progress(offset + done, total)

    return minimize_chunked(objective, starts, optim, progress=report)


@dataclass
class TextureOptions:
    """Options of the texture task (``None`` = the preset's value).

    Attributes:
        layers: Gram layers (default: conv1_1 … conv5_1 for VGG, see :func:`default_style_layers`).
        cumulative: one problem per cumulative prefix of ``layers`` (default) or one in all.
        preset: ``archbench`` (default), ``paper``, ``gatys-texture``, ... (:mod:`archbench.tasks.presets`).
        weighting: ``auto``, ``none``, ``inverse-loss``, ``normalize-gradients``.
        gram_norm: Gram normalisation (:data:`archbench.losses.gram.GRAM_NORMS`).
        layer_weights: fixed per-layer weights (one per layer of the full list, or one for all).
        loss: ``gram`` (default) or ``patches``: the neural-patches loss on the patch layers
            (default conv3_1, conv4_1; ``layers`` overrides; one problem of all of them unless
            ``cumulative=true``; the preset's layer lists and per-layer weights are not used).
        variety: weight of the patch loss's variety (coverage) term (0 = off).
    """

    layers: list[str] | None = None
    cumulative: bool | None = None
    preset: str = DEFAULT_PRESET
    weighting: str | None = None
    gram_norm: str | None = None
    layer_weights: list[float] | None = None
    loss: str = "gram"
    variety: float = 0.0

    def __post_init__(self) -> None:
        self.layers = split_layers(self.layers)
        self.layer_weights = split_floats(self.layer_weights)
        p = get_preset(self.preset)
        check_style_loss(self.loss, self.variety)
        if self.cumulative is None:
            self.cumulative = p.cumulative and self.loss == "gram"
        self.weighting = check_weighting(self.weighting or p.weighting)
        self.gram_norm = check_gram_norm(self.gram_norm or p.gram_norm)

    @property
    def preset_obj(self) -> Preset:
        return get_preset(self.preset)


@register_task
class Texture(Task):
    """Synthesise each texture image from white noise by Gram matching."""

    name = "texture"
    description = "texture synthesis by Gram matching from white noise, cumulative layer sets (He et al. 2016, task 2)"
    default_metrics = ("gram", "texture-quality")
    Options = TextureOptions

    def layers(self, net: TappedNetwork, opts: TextureOptions) -> list[str]:
        if opts.layers:
            return list(opts.layers)
        if opts.loss == "patches":
            return default_patch_layers(net)
        preset = opts.preset_obj
        if not preset.arch_layers and preset.style_layers:
            return list(preset.style_layers)
        return default_style_layers(net)

    def layer_sets(self, net: TappedNetwork, opts: TextureOptions) -> list[list[str]]:
        layers = self.layers(net, opts)
        if opts.cumulative:
            return [layers[: i + 1] for i in range(len(layers))]
        return [layers]

    def fixed_weights(self, layers: list[str], opts: TextureOptions) -> list[float]:
        preset = opts.preset_obj
        given = opts.layer_weights
        if given is None and preset.style_layer_weights and not opts.layers and opts.loss == "gram":
            given = list(preset.style_layer_weights)
        base = layer_weights_for(layers, given)
        return [preset.style_weight * w for w in base]

    def validate(self, net: TappedNetwork, job: TaskJob) -> None:
        opts = self.parse_options(job.options)
        layers = self.layers(net, opts)
        check_layers(net, layers, job.size)
        if opts.loss == "patches":
            check_patch_layers(net, layers, job.size)
        self.fixed_weights(layers, opts)
        for src in job.images:
            load_image(src, job.size)

    def run(self, net: TappedNetwork, job: TaskJob, progress: Progress | None = None) -> list[TaskOutput]:
        opts = self.parse_options(job.options)
        all_layers = self.layers(net, opts)
        all_weights = dict(zip(all_layers, self.fixed_weights(all_layers, opts), strict=True))
        sets = self.layer_sets(net, opts)
        device = job.device
        sources = torch.cat([load_image(s, job.size) for s in job.images]).to(device)
        n_img = sources.shape[0]
        starts = white_noise(tuple(sources.shape), job.seed, device)
        total = job.optim.iterations * n_img * len(sets)
        with torch.no_grad():
            feats = net(sources, all_layers)
        terms_by_layer = {
            layer: style_term(layer, feats[layer], all_weights[layer], opts.loss, opts.gram_norm, opts.variety, "gram")
            for layer in all_layers
        }
        del feats
        outputs: list[TaskOutput] = []
        for g, layers in enumerate(sets):
            t0 = time.perf_counter()
            label = set_label(layers, bool(opts.cumulative))
            set_starts = job.start_batch([image_label(s) for s in job.images], label, starts)  # phases
            terms = [terms_by_layer[layer] for layer in layers]
            objective = WeightedObjective(net, terms, opts.weighting)
            res = run_batches(objective, set_starts, job.optim, progress, g * job.optim.iterations * n_img, total)
            seconds = (time.perf_counter() - t0) / n_img
            outputs += outputs_from_optim(
                res, job.images, label, set_starts,
                references=[{"target": sources[b], "style": sources[b]} for b in range(len(job.images))],
                seconds=seconds,
                extra=[{
                    "layers": list(layers),
                    "layer_weights": objective.describe(b),
                    "weighting": opts.weighting,
                    "gram_norm": opts.gram_norm,
                    "preset": opts.preset,
                    "loss": opts.loss,
                    **({"variety": opts.variety} if opts.loss == "patches" else {}),
                } for b in range(len(job.images))],
            )
        return outputs
