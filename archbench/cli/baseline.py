"""``archbench baseline save`` and ``archbench check``: score baselines and regression checks."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from archbench.cli.app import app, console
from archbench.store import DEFAULT_STORE

baseline_app = typer.Typer(help="Record a suite's scores as a baseline for `archbench check`.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Results database (SQLite).")]


def _command_line(*parts: object) -> str:
    """The command that reproduces this invocation (``None`` options left out)."""
    words = ["archbench", "baseline", "save"]
    it = iter(parts)
    for flag, value in zip(it, it, strict=False):
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v not in (None, ""):
                words += [str(flag), str(v)]
    return " ".join(shlex.quote(w) for w in words)


@baseline_app.command("save")
def baseline_save(
    suite: Annotated[str, typer.Option(help="Suite file or built-in name.")] = "ci",
    out: Annotated[Path, typer.Option("--out", "-o", help="Baseline JSON to write.")] = Path("reports/baselines/ci.json"),
    store: StoreOpt = DEFAULT_STORE,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda (default: the suite's).")] = None,
    tolerance: Annotated[list[str] | None, typer.Option("--tolerance", "-t", help="METRIC=ABS or METRIC=REL% (repeatable).")] = None,
    note: Annotated[str, typer.Option(help="How the tolerances were chosen (stored in the file).")] = "",
) -> None:
    """Run the suite (reusing stored results) and write its scores with tolerances."""
    from archbench.cli.sweep import run_suite_with_progress
    from archbench.report.check import make_baseline, parse_tolerance, save_baseline
    from archbench.store import ResultStore

    tols = dict(parse_tolerance(t) for t in tolerance or [])
    with ResultStore(store) as db:
        summary = run_suite_with_progress(suite, db, device=device)
        if summary.failed:
            console.print(f"[yellow]note:[/] {summary.failed} jobs failed; their scores are not in the baseline")
        base = make_baseline(db, summary.suite, keys=summary.keys, tolerances=tols, command=_command_line(
            "--suite", suite, "--out", out, "--store", store, "--device", device, "--tolerance", tolerance or [],
            "--note", note),
            suite_ref=suite, note=note)
    save_baseline(base, out)
    console.print(f"wrote {out}: {len(base['entries'])} scores of suite {summary.suite}", highlight=False, markup=False)
    if summary.failed:
        sys.exit(1)


def check_table(rep, title: str) -> Table:
    """Rich table of the scores that moved (fits an 80-column CI log: long names fold)."""
    table = Table(title=title, title_justify="left")
    table.add_column("status", no_wrap=True)
    table.add_column("score (task · architecture · init · layer · metric)", overflow="fold", ratio=1)
    for col in ("baseline", "current", "Δ", "tolerance"):
        table.add_column(col, justify="right", no_wrap=True)
    colour = {"worse": "red", "missing": "red", "better": "yellow", "new": "cyan"}
    for r in rep.moved:
        d = r.delta
        table.add_row(
            f"[{colour.get(r.status, 'white')}]{r.status}[/]",
            escape(" · ".join((r.task, r.arch, r.init, r.layer, r.metric))),
            "—" if r.baseline is None else f"{r.baseline:.5g}", "—" if r.current is None else f"{r.current:.5g}",
            "—" if d is None else f"{d:+.4g}", f"±{r.allowed:.3g}",
        )
    return table


@app.command()
def check(
    baseline: Annotated[Path, typer.Option(help="Baseline JSON written by `archbench baseline save`.")] = Path("reports/baselines/ci.json"),
    suite: Annotated[str | None, typer.Option(help="Suite file or built-in name (default: the baseline's suite).")] = None,
    store: StoreOpt = DEFAULT_STORE,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda (default: the suite's).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (terminal) or md (pull-request comment).")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the Markdown summary to this file.")] = None,
    allow_improvements: Annotated[bool, typer.Option("--allow-improvements", help="Do not fail when a score got better.")] = False,
) -> None:
    """Re-run a suite (reusing stored results) and compare with a baseline; exit 1 if a score moved."""
    from archbench.cli.sweep import run_suite_with_progress
    from archbench.errors import ConfigError
    from archbench.report.check import compare, load_baseline, report_markdown, score_entries
    from archbench.store import ResultStore

    if fmt not in ("table", "md"):
        raise ConfigError(f"unknown --format {fmt!r}; valid: table, md")
    base = load_baseline(baseline)
    suite_ref = suite or base.get("suite_ref") or base.get("suite")
    with ResultStore(store) as db:
        summary = run_suite_with_progress(suite_ref, db, device=device, quiet=fmt == "md")
        current = score_entries(db.results(keys=summary.keys))
    rep = compare(base, current, allow_improvements=allow_improvements)
    md = report_markdown(rep, str(baseline))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md, encoding="utf-8")
    if fmt == "md":
        console.print(md, markup=False, highlight=False, soft_wrap=True)
    else:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(rep.counts().items()))
        if rep.moved:
            console.print(check_table(rep, f"scores that moved (suite {rep.suite} vs {escape(str(baseline))})"))
        verdict = "[green]passed[/]" if rep.passed else "[bold red]FAILED[/]"
        console.print(f"check {verdict}: {len(rep.rows)} scores compared ({counts})", highlight=False)
    if not rep.passed:
        sys.exit(1)  # SystemExit: typer.Exit's code is dropped when the app runs with standalone_mode=False
