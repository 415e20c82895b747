"""Metrics: the registry and the built-in scores.

Add a metric as a module here with a function decorated by :func:`register_metric`, and list the
module in :func:`archbench.metrics.base._load_builtin_metrics` (and its direction in
:data:`archbench.metric_info.BUILTIN`). The built-in modules -- and torch with them -- are imported
on the registry's first lookup, not when this package is imported.
"""

from archbench.metric_info import base_metric, scored_name  # one definition, re-exported
from archbench.metrics.base import (
    METRICS,
    Metric,
    MetricUnavailable,
    compute_metrics,
    get_metric,
    list_metrics,
    register_metric,
)

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
