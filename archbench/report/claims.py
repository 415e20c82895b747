"""Test a suite's claims (:mod:`archbench.claims`) on its stored results, with paired statistics.

For every (better, worse) pair of arms of a claim:

* **paired observations**: each arm's values matched on (image, seed, layer) -- on (image, seed)
  when an arm fixes its layer; a ``spread`` claim compares, per (image, layer), the standard
  deviation over seeds of each arm;
* **difference** ``d = better − worse`` with the metric's direction folded in (higher = the claim
  holds: for a lower-is-better metric such as ``gram`` or ``iterations-to-loss`` the values are
  negated; for ``spread`` it is the worse arm's spread minus the better arm's);
* its mean with a **95% percentile-bootstrap interval** (:func:`scipy.stats.bootstrap`, 4000
  resamples, seeded), the **two-sided Wilcoxon signed-rank p** (:func:`scipy.stats.wilcoxon`),
  **Holm**-corrected over every pair of every claim of the report, the **effect size** Cohen's
  ``d_z = mean(d) / sd(d)``, and ``n``.

**Verdict** (stated in every report): a pair is ``supported`` when its Holm-corrected p < 0.05 and
its interval lies above 0, ``contradicted`` when p < 0.05 and the interval lies below 0, and
``inconclusive`` otherwise (also with fewer than :data:`MIN_PAIRS` pairs). A claim is supported
when all its pairs are, contradicted when any is, inconclusive otherwise. A claim whose arms
have no results because a trained network's weights are absent is ``not run: weights absent``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archbench.claims import Arm, Claim
from archbench.report import stats

ALPHA = 0.05
MIN_PAIRS = 5
N_BOOT = 4000
VERDICTS = ("supported", "contradicted", "inconclusive")
NOT_RUN = "not run"
RULE = (
    "A pair of arms is supported when its Holm-corrected two-sided Wilcoxon signed-rank p < 0.05 and the 95% "
    "bootstrap interval of the mean paired difference (oriented so that > 0 favours the claim) lies above 0; "
    "contradicted when p < 0.05 and the interval lies below 0; inconclusive otherwise or with fewer than "
    f"{MIN_PAIRS} pairs. A claim is supported when every pair is, contradicted when any pair is, inconclusive "
    "otherwise; Holm corrects over every pair of every claim in the report."
)


@dataclass
class PairResult:
    """The test of one (better, worse) pair."""

    better: str
    worse: str
    n: int = 0
    mean_better: float | None = None
    mean_worse: float | None = None
    diff: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None
    p_holm: float | None = None
    effect: float | None = None
    verdict: str = "inconclusive"
    note: str = ""


@dataclass
class ClaimResult:
    """A claim, its pairs' tests and its verdict."""

    claim: Claim
    pairs: list[PairResult] = field(default_factory=list)
    verdict: str = "inconclusive"
    note: str = ""
    judge: str | None = None

    @property
    def id(self) -> str:
        return self.claim.id

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        c = self.claim
        return {
            "id": c.id, "text": c.text, "source": c.source, "task": c.task, "metric": c.metric, "kind": c.kind,
            "judge": self.judge, "layers": c.layers, "verdict": self.verdict, "note": self.note,
            "pairs": [asdict(p) for p in self.pairs],
        }


# ----------------------------------------------------------------------------------------------
# observations


def iterations_to(trace: list[float], fraction: float) -> float:
    """First iteration (1-based) whose loss is at most ``fraction`` of the first loss;
    ``len(trace) + 1`` when none is (the run did not get there within its budget)."""
    if not trace:
        return math.nan
    goal = fraction * trace[0]
    for i, v in enumerate(trace, 1):
        if v <= goal:
            return float(i)
    return float(len(trace) + 1)


def _value(r: Any, claim: Claim) -> float | None:
    if claim.metric == "iterations-to-loss":
        return iterations_to(r.loss_trace, claim.threshold)
    if claim.metric == "final_loss":
        return r.final_loss
    return r.metrics.get(claim.metric)


def _matches(r: Any, arm: Arm, claim: Claim) -> bool:
    from archbench.config import canonical_init

    if r.task != claim.task or r.arch != arm.spec or r.config.init != canonical_init(arm.init, r.config.device):
        return False
    opts = r.config.task_options()
    if any(opts.get(k) != v for k, v in arm.options):
        return False
    if arm.layer is not None:
        return r.layer == arm.layer
    return claim.layers is None or r.layer in claim.layers


def arm_observations(results: Iterable[Any], arm: Arm, claim: Claim) -> tuple[dict[tuple, float], set[str]]:
    """``(image, seed, layer) -> value`` of ``arm`` (layer None when the arm fixes it) and the judges."""
    out: dict[tuple, float] = {}
    judges: set[str] = set()
    for r in results:
        if not _matches(r, arm, claim):
            continue
        if claim.judge is not None and r.judge != claim.judge:
            continue
        v = _value(r, claim)
        if v is None or not math.isfinite(v):
            continue
        out[(r.image, r.seed, None if arm.layer else r.layer)] = float(v)
        if r.judge:
            judges.add(r.judge)
    return out, judges


