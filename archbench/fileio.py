"""Writing outputs safely: atomic writes that leave nothing half-written, and checks that an
output place is writable *before* any work is done.

* :func:`atomic_write` writes a temporary file beside the target and renames it over the target;
  when the write fails (disk full, permissions) the temporary file is removed and an
  :class:`~archbench.errors.OutputError` says what failed, so no ``.tmp`` file is left behind.
* :func:`read_text`: a text input (suite, baseline, ground truth) read as bytes and decoded, with
  one :class:`~archbench.errors.ConfigError` line naming the file, the encoding and where it
  fails instead of a ``UnicodeDecodeError``.
* :func:`check_output_dir` / :func:`check_output_file`: ``--out`` that is a file where a folder is
  needed (or a folder where a file is), a path under ``/proc``, a read-only or full file system
  fail at once with one line, before an optimisation runs. The check creates the folder (and
  writes and removes one probe file); nothing else.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from archbench.errors import ConfigError, OutputError


def os_reason(exc: OSError) -> str:
    """The reason of an ``OSError`` in words (``No space left on device``)."""
    if exc.errno is not None and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def output_error(path: str | Path, exc: OSError, what: str = "") -> OutputError:
    """An :class:`OutputError` for a failed write of ``path``."""
    hint = ""
    if exc.errno == errno.ENOSPC:
        hint = "; free some space (or write elsewhere) and run again: finished results are kept"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "; choose a writable place"
    return OutputError(f"cannot write {what + ' ' if what else ''}{str(path)!r}: {os_reason(exc)}{hint}")


def atomic_write(path: str | Path, data: bytes | str, *, what: str = "") -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    On failure the temporary file is removed and :class:`OutputError` raised; ``path`` keeps its
    previous content.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, fd = _create_temp(path.parent, f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise output_error(path, exc, what) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


def _create_temp(folder: Path, prefix: str) -> tuple[str, int]:
    """A new file ``folder/<prefix><random>.tmp`` opened for writing (the usual permissions, as
    ``open`` gives them); its name and descriptor."""
    for _ in range(100):
        name = str(folder / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "cannot create a temporary file", str(folder))


def _probe(folder: Path) -> None:
    """Create, write and remove one file in ``folder`` (raises ``OSError`` when it cannot)."""
    name, fd = _create_temp(folder, ".archbench-probe-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"x")
    finally:
        os.unlink(name)


def read_text(path: str | Path, what: str, encoding: str = "utf-8") -> str:
    """The text of the file ``path`` (a ``what``: "suite file", "baseline", ...), decoded from
    ``encoding`` (a UTF-8 byte-order mark is dropped).

    Raises:
        ConfigError: the file does not exist, is a folder, or is not ``encoding`` text (the
            message names the file, the encoding and the line and byte where decoding fails).
        OSError: it cannot be read (permissions, I/O error).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {str(path)!r} is a folder; give a file") from None
    if encoding.replace("-", "").lower() == "utf8" and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.start + 1].hex()
        hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError(f"{what} {str(path)!r} is not {encoding} text{hint}: byte 0x{bad} on line {line} "
                          f"(offset {exc.start}) cannot be decoded; save the file as {encoding}") from None


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Make sure ``path`` is (or can be created as) a writable folder; returns it.

    Raises:
        OutputError: it is a file, cannot be created, or is not writable (read-only, full, /proc).
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a file, not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        _probe(path)
    except OSError as exc:
        raise OutputError(f"{what} {str(path)!r} is not writable: {os_reason(exc)}") from None
    return path


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Make sure a file can be written at ``path`` (its folder is created); returns it.

    Raises:
        OutputError: ``path`` is a folder, or its folder cannot be created or written.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a folder; give a file name")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{what} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _probe(parent)
    except OSError as exc:
        raise OutputError(f"{what} {str(path)!r} cannot be written: {os_reason(exc)}") from None
    return path


__all__ = ["atomic_write", "check_output_dir", "check_output_file", "os_reason", "output_error", "read_text"]
