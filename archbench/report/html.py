"""The HTML report: one self-contained file (no network access needed to view it), rendered from
jinja2 templates (``archbench/report/templates/``) with autoescape.

Contents: overall ranking; per task and metric a sortable leaderboard (click a header), a box plot
of the spread over seeds (each point: one seed's mean over images; as the paper's Figure 3), the
per-layer boards; loss-versus-iteration curves (mean over images and seeds, one line per layer);
and per-architecture image grids (target, then the result from each layer; first seed).

This module computes numbers -- plot geometry, data URIs of the images -- and the templates turn
them into markup. Every string reaches the page through jinja2's autoescape (names, titles,
errors, tooltips; attribute values included), so an architecture called
``<script>alert(1)</script>`` shows as text; numbers are formatted by the one formatter of
:mod:`archbench.report.text` (template filters ``num``, ``datav``, ``stars``). Images are embedded
as base64 ``data:`` URIs, CSS and JavaScript are inline (``templates/report.css``, ``report.js``),
plots are inline SVG. The script sets ``data-archbench-ready`` on ``<html>`` once the tables are
sortable (and ``data-archbench-error`` if anything throws), which the tests read from the DOM.

What a 10^5-job store would make too large to read, the page caps and says so: loss curves average
the first :data:`MAX_TRACES` results (by seed, then image) per architecture and layer; image grids
show the first seed's first ``max_images`` images of at most :data:`MAX_GRID_UNITS` architectures
(the best-ranked); failed jobs list the first :data:`MAX_FAILED`. Only those traces and image paths
are read from the store.
"""

from __future__ import annotations

import base64
import functools
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from archbench.report.leaderboard import ALL_LAYERS, Leaderboard, ResultDetails, StoreDetails
from archbench.report.text import number, stall_note, stars

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
TEMPLATES = Path(__file__).resolve().parent / "templates"

#: results averaged per loss curve (architecture x layer)
MAX_TRACES = 32
#: architectures with image grids, per task
MAX_GRID_UNITS = 24
#: failed jobs listed
MAX_FAILED = 500


