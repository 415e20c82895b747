"""``archbench export``: the results table (``archbench.load_results``) for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archbench.cli.app import app, console, open_results
from archbench.store import DEFAULT_STORE

EXPORT_FORMATS = ("csv", "parquet")


@app.command(short_help="Write the stored scores as one tidy table.")
def export(
    store: Annotated[Path, typer.Option("--store", "-s", help="Results database (SQLite).")] = DEFAULT_STORE,
    suite: Annotated[str | None, typer.Option(help="Only this suite's runs (default: every run in the store).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or parquet (parquet needs pyarrow: pip install 'archbench[parquet]').")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default: results.csv / results.parquet).")] = None,
    final_loss: Annotated[bool, typer.Option("--final-loss", help="Add each result's final loss as the metric final_loss.")] = False,
    include_failed: Annotated[bool, typer.Option("--include-failed", help="Also the partial results of failed runs (adds a status column).")] = False,
) -> None:
    """Write the stored scores as one tidy table: one row per run, layer and metric, with every part
    of the run's identity (what `archbench.load_results` returns in Python)."""
    from archbench.errors import ConfigError
    from archbench.frame import load_results

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("--format parquet needs pyarrow: pip install 'archbench[parquet]' (or use --format csv)") from None
    out = out or Path(f"results.{fmt}")
    with open_results(store, suite) as db:
        frame = load_results(db, suite, final_loss=final_loss, include_failed=include_failed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        from archbench.report.text import frame_csv

        frame_csv(frame, out)
    else:
        frame.to_parquet(out, index=False)
    console.print(f"wrote {out} ({len(frame)} rows, {frame['key'].nunique()} runs)", highlight=False)
