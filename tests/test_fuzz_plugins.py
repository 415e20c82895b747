"""Fuzzing architecture plugins (``--arch FILE.py:FACTORY``): factories and forward passes that
raise anything (``SystemExit`` with any code, ``KeyboardInterrupt``, other ``BaseException`` s,
exceptions with multi-line or markup messages), return anything, or hang. A plugin cannot end the
program: ``run`` exits 0 with a result or 2 with one line naming the plugin; a sweep records the
plugin's job as failed and runs the others."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import call, check_property, examples  # noqa: E402

COUNTER = itertools.count()
HEADER = """\
import sys
import torch
from torch import nn


class Custom(BaseException):
    pass


def net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.AvgPool2d(2))


class Bad(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = net()

    def forward(self, x):
        {forward}
        return self.inner(x)
"""

raises = st.one_of(
    st.sampled_from([0, 1, 2, 3, None, "'bye'", "-1", "10**30"]).map(lambda c: f"sys.exit({c})"),
    st.sampled_from(["KeyboardInterrupt()", "GeneratorExit()", "Custom('x')", "BaseException('x')", "MemoryError()",
                     "RecursionError()", "StopIteration()", "ValueError('a\\nb')", "RuntimeError('[red]x[/]')",
                     "TypeError('t')", "OSError(28, 'No space left on device')", "ArithmeticError()",
                     "Exception()"]).map(lambda e: f"raise {e}"),
)
returns = st.sampled_from(["None", "0", "'net'", "nn.Identity()", "nn.Linear(3, 3)", "net()", "Bad()",
                           "nn.Sequential()", "nn.Conv2d(3, 4, 3)", "[net()]"])


@st.composite
def plugins(draw) -> tuple[str, str]:
    """(where it misbehaves, the plugin's source)."""
    where = draw(st.sampled_from(["factory", "import", "forward", "returns"]))
    forward = draw(raises) if where == "forward" else "pass"
    source = HEADER.replace("{forward}", forward)
    if where == "import":
        source += draw(raises) + "\n"
    body = draw(raises) if where == "factory" else "return " + (draw(returns) if where == "returns" else "Bad()")
    return where, source + f"\n\ndef make():\n    {body}\n"


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("fuzz_plugins")
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / "p.png")
    return d


def plugin_file(place: Path, source: str) -> Path:
    path = place / f"plugin_{next(COUNTER)}.py"  # a new file each time: modules are cached by path
    path.write_text(source)
    return path


def run_argv(place: Path, spec: str, out: Path) -> list[str]:
    return ["run", "--arch", spec, "--image", "p.png", "--size", "16", "--iters", "1", "--device", "cpu",
            "--metrics", "ssim", "--out", str(out)]


@examples(60)
@given(plugins())
@example(("factory", HEADER.replace("{forward}", "pass") + "\n\ndef make():\n    sys.exit(0)\n"))
@example(("factory", HEADER.replace("{forward}", "pass") + "\n\ndef make():\n    raise KeyboardInterrupt()\n"))
@example(("forward", HEADER.replace("{forward}", "sys.exit(0)") + "\n\ndef make():\n    return Bad()\n"))
@example(("import", HEADER.replace("{forward}", "pass") + "sys.exit(0)\n\ndef make():\n    return net()\n"))
def test_a_plugin_cannot_end_the_program(place, monkeypatch, plugin):
    monkeypatch.chdir(place)
    where, source = plugin
    path = plugin_file(place, source)
    out = place / f"out-{next(COUNTER)}"
    # a plugin that raises or exits is named; one returning an unusable network gets the usual line
    # about the network (no layer to tap, no downsampling, ...)
    o = check_property(run_argv(place, f"{path}:make", out), [out], ok_codes=(0, 1),
                       result=lambda o: (out / "results.jsonl").exists(),
                       names=(path.name,) if where != "returns" else ())
    if "sys.exit" in source and where != "returns":
        assert o.code == 2


def test_a_sweep_records_the_exiting_plugin_as_failed_and_runs_the_others(place, monkeypatch):
    monkeypatch.chdir(place)
    bad = plugin_file(place, HEADER.replace("{forward}", "pass") + "\n\ndef make():\n    sys.exit(0)\n")
    good = plugin_file(place, HEADER.replace("{forward}", "pass") + "\n\ndef make():\n    return net()\n")
    suite = place / "plugins.toml"
    suite.write_text(f'name = "plugins"\nseeds = [0]\nsize = 16\niterations = 1\ndevice = "cpu"\n'
                     f'archs = ["{bad.name}:make", "{good.name}:make"]\nimages = ["p.png"]\ntasks = ["reconstruct"]\n')
    o = call(["sweep", str(suite), "--store", str(place / "plugins.db"), "--out", str(place / "plugin-images")])
    assert o.code == 1, o.err  # a job failed; the sweep went on
    from archbench.store import ResultStore

    with ResultStore(place / "plugins.db") as db:
        runs = {r.config.arch: r for r in db.runs()}
    assert "1 done now, 1 failed" in o.out, o.out
    [failed] = [r for a, r in runs.items() if bad.name in a]
    [done] = [r for a, r in runs.items() if good.name in a]
    assert failed.status == "failed" and "sys.exit(0)" in failed.error and done.status == "done"


def test_a_hanging_factory_is_stopped_at_the_stated_limit(place, monkeypatch):
    monkeypatch.chdir(place)
    monkeypatch.setenv("ARCHBENCH_PLUGIN_TIMEOUT", "1")
    path = plugin_file(place, HEADER.replace("{forward}", "pass")
                       + "\n\ndef make():\n    import time\n    while True:\n        time.sleep(0.01)\n")
    out = place / "hang-out"
    o = check_property(run_argv(place, f"{path}:make", out), [out], names=(path.name,))
    assert o.code == 2 and "longer than 1 s" in o.lines[0] and "ARCHBENCH_PLUGIN_TIMEOUT" in o.lines[0]


def test_a_plugin_raising_keyboard_interrupt_is_not_a_ctrl_c(place, monkeypatch):
    monkeypatch.chdir(place)
    path = plugin_file(place, HEADER.replace("{forward}", "pass") + "\n\ndef make():\n    raise KeyboardInterrupt\n")
    o = call(run_argv(place, f"{path}:make", place / "kbi-out"))
    assert o.code == 2 and "KeyboardInterrupt" in o.lines[0] and path.name in o.lines[0]


def test_a_real_ctrl_c_in_a_plugin_still_interrupts(place, monkeypatch):
    import os
    import signal

    from archbench.plugins import plugin_call

    with pytest.raises(KeyboardInterrupt):
        with plugin_call("x.py:make", "factory"):
            os.kill(os.getpid(), signal.SIGINT)
            import time

            time.sleep(1)
