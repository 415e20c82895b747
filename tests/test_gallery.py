"""``archbench gallery``: one self-contained page of reconstructions, textures and style transfers."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from archbench.errors import ConfigError, ImageError
from archbench.gallery import GallerySpec, run_gallery
from archbench.report.text import number
from tests.conftest import stripes

HOSTILE = "<i>evil&\"x'"


def _spec(texture: Path) -> GallerySpec:
    return GallerySpec(
        photos=["astronaut"], textures=[str(texture)], styles=["gravel"], arch="vgg11", size=32, iterations=2,
        device="cpu", judge="random-vgg19", reconstruct_layers=["pool1"], texture_layers=["conv1_1"],
        sections=("reconstruct", "texture", "style"),
    )


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gallery")
    texture = stripes(tmp / f"{HOSTILE}.png")
    report = run_gallery(_spec(texture), tmp / "out")
    return report, texture, tmp


def test_the_page_is_self_contained_escaped_and_shows_the_numbers(gallery) -> None:
    report, _, _ = gallery
    assert report.summary.done == 3 and report.summary.failed == 0
    page = report.page.read_text(encoding="utf-8")
    # self-contained: every image embedded, nothing fetched, no script
    srcs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert len(srcs) == 2 + 2 + 3  # photo + pool1; texture + conv1_1; content, style + result
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # a hostile file name is text
    assert HOSTILE not in page and "&lt;i&gt;evil&amp;" in page
    # the numbers under the pictures are the stored ones
    shown = {name: v for s in report.sections for row in s.rows for p in row.pictures for name, v in p.scores}
    assert set(shown) == {"ssim", "texture-quality", "gram", "stylization"}
    for name, value in shown.items():
        assert value is not None
        assert f'<div class="score">{name} {number(value, ".3g")}</div>' in page
    assert "random-vgg19" in page and "vgg11" in page  # the configuration block


def test_a_second_run_reuses_the_store_and_the_cli_renders_it(gallery) -> None:
    report, texture, tmp = gallery
    again = run_gallery(_spec(texture), tmp / "out")
    assert again.summary.total == 3 and again.summary.skipped == 3 and again.summary.done == 0
    from archbench.cli import main

    out = tmp / "cli"
    main(["gallery", "--out", str(out), "--store", str(tmp / "out" / "gallery.db"), "--photo", "astronaut",
          "--texture", str(texture), "--style", "gravel", "--arch", "vgg11", "--size", "32", "--iters", "2",
          "--device", "cpu", "--judge", "random-vgg19", "--recon-layer", "pool1", "--texture-layer", "conv1_1",
          "--section", "reconstruct,texture,style"])
    assert (out / "index.html").read_text(encoding="utf-8").count("data:image/png;base64,") == 7


def test_the_quality_scales_reach_the_reports_with_their_direction(gallery) -> None:
    from archbench.report import leaderboard_from_store, render
    from archbench.store import ResultStore

    report, _, tmp = gallery
    with ResultStore(tmp / "out" / "gallery.db") as store:
        lb = leaderboard_from_store(store, suite="gallery")
        boards = {(b.task, b.metric): b.higher_is_better for b in lb.boards}
        md, csv_text = render(lb, "md"), render(lb, "csv")
    assert boards[("texture", "texture-quality@random-vgg19")] is True
    assert boards[("style", "stylization@random-vgg19")] is True
    assert boards[("texture", "gram@random-vgg19")] is False
    assert "texture-quality@random-vgg19" in md and "stylization@random-vgg19" in md
    assert "board,texture,texture-quality@random-vgg19,conv1_1,higher" in csv_text


def test_bad_input_fails_before_anything_is_written(tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ImageError):
        run_gallery(GallerySpec(textures=[str(tmp_path / "missing.png")]), out)
    with pytest.raises(ConfigError, match="valid: figure1, reconstruct, texture, style"):
        run_gallery(GallerySpec(sections=("textures",)), out)
    assert not out.exists()


@pytest.mark.slow
def test_the_page_renders_in_headless_chromium(gallery, tmp_path) -> None:
    from tests.test_report import _chrome_args, _chromium

    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); cannot render the gallery")
    report, _, _ = gallery
    dom = subprocess.run(_chrome_args(exe, tmp_path / "profile") + ["--dump-dom", report.page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<img ") == 7 and "&lt;i&gt;evil" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(_chrome_args(exe, tmp_path / "profile") + [f"--screenshot={shot}", "--window-size=1000,1400",
                                                             report.page.as_uri()], capture_output=True, timeout=120)
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.std() > 10  # not a blank page
