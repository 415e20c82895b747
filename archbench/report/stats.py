"""Statistics of the leaderboards: means, bootstrap intervals, paired tests, Holm correction, ranks.

All functions are pure and deterministic (the bootstrap takes a seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean ``Σ v / n`` (NaN for no values)."""
    return float(np.mean(values)) if len(values) else float("nan")


def std(values: Sequence[float]) -> float:
    """Sample standard deviation (``ddof = 1``; 0 for fewer than two values)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, n_boot: int = 4000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean.

    Draws ``n_boot`` resamples of ``values`` with replacement (``numpy.random.default_rng(seed)``),
    takes each resample's mean and returns the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of
    those means (Efron's percentile interval). One value gives ``(v, v)``; none gives NaNs.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def wilcoxon_p(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Two-sided p-value of the Wilcoxon signed-rank test on the paired differences ``x - y``.

    Matches ``scipy.stats.wilcoxon(x, y)`` (zero differences dropped, ``method="auto"``: exact for
    small samples without ties). Returns 1.0 when every difference is zero (no evidence of a
    difference) and None with fewer than one non-zero pair.
    """
    from scipy.stats import wilcoxon

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError("wilcoxon_p needs paired samples of equal length")
    if a.size == 0:
        return None
    d = a - b
    if np.all(d == 0):
        return 1.0
    res = wilcoxon(a, b)
    p = float(res.pvalue)
    return None if math.isnan(p) else p


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (None entries are skipped and stay None).

    With the m non-missing p-values sorted ascending p_(1) ≤ … ≤ p_(m), the adjusted value is
    p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)) (step-down, monotone). Reject at level α
    where p̃ ≤ α; this controls the family-wise error rate.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda k: pvalues[k])):  # type: ignore[arg-type,return-value]
        adj = min(1.0, (m - rank) * float(pvalues[i]))  # type: ignore[arg-type]
        running = max(running, adj)
        out[i] = running
    return out


def rank(values: Sequence[float], higher_is_better: bool) -> list[float]:
    """Ranks (1 = best) with ties sharing the average rank (``scipy.stats.rankdata``)."""
    from scipy.stats import rankdata

    x = np.asarray(values, dtype=float)
    return [float(r) for r in rankdata(-x if higher_is_better else x, method="average")]
