"""The "stacked" random VGG of He et al. 2016: greedy, layer-by-layer choice of random weights.

Going forward from the first convolution, with earlier layers fixed: draw ``candidates`` weight
sets for layer ``l`` (each from its own seed, derived from the base seed), reconstruct the
reference image from white noise through the rectified output of layer ``l`` with each, and keep
the candidate whose final feature-space loss is smallest. The loss compared is the
reconstruction's ``relative`` loss ‖F_l(x) − F_l(x0)‖² / ‖F_l(x0)‖², which is comparable between
candidates whose features differ in scale. Every candidate's loss is recorded.

The result is saved as a checkpoint ``{"state_dict": ..., "provenance": {...}}`` that
``--init checkpoint:PATH`` loads (:func:`archbench.architectures.init.load_checkpoint`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archbench.architectures import create_arch
from archbench.architectures.base import SequentialTapped, TappedNetwork
from archbench.architectures.init import initialize
from archbench.errors import ConfigError
from archbench.images import image_label

log = logging.getLogger(__name__)

STACKABLE_INITS = ("gaussian", "kaiming", "orthogonal", "uniform")


def derive_seed(base_seed: int, layer: str, candidate: int) -> int:
    """Seed of candidate ``candidate`` for ``layer``: the first 31 bits of
    SHA-256(``"{base_seed}:{layer}:{candidate}"``) (stable across platforms and versions)."""
    digest = hashlib.sha256(f"{int(base_seed)}:{layer}:{int(candidate)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def conv_taps(net: TappedNetwork) -> list[str]:
    """Tapped stages of ``net`` that hold a convolution, in forward order (conv1_1 … for VGG)."""
    if not isinstance(net, SequentialTapped):
        raise ConfigError("stacking needs a sequential network with tapped stages (e.g. vgg11 ... vgg19)")
    names = set(net.tap_names)
    return [
        name
        for name, stage in net.stages.items()
        if name in names and any(isinstance(m, nn.Conv2d) for m in stage.modules())
    ]


@dataclass
class StackResult:
    """Outcome of :func:`build_stacked`.

    Attributes:
        net: the stacked network.
        losses: layer -> every candidate's final loss, in candidate order.
        seeds: layer -> every candidate's seed.
        chosen: layer -> index of the kept candidate.
        provenance: what the checkpoint stores besides the weights.
    """

    net: TappedNetwork
    losses: dict[str, list[float]] = field(default_factory=dict)
    seeds: dict[str, list[int]] = field(default_factory=dict)
    chosen: dict[str, int] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def checkpoint(self) -> dict[str, Any]:
        """``{"state_dict": ..., "provenance": ...}`` with CPU tensors."""
        state = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        return {"state_dict": state, "provenance": self.provenance}

    def save(self, path: str | Path) -> Path:
        """Write :meth:`checkpoint` to ``path`` (atomically; a failed write leaves no temporary file
        and raises :class:`~archbench.errors.OutputError`)."""
        import io

        from archbench.fileio import atomic_write

        buf = io.BytesIO()
        torch.save(self.checkpoint(), buf)
        return atomic_write(path, buf.getvalue(), what="checkpoint")


def build_stacked(
    arch: str = "vgg19",
    reference: str = "astronaut",
    *,
    candidates: int = 5,
    size: int | None = None,
    iterations: int | None = None,
    seed: int = 0,
    init: str = "gaussian:0.015",
    layers: list[str] | None = None,
    device: torch.device | str = "cpu",
    history: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> StackResult:
    """Build the stacked random network (see module docstring).

    Every candidate's reconstruction is one ``reconstruct`` run (layer ``l``, ``normalize =
    relative``, ``preset = paper``: pixels from white noise, the paper's procedure, no metrics): a
    strict :class:`archbench.plan.Plan` on the network being stacked.

    Args:
        arch: architecture spec (a sequential network: the VGG family).
        reference: the reference image (built-in name or path).
        candidates: weight sets tried per convolution.
        size, iterations: image side and L-BFGS iterations per reconstruction (default: the
            device's, :data:`archbench.config.DEVICE_DEFAULTS`); ``history``: L-BFGS history.
        seed: base seed: the network's other weights and the white-noise start; candidates' seeds
            derive from it (:func:`derive_seed`).
        init: the random scheme candidates are drawn from (``gaussian:SIGMA``, ``kaiming``, ...).
        layers: the conv taps to stack (default all, in forward order); others keep the base weights.
        device: where to run.
        progress: ``(done, total)`` over reconstructions x iterations.
    """
    from archbench.config import defaults_for, resolve
    from archbench.plan import prepare

    if candidates < 1:
        raise ConfigError(f"candidates must be >= 1, got {candidates}")
    scheme = init.partition(":")[0]
    if scheme not in STACKABLE_INITS:
        raise ConfigError(f"stacking draws random weights; init {init!r} is not one of {', '.join(STACKABLE_INITS)}")
    device = str(device)
    size = size or defaults_for(device).stack_size
    iterations = iterations or defaults_for(device).stack_iterations
    net = create_arch(arch, init=init, seed=seed, device=device)
    all_convs = conv_taps(net)
    if layers:
        for layer in layers:
            net.tap(layer)
            if layer not in all_convs:
                raise ConfigError(f"layer {layer!r} of {arch} holds no convolution; stackable: {', '.join(all_convs)}")
        order = [c for c in all_convs if c in set(layers)]
    else:
        order = all_convs
    if not order:
        raise ConfigError(f"{arch} has no convolution taps to stack")
    net.check_input_size(size, size, order)
    result = StackResult(net)
    total = len(order) * candidates * iterations
    done = 0
    for layer in order:
        (config,) = resolve(
            arch, "reconstruct", [reference], init=init, seed=seed, size=size, iterations=iterations,
            history=history, options={"layers": [layer], "normalize": "relative", "preset": "paper"}, metrics=[], device=device,
        )
        stage = net.stages[layer]
        seeds = [derive_seed(seed, layer, k) for k in range(candidates)]
        losses: list[float] = []
        states = []
        for k, cand_seed in enumerate(seeds):
            initialize(stage, init, cand_seed)  # type: ignore[arg-type]
            base = done

            def report(d: int, _t: int, base: int = base) -> None:
                if progress:
                    progress(base + d, total)

            (outcome,) = prepare([config], net=net).run(progress=report)
            done = base + iterations
            (res,) = outcome.results
            loss = res.final_loss if res.final_loss is not None else float("nan")
            losses.append(loss if res.status == "done" and loss == loss else float("inf"))
            states.append({k2: v.detach().clone() for k2, v in stage.state_dict().items()})
            log.info("stack %s candidate %d (seed %d): loss %.4g%s", layer, k, cand_seed, loss,
                     f" ({res.error})" if res.error else "")
        best = min(range(candidates), key=lambda i: losses[i])
        if losses[best] == float("inf"):
            raise ConfigError(f"every candidate for {layer} failed to optimise; try other --seed or --iters")
        stage.load_state_dict(states[best])
        result.losses[layer], result.seeds[layer], result.chosen[layer] = losses, seeds, best
        if progress:
            progress(done, total)
    for p in net.parameters():
        p.requires_grad_(False)
    result.provenance = {
        "arch": arch,
        "init": init,
        "base_seed": int(seed),
        "reference": image_label(reference),
        "size": int(size),
        "iterations": int(iterations),
        "candidates": int(candidates),
        "loss": "relative reconstruction loss ‖F(x) − F(x0)‖² / ‖F(x0)‖² after the optimisation",
        "layers": list(order),
        "seeds": {k: list(v) for k, v in result.seeds.items()},
        "losses": {k: list(v) for k, v in result.losses.items()},
        "chosen": dict(result.chosen),
        "chosen_seeds": {k: result.seeds[k][i] for k, i in result.chosen.items()},
    }
    net.provenance.extra["stacked"] = result.provenance
    return result


def rebuild_from_provenance(provenance: dict[str, Any], device: torch.device | str = "cpu") -> TappedNetwork:
    """Rebuild a stacked network from its provenance alone (arch, init, base seed, chosen seeds)."""
    net = create_arch(provenance["arch"], init=provenance["init"], seed=provenance["base_seed"], device=device)
    for layer, cand_seed in provenance["chosen_seeds"].items():
        initialize(net.stages[layer], provenance["init"], int(cand_seed))  # type: ignore[arg-type]
    return net
