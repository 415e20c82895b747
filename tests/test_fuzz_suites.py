"""Fuzzing suite files (``archbench sweep FILE``): valid structure with random values, random
bytes, and the same suite in other encodings. Property (tests/fuzzing.py): exit 0 (or 1 when jobs
failed) with the results stored, or exit 2 with one line naming the file, and no store created."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import any_floats, check_property, examples, huge_ints, nasty_text, tiny_env, tiny_place  # noqa: E402

COUNTER = itertools.count()
BASE = {"name": "tiny", "description": "fuzz — été", "seeds": [0], "size": 16, "iterations": 1, "device": "cpu",
        "archs": ["vgg11"], "tasks": ["reconstruct"], "images": ["p.png"]}
TASK = {"name": "reconstruct", "options": {"layers": ["pool1"]}, "metrics": ["ssim"]}


def toml_value(v) -> str:
    """``v`` written as TOML (strings as JSON-escaped basic strings; lone surrogates stay
    escaped, which TOML refuses: an invalid file, as a user might write it)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def suite_text(top: dict, task: dict | None) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    if task is not None:
        lines += ["", "[[task]]"] + [f"{k} = {toml_value(v)}" for k, v in task.items()]
    return "\n".join(lines) + "\n"


scalars = st.one_of(huge_ints, any_floats, nasty_text, st.booleans(),
                    st.integers(-3, 40), st.sampled_from(["vgg11", "reconstruct", "cpu", "p.png", "pool1", "ssim"]))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(nasty_text, scalars, max_size=2))
TOP_KEYS = ["name", "description", "seeds", "size", "iterations", "device", "archs", "tasks", "images", "inits",
            "optimizer", "history", "reference", "judge", "metrics", "claims"]
TASK_KEYS = ["name", "options", "metrics", "size", "iterations", "images", "seeds", "archs", "inits"]


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    return tiny_place(tmp_path_factory.mktemp("fuzz_suites"), seed=2)


@pytest.fixture
def env(place, monkeypatch) -> Path:
    return tiny_env(place, monkeypatch, ARCHBENCH_MAX_JOBS="3")  # and valid suites small


def sweep(place: Path, data: bytes, suffix: str = ".toml"):
    n = next(COUNTER)
    path = place / f"suite-{n}{suffix}"
    path.write_bytes(data)
    store = place / f"results-{n}.db"
    # a sweep runs iterations=N per job: a valid count beyond a few would run real optimisations
    return check_property(["sweep", str(path), "--store", str(store), "--out", str(place / f"img-{n}")],
                          [store, place / f"img-{n}"], ok_codes=(0, 1), result=lambda o: store.exists(),
                          names=(path.name,))


def small_iterations(top: dict, task: dict | None) -> bool:
    its = [d.get("iterations") for d in (top, task or {})]
    return not any(isinstance(i, int) and not isinstance(i, bool) and 3 < i < 2**63 for i in its)


@examples(100)
@given(st.dictionaries(st.sampled_from(TOP_KEYS), values, max_size=3),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(TASK_KEYS), values, max_size=3)))
@example({"seeds": [12345678901234567890123]}, None)
@example({"seeds": 10**30}, None)
@example({"size": 2**64}, None)
@example({"iterations": -(2**63) - 1}, None)
@example({"archs": ["vgg11(depth=99999999999999999999)"]}, None)
@example({"archs": ["vgg11(width=inf)"]}, None)
@example({}, {"options": {"tv_weight": "abc"}})
@example({}, {"options": {"tv_weight": math.nan}})
@example({"inits": ["gaussian:1e400"]}, None)
@example({"name": "\udcff"}, None)
def test_suite_values_exit_0_with_results_or_2_with_one_line(env, top, task):
    if not small_iterations(top, task):
        return
    merged_top = {**BASE, **top}
    if task is not None:
        merged_top.pop("tasks", None)
        task = {**TASK, **task}
    text = suite_text(merged_top, task)
    sweep(env, text.encode("utf-8", errors="surrogateescape"))


@examples(100)
@given(st.binary(max_size=300))
@example(b"\xff\xfe" + 'name = "tiny"\n'.encode("utf-16-le"))
@example(b"name = \"tiny\"\x00\n")
@example(b"\xef\xbb\xbf")
def test_random_bytes_as_a_suite_exit_2_with_one_line(env, data):
    o = sweep(env, data)
    assert o.code == 2


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "shift_jis", "gb18030",
             "koi8-r"]


@examples(20)
@given(st.sampled_from(ENCODINGS), st.sampled_from(["fuzz — été", "ascii only", "日本語", "Привет"]))
def test_a_suite_in_another_encoding_runs_or_names_file_and_encoding(env, encoding, description):
    text = suite_text({**BASE, "description": description}, None)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return
    o = sweep(env, data)
    if o.code == 2 and data.decode("utf-8", errors="replace") != text.lstrip("\ufeff"):
        assert "utf-8" in o.lines[0] or "invalid TOML" in o.lines[0], o.lines[0]
