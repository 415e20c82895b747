"""The one table of the issue 18 study: every score, proxy and size baseline with its in-sample ρ,
the cross-validated ρ of every choice made from the data, the stalled results and the wall time.

It reads what ``archbench correlate --format json`` wrote for the study's store (and, for the
iteration check, for the other budget's store) and the wall times measured by ``/usr/bin/time``,
and writes Markdown::

    python benchmarks/accuracy_study.py --study reports/accuracy/study-30.json --study-label "30 iterations" \\
        --other reports/accuracy/study-60.json --other-label "60 iterations" \\
        --time "reconstruct, 30 iterations=312" --time "proxies=150" ... -o reports/accuracy/README.md

Nothing is recomputed: every number is the correlate report's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _f(v: float | None, fmt: str = ".3f") -> str:
    return "" if v is None else format(v, fmt)


def _ci(v, lo, hi, digits: int = 3) -> str:
    if v is None:
        return ""
    return f"{v:.{digits}f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None else "")


def _diff(v, lo, hi) -> str:
    if v is None:
        return ""
    return f"{v:+.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None else "")


def _minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


def table(study: dict, costs: dict[str, str], primary: list[str]) -> list[str]:
    comp = study.get("comparator") or "comparator"
    lines = [
        f"| score | kind | cost (26 CNNs, 2 cores) | stalled | in-sample ρ [95% CI] | cross-validated ρ [95% CI] "
        f"| ρ − ρ {comp} [95% CI] |",
        "|---|---|---|---:|---|---|---|",
    ]
    for s in study["selection"]:
        lines.append(
            f"| **chosen by {s['procedure']}** (on all 26: {s['chosen']}) | selection | as its candidates | | "
            f"{_ci(s['in_sample'], s['in_sample_ci_low'], s['in_sample_ci_high'])} | "
            f"**{_ci(s['cv'], s['cv_ci_low'], s['cv_ci_high'])}** | "
            f"{_diff(s['minus_comparator'], s['minus_comparator_ci_low'], s['minus_comparator_ci_high'])} |")
    rows = sorted(study["rows"], key=lambda r: (r["label"] not in primary, ["visualisation", "proxy", "size", "overall"]
                                                .index(r["kind"]), -(r["spearman"] or -9)))
    for r in rows:
        if r["kind"] == "overall":
            continue
        name = r["label"] + (" (primary)" if r["label"] in primary else "")
        stalled = "" if r["stalled"] is None else str(r["stalled"])
        lines.append(
            f"| {name} | {r['kind']} | {costs.get(r['kind'], '')} | {stalled} | "
            f"{_ci(r['spearman'], r['ci_low'], r['ci_high'])} | (fixed: = in-sample) | "
            f"{_diff(r['minus_comparator'], r['minus_comparator_ci_low'], r['minus_comparator_ci_high'])} |")
    return lines


def iterations_table(study: dict, other: dict, study_label: str, other_label: str) -> list[str]:
    a = {r["label"]: r for r in study["rows"] if r["kind"] == "visualisation"}
    b = {r["label"]: r for r in other["rows"] if r["kind"] == "visualisation"}
    lines = [f"| score | ρ, {study_label} | ρ, {other_label} | difference | stalled ({study_label} / {other_label}) |",
             "|---|---:|---:|---:|---|"]
    diffs = []
    for label in a:
        if label not in b:
            continue
        d = None if a[label]["spearman"] is None or b[label]["spearman"] is None else a[label]["spearman"] - b[label]["spearman"]
        if d is not None:
            diffs.append(abs(d))
        lines.append(f"| {label} | {_f(a[label]['spearman'])} | {_f(b[label]['spearman'])} | {_f(d, '+.3f')} | "
                     f"{a[label]['stalled']} / {b[label]['stalled']} |")
    lines += ["", f"Largest |difference| over the {len(diffs)} visualisation rows: {max(diffs):.3f}."]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", type=Path, required=True, help="correlate JSON of the study's store")
    ap.add_argument("--study-label", default="study")
    ap.add_argument("--other", type=Path, help="correlate JSON of the other iteration budget's store")
    ap.add_argument("--other-label", default="other")
    ap.add_argument("--cost", action="append", default=[], help="KIND=TEXT: the cost column of a kind of row")
    ap.add_argument("--primary", action="append", default=[], help="label of a primary score")
    ap.add_argument("--head", type=Path, help="Markdown to put before the tables")
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args(argv)
    study = json.loads(args.study.read_text())
    costs = dict(c.split("=", 1) for c in args.cost)
    out = [args.head.read_text().rstrip("\n"), ""] if args.head else []
    out += ["## Every score and every choice, in one table", ""]
    out += table(study, costs, args.primary)
    if args.other:
        out += ["", f"## {args.study_label} against {args.other_label}", ""]
        out += iterations_table(study, json.loads(args.other.read_text()), args.study_label, args.other_label)
    args.out.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
