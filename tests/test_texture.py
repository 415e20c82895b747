"""Texture synthesis: Gram matching lowers the judge's Gram distance; bad input fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archbench.images import load_image
from archbench.metrics.gram import RANDOM_VGG19, gram_distance
from archbench.runner import run_task
from tests.conftest import run_cli, stripes

ARCH = "vgg11(fc=false)"
SIZE = 32





@pytest.fixture(scope="module")
def texture_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("texture")
    src = stripes(tmp / "stripes.png")
    report = run_task(
        ARCH, "texture", [str(src)], size=SIZE, iterations=25, seed=1, device="cpu",
        options={"layers": ["conv1_1", "conv2_1", "conv3_1"]}, judge="random-vgg19", out_dir=tmp / "out",
    )
    return src, report, tmp


def test_texture_lowers_gram_distance_far_below_noise(texture_run) -> None:
    src, report, _ = texture_run
    assert [r.layer for r in report.results] == ["conv1_1", "conv1_1..conv2_1", "conv1_1..conv3_1"]
    assert all(r.status == "done" for r in report.results)
    target = load_image(src, SIZE)
    noise = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    d_noise = gram_distance(noise, target, RANDOM_VGG19).item()
    best = min(r.metrics["gram"] for r in report.results)
    assert best < 0.2 * d_noise, (best, d_noise)
    # the recorded judge and the layer weights actually used
    r = report.results[-1]
    assert r.judge == r.config.judge == RANDOM_VGG19.name
    assert set(r.extra["layer_weights"]) == {"gram:conv1_1", "gram:conv2_1", "gram:conv3_1"}
    assert r.extra["weighting"] == "auto"


def test_adding_layers_changes_the_result(texture_run) -> None:
    _, report, tmp = texture_run
    rows = [json.loads(line) for line in (tmp / "out" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    images = [np.asarray(Image.open(r["paths"]["result"]), dtype=np.float64) for r in rows]
    for a, b in zip(images, images[1:], strict=False):
        assert np.abs(a - b).mean() > 1.0  # mean absolute difference in 8-bit levels


NAN_ARCH = '''
import torch
from torch import nn
from archbench.architectures.base import SequentialTapped, Tap


class NanAfter(nn.Module):
    """Turns its input into NaN after a number of gradient-enabled calls."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.left = calls

    def forward(self, x):
        if torch.is_grad_enabled():
            self.left -= 1
            if self.left < 0:
                return x * float("nan")
        return x


def make():
    stages = [
        ("conv1_1", nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())),
        ("conv2_1", nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), NanAfter(4))),
    ]
    return SequentialTapped(stages, [Tap("conv1_1", 8, 0), Tap("conv2_1", 8, 1, min_size=2)])
'''


def test_nan_during_optimisation_marks_only_that_problem_failed(tmp_path: Path) -> None:
    arch_file = tmp_path / "nanarch.py"
    arch_file.write_text(NAN_ARCH)
    src = stripes(tmp_path / "stripes.png")
    report = run_task(
        f"{arch_file}:make", "texture", [str(src)], size=SIZE, iterations=10, seed=1, device="cpu",
        options={"layers": ["conv1_1", "conv2_1"]}, judge="random-vgg19", out_dir=tmp_path / "out",
    )
    by_layer = {r.layer: r for r in report.results}
    assert by_layer["conv1_1"].status == "done" and by_layer["conv1_1"].metrics["gram"] is not None
    bad = by_layer["conv1_1..conv2_1"]
    assert bad.status == "failed" and bad.error and ("finite" in bad.error or "nan" in bad.error.lower())
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in rows) == ["done", "failed"]


def test_cli_unknown_layer_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--arch", "vgg11", "--task", "texture", "--image", "brick", "--layer", "conv1_1,conv9_9",
        "--size", "32", "--iters", "2", "--device", "cpu", "--judge", "random-vgg19", "--out", str(tmp_path),
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "conv9_9" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "results.jsonl").exists()
