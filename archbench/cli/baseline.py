"""``archbench baseline save`` and ``archbench check``: score baselines and regression checks."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from archbench.cli.app import app, console, err_console
from archbench.store import DEFAULT_STORE

baseline_app = typer.Typer(help="Record a suite's scores, with their measured noise, as a baseline for `archbench check`.",
                           no_args_is_help=True)
app.add_typer(baseline_app, name="baseline", short_help="Record a suite's scores and noise as a baseline for check.")

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Results database (SQLite).")]


def _command_line(*parts: object) -> str:
    """The command that reproduces this invocation (``None`` options left out)."""
    words = ["archbench", "baseline", "save"]
    it = iter(parts)
    for flag, value in zip(it, it, strict=False):
        if value not in (None, ""):
            words += [str(flag), str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _perturbations(text: str) -> list[str]:
    from archbench.errors import ConfigError
    from archbench.report.noise import PERTURBATIONS, available_perturbations

    if text == "auto":
        return available_perturbations()
    if text == "none":
        return []
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise ConfigError(f"unknown perturbation(s) {', '.join(unknown)}; valid: auto, none, {', '.join(PERTURBATIONS)}")
    return names


@baseline_app.command("save", short_help="Run the suite, measure each score's noise, write a baseline.")
def baseline_save(
    suite: Annotated[str, typer.Option(help="Suite file or built-in name.")] = "ci",
    out: Annotated[Path, typer.Option("--out", "-o", help="Baseline JSON to write.")] = Path("reports/baselines/ci.json"),
    store: StoreOpt = DEFAULT_STORE,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda (default: the suite's).")] = None,
    perturb: Annotated[str, typer.Option(help="Noise runs under other floating-point kernels: auto (every perturbation that changes something here), none, or a comma list of aten-default, aten-avx2, aten-avx512, onednn-sse41, onednn-avx2, mkl-compatible, threads-1. CPU suites only.")] = "auto",
    noise_seeds: Annotated[int, typer.Option(help="Seeds of the noise run that measures each score's seed spread (0: skip).", min=0)] = 6,
    note: Annotated[str, typer.Option(help="A note stored in the file (why it was re-saved, by whom).")] = "",
) -> None:
    """Run the suite (reusing stored results), measure each score's noise across floating-point
    kernels and seeds, and write the scores with noise-derived tolerances."""
    from archbench.cli.sweep import run_suite_with_progress
    from archbench.config import resolve_device
    from archbench.fileio import check_output_file
    from archbench.report.baseline import configuration_digest, make_baseline, save_baseline
    from archbench.report.noise import Noise, measure_kernels, measure_seeds, score_observations
    from archbench.store import ResultStore
    from archbench.sweep import load_suite

    suite_obj = load_suite(suite)
    names = _perturbations(perturb)
    check_output_file(out, "--out")  # before the work: a folder, /proc or read-only fails now
    cpu = resolve_device(device or suite_obj.device) == "cpu"
    if names and not cpu:
        err_console.print("[yellow]note:[/] kernel perturbations emulate other CPUs; skipped for a GPU suite")
        names = []
    with ResultStore(store) as db:
        summary = run_suite_with_progress(suite, db, device=device)
        if summary.failed:
            err_console.print(f"[yellow]note:[/] {summary.failed} jobs failed; their scores are not in the baseline")
        results = db.results(keys=summary.keys, traces=False)
    observations = score_observations(results)
    noise: dict[tuple, Noise] = {k: Noise() for k in observations}
    if names:
        console.print(f"measuring kernel noise: {len(names)} re-runs ({', '.join(names)})", highlight=False)
        for key, means in measure_kernels(suite, names, list(observations)).items():
            base_mean = sum(observations[key].values()) / len(observations[key])
            noise[key].perturbations = means
            noise[key].kernels = max(abs(m - base_mean) for m in means.values())
    if noise_seeds:
        console.print(f"measuring seed noise: one run with {noise_seeds} seeds", highlight=False)
        for key, (sd, used) in measure_seeds(suite_obj, noise_seeds, device).items():
            if key in noise:
                noise[key].seeds = sd / len(observations[key]) ** 0.5
                noise[key].seeds_used = used
    command = _command_line("--suite", suite, "--out", out, "--store", store, "--device", device,
                            "--perturb", perturb, "--noise-seeds", noise_seeds, "--note", note)
    from archbench.report.claims import claims_of_store

    with ResultStore(store) as db:
        claims = claims_of_store(db, summary.suite, summary.keys)
    base = make_baseline(
        results, suite=summary.suite, suite_ref=suite, note=note, command=command, noise=noise,
        jobs={"total": summary.total, "done": summary.total - summary.failed, "failed": summary.failed,
              "configurations": configuration_digest(summary.keys)},
        noise_settings={"perturbations": names, "seeds": noise_seeds},
    )
    base["claims"] = [{"id": c.id, "verdict": c.verdict, "pairs": [
        {"better": p.better, "worse": p.worse, "n": p.n, "difference": p.diff, "ci": p.ci, "p_holm": p.p_holm}
        for p in c.pairs]} for c in claims]
    save_baseline(base, out)
    console.print(f"wrote {out}: {len(base['entries'])} scores of suite {summary.suite}", highlight=False, markup=False)
    if summary.failed:
        sys.exit(1)


def check_table(rep, title: str) -> Table:
    """Rich table of the scores that moved (fits an 80-column CI log: long names fold)."""
    table = Table(title=escape(title), title_justify="left")
    table.add_column("status", no_wrap=True)
    table.add_column("score (task · architecture · init · layer · metric)", overflow="fold", ratio=1)
    for col in ("baseline", "current", "Δ", "tolerance", "Δ/tol", "noise"):
        table.add_column(col, justify="right", no_wrap=col != "noise")
    colour = {"worse": "red", "missing": "red", "better": "yellow", "new": "cyan", "moved": "dim"}
    for r in rep.moved:
        d, ratio = r.delta, r.ratio
        table.add_row(
            f"[{colour.get(r.status, 'white')}]{escape(r.status)}[/]",
            escape(" · ".join((r.task, r.arch, r.init, r.layer, r.metric))),
            "—" if r.baseline is None else f"{r.baseline:.5g}", "—" if r.current is None else f"{r.current:.5g}",
            "—" if d is None else f"{d:+.4g}", f"±{r.tolerance:.3g}", "—" if ratio is None else f"{ratio:.1f}",
            escape(r.why()),
        )
    return table


@app.command(short_help="Re-run a suite and compare its scores with a baseline.")
def check(
    baseline: Annotated[Path, typer.Option(help="Baseline JSON written by `archbench baseline save`.")] = Path("reports/baselines/ci.json"),
    suite: Annotated[str | None, typer.Option(help="Suite file or built-in name (default: the baseline's suite).")] = None,
    store: StoreOpt = DEFAULT_STORE,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda (default: the suite's).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (terminal) or md (pull-request comment).")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the Markdown summary to this file.")] = None,
    allow_improvements: Annotated[bool, typer.Option("--allow-improvements", help="Do not fail when a score got better.")] = False,
) -> None:
    """Re-run a suite (reusing stored results) and compare with a baseline; exit 1 if a score moved
    beyond the tolerance its measured noise allows."""
    from archbench.cli.sweep import run_suite_with_progress
    from archbench.errors import ConfigError
    from archbench.report.baseline import configuration_digest, fingerprint_differences, load_baseline, machine_info
    from archbench.report.check import compare, compare_claims, current_means, report_markdown
    from archbench.report.claims import claims_of_store
    from archbench.store import ResultStore
    from archbench.sweep import load_suite

    if fmt not in ("table", "md"):
        raise ConfigError(f"unknown --format {fmt!r}; valid: table, md")
    base = load_baseline(baseline)
    if out is not None:
        from archbench.fileio import check_output_file

        check_output_file(out, "--out")  # before the suite runs
    suite_ref = suite or base.get("suite_ref") or base["suite"]
    suite_obj = load_suite(suite_ref)
    if suite_obj.name != base["suite"]:
        raise ConfigError(f"baseline {str(baseline)!r} belongs to suite {base['suite']!r}, not {suite_obj.name!r}")
    with ResultStore(store) as db:
        summary = run_suite_with_progress(suite_obj, db, device=device, quiet=fmt == "md")
        current = current_means(db, summary.keys)
        claims = claims_of_store(db, suite_obj.name, summary.keys) if base.get("claims") is not None else []
    rep = compare(base, current, allow_improvements=allow_improvements)
    rep.claims = compare_claims(base.get("claims") or [], claims)
    rep.machine_differences = fingerprint_differences(base.get("machine", {}), machine_info())
    configurations = base.get("jobs", {}).get("configurations")
    rep.configuration_changed = configurations is not None and configurations != configuration_digest(summary.keys)
    md = report_markdown(rep, str(baseline))
    if out is not None:
        from archbench.fileio import atomic_write

        atomic_write(out, md)
    if fmt == "md":
        console.print(md, markup=False, highlight=False, soft_wrap=True)
    else:
        if rep.machine_differences:
            console.print("machine differs from the baseline's: " + "; ".join(rep.machine_differences),
                          markup=False, highlight=False, soft_wrap=True)
        if rep.configuration_changed:
            console.print("the suite's job configurations differ from the baseline's", markup=False, highlight=False)
        counts = ", ".join(f"{v} {k}" for k, v in sorted(rep.counts().items()))
        if rep.moved:
            console.print(check_table(rep, f"scores that moved (suite {rep.suite} vs {baseline})"))
        for c in rep.claims:
            if c.status != "ok":
                colour = "red" if c.status == "flipped" else "yellow"
                console.print(f"[{colour}]claim {escape(c.id)}:[/] {escape(c.baseline or '—')} -> "
                              f"{escape(c.current or '—')} ({c.status})", highlight=False)
        verdict = "[green]passed[/]" if rep.passed else "[bold red]FAILED[/]"
        console.print(f"check {verdict}: {len(rep.rows)} scores compared ({counts})", highlight=False)
    if not rep.passed:
        sys.exit(1)  # SystemExit: typer.Exit's code is dropped when the app runs with standalone_mode=False
