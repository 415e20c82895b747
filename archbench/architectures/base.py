"""The network interface every task works with: named taps and their stride levels.

A *tap* is a layer whose output a task may read (``conv1_1``, ``pool3``, ``layer2`` ...). Every
architecture lists its taps in forward order with their channel count and stride *level*: level
``k`` means the tap's output is at ``1/2**k`` of the input resolution, which is what lets two
architectures be compared at equal depth. The forward pass computes only what the requested taps
need and stops after the deepest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from archbench.errors import ImageError, UnknownNameError
from archbench.registry import unknown_name_message

#: ImageNet mean/std used by torchvision and timm for inputs in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Tap:
    """A named intermediate output.

    Attributes:
        name: layer name (``conv3_1``, ``pool2``, ``layer1``, ...).
        channels: number of feature maps.
        level: stride level; the output is at ``1/2**level`` of the input size.
        spatial: ``False`` for fully connected outputs (``fc6``), which need a fixed input size.
        min_size: smallest input side (pixels) for which this tap's output is non-empty.
    """

    name: str
    channels: int
    level: int
    spatial: bool = True
    min_size: int = 1


@dataclass
class Provenance:
    """What a network was built from, recorded with every result."""

    spec: str = ""
    init: str = ""
    seed: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


class TappedNetwork(nn.Module):
    """Base class of all archbench networks.

    Subclasses set :attr:`taps` (forward order) and implement :meth:`_forward_taps`. Inputs are RGB
    images in ``[0, 1]``, shape ``(B, 3, H, W)``; :meth:`preprocess` maps them to what the network
    expects (ImageNet normalisation by default; override ``input_mean``/``input_std``).

    The settings below are what tasks and weight loaders ask of an architecture. Each has a default
    that works for any network; an architecture overrides them (as class or instance attributes)
    where it knows better.

    Attributes:
        default_reconstruct_layers: layers ``reconstruct`` uses without ``--layer`` (None: the
            first spatial tap of each stride level >= 1, i.e. pool1 ... pool5 for VGG).
        default_style_layers: Gram layers of ``texture``/``style`` (None: conv1_1 ... conv5_1 where
            present, else the first spatial tap of stride levels 0 ... 4).
        default_content_layers: the content layer of ``style`` (None: conv2_2 where present, else
            the last spatial tap at stride level 1).
        default_patch_layers: layers of the neural-patches loss (None: conv3_1, conv4_1 where
            present, else the first spatial tap of stride levels 2 and 3).
        default_maximize_layer: the layer ``maximize`` uses by default (None: the last spatial tap
            at stride level 3, else the deepest).
        tap_hints: layer name -> why it is not a tap here and what to do (for error messages).
        torchvision_keys: our state-dict key -> torchvision's, for ``--init pretrained`` (None: no
            trained weights are known for this network).
        torchvision_name: the torchvision model those keys belong to (None: found by shapes).
    """

    taps: list[Tap]
    default_reconstruct_layers: list[str] | None = None
    default_style_layers: list[str] | None = None
    default_content_layers: list[str] | None = None
    default_patch_layers: list[str] | None = None
    default_maximize_layer: str | None = None
    tap_hints: dict[str, str] = {}  # read-only default; architectures assign their own
    torchvision_keys: dict[str, str] | None = None
    torchvision_name: str | None = None

    def __init__(
        self,
        taps: Sequence[Tap],
        input_mean: Sequence[float] = IMAGENET_MEAN,
        input_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.taps = list(taps)
        self._tap_index = {t.name: i for i, t in enumerate(self.taps)}
        self.register_buffer("input_mean", torch.tensor(input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(input_std).view(1, 3, 1, 1), persistent=False)
        self.provenance = Provenance()

    # -- taps ---------------------------------------------------------------------------------
    @property
    def tap_names(self) -> list[str]:
        return [t.name for t in self.taps]

    def tap(self, name: str) -> Tap:
        """The tap called ``name``; a helpful :class:`UnknownNameError` if there is none."""
        try:
            return self.taps[self._tap_index[name]]
        except KeyError:
            arch = self.provenance.spec or type(self).__name__
            hint = self.tap_hints.get(name)
            if hint:
                raise UnknownNameError(f"{arch} has no layer {name!r}: {hint}") from None
            raise UnknownNameError(
                unknown_name_message(f"layer of {arch}", name, self.tap_names)
            ) from None

    def load_pretrained(self) -> None:
        """Load trained weights in place (``--init pretrained``), never downloading. Default:
        torchvision's weights through :attr:`torchvision_keys`
        (:func:`archbench.weights.load_pretrained_into`); adapters of other libraries override it."""
        from archbench.weights import load_pretrained_into

        load_pretrained_into(self)

    def taps_at_level(self, level: int) -> list[Tap]:
        """Taps whose output is at ``1/2**level`` of the input."""
        return [t for t in self.taps if t.level == level and t.spatial]

    def check_input_size(self, height: int, width: int, taps: Sequence[str]) -> None:
        """Raise :class:`ImageError` if an input of this size is too small for ``taps``."""
        for name in taps:
            tap = self.tap(name)
            if min(height, width) < tap.min_size:
                raise ImageError(
                    f"image of {height}x{width} px is too small for layer {name!r} "
                    f"(needs at least {tap.min_size} px per side); use a larger --size"
                )

    def deepest(self, taps: Sequence[str]) -> str:
        """The requested tap that comes last in the forward pass."""
        return max(taps, key=lambda n: self._tap_index[self.tap(n).name])

    # -- forward ------------------------------------------------------------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Map an RGB batch in ``[0, 1]`` to the network's input convention."""
        return (x - self.input_mean) / self.input_std

    def forward(self, x: torch.Tensor, taps: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Outputs of ``taps`` (default: all) for an RGB batch in ``[0, 1]``.

        Computes only up to the deepest requested tap.
        """
        names = list(taps) if taps is not None else self.tap_names
        for n in names:
            self.tap(n)  # validates with a helpful message
        return self._forward_taps(self.preprocess(x), names)

    def _forward_taps(self, x: torch.Tensor, taps: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class SequentialTapped(TappedNetwork):
    """A network that is a chain of named stages; each stage's output may be a tap.

    Args:
        stages: ``(name, module)`` pairs in forward order.
        taps: the taps (a subset of the stage names, in the same order).
    """

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], taps: Sequence[Tap], **kwargs) -> None:
        super().__init__(taps, **kwargs)
        self.stages = nn.ModuleDict(dict(stages))
        stage_names = list(self.stages)
        missing = [t.name for t in self.taps if t.name not in self.stages]
        if missing:
            raise ValueError(f"taps {missing} are not stages of the network ({stage_names})")

    def _forward_taps(self, x: torch.Tensor, taps: list[str]) -> dict[str, torch.Tensor]:
        wanted = set(taps)
        out: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break  # stop after the deepest requested tap
        return out


def no_inplace(module: nn.Module) -> nn.Module:
    """Turn off ``inplace`` on every activation in ``module`` (in-place ReLUs overwrite taps)."""
    for m in module.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    return module