# ----------------------------------------------------------------------------------------------
# statistics


def _direction(claim: Claim) -> float:
    from archbench.metric_info import higher_is_better

    if claim.kind == "spread" or claim.metric == "iterations-to-loss":
        return -1.0
    return 1.0 if higher_is_better(claim.metric) else -1.0


def _spread(obs: dict[tuple, float]) -> dict[tuple, float]:
    """(image, layer) -> standard deviation over seeds (at least two seeds)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for (image, _seed, layer), v in obs.items():
        groups[(image, layer)].append(v)
    return {k: float(np.std(v, ddof=1)) for k, v in groups.items() if len(v) >= 2}


def paired_differences(better: dict[tuple, float], worse: dict[tuple, float], claim: Claim,
                       ) -> tuple[np.ndarray, float | None, float | None]:
    """Oriented differences (> 0 favours the claim) and each arm's mean over the matched pairs."""
    if claim.kind == "spread":
        better, worse = _spread(better), _spread(worse)
        keys = sorted(set(better) & set(worse), key=str)
        d = np.array([worse[k] - better[k] for k in keys])
    else:
        # an arm that fixes its layer is matched on (image, seed) with the other arm's same layer key
        def strip(o: dict[tuple, float]) -> dict[tuple, float]:
            return {(k[0], k[1]) if k[2] is None else k: v for k, v in o.items()}

        better, worse = strip(better), strip(worse)
        keys = sorted(set(better) & set(worse), key=str)
        d = _direction(claim) * np.array([better[k] - worse[k] for k in keys])
    if not keys:
        return np.array([]), None, None
    return d, float(np.mean([better[k] for k in keys])), float(np.mean([worse[k] for k in keys]))


def paired_test(d: np.ndarray, seed: int = 0) -> tuple[float | None, tuple[float, float] | None, float | None, float | None]:
    """``(mean, 95% bootstrap interval, Wilcoxon p, d_z)`` of paired differences ``d``."""
    from scipy.stats import bootstrap, wilcoxon

    if len(d) == 0:
        return None, None, None, None
    mean = float(np.mean(d))
    if len(d) < 2 or np.all(d == d[0]):
        ci = (mean, mean)
    else:
        res = bootstrap((d,), np.mean, n_resamples=N_BOOT, confidence_level=0.95, method="percentile",
                        random_state=np.random.default_rng(seed), vectorized=True)
        ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    p = None
    if np.any(d != 0):
        p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
    effect = mean / sd if sd > 0 else None
    return mean, ci, p, effect


def _pair_verdict(pr: PairResult) -> str:
    if pr.n < MIN_PAIRS or pr.p_holm is None or pr.ci is None or pr.p_holm >= ALPHA:
        return "inconclusive"
    if pr.ci[0] > 0:
        return "supported"
    if pr.ci[1] < 0:
        return "contradicted"
    return "inconclusive"


def _not_run_reason(arm: Arm, claim: Claim, runs: Iterable[Any]) -> str:
    """Why an arm has no results: its runs were skipped or failed for absent weights, or none ran."""
    from archbench.config import canonical_init

    mine = [r for r in runs if r.task == claim.task and r.arch == arm.spec
            and r.config.init == canonical_init(arm.init, r.config.device)]
    if any("weights" in (r.error or "") and r.status != "done" for r in mine):
        return "weights absent"
    if mine and all(r.status != "done" for r in mine):
        return "failed: " + (mine[0].error or "no result")
    return "no results"


def evaluate_claims(claims: list[Claim], results: list[Any], runs: list[Any] | None = None, seed: int = 0) -> list[ClaimResult]:
    """Test every claim on ``results`` (stored per-layer results, loss traces included when a claim
    uses ``iterations-to-loss``); ``runs`` (stored runs) explain arms without results."""
    out: list[ClaimResult] = []
    for claim in claims:
        cr = ClaimResult(claim)
        judges: set[str] = set()
        for k, (better, worse) in enumerate(claim.pairs):
            pr = PairResult(better.label(), worse.label())
            ob, jb = arm_observations(results, better, claim)
            ow, jw = arm_observations(results, worse, claim)
            judges |= jb | jw
            missing = [a for a, o in ((better, ob), (worse, ow)) if not o]
            if missing:
                reason = _not_run_reason(missing[0], claim, runs or [])
                pr.note = f"{NOT_RUN}: {reason}" if reason == "weights absent" else f"{missing[0].label()}: {reason}"
                pr.verdict = NOT_RUN if reason == "weights absent" else "inconclusive"
                cr.pairs.append(pr)
                continue
            d, pr.mean_better, pr.mean_worse = paired_differences(ob, ow, claim)
            pr.n = len(d)
            pr.diff, pr.ci, pr.p, pr.effect = paired_test(d, seed + k)
            cr.pairs.append(pr)
        if len(judges) > 1:
            cr.note = f"scored by several judges ({', '.join(sorted(judges))}): give the claim a judge"
        cr.judge = ", ".join(sorted(judges)) or None
        out.append(cr)
    tested = [pr for cr in out for pr in cr.pairs if pr.p is not None]
    for pr, adj in zip(tested, stats.holm([pr.p for pr in tested]), strict=True):
        pr.p_holm = adj
    for cr in out:
        for pr in cr.pairs:
            if pr.verdict != NOT_RUN:
                pr.verdict = _pair_verdict(pr)
                if pr.n < MIN_PAIRS and not pr.note:
                    pr.note = f"{pr.n} pairs (< {MIN_PAIRS})"
        verdicts = [pr.verdict for pr in cr.pairs]
        if any(v == NOT_RUN for v in verdicts):
            cr.verdict = f"{NOT_RUN}: weights absent"
        elif cr.note:
            cr.verdict = "inconclusive"
        elif "contradicted" in verdicts:
            cr.verdict = "contradicted"
        elif all(v == "supported" for v in verdicts):
            cr.verdict = "supported"
        else:
            cr.verdict = "inconclusive"
    return out


