"""Fuzzing ``-O KEY=VALUE`` of every task: keys from the task's options (and others), values of
every type as a user types them. Each value is checked against the option's declared type when
it is parsed (archbench.tasks.base.Task.parse_options); the property (tests/fuzzing.py) holds for
every task."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import any_floats, check_property, examples, huge_ints, nasty_text  # noqa: E402

COUNTER = itertools.count()

#: per task: the command line that runs it cheaply (16 px, one iteration, one layer)
TASKS = {
    "reconstruct": ["-O", "layers=pool1"],
    "texture": ["-O", "layers=conv1_1"],
    "style": ["--style", "p.png", "-O", "content_layers=conv1_1", "-O", "style_layers=conv1_1"],
    "maximize": ["-O", "layers=conv1_1", "--channels", "1"],
    "proxies": [],
}


def option_names(task: str) -> list[str]:
    from archbench.tasks import get_task

    t = get_task(task)
    return [f.name for f in dataclasses.fields(t.Options)] + ["phases"] if t.Options else ["phases"]


values = st.one_of(
    huge_ints.map(str), any_floats.map(repr), nasty_text,
    st.lists(st.one_of(huge_ints.map(str), any_floats.map(repr), st.sampled_from(["'pool1'", "'conv1_1'", "x"])),
             max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.sampled_from(["true", "false", "none", "1", "0", "-1", "0.5", "2", "pool1", "conv1_1", "photos", "fourier",
                     "center", "paper", "gatys-style", "patches", "hw", "noise", "content", "[]", "{}", "()",
                     "{'a': 1}", "1e999", "-1e999", "nan", "10**30", "2**64"]),
)


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("fuzz_options")
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / "p.png")
    (d / "torch").mkdir()
    return d


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_option_is_declared_with_a_type(task):
    from archbench.tasks import get_task

    assert set(option_names(task)) >= {"phases"} and get_task(task).name == task


@examples(150)
@given(task=st.sampled_from(sorted(TASKS)), data=st.data())
@example(task="reconstruct", data=None)
def test_task_options_exit_0_with_a_result_or_2_with_one_line(place, monkeypatch, task, data):
    monkeypatch.chdir(place)
    monkeypatch.setenv("TORCH_HOME", str(place / "torch"))
    monkeypatch.setenv("ARCHBENCH_MAX_SIZE", "32")
    if data is None:  # the class of issue 24: a value of the wrong type
        pairs = [("tv_weight", "abc")]
    else:
        keys = st.one_of(st.sampled_from(option_names(task)), nasty_text)
        pairs = data.draw(st.lists(st.tuples(keys, values), min_size=1, max_size=3), label="options")
    out = place / f"out-{next(COUNTER)}"
    argv = ["run", "--task", task, "--arch", "vgg11", "--image", "p.png", "--size", "16", "--iters", "1",
            "--device", "cpu", "--metrics", "ssim", "--out", str(out), *TASKS[task]]
    for key, value in pairs:
        argv += ["-O", f"{key}={value}"]
    result = out / "results.jsonl"
    check_property(argv, [out], ok_codes=(0, 1), result=lambda o: result.exists() and result.stat().st_size > 0)
