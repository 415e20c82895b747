"""Fuzzing checkpoint loading (``--init checkpoint:PATH``): random bytes, truncated checkpoints,
``torch.save`` files of random structures, keys, shapes and dtypes. :func:`create_arch` returns a
network or raises an :class:`~archbench.errors.ArchbenchError` with one line naming the file; the
command line exits 0 with a result or 2 with one line."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import check_property, examples, nasty_text  # noqa: E402

ARCH = "vgg11(width=0.0625)"  # 4 to 32 channels: a real checkpoint of a few hundred KB
COUNTER = itertools.count()


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    import torch
    from PIL import Image

    from archbench.architectures import create_arch

    d = tmp_path_factory.mktemp("fuzz_checkpoints")
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / "p.png")
    torch.save(create_arch(ARCH).state_dict(), d / "real.pt")
    return d


@pytest.fixture(scope="module")
def real(place) -> tuple[bytes, dict]:
    import torch

    data = (place / "real.pt").read_bytes()
    return data, torch.load(place / "real.pt", weights_only=True)


def saved(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def tensor(shape: list[int], dtype: str, fill: float | None):
    import torch

    t = torch.zeros(shape, dtype=getattr(torch, dtype))
    if fill is not None and t.numel():
        t.fill_(fill if dtype.startswith("float") else 1)
    return t


shapes = st.lists(st.integers(0, 5), max_size=4)
dtypes = st.sampled_from(["float32", "float64", "float16", "int64", "bool", "uint8"])
fills = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32))


@st.composite
def checkpoints(draw, real) -> bytes:
    data, state = real
    kind = draw(st.sampled_from(["bytes", "truncated", "edited", "object"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "truncated":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "edited":
        edited = dict(state)
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.one_of(st.sampled_from(sorted(state)), nasty_text))
            if draw(st.booleans()) and key in edited:
                del edited[key]
            else:
                edited[key] = tensor(draw(shapes), draw(dtypes), draw(fills))
        if draw(st.booleans()):
            edited = {draw(st.sampled_from(["state_dict", "model", "net", "weights"])): edited}
        return saved(edited)
    obj = draw(st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3),
                         st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)))
    return saved(obj)


@examples(150)
@given(st.data())
def test_create_arch_from_a_fuzzed_checkpoint_builds_or_says_why_in_one_line(place, real, data):
    from archbench.architectures import create_arch
    from archbench.errors import ArchbenchError

    path = place / f"ck-{next(COUNTER)}.pt"
    path.write_bytes(data.draw(checkpoints(real), label="checkpoint"))
    try:
        net = create_arch(ARCH, init=f"checkpoint:{path}")
    except ArchbenchError as exc:
        assert "\n" not in str(exc).strip() and path.name in str(exc), str(exc)
        return
    assert net is not None


@examples(25)
@given(st.data())
@example(None)
def test_run_with_a_fuzzed_checkpoint_exit_0_with_a_result_or_2_with_one_line(place, real, monkeypatch, data):
    monkeypatch.chdir(place)
    path = place / f"run-ck-{next(COUNTER)}.pt"
    path.write_bytes(real[0][:100] if data is None else data.draw(checkpoints(real), label="checkpoint"))
    out = place / f"out-{next(COUNTER)}"
    check_property(["run", "--arch", ARCH, "--init", f"checkpoint:{path}", "--image", "p.png", "--size", "16",
                    "--iters", "1", "--layer", "pool1", "--device", "cpu", "--metrics", "ssim", "--out", str(out)],
                   [out], ok_codes=(0, 1), result=lambda o: (out / "results.jsonl").exists(), names=(path.name,))