def claims_of_store(store: Any, suite: str, keys: list[str] | None = None) -> list[ClaimResult]:
    """Evaluate the claims of ``suite`` as recorded in ``store`` (its definition, stored when it was
    swept) on the suite's stored results."""
    from archbench.claims import claims_from_json

    definition = store.suite_definition(suite)
    claims = claims_from_json((definition or {}).get("claims") or [])
    if not claims:
        return []
    traces = any(c.metric == "iterations-to-loss" for c in claims)
    return evaluate_claims(claims, store.results(suite=suite, keys=keys, traces=traces), store.runs(suite=suite, keys=keys))


# ----------------------------------------------------------------------------------------------
# rendering helpers (every format renders the same rows)


def pair_cells(pr: PairResult) -> dict[str, str]:
    """The printed cells of one pair (shared by Markdown, HTML and the terminal)."""
    from archbench.report.text import number

    ci = "—" if pr.ci is None else f"[{number(pr.ci[0], '.3g')}, {number(pr.ci[1], '.3g')}]"
    return {
        "comparison": f"{pr.better} > {pr.worse}",
        "n": str(pr.n),
        "means": f"{number(pr.mean_better)} vs {number(pr.mean_worse)}",
        "difference": number(pr.diff, ".3g"),
        "95% CI": ci,
        "p (Holm)": number(pr.p_holm, "p2"),
        "d_z": number(pr.effect, ".2g"),
        "verdict": pr.verdict + (f" ({pr.note})" if pr.note and pr.verdict != NOT_RUN else ""),
    }


#: the columns of the Claims table (Markdown and HTML)
HEAD = ["claim", "comparison", "n", "means", "difference", "95% CI", "p (Holm)", "d_z", "verdict"]


def claims_markdown(results: list[ClaimResult], escape) -> list[str]:
    """The Claims section in Markdown (``escape``: the report's Markdown escaper)."""
    if not results:
        return []
    out = ["## Claims", "", escape(RULE), ""]
    head = HEAD
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(":---" if h in ("claim", "comparison", "verdict") else "---:" for h in head) + "|"]
    for cr in results:
        c = cr.claim
        what = f"**{escape(c.id)}** ({escape(c.task)} · {escape(c.metric)}{' · ' + escape(c.kind) if c.kind != 'mean' else ''}"
        what += f" · judge {escape(cr.judge)})" if cr.judge else ")"
        for k, pr in enumerate(cr.pairs):
            cells = pair_cells(pr)
            first = what + (f": {escape(c.text)} → **{escape(cr.verdict)}**" if k == 0 else "")
            out.append("| " + " | ".join([first if k == 0 else "", escape(cells["comparison"])]
                                          + [escape(cells[h]) for h in head[2:]]) + " |")
    out.append("")
    return out


def claims_csv_rows(results: list[ClaimResult]) -> list[list[Any]]:
    """CSV rows (one per pair): claim id, claim verdict, comparison, n, means, difference, CI, p, p Holm, d_z, pair verdict."""
    rows = []
    for cr in results:
        for pr in cr.pairs:
            rows.append(["claim", cr.id, cr.claim.task, cr.claim.metric, cr.verdict, pr.better, pr.worse, pr.n,
                         pr.mean_better, pr.mean_worse, pr.diff, pr.ci[0] if pr.ci else None,
                         pr.ci[1] if pr.ci else None, pr.p, pr.p_holm, pr.effect, pr.verdict, pr.note])
    return rows


CSV_HEADER = ["section", "id", "task", "metric", "claim_verdict", "better", "worse", "n", "mean_better", "mean_worse",
              "difference", "ci_low", "ci_high", "p", "p_holm", "d_z", "verdict", "note"]
