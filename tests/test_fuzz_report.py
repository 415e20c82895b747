"""Fuzzing ``archbench report``: every option with random values, ground-truth CSV files of random
bytes. Property (tests/fuzzing.py): exit 0 with the report printed or written, or exit 2 with one
line; the store is never changed."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import check_property, examples, huge_ints, nasty_text, safe_names  # noqa: E402

COUNTER = itertools.count()


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A store of stored results of two architectures, three seeds (no optimisation: stored rows)."""
    from archbench.results import RunOutcome
    from archbench.store import ResultStore
    from tests.conftest import stored_result

    d = tmp_path_factory.mktemp("fuzz_report")
    with ResultStore(d / "r.db") as db:
        db.record_suite("s", "vgg11", {"name": "s"})
        keys = []
        for arch, base in (("vgg11", 0.5), ("alexnet", 0.3)):
            for seed in range(3):
                r = stored_result(arch, seed, "astronaut", {"ssim": base + 0.01 * seed})
                outcome = RunOutcome(r.config, "done", None, [_result(r)], 0.0, 1.0, 1.0, 0.0, {})
                db.put(outcome, suite="s")
                keys.append(r.config.key)
        db.add_to_suite("s", keys)
    (d / "truth.csv").write_text("arch,value\nvgg11,0.7\nalexnet,0.5\n")
    return d


def _result(stored):
    from archbench.results import Result

    return Result(config=stored.config, layer=stored.layer, final_loss=stored.final_loss, metrics=stored.metrics,
                  iterations_run=1, evaluations=1, seconds=0.1, loss_trace=stored.loss_trace)


options = {
    "--format": st.one_of(st.sampled_from(["md", "csv", "json", "html"]), nasty_text),
    "--suite": st.one_of(st.sampled_from(["s", "nope"]), nasty_text),
    "--reference": st.one_of(st.sampled_from(["vgg11", "alexnet@gaussian:0.015", "vgg19"]), nasty_text),
    "--truth": st.one_of(st.sampled_from(["truth.csv", "imagenet", "imagenet-best", "bytes.csv"]), nasty_text),
    "--truth-level": huge_ints.map(str),
    "--out": safe_names.map(lambda s: f"outs/{s}"),
}


@examples(80)
@given(st.dictionaries(st.sampled_from(sorted(options)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: options[k] for k in keys})), st.binary(max_size=120))
@example({"--truth-level": str(10**30), "--truth": "truth.csv"}, b"")
@example({"--truth": "bytes.csv"}, b"arch,value\nvgg11,nan\nalexnet,1e999\n")
@example({"--truth": "bytes.csv"}, b"arch,value\n\xff\xfe,1\n")
def test_report_options_exit_0_with_a_report_or_2_with_one_line(place, monkeypatch, opts, csv_bytes):
    monkeypatch.chdir(place)
    (place / "bytes.csv").write_bytes(csv_bytes)
    argv = ["report", "--store", str(place / "r.db")]
    for flag, value in opts.items():
        argv += [flag, value]
    out = place / opts["--out"] if "--out" in opts else None
    watched = [place / "r.db"] + ([out] if out is not None and not out.exists() else [])

    def made(o):
        return (out.exists() and out.stat().st_size > 0) if out is not None else bool(o.out.strip())

    check_property(argv, watched, result=made)