@functools.lru_cache(maxsize=1)
def environment():
    """The jinja2 environment of the report templates: autoescape on, undefined names an error,
    and the filters ``num`` (:func:`~archbench.report.text.number`), ``datav`` (full precision for
    sort keys, empty when missing) and ``stars``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    env.filters["datav"] = lambda v: number(v, "r", missing="")
    env.filters["stars"] = stars
    return env


# ---------------------------------------------------------------------------------------------
# plot geometry (the templates in plots.html.j2 draw it)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def box_plot(groups: list[tuple[str, list[tuple[str, list[float]]]]], colors: dict[str, str], title: str) -> dict | None:
    """Box plots: for each group (layer), one box per unit over its values (quartiles, min–max
    whiskers, points). ``groups``: ``[(group label, [(unit, values), ...]), ...]``."""
    all_vals = [v for _, boxes in groups for _, vals in boxes for v in vals]
    if not all_vals:
        return None
    lo, hi = min(all_vals), max(all_vals)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    n_boxes = sum(len(b) for _, b in groups)
    bw, gap = 16, 14
    left, top, bottom = 60, 28, 60
    legend_w = 20 + 7 * max((len(u) for _, b in groups for u, _ in b), default=0)
    plot_w = n_boxes * (bw + 6) + len(groups) * gap + 20
    width = max(left + plot_w + legend_w, 7 * len(title) + left)
    height = max(260, top + 16 * len(colors) + 20)
    ph = height - top - bottom

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    labels = []
    x = left + 4
    for label, units in groups:
        gx0 = x
        boxes = []
        for unit, vals in units:
            if vals:
                q1, med, q3 = (float(q) for q in np.percentile(vals, [25, 50, 75]))
                boxes.append({
                    "unit": unit, "group": label, "color": colors.get(unit, "#333"), "n": len(vals), "median": med,
                    "x": x, "cx": x + bw / 2, "y_min": y(min(vals)), "y_max": y(max(vals)), "y_q3": y(q3),
                    "height": max(y(q1) - y(q3), 1), "y_med": y(med), "points": [y(v) for v in vals],
                })
            x += bw + 6
        group_w = x - gx0
        short = label if len(label) * 6 <= group_w + gap else label[: max(3, int((group_w + gap) / 6) - 1)] + "…"
        labels.append({"x": (gx0 + x) / 2, "label": label, "short": short, "boxes": boxes})
        x += gap
    legend_x = left + plot_w + 10
    legend = [{"x": legend_x, "y": top + 16 * k, "color": colors.get(u, "#333"), "unit": u}
              for k, (u, _) in enumerate(groups[0][1] if groups else [])]
    return {"width": width, "height": height, "left": left, "title": title, "box_width": bw,
            "ticks": [{"y": y(t), "label": number(t, ".3g")} for t in _ticks(lo, hi)],
            "groups": labels, "label_y": height - bottom + 14, "legend": legend}


def line_chart(series: list[tuple[str, list[float]]], title: str, colors: list[str] | None = None) -> dict | None:
    """Loss-versus-iteration chart, log10 y axis when every value is positive."""
    series = [(n, ys) for n, ys in series if ys]
    vals = [v for _, ys in series for v in ys if v is not None and math.isfinite(v)]
    if not vals:
        return None
    log_y = min(vals) > 0
    tr = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    lo, hi = min(tr(v) for v in vals), max(tr(v) for v in vals)
    if hi - lo < 1e-12:
        hi = lo + 1
    n_max = max(len(ys) for _, ys in series)
    width, height, left, top, bottom, right = 340, 220, 56, 24, 34, 90
    pw, ph = width - left - right, height - top - bottom

    def px(i: int) -> float:
        return left + pw * (i / max(n_max - 1, 1))

    def py(v: float) -> float:
        return top + ph * (1 - (tr(v) - lo) / (hi - lo))

    colors = colors or PALETTE
    ticks = [{"y": top + ph * (1 - (t - lo) / (hi - lo)), "label": number(10**t, ".2g") if log_y else number(t, ".3g")}
             for t in _ticks(lo, hi, 4)]
    out = [{"name": name, "color": colors[k % len(colors)],
            "points": " ".join(f"{number(px(i), '.1f')},{number(py(v), '.1f')}" for i, v in enumerate(ys)
                               if v is not None and math.isfinite(v) and (v > 0 or not log_y))}
           for k, (name, ys) in enumerate(series)]
    return {"width": width, "height": height, "left": left, "top": top, "pw": pw, "ph": ph, "title": title,
            "ticks": ticks, "n_max": n_max, "series": out}


def scatter(points: list[tuple[str, float, float]], title: str, x_label: str, y_label: str) -> dict | None:
    """Scatter plot of ``(label, x, y)`` points with their labels, linear axes."""
    pts = [(n, x, y) for n, x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return None
    width, height, left, top, bottom, right = 420, 300, 58, 24, 40, 16
    pw, ph = width - left - right, height - top - bottom
    xs, ys = [x for _, x, _ in pts], [y for _, _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    xpad, ypad = (x1 - x0) * 0.06 or abs(x1) * 0.05 or 1.0, (y1 - y0) * 0.06 or abs(y1) * 0.05 or 1.0
    x0, x1, y0, y1 = x0 - xpad, x1 + xpad, y0 - ypad, y1 + ypad

    def px(v: float) -> float:
        return left + pw * (v - x0) / (x1 - x0)

    def py(v: float) -> float:
        return top + ph * (1 - (v - y0) / (y1 - y0))

    out = []
    for name, x, y in pts:
        right_half = px(x) > left + pw * 0.6  # label to the left of the point so that it stays inside
        out.append({"name": name, "xv": x, "yv": y, "x": px(x), "y": py(y), "tx": px(x) - 4 if right_half else px(x) + 4,
                    "anchor": "end" if right_half else "start"})
    return {"width": width, "height": height, "left": left, "top": top, "pw": pw, "ph": ph, "title": title,
            "x_label": x_label, "y_label": y_label, "color": PALETTE[0],
            "x_ticks": [{"x": px(t), "label": number(t, ".3g")} for t in _ticks(x0, x1, 4)],
            "y_ticks": [{"y": py(t), "label": number(t, ".3g")} for t in _ticks(y0, y1, 4)], "points": out}


# ---------------------------------------------------------------------------------------------
# sections: numbers for the templates


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    suffix = path.suffix.lower().lstrip(".")
    mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}.get(suffix, "image/png")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _image_cell(details: ResultDetails, path: str | None, alt: str) -> dict:
    if not path:
        return {"uri": None, "missing": None, "alt": alt}
    uri = _data_uri(details.resolve_path(path))
    return {"uri": uri, "missing": None if uri else Path(path).name, "alt": alt}


def _result_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per result (run, layer) of the scores frame, in store order: ``key, layer, task,
    unit, image, seed`` (categoricals kept: no per-row strings are built)."""
    if frame.empty:
        return frame[["key", "layer", "task", "unit", "image", "seed"]]
    key = frame["key"].cat.codes.to_numpy().astype(np.int64)
    layer = frame["layer"].cat.codes.to_numpy().astype(np.int64)
    _, first = np.unique(key * (len(frame["layer"].cat.categories) + 1) + layer, return_index=True)
    return frame.iloc[np.sort(first)][["key", "layer", "task", "unit", "image", "seed"]]


