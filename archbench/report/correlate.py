"""Does a training-free score predict trained accuracy? Rank correlations between leaderboard
scores and a ground truth.

He et al. (2016) end by suggesting that random-weight visualisation could rank architectures
without training them. This module tests that on a results store: for every task and metric (the
all-layer boards of :mod:`archbench.report.leaderboard`) and for the overall rank, it correlates
each architecture's mean score with a ground-truth value per architecture.

Ground truths (:func:`load_truth`):

* ``imagenet`` (alias ``imagenet-v1``) -- the ImageNet-1k top-1 accuracy that torchvision publishes
  for each model's ``IMAGENET1K_V1`` weights (the original training recipes, comparable across
  families), read from torchvision's weight metadata: nothing is downloaded;
* ``imagenet-best`` -- the same for each model's ``DEFAULT`` weights (newer recipes for some models,
  e.g. resnet50 80.9 instead of 76.1);
* ``FILE.csv`` -- your own values (NAS-Bench accuracies, your training runs): a header with the
  columns ``arch`` and ``value``; ``arch`` is an arch spec exactly as the store holds it (or a
  unit name ``spec @ init``).

Architectures are matched to torchvision's names by :func:`trained_counterpart`: ``tv:NAME`` is
``NAME``; the built-in ``alexnet`` and ``resnet18/34/50`` have torchvision's layout; the built-in
``vggN`` is ``vggN`` exactly with ``down=max`` and *approximately* with the paper's default average
pooling (marked ``approximate``; ``exact_only=True`` drops those). Variants that change the
architecture (``act=``, ``width=``, ``depth=``, strided downsampling, options of ``tv:`` models)
have no published accuracy and are listed as unmatched with the reason.

Statistics, per (task, metric, init) over the architectures that have a truth value:

* Spearman's ρ between the *oriented* score (higher = better, so lower-is-better metrics and the
  overall rank are negated) and the truth value: ρ > 0 means better scores go with higher truth;
* a two-sided permutation p-value of ρ (all n! orderings for n ≤ 8, else 20 000 seeded random
  permutations), Holm-corrected over the rows;
* a 95% percentile-bootstrap interval of ρ, resampling architectures (seeded);
* Kendall's τ-b;
* baselines over the same architectures where torchvision's metadata has them: ρ of the truth
  with the parameter count and with the GFLOPs of the trained model (the METHOD notes report
  ρ ≈ 0.20 and 0.32 on 30 torchvision CNNs). A score is only interesting if it beats these.
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archbench.errors import ConfigError
from archbench.escaping import md_cell as md_escape
from archbench.report import stats
from archbench.report.leaderboard import ALL_LAYERS, Leaderboard
from archbench.report.text import csv_text, number

log = logging.getLogger(__name__)

#: built-in ground truths: name -> description
TRUTHS: dict[str, str] = {
    "imagenet": "torchvision's published ImageNet-1k top-1 (%) of the IMAGENET1K_V1 weights (original recipes)",
    "imagenet-v1": "same as imagenet",
    "imagenet-best": "torchvision's published ImageNet-1k top-1 (%) of the DEFAULT weights (best recipe per model)",
}

#: a row of the overall rank in :class:`CorrelationRow` (``task``, ``metric``)
OVERALL = ("overall", "rank")

EXACT_PERMUTATION_MAX_N = 8
N_PERMUTATIONS = 20_000
N_BOOTSTRAP = 4_000


# -- matching archbench architectures to trained models ---------------------------------------
@dataclass(frozen=True)
class Counterpart:
    """The trained model an arch spec stands for.

    Attributes:
        name: torchvision model name (``None`` when there is none).
        match: ``exact``, ``approximate`` or ``none``.
        note: why it is approximate or why there is none.
    """

    name: str | None
    match: str
    note: str = ""


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def trained_counterpart(spec: str) -> Counterpart:
    """The torchvision model whose published accuracy belongs to ``spec``'s architecture."""
    from archbench.architectures.registry import parse_spec

    try:
        name, opts = parse_spec(spec)
    except ConfigError as exc:
        return Counterpart(None, "none", str(exc))
    prefix, sep, rest = name.partition(":")
    if sep and prefix == "tv":
        extra = sorted(k for k in opts if k != "weights")
        if extra:
            return Counterpart(None, "none", f"options {', '.join(extra)} change the trained architecture")
        return Counterpart(rest, "exact")
    if sep and prefix == "timm":
        return Counterpart(None, "none", "timm ships no accuracy metadata offline; give --truth FILE.csv")
    if sep or name.endswith(".py"):
        return Counterpart(None, "none", "user-defined architecture; give --truth FILE.csv")
    opts = {k: v for k, v in opts.items() if k != "fc"}  # classifier layers do not change the conv part
    if name in ("resnet18", "resnet34", "resnet50"):
        if opts:
            return Counterpart(None, "none", f"options {', '.join(sorted(opts))} change the architecture")
        return Counterpart(name, "exact")
    if name == "alexnet":
        pool = opts.pop("pool", "max")
        if opts or pool != "max":
            return Counterpart(None, "none", "a variant of AlexNet (the trained one pools by max)")
        return Counterpart(name, "exact")
    if name in ("vgg11", "vgg13", "vgg16", "vgg19"):
        down = opts.pop("down", None) or opts.pop("pool", "avg")
        opts.pop("pool", None)
        act = opts.pop("act", "relu")
        width, depth = _num(opts.pop("width", 1.0)), _num(opts.pop("depth", 1))
        if opts or act != "relu" or width != 1.0 or depth != 1.0 or down not in ("avg", "max"):
            return Counterpart(None, "none", "a variant of VGG (activation, width, depth or downsampling changed)")
        if down == "avg":
            return Counterpart(name, "approximate", f"average pooling; the trained {name} pools by max")
        return Counterpart(name, "exact")
    return Counterpart(None, "none", "no published accuracy for this architecture; give --truth FILE.csv")


