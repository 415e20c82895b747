"""Checks that need a CUDA GPU: skipped on machines without one (CI never has one).

Run on a GPU machine with ``python -m pytest -q tests/test_gpu.py``; the last record of such a run
is in ``reports/benchmarks/gpu.json`` (``gpu_tests``). They check that the GPU path computes what
the CPU path computes, and that its failure modes (a real CUDA out-of-memory) end in one clear line
with stored results intact.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import archbench
from archbench.config import resolve_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _ssim(report) -> dict[str, float]:
    return {r.layer: float(r.metrics["ssim"]) for r in report.results}


def test_auto_device_is_the_gpu() -> None:
    assert resolve_device("auto") == "cuda"


def test_gpu_reconstruction_matches_the_cpu(tmp_path: Path) -> None:
    # the same job on both devices: the early layer resembles its target on both and the two SSIMs
    # agree closely (kernels differ and CUDA convolutions may use TF32, so not bit for bit)
    common = dict(
        size=64, iterations=40, seed=0, init="gaussian:0.015", metrics=["ssim"], options={"layers": ["pool1", "pool3"]}
    )
    cpu = _ssim(archbench.run_task("vgg19", "reconstruct", ["astronaut"], device="cpu", **common))
    gpu = _ssim(archbench.run_task("vgg19", "reconstruct", ["astronaut"], device="cuda", **common))
    assert gpu["pool1"] > 0.8 and cpu["pool1"] > 0.8
    for layer in cpu:
        assert abs(cpu[layer] - gpu[layer]) < 0.05, (layer, cpu, gpu)


def test_gpu_default_precision_reconstructs_deep_layers() -> None:
    # the CUDA defaults (channels-last, TF32): a deep layer still reconstructs
    report = archbench.run_task(
        "vgg19",
        "reconstruct",
        ["astronaut"],
        device="cuda",
        size=128,
        iterations=100,
        seed=0,
        metrics=["ssim"],
        options={"layers": ["pool1", "pool4"]},
    )
    ssim = _ssim(report)
    assert all(r.status == "done" and r.final_loss == r.final_loss for r in report.results)
    assert ssim["pool1"] > 0.85 and ssim["pool4"] > 0.15, ssim


def test_gpu_texture_and_style_run(tmp_path: Path) -> None:
    for task in ("texture", "style"):
        options = {"style": "brick"} if task == "style" else {}
        report = archbench.run_task(
            "vgg19",
            task,
            ["chelsea" if task == "style" else "brick"],
            device="cuda",
            size=64,
            iterations=30,
            seed=0,
            metrics=["ssim"],
            options=options,
            out_dir=tmp_path / task,
        )
        assert report.results and all(r.status == "done" for r in report.results), task
        assert all(Path(p).exists() for r in report.results for p in r.paths.values())


def test_real_cuda_out_of_memory_is_one_line_and_keeps_the_store(tmp_path: Path) -> None:
    store = tmp_path / "results.db"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    base = [
        sys.executable,
        "-m",
        "archbench",
        "run",
        "--arch",
        "vgg11",
        "--task",
        "reconstruct",
        "--device",
        "cuda",
        "--store",
        str(store),
        "--out",
        str(tmp_path / "out"),
    ]
    ok = subprocess.run(
        [*base, "--size", "32", "--iters", "5", "--layer", "pool1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ok.returncode == 0, ok.stderr
    done = "select count(*) from runs where status = 'done'"
    before = sqlite3.connect(store).execute(done).fetchone()[0]
    assert before == 1
    # a real allocation failure: cap this process's share of the GPU at 1 MiB worth, then run
    cap = (
        "import sys, torch; torch.cuda.set_per_process_memory_fraction("
        "2**20 / torch.cuda.get_device_properties(0).total_memory); "
        "from archbench.cli import main; sys.argv = ['archbench', *sys.argv[1:]]; main()"
    )
    bad = subprocess.run(
        [sys.executable, "-c", cap, *base[3:], "--size", "256", "--iters", "5", "--seed", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode != 0
    assert "out of memory" in bad.stderr.lower() and "Traceback" not in bad.stderr, bad.stderr
    assert sqlite3.connect(store).execute(done).fetchone()[0] == before  # the earlier result is intact
