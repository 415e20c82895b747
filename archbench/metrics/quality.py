"""Quality scales a user can read: ``texture-quality`` and ``stylization``.

Both place the judge's Gram distance (:func:`archbench.metrics.gram.gram_distance`, lower is
better, scored in the same judge network as ``gram``) on a scale between two anchors measured on
the images themselves, so that a value means the same for every texture, style and image size.

**Crop floor** ``floor(y)`` -- the natural variation of an image ``y`` ``(3, H, W)``: the mean judge
distance of its four halves to the whole image,

    floor(y) = mean( d(L, y), d(R, y), d(T, y), d(B, y) )

with ``L``/``R`` the left and right ``⌊W/2⌋`` columns and ``T``/``B`` the top and bottom ``⌊H/2⌋``
rows. A result is judged against the whole reference, so the floor is what a piece of the
reference itself scores when judged the same way: the closest a synthesis can honestly be expected
to come. Both axes, because textures and paintings are rarely isotropic. Piece-to-whole rather
than piece-to-piece: a painting whose halves differ (the sky and the figure of *The Scream*) has
halves far apart from each other (0.17 in the trained judge at 128 px, farther than the astronaut
photo is from the painting, 0.14, which would leave the stylisation scale undefined), while each
half is close to the whole (0.02 to 0.08). A half shares its pixels with the whole, so the floor is
strict: values above 1 are possible but rare. The halves must reach the judge's deepest layer
(``conv5_1``, 1/16 of the input): references below 32 px per side make the scales unavailable.

**Log scale.** Judge distances span orders of magnitude (white noise is typically 100 to 1000
times farther from a texture than the texture's own halves), so a result's place between the two
anchors is measured on their logarithms: ``place(top, v, bottom) = log(top / v) / log(top / bottom)``,
0 at ``top``, 1 at ``bottom``; every step of 0.1 is the same factor of distance. On a linear scale
a blend of 25 % brick and 75 % white noise (128 px) would already score 0.72 (random VGG-19 judge)
or 0.55 (trained VGG-16 judge); on the log scale it scores 0.16 in both.

``texture-quality`` (higher is better; reference: the texture, role ``style``)

    q = log(g_noise / g) / log(g_noise / floor(y))

``g`` = d(output, y); ``g_noise`` = d(noise, y) for uniform white noise in ``[0, 1]`` of the output's
size drawn with a ``torch.Generator`` seeded :data:`NOISE_SEED` (0) on the CPU -- exactly the start
image of a seed-0 texture run (:func:`archbench.tasks.reconstruct.white_noise`). 0: as far from the
texture as white noise; 1: as close as another piece of the texture itself; above 1: closer than
that; below 0: farther than noise; 0.5: the geometric middle (√(g_noise·floor)). Not clipped.

``stylization`` (higher is better; references: the content photo ``target`` and the ``style``)

    s = log(d(c, y) / d(x, y)) / log(d(c, y) / floor(y))

``x`` the result, ``c`` the content photo, ``y`` the style image: how far the result moved from the
content's style statistics toward the style's, in the judge's Gram space. 0: the content photo's
statistics (no stylisation); 1: as close to the style as another piece of the style; negative:
farther from the style than the photo; not clipped.

A distance below :data:`TINY` times the floor counts as that (an exact copy of the reference scores
a finite value, about 1 + log(10⁶)/log(top/floor)). A scale whose anchors coincide or are
inverted (white noise no farther from a texture than its own halves, e.g. a texture that is white
noise; a content photo already as close to the style as the style's halves) is undefined: the
value is NaN, stored as empty.

Anchors are cached per (reference content, judge, device kind[, output size]) in a small LRU
(:data:`CACHE_SIZE` entries), so a batch or a sweep measures each reference's floor once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch

from archbench.metrics.base import MetricUnavailable, register_metric
from archbench.metrics.gram import JUDGE_LAYERS, Judge, current_judge, gram_distance, judge_network

log = logging.getLogger(__name__)

#: seed of the white noise that anchors 0 on the texture scale
NOISE_SEED = 0
#: distances below this fraction of the floor count as this fraction (an exact copy scores finite)
TINY = 1e-6
#: anchors kept per process
CACHE_SIZE = 256

_cache: OrderedDict[Hashable, float] = OrderedDict()
_lock = threading.Lock()


def _cached(key: Hashable, compute: Callable[[], float]) -> float:
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = compute()
    with _lock:
        _cache[key] = value
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget every cached anchor (tests; a changed judge network within one process)."""
    with _lock:
        _cache.clear()


def _digest(image: torch.Tensor) -> str:
    """Content hash of an image ``(3, H, W)`` (its float32 values and shape)."""
    t = image.detach().float().cpu().contiguous()
    return hashlib.sha256(str(tuple(t.shape)).encode() + t.numpy().tobytes()).hexdigest()[:32]


def _check_size(image: torch.Tensor, judge: Judge, what: str) -> None:
    need = 2 * judge_network(judge, image.device).tap(JUDGE_LAYERS[-1]).min_size
    h, w = image.shape[-2:]
    if min(h, w) < need:
        raise MetricUnavailable(
            f"{what} is {w}x{h} px; the quality scales need at least {need} px per side (its halves must reach "
            f"the judge's {JUDGE_LAYERS[-1]}); use a larger --size"
        )