# -- ground truths --------------------------------------------------------------------------
@dataclass(frozen=True)
class TruthValue:
    """A ground-truth value for one arch spec, plus the trained model's size where known."""

    value: float
    source: str
    match: str = "exact"
    note: str = ""
    params: float | None = None
    gflops: float | None = None


class GroundTruth:
    """A value per architecture. Subclasses implement :meth:`lookup`."""

    name: str = ""
    description: str = ""
    #: axis label of the values
    label: str = "value"

    def lookup(self, arch: str, unit: str | None = None) -> TruthValue | str:
        """The value for ``arch`` (spec as stored; ``unit`` its leaderboard name), or the reason
        there is none."""
        raise NotImplementedError


def _torchvision_meta(name: str, which: str) -> dict[str, Any] | None:
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None
    if which == "best":
        weights = enum.DEFAULT
    else:
        weights = getattr(enum, "IMAGENET1K_V1", None) or next(iter(enum))
    meta = dict(weights.meta)
    meta["_weights"] = f"{enum.__name__}.{weights.name}"
    return meta


class ImagenetTruth(GroundTruth):
    """ImageNet-1k top-1 published in torchvision's weight metadata (no download)."""

    def __init__(self, which: str = "v1") -> None:
        if which not in ("v1", "best"):
            raise ValueError(f"which must be 'v1' or 'best', not {which!r}")
        self.which = which
        self.name = "imagenet" if which == "v1" else "imagenet-best"
        self.description = TRUTHS[self.name]
        self.label = "ImageNet-1k top-1 (%)" + (" (best recipe)" if which == "best" else "")

    def lookup(self, arch: str, unit: str | None = None) -> TruthValue | str:
        cp = trained_counterpart(arch)
        if cp.name is None:
            return cp.note
        meta = _torchvision_meta(cp.name, self.which)
        if meta is None:
            return f"torchvision publishes no weights for {cp.name!r}"
        try:
            acc = float(meta["_metrics"]["ImageNet-1K"]["acc@1"])
        except (KeyError, TypeError, ValueError):
            return f"torchvision's {meta['_weights']} has no ImageNet-1K acc@1"
        return TruthValue(
            value=acc,
            source=meta["_weights"],
            match=cp.match,
            note=cp.note,
            params=_num(meta.get("num_params")),
            gflops=_num(meta.get("_ops")),
        )