def _grids(results: pd.DataFrame, lb: Leaderboard, details: ResultDetails, max_images: int) -> dict:
    results = results.astype({"key": object, "layer": object, "unit": object, "image": object})
    units_all = sorted(results["unit"].unique())
    ranked = [o.unit for o in lb.overall if o.unit in set(units_all)]
    ranked += [u for u in units_all if u not in set(ranked)]
    shown = sorted(ranked[:MAX_GRID_UNITS])
    note = ""
    if len(units_all) > MAX_GRID_UNITS:
        note = (f"Image grids of the {MAX_GRID_UNITS} best-ranked architectures of {len(units_all)} "
                f"(first seed, first {max_images} images each); every number is in the tables above.")
    picked = []
    for unit in shown:
        rs = results[results["unit"] == unit]
        seed = int(rs["seed"].min())
        rs = rs[rs["seed"] == seed]
        images = list(dict.fromkeys(rs["image"]))[:max_images]
        picked.append((unit, seed, rs[rs["image"].isin(images)], list(dict.fromkeys(rs["layer"])), images))
    pairs = [(k, layer) for _, _, rs, _, _ in picked for k, layer in zip(rs["key"], rs["layer"], strict=True)]
    paths = details.paths(pairs)
    if not any(paths.values()):
        return {"units": [], "note": ""}
    out = []
    for unit, seed, rs, layers, images in picked:
        cell = {(img, layer): paths.get((k, layer), {}) for k, layer, img in zip(rs["key"], rs["layer"], rs["image"], strict=True)}
        kinds = sorted({kind for p in cell.values() for kind in p if kind not in ("result", "start")})
        rows = []
        for img in images:
            first = next((cell[(img, ly)] for ly in layers if (img, ly) in cell), {})
            cells = [_image_cell(details, first.get(k), f"{img} {k}") for k in kinds]
            cells += [_image_cell(details, cell.get((img, ly), {}).get("result"), f"{unit} {img} {ly}") for ly in layers]
            rows.append({"image": img, "cells": cells})
        out.append({"unit": unit, "seed": seed, "kinds": kinds, "layers": layers, "rows": rows})
    return {"units": out, "note": note}


def _mean_trace(traces: list[list[float]]) -> list[float]:
    """Mean over traces, each padded with its last value to the longest length."""
    traces = [t for t in traces if t]
    if not traces:
        return []
    n = max(len(t) for t in traces)
    arr = np.array([t + [t[-1]] * (n - len(t)) for t in traces], dtype=float)
    return [float(v) for v in arr.mean(axis=0)]