def crop_floor(image: torch.Tensor, judge: Judge | None = None) -> float:
    """``floor(y)``: the mean judge distance of the four halves of ``image`` ``(3, H, W)`` or
    ``(1, 3, H, W)`` (left, right, top, bottom) to the whole image (module docstring). Cached."""
    judge = judge or current_judge()
    y = image if image.ndim == 4 else image.unsqueeze(0)
    _check_size(y, judge, "the reference")

    def compute() -> float:
        h, w = y.shape[-2:]
        left, right = y[..., : w // 2], y[..., w - w // 2 :]
        top, bottom = y[..., : h // 2, :], y[..., h - h // 2 :, :]
        lr = gram_distance(torch.cat([left, right]), y, judge)
        tb = gram_distance(torch.cat([top, bottom]), y, judge)
        return float(torch.cat([lr, tb]).double().mean())

    return _cached(("floor", _digest(y[0]), judge.name, y.device.type), compute)


def noise_image(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The white noise of the texture scale's 0: uniform in ``[0, 1]``, ``(1, 3, H, W)``, drawn on
    the CPU with a generator seeded :data:`NOISE_SEED` (the start of a seed-0 texture run)."""
    gen = torch.Generator().manual_seed(NOISE_SEED)
    return torch.rand((1, 3, height, width), generator=gen).to(device)


def noise_distance(reference: torch.Tensor, height: int, width: int, judge: Judge | None = None) -> float:
    """``g_noise``: the judge distance of :func:`noise_image` ``(H, W)`` to ``reference``. Cached."""
    judge = judge or current_judge()
    y = reference if reference.ndim == 4 else reference.unsqueeze(0)

    def compute() -> float:
        return float(gram_distance(noise_image(height, width, y.device), y, judge)[0])

    return _cached(("noise", _digest(y[0]), judge.name, y.device.type, height, width), compute)


def _scale(top: float, value: float, bottom: float) -> float:
    """Where ``value`` lies from ``top`` (0) to ``bottom`` (1) on a log scale (module docstring);
    NaN when the anchors coincide or are inverted."""
    if not (top > 0 and bottom > 0 and math.log(top / bottom) > 1e-9):
        return float("nan")
    value = max(value, bottom * TINY)
    return math.log(top / value) / math.log(top / bottom)


def _per_sample(reference: torch.Tensor, batch: int) -> list[torch.Tensor]:
    if reference.ndim == 3:
        reference = reference.unsqueeze(0)
    if reference.shape[0] == 1:
        return [reference[0]] * batch
    if reference.shape[0] != batch:
        raise ValueError(f"{reference.shape[0]} references for a batch of {batch} images")
    return list(reference)


def texture_quality(output: torch.Tensor, reference: torch.Tensor, judge: Judge | None = None) -> torch.Tensor:
    """Texture quality ``log(g_noise / g) / log(g_noise / floor)`` per sample, ``(B,)`` (module docstring).

    ``output`` ``(B, 3, H, W)``; ``reference`` ``(B or 1, 3, H', W')``, the texture.
    """
    judge = judge or current_judge()
    refs = _per_sample(reference.to(output.device), output.shape[0])
    h, w = output.shape[-2:]
    for y in refs[:1] if all(r is refs[0] for r in refs) else refs:
        _check_size(y, judge, "the texture")
    g = gram_distance(output, torch.stack(refs), judge).double().cpu()
    values = [
        _scale(noise_distance(y, h, w, judge), float(g[b]), crop_floor(y, judge)) for b, y in enumerate(refs)
    ]
    return torch.tensor(values, dtype=torch.float64).to(output.device, output.dtype)


def stylization(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
                judge: Judge | None = None) -> torch.Tensor:
    """Stylisation index ``log(d(c, y) / d(x, y)) / log(d(c, y) / floor(y))`` per sample, ``(B,)``
    (module docstring).

    ``output`` ``(B, 3, H, W)``; ``content`` (the run's target) and ``style`` ``(B or 1, 3, ., .)``.
    """
    judge = judge or current_judge()
    batch = output.shape[0]
    contents = _per_sample(content.to(output.device), batch)
    styles = _per_sample(style.to(output.device), batch)
    d_out = gram_distance(output, torch.stack(styles), judge).double().cpu()
    values = []
    for b in range(batch):
        c, y = contents[b], styles[b]
        floor = crop_floor(y, judge)
        d_content = _cached(("content", _digest(c), _digest(y), judge.name, y.device.type),
                            lambda c=c, y=y: float(gram_distance(c.unsqueeze(0), y.unsqueeze(0), judge)[0]))
        values.append(_scale(d_content, float(d_out[b]), floor))
    return torch.tensor(values, dtype=torch.float64).to(output.device, output.dtype)


def _texture_quality_metric(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return texture_quality(output, reference)


def _stylization_metric(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    return stylization(output, content, style)


register_metric(
    "texture-quality",
    higher_is_better=True,
    reference="style",
    judged=True,
    description="place of the judge's Gram distance (log scale) between white noise (0) and a half of the texture (1); not clipped",
)(_texture_quality_metric)
register_metric(
    "stylization",
    higher_is_better=True,
    reference="target+style",
    judged=True,
    description="stylisation index: judge Gram distance to the style (log scale) from the content photo's (0) to a half of the style's (1); not clipped",
)(_stylization_metric)
