"""Results as a pandas DataFrame: :func:`load_results`, the table every report is computed from.

One row per stored score -- a (run, layer, metric) -- in a tidy (long) layout::

    key           the run's key (RunConfig.key): the identity of the run
    arch, init, seed, task, options, image, image_source, size, iterations, optimizer, history,
    device, judge
                  the run's resolved configuration (``options``: the task options as compact JSON;
                  ``image``: the image's label, ``image_source``: the built-in name or file as
                  stored; ``judge``: the network scoring judged metrics, else missing)
    layer         the layer (or layer set) the result optimised; ``position``: its order in the run
    metric        the metric as stored (``gram``); ``scored_metric``: as reports name it, with its
                  judge for a judged metric (``gram@trained-vgg16``) -- scores of different judges
                  are different quantities
    value         the score (NaN where it could not be computed)
    stalled       whether the result (run, layer) did not leave its start (nullable boolean: True,
                  False, or missing where nothing was optimised or the store did not record it;
                  :attr:`archbench.results.Result.stalled`), repeated on each of its metrics
    <pkg>_version the versions of the packages that produced the run (``archbench_version``,
                  ``torch_version``, ...), unless ``versions=False``

String columns are categoricals (a 10^6-row table takes tens of MB); ``seed``, ``size``,
``iterations``, ``history`` and ``position`` are integers. Rows come in the order the runs were
stored, then layer position, then metric name. Only done runs by default (``include_failed``: the
partial results of failed runs too, with their ``status``).

What the frame does not carry is read only when asked for: loss traces and image paths
(:meth:`archbench.store.ResultStore.loss_traces`, :meth:`~archbench.store.ResultStore.result_paths`)
and the rest of a run (:meth:`~archbench.store.ResultStore.outcome`).

The regression check needs, per (task, arch, init, layer, metric, judge), the per-(image, seed)
values and their mean: ``load_results(store, suite, final_loss=True)`` holds the values (with
``final_loss`` as a metric) and :func:`score_means` the means, in the entries' layout of
:func:`archbench.report.check.score_entries`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from archbench.config import RunConfig, sql_type, table_columns
from archbench.errors import ConfigError

if TYPE_CHECKING:
    from archbench.store import ResultStore, StoredResult

#: the metric name of the final loss rows (``final_loss=True``)
FINAL_LOSS = "final_loss"



def identity_columns() -> tuple[str, ...]:
    """The identity columns, in order: ``key``, then one column per field of
    :class:`~archbench.config.RunConfig` the table shows (its ``frame`` metadata; the image as its
    label and its source), in field order."""
    return tuple(name for name, _ in run_columns())


def run_columns() -> list[tuple[str, Any]]:
    """``(column, value of a RunConfig)`` per identity column (see :func:`identity_columns`)."""
    return [("key", lambda c: c.key), *table_columns()]


def _int_columns() -> set[str]:
    """Identity columns held as integers: the integer fields of RunConfig."""
    return {f.name for f in dataclasses.fields(RunConfig) if sql_type(f) == "INTEGER"}


def _float_columns() -> set[str]:
    """Identity columns held as floats: the float fields of RunConfig."""
    return {f.name for f in dataclasses.fields(RunConfig) if sql_type(f) == "REAL"}


#: identity columns, in order (:func:`identity_columns` when the module was imported)
IDENTITY = identity_columns()
#: per-row columns after the identity
ROW = ("layer", "position", "metric", "scored_metric", "value", "stalled")


def _open(store: ResultStore | str | Path) -> tuple[ResultStore, bool]:
    from archbench.store import ResultStore

    if isinstance(store, ResultStore):
        return store, False
    path = Path(store)
    if not path.is_file():
        raise ConfigError(f"store {str(path)!r} does not exist; run `archbench sweep SUITE --store {path}` first")
    return ResultStore(path), True


def _category(values: Sequence[Any] | np.ndarray) -> pd.Categorical:
    """A categorical with its categories in sorted order (missing values stay missing)."""
    codes, uniques = pd.factorize(np.array(values, dtype=object), sort=True)
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(uniques), dtype=object))


def _version_column(package: str) -> str:
    return re.sub(r"\W", "_", package) + "_version"


def _runs_frame(rows: list[tuple], versions: bool) -> pd.DataFrame:
    """One row per run: ``rowid``, the identity columns, ``status``, ``error``, versions."""
    from archbench.store.schema import run_table_columns

    names = [n for n, _ in run_table_columns()]
    ints, floats = _int_columns(), _float_columns()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data = dict(zip(names, columns, strict=True))
    out: dict[str, Any] = {"rowid": np.array(data["rowid"], dtype=np.int64)}
    for name in (*identity_columns(), "status", "error"):
        col = data[name]
        if name in ints:
            out[name] = np.nan_to_num(np.array(col, dtype=float), nan=-1).astype(np.int64)
        elif name in floats:
            out[name] = np.array(col, dtype=float)
        elif name == "key":
            out[name] = pd.Categorical(np.array(col, dtype=object))  # one per run; the frame repeats codes
        elif name == "error":
            out[name] = np.array(col, dtype=object)
        else:
            out[name] = _category(col)
    names = {}
    if versions:
        parsed = {text: json.loads(text or "{}") for text in set(data["versions"])}
        packages = sorted({p for v in parsed.values() for p in v})
        for pkg in packages:
            names[_version_column(pkg)] = pkg
            out[_version_column(pkg)] = _category([parsed[t].get(pkg) for t in data["versions"]])
    frame = pd.DataFrame(out)
    frame.attrs["version_columns"] = names
    return frame


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: building millions of row tuples otherwise triggers
    collections that traverse all of them, again and again (measured: 3-5x slower)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Codes:
    """String -> integer code, shared by several columns (codes in order of first sight)."""

    def __init__(self) -> None:
        self.table: dict[str, int] = {}

    def __call__(self, column: Sequence[str]) -> np.ndarray:
        local, uniques = pd.factorize(np.array(column, dtype=object))
        remap = np.array([self.table.setdefault(x, len(self.table)) for x in uniques], dtype=np.int32)
        return remap[local] if len(uniques) else local.astype(np.int32)

    def categorical(self, codes: np.ndarray) -> pd.Categorical:
        """``codes`` as a categorical with sorted categories."""
        names = sorted(self.table)
        rank = {n: i for i, n in enumerate(names)}
        remap = np.zeros(max(len(self.table), 1), dtype=np.int32)
        for name, code in self.table.items():
            remap[code] = rank[name]
        return pd.Categorical.from_codes(remap[codes] if len(codes) else codes.astype(np.int32), categories=names)


def _stalled_array(flags: np.ndarray) -> pd.arrays.BooleanArray:
    """A nullable boolean array of stall flags stored as 1.0 / 0.0 / NaN (not recorded)."""
    missing = np.isnan(flags)
    return pd.arrays.BooleanArray(np.where(missing, 0.0, flags).astype(bool), missing)


def _scores_arrays(db: ResultStore, suite, keys, include_failed: bool, final_loss: bool) -> dict[str, Any]:
    """The score rows as arrays: run rowid, layer, position, metric, value, stalled (strings as
    codes; stalled as 1.0 / 0.0 / NaN)."""
    layers, metrics = _Codes(), _Codes()
    rowids, layer_codes, metric_codes, values = [], [], [], []
    with gc_paused():
        for rows in db.score_table(suite, keys, include_failed):
            rid, layer, metric, value = zip(*rows, strict=True)
            rowids.append(np.array(rid, dtype=np.int64))
            layer_codes.append(layers(layer))
            metric_codes.append(metrics(metric))
            values.append(np.array(value, dtype=float))  # None (not computed) -> NaN
            del rows, rid, layer, metric, value
        results = db.result_table(suite, keys, include_failed)
        if results:
            r_rid, r_layer, r_pos, r_loss, r_device, r_stalled = zip(*results, strict=True)
        else:
            r_rid = r_layer = r_pos = r_loss = r_device = r_stalled = ()
        del results
    devices = sorted({d for d in set(r_device) if d})
    r_rowid = np.array(r_rid, dtype=np.int64)
    r_layer_codes = layers(r_layer) if len(r_layer) else np.zeros(0, np.int32)
    r_position = np.nan_to_num(np.array(r_pos, dtype=float), nan=-1).astype(np.int64)
    r_stall = np.array(r_stalled, dtype=float)  # None (not recorded) -> NaN

    def join(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    rowid, layer_c = join(rowids, np.int64), join(layer_codes, np.int32)
    metric_c, value = join(metric_codes, np.int32), join(values, np.float64)
    # each score's position and stall flag: those of its result (run, layer)
    width = max(len(layers.table), 1)
    r_key = r_rowid * width + r_layer_codes
    order = np.argsort(r_key, kind="stable")
    found = np.searchsorted(r_key[order], rowid * width + layer_c)
    found = np.minimum(found, max(len(order) - 1, 0))
    if len(order):
        hit = r_key[order][found] == rowid * width + layer_c
        position = np.where(hit, r_position[order][found], -1)
        stalled = np.where(hit, r_stall[order][found], np.nan)
    else:
        position = np.full(len(rowid), -1, dtype=np.int64)
        stalled = np.full(len(rowid), np.nan)
    if final_loss and len(r_rowid):
        code = metrics([FINAL_LOSS])[0]
        rowid = np.concatenate([rowid, r_rowid])
        layer_c = np.concatenate([layer_c, r_layer_codes])
        position = np.concatenate([position, r_position])
        metric_c = np.concatenate([metric_c, np.full(len(r_rowid), code, dtype=np.int32)])
        value = np.concatenate([value, np.array(r_loss, dtype=float)])
        stalled = np.concatenate([stalled, r_stall])
    return {
        "rowid": rowid,
        "layer": layers.categorical(layer_c),
        "position": position,
        "metric": metrics.categorical(metric_c),
        "value": value,
        "stalled": stalled,
        "devices": devices,
    }


def scored_metric_column(metric: Any, judge: Any) -> pd.Categorical:
    """Per row, ``metric@judge`` for a judged metric and the metric's own name otherwise
    (:func:`archbench.metric_info.scored_name`), computed once per distinct (metric, judge)."""
    from archbench.metric_info import scored_name

    m, j = pd.Categorical(metric), pd.Categorical(judge)
    width = len(j.categories) + 1
    combined = m.codes.astype(np.int64) * width + (j.codes.astype(np.int64) + 1)
    uniq, inverse = np.unique(combined, return_inverse=True)
    labels = [scored_name(str(m.categories[k // width]), None if k % width == 0 else str(j.categories[k % width - 1]))
              for k in uniq]
    categories = sorted(set(labels))
    rank = {name: i for i, name in enumerate(categories)}
    codes = np.array([rank[x] for x in labels], dtype=np.int32)
    return pd.Categorical.from_codes(codes[inverse.ravel()] if len(uniq) else np.zeros(0, np.int32), categories=categories)


@dataclass
class ResultTables:
    """What :func:`load_tables` reads in one pass over a store.

    Attributes:
        runs: one row per run in scope, done and failed: ``rowid`` (storage order), the identity
            columns of :data:`IDENTITY`, ``status``, ``error`` and the ``<package>_version`` columns.
        scores: the tidy frame of :func:`load_results`.
        devices: the devices the results ran on (``cpu``, ``cuda:0``), sorted.
    """

    runs: pd.DataFrame
    scores: pd.DataFrame
    devices: list[str] = field(default_factory=list)


def load_tables(
    store: ResultStore | str | Path,
    suite: str | None = None,
    *,
    keys: Iterable[str] | None = None,
    include_failed: bool = False,
    final_loss: bool = False,
    versions: bool = True,
) -> ResultTables:
    """The runs and the tidy scores of a store (see :func:`load_results` for the arguments), read
    with three SQL queries that never touch loss traces, image paths or provenance."""
    db, close = _open(store)
    try:
        keys = list(keys) if keys is not None else None
        if suite is not None and keys is None and db.suite_holds_every_run(suite):
            suite = None  # the usual store of one suite: no filter to evaluate for every row
        with gc_paused():
            runs = _runs_frame(db.run_table(suite, keys, include_failed=True), versions)
        scores = _scores_arrays(db, suite, keys, include_failed, final_loss)
    finally:
        if close:
            db.close()
    version_columns = runs.attrs.get("version_columns", {})
    scoped = runs if include_failed else runs[(runs["status"] == "done").to_numpy()]
    idx = np.searchsorted(scoped["rowid"].to_numpy(), scores["rowid"])
    order = np.lexsort((scores["metric"].codes, scores["position"], scores["rowid"]))
    identity = identity_columns()
    columns = [*identity, *(["status"] if include_failed else []), *version_columns]
    frame = scoped[columns].iloc[idx[order]].reset_index(drop=True)
    frame.insert(len(identity) + include_failed, "layer", scores["layer"][order])
    frame.insert(len(identity) + include_failed + 1, "position", scores["position"][order])
    frame.insert(len(identity) + include_failed + 2, "metric", scores["metric"][order])
    frame.insert(len(identity) + include_failed + 3, "scored_metric", scored_metric_column(frame["metric"], frame["judge"]))
    frame.insert(len(identity) + include_failed + 4, "value", scores["value"][order])
    frame.insert(len(identity) + include_failed + 5, "stalled", _stalled_array(scores["stalled"][order]))
    frame.attrs["version_columns"] = dict(version_columns)
    return ResultTables(runs=runs, scores=frame, devices=scores["devices"])


def load_results(
    store: ResultStore | str | Path,
    suite: str | None = None,
    *,
    keys: Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
    metrics: Iterable[str] | None = None,
    include_failed: bool = False,
    final_loss: bool = False,
    versions: bool = True,
) -> pd.DataFrame:
    """The stored scores as a tidy :class:`pandas.DataFrame`, one row per (run, layer, metric).

    Args:
        store: a :class:`~archbench.store.ResultStore` or the path of a results database.
        suite: only this suite's runs (default: every run in the store).
        keys: only these run keys.
        tasks, metrics: only these tasks / metrics (``metrics`` by stored or scored name).
        include_failed: also the partial results of failed runs (adds a ``status`` column).
        final_loss: add one row per result with the metric ``final_loss`` (its final loss).
        versions: add the ``<package>_version`` columns.

    Returns:
        The frame described in :mod:`archbench.frame` (columns :data:`IDENTITY`, then
        :data:`ROW`, then versions). Empty (with those columns) when nothing matches.

    Example::

        df = archbench.load_results("archbench-results/results.db", suite="ci")
        df[df.metric == "ssim"].pivot_table(index="arch", columns="layer", values="value")
    """
    frame = load_tables(store, suite, keys=keys, include_failed=include_failed, final_loss=final_loss,
                        versions=versions).scores
    if tasks is None and metrics is None:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    if tasks is not None:
        keep &= frame["task"].isin(list(tasks)).to_numpy()
    if metrics is not None:
        wanted = list(metrics)
        keep &= (frame["metric"].isin(wanted) | frame["scored_metric"].isin(wanted)).to_numpy()
    out = frame[keep].reset_index(drop=True)
    for c in out.select_dtypes("category").columns:
        out[c] = out[c].cat.remove_unused_categories()
    out.attrs = dict(frame.attrs)
    return out


def frame_from_results(results: Iterable[StoredResult]) -> pd.DataFrame:
    """The :func:`load_results` layout of in-memory :class:`~archbench.store.StoredResult` rows
    (what :meth:`ResultStore.results` returns), without versions; for reports built from them."""
    columns, ints, floats = run_columns(), _int_columns(), _float_columns()
    rows = []
    for r in results:
        ident = tuple(value(r.config) for _, value in columns)
        stall = np.nan if r.stalled is None else float(r.stalled)
        for m, v in r.metrics.items():
            rows.append((*ident, r.layer, 0, m, np.nan if v is None else float(v), stall))
    identity = [name for name, _ in columns]
    cols = [*identity, "layer", "position", "metric", "value", "stalled"]
    frame = pd.DataFrame.from_records(rows, columns=cols)
    # positions: the order of the results as given (one result per run and layer)
    if len(frame):
        frame["position"] = pd.factorize(pd.MultiIndex.from_arrays([frame["key"], frame["layer"]]))[0]
    for name in cols:
        if name in ints or name == "position":
            frame[name] = frame[name].astype(np.int64)
        elif name == "stalled":
            frame[name] = _stalled_array(frame[name].to_numpy(dtype=float))
        elif name in floats:
            frame[name] = frame[name].astype(float)
        elif name not in ("value", "stalled"):
            frame[name] = _category(frame[name].tolist())
    frame["scored_metric"] = scored_metric_column(frame["metric"], frame["judge"])
    return frame[[*identity, *ROW]]


def _judged(metric: str) -> bool:
    from archbench.metric_info import metric_info

    info = metric_info(metric)
    return bool(info and info.judged)


def _higher(metric: str) -> bool:
    """The direction of a metric, as baselines record it (an unknown metric: higher is better)."""
    from archbench.metric_info import metric_info

    info = metric_info(metric)
    return True if info is None else info.higher_is_better


def group_bounds(codes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort by the non-negative integer key arrays ``codes`` (first = most significant);
    returns the order and the start index of each group of equal keys in the sorted order (plus
    the end). Keys are packed into one int64 when they fit (one argsort instead of a lexsort)."""
    arrays = [np.asarray(c, dtype=np.int64) for c in codes]
    n = len(arrays[0]) if arrays else 0
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    sizes = [int(a.max()) + 1 for a in arrays]
    if all(a.min() >= 0 for a in arrays) and math.prod(sizes) < 2**62:
        key = np.zeros(n, dtype=np.int64)
        for a, size in zip(arrays, sizes, strict=True):
            key = key * size + a
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(sorted_key[1:], sorted_key[:-1], out=change[1:])
    else:
        order = np.lexsort(tuple(reversed(arrays)))
        change = np.zeros(n, dtype=bool)
        change[0] = True
        for a in arrays:
            s = a[order]
            change[1:] |= s[1:] != s[:-1]
    return order, np.append(np.flatnonzero(change), n)


