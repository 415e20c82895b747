"""Rendering a :class:`~archbench.report.correlate.model.Correlation`: CSV, the points CSV,
Markdown and JSON (:func:`render_correlation`), and the short texts the HTML report shares.
"""

from __future__ import annotations

import logging
from typing import Any

from archbench.errors import ConfigError
from archbench.escaping import md_cell as md_escape
from archbench.report.correlate.model import Correlation, CorrelationRow
from archbench.report.leaderboard import ALL_LAYERS
from archbench.report.text import csv_text, number

log = logging.getLogger(__name__)


# -- output -----------------------------------------------------------------------------------
def fnum(v: float | None, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals, empty when missing (:func:`archbench.report.text.number`)."""
    return number(v, f".{digits}f", missing="")


def fpval(v: float | None) -> str:
    """A p-value with two significant digits, empty when missing."""
    return number(v, "p2", missing="")


CSV_COLUMNS = (
    "task", "metric", "layer", "init", "n", "n_approximate", "spearman", "ci_low", "ci_high", "p_value", "p_holm",
    "kendall", "params_spearman", "gflops_spearman", "channels_spearman", "minus_gflops", "minus_gflops_ci_low",
    "minus_gflops_ci_high", "kind", "label", "stalled", "best_baseline", "best_baseline_spearman", "minus_best",
    "minus_best_ci_low", "minus_best_ci_high", "minus_comparator", "minus_comparator_ci_low",
    "minus_comparator_ci_high",
)

SELECTION_COLUMNS = (
    "procedure", "candidates", "n", "families", "chosen", "in_sample", "in_sample_ci_low", "in_sample_ci_high", "cv",
    "cv_ci_low", "cv_ci_high", "comparator", "comparator_spearman", "minus_comparator", "minus_comparator_ci_low",
    "minus_comparator_ci_high", "fold_choices",
)


def _fold_choices_text(choices: dict[str, list[str]]) -> str:
    return "; ".join(f"{label} ({', '.join(fams)})" for label, fams in choices.items())


def to_csv(c: Correlation) -> str:
    """One line per row (task, metric, layer, init); then, when the cross-validation ran, a second
    table (its own header after a blank line) with one line per selection procedure."""
    text = csv_text(CSV_COLUMNS, ([getattr(r, k) for k in CSV_COLUMNS] for r in c.rows))
    if c.selection:
        text += "\n" + csv_text(SELECTION_COLUMNS, (
            [_fold_choices_text(s.fold_choices) if k == "fold_choices" else getattr(s, k) for k in SELECTION_COLUMNS]
            for s in c.selection))
    return text


POINTS_COLUMNS = ("task", "metric", "layer", "init", "unit", "arch", "score", "truth", "source", "match", "note",
                  "params", "gflops", "channels", "kind", "stalled", "family")


def points_csv(c: Correlation) -> str:
    """One line per (task, metric, init, architecture): the data behind every ρ."""
    from archbench.report.families import family

    rows = ([r.task, r.metric, r.layer, r.init, p.unit, p.arch, p.score, p.truth, p.source, p.match, p.note,
             None if p.params is None else int(p.params), p.gflops, p.channels, r.kind, p.stalled, family(p.arch)]
            for r in c.rows for p in r.points)
    return csv_text(POINTS_COLUMNS, rows)


def _diff_text(v: float | None, lo: float | None, hi: float | None) -> str:
    if v is None:
        return ""
    ci = f" [{fnum(lo, 2)}, {fnum(hi, 2)}]" if lo is not None else ""
    return f"{number(v, '+.2f')}{ci}"


def delta_text(r: CorrelationRow) -> str:
    """``ρ − ρ GFLOPs [lo, hi]`` or empty."""
    return _diff_text(r.minus_gflops, r.minus_gflops_ci_low, r.minus_gflops_ci_high)


def best_text(r: CorrelationRow) -> str:
    """``ρ − ρ best [lo, hi]`` or empty."""
    return _diff_text(r.minus_best, r.minus_best_ci_low, r.minus_best_ci_high)


def comparator_text(r: Any) -> str:
    """``ρ − ρ comparator [lo, hi]`` of a row or a selection, or empty."""
    return _diff_text(r.minus_comparator, r.minus_comparator_ci_low, r.minus_comparator_ci_high)


def rho_ci_text(v: float | None, lo: float | None, hi: float | None) -> str:
    """``ρ [lo, hi]`` with three and two decimals, or empty."""
    if v is None:
        return ""
    return fnum(v) + (f" [{fnum(lo, 2)}, {fnum(hi, 2)}]" if lo is not None else "")


def short_label(label: str | None) -> str:
    """A baseline's label without its task for narrow columns (``naswot@native``, ``GFLOPs``)."""
    if not label:
        return ""
    return label.split("/", 1)[1] if "/" in label else label


SUMMARY_NOTE = (
    "Spearman's ρ between each architecture's mean score (oriented: higher = better) and its truth value; "
    "95% bootstrap interval over architectures; two-sided permutation p, Holm-corrected over the score rows "
    "(not the size rows); Kendall's τ-b; kind: visualisation score, training-free proxy (task proxies), the "
    "trained model's size (torchvision's metadata: a baseline) or the overall rank; stalled: results behind the "
    "row that did not leave their start (empty: not recorded); ρ width (with a stride level): ρ of the truth with "
    "the channel count of the tap scored; best baseline: the proxy or size row (not the row itself) with the "
    "highest ρ over the same architectures -- picked on the data, which favours it -- and ρ − ρ best with a "
    "paired bootstrap interval (both ρ on the same resamples): an interval above 0 means the score beats every "
    "baseline measured; ρ − ρ {comparator}: the same against the comparator. A fixed score involves no choice: "
    "its cross-validated ρ is its ρ (choices are evaluated in the next table). ρ params, ρ GFLOPs and ρ − ρ GFLOPs "
    "per row are in the CSV and JSON."
)

SELECTION_NOTE = (
    "Choices made from the data -- a level, metric, task or init, or a visualisation score combined with a "
    "proxy -- evaluated as procedures by leave-one-family-out cross-validation: each family of architectures "
    "is held out in turn, the procedure picks by Spearman ρ on the other families, and the held-out "
    "architectures get the pick's prediction (a score's ranks over all architectures, or the mean of two "
    "scores' ranks: transforms that never read the truth). Cross-validated ρ: Spearman's ρ of the pooled "
    "held-out predictions with the truth. In-sample ρ: the pick made on all architectures, and its ρ. "
    "Intervals: percentile bootstrap of the whole procedure ({boot}), paired with the comparator on the same "
    "resamples. Ties go to visualisation scores, then baselines, then pairs."
)


def _architecture_tables(c: Correlation, h2: str) -> list[str]:
    lines: list[str] = []
    for r in c.rows:
        where = "" if r.layer in (ALL_LAYERS, "") else " at " + md_escape(r.layer)
        init = f" ({md_escape(r.init)})" if r.init else ""
        stalled = any(p.stalled is not None for p in r.points)
        lines += [
            "",
            f"{h2} {md_escape(r.task)} / {md_escape(r.metric)}{where}{init}",
            "",
            f"| architecture | truth | score ({'higher' if r.higher_is_better else 'lower'} is better) | trained model | match |"
            + (" stalled |" if stalled else ""),
            "|---|---:|---:|---|---|" + ("---:|" if stalled else ""),
        ]
        for p in r.points:
            match = p.match + (f" ({md_escape(p.note)})" if p.note else "")
            lines.append(f"| {md_escape(p.unit)} | {number(p.truth, 'g')} | {number(p.score)} | {md_escape(p.source)} | {match} |"
                         + (f" {number(p.stalled, 'd')} |" if stalled else ""))
    return lines


def selection_markdown(c: Correlation, h2: str) -> list[str]:
    """The cross-validation section: one line per procedure, then what each fold chose."""
    if not c.selection:
        return []
    s0 = c.selection[0]
    comp = md_escape(c.comparator or "comparator")
    by_family: dict[str, list[str]] = {}
    for arch, fam in c.families.items():
        by_family.setdefault(fam, []).append(arch)
    lines = [
        "",
        f"{h2} Chosen from the data: leave-one-family-out cross-validation",
        "",
        SELECTION_NOTE.format(boot="resamples of the architectures, seed 0"),
        "",
        f"{s0.n} architectures in {s0.families} families: "
        + "; ".join(f"{md_escape(f)} ({', '.join(md_escape(a) for a in archs)})" for f, archs in sorted(by_family.items()))
        + ".",
        "",
        f"| procedure | candidates | chosen on all {s0.n} | in-sample ρ [95% CI] | cross-validated ρ [95% CI] | "
        f"cross-validated ρ − ρ {comp} [95% CI] |",
        "|---|---:|---|---|---|---|",
    ]
    for s in c.selection:
        lines.append(
            f"| {md_escape(s.procedure)} | {s.candidates} | {md_escape(s.chosen or '')} | "
            f"{rho_ci_text(s.in_sample, s.in_sample_ci_low, s.in_sample_ci_high)} | "
            f"{rho_ci_text(s.cv, s.cv_ci_low, s.cv_ci_high)} | {comparator_text(s)} |"
        )
    if c.comparator:
        lines += ["", f"ρ of the comparator {comp} over the same architectures: {fnum(s0.comparator_spearman)}."]
    lines += ["", "What each fold chose (the held-out families in brackets):", ""]
    for s in c.selection:
        lines.append(f"* {md_escape(s.procedure)}: " + "; ".join(
            f"{md_escape(label)} ({', '.join(md_escape(f) for f in fams)})" for label, fams in s.fold_choices.items()))
    if c.cv_left_out:
        lines += ["", "Left out of the pools: " + "; ".join(
            f"{md_escape(label)} ({md_escape(why)})" for label, why in sorted(c.cv_left_out.items())) + "."]
    return lines


def to_markdown(c: Correlation, level: int = 1) -> str:
    """The table of every score and baseline, the cross-validated selections and, per row, the
    architectures behind it; ``level``: the heading depth."""
    h1, h2 = "#" * level, "#" * (level + 1)
    comp = md_escape(short_label(c.comparator)) if c.comparator else "comparator"
    lines = [
        f"{h1} Does the score predict {md_escape(c.truth)}?",
        "",
        f"Ground truth: {md_escape(c.truth_description)}.",
        SUMMARY_NOTE.format(comparator=comp) + (f" Comparator: {md_escape(c.comparator)}." if c.comparator else ""),
        "",
        "| kind | task | metric | layer | init | n | stalled | ρ | 95% CI | p | p (Holm) | τ | ρ width | best baseline (ρ) "
        f"| ρ − ρ best [95% CI] | ρ − ρ {comp} [95% CI] |",
        "|---|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in c.rows:
        ci = f"[{fnum(r.ci_low, 2)}, {fnum(r.ci_high, 2)}]" if r.ci_low is not None else ""
        n = f"{r.n}" + (f" ({r.n_approximate}≈)" if r.n_approximate else "")
        best = f"{md_escape(short_label(r.best_baseline))} ({fnum(r.best_baseline_spearman)})" if r.best_baseline else ""
        lines.append(
            f"| {r.kind} | {md_escape(r.task)} | {md_escape(r.metric)} | {md_escape(r.layer)} | {md_escape(r.init)} | {n} | "
            f"{number(r.stalled, 'd', missing='')} | {fnum(r.spearman)} | {ci} | {fpval(r.p_value)} | {fpval(r.p_holm)} | "
            f"{fnum(r.kendall)} | {fnum(r.channels_spearman)} | {best} | {best_text(r)} | {comparator_text(r)} |"
        )
    if any(r.n_approximate for r in c.rows):
        lines += ["", "≈: architectures matched only approximately (see the tables below)."]
    if any(r.n < 3 for r in c.rows):
        lines += ["", "Rows with fewer than 3 architectures have no statistics."]
    lines += selection_markdown(c, h2)
    lines += _architecture_tables(c, h2)
    if c.unmatched:
        lines += ["", f"{h2} Left out", "", "| architecture | why |", "|---|---|"]
        lines += [f"| {md_escape(u)} | {md_escape(why)} |" for u, why in sorted(c.unmatched.items())]
    return "\n".join(lines) + "\n"


CORRELATION_FORMATS = ("md", "csv", "points", "json")


def render_correlation(c: Correlation, fmt: str) -> str:
    """``md``, ``csv`` (one row per task/metric/init), ``points`` (the data) or ``json``."""
    import json

    if fmt == "md":
        return to_markdown(c)
    if fmt == "csv":
        return to_csv(c)
    if fmt == "points":
        return points_csv(c)
    if fmt == "json":
        return json.dumps(c.to_json(), indent=2, allow_nan=False, default=str) + "\n"
    raise ConfigError(f"unknown format {fmt!r}; valid: {', '.join(CORRELATION_FORMATS)}")
