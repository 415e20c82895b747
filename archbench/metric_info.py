"""What reports need to know of a metric -- its direction and whether a judge network scores it --
without importing the metric implementations (and with them torch).

Reports read stored numbers; loading torch to learn that SSIM is higher-is-better would cost a
report several seconds and most of its memory. :data:`BUILTIN` states the direction of every
built-in metric (``tests/test_frame.py`` checks it against the registry); any other name (a plugin
metric) is looked up in the registry, which loads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricInfo:
    """Direction and judging of a metric (see :class:`archbench.metrics.base.Metric`)."""

    name: str
    higher_is_better: bool
    judged: bool = False


#: the built-in metrics (registered by the modules of :mod:`archbench.metrics`)
BUILTIN: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("ssim", True),
        MetricInfo("psnr", True),
        MetricInfo("lpips", False),
        MetricInfo("lpips-alex", False),
        MetricInfo("lpips-vgg", False),
        MetricInfo("gram", False, judged=True),
        MetricInfo("texture-quality", True, judged=True),
        MetricInfo("stylization", True, judged=True),
        MetricInfo("spectrum", False),
        MetricInfo("color-swd", False),
        MetricInfo("activation", True),
        MetricInfo("diversity", True),
        MetricInfo("diversity_pixel", True),
        MetricInfo("tv", False),
        # training-free proxies (archbench.metrics.proxies): higher = predicted better
        MetricInfo("synflow", True),
        MetricInfo("snip", True),
        MetricInfo("grad_norm", True),
        MetricInfo("naswot", True),
        MetricInfo("jacob_cov", True),
        MetricInfo("params", True),
        MetricInfo("flops", True),
    )
}

#: the final loss of a result, compared like a metric by baselines (lower is better)
FINAL_LOSS = MetricInfo("final_loss", False)


def metric_info(name: str) -> MetricInfo | None:
    """The :class:`MetricInfo` of a metric name (a judged name ``gram@J`` counts as ``gram``);
    None when no metric of that name is registered here."""
    name = base_metric(name)
    if name in BUILTIN:
        return BUILTIN[name]
    if name == FINAL_LOSS.name:
        return FINAL_LOSS
    from archbench.errors import ArchbenchError
    from archbench.metrics.base import get_metric

    try:
        m = get_metric(name)
    except ArchbenchError:
        return None
    return MetricInfo(m.name, m.higher_is_better, m.judged)


def higher_is_better(name: str) -> bool:
    """The metric's direction; an unknown metric (a plugin not installed here) ranks as
    higher-is-better, with a warning."""
    info = metric_info(name)
    if info is None:
        log.warning("metric %r is not registered here; ranking it as higher-is-better", name)
        return True
    return info.higher_is_better


def is_judged(name: str) -> bool:
    """Whether a judge network scores the metric (an unknown metric is not judged)."""
    info = metric_info(name)
    return bool(info and info.judged)


def scored_name(metric: str, judge: str | None) -> str:
    """How results name ``metric`` scored by ``judge``: ``gram@trained-vgg16`` for a judged metric,
    the metric's own name otherwise."""
    return f"{metric}@{judge}" if judge and is_judged(metric) else metric


def base_metric(name: str) -> str:
    """The metric of a scored name: ``gram@trained-vgg16`` -> ``gram``."""
    return name.split("@", 1)[0]
