"""Documented limits that keep bad input from exhausting the machine, each overridable.

=========================  =================  ==============================  ==========================
limit                      default            override                        checked by
=========================  =================  ==============================  ==========================
image side (``--size``)    4096 px            ``ARCHBENCH_MAX_SIZE``          :func:`archbench.config.resolve`, suites
pixels of an image file    64 million         ``ARCHBENCH_MAX_IMAGE_PIXELS``  the image loader, from the file's header,
                                              (``0``: none)                   before decoding
jobs per sweep             10000              ``--max-jobs N`` or             :func:`archbench.sweep.run_sweep`, before
                                              ``ARCHBENCH_MAX_JOBS`` (0: none) expanding the suite
one plugin call (import,   600 s              ``ARCHBENCH_PLUGIN_TIMEOUT``    :func:`archbench.plugins.plugin_call`
factory, forward pass)                        (``0``: none)                   (main thread, where signals work)
=========================  =================  ==============================  ==========================

A value over a limit is refused with one line that names the limit and how to raise it.
"""

from __future__ import annotations

import os

from archbench.errors import ConfigError

#: largest image side (px): 100000 px would need terabytes; 4096 px already needs gigabytes per
#: VGG activation (the paper uses 256)
MAX_SIZE = 4096
MAX_SIZE_ENV = "ARCHBENCH_MAX_SIZE"

#: largest image file decoded (width x height, from its header): a 420 KB PNG can declare
#: 12000 x 12000 pixels and take gigabytes once decoded
MAX_IMAGE_PIXELS = 64_000_000
MAX_PIXELS_ENV = "ARCHBENCH_MAX_IMAGE_PIXELS"

#: most jobs one sweep may have (``seeds = 1000000`` is refused, not started)
MAX_JOBS = 10_000
MAX_JOBS_ENV = "ARCHBENCH_MAX_JOBS"


#: longest one call into a plugin may take (importing its file, its factory, one forward pass):
#: a plugin that hangs is stopped with an error naming it
PLUGIN_TIMEOUT = 600
PLUGIN_TIMEOUT_ENV = "ARCHBENCH_PLUGIN_TIMEOUT"


def _env_int(name: str, what: str, zero_means_none: bool) -> int | None:
    text = os.environ.get(name, "").strip().replace("_", "")
    if not text:
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number of {what}") from None
    if value < 0 or (value == 0 and not zero_means_none):
        raise ConfigError(f"{name} must be a positive number of {what}, got {text}")
    return value


def max_size() -> int:
    """The largest image side allowed (px)."""
    return _env_int(MAX_SIZE_ENV, "pixels", False) or MAX_SIZE


def max_image_pixels() -> int | None:
    """The most pixels an image file may declare (None: no limit)."""
    value = _env_int(MAX_PIXELS_ENV, "pixels", True)
    if value is None:
        return MAX_IMAGE_PIXELS
    return value or None


def max_jobs() -> int | None:
    """The most jobs a sweep may have (None: no limit)."""
    value = _env_int(MAX_JOBS_ENV, "jobs", True)
    if value is None:
        return MAX_JOBS
    return value or None


def plugin_timeout() -> int | None:
    """The most seconds one plugin call may take (None: no limit)."""
    value = _env_int(PLUGIN_TIMEOUT_ENV, "seconds", True)
    if value is None:
        return PLUGIN_TIMEOUT
    return value or None


__all__ = [
    "MAX_IMAGE_PIXELS", "MAX_JOBS", "MAX_PIXELS_ENV", "MAX_SIZE", "MAX_SIZE_ENV", "MAX_JOBS_ENV",
    "PLUGIN_TIMEOUT", "PLUGIN_TIMEOUT_ENV", "max_image_pixels", "max_jobs", "max_size", "plugin_timeout",
]
