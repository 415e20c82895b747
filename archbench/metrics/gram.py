"""Gram distance in a fixed judge network: the score of texture synthesis and style transfer.

A network must not grade itself (a candidate that optimises its own Gram loss would score
perfectly in its own feature space), so the distance is measured in a *judge*:

* ``trained-vgg16`` -- VGG-16 with trained ImageNet convolutional weights (found offline, see
  ``archbench weights status``), average pooling; the default when its weights are available;
* ``random-vgg19`` -- VGG-19 with i.i.d. N(0, 0.015) weights drawn with the reserved seed
  :data:`JUDGE_SEED`, which no candidate may use;
* ``auto`` -- ``trained-vgg16`` when available and not the candidate itself, else ``random-vgg19``.

The distance is the "VGG loss" of Ustyuzhaninov et al. (2016/2017):

    d(x, y) = Σ_l 0.2 · mean((G_l(x) − A_l)²) / Σ_k mean(A_k²),   l, k ∈ {conv1_1, …, conv5_1}

with ``G = F Fᵀ / M`` (``M = H·W``, so Grams of different image sizes are comparable), ``A_l`` the
Gram of the reference at layer ``l`` and the means over Gram entries; the denominator (the
reference's mean squared Gram entry summed over the five layers) makes it scale-free. 0 means
identical Gram statistics; lower is better.

The runner picks the judge with :func:`judge_for` (which refuses a candidate that collides with
it) and makes it current with :func:`use_judge` while metrics are computed; results record
:attr:`Judge.name` in its configuration (:attr:`archbench.config.RunConfig.judge`), which is part of
the result's key: a run scored by another judge is another result.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from functools import lru_cache

import torch

from archbench.errors import ConfigError, WeightsError
from archbench.judges import (  # noqa: F401 - the judges' plain data, re-exported here
    JUDGE_SEED,
    JUDGES,
    RANDOM_VGG19,
    TRAINED_VGG16,
    UNRECORDED,
    Judge,
    get_judge,
    judge_identity,
)
from archbench.losses.gram import gram_matrix
from archbench.metrics.base import register_metric

log = logging.getLogger(__name__)

JUDGE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
JUDGE_NAMES = ("auto", "trained-vgg16", "random-vgg19")
RANDOM_INITS = ("gaussian", "kaiming", "orthogonal", "uniform")


@lru_cache(maxsize=1)
def trained_judge_available() -> str | None:
    """``None`` if the trained VGG-16 judge's weights are here, else the reason they are not."""
    try:
        _build(TRAINED_VGG16, "cpu")
    except WeightsError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=4)
def _build(judge: Judge, device: str) -> torch.nn.Module:
    from archbench.architectures import create_arch

    return create_arch(judge.spec, init=judge.init, seed=judge.seed, device=torch.device(device))


