"""``archbench correlate``: do the stored scores predict trained accuracy?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from archbench.cli.app import app, console, open_results
from archbench.escaping import terminal as esc
from archbench.store import DEFAULT_STORE


@app.command()
def correlate(
    store: Annotated[Path, typer.Option("--store", "-s", help="Results database (SQLite).")] = DEFAULT_STORE,
    suite: Annotated[str | None, typer.Option(help="Only this suite's jobs (default: every job in the store).")] = None,
    truth: Annotated[
        str,
        typer.Option(help="imagenet (torchvision's published top-1 of the V1 weights), imagenet-best, or FILE.csv with columns arch,value."),
    ] = "imagenet",
    exact_only: Annotated[
        bool, typer.Option("--exact-only", help="Leave out architectures matched only approximately (VGG with average pooling).")
    ] = False,
    level: Annotated[
        int | None,
        typer.Option(help="Score each architecture at its first tap of this stride level (1/2**LEVEL of the input) instead of the mean over layers."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, csv (one row per task/metric), points (the data) or json.")] = "md",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report here (default: a table in the terminal).")] = None,
) -> None:
    """Spearman/Kendall correlation of each task's scores (and the overall rank) with trained accuracy.

    Per task, metric and init: Spearman's rho over architectures (score oriented so that higher is
    better), a 95% bootstrap interval, a permutation p-value (Holm-corrected), Kendall's tau, and as
    baselines the rho of the truth with parameter count and GFLOPs. Nothing is downloaded.
    """
    from archbench.errors import ConfigError
    from archbench.fileio import atomic_write, check_output_file
    from archbench.report import leaderboard_from_store
    from archbench.report.correlate import CORRELATION_FORMATS, OVERALL, load_truth, render_correlation
    from archbench.report.correlate import correlate as run_correlate

    if fmt not in CORRELATION_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; valid: {', '.join(CORRELATION_FORMATS)}")
    if out is not None:
        check_output_file(out, "--out")  # before the work: a folder, /proc or read-only fails now
    gt = load_truth(truth)
    with open_results(store, suite) as db:
        lb = leaderboard_from_store(db, suite=suite)
    if not lb.boards:
        raise ConfigError(f"no results in {store}" + (f" for suite {suite!r}" if suite else ""))
    result = run_correlate(lb, gt, exact_only=exact_only, level=level)
    if level is not None and all((r.task, r.metric) == OVERALL for r in result.rows):
        raise ConfigError(
            f"no stored layer is at stride level {level} (1/{2**max(level, 0)} of the input) in any architecture "
            "with a ground truth; `archbench list taps ARCH` shows the levels"
        )
    if not result.rows:
        raise ConfigError(
            f"no architecture in {store} has a {gt.name} value; left out: "
            + "; ".join(f"{u}: {why}" for u, why in sorted(result.unmatched.items()))
        )
    if out is not None:
        atomic_write(out, render_correlation(result, fmt), what="report")
        console.print(f"wrote {out} ({len(result.rows)} correlations against {gt.name})", markup=False, highlight=False,
                      soft_wrap=True)
        return
    if fmt != "md":
        console.print(render_correlation(result, fmt), markup=False, highlight=False, soft_wrap=True, end="")
        return
    _print_table(result)


def _print_table(result) -> None:
    from archbench.report.correlate import fnum, fpval

    table = Table(title=esc(f"scores vs {result.truth} (Spearman over architectures; higher score = better)"))
    for col in ("task", "metric", "layer", "init", "n", "rho", "95% CI", "p", "p Holm", "tau", "rho params", "rho GFLOPs", "rho width"):
        table.add_column(col, justify="right" if col not in ("task", "metric", "layer", "init") else "left")
    for r in result.rows:
        ci = f"[{fnum(r.ci_low, 2)}, {fnum(r.ci_high, 2)}]" if r.ci_low is not None else ""
        n = f"{r.n}" + (f" ({r.n_approximate}~)" if r.n_approximate else "")
        table.add_row(*map(esc, (r.task, r.metric, r.layer, r.init)), n, fnum(r.spearman), esc(ci), fpval(r.p_value),
                      fpval(r.p_holm), fnum(r.kendall), fnum(r.params_spearman), fnum(r.gflops_spearman),
                      fnum(r.channels_spearman))
    console.print(table)
    if any(r.n_approximate for r in result.rows):
        console.print("~: matched only approximately (VGG with average pooling); --exact-only drops them", highlight=False)
    if result.unmatched:
        console.print(f"left out ({len(result.unmatched)}): " + "; ".join(
            f"{u} ({why})" for u, why in sorted(result.unmatched.items())), markup=False, highlight=False, soft_wrap=True)
    console.print("per-architecture data: --format md -o FILE.md, or --format points", highlight=False)
