"""Honest selection: choices made from the data, evaluated by leave-one-family-out cross-validation.

A table of Spearman ρ over a couple of dozen architectures invites picking its best row -- a
stride level, a metric, a task, an init, or a visualisation score combined with a proxy -- and
quoting that row's ρ. That number is optimistic: it is the maximum of many noisy estimates. This
module evaluates the *procedure* that makes the pick instead, the way a reviewer at a NAS venue
would: the pick is made without the architectures it is tested on.

Protocol (:func:`select_and_validate`):

* **Candidates** are score columns over the same ``n`` architectures, each oriented by its
  metric's declared direction (higher = predicted better; never flipped by the data), in two
  pools: ``V`` (visualisation scores) and ``P`` (baselines: proxies, parameter count, FLOPs).
* **Predictions without the truth.** A score becomes a prediction by its ranks over all ``n``
  architectures (average ranks for ties); a *rank average* of two scores is the mean of their
  ranks. These transforms read score values only, never the truth, so using every architecture's
  values in them leaks nothing; they put the predictions of different folds on one scale.
* **Procedures** (:data:`PROCEDURES`), each a rule that picks one candidate from a pool by its
  Spearman ρ with the truth *on the architectures it may see*: the best of ``V``; the best of
  ``P``; the best of ``V ∪ P``; the best rank average of a pair (v ∈ V, q ∈ P); the best of all of
  these. Ties go to the first candidate (``V`` in its order, then ``P``, then the pairs in (v, q)
  order); a candidate that is constant on the architectures seen cannot be picked.
* **Leave one family out** (:mod:`archbench.report.families`): for each family, the procedure
  picks on the other families' architectures, and the held-out family's architectures get the
  prediction of that pick. **The cross-validated ρ is Spearman's ρ between the pooled held-out
  predictions and the truth over all n architectures.** Pooled, not the mean of per-fold ρ: folds
  hold one to five architectures (ρ is undefined for a single-member family and ±1 for a pair),
  and the question is how well networks of an unseen family are ranked among the others. For a
  fixed score (a pool of one) nothing is chosen and the cross-validated ρ equals its ρ.
* **In-sample ρ** of a procedure: the pick made on all ``n`` architectures, and its ρ on them
  (what one would report without cross-validation).
* **Uncertainty**: a percentile bootstrap of the whole procedure. Each resample draws ``n``
  architectures with replacement (seeded), recomputes the rank transforms, redoes every fold's
  pick (a duplicated architecture stays in its family's fold, so it is never on both sides) and
  the in-sample pick, and recomputes both ρ and the comparator's ρ on the same resample: the
  intervals of the cross-validated ρ, the in-sample ρ and the paired difference
  ``cross-validated ρ − ρ(comparator)``. Resamples with a constant truth, fewer than two
  families or an undefined ρ are skipped.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

#: pools of candidates
VISUALISATION, BASELINE = "V", "P"


@dataclass(frozen=True)
class Procedure:
    """A selection rule: the pools of single candidates it picks from, and whether it also picks
    from the rank averages of (visualisation, baseline) pairs."""

    name: str
    description: str
    singles: tuple[str, ...]
    pairs: bool = False


PROCEDURES: tuple[Procedure, ...] = (
    Procedure("best visualisation score", "the visualisation score (task, metric, level, init) with the highest ρ",
              (VISUALISATION,)),
    Procedure("best baseline", "the proxy, parameter count or FLOPs with the highest ρ", (BASELINE,)),
    Procedure("best single score", "the score of either pool with the highest ρ", (VISUALISATION, BASELINE)),
    Procedure("visualisation + proxy", "the rank average of a visualisation score and a baseline with the highest ρ",
              (), True),
    Procedure("any", "the best of the single scores and the pairs", (VISUALISATION, BASELINE), True),
)


@dataclass
class Candidate:
    """A score over the cross-validation's architectures (oriented: higher = predicted better)."""

    label: str
    pool: str
    values: np.ndarray


