"""Exceptions raised by archbench.

Every error a user can cause (unknown name, bad image, bad option, missing weights) is an
:class:`ArchbenchError`. The command line prints its message on one line and exits with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ArchbenchError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""

    exit_code = 2


class UnknownNameError(ArchbenchError, KeyError):
    """A name that is not in a registry (architecture, task, metric, layer, image, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ImageError(ArchbenchError):
    """An image that is missing, corrupt, of an unsupported kind or too small."""


class WeightsError(ArchbenchError):
    """Weights that are missing, of the wrong shape or that fail verification."""


class OptimizationError(ArchbenchError):
    """An optimisation that cannot go on (a non-finite loss, for instance)."""


class ConfigError(ArchbenchError):
    """A malformed option, specification or suite file."""


class OutputError(ArchbenchError):
    """Output that cannot be written: ``--out`` is a file, a read-only or missing place, the disk
    is full. Raised before any work where it can be known, and it stops a sweep (every later job
    would fail the same way) instead of becoming a failed job."""


class StoreError(ArchbenchError):
    """A results store that cannot be read or written: corrupt, full disk, read-only, locked."""


class ResourceError(ArchbenchError):
    """Work that does not fit this machine (memory): too large an image or batch."""


class PluginError(ConfigError):
    """A plugin (an architecture factory from a file or a package, or the network it returned)
    that failed, tried to end the program (``sys.exit``) or ran past its time limit. The message
    names the plugin; in a sweep the job fails and the sweep goes on."""
