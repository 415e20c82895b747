"""Building architectures: :func:`build_arch` (a spec's network, its factory's own weights) and
:func:`create_arch` (built, initialised and prepared for feature extraction), above the registry
(:mod:`archbench.architectures.registry`: names, specs, factories), the wrapper of plain modules
(:mod:`~archbench.architectures.wrap`) and the inits (:mod:`~archbench.architectures.init`).
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from typing import Any

import torch

from archbench.architectures.base import TappedNetwork
from archbench.architectures.init import initialize
from archbench.architectures.registry import ArchFactory, parse_spec, resolve_factory
from archbench.architectures.variants import replace_activations
from archbench.architectures.wrap import wrap_module
from archbench.errors import ConfigError, WeightsError
from archbench.plugins import guard_forward, is_plugin, plugin_call


def build_arch(spec: str) -> TappedNetwork:
    """Build the network named by ``spec`` with its factory's own (uninitialised) weights."""
    name, opts = parse_spec(spec)
    factory = resolve_factory(name)
    # ``act`` works on every architecture: when the factory has no such option, its ReLUs are
    # replaced after building (see archbench.architectures.variants)
    act = opts.pop("act", None) if "act" in opts and not _accepts(factory, "act") else None
    _check_options(name, factory, opts, extra=["act"] if act is not None or not _accepts(factory, "act") else [])
    plugin = is_plugin(factory)
    with plugin_call(name, "factory", errors=True) if plugin else nullcontext():
        try:
            net = factory(**opts)
        except TypeError as exc:
            text = re.sub(r"^[\w.<>]+\(\)\s*", "", str(exc))  # not the factory's internal name
            raise ConfigError(f"invalid options for arch {name!r}: {text}") from exc
        if not isinstance(net, TappedNetwork):
            net = wrap_module(net, spec)  # plain nn.Module from a plugin: traces its forward
    if plugin:
        guard_forward(net, name)
    if act is not None:
        replace_activations(net, act)
    return net


def _check_options(name: str, factory: ArchFactory, opts: dict[str, Any], extra: list[str]) -> None:
    """:class:`ConfigError` naming the valid options when ``opts`` has one ``factory`` does not take."""
    import inspect

    from archbench.registry import close_matches

    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    valid = [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    valid += [e for e in extra if e not in valid]
    for key in opts:
        if key not in valid:
            hint = close_matches(key, valid)
            raise ConfigError(
                f"unknown option {key!r} for arch {name!r}; valid: {', '.join(valid) or 'none'}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
            )


def _accepts(factory: ArchFactory, option: str) -> bool:
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == option or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def create_arch(
    spec: str,
    init: str = "gaussian:0.015",
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> TappedNetwork:
    """Build, initialise and prepare an architecture for feature extraction.

    Args:
        spec: architecture spec (see module docstring), e.g. ``"vgg19"``, ``"vgg19(pool=max)"``.
        init: weight initialisation (see :mod:`archbench.architectures.init`), e.g.
            ``"gaussian:0.015"``, ``"kaiming"``, ``"native"``, ``"pretrained"``, ``"checkpoint:PATH"``.
        seed: seed of the random initialisation; the same seed reproduces the weights exactly.
        device: where the network lives.

    Returns:
        The network in eval mode with ``requires_grad=False`` on its parameters.
    """
    # whatever the constructor draws (the ``native`` init; parameters an init leaves alone) comes
    # from the seed, without touching the caller's global RNG state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = build_arch(spec)
    initialize(net, init, seed)
    net.provenance.spec = spec
    net.provenance.init = init
    net.provenance.seed = seed
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(device)


_PROBED: dict[str, str | None] = {}


def pretrained_unavailable(spec: str) -> str | None:
    """Why ``--init pretrained`` cannot build ``spec`` here (its trained weights are absent or do
    not fit), or None when it can. Loads the weights once per spec and remembers the answer."""
    if spec not in _PROBED:
        try:
            create_arch(spec, init="pretrained")
            _PROBED[spec] = None
        except WeightsError as exc:
            _PROBED[spec] = str(exc)
    return _PROBED[spec]
