"""Weight initialisation schemes, seeded and reproducible.

``init`` strings:

* ``gaussian:SIGMA`` -- i.i.d. N(0, SIGMA) conv and linear weights, zero biases (paper: 0.015);
  ``gaussian:SIGMA:bias=B`` also draws biases from N(0, B).
* ``kaiming`` -- the framework's default initialisation (``reset_parameters``), seeded.
* ``native`` -- the architecture's own initialisation, exactly as its constructor leaves it
  (torchvision's and timm's model-specific schemes: e.g. kaiming-normal fan-out convolutions and
  N(0, 0.01) classifiers for torchvision ResNets/VGGs; PyTorch's layer defaults for the built-in
  networks), drawn with the seed (:func:`~archbench.architectures.registry.create_arch` builds every
  network under a forked, seeded global RNG). Normalisation layers keep their constructor values.
* ``orthogonal`` -- orthogonal conv/linear weights (gain sqrt(2) for ReLU), zero biases.
* ``uniform`` -- Glorot (Xavier) uniform conv/linear weights, zero biases (Ustyuzhaninov et al.).
* ``pretrained`` -- trained weights found offline (see ``archbench weights status``); never downloads.
* ``checkpoint:PATH`` -- a state dict saved by ``torch.save`` (loaded with ``weights_only=True``).

Normalisation layers (BatchNorm etc.) are reset to identity statistics for random schemes.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError, WeightsError

INIT_SCHEMES = ("gaussian:SIGMA", "kaiming", "native", "orthogonal", "uniform", "pretrained", "checkpoint:PATH")
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def _weighted_modules(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _WEIGHTED)]


def _reset_norms(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm):
            if hasattr(m, "reset_running_stats") and getattr(m, "track_running_stats", False):
                m.reset_running_stats()
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def _parse_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"invalid {what} {text!r} in init spec; expected a number") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"invalid {what} {text!r} in init spec; expected a finite number >= 0")
    return value


def validate_init(init: str) -> None:
    """Check an ``init`` string without a network: the scheme exists, its numbers are finite and
    non-negative (``gaussian:nan`` fails), schemes without arguments have none, and a checkpoint
    names an existing file. ``stacked(...)`` inits are checked by
    :func:`archbench.config.canonical_init`.

    Raises:
        ConfigError, WeightsError: what is wrong, in one line.
    """
    scheme, _, arg = init.partition(":")
    if scheme == "gaussian":
        parts = arg.split(":") if arg else []
        if parts:
            _parse_float(parts[0], "sigma")
        for extra in parts[1:]:
            key, _, value = extra.partition("=")
            if key != "bias":
                raise ConfigError(f"unknown option {extra!r} in init {init!r}; valid: bias=SIGMA")
            _parse_float(value, "bias sigma")
    elif scheme in ("kaiming", "native", "orthogonal", "uniform", "pretrained"):
        if arg:
            raise ConfigError(f"init {scheme!r} takes no argument, got {init!r}")
    elif scheme == "checkpoint":
        if not arg:
            raise ConfigError("init 'checkpoint' needs a path: checkpoint:PATH")
        _check_checkpoint_path(Path(arg).expanduser())
    else:
        raise ConfigError(f"unknown init {init!r}; valid: {', '.join(INIT_SCHEMES)}")


def _check_checkpoint_path(path: Path) -> None:
    if path.is_dir():
        raise WeightsError(f"checkpoint {str(path)!r} is a folder; give the file written by torch.save or archbench stack")
    if not path.is_file():
        raise WeightsError(f"checkpoint {str(path)!r} does not exist")


@torch.no_grad()
def initialize(net: TappedNetwork, init: str, seed: int = 0) -> TappedNetwork:
    """Initialise ``net``'s weights in place according to ``init`` (see module docstring)."""
    scheme, _, arg = init.partition(":")
    gen = torch.Generator().manual_seed(int(seed))
    if scheme == "gaussian":
        parts = arg.split(":") if arg else []
        sigma = _parse_float(parts[0], "sigma") if parts else 0.015
        bias_sigma = 0.0
        for extra in parts[1:]:
            key, _, value = extra.partition("=")
            if key != "bias":
                raise ConfigError(f"unknown option {extra!r} in init {init!r}; valid: bias=SIGMA")
            bias_sigma = _parse_float(value, "bias sigma")
        for m in _weighted_modules(net):
            # in place: the same numbers as randn(shape) * sigma, without the temporaries
            m.weight.normal_(0.0, sigma, generator=gen)
            if m.bias is not None:
                m.bias.normal_(0.0, bias_sigma, generator=gen)
        _reset_norms(net)
    elif scheme == "kaiming":
        # the framework default (kaiming-uniform with a=sqrt(5)), drawn from our generator
        for m in _weighted_modules(net):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)
        _reset_norms(net)
    elif scheme == "native":
        if arg:
            raise ConfigError(f"init 'native' takes no argument, got {init!r}")
        # the constructor's weights, drawn under the seed by create_arch: nothing to do
    elif scheme == "orthogonal":
        for m in _weighted_modules(net):
            nn.init.orthogonal_(m.weight, gain=math.sqrt(2.0), generator=gen)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        _reset_norms(net)
    elif scheme == "uniform":
        for m in _weighted_modules(net):
            nn.init.xavier_uniform_(m.weight, generator=gen)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        _reset_norms(net)
    elif scheme == "pretrained":
        net.load_pretrained()
    elif scheme == "checkpoint":
        if not arg:
            raise ConfigError("init 'checkpoint' needs a path: checkpoint:PATH")
        load_checkpoint(net, Path(arg).expanduser())
    else:
        raise ConfigError(f"unknown init {init!r}; valid: {', '.join(INIT_SCHEMES)}")
    return net


