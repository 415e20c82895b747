"""Fuzzing image loading: random bytes, truncated files of every format Pillow writes, valid
headers declaring absurd sizes. :func:`archbench.images.load_image` returns a finite
``(1, 3, size, size)`` image in [0, 1] or raises an :class:`~archbench.errors.ArchbenchError` whose one
line names the file; ``archbench score`` on such files exits 0 with scores or 2 with one line."""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import check_property, examples  # noqa: E402

COUNTER = itertools.count()
FORMATS = ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO"]


def encoded(fmt: str, w: int, h: int, mode: str, seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 255, (h, w, channels) if channels > 1 else (h, w), dtype=np.uint8)
    buf = io.BytesIO()
    img = Image.fromarray(arr, mode=mode)
    if fmt in ("JPEG", "PPM") and mode == "RGBA":
        img = img.convert("RGB")
    img.save(buf, format=fmt)
    return buf.getvalue()


def png_with_header(w: int, h: int, depth: int, colour: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def bmp_with_header(w: int, h: int, bits: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bits, 0, 16, 2835, 2835, 0, 0)
    return header + info + b"\x00" * 16


def gif_with_header(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + b",\x00\x00\x00\x00" + struct.pack("<HH", w, h) + b"\x00\x02\x02D\x01\x00;"


dims = st.one_of(st.integers(0, 70), st.sampled_from([2**15, 2**16 - 1, 2**31 - 1, 2**32 - 1, 20000, 100000]))
files = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda f, w, h, m, s, cut: encoded(f, w, h, m, s)[:cut] if cut else encoded(f, w, h, m, s),
              st.sampled_from(FORMATS), st.integers(1, 40), st.integers(1, 40), st.sampled_from(["L", "RGB", "RGBA"]),
              st.integers(0, 3), st.one_of(st.none(), st.integers(0, 400))),
    st.builds(png_with_header, dims, dims, st.sampled_from([1, 2, 4, 8, 16, 3, 0]), st.sampled_from([0, 2, 3, 4, 6, 7])),
    st.builds(bmp_with_header, st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1),
              st.sampled_from([1, 4, 8, 16, 24, 32, 0, 7])),
    st.builds(gif_with_header, st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1)),
)


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_images")


def write(place: Path, data: bytes) -> Path:
    path = place / f"img-{next(COUNTER)}.png"
    path.write_bytes(data)
    return path


@examples(300)
@given(files)
@example(png_with_header(2**31 - 1, 2**31 - 1, 8, 2))
@example(png_with_header(0, 0, 8, 2))
@example(bmp_with_header(-(2**31), 2**31 - 1, 24))
@example(gif_with_header(65535, 65535))
@example(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x00IHDR")  # found by hypothesis: Pillow's ValueError
def test_load_image_returns_an_image_or_one_line_naming_the_file(place, data):
    import torch

    from archbench.errors import ArchbenchError
    from archbench.images import load_image

    path = write(place, data)
    try:
        img = load_image(str(path), size=16)
    except ArchbenchError as exc:
        message = str(exc)
        assert "\n" not in message.strip() and path.name in message, message
        return
    assert img.shape == (1, 3, 16, 16) and torch.isfinite(img).all() and 0 <= img.min() and img.max() <= 1


@examples(30)
@given(files)
def test_score_on_fuzzed_images_exit_0_with_scores_or_2_with_one_line(place, monkeypatch, data):
    monkeypatch.setenv("ARCHBENCH_MAX_SIZE", "64")
    a, b = write(place, data), write(place, encoded("PNG", 16, 16, "RGB", 0))
    check_property(["score", str(a), str(b), "--metrics", "ssim,psnr", "--format", "json", "--size", "16"], [place],
                   result=lambda o: o.out.strip().startswith("{"))
