"""archbench: compare convolutional architectures without training them.

Public API (see the README):

* :func:`create_arch`, :func:`list_archs`, :func:`register_arch` -- architectures with taps;
* :func:`resolve` -> :class:`RunConfig` -- the resolved configuration of a run (its ``key`` is the
  result's identity); :func:`run_task` -- resolve, run a task and get scored results;
* :class:`ResultStore` -- the results database sweeps fill;
* :func:`get_metric`, :func:`list_metrics`, :func:`register_metric` -- scores.
"""

import logging

from archbench.architectures import create_arch, list_archs, register_arch
from archbench.config import RunConfig, resolve
from archbench.errors import ArchbenchError
from archbench.metrics import get_metric, list_metrics, register_metric
from archbench.runner import run_task
from archbench.store import ResultStore

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ArchbenchError",
    "ResultStore",
    "RunConfig",
    "__version__",
    "create_arch",
    "get_metric",
    "list_archs",
    "list_metrics",
    "register_arch",
    "register_metric",
    "resolve",
    "run_task",
]
