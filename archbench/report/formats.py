"""Leaderboard writers: CSV, Markdown, JSON (HTML lives in :mod:`archbench.report.html`)."""

from __future__ import annotations

import csv
import io
import json
import math

from archbench.escaping import csv_row
from archbench.report.leaderboard import ALL_LAYERS, Leaderboard

FORMATS = ("csv", "md", "html", "json")

CSV_COLUMNS = [
    "section", "task", "metric", "layer", "direction", "rank", "unit", "arch", "init", "n", "mean", "std",
    "ci_low", "ci_high", "p_value", "p_holm", "reference",
]


def fmt(v: float | None, digits: int = 4) -> str:
    """Compact number for tables (``—`` for missing)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
        return str(int(v)) if digits == 0 else f"{v:.{digits}g}"
    return f"{v:.{digits}g}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def stars(p: float | None) -> str:
    """Significance marker of a Holm-adjusted p-value: ``**`` < 0.01, ``*`` < 0.05."""
    if p is None:
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def to_csv(lb: Leaderboard) -> str:
    """Long-format CSV: one row per board entry, then the overall ranks (``section=overall``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for b in lb.boards:
        for e in b.entries:
            w.writerow(csv_row([
                "board", b.task, b.metric, b.layer, "higher" if b.higher_is_better else "lower", e.rank, e.unit,
                e.arch, e.init, e.n, repr(e.mean), repr(e.std), repr(e.ci_low), repr(e.ci_high),
                "" if e.p_value is None else repr(e.p_value), "" if e.p_holm is None else repr(e.p_holm),
                "yes" if e.is_reference else "",
            ]))
    for o in lb.overall:
        w.writerow(csv_row(["overall", "", "mean rank", ALL_LAYERS, "lower", o.rank, o.unit, o.arch, o.init, o.boards,
                            repr(o.mean_rank), "", "", "", "", "", "yes" if o.unit == lb.reference else ""]))
    if lb.claims:
        from archbench.report.claims import CSV_HEADER, claims_csv_rows

        w.writerow([])  # the claims: a second table with its own header
        w.writerow(CSV_HEADER)
        for row in claims_csv_rows(lb.claims):
            w.writerow(csv_row(["" if v is None else v for v in row]))
    return buf.getvalue()


def to_json(lb: Leaderboard) -> str:
    """The leaderboard as JSON (see :meth:`Leaderboard.to_json`)."""

    def clean(x):
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(lb.to_json()), indent=2, sort_keys=False) + "\n"


def _md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes, HTML and emphasis characters escaped)."""
    import html

    out = html.escape(str(text), quote=False)
    for ch in "\\|*_`[]":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def board_rows_md(lb: Leaderboard, board) -> list[str]:
    ref = board.reference
    head = ["rank", "architecture", "mean", "95% CI", "std", "n"]
    if ref:
        head += [f"p vs {_md_escape(ref)} (Holm)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h != "architecture" else ":---" for h in head) + "|"]
    for e in board.entries:
        row = [fmt(e.rank, 3), _md_escape(e.unit) + (" (ref)" if e.is_reference else ""), fmt(e.mean),
               f"[{fmt(e.ci_low)}, {fmt(e.ci_high)}]", fmt(e.std, 3), str(e.n)]
        if ref:
            row.append("ref" if e.is_reference else f"{fmt_p(e.p_holm)}{stars(e.p_holm)}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def to_markdown(lb: Leaderboard, per_layer: bool = True) -> str:
    """Markdown: overall ranks, one table per task and metric (mean over layers), then per layer."""
    out = [f"# {_md_escape(lb.title)}", ""]
    jobs = len(lb.jobs)
    out.append(
        f"Generated {lb.generated}; {jobs} jobs ({len(lb.failed)} failed); devices: {', '.join(lb.devices) or '—'}; "
        f"torch {lb.versions.get('torch', '?')}, archbench {lb.versions.get('archbench', '?')}."
    )
    out.append("")
    out.append(
        "Means over images × seeds; 95% percentile-bootstrap CI of the mean; p: two-sided Wilcoxon signed-rank "
        "test against the reference over matched (image, seed) pairs, Holm-corrected per table (* < 0.05, ** < 0.01)."
        + (" " + _md_escape(lb.judge_note) if lb.judge_note else "")
    )
    out.append("")
    if lb.overall:
        out += ["## Overall", "", "| rank | architecture | mean rank | tables |", "|---:|:---|---:|---:|"]
        for o in lb.overall:
            out.append(f"| {fmt(o.rank, 3)} | {_md_escape(o.unit)} | {fmt(o.mean_rank, 3)} | {o.boards} |")
        out.append("")
    if lb.claims:
        from archbench.report.claims import claims_markdown

        out += claims_markdown(lb.claims, _md_escape)
    for b in lb.boards:
        if b.layer != ALL_LAYERS:
            continue
        arrow = "higher is better" if b.higher_is_better else "lower is better"
        out += [f"## {_md_escape(b.task)} · {_md_escape(b.metric)} ({arrow}; mean over layers)", ""]
        out += board_rows_md(lb, b)
        out.append("")
    if per_layer:
        layer_boards = [b for b in lb.boards if b.layer != ALL_LAYERS]
        if layer_boards:
            out += ["## Per layer", ""]
            for b in layer_boards:
                out += [f"### {_md_escape(b.task)} · {_md_escape(b.metric)} · {_md_escape(b.layer)}", ""]
                out += board_rows_md(lb, b)
                out.append("")
    if lb.failed:
        out += ["## Failed jobs", "", "| architecture | init | seed | task | image | reason |", "|:---|:---|---:|:---|:---|:---|"]
        for j in lb.failed:
            out.append(
                f"| {_md_escape(j.arch)} | {_md_escape(j.init)} | {j.seed} | {_md_escape(j.task)} | "
                f"{_md_escape(j.image)} | {_md_escape(j.error or '')} |"
            )
        out.append("")
    return "\n".join(out)


def render(lb: Leaderboard, fmt_name: str, store=None, correlation=None) -> str:
    """The leaderboard in ``fmt_name`` (csv, md, html, json); ``correlation``
    (:class:`archbench.report.correlate.Correlation`) adds its section to md, html and json."""
    from archbench.errors import ConfigError

    if correlation is not None and fmt_name == "csv":
        raise ConfigError("a correlation does not fit the leaderboard CSV; use `archbench correlate --format csv`")
    if fmt_name == "csv":
        return to_csv(lb)
    if fmt_name == "md":
        text = to_markdown(lb)
        if correlation is not None:
            from archbench.report.correlate import to_markdown as correlation_md

            text = text.rstrip("\n") + "\n\n" + correlation_md(correlation, level=2)
        return text
    if fmt_name == "json":
        if correlation is None:
            return to_json(lb)
        data = json.loads(to_json(lb))
        data["correlation"] = correlation.to_json()
        return json.dumps(data, indent=2, allow_nan=False, default=str) + "\n"
    if fmt_name == "html":
        from archbench.report.html import to_html

        return to_html(lb, store, correlation=correlation)
    raise ConfigError(f"unknown report format {fmt_name!r}; valid: {', '.join(FORMATS)}")
