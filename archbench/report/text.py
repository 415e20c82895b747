"""The one number formatter and the one CSV writer of every report.

Every table archbench writes -- leaderboards in Markdown, HTML, CSV and JSON, correlations,
exports of the results table -- formats its numbers with :func:`number` and writes CSV with
:func:`csv_text` / :func:`frame_csv`, so that a missing value, a p-value or a user-supplied
architecture name looks and behaves the same everywhere. User text is made safe by
:mod:`archbench.escaping` (Markdown cells: :func:`~archbench.escaping.md_cell`; CSV text:
:func:`~archbench.escaping.csv_cell`); HTML escaping is jinja2's autoescape
(:mod:`archbench.report.html`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from archbench.report.leaderboard import Leaderboard

#: what a missing number shows in tables meant for reading
MISSING = "—"

#: the number styles :func:`number` knows besides Python format specs
STYLES = {
    "p": "p-value: '<0.001' below 0.001, else three decimals",
    "p2": "p-value, two significant digits (scientific notation below 0.001)",
    "r": "full precision (repr): machine-readable cells and HTML sort keys",
}


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return math.isnan(v)
    except TypeError:
        return False


def number(v: Any, spec: str = ".4g", missing: str = MISSING) -> str:
    """``v`` formatted for a table.

    Args:
        v: a number, or None / NaN (shown as ``missing``).
        spec: a Python format spec (``".4g"``: four significant digits, ``".3f"``, ``"+.2f"``,
            ``"g"``) or a style of :data:`STYLES` (``"p"``, ``"p2"``, ``"r"``).
        missing: the text of a missing value (``"—"`` in Markdown and HTML, ``""`` in CSV).
    """
    if _missing(v):
        return missing
    if spec == "r":
        return str(int(v)) if isinstance(v, Integral) and not isinstance(v, bool) else repr(float(v))
    if spec == "p":
        return "<0.001" if v < 0.001 else format(v, ".3f")
    if spec == "p2":
        return format(v, ".2g") if v >= 1e-3 else format(v, ".1e")
    return format(v, spec)


def stars(p: float | None) -> str:
    """Significance marker of a Holm-adjusted p-value: ``**`` < 0.01, ``*`` < 0.05."""
    if p is None:
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def csv_cell(v: Any) -> str:
    """One CSV cell: numbers at full precision (:func:`number` ``"r"``), missing values empty, and
    text neutralised against formula injection (:func:`archbench.escaping.csv_cell`: a leading
    ``'`` where a spreadsheet would run it as a formula). A number stays a number."""
    if isinstance(v, str):
        from archbench.escaping import csv_cell as safe_text

        return safe_text(v)
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return ""
    if isinstance(v, Real):
        return number(v, "r", missing="")
    return csv_cell(str(v))


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV (``\\n`` line ends, minimal quoting) of ``rows`` under ``header``; every cell goes
    through :func:`csv_cell`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([csv_cell(h) for h in header])
    w.writerows([csv_cell(v) for v in row] for row in rows)
    return buf.getvalue()


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (object, string and categorical columns) pass
    :func:`csv_cell`'s formula neutralisation; categorical columns are fixed through their
    categories, so a 10^6-row frame costs as little as its distinct names."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = [csv_cell(c) if isinstance(c, str) else c for c in s.cat.categories]
            if cats != list(s.cat.categories):
                out[col] = s.cat.rename_categories(cats)
        elif s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            out[col] = s.map(lambda v: csv_cell(v) if isinstance(v, str) else v)
    return out


def frame_csv(frame: pd.DataFrame, path: Any = None) -> str | None:
    """``frame`` as CSV (no index, ``\\n`` line ends, missing values empty, floats at full
    precision, text neutralised as in :func:`csv_cell`); written to ``path`` when given, else
    returned."""
    safe = neutralise_frame(frame)
    return safe.to_csv(path, index=False, lineterminator="\n")


def stall_note(lb: Leaderboard) -> str:
    """One sentence counting the stalled results, or ``""`` when no result recorded the flag."""
    s = lb.stalled
    if not s:
        return ""
    unrecorded = s["results"] - s["flagged"]
    return (f"Stalled results (the optimiser did not leave the start, so the score is the start's): {s['stalled']} of "
            f"{s['flagged']} results that recorded the flag"
            + (f" ({unrecorded} did not record it)" if unrecorded else "") + "; column `stalled` per entry.")
