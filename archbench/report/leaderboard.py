"""Leaderboards computed from the results table (:func:`archbench.load_results`).

The ranked unit is an architecture with its weights: the arch spec, or ``spec @ init`` when the
data holds that spec with several inits. A metric scored in a judge network is named with its
judge (``gram@trained-vgg16``): scores of different judges are different boards, never averaged.
For every task, metric and layer -- plus ``layer = "all"``, where a unit's value for an (image,
seed) pair is the mean over the layers the task used -- each unit gets:

* ``mean`` over its (image, seed) observations, ``std`` (ddof 1) and ``n``;
* a 95% percentile-bootstrap confidence interval of the mean (seeded;
  :func:`~archbench.report.stats.bootstrap_cis`);
* the two-sided Wilcoxon signed-rank p-value against the reference unit over matched
  (image, seed) pairs, Holm-corrected over the units of that board;
* its rank (1 = best; direction from the metric's ``higher_is_better``; ties share the average);
* ``stalled``: how many of the results behind it did not leave their start (the optimiser's
  ``stalled`` flag; a stalled result scores its start, e.g. the white noise, not the architecture),
  None when none of them recorded the flag (nothing optimised, or stored before the flag existed).

The overall rank orders units by the mean of their ranks over the ``all``-layer boards of every
task and metric in which they appear.

Everything is computed from the tidy frame with numpy group operations: the observations are
sorted once by (task, metric, layer, unit, image, seed) and every board entry is a slice of that
order. Loss traces and image paths are never loaded here; the HTML report asks for the few it
shows through :class:`ResultDetails`.

Over 500 lines on purpose: one job, leaderboards from the results table; much of it is the
documented ranking rules and their dataclasses.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from archbench.frame import group_bounds
from archbench.frame import sorted_codes as _codes
from archbench.report import stats

if TYPE_CHECKING:
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
    #: results behind the entry that stalled (did not leave their start); None: none recorded the flag
    stalled: int | None = None


@dataclass
class Board:
    """Ranking of units for one task, metric and layer (``"all"``: mean over layers)."""

    task: str
    metric: str
    layer: str
    higher_is_better: bool
    reference: str | None
    entries: list[Entry] = field(default_factory=list)

    @property
    def stalled(self) -> int | None:
        """Stalled results over the board's entries; None when no entry recorded the flag."""
        counts = [e.stalled for e in self.entries if e.stalled is not None]
        return sum(counts) if counts else None


@dataclass
class OverallEntry:
    """A unit's overall standing: mean of its ranks over ``boards`` all-layer boards."""

    unit: str
    arch: str
    init: str
    mean_rank: float
    boards: int
    rank: float = 0.0
    #: the unit's results (run, layer; every task) that stalled; None: none recorded the flag
    stalled: int | None = None


@dataclass
class FailedJob:
    """A run stored as failed, with its reason."""

    key: str
    arch: str
    init: str
    seed: int
    task: str
    image: str
    error: str | None


