"""Scores of activation maximisation: relative activation, diversity between channels, TV.

The activation-maximisation task (:mod:`archbench.tasks.maximize`) scores a *set* of images (one
per channel of a layer), so two of its scores are not per-image functions of ``(output,
reference)``: the task computes them itself with the functions below and hands them to the runner
in :attr:`~archbench.tasks.base.TaskOutput.scores`. They are registered here anyway, so that their
direction and meaning are known to rankings, reports and ``archbench list metrics``:

* ``activation`` (higher is better): the achieved activation divided by the channel's typical
  response to natural images, :func:`relative_activation`. Needs the network and the natural
  images, so only the maximize task computes it; elsewhere it is reported unavailable.
* ``diversity`` (higher is better): mean pairwise distance between the images of the layer's
  channels: LPIPS-AlexNet when its trained weights are here, otherwise the pixel distance
  ``diversity_pixel``; the row's ``extra["diversity_metric"]`` says which. Only the maximize task
  computes it.
* ``diversity_pixel`` (higher is better): mean pairwise RMS pixel distance, :func:`pairwise_pixel_distance`,
  always computed so that runs with and without LPIPS weights stay comparable.
* ``tv`` (lower is better: smoother): mean isotropic total variation of the image,
  :func:`total_variation`. A plain per-image metric, usable by every task.
"""

from __future__ import annotations

import torch

from archbench.metrics.base import MetricUnavailable, register_metric

#: the scores only the maximize task can compute (it fills them in through ``TaskOutput.scores``)
TASK_SCORES = ("activation", "diversity", "diversity_pixel")


def relative_activation(
    achieved: torch.Tensor, natural_mean: torch.Tensor, natural_std: torch.Tensor, floor: float = 0.0
) -> torch.Tensor:
    """``achieved / max(natural_mean + natural_std, floor)``, elementwise.

    ``natural_mean`` and ``natural_std`` are the mean and standard deviation of the unit's
    activations over every position of the natural reference images, so the denominator is "a
    strong natural response" of that unit. Adding the std keeps the denominator away from zero for
    channels that are silent on average but not everywhere; ``floor`` guards channels that are
    silent on every natural image (the task uses 1e-6 times the largest denominator of the layer).
    A value of 1 means the synthetic image drives the unit as much as a typical strong natural
    response; values are comparable across architectures and weight scales.
    """
    return achieved / (natural_mean + natural_std).clamp_min(floor)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean isotropic total variation per image, ``(B, C, H, W) -> (B,)``.

    ``TV(x) = mean_{c,i,j} sqrt((x[c,i,j+1] − x[c,i,j])² + (x[c,i+1,j] − x[c,i,j])²)`` over the
    ``(H−1)·(W−1)`` positions that have both neighbours: the mean gradient magnitude in intensity
    units per pixel (0 for a flat image, about 0.58 for uniform white noise in [0, 1]).
    """
    x = images.float()
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2)).sqrt().flatten(1).mean(1)


def pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` of the ``n·(n−1)/2`` unordered pairs ``i < j``."""
    i, j = torch.triu_indices(n, n, offset=1)
    return i, j


def pairwise_pixel_distance(images: torch.Tensor) -> float:
    """Mean over pairs ``i < j`` of the RMS pixel distance ``sqrt(mean((x_i − x_j)²))``.

    ``images`` is ``(N, C, H, W)`` with ``N >= 2``; images in [0, 1] give values in [0, 1].
    """
    n = images.shape[0]
    if n < 2:
        raise ValueError("pairwise distance needs at least two images")
    flat = images.float().flatten(1)
    # ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b, computed without forming all differences
    sq = flat.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * flat @ flat.T).clamp_min(0) / flat.shape[1]
    i, j = pairs(n)
    return float(d2[i, j].sqrt().mean())


def pairwise_metric_distance(images: torch.Tensor, metric, chunk: int = 32) -> float:
    """Mean of ``metric(x_i, x_j)`` over pairs ``i < j`` (``metric`` is batched, ``(B,...)x(B,...)->(B,)``).

    Raises whatever the metric raises (e.g. :class:`MetricUnavailable` when weights are absent).
    """
    n = images.shape[0]
    if n < 2:
        raise ValueError("pairwise distance needs at least two images")
    i, j = pairs(n)
    values = []
    with torch.no_grad():
        for s in range(0, len(i), chunk):
            a, b = images[i[s : s + chunk]], images[j[s : s + chunk]]
            values.append(metric(a, b).detach().float().cpu())
    return float(torch.cat(values).mean())


def _task_score(name: str):
    def fn(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        raise MetricUnavailable(f"{name!r} is a score of the maximize task (it needs the whole set of channel images)")

    fn.__name__ = name
    return fn


register_metric(
    "activation",
    higher_is_better=True,
    description="maximize: achieved activation / (mean + std) of the unit on natural images",
)(_task_score("activation"))
register_metric(
    "diversity",
    higher_is_better=True,
    description="maximize: mean pairwise LPIPS-alex between channels' images (pixel RMS without LPIPS weights)",
)(_task_score("diversity"))
register_metric(
    "diversity_pixel",
    higher_is_better=True,
    description="maximize: mean pairwise RMS pixel distance between channels' images",
)(_task_score("diversity_pixel"))


@register_metric("tv", higher_is_better=False, description="mean isotropic total variation of the result (smoothness)")
def tv(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean isotropic total variation of ``output`` (the reference is not used)."""
    return total_variation(output)
