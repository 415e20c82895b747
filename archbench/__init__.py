"""archbench: compare convolutional architectures without training them.

Public API (see the README):

* :func:`create_arch`, :func:`list_archs`, :func:`register_arch` -- architectures with taps;
* :func:`resolve` -> :class:`RunConfig` -- the resolved configuration of a run (its ``key`` is the
  result's identity); :func:`run_task` -- resolve, run a task and get scored results;
* :class:`ResultStore` -- the results database sweeps fill; :func:`load_results` -- its scores as a
  pandas DataFrame (one row per run, layer and metric), the table every report is computed from;
* :func:`get_metric`, :func:`list_metrics`, :func:`register_metric` -- scores.

Names are imported on first use (PEP 562), so that ``import archbench`` -- and the commands that
only read a store, such as ``archbench report`` -- do not load torch.
"""

import importlib
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: public name -> module that defines it
_EXPORTS = {
    "ArchbenchError": "archbench.errors",
    "ResultStore": "archbench.store",
    "RunConfig": "archbench.config",
    "create_arch": "archbench.architectures",
    "get_metric": "archbench.metrics",
    "list_archs": "archbench.architectures",
    "list_metrics": "archbench.metrics",
    "load_results": "archbench.frame",
    "register_arch": "archbench.architectures",
    "register_metric": "archbench.metrics",
    "resolve": "archbench.config",
    "run_task": "archbench.runner",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'archbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
