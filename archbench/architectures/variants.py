"""Architecture variants: activation, downsampling, width and depth as spec options.

Written in the spec, e.g. ``vgg19(act=elu,down=stride,width=0.5,depth=2)``:

* ``act``: ``relu``, ``leaky-relu`` (slope 0.01) or ``leaky-relu:SLOPE`` (``leaky-relu:0.3`` is
  Champandard's "very leaky"), ``elu``, ``selu``, ``gelu``, ``tanh``;
* ``down``: ``avg``, ``max`` (pooling) or ``stride`` (a learned 2×2 stride-2 convolution);
* ``width``: multiplier of every layer's channel count (> 0);
* ``depth``: multiplier (integer >= 1) of the 3×3 convolutions in each stage.

``act`` applies to every architecture (its ReLUs are replaced); ``down``, ``width`` and ``depth``
to the VGG family, where layer names stay meaningful (``conv3_1`` is still the first convolution of
stage 3, ``poolS`` the stage's downsampling).
"""

from __future__ import annotations

from torch import nn

from archbench.errors import ConfigError

ACTIVATIONS = ("relu", "leaky-relu[:SLOPE]", "elu", "selu", "gelu", "tanh")
DOWNSAMPLING = ("avg", "max", "stride")
#: largest channel multiplier (``width``) and convolutions-per-stage multiplier (``depth``): a
#: VGG 16 times as wide already has 2.4 billion weights; larger values would only exhaust memory
#: (or, for ``depth=10**20``, never finish building)
MAX_WIDTH = 16
MAX_DEPTH = 16


def make_activation(spec: str) -> nn.Module:
    """A fresh, out-of-place activation module for ``spec`` (see :data:`ACTIVATIONS`)."""
    name, _, arg = str(spec).strip().lower().replace("_", "-").partition(":")
    if name in ("leaky-relu", "leakyrelu", "lrelu"):
        try:
            slope = float(arg) if arg else 0.01
        except ValueError:
            raise ConfigError(f"invalid leaky-relu slope {arg!r}; expected a number, e.g. leaky-relu:0.3") from None
        return nn.LeakyReLU(slope)
    if arg:
        raise ConfigError(f"activation {name!r} takes no parameter (got {spec!r})")
    factories = {"relu": nn.ReLU, "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU, "tanh": nn.Tanh}
    if name not in factories:
        raise ConfigError(f"invalid act={spec!r}; valid: {', '.join(ACTIVATIONS)}")
    return factories[name]()


def replace_activations(module: nn.Module, act: str) -> nn.Module:
    """Replace every ReLU in ``module`` by ``make_activation(act)`` (in place; returns ``module``)."""
    make_activation(act)  # validate once, even if there is no ReLU
    for name, child in list(module.named_children()):
        if isinstance(child, nn.ReLU):
            setattr(module, name, make_activation(act))
        else:
            replace_activations(child, act)
    return module


def check_down(down: str) -> str:
    if down not in DOWNSAMPLING:
        raise ConfigError(f"invalid down={down!r}; valid: {', '.join(DOWNSAMPLING)}")
    return down


def check_width(width: float) -> float:
    if isinstance(width, bool) or not isinstance(width, int | float) or not 0 < width <= MAX_WIDTH:
        raise ConfigError(f"invalid width={width!r}; expected a positive multiplier such as 0.5, 1 or 2 "
                          f"(at most {MAX_WIDTH})")
    return float(width)


def check_depth(depth: int) -> int:
    if (isinstance(depth, bool) or not isinstance(depth, int | float) or not 1 <= depth <= MAX_DEPTH
            or int(depth) != depth):
        raise ConfigError(f"invalid depth={depth!r}; expected an integer multiplier from 1 to {MAX_DEPTH} (1, 2, 3, ...)")
    return int(depth)


def scaled(channels: int, width: float) -> int:
    """Channel count scaled by ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))
