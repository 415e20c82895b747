"""Presets: the settings of the paper and of the style/texture tools users know.

A preset fixes, for the texture and style tasks, the layers, the Gram normalisation, the weights,
the weighting scheme, the start image and the tools' iteration budgets (METHOD.md's table).
Any option given explicitly overrides the preset's value. ``archbench`` is the default
(:data:`DEFAULT_PRESET`): the paper's method with the content weight and start that the issue-19
study found to give stylised pictures under archbench's automatic weights (``docs/tasks.md``,
"Defaults study"); ``paper`` keeps the paper's literal α:β:γ, whose balance belongs to the paper's
own loss normalisation (under the automatic weights it returns the content photo nearly unchanged).
For textures the two are the same.

=================== ========================== ============================== ======= ====================== =======
preset              style/texture layers       content layer                  Gram    weights                start
=================== ========================== ============================== ======= ====================== =======
``archbench``       conv1_1 … conv5_1          conv1_2 (stride level 0)       paper   auto; α:β:γ 0.05:1:1e3 content
``paper``           conv1_1 … conv5_1          conv2_2                        paper   auto; α:β:γ 100:1:1000 noise
``gatys-texture``   conv1_1, pool1 … pool4     —                              m       1e9 per layer          noise
``gatys-style``     conv1_1 … conv5_1 (r11…)   conv4_2 (r42)                  hw      style 1e3/n², content 1 content
``pytorch-tutorial`` conv1_1,1_2,2_1,2_2,3_1   conv2_2                        nm      style 1e6, content 1   content
``neural-style``    conv1_1 … conv5_1 (relu)   conv4_2 (relu)                 chw     content 5, style 100,  faint
                                                                                      TV 1e-3
=================== ========================== ============================== ======= ====================== =======

Deviations that cannot be helped, recorded here rather than hidden:

* taps are rectified outputs, so ``pytorch-tutorial`` reads post-ReLU features where the tutorial
  reads pre-ReLU ones;
* ``gatys-texture``'s VGG was rescaled to mean activation 1 on ImageNet; random weights cannot be,
  so its fixed 1e9 weights do not mean the same thing on them (use ``--weighting auto``);
* the tools' pooling (max for the style tools, avg for the paper and DeepTextures) is an
  architecture option: the preset records it as ``pool`` and the runner's arch spec decides
  (``--arch "vgg19(pool=max)"``);
* budgets are quoted as the tools give them (L-BFGS iterations or evaluations) and applied as
  archbench iterations only when ``--iters`` is not given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archbench.errors import ConfigError
from archbench.registry import Registry

VGG_STYLE = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


@dataclass(frozen=True)
class Preset:
    """Settings of one known tool.

    Attributes:
        name: preset name.
        description: one line.
        style_layers: Gram layers (texture: the layers; style: the style layers).
        content_layers: content (feature) layers of style transfer.
        gram_norm: Gram normalisation (:data:`archbench.losses.gram.GRAM_NORMS`).
        content_norm: feature-loss normalisation of the content term.
        weighting: the weighting scheme.
        content_weight, style_weight, tv_weight: α, β, γ.
        style_layer_weights: per-layer weights (same order as ``style_layers``; default 1 each).
        tv_norm: ``sum`` or ``mean`` (see :mod:`archbench.tasks.weighting`).
        start: ``noise``, ``content`` or ``faint`` (ImageNet mean colour + 0.001/255·randn).
        cumulative: texture only: cumulative layer sets (``True``) or one problem with all layers.
        iterations: the tool's budget (``None``: archbench's default).
        pool: the pooling the tool used (informational; set it in the arch spec).
        arch_layers: the layers are the architecture's own defaults (conv1_1 … conv5_1 and
            conv2_2 on VGG, the first tap of each stride level elsewhere), not the tuples above.
        content_level: with ``arch_layers``, the stride level whose last tap is the content layer
            (1: conv2_2 on VGG, the paper's; 0: conv1_2, archbench's since issue 26).
    """

    name: str
    description: str
    style_layers: tuple[str, ...] | None = VGG_STYLE
    content_layers: tuple[str, ...] | None = ("conv2_2",)
    gram_norm: str = "paper"
    content_norm: str = "paper"
    weighting: str = "auto"
    content_weight: float = 100.0
    style_weight: float = 1.0
    tv_weight: float = 1000.0
    style_layer_weights: tuple[float, ...] | None = None
    tv_norm: str = "mean"
    start: str = "noise"
    cumulative: bool = True
    iterations: int | None = None
    pool: str = "avg"
    arch_layers: bool = False
    content_level: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)


PRESETS: Registry[Preset] = Registry("preset")


def _add(p: Preset) -> None:
    PRESETS.add(p.name, p)


#: the preset the texture and style tasks use when none is given
DEFAULT_PRESET = "archbench"

_add(
    Preset(
        "archbench",
        "archbench's default (issue-19 study, docs/tasks.md): the paper's method with α:β:γ = 0.1:1:1000 "
        "under the automatic weights, style transfer starting from the content photo",
        content_weight=0.1,
        start="content",
        arch_layers=True,
        content_level=0,
    )
)
_add(
    Preset(
        "paper",
        "He, Wang & Hopcroft 2016: automatic layer weights, α:β:γ = 100:1:1000, squared-difference TV",
        arch_layers=True,
    )
)
_add(
    Preset(
        "gatys-texture",
        "DeepTextures (Gatys et al. 2015): conv1_1 + pool1..pool4, FFᵀ/M, 1e9 per layer",
        style_layers=("conv1_1", "pool1", "pool2", "pool3", "pool4"),
        content_layers=None,
        gram_norm="m",
        weighting="none",
        style_weight=1e9,
        tv_weight=0.0,
        cumulative=False,
        iterations=2000,
    )
)
_add(
    Preset(
        "gatys-style",
        "Gatys' official PyTorch style transfer: style r11..r51 at 1e3/n², content r42, FFᵀ/(h·w)",
        content_layers=("conv4_2",),
        gram_norm="hw",
        content_norm="mse",
        weighting="none",
        content_weight=1.0,
        style_weight=1.0,
        style_layer_weights=tuple(1e3 / n**2 for n in (64, 128, 256, 512, 512)),
        tv_weight=0.0,
        start="content",
        iterations=500,
        pool="max",
    )
)
_add(
    Preset(
        "pytorch-tutorial",
        "PyTorch neural style tutorial: style conv1_1..conv3_1 at 1e6, content conv2_2, FFᵀ/(N·M)",
        style_layers=("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"),
        content_layers=("conv2_2",),
        gram_norm="nm",
        content_norm="mse",
        weighting="none",
        content_weight=1.0,
        style_weight=1e6,
        tv_weight=0.0,
        start="content",
        iterations=300,
        pool="max",
    )
)
_add(
    Preset(
        "neural-style",
        "jcjohnson/neural-style: style relu1_1..relu5_1 at 100, content relu4_2 at 5, TV 1e-3, FFᵀ/(C·H·W)",
        content_layers=("conv4_2",),
        gram_norm="chw",
        content_norm="mse",
        weighting="none",
        content_weight=5.0,
        style_weight=100.0,
        tv_weight=1e-3,
        tv_norm="sum",
        start="faint",
        iterations=1000,
        pool="max",
    )
)


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (helpful error otherwise)."""
    if not isinstance(name, str):
        raise ConfigError(f"preset must be a name, got {name!r}")
    return PRESETS.get(name)


def preset_iterations(name: str | None) -> int | None:
    """The iteration budget of preset ``name`` (``None`` for the paper's / archbench's default)."""
    return get_preset(name).iterations if name else None
