"""Leaderboards built from the results store.

The ranked unit is an architecture with its weights: the arch spec, or ``spec @ init`` when the
data holds that spec with several inits. A metric scored in a judge network is named with its
judge (``gram@trained-vgg16``): scores of different judges are different boards, never averaged. For every task, metric and layer -- plus ``layer =
"all"``, where a unit's value for an (image, seed) pair is the mean over the layers the task
used -- each unit gets:

* ``mean`` over its (image, seed) observations, ``std`` (ddof 1) and ``n``;
* a 95% percentile-bootstrap confidence interval of the mean (seeded, :func:`bootstrap_ci`);
* the two-sided Wilcoxon signed-rank p-value against the reference unit over matched
  (image, seed) pairs, Holm-corrected over the units of that board;
* its rank (1 = best; direction from the metric's ``higher_is_better``; ties share the average).

The overall rank orders units by the mean of their ranks over the ``all``-layer boards of every
task and metric in which they appear.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from archbench.report import stats
from archbench.store import ResultStore, StoredResult, StoredRun

log = logging.getLogger(__name__)

ALL_LAYERS = "all"


@dataclass
class Entry:
    """One unit's row in a board."""

    unit: str
    arch: str
    init: str
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    rank: float = 0.0
    p_value: float | None = None
    p_holm: float | None = None
    is_reference: bool = False


@dataclass
class Board:
    """Ranking of units for one task, metric and layer (``"all"``: mean over layers)."""

    task: str
    metric: str
    layer: str
    higher_is_better: bool
    reference: str | None
    entries: list[Entry] = field(default_factory=list)


@dataclass
class OverallEntry:
    """A unit's overall standing: mean of its ranks over ``boards`` all-layer boards."""

    unit: str
    arch: str
    init: str
    mean_rank: float
    boards: int
    rank: float = 0.0


@dataclass
class Leaderboard:
    """Everything a report renders."""

    title: str
    suite: str | None
    reference: str | None
    boards: list[Board]
    overall: list[OverallEntry]
    observations: list[StoredResult]
    jobs: list[StoredRun]
    units: dict[tuple[str, str], str]
    generated: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    claims: list[Any] = field(default_factory=list)  # archbench.report.claims.ClaimResult

    @property
    def failed(self) -> list[StoredRun]:
        return [j for j in self.jobs if j.status == "failed"]

    @property
    def not_run(self) -> list[StoredRun]:
        """Runs stored as ``skipped`` (a trained network whose weights are absent)."""
        return [j for j in self.jobs if j.status == "skipped"]

    @property
    def judge_note(self) -> str:
        """One sentence naming the judge networks of the judged metrics (``gram@J``), or ``""``."""
        from archbench.metrics.gram import JUDGES

        judges = sorted({b.metric.split("@", 1)[1] for b in self.boards if "@" in b.metric})
        if not judges:
            return ""
        named = [f"{j}: {JUDGES[j].spec} with {JUDGES[j].weights}" if j in JUDGES else f"{j}: not recorded" for j in judges]
        return "METRIC@JUDGE: scored in that judge network (" + "; ".join(named) + "); different judges are never averaged."

    def board(self, task: str, metric: str, layer: str = ALL_LAYERS) -> Board | None:
        """The board of ``task``, ``metric`` and ``layer``; a judged metric's plain name
        (``gram``) finds its board when one judge scored it (``gram@trained-vgg16``)."""
        from archbench.metrics import base_metric

        exact = [b for b in self.boards if (b.task, b.metric, b.layer) == (task, metric, layer)]
        loose = [b for b in self.boards if (b.task, base_metric(b.metric), b.layer) == (task, metric, layer)]
        return (exact or (loose if len(loose) == 1 else []) or [None])[0]

    def to_json(self) -> dict[str, Any]:
        """Plain data of the leaderboard (what ``--format json`` writes)."""
        from dataclasses import asdict

        return {
            "format": "archbench-leaderboard/1",
            "title": self.title,
            "suite": self.suite,
            "reference": self.reference,
            "generated": self.generated,
            "versions": self.versions,
            "devices": self.devices,
            "jobs": {"total": len(self.jobs), "done": sum(j.status == "done" for j in self.jobs),
                     "failed": len(self.failed), "not_run": len(self.not_run)},
            "failures": [
                {"key": j.key, "arch": j.arch, "init": j.init, "seed": j.seed, "task": j.task, "image": j.image, "error": j.error}
                for j in self.failed
            ],
            "boards": [asdict(b) for b in self.boards],
            "overall": [asdict(o) for o in self.overall],
            "claims": [c.to_json() for c in self.claims],
        }


def _metric_direction(name: str) -> bool:
    from archbench.metrics import base_metric, get_metric

    try:
        return get_metric(base_metric(name)).higher_is_better
    except Exception:  # a metric from a plugin that is not installed here
        log.warning("metric %r is not registered here; ranking it as higher-is-better", name)
        return True