class ResultDetails:
    """Loss traces and image paths of individual results, read only for what a report shows."""

    def traces(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], list[float]]:
        """``{(run key, layer): loss trace}``."""
        return {}

    def paths(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
        """``{(run key, layer): {image kind: path}}``."""
        return {}

    def resolve_path(self, path: str) -> Path:
        return Path(path)


class StoreDetails(ResultDetails):
    """:class:`ResultDetails` read from a results store."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    def traces(self, pairs):
        return self.store.loss_traces(pairs)

    def paths(self, pairs):
        return self.store.result_paths(pairs)

    def resolve_path(self, path: str) -> Path:
        return self.store.resolve_path(path)


class MemoryDetails(ResultDetails):
    """:class:`ResultDetails` of in-memory :class:`~archbench.store.StoredResult` rows."""

    def __init__(self, results: Iterable[StoredResult]) -> None:
        self.rows = {(r.key, r.layer): r for r in results}

    def traces(self, pairs):
        return {p: list(self.rows[p].loss_trace) for p in pairs if p in self.rows}

    def paths(self, pairs):
        return {p: dict(self.rows[p].paths) for p in pairs if p in self.rows}


@dataclass
class Leaderboard:
    """Everything a report renders.

    Attributes:
        frame: the scores the boards were computed from (the rows of :func:`archbench.load_results`
            with a value), with a ``unit`` column.
        stalled: the stall count of the results with a score (each once, whatever its metrics).
        n_jobs: runs in the report's scope (done and failed); ``failed``: the failed ones.
        versions: package versions of the stored results (values joined by `` / `` where runs
            differ).
        details: where the HTML report reads the loss traces and image paths it shows.
    """

    title: str
    suite: str | None
    reference: str | None
    boards: list[Board]
    overall: list[OverallEntry]
    frame: pd.DataFrame
    units: dict[tuple[str, str], str]
    n_jobs: int = 0
    failed: list[FailedJob] = field(default_factory=list)
    generated: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    details: ResultDetails = field(default_factory=ResultDetails)
    not_run: list[FailedJob] = field(default_factory=list)
    claims: list[Any] = field(default_factory=list)  # archbench.report.claims.ClaimResult
    #: ``{"stalled": k, "flagged": m, "results": n}``: of the ``n`` results (run, layer) with a score,
    #: ``m`` recorded the stall flag and ``k`` stalled (each result once); None when none recorded it
    stalled: dict[str, int] | None = None

    @property
    def judge_note(self) -> str:
        """One sentence naming the judge networks of the judged metrics (``gram@J``), or ``""``."""
        from archbench.judges import JUDGES

        judges = sorted({b.metric.split("@", 1)[1] for b in self.boards if "@" in b.metric})
        if not judges:
            return ""
        named = [f"{j}: {JUDGES[j].spec} with {JUDGES[j].weights}" if j in JUDGES else f"{j}: not recorded" for j in judges]
        return "METRIC@JUDGE: scored in that judge network (" + "; ".join(named) + "); different judges are never averaged."

    def board(self, task: str, metric: str, layer: str = ALL_LAYERS) -> Board | None:
        """The board of ``task``, ``metric`` and ``layer``; a judged metric's plain name
        (``gram``) finds its board when one judge scored it (``gram@trained-vgg16``)."""
        from archbench.metric_info import base_metric

        exact = [b for b in self.boards if (b.task, b.metric, b.layer) == (task, metric, layer)]
        loose = [b for b in self.boards if (b.task, base_metric(b.metric), b.layer) == (task, metric, layer)]
        return (exact or (loose if len(loose) == 1 else []) or [None])[0]

    def to_json(self) -> dict[str, Any]:
        """Plain data of the leaderboard (what ``--format json`` writes)."""
        return {
            "format": "archbench-leaderboard/1",
            "title": self.title,
            "suite": self.suite,
            "reference": self.reference,
            "generated": self.generated,
            "versions": self.versions,
            "devices": self.devices,
            "jobs": {"total": self.n_jobs, "done": self.n_jobs - len(self.failed) - len(self.not_run),
                     "failed": len(self.failed), "not_run": len(self.not_run)},
            "failures": [asdict(j) for j in self.failed],
            "not_run": [asdict(j) for j in self.not_run],
            "stalled": self.stalled,
            "boards": [asdict(b) | {"stalled": b.stalled} for b in self.boards],
            "overall": [asdict(o) for o in self.overall],
            "claims": [c.to_json() for c in self.claims],
        }


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
    spec, _, init = reference.partition("@")
    spec = spec.strip()
    if not any(k[0] == spec for k in units):  # written differently (option order, spaces)?
        from archbench.architectures.registry import canonical_spec

        try:
            spec = canonical_spec(spec)
        except Exception:  # noqa: BLE001 - not a spec here: matched as written
            pass
    matches = sorted((k for k in units if k[0] == spec and (not init or k[1] == init.strip())), key=lambda k: k[1])
    if not matches:
        log.warning("reference %r is not among the stored architectures", reference)
        return None
    preferred = [k for k in matches if k[1].startswith("gaussian")]
    return units[(preferred or matches)[0]]


def _first_seen(frame: pd.DataFrame, by: str, what: str) -> dict[str, list[str]]:
    """Per value of ``by``, the values of ``what`` in order of first appearance."""
    out: dict[str, list[str]] = defaultdict(list)
    pairs = frame[[by, what]].drop_duplicates().astype(object)  # categoricals: deduplicated by code
    for a, b in zip(pairs[by], pairs[what], strict=True):
        out[a].append(b)
    return out


def _versions(frame: pd.DataFrame) -> dict[str, str]:
    """Package versions of the stored results (distinct values joined with `` / ``)."""
    names = frame.attrs.get("version_columns", {})
    out = {}
    for col in frame.columns:
        if col.endswith("_version"):
            values = sorted({str(v) for v in frame[col].dropna().unique()})
            if values:
                out[names.get(col, col[: -len("_version")])] = " / ".join(values)
    return out


def build_leaderboard(
    data: pd.DataFrame | list[StoredResult],
    jobs: list[StoredRun] | None = None,
    *,
    reference: str | None = None,
    suite: str | None = None,
    title: str | None = None,
    n_boot: int = 4000,
    seed: int = 0,
    n_jobs: int | None = None,
    failed: list[FailedJob] | None = None,
    devices: list[str] | None = None,
    details: ResultDetails | None = None,
) -> Leaderboard:
    """Rank the units of ``data`` per task, metric and layer.

    Args:
        data: the frame of :func:`archbench.load_results` (done runs), or
            :class:`~archbench.store.StoredResult` rows (converted with
            :func:`archbench.frame.frame_from_results`).
        jobs: the runs in scope (for the job count and the failed ones); or give ``n_jobs`` and
            ``failed``.
        reference: unit the boards test against (``spec``, ``spec@init`` or a display name).
        n_boot, seed: bootstrap resamples and seed.
        devices, details: shown by the reports (default: from ``data`` when it is a list).
    """
    from archbench.frame import frame_from_results

    if not isinstance(data, pd.DataFrame):
        results = list(data)
        frame = frame_from_results(results)
        details = details or MemoryDetails(results)
        devices = devices if devices is not None else sorted({r.device for r in results if r.device})
    else:
        frame = data
    if jobs is not None:
        n_jobs = len(jobs) if n_jobs is None else n_jobs
        failed = failed if failed is not None else [
            FailedJob(j.key, j.arch, j.init, j.seed, j.task, j.image, j.error) for j in jobs if j.status == "failed"
        ]

    a_codes, a_names = _codes(frame["arch"])
    i_codes, i_names = _codes(frame["init"])
    pair_codes = np.unique(a_codes * (len(i_names) + 1) + i_codes) if len(frame) else np.zeros(0, np.int64)
    pairs = {(a_names[c // (len(i_names) + 1)], i_names[c % (len(i_names) + 1)]) for c in pair_codes}
    units = unit_names(pairs)
    ref_unit = resolve_reference(reference, units)
    unit_key = {v: k for k, v in units.items()}
    layer_order = _first_seen(frame, "task", "layer")
    metric_order = _first_seen(frame, "task", "scored_metric")

    ok = ~np.isnan(frame["value"].to_numpy(dtype=float))  # NaN: the metric could not be computed
    cols = ["key", "task", "scored_metric", "layer", "arch", "init", "image", "seed", "value"]
    if "stalled" not in frame.columns:  # a frame made before the flag was carried
        frame = frame.assign(stalled=pd.array([pd.NA] * len(frame), dtype="boolean"))
    f = frame.loc[ok, [*cols, "stalled"]].reset_index(drop=True)
    unit_names_sorted = sorted(set(units.values()))
    unit_rank = {name: i for i, name in enumerate(unit_names_sorted)}
    width = len(i_names) + 1
    lookup = np.full(max(len(a_names), 1) * width, -1, dtype=np.int64)
    for (a, i), name in units.items():
        lookup[int(np.flatnonzero(a_names == a)[0]) * width + int(np.flatnonzero(i_names == i)[0])] = unit_rank[name]
    f["unit"] = pd.Categorical.from_codes(lookup[(a_codes * width + i_codes)[ok]], categories=unit_names_sorted)

    t, tasks = _codes(f["task"])
    m, metrics = _codes(f["scored_metric"])
    lay, layers = _codes(f["layer"])
    u, unit_list = _codes(f["unit"])
    img, _ = _codes(f["image"])
    sd, _ = _codes(f["seed"].to_numpy())
    pair = img * (int(sd.max()) + 1 if len(sd) else 1) + sd
    v = f["value"].to_numpy(dtype=float)
    stall = f["stalled"].to_numpy(dtype=float, na_value=np.nan)  # 1 / 0 / NaN (not recorded)
    stall_count = np.nan_to_num(stall, nan=0.0)
    stall_known = (~np.isnan(stall)).astype(float)

    def stalls(idx: np.ndarray) -> int | None:
        return int(stall_count[idx].sum()) if stall_known[idx].any() else None

    # per layer: one value per (image, seed); a later result of the same pair replaces an earlier one
    order, bounds = group_bounds([t, m, lay, u, pair])
    last = order[bounds[1:] - 1] if len(order) else order
    samples: list[tuple[tuple[int, int, str | int, int], np.ndarray, np.ndarray, int | None]] = []
    o2, b2 = group_bounds([t[last], m[last], lay[last], u[last]])
    for a, b in zip(b2[:-1], b2[1:], strict=True):
        idx = last[o2[a:b]]
        samples.append(((int(t[idx[0]]), int(m[idx[0]]), int(lay[idx[0]]), int(u[idx[0]])), pair[idx], v[idx],
                        stalls(idx)))
    # all layers: per (image, seed), the mean over the layers (in store order)
    order, bounds = group_bounds([t, m, u, pair])  # stable: store order within a pair
    if len(order):
        sums = np.add.reduceat(v[order], bounds[:-1])
        means = sums / np.diff(bounds)
        pair_stalled = np.add.reduceat(stall_count[order], bounds[:-1])
        pair_known = np.add.reduceat(stall_known[order], bounds[:-1])
        first = order[bounds[:-1]]
        o3, b3 = group_bounds([t[first], m[first], u[first]])
        for a, b in zip(b3[:-1], b3[1:], strict=True):
            sel = o3[a:b]
            i0 = first[sel[0]]
            n_stalled = int(pair_stalled[sel].sum()) if pair_known[sel].any() else None
            samples.append(((int(t[i0]), int(m[i0]), ALL_LAYERS, int(u[i0])), pair[first[sel]], means[sel], n_stalled))

    cis = stats.bootstrap_cis([s[2] for s in samples], n_boot=n_boot, seed=seed)
    entries: dict[tuple[int, int, str | int], dict[str, Entry]] = defaultdict(dict)
    keys_of: dict[tuple[int, int, str | int], dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
    for (board_key, pk, vals, n_stalled), (lo, hi) in zip(samples, cis, strict=True):
        unit = unit_list[board_key[3]]
        e = Entry(unit, *unit_key[unit], len(vals), stats.mean(vals), stats.std(vals), lo, hi, stalled=n_stalled)
        entries[board_key[:3]][unit] = e
        keys_of[board_key[:3]][unit] = (pk, vals)

    # Wilcoxon against the reference over matched pairs, all boards at once
    tests: list[tuple[Entry, tuple[np.ndarray, np.ndarray]]] = []
    if ref_unit is not None:
        for bk, by_unit in keys_of.items():
            if ref_unit not in by_unit:
                continue
            rk, rv = by_unit[ref_unit]
            for unit, (pk, vals) in by_unit.items():
                if unit == ref_unit:
                    continue
                _, ia, ib = np.intersect1d(pk, rk, assume_unique=True, return_indices=True)
                if len(ia):
                    tests.append((entries[bk][unit], (vals[ia], rv[ib])))
    for (e, _), p in zip(tests, stats.wilcoxon_ps([x for _, x in tests]), strict=True):
        e.p_value = p

    task_index = {name: i for i, name in enumerate(tasks)}
    metric_index = {name: i for i, name in enumerate(metrics)}
    layer_index = {name: i for i, name in enumerate(layers)}
    boards: list[Board] = []
    for task in sorted(layer_order):
        if task not in task_index:
            continue
        for metric in metric_order[task]:
            if metric not in metric_index:
                continue
            hib = _metric_direction(metric)
            for layer in [ALL_LAYERS, *layer_order[task]]:
                if layer == ALL_LAYERS:
                    bk = (task_index[task], metric_index[metric], ALL_LAYERS)
                elif layer in layer_index:
                    bk = (task_index[task], metric_index[metric], layer_index[layer])
                else:
                    continue
                if bk not in entries:
                    continue
                present = sorted(entries[bk])
                board = Board(task, metric, layer, hib, ref_unit if ref_unit in present else None)
                board.entries = [entries[bk][name] for name in present]
                for e in board.entries:
                    e.is_reference = e.unit == board.reference
                    if board.reference is None:
                        e.p_value = None
                for e, p in zip(board.entries, stats.holm([e.p_value for e in board.entries]), strict=True):
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
    overall = [OverallEntry(name, *unit_key[name], stats.mean(rs), len(rs)) for name, rs in ranks.items()]
    for o, rk in zip(overall, stats.rank([o.mean_rank for o in overall], higher_is_better=False), strict=True):
        o.rank = rk
    overall.sort(key=lambda o: (o.rank, o.unit))
    stall_total = None
    if len(f) and stall_known.any():  # per unit: its results (run, layer) that stalled, each once
        kc = f["key"].cat.codes.to_numpy().astype(np.int64) if isinstance(f["key"].dtype, pd.CategoricalDtype) \
            else pd.factorize(f["key"])[0].astype(np.int64)
        _, first = np.unique(kc * (int(lay.max()) + 1) + lay, return_index=True)
        n_units = len(unit_list)
        stalled_by_unit = np.bincount(u[first], weights=stall_count[first], minlength=n_units)
        known_by_unit = np.bincount(u[first], weights=stall_known[first], minlength=n_units)
        code_of = {name: k for k, name in enumerate(unit_list)}
        for o in overall:
            k = code_of.get(o.unit)
            if k is not None and known_by_unit[k] > 0:
                o.stalled = int(stalled_by_unit[k])
        stall_total = {"stalled": int(stall_count[first].sum()), "flagged": int(stall_known[first].sum()),
                       "results": int(len(first))}

    versions = _versions(frame)
    if not versions:
        from archbench.results import package_versions

        versions = package_versions()
    return Leaderboard(
        title=title or (f"archbench leaderboard: suite {suite}" if suite else "archbench leaderboard"),
        suite=suite,
        reference=ref_unit,
        boards=boards,
        overall=overall,
        frame=f,
        units=units,
        n_jobs=n_jobs or 0,
        failed=failed or [],
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        versions=versions,
        devices=devices or [],
        details=details or ResultDetails(),
        stalled=stall_total,
    )


def _metric_direction(name: str) -> bool:
    from archbench.metric_info import higher_is_better

    return higher_is_better(name)


def leaderboard_from_store(
    store: ResultStore, suite: str | None = None, reference: str | None = None, keys: list[str] | None = None
) -> Leaderboard:
    """The leaderboard of the store's done results (of one suite, or of every job).

    The reference defaults to the suite's (as recorded when it was swept); without a suite, to the
    only suite's reference when the store holds one suite. Reads the scores with
    :func:`archbench.load_results`; loss traces and image paths stay in the store.
    """
    from archbench.frame import load_tables

    if reference is None:
        if suite is not None:
            reference = store.suite_reference(suite)
        else:
            names = store.suite_names()
            if len(names) == 1:
                reference = store.suite_reference(names[0])
    tables = load_tables(store, suite, keys=keys)
    runs = tables.runs

    def jobs_of(status: str) -> list[FailedJob]:
        rows = runs[(runs["status"] == status).to_numpy()]
        return [FailedJob(*row) for row in zip(rows["key"].astype(object), rows["arch"].astype(object),
                                               rows["init"].astype(object), rows["seed"].tolist(),
                                               rows["task"].astype(object), rows["image"].astype(object), rows["error"],
                                               strict=True)]

    lb = build_leaderboard(
        tables.scores, reference=reference, suite=suite, n_jobs=len(runs), failed=jobs_of("failed"),
        devices=tables.devices, details=StoreDetails(store),
    )
    lb.not_run = jobs_of("skipped")
    if suite is not None:
        from archbench.report.claims import claims_of_store

        lb.claims = claims_of_store(store, suite, keys)
    return lb
