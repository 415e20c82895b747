"""The HTML report: one self-contained file (no network access needed to view it).

Contents: overall ranking; per task and metric a sortable leaderboard (click a header), a box plot
of the spread over seeds (each point: one seed's mean over images; as the paper's Figure 3), the
per-layer boards; loss-versus-iteration curves (mean over images and seeds, one line per layer);
and per-architecture image grids (target, then the result from each layer; first seed).

Images are embedded as base64 ``data:`` URIs, CSS and JavaScript are inline, plots are inline SVG
drawn here. Every name and string from the data goes through :func:`html.escape`, so an
architecture called ``<script>alert(1)</script>`` shows as text. The script sets
``data-archbench-ready`` on ``<html>`` once the tables are sortable (and
``data-archbench-error`` if anything throws), which the tests read from the rendered DOM.
"""

from __future__ import annotations

import base64
import html
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from archbench.report.formats import fmt, fmt_p, stars
from archbench.report.leaderboard import ALL_LAYERS, Board, Leaderboard

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f3f3f3;cursor:pointer;user-select:none}
td.name,th.name{text-align:left}tr.ref td{background:#fff8dc}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
.meta{color:#555;font-size:13px}.note{color:#555;font-size:12px}
.grid img{width:96px;height:96px;image-rendering:pixelated;display:block}
.grid td{text-align:center;vertical-align:top}.missing{color:#a00;font-size:11px}
.plots{display:flex;flex-wrap:wrap;gap:16px}svg{background:#fff;border:1px solid #eee}
.fail td{color:#a00}details{margin:8px 0}
"""

JS = """
(function(){
  try {
    function cellValue(td){
      var v = td.getAttribute('data-v');
      if (v !== null && v !== '') { var f = parseFloat(v); if (!isNaN(f)) return f; }
      return td.textContent.trim().toLowerCase();
    }
    function sortTable(table, col, asc){
      var tbody = table.tBodies[0];
      var rows = Array.prototype.slice.call(tbody.rows);
      rows.sort(function(a, b){
        var x = cellValue(a.cells[col]), y = cellValue(b.cells[col]);
        var bothNum = (typeof x === 'number') && (typeof y === 'number');
        var c = bothNum ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){ tbody.appendChild(r); });
      var ths = table.tHead.rows[0].cells;
      for (var i = 0; i < ths.length; i++) { ths[i].classList.remove('sorted-asc', 'sorted-desc'); }
      ths[col].classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      table.setAttribute('data-sorted-by', String(col) + (asc ? ':asc' : ':desc'));
    }
    var tables = document.querySelectorAll('table.sortable');
    tables.forEach(function(table){
      var ths = table.tHead.rows[0].cells;
      Array.prototype.forEach.call(ths, function(th, col){
        th.addEventListener('click', function(){
          var asc = !th.classList.contains('sorted-asc');
          sortTable(table, col, asc);
        });
      });
      sortTable(table, 0, true);  // by rank: proves the sorting code runs
    });
    document.documentElement.setAttribute('data-archbench-ready', String(tables.length));
  } catch (e) {
    document.documentElement.setAttribute('data-archbench-error', String(e));
  }
})();
"""

ONERROR = (
    "window.addEventListener('error',function(e){document.documentElement.setAttribute("
    "'data-archbench-error',String(e.message));});"
)


def esc(text: object) -> str:
    """HTML-escaped text (quotes included)."""
    return html.escape(str(text), quote=True)


def _num(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v))


# ---------------------------------------------------------------------------------------------
# SVG plots


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def box_plot_svg(groups: list[tuple[str, list[tuple[str, list[float]]]]], colors: dict[str, str], title: str) -> str:
    """Box plots: for each group (layer), one box per unit over its values (quartiles, min–max
    whiskers, points). ``groups``: ``[(group label, [(unit, values), ...]), ...]``."""
    all_vals = [v for _, boxes in groups for _, vals in boxes for v in vals]
    if not all_vals:
        return ""
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

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="16" font-size="12">{esc(title)}</text>']
    for t in _ticks(lo, hi):
        parts.append(f'<line x1="{left - 4}" x2="{width - 10}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" font-size="10" text-anchor="end">{esc(fmt(t, 3))}</text>')
    x = left + 4
    for label, boxes in groups:
        gx0 = x
        for unit, vals in boxes:
            c = colors.get(unit, "#333")
            if vals:
                q1, med, q3 = (float(q) for q in np.percentile(vals, [25, 50, 75]))
                vmin, vmax = min(vals), max(vals)
                cx = x + bw / 2
                parts.append(f'<g><title>{esc(unit)} · {esc(label)}: median {esc(fmt(med))}, n={len(vals)}</title>')
                parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(vmin):.1f}" y2="{y(vmax):.1f}" stroke="{c}"/>')
                parts.append(f'<rect x="{x}" y="{y(q3):.1f}" width="{bw}" height="{max(y(q1) - y(q3), 1):.1f}" '
                             f'fill="{c}" fill-opacity="0.25" stroke="{c}"/>')
                parts.append(f'<line x1="{x}" x2="{x + bw}" y1="{y(med):.1f}" y2="{y(med):.1f}" stroke="{c}" stroke-width="2"/>')
                for v in vals:
                    parts.append(f'<circle cx="{cx:.1f}" cy="{y(v):.1f}" r="2" fill="{c}"/>')
                parts.append("</g>")
            x += bw + 6
        group_w = x - gx0
        short = label if len(label) * 6 <= group_w + gap else label[: max(3, int((group_w + gap) / 6) - 1)] + "…"
        parts.append(f'<text x="{(gx0 + x) / 2:.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle">'
                     f"<title>{esc(label)}</title>{esc(short)}</text>")
        x += gap
    legend_x = left + plot_w + 10
    units = [u for u, _ in groups[0][1]] if groups else []
    for k, unit in enumerate(units):
        c = colors.get(unit, "#333")
        yy = top + 16 * k
        parts.append(f'<rect x="{legend_x}" y="{yy}" width="10" height="10" fill="{c}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{yy + 9}" font-size="11">{esc(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart_svg(series: list[tuple[str, list[float]]], title: str, colors: list[str] | None = None) -> str:
    """Loss-versus-iteration chart, log10 y axis when every value is positive."""
    series = [(n, ys) for n, ys in series if ys]
    if not series:
        return ""
    vals = [v for _, ys in series for v in ys if v is not None and math.isfinite(v)]
    if not vals:
        return ""
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

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="14" font-size="12">{esc(title)}</text>',
             f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#999"/>',
             f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/>',
             f'<text x="{left + pw / 2}" y="{height - 6}" font-size="10" text-anchor="middle">iteration</text>']
    for t in _ticks(lo, hi, 4):
        label = fmt(10**t, 2) if log_y else fmt(t, 3)
        yy = top + ph * (1 - (t - lo) / (hi - lo))
        parts.append(f'<text x="{left - 4}" y="{yy + 3:.1f}" font-size="9" text-anchor="end">{esc(label)}</text>')
    parts.append(f'<text x="{left + pw}" y="{top + ph + 12}" font-size="9" text-anchor="end">{n_max}</text>')
    colors = colors or PALETTE
    for k, (name, ys) in enumerate(series):
        c = colors[k % len(colors)]
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(ys) if v is not None and math.isfinite(v) and (v > 0 or not log_y))
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{pts}"><title>{esc(name)}</title></polyline>')
        parts.append(f'<text x="{left + pw + 6}" y="{top + 10 + 12 * k}" font-size="10" fill="{c}">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def scatter_svg(points: list[tuple[str, float, float]], title: str, x_label: str, y_label: str) -> str:
    """Scatter plot of ``(label, x, y)`` points with their labels, linear axes."""
    pts = [(n, x, y) for n, x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return ""
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

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="14" font-size="12">{esc(title)}</text>',
             f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#999"/>',
             f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/>',
             f'<text x="{left + pw / 2}" y="{height - 6}" font-size="10" text-anchor="middle">{esc(x_label)}</text>',
             f'<text x="12" y="{top + ph / 2}" font-size="10" text-anchor="middle" '
             f'transform="rotate(-90 12 {top + ph / 2})">{esc(y_label)}</text>']
    for t in _ticks(x0, x1, 4):
        parts.append(f'<text x="{px(t):.1f}" y="{top + ph + 12}" font-size="9" text-anchor="middle">{esc(fmt(t, 3))}</text>')
    for t in _ticks(y0, y1, 4):
        parts.append(f'<text x="{left - 4}" y="{py(t) + 3:.1f}" font-size="9" text-anchor="end">{esc(fmt(t, 3))}</text>')
    for name, x, y in pts:
        right_half = px(x) > left + pw * 0.6  # label to the left of the point so that it stays inside
        tx, anchor = (px(x) - 4, "end") if right_half else (px(x) + 4, "start")
        parts.append(f'<g><title>{esc(name)}: {esc(fmt(x))}, {esc(fmt(y))}</title>'
                     f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{PALETTE[0]}"/>'
                     f'<text x="{tx:.1f}" y="{py(y) - 3:.1f}" font-size="8" fill="#555" text-anchor="{anchor}">{esc(name)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# sections


def _board_table(b: Board, anchor: str) -> str:
    cols = ["rank", "architecture", "mean", "CI low", "CI high", "std", "n"]
    if b.reference:
        cols += ["p (Holm)", "p raw"]
    out = [f'<table class="sortable board" id="{esc(anchor)}" data-task="{esc(b.task)}" data-metric="{esc(b.metric)}" '
           f'data-layer="{esc(b.layer)}"><thead><tr>']
    out += [f'<th class="{"name" if c == "architecture" else ""}">{esc(c)}</th>' for c in cols]
    out.append("</tr></thead><tbody>")
    for e in b.entries:
        cls = ' class="ref"' if e.is_reference else ""
        out.append(f"<tr{cls}>")
        out.append(f'<td data-v="{_num(e.rank)}">{esc(fmt(e.rank, 3))}</td>')
        out.append(f'<td class="name">{esc(e.unit)}{" <em>(reference)</em>" if e.is_reference else ""}</td>')
        for v in (e.mean, e.ci_low, e.ci_high, e.std):
            out.append(f'<td data-v="{_num(v)}">{esc(fmt(v))}</td>')
        out.append(f'<td data-v="{e.n}">{e.n}</td>')
        if b.reference:
            if e.is_reference:
                out.append('<td data-v="">ref</td><td data-v="">ref</td>')
            else:
                out.append(f'<td data-v="{_num(e.p_holm)}">{esc(fmt_p(e.p_holm) + stars(e.p_holm))}</td>')
                out.append(f'<td data-v="{_num(e.p_value)}">{esc(fmt_p(e.p_value))}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    suffix = path.suffix.lower().lstrip(".")
    mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}.get(suffix, "image/png")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _img_cell(store, path: str | None, alt: str) -> str:
    if not path:
        return '<td><span class="missing">—</span></td>'
    p = store.resolve_path(path) if store is not None else Path(path)
    uri = _data_uri(p)
    if uri is None:
        return f'<td><span class="missing">missing: {esc(Path(path).name)}</span></td>'
    return f'<td><img src="{uri}" alt="{esc(alt)}" title="{esc(alt)}"></td>'


def _grids(lb: Leaderboard, task: str, store, max_images: int) -> str:
    rows = [r for r in lb.observations if r.task == task]
    if not any(r.paths for r in rows):
        return '<p class="note">No output images stored for this task (sweep without an image folder).</p>'
    by_unit: dict[str, list] = defaultdict(list)
    for r in rows:
        by_unit[lb.units[(r.arch, r.init)]].append(r)
    out = []
    for unit in sorted(by_unit):
        rs = by_unit[unit]
        seed = min(r.seed for r in rs)
        rs = [r for r in rs if r.seed == seed]
        layers: list[str] = []
        images: list[str] = []
        for r in rs:
            if r.layer not in layers:
                layers.append(r.layer)
            if r.image not in images:
                images.append(r.image)
        images = images[:max_images]
        cell = {(r.image, r.layer): r for r in rs}
        ref_kinds = sorted({k for r in rs for k in r.paths if k not in ("result", "start")})
        out.append(f'<h4>{esc(unit)} <span class="note">seed {seed}</span></h4><table class="grid"><thead><tr><th class="name">image</th>')
        out += [f"<th>{esc(k)}</th>" for k in ref_kinds]
        out += [f"<th>{esc(layer)}</th>" for layer in layers]
        out.append("</tr></thead><tbody>")
        for img in images:
            first = next((cell[(img, ly)] for ly in layers if (img, ly) in cell), None)
            out.append(f'<tr><td class="name">{esc(img)}</td>')
            for k in ref_kinds:
                out.append(_img_cell(store, first.paths.get(k) if first else None, f"{img} {k}"))
            for ly in layers:
                r = cell.get((img, ly))
                out.append(_img_cell(store, r.paths.get("result") if r else None, f"{unit} {img} {ly}"))
            out.append("</tr>")
        out.append("</tbody></table>")
    return "".join(out)


def _mean_trace(traces: list[list[float]]) -> list[float]:
    """Mean over traces, each padded with its last value to the longest length."""
    traces = [t for t in traces if t]
    if not traces:
        return []
    n = max(len(t) for t in traces)
    arr = np.array([t + [t[-1]] * (n - len(t)) for t in traces], dtype=float)
    return [float(v) for v in arr.mean(axis=0)]


def _curves(lb: Leaderboard, task: str) -> str:
    rows = [r for r in lb.observations if r.task == task]
    by_unit: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_unit[lb.units[(r.arch, r.init)]][r.layer].append(list(r.loss_trace))
    charts = []
    for unit in sorted(by_unit):
        series = [(layer, _mean_trace(ts)) for layer, ts in by_unit[unit].items()]
        svg = line_chart_svg(series, unit)
        if svg:
            charts.append(f'<div class="plot">{svg}</div>')
    return '<div class="plots">' + "".join(charts) + "</div>" if charts else '<p class="note">No loss traces.</p>'


def _box(lb: Leaderboard, task: str, metric: str, colors: dict[str, str]) -> str:
    """Per layer, per unit: one value per seed (mean over that seed's images)."""
    acc: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    layers: list[str] = []
    for r in lb.observations:
        if r.task != task or r.metrics.get(metric) is None:
            continue
        if r.layer not in layers:
            layers.append(r.layer)
        acc[(r.layer, lb.units[(r.arch, r.init)], r.seed)].append(float(r.metrics[metric]))
    units = sorted({u for (_, u, _) in acc})
    groups = []
    for layer in layers:
        boxes = []
        for u in units:
            vals = [float(np.mean(v)) for (ly, uu, _s), v in sorted(acc.items()) if ly == layer and uu == u]
            boxes.append((u, vals))
        groups.append((layer, boxes))
    return box_plot_svg(groups, colors, f"{task} · {metric}: spread over seeds (one point per seed: mean over images)")


def _correlation_section(c) -> str:
    """Correlations with a ground truth (:mod:`archbench.report.correlate`): table and scatter plots."""
    from archbench.report.correlate import delta_text, fnum, fpval

    h = [f"<h2 id=\"truth\">Does the score predict {esc(c.truth)}?</h2>",
         f'<p class="note">Ground truth: {esc(c.truth_description)}. ρ: Spearman over architectures between the '
         "mean score (oriented so that higher is better) and the truth; CI: 95% bootstrap over architectures; "
         "p: two-sided permutation test, Holm-corrected over the rows; τ: Kendall's τ-b; ρ params / ρ GFLOPs: "
         "the truth against the trained model's size over the same architectures (baselines to beat); ρ width (with a "
         "stride level): the truth against the channel count of the tap scored; ρ − ρ GFLOPs: paired bootstrap "
         "interval, above 0 when the score beats GFLOPs.</p>",
         '<table class="sortable" id="correlation"><thead><tr><th>task</th><th>metric</th><th>layer</th><th>init</th><th>n</th>'
         "<th>ρ</th><th>95% CI</th><th>p (Holm)</th><th>τ</th><th>ρ params</th><th>ρ GFLOPs</th><th>ρ width</th><th>ρ − ρ GFLOPs [95% CI]</th></tr></thead><tbody>"]
    for r in c.rows:
        ci = f"[{fnum(r.ci_low, 2)}, {fnum(r.ci_high, 2)}]" if r.ci_low is not None else ""
        n = f"{r.n}" + (f" ({r.n_approximate}≈)" if r.n_approximate else "")
        h.append(f"<tr><td>{esc(r.task)}</td><td>{esc(r.metric)}</td><td>{esc(r.layer)}</td><td>{esc(r.init)}</td><td data-v=\"{r.n}\">{esc(n)}</td>"
                 f"<td data-v=\"{_num(r.spearman)}\">{esc(fnum(r.spearman))}</td><td>{esc(ci)}</td>"
                 f"<td data-v=\"{_num(r.p_holm)}\">{esc(fpval(r.p_holm))}</td><td data-v=\"{_num(r.kendall)}\">{esc(fnum(r.kendall))}</td>"
                 f"<td data-v=\"{_num(r.params_spearman)}\">{esc(fnum(r.params_spearman))}</td>"
                 f"<td data-v=\"{_num(r.gflops_spearman)}\">{esc(fnum(r.gflops_spearman))}</td>"
                 f"<td data-v=\"{_num(r.channels_spearman)}\">{esc(fnum(r.channels_spearman))}</td>"
                 f"<td data-v=\"{_num(r.minus_gflops)}\">{esc(delta_text(r))}</td></tr>")
    h.append("</tbody></table>")
    plots = []
    for r in c.rows:
        direction = "higher" if r.higher_is_better else "lower"
        svg = scatter_svg([(p.unit, p.truth, p.score) for p in r.points],
                          f"{r.task} / {r.metric}{'' if r.layer == 'all' else ' at ' + r.layer} ({r.init}): ρ = {fnum(r.spearman)}", c.truth_label,
                          f"{r.metric} ({direction} is better)")
        if svg:
            plots.append(f'<div class="plot">{svg}</div>')
    if plots:
        h.append("<details open><summary>score against truth, one point per architecture</summary>")
        h.extend(plots)
        h.append("</details>")
    if c.unmatched:
        h.append(f"<p class=\"note\">Left out (no {esc(c.truth)} value): "
                 + esc("; ".join(f"{u} ({why})" for u, why in sorted(c.unmatched.items()))) + "</p>")
    return "\n".join(h)


def to_html(lb: Leaderboard, store=None, max_images: int = 6, correlation=None) -> str:
    """The self-contained HTML report (see the module docstring); with ``correlation``
    (:class:`archbench.report.correlate.Correlation`) also a section on predicting the ground truth."""
    units = sorted(set(lb.units.values()))
    colors = {u: PALETTE[i % len(PALETTE)] for i, u in enumerate(units)}
    tasks = sorted({b.task for b in lb.boards} | {r.task for r in lb.observations})
    h: list[str] = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{esc(lb.title)}</title>",
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        f"<style>{CSS}</style><script>{ONERROR}</script></head><body>",
        f"<h1>{esc(lb.title)}</h1>",
        f'<p class="meta">Generated {esc(lb.generated)} · {len(lb.jobs)} jobs ({len(lb.failed)} failed) · '
        f"devices: {esc(', '.join(lb.devices) or '—')} · reference: {esc(lb.reference or '—')} · "
        + esc(", ".join(f"{k} {v}" for k, v in sorted(lb.versions.items())))
        + "</p>",
        '<p class="note">Means over images × seeds; CI: 95% percentile bootstrap of the mean; p: two-sided Wilcoxon '
        "signed-rank test against the reference over matched (image, seed) pairs, Holm-corrected per table "
        "(* &lt; 0.05, ** &lt; 0.01). Click a column header to sort."
        + (" " + esc(lb.judge_note) if lb.judge_note else "") + "</p>",
    ]
    if lb.overall:
        h.append('<h2>Overall</h2><table class="sortable" id="overall"><thead><tr><th>rank</th>'
                 '<th class="name">architecture</th><th>mean rank</th><th>tables</th></tr></thead><tbody>')
        for o in lb.overall:
            cls = ' class="ref"' if o.unit == lb.reference else ""
            h.append(f'<tr{cls}><td data-v="{_num(o.rank)}">{esc(fmt(o.rank, 3))}</td><td class="name">{esc(o.unit)}</td>'
                     f'<td data-v="{_num(o.mean_rank)}">{esc(fmt(o.mean_rank, 3))}</td><td data-v="{o.boards}">{o.boards}</td></tr>')
        h.append("</tbody></table>")
    if lb.claims:
        from archbench.report.claims import claims_html

        h.append(claims_html(lb.claims, esc))
    if correlation is not None:
        h.append(_correlation_section(correlation))
    for ti, task in enumerate(tasks):
        h.append(f'<h2 id="task-{ti}">Task: {esc(task)}</h2>')
        boards = [b for b in lb.boards if b.task == task]
        metrics = []
        for b in boards:
            if b.metric not in metrics:
                metrics.append(b.metric)
        for mi, metric in enumerate(metrics):
            b_all = next((b for b in boards if b.metric == metric and b.layer == ALL_LAYERS), None)
            direction = "higher is better" if (b_all and b_all.higher_is_better) else "lower is better"
            h.append(f"<h3>{esc(metric)} <span class=\"note\">({direction}; mean over layers)</span></h3>")
            if b_all:
                h.append(_board_table(b_all, f"board-{ti}-{mi}-all"))
            box = _box(lb, task, metric, colors)
            if box:
                h.append(f'<div class="plot">{box}</div>')
            per_layer = [b for b in boards if b.metric == metric and b.layer != ALL_LAYERS]
            if per_layer:
                h.append(f"<details><summary>{esc(metric)} per layer</summary>")
                for li, b in enumerate(per_layer):
                    h.append(f"<h4>{esc(b.layer)}</h4>")
                    h.append(_board_table(b, f"board-{ti}-{mi}-{li}"))
                h.append("</details>")
        h.append(f"<h3>Loss versus iteration ({esc(task)})</h3>"
                 '<p class="note">Mean over images × seeds, one line per layer; log scale.</p>')
        h.append(_curves(lb, task))
        h.append(f"<h3>Images ({esc(task)}): target and result by layer</h3>")
        h.append(_grids(lb, task, store, max_images))
    if lb.failed:
        h.append('<h2>Failed jobs</h2><table class="fail"><thead><tr><th class="name">architecture</th><th>init</th>'
                 '<th>seed</th><th>task</th><th>image</th><th class="name">reason</th></tr></thead><tbody>')
        for j in lb.failed:
            h.append(f'<tr><td class="name">{esc(j.arch)}</td><td>{esc(j.init)}</td><td>{j.seed}</td><td>{esc(j.task)}</td>'
                     f'<td>{esc(j.image)}</td><td class="name">{esc(j.error or "")}</td></tr>')
        h.append("</tbody></table>")
    h.append(f"<script>{JS}</script></body></html>")
    return "\n".join(h)
