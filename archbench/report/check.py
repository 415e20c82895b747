"""``archbench check``: compare a suite's current scores with a baseline, and say why a score moved.

A score **moved** when ``|current − baseline| > tolerance``, its tolerance coming from the noise
measured when the baseline was saved (:mod:`archbench.report.noise`); the metric's direction
labels it ``worse`` or ``better``. The check fails on a worse gating score, on a baseline score
with no current result (``missing``) and -- unless improvements are allowed -- on a better gating
score (the baseline is then stale). ``final_loss`` moves are listed as ``moved`` and never fail.
Scores new since the baseline are listed, not failed. Before the table, the check names what
differs between the machine that saved the baseline and this one (:func:`fingerprint_differences`).

A suite's **claims** (:mod:`archbench.report.claims`) gate too: a claim whose verdict flips between
``supported`` and ``contradicted`` fails the check; other changes of verdict are listed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from archbench.escaping import md_cell
from archbench.report.baseline import direction
from archbench.report.noise import LOSS, score_key


@dataclass
class CheckRow:
    """One compared score (``metric`` is the scored name, e.g. ``gram@trained-vgg16``)."""

    task: str
    arch: str
    init: str
    layer: str
    metric: str
    baseline: float | None
    current: float | None
    tolerance: float
    status: str  # ok, worse, better, moved (final_loss), missing, new
    noise: dict[str, Any] = field(default_factory=dict)

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def ratio(self) -> float | None:
        """``|Δ| / tolerance`` (how many tolerances the score moved)."""
        d = self.delta
        return None if d is None or self.tolerance <= 0 else abs(d) / self.tolerance

    def why(self) -> str:
        """Why the tolerance is what it is: the measured noise behind it."""
        parts = []
        if self.noise.get("kernels") is not None:
            parts.append(f"kernels {self.noise['kernels']:.2g}")
        if self.noise.get("seeds") is not None:
            parts.append(f"seeds {self.noise['seeds']:.2g}")
        return ", ".join(parts) or "floor"


@dataclass
class ClaimRow:
    """One claim's verdict then and now; ``status``: ok, flipped (fails), changed, missing, new."""

    id: str
    baseline: str | None
    current: str | None
    status: str


DEFINITE = {"supported", "contradicted"}


def compare_claims(saved: list[dict[str, Any]], current: list[Any]) -> list[ClaimRow]:
    """Verdicts of the baseline's claims (``saved``) against ``current`` claim results."""
    now = {c.id: c.verdict for c in current}
    rows = []
    for c in saved:
        new = now.pop(c["id"], None)
        if new is None:
            rows.append(ClaimRow(c["id"], c["verdict"], None, "missing"))
        elif new == c["verdict"]:
            rows.append(ClaimRow(c["id"], c["verdict"], new, "ok"))
        else:
            flipped = {c["verdict"], new} == DEFINITE
            rows.append(ClaimRow(c["id"], c["verdict"], new, "flipped" if flipped else "changed"))
    rows += [ClaimRow(cid, None, v, "new") for cid, v in now.items()]
    return rows


@dataclass
class CheckReport:
    """Outcome of comparing current scores (and claims) with a baseline."""

    suite: str
    rows: list[CheckRow] = field(default_factory=list)
    allow_improvements: bool = False
    machine_differences: list[str] = field(default_factory=list)
    configuration_changed: bool = False
    claims: list[ClaimRow] = field(default_factory=list)

    @property
    def moved(self) -> list[CheckRow]:
        return [r for r in self.rows if r.status != "ok"]

    @property
    def failing(self) -> list[CheckRow]:
        bad = {"worse", "missing"} | (set() if self.allow_improvements else {"better"})
        return [r for r in self.rows if r.status in bad]

    @property
    def failing_claims(self) -> list[ClaimRow]:
        return [c for c in self.claims if c.status == "flipped"]

    @property
    def passed(self) -> bool:
        return not self.failing and not self.failing_claims

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = defaultdict(int)
        for r in self.rows:
            c[r.status] += 1
        return dict(c)