@dataclass
class SelectionRow:
    """One procedure's in-sample and cross-validated ρ (see the module docstring)."""

    procedure: str
    description: str
    candidates: int
    n: int
    families: int
    chosen: str | None
    in_sample: float | None
    in_sample_ci_low: float | None
    in_sample_ci_high: float | None
    cv: float | None
    cv_ci_low: float | None
    cv_ci_high: float | None
    comparator: str | None = None
    comparator_spearman: float | None = None
    minus_comparator: float | None = None
    minus_comparator_ci_low: float | None = None
    minus_comparator_ci_high: float | None = None
    #: what each fold picked: candidate label -> the held-out families of the folds that picked it
    fold_choices: dict[str, list[str]] = field(default_factory=dict)


def _ranks(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a, axis=-1)


def _rho_rows(rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row of ``rows`` (K, m) with ``y`` (m,); NaN where a side is constant."""
    rx = _ranks(rows)
    ry = _ranks(y)
    ax = rx - rx.mean(axis=1, keepdims=True)
    ay = ry - ry.mean()
    den = np.sqrt((ax**2).sum(axis=1)) * math.sqrt(float((ay**2).sum()))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (ax @ ay) / den
    out[~(den > 1e-12)] = np.nan
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or not np.all(np.isfinite(x)):
        return None
    r = float(_rho_rows(x[None, :], y)[0])
    return None if math.isnan(r) else r


class _Design:
    """The prediction matrix of every candidate (single scores, then the pairs' rank averages)
    and each procedure's rows in it."""

    def __init__(self, pools: list[str]) -> None:
        self.v = [k for k, p in enumerate(pools) if p == VISUALISATION]
        self.p = [k for k, p in enumerate(pools) if p == BASELINE]
        order = self.v + self.p  # ties go to V first, then P
        self.order = order
        k = len(order)
        self.n_pairs = len(self.v) * len(self.p)
        self.rows: dict[str, np.ndarray] = {}
        for proc in PROCEDURES:
            singles = [i for i, c in enumerate(order) if pools[c] in proc.singles]
            pairs = list(range(k, k + self.n_pairs)) if proc.pairs else []
            self.rows[proc.name] = np.array(singles + pairs, dtype=np.int64)

    def matrix(self, x: np.ndarray) -> np.ndarray:
        """``x`` (candidates, n) -> predictions (singles in :attr:`order`, then pairs), label-free."""
        r = _ranks(x)
        singles = r[self.order]
        if not self.n_pairs:
            return singles
        pairs = (r[self.v][:, None, :] + r[self.p][None, :, :]) / 2.0
        return np.vstack([singles, pairs.reshape(self.n_pairs, -1)])

    def label(self, row: int, labels: list[str]) -> str:
        k = len(self.order)
        if row < k:
            return labels[self.order[row]]
        i, j = divmod(row - k, len(self.p))
        return f"rank average of {labels[self.v[i]]} and {labels[self.p[j]]}"


def _pick(rho: np.ndarray, rows: np.ndarray) -> int | None:
    vals = rho[rows]
    if len(vals) == 0 or np.all(np.isnan(vals)):
        return None
    return int(rows[int(np.nanargmax(vals))])


def _run(design: _Design, x: np.ndarray, y: np.ndarray, fam: np.ndarray) -> dict[str, tuple]:
    """Per procedure: (in-sample pick, in-sample ρ, cross-validated ρ, {fold family: pick})."""
    m = design.matrix(x)
    families = np.unique(fam)
    rho_all = _rho_rows(m, y)
    preds = {name: np.full(len(y), np.nan) for name in design.rows}
    picks: dict[str, dict] = {name: {} for name in design.rows}
    for f in families:
        test = fam == f
        rho = _rho_rows(m[:, ~test], y[~test]) if (~test).sum() >= 3 else np.full(len(m), np.nan)
        for name, rows in design.rows.items():
            k = _pick(rho, rows)
            picks[name][f] = k
            if k is not None:
                preds[name][test] = m[k, test]
    out = {}
    for name, rows in design.rows.items():
        k = _pick(rho_all, rows)
        in_rho = None if k is None else float(rho_all[k])
        cv = _spearman(preds[name], y) if len(families) >= 2 else None
        out[name] = (k, in_rho, cv, picks[name])
    return out


def _interval(values: list[float], level: float) -> tuple[float | None, float | None]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) < 10:
        return None, None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def select_and_validate(
    candidates: list[Candidate],
    truth: np.ndarray,
    families: list[str],
    comparator: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> list[SelectionRow]:
    """Every procedure of :data:`PROCEDURES` whose pools are not empty, evaluated by
    leave-one-family-out cross-validation (see the module docstring).

    Args:
        candidates: score columns over the same architectures (``values`` aligned with ``truth``).
        truth: the ground truth per architecture.
        families: the family of each architecture (:func:`archbench.report.families.family`).
        comparator: label of the candidate every procedure is compared with (NASWOT in the
            accuracy study), or None.
        n_boot, seed, level: bootstrap resamples of the whole procedure, their seed, the interval's level.
    """
    if not candidates:
        return []
    labels = [c.label for c in candidates]
    pools = [c.pool for c in candidates]
    x = np.vstack([np.asarray(c.values, dtype=float) for c in candidates])
    y = np.asarray(truth, dtype=float)
    fam_names = sorted(set(families))
    fam = np.array([fam_names.index(f) for f in families], dtype=np.int64)
    design = _Design(pools)
    comp = labels.index(comparator) if comparator in labels else None
    full = _run(design, x, y, fam)

    rng = np.random.default_rng(seed)
    boot: dict[str, list[tuple[float | None, float | None, float | None]]] = defaultdict(list)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_boot):
            idx = rng.integers(0, len(y), size=len(y))
            yb, fb = y[idx], fam[idx]
            if np.all(yb == yb[0]) or len(np.unique(fb)) < 2:
                continue
            xb = x[:, idx]
            res = _run(design, xb, yb, fb)
            comp_rho = _spearman(xb[comp], yb) if comp is not None else None
            for name, (_, in_rho, cv, _) in res.items():
                diff = cv - comp_rho if cv is not None and comp_rho is not None else None
                boot[name].append((in_rho, cv, diff))

    comp_rho_full = _spearman(x[comp], y) if comp is not None else None
    rows = []
    for proc in PROCEDURES:
        rows_idx = design.rows[proc.name]
        if len(rows_idx) == 0:
            continue
        k, in_rho, cv, picks = full[proc.name]
        samples = boot.get(proc.name, [])
        in_lo, in_hi = _interval([s[0] for s in samples], level)
        cv_lo, cv_hi = _interval([s[1] for s in samples], level)
        d_lo, d_hi = _interval([s[2] for s in samples], level)
        choices: dict[str, list[str]] = defaultdict(list)
        for f, pick in sorted(picks.items()):
            choices["(none)" if pick is None else design.label(pick, labels)].append(fam_names[f])
        rows.append(SelectionRow(
            procedure=proc.name, description=proc.description, candidates=len(rows_idx), n=len(y),
            families=len(fam_names), chosen=None if k is None else design.label(k, labels),
            in_sample=in_rho, in_sample_ci_low=in_lo, in_sample_ci_high=in_hi,
            cv=cv, cv_ci_low=cv_lo, cv_ci_high=cv_hi,
            comparator=comparator if comp is not None else None, comparator_spearman=comp_rho_full,
            minus_comparator=None if cv is None or comp_rho_full is None else cv - comp_rho_full,
            minus_comparator_ci_low=d_lo, minus_comparator_ci_high=d_hi,
            fold_choices=dict(sorted(choices.items(), key=lambda kv: (-len(kv[1]), kv[0]))),
        ))
    return rows
