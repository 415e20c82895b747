"""Metrics: the registry and the built-in scores.

Add a metric as a module here with a function decorated by :func:`register_metric`, and import
the module below.
"""

from archbench.metrics.base import (
    METRICS,
    Metric,
    MetricUnavailable,
    base_metric,
    compute_metrics,
    get_metric,
    list_metrics,
    register_metric,
    scored_name,
)

# built-in metrics register themselves on import
from archbench.metrics import ssim  # noqa: E402,F401
from archbench.metrics import gram  # noqa: E402,F401
from archbench.metrics import maximize  # noqa: E402,F401
from archbench.metrics import lpips, texture  # noqa: E402,F401

__all__ = [
    "METRICS",
    "Metric",
    "MetricUnavailable",
    "base_metric",
    "compute_metrics",
    "get_metric",
    "list_metrics",
    "register_metric",
    "scored_name",
]
