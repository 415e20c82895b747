"""The typer application object shared by the command modules."""

from __future__ import annotations

import errno
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
    rich_markup_mode=None,  # click's plain help: reads the same in a terminal and through a pipe
    cls=ArchbenchGroup,  # help without docstring markup; every int and float option gets its range
)


class OutConsole(Console):
    """The console of stdout: a reader that went away (``archbench list archs | head -1``) raises
    :class:`BrokenPipeError` for :func:`archbench.cli.main` to end quietly with exit code 0 (rich's
    own handling exits 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader of stdout went away")


class ErrConsole(Console):
    """The console of stderr: when nobody reads it any more, messages are dropped and work goes on."""

    def on_broken_pipe(self) -> None:
        self.quiet = True


console = OutConsole()
err_console = ErrConsole(stderr=True)


#: where ``archbench run`` writes by default, and the store it records into (``OUT/results.db``)
RUN_OUT = Path("archbench-out")
STORE_FILE = "results.db"


def store_file(path: Path) -> Path:
    """The database a ``--store`` names: a folder stands for the ``results.db`` in it
    (``archbench report archbench-out``)."""
    path = Path(path).expanduser()
    return path / STORE_FILE if path.is_dir() else path


@contextmanager
def open_results(store: Path, suite: str | None = None) -> Iterator[ResultStore]:
    """Open an existing results store for reading; :class:`~archbench.errors.ConfigError` when it
    does not exist or ``suite`` (if given) has no jobs in it."""
    from archbench.errors import ConfigError
    from archbench.store import ResultStore

    if not Path(store).exists():
        raise ConfigError(f"store {str(store)!r} does not exist; record into it with `archbench run ... --store {store}` "
                          f"or `archbench sweep SUITE --store {store}` first")
    with ResultStore(store) as db:
        if suite is not None and suite not in db.suite_names():
            known = ", ".join(db.suite_names()) or "none"
            raise ConfigError(f"suite {suite!r} has no jobs in {store}; suites there: {known}")
        yield db