def sorted_codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``values`` in sorted order of the values, and the sorted distinct values
    (``-1`` for missing ones). A categorical column is read through its codes, without building a
    string per row."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        names = np.asarray(values.cat.categories, dtype=object)
        codes = values.cat.codes.to_numpy().astype(np.int64)
        order = np.argsort(names.astype(str), kind="stable")
        if np.any(order != np.arange(len(order))):  # categories not in sorted order: recode
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
            names = names[order]
        return codes, names
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def score_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per task, arch, init, layer and -- for a metric scored in a judge
    network -- judge, over the (image, seed) results; the entries of a baseline.

    Columns ``task, arch, init, layer, metric, judge, higher_is_better, mean, n`` (``judge`` None
    for metrics that have none), sorted by ``(task, arch, init, layer, metric, judge)``; rows of
    ``final_loss`` (``load_results(..., final_loss=True)``) are means like any metric. Missing and
    non-finite values are left out; the mean is ``numpy.mean`` over the values in store order (as
    :func:`archbench.report.check.score_entries` computes it).
    """
    cols = ["task", "arch", "init", "layer", "metric", "judge", "higher_is_better", "mean", "n"]
    needed = frame[["task", "arch", "init", "layer", "metric", "judge", "value"]]
    f = needed[np.isfinite(needed["value"].to_numpy(dtype=float))]
    if f.empty:
        return pd.DataFrame(columns=cols)
    parts = [sorted_codes(f[c]) for c in ("task", "arch", "init", "layer", "metric")]
    m_codes, m_names = parts[4]
    j_codes, j_names = sorted_codes(f["judge"])
    judged = np.array([_judged(str(m)) for m in m_names], dtype=bool)
    judge = np.where(judged[m_codes] & (j_codes >= 0), j_codes + 1, 0)  # 0: no judge (sorts first, as "")
    order, bounds = group_bounds([c for c, _ in parts] + [judge])
    values = f["value"].to_numpy(dtype=float)[order]
    rows = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        i = order[a]
        names = [str(n[c[i]]) for c, n in parts]
        rows.append((*names, str(j_names[judge[i] - 1]) if judge[i] else None, _higher(names[4]),
                     float(np.mean(values[a:b])), int(b - a)))
    out = pd.DataFrame.from_records(rows, columns=cols)
    out["judge"] = pd.Series([r[5] for r in rows], dtype=object)  # None, not NaN, where there is no judge
    return out
