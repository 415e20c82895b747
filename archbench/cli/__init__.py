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

import typer

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

    key = (len(app.registered_commands), len(app.registered_groups))
    if not _COMMAND or _COMMAND[0] != key:
        _COMMAND[:] = [key, typer.main.get_command(app)]
    return _COMMAND[1]


def _click_exceptions() -> tuple[tuple[type, ...], ...]:
    """(Exit, UsageError, ClickException, Abort) classes of click and of the copy of click that
    recent typer versions ship as ``typer._click``."""
    found: list[list[type]] = [[], [], [], []]
    for name in ("click.exceptions", "typer._click.exceptions", "typer.exceptions"):
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


def stdout_closed() -> bool:
    """Whether whoever read stdout has gone away (a pipe whose reading end is closed)."""
    import select

    if not hasattr(select, "poll"):  # Windows: no way to ask; a broken pipe there is stdout's
        return True
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # stdout replaced (captured) or closed: not a pipe that broke
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & select.POLLERR for _fd, event in poller.poll(0))


def reader_gone() -> None:
    """Stop quietly with exit code 0: the reader of stdout has what it wanted (``archbench --help |
    head -1``), as ``cat`` and ``ls`` do when the shell ignores SIGPIPE."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
    except (OSError, ValueError):
        pass
    sys.exit(0)


def flush_stdout() -> None:
    """Flush stdout now, so that a reader that went away shows here rather than at interpreter exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        if not stdout_closed():
            raise
        reader_gone()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Whatever goes wrong because of the input or the environment ends as one red line on stderr and
    exit code 2: :class:`~archbench.errors.ArchbenchError` s, command-line usage errors (click's,
    shortened to one line), and -- as a last resort -- an ``OSError`` or ``MemoryError`` nothing
    else caught. ``--debug`` shows the traceback instead. When the reader of stdout goes away
    (``archbench --help | head -1``) it stops quietly with exit code 0.
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
        # click's own context and invoke (not typer's main loop, which turns a closed stdout into
        # exit 1): every exception reaches the handlers below
        command = _command()
        with command.make_context("archbench", args) as ctx:
            rc = command.invoke(ctx)
        flush_stdout()
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except BrokenPipeError:
        if not stdout_closed():
            raise
        reader_gone()
    except EOFError:
        err_console.print("[yellow]aborted[/]")
        sys.exit(130)
    except ArchbenchError as exc:
        if debug:
            raise
        print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit:
        flush_stdout()
        raise
    except Exception as exc:  # click usage errors and typer.Exit are handled below
        Exit, UsageError, ClickException, Abort = _click_exceptions()
        if isinstance(exc, Exit):  # --help, typer.Exit
            flush_stdout()
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
