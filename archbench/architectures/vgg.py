"""VGG-11/13/16/19 with the paper's layer names (conv1_1 ... conv5_4, pool1 ... pool5, fc6, fc7).

Each ``convS_I`` tap is the *rectified* output of that convolution, as in He et al. 2016 and Gatys
et al.; ``poolS`` is the output of stage ``S``'s downsampling. Pooling is average pooling by
default (as in the paper), ``pool=max`` gives the original VGG. ``fc6``/``fc7`` follow an adaptive
average pool to 7x7 as in torchvision, so they are meaningful at 224 px input.
"""

from __future__ import annotations

from torch import nn

from archbench.architectures.base import SequentialTapped, Tap
from archbench.architectures.registry import register_arch
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
    """A VGG network whose stages are named as in the paper.

    Attributes:
        torchvision_keys: our state-dict key -> torchvision ``vgg*`` state-dict key, for loading
            trained weights (``features.N`` and ``classifier.N``).
    """

    def __init__(self, depths: tuple[int, ...], pool: str = "avg", fc: bool = True) -> None:
        if pool not in POOLING:
            raise ConfigError(f"invalid pool={pool!r} for VGG; valid: {', '.join(POOLING)}")
        stages: list[tuple[str, nn.Module]] = []
        taps: list[Tap] = []
        keys: dict[str, str] = {}
        tv_index = 0
        in_ch = 3
        for s, (n_conv, width) in enumerate(zip(depths, VGG_WIDTHS), start=1):
            level = s - 1
            for i in range(1, n_conv + 1):
                name = f"conv{s}_{i}"
                stages.append((name, nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU())))
                taps.append(Tap(name, width, level, min_size=2**level))
                for p in ("weight", "bias"):
                    keys[f"stages.{name}.0.{p}"] = f"features.{tv_index}.{p}"
                tv_index += 2
                in_ch = width
            pool_layer = nn.AvgPool2d(2, 2) if pool == "avg" else nn.MaxPool2d(2, 2)
            stages.append((f"pool{s}", pool_layer))
            taps.append(Tap(f"pool{s}", width, s, min_size=2**s))
            tv_index += 1
        if fc:
            stages.append(
                ("fc6", nn.Sequential(nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(512 * 49, 4096), nn.ReLU()))
            )
            stages.append(("fc7", nn.Sequential(nn.Linear(4096, 4096), nn.ReLU())))
            taps.append(Tap("fc6", 4096, 5, spatial=False, min_size=32))
            taps.append(Tap("fc7", 4096, 5, spatial=False, min_size=32))
            for p in ("weight", "bias"):
                keys[f"stages.fc6.2.{p}"] = f"classifier.0.{p}"
                keys[f"stages.fc7.0.{p}"] = f"classifier.3.{p}"
        super().__init__(stages, taps)
        self.torchvision_keys = keys
        self.pool = pool


def _make(name: str):
    def factory(pool: str = "avg", fc: bool = True) -> VGG:
        return VGG(VGG_DEPTHS[name], pool=pool, fc=fc)

    factory.__name__ = name
    factory.__doc__ = (
        f"{name.upper()} ({sum(VGG_DEPTHS[name])} conv layers), paper layer names; "
        "options: pool=avg|max (default avg), fc=true|false."
    )
    return factory


for _name in VGG_DEPTHS:
    register_arch(_name)(_make(_name))
