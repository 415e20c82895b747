"""Fuzzing ``archbench gallery``: every option with random values (one photo, tiny sizes, one
iteration, so that a valid gallery stays cheap). Property (tests/fuzzing.py): exit 0 (or 1 when
jobs failed) with the page written, or exit 2 with one line and nothing written."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import check_property, examples, huge_ints, nasty_text  # noqa: E402

COUNTER = itertools.count()
few = st.one_of(st.integers(-(10**30), 2), st.integers(2**63, 10**30))


def text_or(*valid: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(valid), nasty_text)


OPTIONS = {
    "--arch": text_or("vgg11", "vgg11(width=0.5)", "vgg11(width=1e999)"),
    "--init": text_or("gaussian:0.015", "kaiming", "gaussian:nan"),
    "--seed": huge_ints.map(str),
    "--size": huge_ints.map(str),
    "--iters": few.map(str),
    "--device": text_or("cpu", "auto"),
    "--judge": text_or("random-vgg19", "auto"),
    "--section": text_or("reconstruct", "reconstruct,reconstruct"),  # texture and style: tests/test_gallery.py
    "--recon-layer": text_or("pool1", "pool2", "conv1_1"),
    "--texture-layer": text_or("conv1_1", "pool1"),
    "--photo": text_or("p.png", "astronaut", "none.png"),
    "--texture": text_or("p.png", "brick"),
    "--style": text_or("p.png", "none.png"),
}


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("fuzz_gallery")
    Image.fromarray(np.random.default_rng(6).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / "p.png")
    (d / "torch").mkdir()
    return d


@examples(15)
@given(st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.none(), max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: OPTIONS[k] for k in keys})))
@example({"--seed": "12345678901234567890123"})
@example({"--arch": "vgg11(width=1e999)"})
@example({"--recon-layer": "pool1"})  # found by hypothesis: a layer twice, two jobs of one key
def test_gallery_options_exit_0_with_a_page_or_2_with_one_line(place, monkeypatch, opts):
    monkeypatch.chdir(place)
    monkeypatch.setenv("TORCH_HOME", str(place / "torch"))
    monkeypatch.setenv("ARCHBENCH_MAX_SIZE", "32")
    out = place / f"gallery-{next(COUNTER)}"
    argv = ["gallery", "--arch", "vgg11", "--photo", "p.png", "--texture", "p.png", "--style", "p.png", "--size", "16",
            "--iters", "1", "--device", "cpu", "--judge", "random-vgg19", "--section", "reconstruct",
            "--recon-layer", "pool1", "--texture-layer", "conv1_1", "--out", str(out)]
    for flag, value in opts.items():
        argv += [flag, value]
    check_property(argv, [out], ok_codes=(0, 1), result=lambda o: (out / "index.html").exists())
