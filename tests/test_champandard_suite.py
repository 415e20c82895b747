"""The built-in ``champandard2016`` suite: its grid, that every entry builds and fits, and that a
tiny version runs on CPU into a ranked leaderboard."""

from __future__ import annotations

import json

from archbench.architectures import create_arch
from archbench.report import leaderboard_from_store, render
from archbench.store import ResultStore
from archbench.sweep import expand_jobs, load_suite, run_sweep
from archbench.tasks import TaskJob, get_task
from archbench.tasks.phases import phase_sizes

METRICS = ["gram", "spectrum", "color-swd"]


def test_builtin_suite_is_the_blogs_grid():
    suite = load_suite("champandard2016")
    specs = [a.spec for a in suite.archs]
    assert specs == [
        "vgg19",
        "vgg19(act=leaky-relu:0.3)",
        "vgg19(act=elu)",
        "vgg19(down=max)",
        "vgg19(down=stride)",
        "vgg19(width=0.5)",
        "vgg19(width=0.25)",
        "vgg19(depth=2,width=0.5)",
        "vgg19(depth=3,width=0.5)",
        "champandard2016",
    ]
    assert suite.reference == "vgg19" and len(suite.seeds) >= 5
    assert sorted(suite.images) == ["brick", "grass", "gravel", "immunohistochemistry"]
    (task,) = suite.tasks
    assert task.name == "texture" and task.metrics == METRICS
    assert task.options["loss"] == "patches" and task.options["phases"] == 3
    assert len(expand_jobs(suite, "cpu")) == len(specs) * len(suite.seeds) * 4


def test_every_entry_builds_and_its_patch_layers_fit_the_smallest_phase():
    suite = load_suite("champandard2016")
    (task,) = suite.tasks
    texture = get_task("texture")
    smallest = phase_sizes(suite.size, task.options["phases"])[0]
    for arch in suite.archs:
        net = create_arch(arch.spec, seed=0)
        texture.validate(net, TaskJob(images=["brick"], size=smallest, options=dict(task.options)))


def test_tiny_champandard_suite_runs_on_cpu_and_ranks(tmp_path):
    builtin = load_suite("champandard2016").tasks[0]
    options = {**builtin.options, "phases": 1}  # 32 px: conv4_1 is 4x4, too small to halve
    toml = f"""
name = "champandard-tiny"
reference = "vgg19(width=0.25)"
seeds = [0]
images = ["brick"]
size = 32
iterations = 5
device = "cpu"
archs = ["vgg19(width=0.25)", "champandard2016(width=0.25)"]

[[task]]
name = "texture"
options = {{ {", ".join(f"{k} = {json.dumps(v)}" for k, v in options.items())} }}
metrics = {json.dumps(METRICS)}
"""
    path = tmp_path / "tiny.toml"
    path.write_text(toml)
    suite = load_suite(path)
    assert suite.tasks[0].options == options
    with ResultStore(tmp_path / "results.db") as store:
        summary = run_sweep(suite, store, out_dir=tmp_path / "images")
        assert (summary.total, summary.done, summary.failed) == (2, 2, 0)
        lb = leaderboard_from_store(store, suite="champandard-tiny")
        text = render(lb, "md", store)
    assert lb.reference == "vgg19(width=0.25)"
    for metric in METRICS:
        board = lb.board("texture", metric)
        assert board is not None and not board.higher_is_better  # all three are distances
        assert [e.rank for e in board.entries] == [1.0, 2.0]
        assert board.entries[0].mean <= board.entries[1].mean
    assert [o.rank for o in lb.overall] == [1.0, 2.0]
    assert {o.unit for o in lb.overall} == {"vgg19(width=0.25)", "champandard2016(width=0.25)"}
    assert "champandard2016(width=0.25)" in text
    with ResultStore(tmp_path / "results.db") as store:
        row = store.results(suite="champandard-tiny")[0]
    assert row.layer == "conv3_1+conv4_1" and row.size == 32 and row.iterations_run == 5
