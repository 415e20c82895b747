"""``archbench report``: leaderboards from the results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archbench.cli.app import app, console, open_results
from archbench.store import DEFAULT_STORE


@app.command(short_help="Rank what a results store holds (md, csv, html, json).")
def report(
    store: Annotated[Path, typer.Option("--store", "-s", help="Results database (SQLite).")] = DEFAULT_STORE,
    suite: Annotated[str | None, typer.Option(help="Only this suite's jobs (default: every job in the store).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, md, html or json.")] = "md",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default: print to the terminal; html needs a file).")] = None,
    reference: Annotated[str | None, typer.Option(help="Reference architecture (SPEC or SPEC@INIT; default: the suite's).")] = None,
    truth: Annotated[
        str | None,
        typer.Option(help="Add how well the scores predict this ground truth (imagenet, imagenet-best or FILE.csv; see `archbench correlate`); md, html and json."),
    ] = None,
    truth_level: Annotated[
        int | None, typer.Option(help="With --truth: score architectures at this stride level (see `archbench correlate --level`).")
    ] = None,
) -> None:
    """Ranked leaderboard per task and metric with bootstrap CIs, Wilcoxon tests and overall rank."""
    from archbench.errors import ConfigError
    from archbench.fileio import atomic_write, check_output_file
    from archbench.report import FORMATS, leaderboard_from_store, render

    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    if truth is not None and fmt == "csv":
        raise ConfigError("--truth adds a section to md, html and json reports; for CSV use `archbench correlate --format csv`")
    if out is None and fmt == "html":
        raise ConfigError("--format html needs --out FILE.html")
    if out is not None:
        check_output_file(out, "--out")  # before the work: a folder, /proc or read-only fails now
    ground_truth = None
    if truth is not None:
        from archbench.report.correlate import load_truth

        ground_truth = load_truth(truth)
    with open_results(store, suite) as db:
        lb = leaderboard_from_store(db, suite=suite, reference=reference)
        if not lb.boards and not lb.n_jobs:
            raise ConfigError(f"no results in {store}")
        correlation = None
        if ground_truth is not None:
            from archbench.report.correlate import correlate

            correlation = correlate(lb, ground_truth, level=truth_level)
        text = render(lb, fmt, db, correlation=correlation)
    if out is None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    atomic_write(out, text, what="report")
    console.print(f"wrote {out} ({len(lb.boards)} tables, {lb.n_jobs} jobs)", markup=False, highlight=False, soft_wrap=True)