def _curves(results: pd.DataFrame, details: ResultDetails) -> tuple[list[dict], str]:
    """Per unit, one line per layer: the mean loss trace of its first :data:`MAX_TRACES` results
    (by seed, then image) of that layer; only those traces are read."""
    layers_in_order = list(dict.fromkeys(results["layer"].astype(object)))
    ranked = results.sort_values(["unit", "layer", "seed", "image"], kind="stable")
    picked = ranked.groupby(["unit", "layer"], sort=False, observed=True).head(MAX_TRACES)
    capped = len(picked) < len(results)
    picked = picked.astype({"key": object, "layer": object, "unit": object})
    traces = details.traces(list(zip(picked["key"], picked["layer"], strict=True)))
    by_unit: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for k, layer, unit in zip(picked["key"], picked["layer"], picked["unit"], strict=True):
        by_unit[unit][layer].append(traces.get((k, layer), []))
    charts = []
    for unit in sorted(by_unit):
        series = [(layer, _mean_trace(by_unit[unit][layer])) for layer in layers_in_order if layer in by_unit[unit]]
        chart = line_chart(series, unit)
        if chart:
            charts.append(chart)
    note = "Mean over images × seeds, one line per layer; log scale."
    if capped:
        note = (f"Mean over the first {MAX_TRACES} results (by seed, then image) of each architecture and layer, "
                "one line per layer; log scale.")
    return charts, note


def _box(lb: Leaderboard, task: str, metric: str, colors: dict[str, str]) -> dict | None:
    """Per layer, per unit: one value per seed (mean over that seed's images)."""
    f = lb.frame
    rows = f[(f["task"] == task) & (f["scored_metric"] == metric)]
    if rows.empty:
        return None
    layer_codes = rows["layer"].cat.codes.to_numpy()
    layers = [rows["layer"].cat.categories[c] for c in dict.fromkeys(layer_codes.tolist())]  # store order
    means = rows.groupby(["layer", "unit", "seed"], sort=True, observed=True)["value"].mean()
    units = sorted({str(u) for (_, u, _) in means.index})
    by = defaultdict(list)
    for (layer, unit, _seed), v in means.items():
        by[(str(layer), str(unit))].append(float(v))
    groups = [(layer, [(u, by.get((layer, u), [])) for u in units]) for layer in layers]
    return box_plot(groups, colors, f"{task} · {metric}: spread over seeds (one point per seed: mean over images)")


def _correlation(c) -> dict:
    """Rows, texts and scatter plots of a :class:`~archbench.report.correlate.Correlation`."""
    from archbench.report.correlate import (
        SELECTION_NOTE,
        best_text,
        comparator_text,
        delta_text,
        rho_ci_text,
        short_label,
    )

    rows = []
    for r in c.rows:
        ci = f"[{number(r.ci_low, '.2f', '')}, {number(r.ci_high, '.2f', '')}]" if r.ci_low is not None else ""
        best = f"{short_label(r.best_baseline)} ({number(r.best_baseline_spearman, '.3f', '')})" if r.best_baseline else ""
        rows.append({"row": r, "ci": ci, "n": f"{r.n}" + (f" ({r.n_approximate}≈)" if r.n_approximate else ""),
                     "delta": delta_text(r), "best": best, "minus_best": best_text(r),
                     "minus_comparator": comparator_text(r)})
    plots = []
    for r in c.rows:
        direction = "higher" if r.higher_is_better else "lower"
        where = "" if r.layer in (ALL_LAYERS, "") else " at " + r.layer
        init = f" ({r.init})" if r.init else ""
        p = scatter([(q.unit, q.truth, q.score) for q in r.points],
                    f"{r.task} / {r.metric}{where}{init}: ρ = {number(r.spearman, '.3f', '')}", c.truth_label,
                    f"{r.metric} ({direction} is better)")
        if p:
            plots.append(p)
    unmatched = "; ".join(f"{u} ({why})" for u, why in sorted(c.unmatched.items()))
    selection = []
    for s in c.selection:
        selection.append({"s": s, "in_sample": rho_ci_text(s.in_sample, s.in_sample_ci_low, s.in_sample_ci_high),
                          "cv": rho_ci_text(s.cv, s.cv_ci_low, s.cv_ci_high), "minus_comparator": comparator_text(s),
                          "folds": "; ".join(f"{label} ({', '.join(f)})" for label, f in s.fold_choices.items())})
    by_family: dict[str, list[str]] = defaultdict(list)
    for arch, fam in c.families.items():
        by_family[fam].append(arch)
    families = "; ".join(f"{f} ({', '.join(a)})" for f, a in sorted(by_family.items()))
    return {"truth": c.truth, "truth_description": c.truth_description, "rows": rows, "plots": plots,
            "unmatched": unmatched, "comparator": c.comparator or "comparator",
            "comparator_short": short_label(c.comparator) or "comparator", "selection": selection,
            "selection_note": SELECTION_NOTE.format(boot="resamples of the architectures, seed 0"),
            "families": families, "cv_left_out": "; ".join(f"{k} ({v})" for k, v in sorted(c.cv_left_out.items()))}


