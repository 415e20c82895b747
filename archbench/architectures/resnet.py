"""ResNet-18/34/50 (He et al. 2016), built from torchvision's implementation without weights.

Taps, in forward order (levels: output at ``1/2**level`` of the input):

========  =====================================  =====
tap       what                                   level
========  =====================================  =====
stem      conv1 (7x7, stride 2) + bn1 + relu      1
pool      3x3 max pool, stride 2                  2
layer1    first residual stage                    2
layer2    second residual stage (stride 2)        3
layer3    third residual stage (stride 2)         4
layer4    fourth residual stage (stride 2)        5
========  =====================================  =====

Modules keep torchvision's names (``conv1``, ``bn1``, ``layer1.0.conv1`` ...), so the state dict is
torchvision's minus the classifier (``fc``); :attr:`ResNet.torchvision_keys` is the identity map.
In-place ReLUs are turned off so a tapped output is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision

from archbench.architectures.base import Tap, TappedNetwork, no_inplace
from archbench.architectures.registry import register_arch

#: output channels of (stem, pool, layer1, layer2, layer3, layer4) for basic / bottleneck blocks
_CHANNELS = {
    18: (64, 64, 64, 128, 256, 512),
    34: (64, 64, 64, 128, 256, 512),
    50: (64, 64, 256, 512, 1024, 2048),
}
_TAP_NAMES = ("stem", "pool", "layer1", "layer2", "layer3", "layer4")
_LEVELS = (1, 2, 2, 3, 4, 5)


class ResNet(TappedNetwork):
    """A torchvision ResNet whose stage outputs are taps; the forward pass stops at the deepest.

    Args:
        depth: 18, 34 or 50.

    Attributes:
        torchvision_keys: our state-dict key -> torchvision ``resnet{depth}`` key (identity).
    """

    def __init__(self, depth: int) -> None:
        taps = [
            Tap(name, ch, level, min_size=2**level)
            for name, ch, level in zip(_TAP_NAMES, _CHANNELS[depth], _LEVELS, strict=True)
        ]
        super().__init__(taps)
        tv = no_inplace(getattr(torchvision.models, f"resnet{depth}")(weights=None))
        self.depth = depth
        self.conv1 = tv.conv1
        self.bn1 = tv.bn1
        self.relu = tv.relu
        self.maxpool = tv.maxpool
        self.layer1 = tv.layer1
        self.layer2 = tv.layer2
        self.layer3 = tv.layer3
        self.layer4 = tv.layer4
        self.torchvision_keys = {k: k for k in self.state_dict()}

    def _steps(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        return [
            ("stem", lambda x: self.relu(self.bn1(self.conv1(x)))),
            ("pool", self.maxpool),
            ("layer1", self.layer1),
            ("layer2", self.layer2),
            ("layer3", self.layer3),
            ("layer4", self.layer4),
        ]

    def _forward_taps(self, x: torch.Tensor, taps: list[str]) -> dict[str, torch.Tensor]:
        wanted = set(taps)
        out: dict[str, torch.Tensor] = {}
        for name, step in self._steps():
            x = step(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break  # stop after the deepest requested tap
        return out


def _make(depth: int):
    def factory() -> ResNet:
        return ResNet(depth)

    factory.__name__ = f"resnet{depth}"
    factory.__doc__ = (
        f"ResNet-{depth} (torchvision layout, no classifier); taps stem, pool, layer1..layer4."
    )
    return factory


for _depth in _CHANNELS:
    register_arch(f"resnet{_depth}")(_make(_depth))
