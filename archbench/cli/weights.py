"""``archbench weights status|import``: trained weights available offline."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.table import Table

from archbench.cli.app import app, console
from archbench.errors import ConfigError
from archbench.escaping import terminal as esc

weights_app = typer.Typer(help="Trained weights: what is available offline, and importing files.", no_args_is_help=True)
app.add_typer(weights_app, name="weights", short_help="Trained weights: what is available offline; import files.")


@weights_app.command("status", short_help="List every trained weight: where it is, or how to get it.")
def status_cmd(
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """List every weight archbench can use: where it was found, or where it is expected and how to get it."""
    from archbench.weights import weights_status

    if fmt not in ("table", "json"):
        raise ConfigError(f"invalid --format {fmt!r}; valid: table, json")
    rows = weights_status()
    if fmt == "json":
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
        return
    table = Table(title="trained weights (never downloaded)")
    table.add_column("name", style="bold")
    table.add_column("found")
    table.add_column("where / expected path", overflow="fold")
    table.add_column("to get it", overflow="fold")
    for row in rows:
        found = f"[green]yes[/] ({esc(row.source)})" if row.found else "[red]no[/]"
        where = esc(row.path) + (f"\n[dim]{esc(row.note)}[/]" if row.note else "")
        table.add_row(esc(row.name), found, where, esc(row.command or "—"))
    console.print(table)


@weights_app.command("import", short_help="Verify and install a torchvision checkpoint file.")
def import_cmd(
    file: Annotated[str, typer.Argument(help="A torchvision checkpoint, e.g. vgg16-397923af.pth.")],
) -> None:
    """Verify a torchvision checkpoint (SHA-256 prefix of its name) and copy it into the torch hub cache."""
    from archbench.weights import import_weights

    result = import_weights(file)
    if result.copied:
        console.print(f"imported [bold]{esc(result.model)}[/] weights to {esc(result.path)}", highlight=False, soft_wrap=True)
    else:
        console.print(f"{result.path} is already present and identical; nothing to do", markup=False, highlight=False,
                      soft_wrap=True)
