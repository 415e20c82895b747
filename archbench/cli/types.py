"""The command line's number types: every ``int`` and ``float`` option parsed once, with its range.

:class:`ArchbenchGroup` (the class of :data:`archbench.cli.app.app`) gives every option of every
command, sub-commands included, the range :mod:`archbench.values` states for it, checked right
after the option is parsed (a ``min=`` given to ``typer.Option`` still applies). So
``--seed 12345678901234567890123`` or ``--tv-weight nan`` is a usage error (one line, exit 2)
before any work, whichever command it is given to.
"""

from __future__ import annotations

from typing import Any

import typer

from archbench.cli.help import PlainGroup
from archbench.errors import ConfigError
from archbench.values import FLOAT_RANGES, INT_RANGES, check_float, check_int


def check_number(value: Any, name: str) -> Any:
    """``value`` as the option ``name`` parsed it, checked against its range when it is a number
    (or a list of numbers); :class:`ConfigError` when it is out of range or not finite."""
    if isinstance(value, list | tuple):
        return type(value)(check_number(v, name) for v in value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return check_int(value, name, INT_RANGES.get(name))
    if isinstance(value, float):
        return check_float(value, name, FLOAT_RANGES.get(name))
    return value


def bounded(param: Any) -> None:
    """Check the value of ``param`` (a click or typer parameter) with :func:`check_number` once
    it is parsed: an out-of-range or non-finite number is a usage error naming the option."""
    if getattr(param, "_archbench_bounded", False):
        return
    parse = param.process_value
    name = param.name or ""

    def process_value(ctx: Any, value: Any) -> Any:
        value = parse(ctx, value)
        try:
            return check_number(value, name)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), ctx=ctx, param=param) from None

    param.process_value = process_value
    param._archbench_bounded = True


def bound_numbers(command: Any) -> None:
    """Apply :func:`bounded` to every parameter of ``command`` and of its sub-commands."""
    for param in command.params:
        bounded(param)
    for sub in getattr(command, "commands", {}).values():
        bound_numbers(sub)


class ArchbenchGroup(PlainGroup):
    """The top-level command group: help without markup (:class:`~archbench.cli.help.PlainGroup`),
    and its commands' number options get their ranges."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bound_numbers(self)


__all__ = ["ArchbenchGroup", "bound_numbers", "check_number"]
