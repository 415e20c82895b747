"""Command line: ``archbench run|list|...``; a thin layer over the library.

Each command lives in its own module here and registers itself on :data:`app`; add the module to
``COMMAND_MODULES``. User errors (:class:`ArchbenchError`) print one red line and exit 2; pass
``--debug`` (or set ``ARCHBENCH_DEBUG=1``) for the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from archbench.cli.app import app, err_console

COMMAND_MODULES = [
    "archbench.cli.run",
    "archbench.cli.list",
    "archbench.cli.sweep",
    "archbench.cli.report",
    "archbench.cli.baseline",
    "archbench.cli.score",
    "archbench.cli.weights",
    "archbench.cli.stack",
    "archbench.cli.correlate",
    "archbench.cli.export",
]


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from archbench.errors import ArchbenchError

    args = [*(sys.argv[1:] if argv is None else argv)]  # `list` is shadowed by the archbench.cli.list module
    debug = os.environ.get("ARCHBENCH_DEBUG") == "1"
    if "--debug" in args:
        args.remove("--debug")
        debug = True
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _load_commands()
    try:
        # standalone_mode=False returns typer.Exit's code instead of exiting: pass it on
        rc = app(args=args, prog_name="archbench", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except ArchbenchError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and typer.Exit are handled below
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            err_console.print("[yellow]aborted[/]")
            sys.exit(130)
        raise


__all__ = ["app", "main"]
