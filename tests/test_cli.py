"""The command line end to end, in subprocesses, and its handling of bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import run_cli

REQUIRED_COLUMNS = {
    "arch", "init", "seed", "task", "layer", "image", "size", "iterations", "iterations_run",
    "final_loss", "ssim", "psnr", "seconds", "device",
}


def test_run_reconstruct_end_to_end(tmp_path, photo_png):
    out = tmp_path / "out"
    proc = run_cli(
        "run", "--arch", "vgg11", "--task", "reconstruct", "--layer", "pool1,pool2", "--image", str(photo_png),
        "--size", "32", "--iters", "5", "--seed", "3", "--device", "cpu", "--out", str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "32 px, 5 iterations" in proc.stdout  # says what size and iteration count were used
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert REQUIRED_COLUMNS <= set(rows[0])
    assert [r["layer"] for r in rows] == ["pool1", "pool2"]
    assert all(r["arch"] == "vgg11" and r["seed"] == "3" and r["size"] == "32" for r in rows)
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["versions"]["torch"] == torch.__version__
    assert len(lines[0]["loss_trace"]) == int(rows[0]["iterations_run"])
    for kind in ("target", "start", "result"):
        for layer in ("pool1", "pool2"):
            png = next(out.rglob(f"{layer}-{kind}.png"))
            assert Image.open(png).size == (32, 32)


@pytest.mark.slow
def test_rerun_keeps_earlier_results(tmp_path, photo_png):
    out = tmp_path / "out"
    common = ["run", "--arch", "vgg11", "--image", str(photo_png), "--size", "32", "--iters", "3", "--device", "cpu", "--out", str(out)]
    assert run_cli(*common, "--layer", "pool1").returncode == 0
    assert run_cli(*common, "--layer", "pool2").returncode == 0
    assert run_cli(*common, "--layer", "pool2").returncode == 0  # same result key: replaced, not duplicated
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert sorted(r["layer"] for r in rows) == ["pool1", "pool2"]


@pytest.mark.parametrize("kind", ["archs", "tasks", "images", "metrics"])
def test_list(kind, capsys):
    from archbench.cli import main

    if kind == "archs":  # once through the console script
        proc = run_cli("list", kind)
        assert proc.returncode == 0
        stdout = proc.stdout
    else:
        main(["list", kind])
        stdout = capsys.readouterr().out
    expected = {"archs": "vgg19", "tasks": "reconstruct", "images": "astronaut", "metrics": "ssim"}[kind]
    assert any(line.split()[0] == expected for line in stdout.splitlines())


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny)
    wrong_ckpt = tmp_path / "wrong.pt"
    torch.save({"foo.weight": torch.zeros(3)}, wrong_ckpt)
    return {
        "unknown arch": (["--arch", "vgg91"], "did you mean 'vgg19'"),
        "unknown layer": (["--layer", "pool9"], "unknown layer"),
        "missing image": (["--image", str(tmp_path / "nope.png")], "does not exist"),
        "corrupt image": (["--image", str(corrupt)], "corrupt"),
        "image too small": (["--image", str(tiny), "--layer", "pool5"], "smaller than"),
        "wrong checkpoint": (["--init", f"checkpoint:{wrong_ckpt}"], "does not fit"),
        "unknown task": (["--task", "recon"], "unknown task"),
    }


@pytest.mark.parametrize(
    "case", ["unknown arch", "unknown layer", "missing image", "corrupt image", "image too small", "wrong checkpoint", "unknown task"]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case, photo_png, capsys):
    """Through the console script for two cases, in this process for the others (the corpus of
    tests/test_bad_input.py has many more)."""
    from archbench.cli import main

    args, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    base = ["run", "--arch", "vgg11", "--image", str(photo_png), "--size", "64", "--iters", "2", "--device", "cpu", "--out", str(out)]
    if case in ("unknown arch", "corrupt image"):
        proc = run_cli(*base, *args)
        code, err = proc.returncode, proc.stderr
    else:
        with pytest.raises(SystemExit) as exc:
            main([*base, *args])
        code, err = exc.value.code, capsys.readouterr().err
    assert code == 2, err
    proc_stderr, err = err, err.strip()
    assert "Traceback" not in proc_stderr and len(err.splitlines()) == 1, err
    assert message in err
    assert not out.exists()  # no half-written output


NAN_ARCH = '''
import torch
from torch import nn
from archbench.architectures.base import SequentialTapped, Tap


class NanWhenOptimised(nn.Module):
    def forward(self, x):
        return x * float("nan") if torch.is_grad_enabled() and x.requires_grad else x


def make():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    return SequentialTapped([("conv", conv), ("bad", NanWhenOptimised())], [Tap("conv", 8, 0), Tap("bad", 8, 0)])
'''


def test_failed_optimisation_is_stored_with_reason_and_exits_1(tmp_path, photo_png):
    arch = tmp_path / "nanarch.py"
    arch.write_text(NAN_ARCH)
    out = tmp_path / "out"
    proc = run_cli("run", "--arch", f"{arch}:make", "--layer", "conv,bad", "--image", str(photo_png),
                   "--size", "32", "--iters", "3", "--device", "cpu", "--out", str(out))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "1 of 2 optimisations failed" in proc.stderr
    rows = {r["layer"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert rows["conv"]["status"] == "done"
    assert rows["bad"]["status"] == "failed" and "non-finite" in rows["bad"]["error"]


def test_list_taps_shows_levels_and_channels(capsys):
    from archbench.cli import main

    main(["list", "taps", "vgg11"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("conv1_1") and "level 0" in lines[0] and "64 channels" in lines[0]
    assert any(line.startswith("pool3") and "level 3 (1/8 of the input), 256 channels" in line for line in lines)
    for args, message in [(["list", "taps"], "needs an arch spec"), (["list", "taps", "vgg91"], "did you mean 'vgg19'")]:
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2 and message in capsys.readouterr().err
