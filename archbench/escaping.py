"""User text made safe for each place it is shown: the terminal, CSV, Markdown.

Names come from users (architecture specs, image file names, folders, suite and store paths) and
end up in rich terminal output, CSV files opened in spreadsheets, and Markdown/HTML reports. Each
renderer passes them through one function here:

* :func:`terminal` -- rich markup escaped, so ``x[/]`` or ``[bold]`` in a name prints as itself
  instead of raising ``MarkupError`` or restyling the output;
* :func:`csv_cell` / :func:`csv_row` -- CSV formula injection neutralised as OWASP recommends
  (https://owasp.org/www-community/attacks/CSV_Injection): a text cell that starts with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so that spreadsheets show it
  as text; numbers (and text that is exactly a number, such as ``-0.5``) are left as they are;
* :func:`md_cell` -- Markdown table cells: HTML escaped (``<script>`` shows as text), pipes,
  emphasis, code and link characters backslash-escaped, newlines folded.

The HTML report escapes with :func:`html.escape` (:mod:`archbench.report.html`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

#: first characters that make a spreadsheet read a cell as a formula (OWASP)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


def terminal(text: object) -> str:
    """``text`` with rich markup escaped (safe inside ``console.print`` markup and table cells)."""
    from rich.markup import escape

    return escape(str(text))


def csv_cell(value: Any) -> Any:
    """One CSV cell with formula injection neutralised (see the module docstring); non-text
    values and text that is a plain number pass unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


def csv_row(values: Iterable[Any]) -> list[Any]:
    """:func:`csv_cell` of every value of a row (a list for ``csv.writer.writerow``)."""
    return [csv_cell(v) for v in values]


def csv_dict(row: dict[str, Any]) -> dict[str, Any]:
    """:func:`csv_cell` of every value of a row (for ``csv.DictWriter.writerow``)."""
    return {k: csv_cell(v) for k, v in row.items()}


def md_cell(text: object) -> str:
    """Text safe inside a Markdown table cell: HTML escaped, ``\\ | * _ ` [ ]`` backslash-escaped,
    newlines folded to spaces."""
    out = html.escape(str(text), quote=False)
    for ch in "\\|*_`[]":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\r", " ").replace("\n", " ")


__all__ = ["FORMULA_PREFIXES", "csv_cell", "csv_dict", "csv_row", "md_cell", "terminal"]
