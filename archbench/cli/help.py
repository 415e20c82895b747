"""Help and listings as plain text: docstrings without reStructuredText markup.

Docstrings and option help are written for the source and the API docs (``code``, `command`,
:class:`~archbench.x.Y`); a terminal or a pipe gets plain words. :func:`plain` strips that markup,
:class:`PlainGroup` applies it to every command's help, option help and short help of the command
line before click formats it (the app uses click's plain formatter: no box drawing, no rich markup
read from help text, ``archbench --help | head -1`` prints the usage line).
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperGroup

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)(?:\s*<[^`>]*>)?`")  # :class:`~a.b.C`, :func:`text <target>`
_DOUBLE = re.compile(r"``(.+?)``", re.S)
_SINGLE = re.compile(r"(?<![`\w])`([^`]+?)`(?![`\w])")


def plain(text: str | None) -> str | None:
    """``text`` without reStructuredText/Markdown inline markup: ````x```` and ```x``` become
    ``x``, a role such as ``:class:`~pkg.mod.Name``` becomes ``Name`` (``:func:`label <target>```:
    ``label``)."""
    if not text:
        return text

    def role(m: re.Match[str]) -> str:
        target = m.group(1).strip()
        full = m.group(0)
        return target.rsplit(".", 1)[-1] if ":`~" in full else target

    out = _ROLE.sub(role, text)
    out = _DOUBLE.sub(r"\1", out)
    return _SINGLE.sub(r"\1", out)


def clean_command(cmd: Any) -> None:
    """Strip markup from ``cmd``'s help, short help and parameters' help, and from every
    subcommand's (in place; running it twice changes nothing)."""
    if getattr(cmd, "_archbench_plain", False):
        return
    for attr in ("help", "short_help", "epilog"):
        value = getattr(cmd, attr, None)
        if isinstance(value, str):
            setattr(cmd, attr, plain(value))
    for param in getattr(cmd, "params", []):
        if isinstance(getattr(param, "help", None), str):
            param.help = plain(param.help)
    cmd._archbench_plain = True
    for sub in getattr(cmd, "commands", {}).values():
        clean_command(sub)


class PlainGroup(TyperGroup):
    """The top-level group: help text of every command rendered without markup (:func:`plain`)."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            clean_command(cmd)
        return cmd

    def format_help(self, ctx: Any, formatter: Any) -> None:
        clean_command(self)
        super().format_help(ctx, formatter)


__all__ = ["PlainGroup", "clean_command", "plain"]
