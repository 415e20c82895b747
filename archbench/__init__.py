"""archbench: compare convolutional architectures without training them.

Public API (see the README):

* :func:`create_arch`, :func:`list_archs`, :func:`register_arch` -- architectures with taps;
* :func:`run_task` -- run a task (reconstruct, texture, style, ...) and get scored results;
* :func:`load_image`, :func:`list_images` -- built-in and user images;
* :func:`get_metric`, :func:`list_metrics`, :func:`register_metric` -- scores.
"""

import logging

from archbench.architectures import create_arch, list_archs, register_arch
from archbench.errors import ArchbenchError
from archbench.metrics import get_metric, list_metrics, register_metric

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ArchbenchError",
    "__version__",
    "create_arch",
    "get_metric",
    "list_archs",
    "list_metrics",
    "register_arch",
    "register_metric",
]
