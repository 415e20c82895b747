"""AlexNet in torchvision's layout (Krizhevsky et al. 2012, one-GPU variant of torchvision).

Taps, in forward order: ``conv1`` (rectified; 64 maps, 11x11 stride 4, so stride level 2),
``pool1`` (level 3), ``conv2`` (level 3), ``pool2`` (level 4), ``conv3``, ``conv4``, ``conv5``
(level 4), ``pool5`` (level 5) and, with ``fc=true`` (off by default, like VGG's: 55M parameters),
``fc6``/``fc7`` (rectified fully connected outputs after torchvision's adaptive average pool to
6x6; meaningful at 224 px input).

AlexNet pools with 3x3 windows, stride 2, no padding, and its first convolution uses 11x11 windows,
so output sizes are one or two pixels *below* ``input / 2**level`` (224 px -> conv1 55, pool1 27,
pool2 13, pool5 6); the level is the nominal stride. ``Tap.min_size`` is the exact smallest input
side that gives a non-empty output.
"""

from __future__ import annotations

from torch import nn

from archbench.architectures.base import SequentialTapped, Tap
from archbench.architectures.registry import register_arch
from archbench.errors import ConfigError

POOLING = ("max", "avg")

#: (name, output channels, kernel, stride, padding, level) of each convolution / pooling stage
_LAYOUT: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("conv1", 64, 11, 4, 2, 2),
    ("pool1", 64, 3, 2, 0, 3),
    ("conv2", 192, 5, 1, 2, 3),
    ("pool2", 192, 3, 2, 0, 4),
    ("conv3", 384, 3, 1, 1, 4),
    ("conv4", 256, 3, 1, 1, 4),
    ("conv5", 256, 3, 1, 1, 4),
    ("pool5", 256, 3, 2, 0, 5),
)
#: our conv stage -> index in torchvision's ``alexnet().features``
_TV_FEATURE_INDEX = {"conv1": 0, "conv2": 3, "conv3": 6, "conv4": 8, "conv5": 10}


def _min_sizes() -> dict[str, int]:
    """Smallest input side for which each stage's output is non-empty.

    Uses the convolution arithmetic ``out = floor((n + 2p - k) / s) + 1`` stage by stage.
    """
    result: dict[str, int] = {}
    for name_index in range(len(_LAYOUT)):
        for n in range(1, 4096):
            size = n
            for _, _, k, s, p, _ in _LAYOUT[: name_index + 1]:
                size = (size + 2 * p - k) // s + 1 if size + 2 * p >= k else 0
                if size < 1:
                    break
            if size >= 1:
                result[_LAYOUT[name_index][0]] = n
                break
    return result


class AlexNet(SequentialTapped):
    """AlexNet with named stages.

    Args:
        pool: ``max`` (default, as the original) or ``avg`` (3x3 average pooling, stride 2, the
            same output sizes).
        fc: include the ``fc6``/``fc7`` taps (default off).

    Attributes:
        torchvision_keys: our state-dict key -> torchvision ``alexnet`` state-dict key
            (``features.N.*`` and ``classifier.N.*``), for loading trained weights.
    """

    def __init__(self, pool: str = "max", fc: bool = False) -> None:
        if pool not in POOLING:
            raise ConfigError(f"invalid pool={pool!r} for alexnet; valid: {', '.join(POOLING)}")
        min_size = _min_sizes()
        stages: list[tuple[str, nn.Module]] = []
        taps: list[Tap] = []
        keys: dict[str, str] = {}
        in_ch = 3
        for name, ch, k, s, p, level in _LAYOUT:
            if name.startswith("conv"):
                stages.append((name, nn.Sequential(nn.Conv2d(in_ch, ch, k, stride=s, padding=p), nn.ReLU())))
                for param in ("weight", "bias"):
                    keys[f"stages.{name}.0.{param}"] = f"features.{_TV_FEATURE_INDEX[name]}.{param}"
                in_ch = ch
            else:
                layer = nn.MaxPool2d(k, s) if pool == "max" else nn.AvgPool2d(k, s)
                stages.append((name, layer))
            taps.append(Tap(name, ch, level, min_size=min_size[name]))
        if fc:
            stages.append(
                ("fc6", nn.Sequential(nn.AdaptiveAvgPool2d(6), nn.Flatten(), nn.Linear(256 * 36, 4096), nn.ReLU()))
            )
            stages.append(("fc7", nn.Sequential(nn.Linear(4096, 4096), nn.ReLU())))
            taps.append(Tap("fc6", 4096, 5, spatial=False, min_size=min_size["pool5"]))
            taps.append(Tap("fc7", 4096, 5, spatial=False, min_size=min_size["pool5"]))
            for param in ("weight", "bias"):
                keys[f"stages.fc6.2.{param}"] = f"classifier.1.{param}"
                keys[f"stages.fc7.0.{param}"] = f"classifier.4.{param}"
        super().__init__(stages, taps)
        if not fc:
            self.tap_hints = {n: "the fully connected layers are off by default: use alexnet(fc=true)" for n in ("fc6", "fc7")}
        self.torchvision_keys = keys
        self.pool = pool


@register_arch("alexnet")
def alexnet(pool: str = "max", fc: bool = False) -> AlexNet:
    """AlexNet (torchvision layout): conv1..conv5 (rectified), pool1, pool2, pool5; options: pool=max|avg (default max), fc=true (adds fc6, fc7)."""
    return AlexNet(pool=pool, fc=fc)
