"""Fuzzing ``archbench run``: every option with values from its type's whole range (ints in
+-10^30, floats with nan and inf, text with markup, control characters and surrogates). The
property (tests/fuzzing.py): exit 0 with the results written (exit 1 when an optimisation ran
and failed, its row written too), or exit 2 with one line and the output folder unchanged. Also the four classes of issue 24, each with an explicit test."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import any_floats, call, check_property, examples, huge_ints, nasty_text, tiny_env, tiny_place  # noqa: E402


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    d = tiny_place(tmp_path_factory.mktemp("fuzz_run"), seed=0)
    (d / "exit_plugin.py").write_text("import sys\n\ndef make():\n    sys.exit(0)\n")
    return d


@pytest.fixture
def env(place, monkeypatch) -> Path:
    return tiny_env(place, monkeypatch, COLUMNS="120")


def rows(out: Path) -> int:
    f = out / "results.jsonl"
    return len(f.read_text().splitlines()) if f.exists() else 0


BASE = ["run", "--arch", "vgg11", "--image", "p.png", "--size", "16", "--iters", "1", "--layer", "pool1",
        "--device", "cpu", "--metrics", "ssim"]
COUNTER = itertools.count()

#: a handful of iterations at most: larger valid counts would run real optimisations
few = st.one_of(st.integers(-(10**30), 3), st.integers(2**63, 10**30), st.sampled_from([2**63 - 1, 2**64]))


def text_or(*valid: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(valid), nasty_text)


OPTIONS = {
    "--arch": text_or("vgg11", "vgg11(pool=max)", "vgg11(width=0.5)", "vgg11(act=elu)", "vgg11(width=1e999)",
                      "vgg11(width=-1)", "vgg11(depth=99999999999999999999)", "alexnet", "tv:nope"),
    "--task": text_or("reconstruct", "texture", "maximize"),
    "--layer": text_or("pool1", "conv1_1", "pool5", "pool1,pool2"),
    "--image": text_or("p.png", "astronaut", ".", "p.png,p.png"),
    "--size": huge_ints.map(str),
    "--iters": few.map(str),
    "--seed": huge_ints.map(str),
    "--init": text_or("gaussian:0.015", "kaiming", "native", "orthogonal", "uniform", "gaussian:1e308", "gaussian:0",
                      "gaussian:1e-320"),
    "--device": text_or("cpu", "auto", "cuda:99"),
    "--metrics": text_or("ssim", "psnr", "spectrum", "color-swd"),
    "--optimizer": text_or("lbfgs", "adam"),
    "--history": huge_ints.map(str),
    "--normalize": text_or("relative", "paper", "none"),
    "--tv-weight": st.one_of(any_floats.map(repr), nasty_text),
    "--tv-beta": st.one_of(any_floats.map(repr), nasty_text),
    "--alpha-weight": st.one_of(any_floats.map(repr), nasty_text),
    "--phases": few.map(str),
    "--judge": text_or("auto", "random-vgg19"),
    "--channels": text_or("2", "0,1", "all", "-1", "99999999999999999999999"),
}


@examples(60)
@given(st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: OPTIONS[k] for k in keys})))
@example({"--seed": "12345678901234567890123"})
@example({"--tv-weight": "nan"})
@example({"--tv-beta": "-inf"})
@example({"--size": "10000000000000000000000"})
@example({"--iters": str(2**63)})
@example({"--arch": "vgg11(width=1e999)"})
@example({"--arch": "vgg11(width=-1)"})
@example({"--arch": "vgg11(depth=99999999999999999999)"})
@example({"--init": "gaussian:1e308"})
@example({"--channels": "99999999999999999999999", "--task": "maximize"})
@example({"--layer": "\udcff"})
@example({"--image": "[red]x[/]"})
def test_run_options_exit_0_with_a_result_or_2_with_one_line(env, options):
    out = env / f"out-{next(COUNTER)}"
    argv = [*BASE, "--out", str(out)]
    for flag, value in options.items():
        argv += [flag, value]
    # exit 1: the optimisation ran and failed (a non-finite loss from gaussian:1e308), its row stored
    check_property(argv, [out], ok_codes=(0, 1), result=lambda o: rows(out) > 0)


# ---- the four classes of issue 24 ------------------------------------------------------------------

def one_line(o) -> str:
    assert o.code == 2 and "Traceback" not in o.err, (o.code, o.err)
    assert len(o.lines) == 1, o.err
    return o.lines[0]


def test_a_seed_of_23_digits_is_refused_at_the_edge(env):
    line = one_line(call([*BASE, "--seed", "12345678901234567890123"]))
    assert "--seed" in line and "at most 4294967295" in line


@pytest.mark.parametrize("value", ["nan", "inf", "-1e999"])
def test_a_non_finite_float_option_is_refused_at_the_edge(env, value):
    line = one_line(call([*BASE, "--tv-weight", value]))
    assert "--tv-weight" in line and "finite" in line


def test_an_option_of_the_wrong_type_is_refused_whichever_flag_also_sets_it(env):
    assert "option tv_weight must be a number, got 'abc'" in one_line(call([*BASE, "-O", "tv_weight=abc"]))
    line = one_line(call([*BASE, "--tv-weight", "0.1", "-O", "tv_weight=abc"]))
    assert "tv_weight is given twice" in line
    assert "option tv_beta must be a number" in one_line(call([*BASE, "--tv-weight", "0.1", "-O", "tv_beta=[1]"]))


def test_a_plugin_factory_calling_sys_exit_0_is_exit_2_with_one_line(env):
    line = one_line(call([*BASE, "--arch", "exit_plugin.py:make"]))
    assert "exit_plugin.py:make" in line and "sys.exit(0)" in line
    assert not (env / "archbench-out").exists()


def test_a_suite_that_is_not_utf8_is_exit_2_with_one_line(env, tmp_path):
    suite = tmp_path / "latin1.toml"
    suite.write_bytes('name = "tiny"  # café\narchs = ["vgg11"]\ntasks = ["reconstruct"]\n'.encode("latin-1"))
    line = one_line(call(["sweep", str(suite), "--store", str(tmp_path / "r.db")]))
    assert str(suite) in line and "utf-8" in line and "line 1" in line
    assert not (tmp_path / "r.db").exists()
