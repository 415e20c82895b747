"""Architectures: the registry and the built-in networks.

Add a new built-in architecture as a module here with a factory decorated by
:func:`register_arch`, and import the module below.
"""

from archbench.architectures.base import SequentialTapped, Tap, TappedNetwork
from archbench.architectures.create import build_arch, create_arch
from archbench.architectures.registry import (
    ARCHS,
    list_archs,
    parse_spec,
    register_arch,
    register_arch_prefix,
)

# built-in architectures register themselves on import
from archbench.architectures import vgg  # noqa: E402,F401
from archbench.architectures import alexnet, resnet  # noqa: E402,F401
from archbench.architectures import adapters  # noqa: E402,F401  (timm: and tv: prefixes)

__all__ = [
    "ARCHS",
    "SequentialTapped",
    "Tap",
    "TappedNetwork",
    "build_arch",
    "create_arch",
    "list_archs",
    "parse_spec",
    "register_arch",
    "register_arch_prefix",
]
