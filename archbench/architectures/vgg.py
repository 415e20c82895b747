"""VGG-11/13/16/19 with the paper's layer names (conv1_1 ... conv5_4, pool1 ... pool5, fc6, fc7),
their variants (activation, downsampling, width, depth) and Champandard's 2016 random texture network.

Each ``convS_I`` tap is the *rectified* output of that convolution, as in He et al. 2016 and Gatys
et al.; ``poolS`` is the output of stage ``S``'s downsampling. Pooling is average pooling by
default (as in the paper), ``pool=max`` gives the original VGG. ``fc6``/``fc7`` (option ``fc=true``) follow
an adaptive average pool to 7x7 as in torchvision, so they are meaningful at 224 px input.
"""

from __future__ import annotations

from torch import nn

from archbench.architectures.base import SequentialTapped, Tap
from archbench.architectures.registry import register_arch
from archbench.architectures.variants import check_depth, check_down, check_width, make_activation, scaled
from archbench.errors import ConfigError

#: convolutions per stage
VGG_DEPTHS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
VGG_WIDTHS = (64, 128, 256, 512, 512)
POOLING = ("avg", "max")


class VGG(SequentialTapped):
    """A VGG network whose stages are named as in the paper, with variant options.

    Args:
        depths: convolutions per stage of the base architecture.
        pool: alias of ``down`` kept for the original option (``avg`` or ``max``).
        fc: include ``fc6``/``fc7`` (off by default: they hold 120M parameters and need 224 px input
            to mean what they mean; ``vgg19(fc=true)``).
        act: activation (see :mod:`archbench.architectures.variants`).
        down: ``avg``, ``max`` or ``stride`` (a 2×2 stride-2 convolution followed by ``act``).
        width: channel multiplier; ``depth``: multiplier of the convolutions per stage.

    Attributes:
        torchvision_keys: our state-dict key -> torchvision ``vgg*`` state-dict key, for loading
            trained weights (``features.N`` and ``classifier.N``); empty for variants whose
            shapes differ from the original (width, depth, strided downsampling).
    """

    def __init__(
        self,
        depths: tuple[int, ...],
        pool: str = "avg",
        fc: bool = False,
        act: str = "relu",
        down: str | None = None,
        width: float = 1.0,
        depth: int = 1,
    ) -> None:
        if pool not in POOLING:
            raise ConfigError(f"invalid pool={pool!r} for VGG; valid: {', '.join(POOLING)}")
        down = check_down(down or pool)
        width, depth = check_width(width), check_depth(depth)
        make_activation(act)
        stages: list[tuple[str, nn.Module]] = []
        taps: list[Tap] = []
        keys: dict[str, str] = {}
        tv_index = 0
        in_ch = 3
        for s, (n_conv, base_width) in enumerate(zip(depths, VGG_WIDTHS, strict=True), start=1):
            level = s - 1
            ch = scaled(base_width, width)
            for i in range(1, n_conv * depth + 1):
                name = f"conv{s}_{i}"
                stages.append((name, nn.Sequential(nn.Conv2d(in_ch, ch, 3, padding=1), make_activation(act))))
                taps.append(Tap(name, ch, level, min_size=2**level))
                for p in ("weight", "bias"):
                    keys[f"stages.{name}.0.{p}"] = f"features.{tv_index}.{p}"
                tv_index += 2
                in_ch = ch
            if down == "avg":
                down_layer: nn.Module = nn.AvgPool2d(2, 2)
            elif down == "max":
                down_layer = nn.MaxPool2d(2, 2)
            else:
                down_layer = nn.Sequential(nn.Conv2d(ch, ch, 2, stride=2), make_activation(act))
            stages.append((f"pool{s}", down_layer))
            taps.append(Tap(f"pool{s}", ch, s, min_size=2**s))
            tv_index += 1
        if fc:
            stages.append(
                ("fc6", nn.Sequential(nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(in_ch * 49, 4096), make_activation(act)))
            )
            stages.append(("fc7", nn.Sequential(nn.Linear(4096, 4096), make_activation(act))))
            taps.append(Tap("fc6", 4096, 5, spatial=False, min_size=32))
            taps.append(Tap("fc7", 4096, 5, spatial=False, min_size=32))
            for p in ("weight", "bias"):
                keys[f"stages.fc6.2.{p}"] = f"classifier.0.{p}"
                keys[f"stages.fc7.0.{p}"] = f"classifier.3.{p}"
        super().__init__(stages, taps)
        if not fc:
            self.tap_hints = {n: "the fully connected layers are off by default: use e.g. vgg19(fc=true)" for n in ("fc6", "fc7")}
        same_shapes = width == 1.0 and depth == 1 and down != "stride"
        self.torchvision_keys = keys if same_shapes else {}
        self.pool = down
        self.variant = {"act": act, "down": down, "width": width, "depth": depth}


def _make(name: str):
    def factory(
        pool: str = "avg", fc: bool = False, act: str = "relu", down: str | None = None, width: float = 1.0, depth: int = 1
    ) -> VGG:
        return VGG(VGG_DEPTHS[name], pool=pool, fc=fc, act=act, down=down, width=width, depth=depth)

    factory.__name__ = name
    factory.__doc__ = (
        f"{name.upper()} ({sum(VGG_DEPTHS[name])} conv layers), paper layer names; options: "
        "act=relu|leaky-relu[:SLOPE]|elu|selu|gelu|tanh, down=avg|max|stride (or pool=avg|max; default avg), "
        "width=MULT, depth=MULT, fc=true (adds fc6, fc7)."
    )
    return factory


for _name in VGG_DEPTHS:
    register_arch(_name)(_make(_name))


@register_arch("champandard2016")
def champandard2016(act: str = "elu", width: float = 1.0) -> SequentialTapped:
    """Champandard 2016's untrained texture network: ELU, 48/80/112/176 channels, 2x2 stride-2 downsampling convolutions, input in [-1, 1]."""
    width = check_width(width)
    plan = [  # (name, out channels, stride, level of the output)
        ("conv1_1", 48, 1, 0), ("conv1_2", 48, 1, 0),
        ("conv2_1", 80, 2, 1), ("conv2_2", 80, 1, 1),
        ("conv3_1", 112, 2, 2), ("conv3_2", 112, 1, 2),
        ("conv4_1", 176, 2, 3), ("conv4_2", 176, 1, 3), ("conv4_3", 176, 1, 3),
    ]
    stages: list[tuple[str, nn.Module]] = []
    taps: list[Tap] = []
    in_ch = 3
    for name, out, stride, level in plan:
        ch = scaled(out, width)
        conv = nn.Conv2d(in_ch, ch, 3, padding=1) if stride == 1 else nn.Conv2d(in_ch, ch, 2, stride=2)
        stages.append((name, nn.Sequential(conv, make_activation(act))))
        taps.append(Tap(name, ch, level, min_size=2**level))
        in_ch = ch
    net = SequentialTapped(stages, taps, input_mean=(0.5, 0.5, 0.5), input_std=(0.5, 0.5, 0.5))
    net.default_reconstruct_layers = ["conv1_2", "conv2_2", "conv3_2", "conv4_3"]
    net.default_style_layers = ["conv1_1", "conv2_1", "conv3_1", "conv4_1"]
    return net