def current_means(store: Any, keys: list[str]) -> dict[tuple, float]:
    """Score key -> mean over (image, seed) of the runs ``keys`` in ``store``, read as the results
    table (:func:`archbench.load_results`: no loss traces, no image paths)."""
    from archbench.frame import load_results, score_means

    means = score_means(load_results(store, keys=keys, final_loss=True, versions=False))
    return {score_key(t, a, i, layer, m, j): mean for t, a, i, layer, m, j, mean in
            zip(means["task"], means["arch"], means["init"], means["layer"], means["metric"], means["judge"],
                means["mean"], strict=True)}


def compare(baseline: dict[str, Any], current: dict[tuple, float], allow_improvements: bool = False) -> CheckReport:
    """Compare ``current`` (score key -> mean, :func:`current_means`) with ``baseline``'s entries."""
    from archbench.metric_info import scored_name

    rep = CheckReport(baseline.get("suite", "?"), allow_improvements=allow_improvements)
    seen = set()
    for b in baseline["entries"]:
        key = score_key(b["task"], b["arch"], b["init"], b["layer"], b["metric"], b.get("judge"))
        seen.add(key)
        name = scored_name(b["metric"], b.get("judge"))
        ident = (b["task"], b["arch"], b["init"], b["layer"], name)
        c = current.get(key)
        if c is None:
            rep.rows.append(CheckRow(*ident, b["mean"], None, b["tolerance"], "missing", b.get("noise") or {}))
            continue
        d = c - b["mean"]
        if abs(d) <= b["tolerance"] * (1 + 1e-9) + 1e-15:
            status = "ok"
        elif not b.get("gating", b["metric"] != LOSS):
            status = "moved"
        else:
            status = "better" if (d > 0) == b.get("higher_is_better", direction(b["metric"])) else "worse"
        rep.rows.append(CheckRow(*ident, b["mean"], c, b["tolerance"], status, b.get("noise") or {}))
    for key, c in sorted(current.items()):
        if key not in seen:
            task, arch, init, layer, metric, judge = key
            rep.rows.append(CheckRow(task, arch, init, layer, scored_name(metric, judge or None), None, c, 0.0, "new"))
    return rep


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.5g}"


def report_markdown(rep: CheckReport, baseline_path: str = "") -> str:
    """Markdown summary for a pull-request comment: verdict, machine differences, counts and the
    table of what moved with the noise behind each tolerance."""
    counts = rep.counts()
    verdict = "✅ passed" if rep.passed else "❌ failed"
    lines = [f"### archbench check: suite `{md_cell(rep.suite)}` {verdict}", ""]
    if rep.machine_differences:
        lines += ["This machine differs from the one that saved the baseline: "
                  + "; ".join(md_cell(d) for d in rep.machine_differences) + ".", ""]
    if rep.configuration_changed:
        lines += ["The suite's job configurations differ from the baseline's (settings changed since it was saved).", ""]
    lines += [
        f"{len(rep.rows)} scores compared" + (f" with `{md_cell(baseline_path)}`" if baseline_path else "") + ": "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ".",
        "",
    ]
    moved = rep.moved
    if moved:
        lines += ["| status | task | architecture | init | layer | metric | baseline | current | Δ | tolerance | Δ/tol | noise |",
                  "|:---|:---|:---|:---|:---|:---|---:|---:|---:|---:|---:|:---|"]
        for r in moved:
            cells = [md_cell(c) for c in (r.status, r.task, r.arch, r.init, r.layer, r.metric)]
            d, ratio = r.delta, r.ratio
            lines.append("| " + " | ".join(cells + [
                _f(r.baseline), _f(r.current), "—" if d is None else f"{d:+.4g}", f"±{r.tolerance:.3g}",
                "—" if ratio is None else f"{ratio:.1f}", md_cell(r.why()),
            ]) + " |")
    else:
        lines.append("No score moved beyond its tolerance.")
    changed = [c for c in rep.claims if c.status != "ok"]
    if rep.claims:
        lines += ["", f"{len(rep.claims)} claims compared: "
                  + (", ".join(f"`{md_cell(c.id)}` {md_cell(c.baseline or '—')} → {md_cell(c.current or '—')} "
                               f"({c.status})" for c in changed) or "every verdict unchanged") + "."]
    return "\n".join(lines) + "\n"