class CsvTruth(GroundTruth):
    """Values from a CSV file with the columns ``arch`` and ``value``."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.name = path.name
        self.description = f"values from {path}"
        self.label = f"value in {path.name}"
        if not path.is_file():
            raise ConfigError(f"ground-truth file {str(path)!r} does not exist; built-in truths: {', '.join(TRUTHS)}")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read ground-truth file {str(path)!r}: {exc}") from None
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip() for f in (reader.fieldnames or [])]
        if "arch" not in fields or "value" not in fields:
            raise ConfigError(
                f"{path}: the header must name the columns 'arch' and 'value' (found: {', '.join(fields) or 'nothing'})"
            )
        self.values: dict[str, float] = {}
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            arch, raw = row.get("arch", ""), row.get("value", "")
            if not arch:
                raise ConfigError(f"{path}:{line}: empty arch")
            value = _num(raw)
            if value is None or not math.isfinite(value):
                raise ConfigError(f"{path}:{line}: value {raw!r} for {arch!r} is not a finite number")
            if arch in self.values:
                raise ConfigError(f"{path}:{line}: {arch!r} appears twice")
            self.values[arch] = value
        if not self.values:
            raise ConfigError(f"{path}: no rows")

    def lookup(self, arch: str, unit: str | None = None) -> TruthValue | str:
        for key in (unit, arch):
            if key is not None and key in self.values:
                return TruthValue(value=self.values[key], source=self.name)
        return f"not in {self.name}"


def load_truth(name: str) -> GroundTruth:
    """A built-in ground truth by name (:data:`TRUTHS`) or a CSV file's path."""
    if name in ("imagenet", "imagenet-v1"):
        return ImagenetTruth("v1")
    if name == "imagenet-best":
        return ImagenetTruth("best")
    if name.lower().endswith(".csv") or Path(name).exists():
        return CsvTruth(name)
    from archbench.registry import unknown_name_message

    raise ConfigError(unknown_name_message("ground truth", name, list(TRUTHS)) + " (or give a FILE.csv)")


# -- statistics -------------------------------------------------------------------------------
def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's ρ (average ranks for ties); None when either side is constant or n < 3."""
    from scipy.stats import spearmanr

    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(spearmanr(x, y).statistic)
    return None if math.isnan(rho) else rho


def kendall(x: np.ndarray, y: np.ndarray) -> float | None:
    """Kendall's τ-b; None when either side is constant or n < 3."""
    from scipy.stats import kendalltau

    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tau = float(kendalltau(x, y).statistic)
    return None if math.isnan(tau) else tau


