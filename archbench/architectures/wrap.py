"""Wrap a plain ``nn.Module`` (from a plugin or ``file.py:factory``) as a :class:`TappedNetwork`.

The module is traced with torch.fx exactly like a ``tv:`` model (see
:func:`archbench.architectures.adapters.discover_taps`): one tap per stride level, named by the
module path that ends it, and a pruned feature extractor per requested tap set, so the forward
pass stops after the deepest tap. Networks that cannot be traced should subclass
:class:`TappedNetwork` themselves.
"""

from __future__ import annotations

from torch import nn

from archbench.architectures.adapters import GraphTappedNetwork
from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError


def wrap_module(module: nn.Module, spec: str) -> TappedNetwork:
    """A :class:`GraphTappedNetwork` around ``module`` (returned by the factory of ``spec``).

    Raises:
        ConfigError: ``module`` is not an ``nn.Module``, cannot be traced or has no strided
            feature maps.
    """
    if isinstance(module, TappedNetwork):
        return module
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"arch {spec!r} returned {type(module).__name__}; expected a TappedNetwork or a torch.nn.Module"
        )
    try:
        return GraphTappedNetwork(module, description=spec)
    except ConfigError as exc:  # name the plugin: "Identity has no strided feature maps" alone does not
        raise ConfigError(f"arch {spec!r}: {exc}") from None
