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

from archbench.report.correlate.model import (
    DEFAULT_COMPARATOR,
    KINDS,
    OVERALL,
    SIZE_TASK,
    Correlation,
    CorrelationRow,
    Point,
    correlate,
    row_label,
    tap_levels,
)
from archbench.report.correlate.render import (
    CORRELATION_FORMATS,
    CSV_COLUMNS,
    POINTS_COLUMNS,
    SELECTION_COLUMNS,
    SELECTION_NOTE,
    SUMMARY_NOTE,
    best_text,
    comparator_text,
    delta_text,
    fnum,
    fpval,
    points_csv,
    render_correlation,
    rho_ci_text,
    selection_markdown,
    short_label,
    to_csv,
    to_markdown,
)
from archbench.report.correlate.truth import (
    TRUTHS,
    Counterpart,
    CsvTruth,
    GroundTruth,
    ImagenetTruth,
    TruthValue,
    load_truth,
    trained_counterpart,
)
from archbench.report.stats import bootstrap_rho, bootstrap_rho_difference, kendall, permutation_p, spearman

__all__ = [
    "CORRELATION_FORMATS", "CSV_COLUMNS", "DEFAULT_COMPARATOR", "KINDS", "OVERALL", "POINTS_COLUMNS",
    "SELECTION_COLUMNS", "SELECTION_NOTE", "SIZE_TASK", "SUMMARY_NOTE", "TRUTHS", "Correlation", "CorrelationRow",
    "Counterpart", "CsvTruth", "GroundTruth", "ImagenetTruth", "Point", "TruthValue", "best_text",
    "bootstrap_rho", "bootstrap_rho_difference", "comparator_text", "correlate", "delta_text", "fnum", "fpval",
    "kendall", "load_truth", "permutation_p", "points_csv", "render_correlation", "rho_ci_text", "row_label",
    "selection_markdown", "short_label", "spearman", "tap_levels", "to_csv", "to_markdown", "trained_counterpart",
]