def _rho_of_ranks(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of rank vectors ``rx`` (n,) against each row of ``ry`` (P, n)."""
    ax = rx - rx.mean()
    ay = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((ax**2).sum()) * np.sqrt((ay**2).sum(axis=-1))
    return (ay @ ax) / den


def permutation_p(x: np.ndarray, y: np.ndarray, seed: int = 0, n_perm: int = N_PERMUTATIONS) -> float | None:
    """Two-sided permutation p-value of Spearman's ρ: ``scipy.stats.permutation_test`` of the
    statistic ``|ρ|`` over pairings of ``y`` with ``x`` (alternative ``greater``), i.e. the share
    of orderings of ``y`` whose |ρ| is at least the observed one: every ordering for n ≤ 8
    (exact), else ``(k + 1) / (n_perm + 1)`` over ``n_perm`` random permutations drawn by
    ``numpy.random.default_rng(seed)``."""
    from scipy.stats import permutation_test, rankdata

    if spearman(x, y) is None:
        return None
    rx, ry = rankdata(x), rankdata(y)
    n = len(x)
    resamples = math.factorial(n) if n <= EXACT_PERMUTATION_MAX_N else n_perm

    def abs_rho(r: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.abs(_rho_of_ranks(rx, np.moveaxis(r, axis, -1)))

    from archbench.report.stats import _scipy_rng_kwargs

    res = permutation_test((ry,), abs_rho, permutation_type="pairings", vectorized=True, n_resamples=resamples,
                           alternative="greater", **_scipy_rng_kwargs(seed))
    return float(res.pvalue)


def _bootstrap_rhos(y: np.ndarray, columns: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """Spearman's ρ of each column with ``y`` on ``n_boot`` seeded resamples of the architectures
    (the same resample for every column), ``(valid resamples, len(columns))``; resamples in which
    ``y`` or a column is constant are skipped. All resamples are ranked at once (``rankdata`` along
    rows): the same draws and ranks as one resample at a time."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(y), size=(n_boot, len(y)))
    by = y[rows]
    picked = [c[rows] for c in columns]
    keep = ~np.all(by == by[:, :1], axis=1)
    for c in picked:
        keep &= ~np.all(c == c[:, :1], axis=1)
    rx = rankdata(by[keep], axis=1)
    ax = rx - rx.mean(axis=1, keepdims=True)
    out = np.empty((int(keep.sum()), len(columns)))
    for k, c in enumerate(picked):
        ry = rankdata(c[keep], axis=1)
        ay = ry - ry.mean(axis=1, keepdims=True)
        out[:, k] = (ay * ax).sum(axis=1) / (np.sqrt((ax**2).sum(axis=1)) * np.sqrt((ay**2).sum(axis=1)))
    return out


def _interval(values: np.ndarray, level: float) -> tuple[float, float] | None:
    if len(values) < 10:
        return None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_rho(
    x: np.ndarray, y: np.ndarray, level: float = 0.95, n_boot: int = N_BOOTSTRAP, seed: int = 0
) -> tuple[float | None, float | None]:
    """Percentile-bootstrap interval of Spearman's ρ, resampling the (x, y) pairs; resamples with a
    constant side are skipped. ``(None, None)`` when ρ is undefined."""
    if spearman(x, y) is None:
        return None, None
    return _interval(_bootstrap_rhos(y, [x], n_boot, seed)[:, 0], level) or (None, None)


def bootstrap_rho_difference(
    x: np.ndarray, z: np.ndarray, y: np.ndarray, level: float = 0.95, n_boot: int = N_BOOTSTRAP, seed: int = 0
) -> tuple[float | None, float | None, float | None]:
    """``ρ(x, y) − ρ(z, y)`` and its paired percentile-bootstrap interval (the same resampled
    architectures for both ρ): does score ``x`` track ``y`` better than baseline ``z``? Resamples with
    a constant side are skipped; ``(None, None, None)`` when either ρ is undefined."""
    r1, r2 = spearman(x, y), spearman(z, y)
    if r1 is None or r2 is None:
        return None, None, None
    rhos = _bootstrap_rhos(y, [x, z], n_boot, seed)
    lo, hi = _interval(rhos[:, 0] - rhos[:, 1], level) or (None, None)
    return r1 - r2, lo, hi


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
    points: list[Point] = field(default_factory=list)


@dataclass
class Correlation:
    """Everything :func:`correlate` found."""

    truth: str
    truth_description: str
    suite: str | None
    rows: list[CorrelationRow]
    unmatched: dict[str, str]
    truth_label: str = "value"

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
            "rows": [asdict(r) for r in self.rows],
            "unmatched": self.unmatched,
        }


def _baseline(points: list[Point], attr: str) -> float | None:
    pairs = [(getattr(p, attr), p.truth) for p in points if getattr(p, attr) is not None]
    if len(pairs) != len(points):
        return None  # only where every architecture has the value: same set as the score's ρ
    a = np.array(pairs, dtype=float)
    return spearman(a[:, 0], a[:, 1])


def _row(task: str, metric: str, init: str, higher: bool, points: list[Point], seed: int, layer: str) -> CorrelationRow:
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
        points=sorted(points, key=lambda p: -p.truth),
    )


def tap_levels(spec: str) -> dict[str, tuple[int, int]]:
    """``{tap name: (stride level, channels)}`` of an architecture in tap order (built without
    initialising weights; empty when it cannot be built here)."""
    from archbench.architectures.registry import build_arch

    try:
        net = build_arch(spec)
    except Exception as exc:  # noqa: BLE001 - an arch of another machine's plugin: no levels here
        log.warning("cannot build %s to read its tap levels: %s", spec, exc)
        return {}
    return {t.name: (t.level, t.channels) for t in net.taps}


