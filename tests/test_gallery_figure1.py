"""The gallery's ``figure1`` section: the paper's Figure 1 (random network under the paper and
archbench presets beside a trained VGG-16), SSIM and LPIPS under each picture."""

from __future__ import annotations

import re

import pytest

from archbench.architectures.create import pretrained_unavailable
from archbench.gallery import FIGURE1_TRAINED, GallerySpec, gallery_command, gallery_suite, run_gallery, section_keys


def _spec(**kw) -> GallerySpec:
    base = dict(photos=["astronaut"], arch="vgg11", size=32, iterations=2, device="cpu",
                reconstruct_layers=["pool1"], sections=("figure1",))
    return GallerySpec(**{**base, **kw})


def test_figure1_is_a_default_section_whose_trained_row_runs_only_there() -> None:
    spec = GallerySpec(photos=["astronaut", "chelsea"], size=32, iterations=2, device="cpu", judge="random-vgg19")
    assert spec.sections[0] == "figure1" and spec.trained == FIGURE1_TRAINED == "vgg16"
    suite = gallery_suite(spec)
    assert [(a.spec, a.inits) for a in suite.archs] == [("vgg19", None), ("vgg16", ["pretrained"])]
    keys = section_keys(spec, "cpu")
    assert len(keys["figure1"]) == 3 * 2  # paper, archbench, trained per photo
    assert len(keys["reconstruct"]) == 2
    from archbench.sweep.jobs import expand_jobs

    jobs = {j.key: j for j in expand_jobs(suite, "cpu")}
    trained = [k for k, j in jobs.items() if j.init == "pretrained"]
    assert len(trained) == 2 and set(trained) <= set(keys["figure1"])
    assert all(j.arch == "vgg16" and j.task == "reconstruct" for k, j in jobs.items() if k in trained)
    fig = [jobs[k] for k in keys["figure1"]]
    assert sorted(j.options.get("preset", "archbench") for j in fig if j.init != "pretrained") == \
        ["archbench", "archbench", "paper", "paper"]
    assert all("lpips-alex" in j.metrics and "ssim" in j.metrics for j in fig)
    assert gallery_suite(GallerySpec(trained=None)).archs[1:] == []


def test_the_command_in_the_caption_makes_the_same_page() -> None:
    cmd = gallery_command(_spec(trained="vgg11"))
    assert cmd == ("archbench gallery --section figure1 --arch vgg11 --init gaussian:0.015 --seed 0 --photo astronaut "
                   "--trained vgg11 --size 32 --iters 2 --device cpu --recon-layer pool1")


def test_absent_trained_weights_leave_a_note_not_a_failure(tmp_path) -> None:
    if pretrained_unavailable("vgg11") is None:
        pytest.skip("trained vgg11 weights are present here")
    report = run_gallery(_spec(trained="vgg11"), tmp_path / "out")
    assert report.summary.failed == 0 and report.summary.done == 2
    (fig,) = report.sections
    assert fig.task == "figure1" and len(fig.rows) == 3
    paper, default, trained = fig.rows
    assert "preset paper" in paper.title and "preset archbench" in default.title and "trained vgg11" in trained.title
    (note,) = trained.pictures
    assert note.path is None and "trained weights absent" in note.note and "archbench weights import" in note.note
    for row in (paper, default):
        (result,) = [p for p in row.pictures if not p.reference]
        names = [n for n, _ in result.scores]
        assert names[0] == "ssim" and result.scores[0][1] is not None
        if pretrained_unavailable("alexnet") is None:
            assert names == ["ssim", "lpips-alex"] and result.scores[1][1] is not None
    page = report.page.read_text(encoding="utf-8")
    assert "archbench weights import" in page and "Figure 1" in page
    assert "archbench gallery --section figure1 --arch vgg11" in page
    assert "preset:" not in re.sub(r"<h3>.*?</h3>", "", page)  # the preset is per row, not in the settings


@pytest.mark.skipif(pretrained_unavailable("vgg16") is not None, reason="trained vgg16 weights absent")
def test_the_trained_vgg16_row_shows_pictures_and_both_scores(tmp_path) -> None:
    report = run_gallery(_spec(), tmp_path / "out")
    assert report.summary.failed == 0 and report.summary.done == 3
    (fig,) = report.sections
    trained = fig.rows[2]
    assert "trained vgg16" in trained.title
    (result,) = [p for p in trained.pictures if not p.reference]
    assert result.path and dict(result.scores)["ssim"] is not None
    page = report.page.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3 * 2
    from archbench.cli import main

    main(["gallery", "--out", str(tmp_path / "cli"), "--store", str(tmp_path / "out" / "gallery.db"),
          "--section", "figure1", "--photo", "astronaut", "--arch", "vgg11", "--size", "32", "--iters", "2",
          "--device", "cpu", "--recon-layer", "pool1"])
    assert (tmp_path / "cli" / "index.html").read_text(encoding="utf-8").count("data:image/png;base64,") == 6
