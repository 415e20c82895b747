"""``archbench report``: leaderboards from the results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archbench.cli.app import RUN_OUT, STORE_FILE, app, console, err_console, open_results, store_file
from archbench.errors import ConfigError
from archbench.store import DEFAULT_STORE


def default_store() -> Path:
    """The store ``archbench report`` reads when given none: the sweeps' (archbench-results/results.db)
    when it exists, else the one ``archbench run`` records into (archbench-out/results.db)."""
    run_store = RUN_OUT / STORE_FILE
    if DEFAULT_STORE.exists():
        if run_store.exists():
            err_console.print(f"note: reading {DEFAULT_STORE}; the runs of archbench run are in {run_store}: "
                              f"archbench report {RUN_OUT}", markup=False, highlight=False, soft_wrap=True)
        return DEFAULT_STORE
    if run_store.exists():
        return run_store
    raise ConfigError(f"no results store here ({DEFAULT_STORE} or {run_store}): record runs with `archbench run` "
                      "or a suite with `archbench sweep SUITE` first, or name a store: archbench report PATH")


@app.command(short_help="Rank what a results store holds (md, csv, html, json).")
def report(
    where: Annotated[
        Path | None,
        typer.Argument(metavar="STORE", help="Results database, or a folder holding one as results.db (archbench report archbench-out). Default: archbench-results/results.db (sweeps) if it exists, else archbench-out/results.db (archbench run)."),
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", "-s", help="The same as STORE.")] = None,
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
    """Ranked leaderboard per task and metric with bootstrap CIs, Wilcoxon tests and overall rank.

    Ranks whatever the store holds: the jobs of sweeps and the runs `archbench run` recorded
    (`archbench run --arch vgg19`, `archbench run --arch alexnet`, then `archbench report
    archbench-out`). The leaderboard command is the same command."""
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
    if where is not None and store is not None and store_file(where) != store_file(store):
        raise ConfigError(f"two stores given: {str(where)!r} and --store {str(store)!r}; give one")
    given = where if where is not None else store
    if given is not None and given.is_dir() and not store_file(given).exists():
        raise ConfigError(f"store {str(given)!r} is a folder with no {STORE_FILE} in it; give a results database, "
                          f"or a folder holding one (archbench run records into OUT/{STORE_FILE})")
    store = store_file(given) if given is not None else default_store()
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


app.command("leaderboard", short_help="The same as report.")(report)
