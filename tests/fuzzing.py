"""Shared pieces of the property-based fuzz tests (``tests/test_fuzz_*.py``).

The property every entry point keeps, whatever its input (:func:`check_property`):

* exit 0 and the command's result exists (a stored result, a written file, printed output);
* or exit 2 with exactly one line on stderr, ``error: ...``, no traceback, and every file in the
  watched folders (the results store, the output folder) unchanged;
* never an exception out of :func:`archbench.cli.main`, never exit 0 without a result.

Budgets (examples per test) come from :func:`examples`: the number given in the default run
(hypothesis profile ``archbench-ci``: derandomised, so a run is repeatable, no example database),
ten times as many with ``--run-slow`` (profile ``archbench-slow``: random, one seed per session,
printed in pytest's header). A failure prints the falsifying example and a ``@reproduce_failure``
blob; a random run is repeated with ``pytest --run-slow --hypothesis-seed=N``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import io
import os
import string
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

CI_PROFILE, SLOW_PROFILE = "archbench-ci", "archbench-slow"
SLOW_FACTOR = 10
#: one example running longer than this dumps every thread's stack to stderr
HANG_SECONDS = 60
_common = dict(
    database=None,  # no .hypothesis/ folder in the repository
    deadline=None,  # the first call of a test imports torch models: no per-example deadline
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
settings.register_profile(CI_PROFILE, derandomize=True, max_examples=200, **_common)
settings.register_profile(SLOW_PROFILE, derandomize=False, max_examples=200 * SLOW_FACTOR, **_common)


def load_profile(config) -> str:
    """Load the slow or the CI profile (``HYPOTHESIS_PROFILE`` in the environment wins); the line
    pytest prints in its header. A random (slow) run draws one seed for the session, unless
    ``--hypothesis-seed`` gives it, and prints it: ``--hypothesis-seed=N`` repeats the run."""
    import random

    from hypothesis import core

    from tests.conftest import run_slow

    name = os.environ.get("HYPOTHESIS_PROFILE") or (SLOW_PROFILE if run_slow(config) else CI_PROFILE)
    settings.load_profile(name)
    if settings.default.derandomize:
        return f"hypothesis profile {name}: derandomised (every run draws the same examples)"
    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
        core.global_force_seed = seed
    return f"hypothesis profile {name}: seed {seed} (repeat with --hypothesis-seed={seed})"


def examples(n: int) -> settings:
    """``@settings`` for a fuzz test: ``n`` examples in the default run, ten times as many in the
    slow profile."""
    slow = settings.default.max_examples > 200 or not settings.default.derandomize
    return settings(max_examples=n * SLOW_FACTOR if slow else n)


# ---- running the command line in this process ----------------------------------------------------

@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.strip().splitlines() if line.strip()]


def call(argv: list[str]) -> Outcome:
    """``archbench ARGV`` in this process; its exit code and output. Any exception other than
    ``SystemExit`` propagates: that is a failure of the property."""
    from archbench.cli import main

    log = os.environ.get("ARCHBENCH_FUZZ_LOG")  # a file: each call's arguments, written before it runs
    if log:
        with open(log, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(repr(argv) + "\n")
    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    faulthandler.dump_traceback_later(HANG_SECONDS)  # a hanging example shows where it hangs
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(argv))
    except SystemExit as exc:
        code = exc.code
    finally:
        faulthandler.cancel_dump_traceback_later()
    if code is None:
        code = 0
    assert isinstance(code, int), f"exit code {code!r}"
    return Outcome(code, out.getvalue(), err.getvalue())


def snapshot(*roots: Path) -> dict[str, str]:
    """Path -> content digest of every file under ``roots`` (missing roots count as empty)."""
    found: dict[str, str] = {}
    for root in roots:
        if root.is_file():
            found[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and not p.name.endswith(("-wal", "-shm", "-journal")):
                    found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def check_property(argv: list[str], watched: list[Path], ok_codes: tuple[int, ...] = (0,), *,
                   result=None, names: tuple[str, ...] = ()) -> Outcome:
    """Run ``argv`` and assert the fuzz property (module docstring).

    Args:
        watched: folders/files that a refused run must leave as they were.
        ok_codes: exit codes of a run that went through (``sweep``: 1 when jobs failed).
        result: ``result(outcome) -> bool``: the command's result exists after a run that went through.
        names: when given, a refused run's line names at least one of them (the input at fault).
    """
    before = snapshot(*watched)
    o = call(argv)
    assert "Traceback" not in o.err, o.err
    if o.code == 2:
        assert len(o.lines) == 1, f"expected one line on stderr, got:\n{o.err}"
        assert o.lines[0].startswith("error: "), o.lines[0]
        assert snapshot(*watched) == before, "a refused run changed the store or the output folder"
        if names:
            assert any(n in o.lines[0] for n in names), (o.lines[0], names)
        return o
    assert o.code in ok_codes, f"exit {o.code}\nstdout:\n{o.out[-2000:]}\nstderr:\n{o.err[-2000:]}"
    if result is not None:
        assert result(o), f"exit {o.code} without a result\nstdout:\n{o.out[-2000:]}\nstderr:\n{o.err[-2000:]}"
    return o


# ---- strategies ----------------------------------------------------------------------------------

#: integers anywhere in +-10^30, with the machine boundaries hypothesis might not reach by itself
huge_ints = st.one_of(
    st.integers(-(10**30), 10**30),
    st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**23, 0, -1]),
)
#: floats, non-finite ones included
any_floats = st.floats(allow_nan=True, allow_infinity=True)

#: text users might type: markup, control characters, surrogates, path-like pieces
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=20),
    st.sampled_from([
        "", " ", "[red]x[/]", "[/]", "[bold", "\x00", "a\nb", "\r", "\x1b[31m", "\ud800", "\udcff", "..", "/",
        "~", "-", "--", "-1", "nan", "inf", "1e999", "0x10", "1_000", "\u202e", "💥", "a" * 300, "%s", "{0}",
        "vgg11(", "vgg11()", "vgg11(width=)", "tv:", "timm:", ":", "x.py:", ".py:f", "checkpoint:", "gaussian:",
    ]),
)


def number_text(draw_ints=huge_ints, draw_floats=any_floats) -> st.SearchStrategy[str]:
    """Numbers as a user types them (ints, floats, scientific, junk)."""
    return st.one_of(draw_ints.map(str), draw_floats.map(repr), draw_floats.map(str), nasty_text)


#: relative file names safe to create inside a test's folder
safe_names = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and not s.startswith("-"))


__all__ = ["CI_PROFILE", "HANG_SECONDS", "SLOW_PROFILE", "Outcome", "any_floats", "call", "check_property", "examples", "huge_ints",
           "load_profile", "nasty_text", "number_text", "safe_names", "snapshot"]


def tiny_place(folder: Path, seed: int) -> Path:
    """A fuzz test's working folder: one random 32 px photo ``p.png`` and an empty torch home."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / "p.png")
    (folder / "torch").mkdir()
    return folder


def tiny_env(place: Path, monkeypatch, **env: str) -> Path:
    """Run in ``place`` with its torch home and sizes capped at 32 px (valid sizes stay tiny), plus ``env``."""
    monkeypatch.chdir(place)
    monkeypatch.setenv("TORCH_HOME", str(place / "torch"))
    monkeypatch.setenv("ARCHBENCH_MAX_SIZE", "32")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return place
