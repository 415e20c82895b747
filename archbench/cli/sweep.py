"""``archbench sweep SUITE``: run a suite's jobs into the results store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from archbench.cli.app import app, console, err_console
from archbench.escaping import terminal as esc
from archbench.limits import MAX_JOBS
from archbench.store import DEFAULT_STORE

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Results database (SQLite).")]


def sweep_progress() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def run_suite_with_progress(suite_ref, store, *, executor: str = "local", device: str | None = None,
                            out: Path | None = None, rerun_failed: bool = True, quiet: bool = False,
                            executor_options: dict | None = None, max_jobs: int | None = None,
                            redefine: bool = False):
    """Run a suite (a :class:`~archbench.sweep.Suite`, a file or a built-in name) with a rich
    progress bar over its jobs; returns the :class:`SweepSummary`. Every name printed is escaped
    (a name containing ``[/`` prints as itself)."""
    from archbench.sweep import Suite, load_suite, plan_sweep

    suite = suite_ref if isinstance(suite_ref, Suite) else load_suite(suite_ref)
    plan = plan_sweep(suite, store, executor=executor, device=device, out_dir=out, rerun_failed=rerun_failed,
                      executor_options=executor_options, max_jobs=max_jobs, redefine=redefine)  # all checks first
    with sweep_progress() as bar:
        task_id = bar.add_task(f"suite {esc(suite.name)}", total=None, done=0, failed=0)
        state = {"done": 0, "failed": 0, "waiting": False}

        def on_plan(todo: int, total: int, not_run: int) -> None:
            if not quiet:
                console.print(
                    f"suite [bold]{esc(suite.name)}[/]: {total} jobs, {total - todo - not_run} already in "
                    f"{esc(store.path)}, " + (f"{not_run} not run (trained weights absent), " if not_run else "")
                    + f"{todo} to run",
                    highlight=False,
                )
            bar.update(task_id, total=todo)

        def on_start(job) -> None:
            bar.update(task_id, description=esc(f"{job.arch} · {job.task} · s{job.seed} · {job.image_label}"))

        def on_result(outcome) -> None:
            state["done" if outcome.status == "done" else "failed"] += 1
            bar.update(task_id, advance=1, done=state["done"], failed=state["failed"])
            if outcome.status != "done":
                bar.console.print(f"[red]failed:[/] {esc(outcome.config.describe())}: {esc(outcome.error)}",
                                  highlight=False, soft_wrap=True)

        def on_taken(job) -> None:
            bar.update(task_id, advance=1)

        def on_wait(n: int, holders: dict) -> None:
            if not state["waiting"]:
                state["waiting"] = True
                who = sorted({f"pid {h['pid']} on {h['host']}" for h in holders.values()})
                bar.console.print(
                    f"waiting for {n} jobs that another sweep is running ({esc(', '.join(who) or 'finishing')})",
                    highlight=False, soft_wrap=True,
                )

        summary = plan.run(on_plan=on_plan, on_start=on_start, on_result=on_result, on_taken=on_taken, on_wait=on_wait)
        bar.update(task_id, description=f"suite {esc(suite.name)}")
    return summary


@app.command(short_help="Run a suite's jobs into a results store.")
def sweep(
    suite: Annotated[str | None, typer.Argument(help="Suite file (.toml) or built-in suite name (`archbench sweep --list`).")] = None,
    store: StoreOpt = DEFAULT_STORE,
    executor: Annotated[str, typer.Option(help="How jobs run: local (in this process) or ray (Ray tasks; pip install 'archbench[ray]').")] = "local",
    address: Annotated[str | None, typer.Option(help="ray: cluster address (auto, HOST:PORT, ray://HOST:PORT); default: start a local Ray instance.")] = None,
    gpus_per_job: Annotated[float | None, typer.Option(help="ray: GPUs per job (0.5 packs two per GPU); default 1 for cuda jobs, 0 for cpu jobs.")] = None,
    max_retries: Annotated[int | None, typer.Option(help="ray: re-runs of a job whose worker died (default 3); a job failing by itself is not retried.")] = None,
    shared_dir: Annotated[Path | None, typer.Option(help="ray: folder every node sees; workers write the images there instead of sending them back.")] = None,
    batch_images: Annotated[int | None, typer.Option(help="Jobs differing only in their image run as one batch of up to N images (default 16 on CUDA, 1 on CPU); local and ray.", min=1)] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda (default: the suite's device).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for output images (default: images/ beside the store).")] = None,
    skip_failed: Annotated[bool, typer.Option("--skip-failed", help="Do not re-run jobs stored as failed.")] = False,
    max_jobs: Annotated[int | None, typer.Option(help=f"Refuse a suite of more jobs (default {MAX_JOBS}, or ARCHBENCH_MAX_JOBS; 0: no limit).", min=0)] = None,
    redefine: Annotated[bool, typer.Option("--redefine", help="The store holds a different suite of this name: make this its definition (earlier jobs leave the suite; their results stay stored).")] = False,
    list_suites: Annotated[bool, typer.Option("--list", help="List the built-in suites and exit.")] = False,
) -> None:
    """Run every job of a suite that is not in the store yet; store each result as it finishes.

    Several sweeps of one suite on one store (processes, or machines sharing the store) split the
    jobs between them: each job is claimed before it runs and runs once."""
    from archbench.store import ResultStore
    from archbench.sweep import builtin_suites, load_suite

    if list_suites or suite is None:
        for name, path in builtin_suites().items():
            s = load_suite(path)
            console.print(f"[bold]{esc(name)}[/]  {esc(s.description)}", highlight=False, soft_wrap=True)
        if suite is None and not list_suites:
            err_console.print("give a suite file or name: archbench sweep ci")
            sys.exit(2)
        return
    from archbench.errors import ConfigError

    ray_options = {"address": address, "gpus_per_job": gpus_per_job, "max_retries": max_retries, "shared_dir": shared_dir}
    ray_options = {k: v for k, v in ray_options.items() if v is not None}
    if ray_options and executor != "ray":
        flags = ", ".join("--" + k.replace("_", "-") for k in ray_options)
        raise ConfigError(f"{flags}: for --executor ray only")
    executor_options = dict(ray_options)
    if batch_images is not None:
        executor_options["batch_images"] = batch_images
    parsed = load_suite(suite)  # a suite that does not parse leaves no store behind
    with ResultStore(store) as db:
        summary = run_suite_with_progress(parsed, db, executor=executor, device=device, out=out,
                                          rerun_failed=not skip_failed, executor_options=executor_options or None,
                                          max_jobs=max_jobs, redefine=redefine)
    console.print(
        f"suite [bold]{esc(summary.suite)}[/]: {summary.total} jobs: {summary.skipped} already stored, "
        f"{summary.done} done now, {summary.failed} failed"
        + (f", {summary.taken} finished by another sweep" if summary.taken else "")
        + (f", {len(summary.not_run)} not run (trained weights absent)" if summary.not_run else "")
        + f"; store {esc(store)}",
        highlight=False, soft_wrap=True,
    )
    for spec in sorted({job.arch for job, _ in summary.not_run}):
        why = next(w for job, w in summary.not_run if job.arch == spec)
        err_console.print(f"[yellow]not run:[/] {esc(spec)} with trained weights: {esc(why)}", highlight=False, soft_wrap=True)
    if summary.failed:
        sys.exit(1)  # SystemExit: typer.Exit's code is dropped when the app runs with standalone_mode=False