def judge_network(judge: Judge, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The judge's network on ``device`` (built once per process and device)."""
    return _build(judge, str(device))


def _base_name(spec: str) -> str:
    from archbench.architectures.registry import parse_spec

    try:
        return parse_spec(spec)[0]
    except ConfigError:
        return spec


def _checkpoint_seeds(init: str) -> list[int]:
    """Seeds recorded in a stacked checkpoint's provenance (empty if none or unreadable)."""
    path = init.partition(":")[2]
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return []
    prov = obj.get("provenance", {}) if isinstance(obj, dict) else {}
    seeds = [prov.get("base_seed")] if isinstance(prov.get("base_seed"), int) else []
    for values in (prov.get("seeds") or {}).values():
        seeds.extend(int(s) for s in values)
    return seeds


def collision(judge: Judge, spec: str, init: str, seed: int) -> str | None:
    """Why the candidate ``spec``/``init``/``seed`` may not be scored by ``judge`` (``None`` if it may)."""
    scheme = init.partition(":")[0]
    if judge.init == "pretrained":
        if scheme == "pretrained" and _base_name(spec) == "vgg16":
            return "the candidate is the trained VGG-16 judge itself; use --judge random-vgg19"
        return None
    if scheme in RANDOM_INITS and int(seed) == judge.seed:
        return (
            f"seed {judge.seed} is reserved for the {judge.name} judge (a candidate with the judge's weights "
            "would grade itself); choose another --seed or --judge trained-vgg16"
        )
    if scheme == "checkpoint" and judge.seed in _checkpoint_seeds(init):
        return f"checkpoint {init.partition(':')[2]!r} was built with the reserved judge seed {judge.seed}; rebuild it with another --seed"
    return None


def judge_for(spec: str, init: str, seed: int, judge: str = "auto") -> Judge:
    """The judge that scores the candidate ``spec``/``init``/``seed``.

    Raises:
        ConfigError: unknown judge name, an explicitly chosen judge that collides with the candidate
            (same network and weights), or ``trained-vgg16`` requested but its weights are absent.
    """
    if judge not in JUDGE_NAMES:
        raise ConfigError(f"unknown judge {judge!r}; valid: {', '.join(JUDGE_NAMES)}")
    if judge == "auto":
        if trained_judge_available() is None and collision(TRAINED_VGG16, spec, init, seed) is None:
            return TRAINED_VGG16
        if trained_judge_available() is not None:
            log.info("trained VGG-16 judge unavailable (%s); using the random VGG-19 judge", trained_judge_available())
        chosen = RANDOM_VGG19
    else:
        chosen = TRAINED_VGG16 if judge == "trained-vgg16" else RANDOM_VGG19
        if chosen is TRAINED_VGG16 and trained_judge_available() is not None:
            raise ConfigError(f"--judge trained-vgg16 needs trained VGG-16 weights: {trained_judge_available()}")
    why = collision(chosen, spec, init, seed)
    if why:
        raise ConfigError(why)
    return chosen


_CURRENT: contextvars.ContextVar[Judge | None] = contextvars.ContextVar("archbench_gram_judge", default=None)


@contextlib.contextmanager
def use_judge(judge: Judge | None) -> Iterator[None]:
    """Make ``judge`` the one the ``gram`` metric uses inside the ``with`` block."""
    token = _CURRENT.set(judge)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_judge() -> Judge:
    """The judge set by :func:`use_judge`, or ``auto``'s choice for no particular candidate."""
    judge = _CURRENT.get()
    if judge is None:
        judge = TRAINED_VGG16 if trained_judge_available() is None else RANDOM_VGG19
    return judge


def gram_distance(output: torch.Tensor, reference: torch.Tensor, judge: Judge | None = None) -> torch.Tensor:
    """Ustyuzhaninov et al.'s VGG loss of ``output`` against ``reference`` in ``judge``, ``(B,)``.

    Images ``(B, 3, H, W)`` in ``[0, 1]``; ``output`` and ``reference`` may differ in size.
    """
    judge = judge or current_judge()
    net = judge_network(judge, output.device)
    with torch.no_grad():
        fo = net(output.float().clamp(0, 1), list(JUDGE_LAYERS))
        fr = net(reference.float().clamp(0, 1), list(JUDGE_LAYERS))
        num = torch.zeros(output.shape[0], device=output.device, dtype=torch.float64)
        den = torch.zeros(reference.shape[0], device=output.device, dtype=torch.float64)
        for layer in JUDGE_LAYERS:
            G = gram_matrix(fo[layer], "m").double()
            A = gram_matrix(fr[layer], "m").double()
            num = num + 0.2 * (G - A).pow(2).flatten(1).mean(1)
            den = den + A.pow(2).flatten(1).mean(1)
    return (num / den.clamp_min(1e-300)).to(output.dtype)


def _gram_metric(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Gram distance to the style/texture image in a fixed judge network (Ustyuzhaninov et al. VGG loss)."""
    return gram_distance(output, reference)


register_metric(
    "gram",
    higher_is_better=False,
    reference="style",
    judged=True,
    description="Gram distance to the style/texture image in a fixed judge network (Ustyuzhaninov et al. VGG loss)",
)(_gram_metric)
