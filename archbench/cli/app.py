"""The typer application object shared by the command modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from archbench.cli.types import ArchbenchGroup

if TYPE_CHECKING:
    from archbench.store import ResultStore

app = typer.Typer(
    name="archbench",
    help="Compare convolutional architectures without training them (He, Wang & Hopcroft 2016).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ArchbenchGroup,  # every int and float option gets its range (archbench.values)
)
console = Console()
err_console = Console(stderr=True)


@contextmanager
def open_results(store: Path, suite: str | None = None) -> Iterator[ResultStore]:
    """Open an existing results store for reading; :class:`~archbench.errors.ConfigError` when it
    does not exist or ``suite`` (if given) has no jobs in it."""
    from archbench.errors import ConfigError
    from archbench.store import ResultStore

    if not Path(store).exists():
        raise ConfigError(f"store {str(store)!r} does not exist; run `archbench sweep SUITE --store {store}` first")
    with ResultStore(store) as db:
        if suite is not None and suite not in db.suite_names():
            known = ", ".join(db.suite_names()) or "none"
            raise ConfigError(f"suite {suite!r} has no jobs in {store}; suites there: {known}")
        yield db
