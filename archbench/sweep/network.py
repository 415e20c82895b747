"""Building a job's network, including the sweep-only ``stacked(...)`` init.

Besides every init :func:`archbench.architectures.create_arch` understands, a suite may name
``stacked(base=gaussian:0.015,candidates=5,iterations=100,size=64,reference=astronaut)``: the
paper's stacked random network, built by :func:`archbench.tasks.stack.build_stacked` from the
job's arch and seed (all options optional; the values shown are the defaults). It is built once
per (arch, init, seed, device) group by the local executor.
"""

from __future__ import annotations

from typing import Any

from archbench.errors import ConfigError

STACKED_DEFAULTS: dict[str, Any] = {
    "base": "gaussian:0.015",
    "candidates": 5,
    "iterations": 100,
    "size": 64,
    "reference": "astronaut",
}


def parse_stacked(init: str) -> dict[str, Any] | None:
    """Options of a ``stacked(...)`` init (defaults filled in), or None for any other init."""
    if not (init == "stacked" or init.startswith("stacked(")):
        return None
    from archbench.architectures.registry import parse_spec

    _, opts = parse_spec(init)
    unknown = sorted(set(opts) - set(STACKED_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} in init {init!r}; valid: {', '.join(STACKED_DEFAULTS)}")
    out = dict(STACKED_DEFAULTS)
    out.update(opts)
    return out


def build_network(arch: str, init: str, seed: int, device: str):
    """The network of a job: ``create_arch(arch, init, seed, device)`` or a stacked build."""
    stacked = parse_stacked(init)
    if stacked is None:
        from archbench.architectures import create_arch

        return create_arch(arch, init=init, seed=seed, device=device)
    from archbench.tasks.stack import build_stacked

    result = build_stacked(
        arch,
        str(stacked["reference"]),
        candidates=int(stacked["candidates"]),
        size=int(stacked["size"]),
        iterations=int(stacked["iterations"]),
        seed=seed,
        init=str(stacked["base"]),
        device=device,
    )
    return result.net
