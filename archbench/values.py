"""Numbers and typed option values, parsed once with their range.

Every number archbench takes from outside -- a command-line option, a ``-O KEY=VALUE`` task option,
a value in a suite file -- is checked here before it reaches torch or numpy, so that a seed of 23
digits or a weight of ``nan`` is refused with one line naming the option instead of failing deep
inside a library.

=====================  ==========================================================================
what                   accepted
=====================  ==========================================================================
integers               ``INT_MIN`` .. ``INT_MAX`` (a 64-bit integer, what torch takes), narrowed
                       per option by :data:`INT_RANGES` (seeds: 0 .. :data:`SEED_MAX`)
floats                 finite only (no ``nan``, ``inf``), narrowed per option by
                       :data:`FLOAT_RANGES`
task options           the type its task's ``Options`` dataclass declares (:func:`check_field`)
=====================  ==========================================================================

The command line applies these ranges through its option types (:mod:`archbench.cli.types`);
task options through :meth:`archbench.tasks.base.Task.parse_options`, which suites use as well.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from archbench.errors import ConfigError

#: the integers torch and numpy take (a signed 64-bit integer)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: the largest seed: every random generator used here (torch, numpy) takes 0 .. 2^32 - 1 and leaves
#: room for the offsets tasks add to a seed
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Range:
    """Inclusive bounds (``None``: the machine's) and the name a message uses."""

    lo: float | None = None
    hi: float | None = None
    label: str | None = None


#: command-line integer options by parameter name (anything else: a 64-bit integer)
INT_RANGES: dict[str, Range] = {
    "seed": Range(0, SEED_MAX),
    "size": Range(1),
    "iters": Range(1, label="iterations"),
    "history": Range(1),
    "phases": Range(1),
    "candidates": Range(1),
    "batch_images": Range(1),
    "max_jobs": Range(0),
    "max_retries": Range(0),
    "noise_seeds": Range(0),
    "truth_level": Range(0),
    "level": Range(0),
}

#: command-line float options by parameter name (anything else: any finite float)
FLOAT_RANGES: dict[str, Range] = {
    "tv_weight": Range(0.0),
    "tv_beta": Range(0.0),
    "alpha_weight": Range(0.0),
    "gpus_per_job": Range(0.0),
}


def _int_words(lo: float | None) -> str:
    return {0: "a non-negative integer", 1: "a positive integer"}.get(lo, "an integer")  # type: ignore[arg-type]


def check_int(value: Any, name: str, rng: Range | None = None) -> int:
    """``value`` as an int within ``rng`` (and a 64-bit integer), else :class:`ConfigError`."""
    rng = rng or Range()
    label = rng.label or name
    lo = INT_MIN if rng.lo is None else max(INT_MIN, int(rng.lo))
    hi = INT_MAX if rng.hi is None else min(INT_MAX, int(rng.hi))
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{label} must be {_int_words(rng.lo)}, got {short(value)}")
    if value < lo:
        raise ConfigError(f"{label} must be {_int_words(rng.lo)}, got {short(value)}"
                          + ("" if rng.lo in (0, 1) else f" (at least {lo})"))
    if value > hi:
        raise ConfigError(f"{label} must be at most {hi}, got {short(value)}")
    return value


def check_float(value: Any, name: str, rng: Range | None = None) -> float:
    """``value`` (an int or float, not a bool) as a finite float within ``rng``, else :class:`ConfigError`."""
    rng = rng or Range()
    label = rng.label or name
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{label} must be a number, got {short(value)}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise ConfigError(f"{label} must be a finite number, got {short(value)}")
    if rng.lo is not None and out < rng.lo:
        raise ConfigError(f"{label} must be at least {rng.lo:g}, got {short(value)}")
    if rng.hi is not None and out > rng.hi:
        raise ConfigError(f"{label} must be at most {rng.hi:g}, got {short(value)}")
    return out


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 10^30 or a megabyte string stays one short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(tp: Any) -> str:
    if tp is type(None):
        return "none"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        return f"a list of {plural.get(item, _describe(item))}" if item is not Any else "a list"
    return {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _fits(value: Any, tp: Any, name: str) -> tuple[bool, Any]:
    """Whether ``value`` is of type ``tp``; the value to use (ints become floats for floats)."""
    if tp is Any:
        return True, value
    if tp is type(None):
        return value is None, value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, out = _fits(value, arg, name)
            if ok:
                return True, out
        return False, value
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):  # ``-O layers=pool1``, ``levels=3,2``: the Options class splits it
            return True, value
        if not isinstance(value, list | tuple):
            return False, value
        outs = []
        for v in value:
            ok, out = _fits(v, item, name)
            if not ok:
                return False, value
            outs.append(out)
        return True, list(outs) if isinstance(value, list) else tuple(outs)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return True, check_int(value, name)
        return False, value
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, check_float(value, name)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    return True, value  # a type this module does not know: the dataclass checks it


def check_field(value: Any, tp: Any, name: str) -> Any:
    """``value`` checked against the annotation ``tp`` of the option ``name`` (ints in range,
    floats finite, strings, lists of them); :class:`ConfigError` naming the option otherwise."""
    label = f"option {name}"
    ok, out = _fits(value, tp, label)
    if not ok:
        raise ConfigError(f"{label} must be {_describe(tp)}, got {short(value)}")
    return out


__all__ = [
    "FLOAT_RANGES", "INT_MAX", "INT_MIN", "INT_RANGES", "Range", "SEED_MAX",
    "check_field", "check_float", "check_int", "short",
]