def unit_names(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(arch, init) -> display name: the spec, or ``spec @ init`` when the spec has several inits."""
    inits: dict[str, set[str]] = defaultdict(set)
    for arch, init in pairs:
        inits[arch].add(init)
    return {(a, i): (a if len(inits[a]) == 1 else f"{a} @ {i}") for a, i in pairs}


def resolve_reference(reference: str | None, units: dict[tuple[str, str], str]) -> str | None:
    """The unit named by ``reference`` (``spec``, ``spec@init`` or a display name), or None."""
    if not reference:
        return None
    if reference in units.values():
        return reference
    from archbench.sweep.suite import canonical_spec

    spec, _, init = reference.partition("@")
    try:
        spec = canonical_spec(spec.strip())
    except Exception:
        spec = spec.strip()
    matches = sorted((k for k in units if k[0] == spec and (not init or k[1] == init.strip())), key=lambda k: k[1])
    if not matches:
        log.warning("reference %r is not among the stored architectures", reference)
        return None
    preferred = [k for k in matches if k[1].startswith("gaussian")]
    return units[(preferred or matches)[0]]


def build_leaderboard(
    results: list[StoredResult],
    jobs: list[StoredRun] | None = None,
    *,
    reference: str | None = None,
    suite: str | None = None,
    title: str | None = None,
    n_boot: int = 4000,
    seed: int = 0,
) -> Leaderboard:
    """Rank the units of ``results`` (done per-layer rows) per task, metric and layer."""
    pairs = {(r.arch, r.init) for r in results}
    units = unit_names(pairs)
    ref_unit = resolve_reference(reference, units)
    unit_key = {v: k for k, v in units.items()}

    # (task, metric, layer, unit) -> {(image, seed): value}
    obs: dict[tuple[str, str, str, str], dict[tuple[str, int], float]] = defaultdict(dict)
    per_layer_acc: dict[tuple[str, str, str, tuple[str, int]], list[float]] = defaultdict(list)
    layer_order: dict[str, list[str]] = defaultdict(list)
    metric_order: dict[str, list[str]] = defaultdict(list)
    from archbench.metrics import scored_name

    for r in results:
        unit = units[(r.arch, r.init)]
        if r.layer not in layer_order[r.task]:
            layer_order[r.task].append(r.layer)
        for name, v in r.metrics.items():
            m = scored_name(name, r.judge)
            if m not in metric_order[r.task]:
                metric_order[r.task].append(m)
            if v is None:
                continue
            obs[(r.task, m, r.layer, unit)][(r.image, r.seed)] = float(v)
            per_layer_acc[(r.task, m, unit, (r.image, r.seed))].append(float(v))
    for (task, m, unit, pair), vals in per_layer_acc.items():
        obs[(task, m, ALL_LAYERS, unit)][pair] = stats.mean(vals)

    boards: list[Board] = []
    for task in sorted(layer_order):
        for m in metric_order[task]:
            hib = _metric_direction(m)
            for layer in [ALL_LAYERS, *layer_order[task]]:
                present = sorted(u for (t, mm, ly, u) in obs if (t, mm, ly) == (task, m, layer))
                if not present:
                    continue
                board = Board(task, m, layer, hib, ref_unit if ref_unit in present else None)
                ref_obs = obs.get((task, m, layer, ref_unit), {}) if board.reference else {}
                for u in present:
                    d = obs[(task, m, layer, u)]
                    vals = [d[k] for k in sorted(d)]
                    lo, hi = stats.bootstrap_ci(vals, n_boot=n_boot, seed=seed)
                    e = Entry(u, *unit_key[u], len(vals), stats.mean(vals), stats.std(vals), lo, hi,
                              is_reference=(u == board.reference))
                    if board.reference and u != board.reference:
                        common = sorted(set(d) & set(ref_obs))
                        if common:
                            e.p_value = stats.wilcoxon_p([d[k] for k in common], [ref_obs[k] for k in common])
                    board.entries.append(e)
                adjusted = stats.holm([e.p_value for e in board.entries])
                for e, p in zip(board.entries, adjusted, strict=True):
                    e.p_holm = p
                for e, rk in zip(board.entries, stats.rank([e.mean for e in board.entries], hib), strict=True):
                    e.rank = rk
                board.entries.sort(key=lambda e: (e.rank, e.unit))
                boards.append(board)

    ranks: dict[str, list[float]] = defaultdict(list)
    for b in boards:
        if b.layer == ALL_LAYERS:
            for e in b.entries:
                ranks[e.unit].append(e.rank)
    overall = [OverallEntry(u, *unit_key[u], stats.mean(rs), len(rs)) for u, rs in ranks.items()]
    for o, rk in zip(overall, stats.rank([o.mean_rank for o in overall], higher_is_better=False), strict=True):
        o.rank = rk
    overall.sort(key=lambda o: (o.rank, o.unit))

    from archbench.results import package_versions

    return Leaderboard(
        title=title or (f"archbench leaderboard: suite {suite}" if suite else "archbench leaderboard"),
        suite=suite,
        reference=ref_unit,
        boards=boards,
        overall=overall,
        observations=results,
        jobs=jobs or [],
        units=units,
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        versions=package_versions(),
        devices=sorted({r.device for r in results if r.device}),
    )


def leaderboard_from_store(
    store: ResultStore, suite: str | None = None, reference: str | None = None, keys: list[str] | None = None
) -> Leaderboard:
    """The leaderboard of the store's done results (of one suite, or of every job).

    The reference defaults to the suite's (as recorded when it was swept); without a suite, to the
    only suite's reference when the store holds one suite.
    """
    if reference is None:
        if suite is not None:
            reference = store.suite_reference(suite)
        else:
            names = store.suite_names()
            if len(names) == 1:
                reference = store.suite_reference(names[0])
    results = store.results(suite=suite, keys=keys)
    jobs = store.runs(suite=suite, keys=keys)
    lb = build_leaderboard(results, jobs, reference=reference, suite=suite)
    if suite is not None:
        from archbench.report.claims import claims_of_store

        lb.claims = claims_of_store(store, suite, keys)
    return lb
