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
import functools
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


def _short(label: str | None) -> str:
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
    comp = md_escape(_short(c.comparator)) if c.comparator else "comparator"
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
        best = f"{md_escape(_short(r.best_baseline))} ({fnum(r.best_baseline_spearman)})" if r.best_baseline else ""
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
