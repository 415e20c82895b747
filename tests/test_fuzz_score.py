"""Fuzzing ``archbench score``: every option with values of every type. Property
(tests/fuzzing.py): exit 0 with the scores printed, or exit 2 with one line (image files are
fuzzed in tests/test_fuzz_images.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import check_property, examples, huge_ints, nasty_text  # noqa: E402


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("fuzz_score")
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(d / "a.png")
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(d / "b.png")
    Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8)).save(d / "grey.png")
    return d


images = st.one_of(st.sampled_from(["a.png", "b.png", "grey.png", "astronaut", ".", "none.png"]), nasty_text)
options = {
    "--metrics": st.one_of(st.sampled_from(["ssim", "psnr", "ssim,psnr", "spectrum", "color-swd", ",", "gram"]),
                           nasty_text),
    "--format": st.one_of(st.sampled_from(["table", "json"]), nasty_text),
    "--size": st.one_of(huge_ints.map(str), nasty_text),
    "--device": st.one_of(st.sampled_from(["cpu", "auto", "cuda:99"]), nasty_text),
}


@examples(200)
@given(images, images, st.dictionaries(st.sampled_from(sorted(options)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: options[k] for k in keys})))
@example("a.png", "b.png", {"--size": "12345678901234567890123"})
@example("a.png", "[red]x[/]", {})
def test_score_exit_0_with_scores_or_2_with_one_line(place, monkeypatch, a, b, opts):
    monkeypatch.chdir(place)
    monkeypatch.setenv("ARCHBENCH_MAX_SIZE", "32")
    argv = ["score", a, b, "--metrics", "ssim"]
    for flag, value in opts.items():
        argv += [flag, value]
    check_property(argv, [place], result=lambda o: bool(o.out.strip()))
