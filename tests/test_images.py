"""Image loading: built-ins, conversions, EXIF, resizing and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from archbench.errors import ImageError, UnknownNameError
from archbench.images import expand_sources, list_images, load_image, save_image


def test_builtin_images_load_as_rgb_in_unit_range():
    assert {"astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel"} <= set(list_images())
    assert set(list_images("texture")) == {"brick", "grass", "gravel"}
    for name in ("astronaut", "brick"):  # RGB photo and grayscale texture
        t = load_image(name, 48)
        assert t.shape == (1, 3, 48, 48) and t.dtype == torch.float32
        assert 0 <= float(t.min()) and float(t.max()) <= 1 and float(t.std()) > 0.05


def test_grayscale_rgba_and_16bit_become_rgb(tmp_path):
    gray = (np.arange(40 * 50) % 256).astype(np.uint8).reshape(40, 50)
    Image.fromarray(gray).save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (1, 3, 40, 50)
    assert torch.allclose(g[0, 0], g[0, 1]) and torch.allclose(g[0, 0], torch.from_numpy(gray / 255.0).float())

    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:10, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    a = load_image(tmp_path / "a.png")[0]
    assert torch.allclose(a[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(a[:, -1, 0], torch.tensor([1.0, 1.0, 1.0]))  # composited on white

    deep = (np.linspace(0, 65535, 30 * 30)).astype(np.uint16).reshape(30, 30)
    Image.fromarray(deep).save(tmp_path / "d.png")
    d = load_image(tmp_path / "d.png")[0]
    assert abs(float(d.max()) - 1.0) < 1e-3 and abs(float(d.min())) < 1e-3


def test_exif_orientation_is_honoured(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white, landscape
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    t = load_image(tmp_path / "r.jpg")
    assert t.shape[-2:] == (40, 20)  # displayed as portrait
    assert float(t[0, :, :15].mean()) > 0.9 and float(t[0, :, -15:].mean()) < 0.1  # white on top


def test_resize_and_centre_crop():
    t = load_image("coffee", 64)  # 400x600 -> 64x96 -> centre 64x64
    assert t.shape == (1, 3, 64, 64)


def test_errors_are_clear(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ImageError, match="corrupt|not an image"):
        load_image(bad)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(ImageError, match="smaller than"):
        load_image(tmp_path / "tiny.png", 64, min_side=32)
    with pytest.raises(UnknownNameError, match="did you mean 'astronaut'"):
        load_image("astronot")


def test_folders_expand_and_png_round_trip(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("x")
    files = expand_sources([str(tmp_path), "astronaut"])
    assert [f.rsplit("/", 1)[-1] for f in files[:2]] == ["0.png", "1.png"] and files[2] == "astronaut"
    t = torch.rand(1, 3, 12, 12)
    out = save_image(t, tmp_path / "sub" / "x.png")
    back = load_image(out)
    assert torch.allclose(back, t, atol=1 / 255 + 1e-6)


def test_size_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    """A PNG that declares 12000 x 12000 pixels in a few bytes is refused from its header (the
    pixels are never decoded), with a documented limit that can be raised."""
    from PIL import ImageFile

    from archbench.images import MAX_IMAGE_PIXELS, check_image
    from tests.test_bad_input import png_header

    bomb = png_header(tmp_path / "bomb.png", 12000, 12000)
    assert bomb.stat().st_size < 100 and 12000 * 12000 > MAX_IMAGE_PIXELS

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for check in (check_image, lambda p: load_image(p, 32)):
        with pytest.raises(ImageError, match=r"12000x12000 = 144 million pixels, more than the limit of 64 million"):
            check(bomb)
    monkeypatch.undo()

    # the limit is overridable: the header passes, and then the (empty) pixel data fails to decode
    monkeypatch.setenv("ARCHBENCH_MAX_IMAGE_PIXELS", "200000000")
    assert check_image(bomb) == (12000, 12000)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(bomb, 32)
    monkeypatch.setenv("ARCHBENCH_MAX_IMAGE_PIXELS", "0")  # 0: no limit
    assert check_image(bomb) == (12000, 12000)
    monkeypatch.setenv("ARCHBENCH_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(Exception, match="not a number of pixels"):
        check_image(bomb)
    # an ordinary image passes and loads
    monkeypatch.delenv("ARCHBENCH_MAX_IMAGE_PIXELS")
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "ok.png")
    assert check_image(tmp_path / "ok.png") == (60, 40)
    assert load_image(tmp_path / "ok.png", 16).shape == (1, 3, 16, 16)


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A full disk while an image is written: OutputError naming the file, no .tmp left behind."""
    import errno
    import os

    from archbench import fileio
    from archbench.errors import OutputError

    def full(fd, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(OutputError, match="No space left on device"):
        save_image(torch.rand(3, 8, 8), tmp_path / "out" / "x.png")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []
