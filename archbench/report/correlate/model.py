"""The correlation model of :mod:`archbench.report.correlate`: per task, metric and init, the
architectures' oriented scores against a ground truth (:class:`Point`), ρ with its interval and
test, τ and the baselines (:class:`CorrelationRow`), paired differences and the cross-validated
selection (:class:`Correlation`, built by :func:`correlate`). The statistics are
:mod:`archbench.report.stats`'; the ground truths :mod:`~archbench.report.correlate.truth`'.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from archbench.report import stats
from archbench.report.correlate.truth import GroundTruth, TruthValue
from archbench.report.leaderboard import ALL_LAYERS, Leaderboard
from archbench.report.stats import bootstrap_rho, bootstrap_rho_difference, kendall, permutation_p, spearman

log = logging.getLogger(__name__)

#: a row of the overall rank in :class:`CorrelationRow` (``task``, ``metric``)
OVERALL = ("overall", "rank")


# -- correlating a leaderboard ------------------------------------------------------------------
@dataclass
class Point:
    """One architecture in a correlation: its oriented score and its truth."""

    unit: str
    arch: str
    init: str
    score: float
    oriented: float
    truth: float
    source: str
    match: str
    note: str = ""
    params: float | None = None
    gflops: float | None = None
    channels: int | None = None
    #: results behind the score that stalled (did not leave their start); None: not recorded
    stalled: int | None = None


#: kinds of rows: scores of a visualisation task, training-free proxies (the ``proxies`` task),
#: the trained model's size from torchvision's metadata, and the leaderboard's overall rank
KINDS = ("visualisation", "proxy", "size", "overall")

#: the task name of the rows of the trained model's size (``params``, ``GFLOPs``)
SIZE_TASK = "torchvision"

#: the score every row and selection is compared with by default (NASWOT at each network's own init)
DEFAULT_COMPARATOR = "proxies/naswot@native"


def row_label(task: str, metric: str, layer: str, init: str) -> str:
    """``task/metric[/layer]@init``: ``reconstruct/ssim/level 3@kaiming``, ``proxies/naswot@native``
    (the layer is left out when it is ``all``); a size row is ``torchvision/params``."""
    name = f"{task}/{metric}" + ("" if layer in (ALL_LAYERS, "") else f"/{layer}")
    return name + (f"@{init}" if init else "")


@dataclass
class CorrelationRow:
    """ρ, its interval and test, τ and the size baselines for one task, metric and init."""

    task: str
    metric: str
    init: str
    higher_is_better: bool
    n: int
    n_approximate: int
    layer: str
    spearman: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    kendall: float | None
    params_spearman: float | None
    gflops_spearman: float | None
    p_holm: float | None = None
    channels_spearman: float | None = None
    #: ρ − ρ GFLOPs with its paired bootstrap interval (does the score beat the GFLOPs baseline?)
    minus_gflops: float | None = None
    minus_gflops_ci_low: float | None = None
    minus_gflops_ci_high: float | None = None
    kind: str = "visualisation"
    #: results behind the row's scores that stalled; None when none recorded the flag
    stalled: int | None = None
    #: the best baseline (proxy or size row, not this one) over the same architectures, its ρ, and
    #: ρ − ρ best with a paired bootstrap interval
    best_baseline: str | None = None
    best_baseline_spearman: float | None = None
    minus_best: float | None = None
    minus_best_ci_low: float | None = None
    minus_best_ci_high: float | None = None
    #: ρ − ρ comparator (NASWOT by default) over the same architectures, paired bootstrap interval
    minus_comparator: float | None = None
    minus_comparator_ci_low: float | None = None
    minus_comparator_ci_high: float | None = None
    points: list[Point] = field(default_factory=list)

    @property
    def label(self) -> str:
        return row_label(self.task, self.metric, self.layer, self.init)


@dataclass
class Correlation:
    """Everything :func:`correlate` found."""

    truth: str
    truth_description: str
    suite: str | None
    rows: list[CorrelationRow]
    unmatched: dict[str, str]
    truth_label: str = "value"
    #: the comparator's label (``proxies/naswot@native``) when it is among the rows
    comparator: str | None = None
    #: choices from the data, evaluated by leave-one-family-out cross-validation
    selection: list[Any] = field(default_factory=list)  # archbench.report.selection.SelectionRow
    #: the architectures of the cross-validation and their families
    families: dict[str, str] = field(default_factory=dict)
    #: rows left out of the cross-validation's pools, with the reason
    cv_left_out: dict[str, str] = field(default_factory=dict)

    def row(self, task: str, metric: str, init: str | None = None) -> CorrelationRow | None:
        """The first row of ``task`` and ``metric`` (of ``init`` when given)."""
        for r in self.rows:
            if (r.task, r.metric) == (task, metric) and (init is None or r.init == init):
                return r
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "archbench-correlation/1",
            "truth": self.truth,
            "truth_description": self.truth_description,
            "truth_label": self.truth_label,
            "suite": self.suite,
            "rows": [asdict(r) | {"label": r.label} for r in self.rows],
            "unmatched": self.unmatched,
            "comparator": self.comparator,
            "selection": [asdict(r) for r in self.selection],
            "families": self.families,
            "cv_left_out": self.cv_left_out,
        }


def _baseline(points: list[Point], attr: str) -> float | None:
    pairs = [(getattr(p, attr), p.truth) for p in points if getattr(p, attr) is not None]
    if len(pairs) != len(points):
        return None  # only where every architecture has the value: same set as the score's ρ
    a = np.array(pairs, dtype=float)
    return spearman(a[:, 0], a[:, 1])


def _row(task: str, metric: str, init: str, higher: bool, points: list[Point], seed: int, layer: str,
         kind: str = "visualisation") -> CorrelationRow:
    x = np.array([p.oriented for p in points], dtype=float)
    y = np.array([p.truth for p in points], dtype=float)
    lo, hi = bootstrap_rho(x, y, seed=seed)
    delta: tuple[float | None, float | None, float | None] = (None, None, None)
    if points and all(p.gflops is not None for p in points):
        delta = bootstrap_rho_difference(x, np.array([p.gflops for p in points], dtype=float), y, seed=seed)
    return CorrelationRow(
        task=task,
        metric=metric,
        init=init,
        higher_is_better=higher,
        n=len(points),
        n_approximate=sum(p.match == "approximate" for p in points),
        layer=layer,
        spearman=spearman(x, y),
        ci_low=lo,
        ci_high=hi,
        p_value=permutation_p(x, y, seed=seed),
        kendall=kendall(x, y),
        params_spearman=_baseline(points, "params"),
        gflops_spearman=_baseline(points, "gflops"),
        channels_spearman=_baseline(points, "channels"),
        minus_gflops=delta[0],
        minus_gflops_ci_low=delta[1],
        minus_gflops_ci_high=delta[2],
        kind=kind,
        stalled=sum(p.stalled for p in points if p.stalled is not None)
        if any(p.stalled is not None for p in points) else None,
        points=sorted(points, key=lambda p: -p.truth),
    )


@functools.lru_cache(maxsize=512)
def tap_levels(spec: str) -> dict[str, tuple[int, int]]:
    """``{tap name: (stride level, channels)}`` of an architecture in tap order (built without
    initialising weights; empty when it cannot be built here)."""
    from archbench.architectures.create import build_arch

    try:
        net = build_arch(spec)
    except Exception as exc:  # noqa: BLE001 - an arch of another machine's plugin: no levels here
        log.warning("cannot build %s to read its tap levels: %s", spec, exc)
        return {}
    return {t.name: (t.level, t.channels) for t in net.taps}


def _level_scores(
    lb: Leaderboard, level: int
) -> dict[tuple[str, str], list[tuple[str, str, str, str, float, int, int | None]]]:
    """Per (task, metric): ``(unit, arch, init, layer, mean, channels, stalled)`` of each unit at its
    first tap of stride ``level`` (tap order) among the layers it has results for; a layer set
    ``a..b`` (the texture task's cumulative sets) counts at the level of its last tap ``b``."""
    levels: dict[str, dict[str, tuple[int, int]]] = {}
    per: dict[tuple[str, str], dict[str, tuple[str, str, str, dict[str, tuple[float, int | None]]]]] = {}
    for b in lb.boards:
        if b.layer == ALL_LAYERS:
            continue
        for e in b.entries:
            slot = per.setdefault((b.task, b.metric), {}).setdefault(e.unit, (e.unit, e.arch, e.init, {}))
            slot[3][b.layer] = (e.mean, e.stalled)
    out: dict[tuple[str, str], list[tuple[str, str, str, str, float, int, int | None]]] = {}
    for key, units in per.items():
        for unit, arch, init, layers in units.values():
            if arch not in levels:
                levels[arch] = tap_levels(arch)
            # a label is a tap or a layer set "first..last" (texture); its depth is its last tap's
            by_last = {label.split("..")[-1]: label for label in layers}
            at_level = [name for name, (lv, _) in levels[arch].items() if lv == level and name in by_last]
            if at_level:
                label = by_last[at_level[0]]
                channels = levels[arch][at_level[0]][1]
                mean, stalled = layers[label]
                out.setdefault(key, []).append((unit, arch, init, label, mean, channels, stalled))
    return out


def _kind(task: str) -> str:
    return "proxy" if task == "proxies" else "visualisation"


def correlate(
    lb: Leaderboard,
    truth: GroundTruth,
    exact_only: bool = False,
    seed: int = 0,
    level: int | None = None,
    levels: list[int] | None = None,
    comparator: str | None = DEFAULT_COMPARATOR,
    cv: bool = True,
    cv_boot: int = 2000,
) -> Correlation:
    """Correlate every all-layer board of ``lb`` (and its overall rank) with ``truth``, per init,
    in one table with the baselines, and evaluate choices made from it by cross-validation.

    Rows (:attr:`CorrelationRow.kind`): the visualisation scores, the training-free proxies (the
    ``proxies`` task's boards), the trained model's parameter count and GFLOPs when the truth
    knows them (task ``torchvision``), and the overall rank. Every row has its Spearman ρ with a
    bootstrap interval, a permutation p (Holm-corrected over the rows that are scores: not the
    size rows), Kendall's τ, its stalled results, and the paired difference to the best baseline
    over the same architectures (the proxy or size row with the highest ρ there, other than the
    row itself) and to ``comparator`` (a row label, default NASWOT at the ``native`` init).

    With ``level``, a unit's score in a task is instead its mean at its first tap of that stride
    level (1/2**level of the input; :func:`tap_levels`), so that architectures are compared at
    equal depth; for layer sets ``a..b`` (texture) the set whose last tap is that tap. Units
    without such a layer are left out of that row. With ``levels``, the all-layer rows *and* one
    row per task, metric, init and level are made.

    With ``cv``, the procedures of :mod:`archbench.report.selection` (best visualisation score,
    best baseline, best single score, best visualisation + proxy rank average, any) are evaluated
    by leave-one-family-out cross-validation over the architectures every candidate covers
    (:attr:`Correlation.selection`; ``cv_boot`` bootstrap resamples of the whole procedure).

    Units whose arch has no truth value (or only an approximate one when ``exact_only``) are left
    out and listed in :attr:`Correlation.unmatched` with the reason. Rows with fewer than three
    architectures have no statistics (None).
    """
    lookups: dict[tuple[str, str], TruthValue | str] = {}
    for (arch, init), unit in lb.units.items():
        found = truth.lookup(arch, unit)
        if isinstance(found, TruthValue) and exact_only and found.match != "exact":
            found = f"only approximately {found.source} ({found.note}); dropped by exact_only"
        lookups[(arch, init)] = found
    unmatched = {unit: lookups[key] for key, unit in lb.units.items() if isinstance(lookups[key], str)}

    def point(arch: str, init: str, unit: str, score: float, higher: bool, layer: str = "",
              stalled: int | None = None) -> Point | None:
        tv = lookups.get((arch, init))
        if not isinstance(tv, TruthValue) or not math.isfinite(score):
            return None
        note = "; ".join(x for x in (tv.note, f"layer {layer}" if layer else "") if x)
        return Point(
            unit=unit, arch=arch, init=init, score=score, oriented=score if higher else -score,
            truth=tv.value, source=tv.source, match=tv.match, note=note, params=tv.params, gflops=tv.gflops,
            stalled=stalled,
        )

    rows: list[CorrelationRow] = []
    if level is None:
        for b in lb.boards:
            if b.layer != ALL_LAYERS:
                continue
            by_init: dict[str, list[Point]] = {}
            for e in b.entries:
                p = point(e.arch, e.init, e.unit, e.mean, b.higher_is_better, stalled=e.stalled)
                if p is not None:
                    by_init.setdefault(e.init, []).append(p)
            for init, points in sorted(by_init.items()):
                rows.append(_row(b.task, b.metric, init, b.higher_is_better, points, seed, ALL_LAYERS, _kind(b.task)))
    at_levels = [level] if level is not None else list(dict.fromkeys(levels or []))
    directions = {(b.task, b.metric): b.higher_is_better for b in lb.boards}
    for lv in at_levels:
        for (task, metric), entries in sorted(_level_scores(lb, lv).items()):
            higher = directions[(task, metric)]
            by_init = {}
            for unit, arch, init, layer, mean, channels, stalled in entries:
                p = point(arch, init, unit, mean, higher, layer, stalled)
                if p is not None:
                    p.channels = channels
                    by_init.setdefault(init, []).append(p)
            for init, points in sorted(by_init.items()):
                rows.append(_row(task, metric, init, higher, points, seed, f"level {lv}", _kind(task)))
    by_init = {}
    for o in lb.overall:
        p = point(o.arch, o.init, o.unit, o.mean_rank, False, stalled=o.stalled)
        if p is not None:
            by_init.setdefault(o.init, []).append(p)
    for init, points in sorted(by_init.items()):
        rows.append(_row(*OVERALL, init, False, points, seed, ALL_LAYERS, "overall"))
    rows += _size_rows(lookups, seed)
    scored = [r for r in rows if r.kind != "size"]
    for r, p in zip(scored, stats.holm([r.p_value for r in scored]), strict=True):
        r.p_holm = p
    if not rows:
        log.warning("no architecture in the leaderboard has a %s value", truth.name)
    labels = {r.label for r in rows}
    comp = comparator if comparator in labels else None
    _paired_differences(rows, comp, seed)
    result = Correlation(truth.name, truth.description, lb.suite, rows, unmatched, truth_label=truth.label,
                         comparator=comp)
    if cv:
        _cross_validate(result, comp, cv_boot, seed)
    return result


def _size_rows(lookups: dict[tuple[str, str], TruthValue | str], seed: int) -> list[CorrelationRow]:
    """Rows of the trained model's parameter count and GFLOPs over every architecture with a truth
    value that has them (one point per architecture, whatever its inits)."""
    by_arch: dict[str, TruthValue] = {}
    for (arch, _init), tv in sorted(lookups.items()):
        if isinstance(tv, TruthValue):
            by_arch.setdefault(arch, tv)
    rows = []
    for metric, attr in (("params", "params"), ("GFLOPs", "gflops")):
        points = [Point(unit=arch, arch=arch, init="", score=float(getattr(tv, attr)),
                        oriented=float(getattr(tv, attr)), truth=tv.value, source=tv.source, match=tv.match,
                        note=tv.note, params=tv.params, gflops=tv.gflops)
                  for arch, tv in by_arch.items() if getattr(tv, attr) is not None]
        if len(points) >= 3:
            rows.append(_row(SIZE_TASK, metric, "", True, points, seed, "", "size"))
    return rows


def _by_arch(r: CorrelationRow) -> dict[str, float]:
    return {p.arch: p.oriented for p in r.points}


def _paired_differences(rows: list[CorrelationRow], comparator: str | None, seed: int) -> None:
    """Each row's ρ − ρ of the best baseline over its architectures and ρ − ρ comparator, with
    paired bootstrap intervals (both ρ on the same resampled architectures)."""
    baselines = [(r.label, _by_arch(r)) for r in rows if r.kind in ("proxy", "size")]
    comp = next((_by_arch(r) for r in rows if r.label == comparator), None)
    for r in rows:
        if r.spearman is None:
            continue
        archs = [p.arch for p in r.points]
        if len(set(archs)) != len(archs):  # a size row over several inits? (one point per arch)
            continue
        x = np.array([p.oriented for p in r.points], dtype=float)
        y = np.array([p.truth for p in r.points], dtype=float)
        best: tuple[float, str, np.ndarray] | None = None
        for label, values in baselines:
            if label == r.label or not all(a in values for a in archs):
                continue
            z = np.array([values[a] for a in archs], dtype=float)
            rho = spearman(z, y)
            if rho is not None and (best is None or rho > best[0]):
                best = (rho, label, z)
        if best is not None:
            r.best_baseline, r.best_baseline_spearman = best[1], best[0]
            r.minus_best, r.minus_best_ci_low, r.minus_best_ci_high = bootstrap_rho_difference(x, best[2], y, seed=seed)
        if comp is not None and r.label != comparator and all(a in comp for a in archs):
            z = np.array([comp[a] for a in archs], dtype=float)
            r.minus_comparator, r.minus_comparator_ci_low, r.minus_comparator_ci_high = bootstrap_rho_difference(
                x, z, y, seed=seed)


def _cross_validate(c: Correlation, comparator: str | None, n_boot: int, seed: int) -> None:
    """The selection procedures over the visualisation (V) and baseline (P) rows, on the
    architectures that the largest row of each pool covers; rows that do not cover them all are
    left out of the pools (:attr:`Correlation.cv_left_out`)."""
    from archbench.report.families import family
    from archbench.report.selection import BASELINE, VISUALISATION, Candidate, select_and_validate

    pools = {"visualisation": VISUALISATION, "proxy": BASELINE, "size": BASELINE}
    rows = [r for r in c.rows if r.kind in pools and r.spearman is not None]
    if not rows:
        return
    covered: set[str] | None = None
    for pool in (VISUALISATION, BASELINE):
        members = [r for r in rows if pools[r.kind] == pool]
        if members:
            largest = set(_by_arch(max(members, key=lambda r: r.n)))
            covered = largest if covered is None else covered & largest
    archs = sorted(covered or [])
    if len(archs) < 3:
        return
    truth = {p.arch: p.truth for r in rows for p in r.points}
    candidates = []
    for r in rows:
        values = _by_arch(r)
        missing = [a for a in archs if a not in values]
        if missing:
            c.cv_left_out[r.label] = f"no score for {len(missing)} of the {len(archs)} architectures ({', '.join(missing[:3])}" + (
                ", ...)" if len(missing) > 3 else ")")
            continue
        candidates.append(Candidate(r.label, pools[r.kind], np.array([values[a] for a in archs], dtype=float)))
    families = [family(a) for a in archs]
    c.families = dict(zip(archs, families, strict=True))
    if len(set(families)) < 2:
        return
    c.selection = select_and_validate(candidates, np.array([truth[a] for a in archs], dtype=float), families,
                                      comparator=comparator, n_boot=n_boot, seed=seed)


