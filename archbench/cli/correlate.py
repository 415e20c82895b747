"""``archbench correlate``: do the stored scores predict trained accuracy?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from archbench.cli.app import app, console, open_results
from archbench.escaping import terminal as esc
from archbench.store import DEFAULT_STORE


@app.command(short_help="Correlate the scores with trained accuracy.")
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
    levels: Annotated[
        str | None,
        typer.Option(help="Also score each architecture at its first tap of each of these stride levels, e.g. 2,3,4 "
                          "(one row per level beside the mean over layers)."),
    ] = None,
    comparator: Annotated[
        str,
        typer.Option(help="The row every score and selection is compared with (task/metric[/layer]@init)."),
    ] = "proxies/naswot@native",
    cv: Annotated[
        bool, typer.Option("--cv/--no-cv", help="Evaluate choices made from the data by leave-one-family-out cross-validation."),
    ] = True,
    cv_boot: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples of the whole cross-validated procedure (its intervals).")
    ] = 2000,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, csv (one row per task/metric), points (the data) or json.")] = "md",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report here (default: a table in the terminal).")] = None,
) -> None:
    """Spearman/Kendall correlation of each task's scores (and the overall rank) with trained accuracy.

    Per task, metric and init -- visualisation scores, training-free proxies, the trained model's
    parameter count and GFLOPs -- Spearman's rho over architectures (score oriented so that higher
    is better), a 95% bootstrap interval, a permutation p-value (Holm-corrected), Kendall's tau, the
    stalled results, and the paired difference to the best baseline and to the comparator (NASWOT).
    Choices made from the table (level, metric, task, init, a visualisation score with a proxy) are
    evaluated by leave-one-family-out cross-validation. Nothing is downloaded.
    """
    from archbench.errors import ConfigError
    from archbench.fileio import atomic_write, check_output_file
    from archbench.report import leaderboard_from_store
    from archbench.report.correlate import CORRELATION_FORMATS, OVERALL, load_truth, render_correlation
    from archbench.report.correlate import correlate as run_correlate

    if fmt not in CORRELATION_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; valid: {', '.join(CORRELATION_FORMATS)}")
    at_levels = None
    if levels is not None:
        try:
            at_levels = [int(x) for x in levels.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(f"--levels must be stride levels separated by commas, e.g. 2,3,4; got {levels!r}") from None
        if not at_levels or min(at_levels) < 0:
            raise ConfigError(f"--levels must be stride levels (integers >= 0) separated by commas, e.g. 2,3,4; got {levels!r}")
        if level is not None:
            raise ConfigError("give --level or --levels, not both")
    if out is not None:
        check_output_file(out, "--out")  # before the work: a folder, /proc or read-only fails now
    gt = load_truth(truth)
    with open_results(store, suite) as db:
        lb = leaderboard_from_store(db, suite=suite)
    if not lb.boards:
        raise ConfigError(f"no results in {store}" + (f" for suite {suite!r}" if suite else ""))
    result = run_correlate(lb, gt, exact_only=exact_only, level=level, levels=at_levels, comparator=comparator, cv=cv,
                           cv_boot=cv_boot)
    if level is not None and all((r.task, r.metric) == OVERALL or r.kind == "size" for r in result.rows):
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
    from archbench.report.correlate import best_text, comparator_text, fnum, fpval, rho_ci_text
    from archbench.report.text import number

    table = Table(title=esc(f"scores vs {result.truth} (Spearman over architectures; higher score = better)"))
    comp = result.comparator or "comparator"
    for col in ("kind", "task", "metric", "layer", "init", "n", "stalled", "rho", "95% CI", "p Holm", "tau", "rho width",
                "best baseline", "rho - best", f"rho - {comp}"):
        table.add_column(esc(col), justify="left" if col in ("kind", "task", "metric", "layer", "init", "best baseline") else "right")
    for r in result.rows:
        ci = f"[{fnum(r.ci_low, 2)}, {fnum(r.ci_high, 2)}]" if r.ci_low is not None else ""
        n = f"{r.n}" + (f" ({r.n_approximate}~)" if r.n_approximate else "")
        best = f"{r.best_baseline} ({fnum(r.best_baseline_spearman)})" if r.best_baseline else ""
        table.add_row(*map(esc, (r.kind, r.task, r.metric, r.layer, r.init)), n, number(r.stalled, "d", missing=""),
                      fnum(r.spearman), esc(ci), fpval(r.p_holm), fnum(r.kendall), fnum(r.channels_spearman), esc(best),
                      esc(best_text(r)), esc(comparator_text(r)))
    console.print(table)
    if result.selection:
        s0 = result.selection[0]
        sel = Table(title=esc(f"chosen from the data: leave-one-family-out cross-validation ({s0.n} architectures, "
                              f"{s0.families} families)"))
        for col in ("procedure", "candidates", "chosen on all", "in-sample rho [95% CI]", "cross-validated rho [95% CI]",
                    f"cv rho - {comp} [95% CI]"):
            sel.add_column(esc(col), justify="right" if col == "candidates" else "left")
        for s in result.selection:
            sel.add_row(esc(s.procedure), str(s.candidates), esc(s.chosen or ""),
                        esc(rho_ci_text(s.in_sample, s.in_sample_ci_low, s.in_sample_ci_high)),
                        esc(rho_ci_text(s.cv, s.cv_ci_low, s.cv_ci_high)), esc(comparator_text(s)))
        console.print(sel)
    if any(r.n_approximate for r in result.rows):
        console.print("~: matched only approximately (VGG with average pooling); --exact-only drops them", highlight=False)
    if result.unmatched:
        console.print(f"left out ({len(result.unmatched)}): " + "; ".join(
            f"{u} ({why})" for u, why in sorted(result.unmatched.items())), markup=False, highlight=False, soft_wrap=True)
    console.print("per-architecture data: --format md -o FILE.md, or --format points", highlight=False)