def read_checkpoint(path: Path) -> object:
    """``torch.load(path, weights_only=True)`` with one-line errors for what is not a checkpoint."""
    _check_checkpoint_path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise WeightsError(f"cannot read checkpoint {str(path)!r}: not enough memory") from None
    except Exception as exc:
        text = str(exc).strip()
        if "weights only load failed" in text.lower() or "unsupported global" in text.lower():
            why = "it holds Python objects other than tensors (loaded with weights_only=True for safety)"
        elif isinstance(exc, OSError) and not isinstance(exc, EOFError):
            why = text.splitlines()[0] if text else type(exc).__name__
        else:
            why = "not a PyTorch checkpoint written by torch.save, or a damaged one"
        raise WeightsError(f"cannot read checkpoint {str(path)!r}: {why}") from None


def _split_checkpoint(obj: object) -> tuple[object, dict]:
    """A checkpoint's state dict and its other entries (``archbench stack`` writes both)."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    return obj, {}


def checkpoint_mismatch(net: nn.Module, obj: object) -> str | None:
    """Why the checkpoint ``obj`` (as loaded) does not fit ``net``, or None when it does (keys and
    shapes; ``net`` may live on the meta device)."""
    state, _ = _split_checkpoint(obj)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "it is not a state dict of tensors"
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)

    def few(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

    parts = []
    if missing:
        parts.append(f"missing keys: {few(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {few(unexpected)}")
    if wrong:
        parts.append(f"wrong shapes: {few(wrong)}")
    return "; ".join(parts) or None


def load_checkpoint(net: nn.Module, path: Path) -> dict:
    """Load a state dict from ``path`` into ``net`` safely; clear errors for missing/wrong files.

    The file may be a plain state dict or a dict with a ``state_dict`` entry (as written by
    ``archbench stack``); any other entries are returned as metadata.
    """
    obj = read_checkpoint(path)
    state, meta = _split_checkpoint(obj)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"checkpoint {str(path)!r} is not a state dict of tensors")
    problem = checkpoint_mismatch(net, state)
    if problem:
        raise WeightsError(f"checkpoint {str(path)!r} does not fit this architecture: {problem}")
    net.load_state_dict(state)
    return meta
