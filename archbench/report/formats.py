"""Leaderboard writers: CSV, Markdown, JSON (HTML lives in :mod:`archbench.report.html`).

Numbers go through :func:`archbench.report.text.number`, names through
:func:`archbench.escaping.md_cell` (Markdown) and rows through
:func:`~archbench.report.text.csv_text` (CSV): one formatter, one escaper, one writer.
"""

from __future__ import annotations

import json
import math

from archbench.escaping import md_cell as md_escape
from archbench.report.html import to_html
from archbench.report.leaderboard import ALL_LAYERS, Leaderboard
from archbench.report.text import csv_text, number, stall_note, stars

FORMATS = ("csv", "md", "html", "json")

CSV_COLUMNS = [
    "section", "task", "metric", "layer", "direction", "rank", "unit", "arch", "init", "n", "mean", "std",
    "ci_low", "ci_high", "p_value", "p_holm", "reference", "stalled",
]


def to_csv(lb: Leaderboard) -> str:
    """Long-format CSV: one row per board entry, then the overall ranks (``section=overall``).
    ``stalled``: the entry's results that did not leave their start (overall: the unit's, over
    every task); empty when none of them recorded the flag."""
    rows = [
        ["board", b.task, b.metric, b.layer, "higher" if b.higher_is_better else "lower", e.rank, e.unit, e.arch,
         e.init, e.n, e.mean, e.std, e.ci_low, e.ci_high, e.p_value, e.p_holm, "yes" if e.is_reference else "",
         e.stalled]
        for b in lb.boards
        for e in b.entries
    ]
    rows += [
        ["overall", "", "mean rank", ALL_LAYERS, "lower", o.rank, o.unit, o.arch, o.init, o.boards, o.mean_rank,
         None, None, None, None, None, "yes" if o.unit == lb.reference else "", o.stalled]
        for o in lb.overall
    ]
    text = csv_text(CSV_COLUMNS, rows)
    if lb.claims:  # the claims: a second table with its own header
        from archbench.report.claims import CSV_HEADER, claims_csv_rows

        text += "\n" + csv_text(CSV_HEADER, claims_csv_rows(lb.claims))
    return text


def to_json(lb: Leaderboard) -> str:
    """The leaderboard as JSON (see :meth:`Leaderboard.to_json`); NaN and infinities as null."""

    def clean(x):
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(lb.to_json()), indent=2, sort_keys=False) + "\n"


def board_rows_md(lb: Leaderboard, board) -> list[str]:
    ref = board.reference
    head = ["rank", "architecture", "mean", "95% CI", "std", "n"]
    show_stalled = board.stalled is not None
    if show_stalled:
        head += ["stalled"]
    if ref:
        head += [f"p vs {md_escape(ref)} (Holm)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h != "architecture" else ":---" for h in head) + "|"]
    for e in board.entries:
        row = [number(e.rank, ".3g"), md_escape(e.unit) + (" (ref)" if e.is_reference else ""), number(e.mean),
               f"[{number(e.ci_low)}, {number(e.ci_high)}]", number(e.std, ".3g"), str(e.n)]
        if show_stalled:
            row.append(number(e.stalled, "d"))
        if ref:
            row.append("ref" if e.is_reference else f"{number(e.p_holm, 'p')}{stars(e.p_holm)}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def to_markdown(lb: Leaderboard, per_layer: bool = True) -> str:
    """Markdown: overall ranks, one table per task and metric (mean over layers), then per layer."""
    out = [f"# {md_escape(lb.title)}", ""]
    out.append(
        f"Generated {lb.generated}; {lb.n_jobs} jobs ({len(lb.failed)} failed); devices: "
        f"{md_escape(', '.join(lb.devices)) or '—'}; torch {md_escape(lb.versions.get('torch', '?'))}, "
        f"archbench {md_escape(lb.versions.get('archbench', '?'))}."
    )
    out.append("")
    out.append(
        "Means over images × seeds; 95% percentile-bootstrap CI of the mean; p: two-sided Wilcoxon signed-rank "
        "test against the reference over matched (image, seed) pairs, Holm-corrected per table (* < 0.05, ** < 0.01)."
        + (" " + md_escape(lb.judge_note) if lb.judge_note else "")
    )
    out.append("")
    if stall_note(lb):
        out += [stall_note(lb), ""]
    if lb.overall:
        stalled = any(o.stalled is not None for o in lb.overall)
        out += ["## Overall", "", "| rank | architecture | mean rank | tables |" + (" stalled |" if stalled else ""),
                "|---:|:---|---:|---:|" + ("---:|" if stalled else "")]
        for o in lb.overall:
            out.append(f"| {number(o.rank, '.3g')} | {md_escape(o.unit)} | {number(o.mean_rank, '.3g')} | {o.boards} |"
                       + (f" {number(o.stalled, 'd')} |" if stalled else ""))
        out.append("")
    if lb.claims:
        from archbench.report.claims import claims_markdown

        out += claims_markdown(lb.claims, md_escape)
    for b in lb.boards:
        if b.layer != ALL_LAYERS:
            continue
        arrow = "higher is better" if b.higher_is_better else "lower is better"
        stalled = "" if b.stalled is None else f"; {b.stalled} stalled results"
        out += [f"## {md_escape(b.task)} · {md_escape(b.metric)} ({arrow}; mean over layers{stalled})", ""]
        out += board_rows_md(lb, b)
        out.append("")
    if per_layer:
        layer_boards = [b for b in lb.boards if b.layer != ALL_LAYERS]
        if layer_boards:
            out += ["## Per layer", ""]
            for b in layer_boards:
                out += [f"### {md_escape(b.task)} · {md_escape(b.metric)} · {md_escape(b.layer)}", ""]
                out += board_rows_md(lb, b)
                out.append("")
    if lb.failed:
        out += ["## Failed jobs", "", "| architecture | init | seed | task | image | reason |", "|:---|:---|---:|:---|:---|:---|"]
        for j in lb.failed:
            out.append(
                f"| {md_escape(j.arch)} | {md_escape(j.init)} | {j.seed} | {md_escape(j.task)} | "
                f"{md_escape(j.image)} | {md_escape(j.error or '')} |"
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
        return to_html(lb, store, correlation=correlation)
    raise ConfigError(f"unknown report format {fmt_name!r}; valid: {', '.join(FORMATS)}")