def _level_scores(
    lb: Leaderboard, level: int
) -> dict[tuple[str, str], list[tuple[str, str, str, str, float, int]]]:
    """Per (task, metric): ``(unit, arch, init, layer, mean, channels)`` of each unit at its first tap of
    stride ``level`` (tap order) among the layers it has results for; a layer set ``a..b`` (the
    texture task's cumulative sets) counts at the level of its last tap ``b``."""
    levels: dict[str, dict[str, tuple[int, int]]] = {}
    per: dict[tuple[str, str], dict[str, tuple[str, str, str, dict[str, float]]]] = {}
    for b in lb.boards:
        if b.layer == ALL_LAYERS:
            continue
        for e in b.entries:
            slot = per.setdefault((b.task, b.metric), {}).setdefault(e.unit, (e.unit, e.arch, e.init, {}))
            slot[3][b.layer] = e.mean
    out: dict[tuple[str, str], list[tuple[str, str, str, str, float, int]]] = {}
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
                out.setdefault(key, []).append((unit, arch, init, label, layers[label], channels))
    return out


def correlate(
    lb: Leaderboard, truth: GroundTruth, exact_only: bool = False, seed: int = 0, level: int | None = None
) -> Correlation:
    """Correlate every all-layer board of ``lb`` (and its overall rank) with ``truth``, per init.

    With ``level``, a unit's score in a task is instead its mean at its first tap of that stride
    level (1/2**level of the input; :func:`tap_levels`), so that architectures are compared at
    equal depth; for layer sets ``a..b`` (texture) the set whose last tap is that tap. Units
    without such a layer are left out of that row.

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

    def point(arch: str, init: str, unit: str, score: float, higher: bool, layer: str = "") -> Point | None:
        tv = lookups.get((arch, init))
        if not isinstance(tv, TruthValue) or not math.isfinite(score):
            return None
        note = "; ".join(x for x in (tv.note, f"layer {layer}" if layer else "") if x)
        return Point(
            unit=unit, arch=arch, init=init, score=score, oriented=score if higher else -score,
            truth=tv.value, source=tv.source, match=tv.match, note=note, params=tv.params, gflops=tv.gflops,
        )

    rows: list[CorrelationRow] = []
    if level is None:
        for b in lb.boards:
            if b.layer != ALL_LAYERS:
                continue
            by_init: dict[str, list[Point]] = {}
            for e in b.entries:
                p = point(e.arch, e.init, e.unit, e.mean, b.higher_is_better)
                if p is not None:
                    by_init.setdefault(e.init, []).append(p)
            for init, points in sorted(by_init.items()):
                rows.append(_row(b.task, b.metric, init, b.higher_is_better, points, seed, ALL_LAYERS))
    else:
        directions = {(b.task, b.metric): b.higher_is_better for b in lb.boards}
        for (task, metric), entries in sorted(_level_scores(lb, level).items()):
            higher = directions[(task, metric)]
            by_init = {}
            for unit, arch, init, layer, mean, channels in entries:
                p = point(arch, init, unit, mean, higher, layer)
                if p is not None:
                    p.channels = channels
                    by_init.setdefault(init, []).append(p)
            for init, points in sorted(by_init.items()):
                rows.append(_row(task, metric, init, higher, points, seed, f"level {level}"))
    by_init = {}
    for o in lb.overall:
        p = point(o.arch, o.init, o.unit, o.mean_rank, False)
        if p is not None:
            by_init.setdefault(o.init, []).append(p)
    for init, points in sorted(by_init.items()):
        rows.append(_row(*OVERALL, init, False, points, seed, ALL_LAYERS))
    for r, p in zip(rows, stats.holm([r.p_value for r in rows]), strict=True):
        r.p_holm = p
    if not rows:
        log.warning("no architecture in the leaderboard has a %s value", truth.name)
    return Correlation(truth.name, truth.description, lb.suite, rows, unmatched, truth_label=truth.label)


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
    "minus_gflops_ci_high",
)


def to_csv(c: Correlation) -> str:
    """One line per (task, metric, init)."""
    return csv_text(CSV_COLUMNS, ([getattr(r, k) for k in CSV_COLUMNS] for r in c.rows))


POINTS_COLUMNS = ("task", "metric", "layer", "init", "unit", "arch", "score", "truth", "source", "match", "note",
                  "params", "gflops", "channels")


def points_csv(c: Correlation) -> str:
    """One line per (task, metric, init, architecture): the data behind every ρ."""
    rows = ([r.task, r.metric, r.layer, r.init, p.unit, p.arch, p.score, p.truth, p.source, p.match, p.note,
             None if p.params is None else int(p.params), p.gflops, p.channels] for r in c.rows for p in r.points)
    return csv_text(POINTS_COLUMNS, rows)


def delta_text(r: CorrelationRow) -> str:
    """``ρ − ρ GFLOPs [lo, hi]`` or empty."""
    if r.minus_gflops is None:
        return ""
    ci = f" [{fnum(r.minus_gflops_ci_low, 2)}, {fnum(r.minus_gflops_ci_high, 2)}]" if r.minus_gflops_ci_low is not None else ""
    return f"{number(r.minus_gflops, '+.2f')}{ci}"


def to_markdown(c: Correlation, level: int = 1) -> str:
    """A summary table and, per row, the architectures behind it; ``level``: the heading depth."""
    h1, h2 = "#" * level, "#" * (level + 1)
    lines = [
        f"{h1} Does the score predict {md_escape(c.truth)}?",
        "",
        f"Ground truth: {md_escape(c.truth_description)}.",
        "Spearman's ρ between each architecture's mean score (oriented: higher = better) and its truth value; "
        "95% bootstrap interval over architectures; two-sided permutation p, Holm-corrected over the rows; "
        "Kendall's τ-b; ρ of the truth with the trained model's parameter count and GFLOPs over the same "
        "architectures as baselines (and, with a stride level, with the channel count of the tap scored: ρ width); "
        "ρ − ρ GFLOPs with a paired bootstrap interval: an interval above 0 means the score beats GFLOPs.",
        "",
        "| task | metric | layer | init | n | ρ | 95% CI | p | p (Holm) | τ | ρ params | ρ GFLOPs | ρ width "
        "| ρ − ρ GFLOPs [95% CI] |",
        "|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in c.rows:
        ci = f"[{fnum(r.ci_low, 2)}, {fnum(r.ci_high, 2)}]" if r.ci_low is not None else ""
        n = f"{r.n}" + (f" ({r.n_approximate}≈)" if r.n_approximate else "")
        lines.append(
            f"| {md_escape(r.task)} | {md_escape(r.metric)} | {md_escape(r.layer)} | {md_escape(r.init)} | {n} | {fnum(r.spearman)} | {ci} | {fpval(r.p_value)} | "
            f"{fpval(r.p_holm)} | {fnum(r.kendall)} | {fnum(r.params_spearman)} | {fnum(r.gflops_spearman)} | "
            f"{fnum(r.channels_spearman)} | {delta_text(r)} |"
        )
    if any(r.n_approximate for r in c.rows):
        lines += ["", "≈: architectures matched only approximately (see the tables below)."]
    if any(r.n < 3 for r in c.rows):
        lines += ["", "Rows with fewer than 3 architectures have no statistics."]
    for r in c.rows:
        lines += [
            "",
            f"{h2} {md_escape(r.task)} / {md_escape(r.metric)}{'' if r.layer == ALL_LAYERS else ' at ' + md_escape(r.layer)} ({md_escape(r.init)})",
            "",
            f"| architecture | truth | score ({'higher' if r.higher_is_better else 'lower'} is better) | trained model | match |",
            "|---|---:|---:|---|---|",
        ]
        for p in r.points:
            match = p.match + (f" ({md_escape(p.note)})" if p.note else "")
            lines.append(f"| {md_escape(p.unit)} | {number(p.truth, 'g')} | {number(p.score)} | {md_escape(p.source)} | {match} |")
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
