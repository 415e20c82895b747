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
    "archbench.cli.gallery",
]


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


_COMMAND: list = []


def _command():
    """The click command of :data:`app`, built once per process (typer builds it anew on each
    ``app()`` call; in-process callers such as the fuzz tests call :func:`main` thousands of times)."""
    import typer

    key = (len(app.registered_commands), len(app.registered_groups))
    if not _COMMAND or _COMMAND[0] != key:
        _COMMAND[:] = [key, typer.main.get_command(app)]
    return _COMMAND[1]


def _click_exceptions() -> tuple[tuple[type, ...], ...]:
    """(Exit, UsageError, ClickException, Abort) classes of click and of the copy of click that
    recent typer versions ship as ``typer._click``."""
    found: list[list[type]] = [[], [], [], []]
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for i, cls in enumerate(("Exit", "UsageError", "ClickException", "Abort")):
            if hasattr(mod, cls):
                found[i].append(getattr(mod, cls))
    return tuple(tuple(f) for f in found)


def one_line(text: object) -> str:
    """``text`` on one line (an error message must not spill over several)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def print_error(message: object) -> None:
    """``error: MESSAGE`` in red on stderr, one line, the message never read as rich markup."""
    from rich.text import Text

    err_console.print(Text.assemble(("error:", "bold red"), " ", one_line(message)), soft_wrap=True, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Whatever goes wrong because of the input or the environment ends as one red line on stderr and
    exit code 2: :class:`~archbench.errors.ArchbenchError` s, command-line usage errors (click's,
    shortened to one line), and -- as a last resort -- an ``OSError`` or ``MemoryError`` nothing
    else caught. ``--debug`` shows the traceback instead.
    """
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
        rc = _command()(args=args, prog_name="archbench", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except ArchbenchError as exc:
        if debug:
            raise
        print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and typer.Exit are handled below
        Exit, UsageError, ClickException, Abort = _click_exceptions()
        if isinstance(exc, Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, UsageError):
            if debug:
                raise
            where = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "archbench"
            print_error(f"{exc.format_message()} (see `{where} --help`)")
            sys.exit(2)
        if isinstance(exc, ClickException):
            if debug:
                raise
            print_error(exc.format_message())
            sys.exit(exc.exit_code)
        if isinstance(exc, Abort):
            err_console.print("[yellow]aborted[/]")
            sys.exit(130)
        if isinstance(exc, OSError | MemoryError) and not debug:
            from archbench.fileio import os_reason

            if isinstance(exc, MemoryError):
                print_error("out of memory; try a smaller --size or fewer images (--debug shows where)")
            else:
                where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
                print_error(f"{where}{os_reason(exc)} (--debug shows where)")
            sys.exit(2)
        raise


__all__ = ["app", "main"]