def _claims(results) -> dict:
    """The rows of the Claims section (:mod:`archbench.report.claims`): one per pair of arms."""
    from archbench.report.claims import HEAD, RULE, pair_cells

    rows = []
    for cr in results:
        c = cr.claim
        for k, pr in enumerate(cr.pairs):
            rows.append({"first": k == 0, "id": c.id, "task": c.task, "metric": c.metric, "judge": cr.judge,
                         "text": c.text, "verdict": cr.verdict,
                         "verdict_class": cr.verdict.split(":")[0].replace(" ", "-"), "cells": pair_cells(pr)})
    return {"rule": RULE, "head": HEAD, "rows": rows}


def to_html(lb: Leaderboard, store=None, max_images: int = 6, correlation=None) -> str:
    """The self-contained HTML report (see the module docstring); with ``correlation``
    (:class:`archbench.report.correlate.Correlation`) also a section on predicting the ground truth.
    ``store``: where image paths and loss traces are read (default: the leaderboard's own
    :attr:`~archbench.report.leaderboard.Leaderboard.details`)."""
    details: ResultDetails = StoreDetails(store) if store is not None else lb.details
    units = sorted(set(lb.units.values()))
    colors = {u: PALETTE[i % len(PALETTE)] for i, u in enumerate(units)}
    task_names = sorted({b.task for b in lb.boards} | set(lb.frame["task"].astype(object).unique()))
    result_rows = _result_rows(lb.frame)
    tasks = []
    for task in task_names:
        boards = [b for b in lb.boards if b.task == task]
        metrics: list[str] = list(dict.fromkeys(b.metric for b in boards))
        entries = []
        for metric in metrics:
            b_all = next((b for b in boards if b.metric == metric and b.layer == ALL_LAYERS), None)
            entries.append({
                "metric": metric,
                "direction": "higher is better" if (b_all and b_all.higher_is_better) else "lower is better",
                "all": b_all,
                "box": _box(lb, task, metric, colors),
                "per_layer": [b for b in boards if b.metric == metric and b.layer != ALL_LAYERS],
            })
        results = result_rows[(result_rows["task"] == task).to_numpy()]
        curves, curves_note = _curves(results, details)
        tasks.append({"name": task, "metrics": entries, "curves": curves, "curves_note": curves_note,
                      "grids": _grids(results, lb, details, max_images)})
    failed_note = ""
    if len(lb.failed) > MAX_FAILED:
        failed_note = f"The first {MAX_FAILED} of {len(lb.failed)} failed jobs (all are in the JSON report)."
    context: dict[str, Any] = {
        "lb": lb,
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(lb.versions.items())),
        "correlation": _correlation(correlation) if correlation is not None else None,
        "claims": _claims(lb.claims) if lb.claims else None,
        "tasks": tasks,
        "failed": lb.failed[:MAX_FAILED],
        "failed_note": failed_note,
        "stall_note": stall_note(lb).replace("`", ""),
    }
    return environment().get_template("report.html.j2").render(context)
