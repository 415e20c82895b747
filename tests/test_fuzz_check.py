"""Fuzzing baselines (``archbench check --baseline FILE``): a valid baseline with random values
put anywhere in it, random bytes, deep nesting, other encodings. Property (tests/fuzzing.py):
exit 0 or 1 (a score moved) with the comparison printed, or exit 2 with one line naming the
baseline; the store stays as it was when the check is refused."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import any_floats, call, check_property, examples, huge_ints, nasty_text  # noqa: E402

COUNTER = itertools.count()
SUITE = """\
name = "fuzzcheck"
seeds = [0]
size = 16
iterations = 1
device = "cpu"
archs = ["vgg11"]
images = ["p.png"]

[[task]]
name = "reconstruct"
options = { layers = ["pool1"] }
metrics = ["ssim"]
"""


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A store holding the suite's one result and a baseline saved from it."""
    from PIL import Image

    d = tmp_path_factory.mktemp("fuzz_check")
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / "p.png")
    (d / "suite.toml").write_text(SUITE)
    o = call(["baseline", "save", "--suite", str(d / "suite.toml"), "--store", str(d / "r.db"), "--out",
              str(d / "base.json"), "--perturb", "none", "--noise-seeds", "0"])
    assert o.code == 0, o.err
    return d


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), huge_ints, any_floats, nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(nasty_text, inner, max_size=3)),
    max_leaves=6,
)


def paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, (*prefix, i))


def put(obj, path, value):
    if not path:
        return value
    obj = copy.deepcopy(obj)
    target = obj
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return obj


def check(place: Path, data: bytes):
    path = place / f"baseline-{next(COUNTER)}.json"
    path.write_bytes(data)
    return check_property(["check", "--baseline", str(path), "--store", str(place / "r.db"), "--suite",
                           str(place / "suite.toml"), "--format", "md"],
                          [place / "r.db"], ok_codes=(0, 1), result=lambda o: bool(o.out.strip()), names=(path.name,))


def test_the_saved_baseline_passes(place):
    assert check(place, (place / "base.json").read_bytes()).code == 0


@examples(80)
@given(st.data())
@example(None)
@example("jobs-null")
def test_a_baseline_with_random_values_anywhere(place, data):
    base = json.loads((place / "base.json").read_text())
    every = sorted(paths(base), key=lambda p: (len(p), str(p)))
    if data is None:
        edited = put(base, ("jobs",), [1, 2])  # found by hypothesis: a list where a table belongs
    elif data == "jobs-null":
        edited = put(base, ("jobs",), None)  # found by hypothesis: null where a table belongs
    else:
        edited = base
        for _ in range(data.draw(st.integers(1, 3), label="edits")):
            every = sorted(paths(edited), key=lambda p: (len(p), str(p)))
            edited = put(edited, data.draw(st.sampled_from(every), label="path"), data.draw(json_values, label="value"))
    check(place, json.dumps(edited, allow_nan=True).encode("utf-8", errors="surrogatepass"))


@examples(60)
@given(st.binary(max_size=200))
@example(b"[" * 100_000)
@example(b'{"format": "archbench-baseline/2"}')
@example(b"\xff\xfe{\x00}\x00")
def test_random_bytes_as_a_baseline_exit_2_with_one_line(place, data):
    assert check(place, data).code == 2
