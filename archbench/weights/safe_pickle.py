"""A restricted unpickler for weight files that are pickles of numpy arrays.

Plain :func:`pickle.load` runs whatever callables a file names, so it must never read a file the
user did not write. :class:`NumpyArrayUnpickler` resolves only the globals numpy's own array
pickling uses -- ``numpy.core.multiarray._reconstruct`` (``numpy._core.multiarray`` since numpy 2),
``numpy.core.numeric._frombuffer`` (protocol 5), ``numpy.ndarray`` and ``numpy.dtype`` -- and refuses every other global and every persistent id.
:func:`load_numpy_tree` then checks that the result is a tree of dicts with string keys whose leaves
are numeric arrays (object arrays are refused too).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from archbench.errors import WeightsError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]

#: (module, name) -> object: the only globals a weight pickle may reference.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

NumpyTree = dict[str, "NumpyTree | np.ndarray"]


class UnsafePickleError(WeightsError):
    """A pickle referenced something other than numpy's array-reconstruction globals."""


class NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickler that allows only numpy's array-reconstruction globals (see module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load a pickle that references {module}.{name}; weight files may only contain numpy arrays"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            "refusing to load a pickle with persistent ids; weight files may only contain numpy arrays"
        )


def _check_tree(obj: Any, where: str) -> None:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "fiub":
            raise UnsafePickleError(f"array {where or '<root>'} has dtype {obj.dtype}; only numeric arrays are allowed")
        return
    if not isinstance(obj, dict):
        raise UnsafePickleError(f"entry {where or '<root>'} is a {type(obj).__name__}; expected dicts of numpy arrays")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise UnsafePickleError(f"key {key!r} under {where or '<root>'} is not a string")
        _check_tree(value, f"{where}/{key}" if where else key)


def loads_numpy_tree(data: bytes) -> NumpyTree:
    """Unpickle ``data`` with :class:`NumpyArrayUnpickler` and check it is a dict tree of arrays."""
    try:
        obj = NumpyArrayUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise WeightsError(f"not a readable weights pickle: {type(exc).__name__}: {exc}") from None
    _check_tree(obj, "")
    return obj


def load_numpy_tree(path: str | Path) -> NumpyTree:
    """Load a pickled nested dict of numpy arrays from ``path`` safely.

    Raises:
        UnsafePickleError: the file references any global other than numpy's array constructors,
            or holds anything but dicts with string keys and numeric arrays.
        WeightsError: the file is missing or is not a pickle.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return loads_numpy_tree(data)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
