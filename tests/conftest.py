"""Shared fixtures: tiny images on disk and the path of the console script.

Tests marked ``slow`` (long end-to-end runs) are skipped by default so that ``python -m pytest``
stays short; ``--run-slow`` runs them, and so does any run with the environment variable ``CI``
set (as CI services set it) or ``ARCHBENCH_RUN_SLOW=1``. An explicit ``-m`` expression decides for
itself (``-m slow`` runs only them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_addoption(parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (CI runs every test)")


def run_slow(config) -> bool:
    """Whether the ``slow`` tests run: ``--run-slow``, ``CI`` set, or ``ARCHBENCH_RUN_SLOW=1``."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return bool(config.getoption("--run-slow") or ci or os.environ.get("ARCHBENCH_RUN_SLOW") == "1")


def pytest_configure(config) -> None:
    """Hypothesis profile of the fuzz tests (tests/fuzzing.py): a fixed budget by default, ten
    times as many examples (random, the session's seed in the header) with the slow tests."""
    try:
        from tests.fuzzing import load_profile
    except ImportError:  # hypothesis not installed: the fuzz tests are skipped
        return
    config._archbench_fuzz_header = load_profile(config)


def pytest_report_header(config) -> str | None:
    return getattr(config, "_archbench_fuzz_header", None)


def pytest_collection_modifyitems(config, items) -> None:
    if run_slow(config) or config.getoption("markexpr", ""):
        return
    skip = pytest.mark.skip(reason="slow: `pytest --run-slow` runs it (CI runs every test)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def archbench_exe() -> str:
    """The ``archbench`` console script of the running interpreter's environment."""
    exe = Path(sys.executable).parent / "archbench"
    return str(exe) if exe.exists() else (shutil.which("archbench") or "archbench")


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``archbench ARGS`` in a subprocess and capture its output."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [archbench_exe(), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def stripes(path: Path, size: int = 32, period: int = 6) -> Path:
    """A periodic colour pattern (diagonal red/blue stripes) written as PNG."""
    from PIL import Image

    yy, xx = np.mgrid[0:size, 0:size]
    on = ((xx + yy) // (period // 2)) % 2 == 0
    img = np.zeros((size, size, 3), np.uint8)
    img[on] = (220, 40, 30)
    img[~on] = (30, 60, 200)
    Image.fromarray(img).save(path)
    return path


def truncated_png(path: Path) -> Path:
    """A PNG whose header is intact (it passes the suite's checks) but whose pixels are cut off:
    it fails when a job decodes it."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue()[:60])
    return path


def stored_result(arch: str, seed: int, image: str, metrics: dict, layer: str = "pool1", task: str = "reconstruct",
                  init: str = "gaussian:0.015", judge: str | None = None, final_loss: float = 0.1):
    """A :class:`~archbench.store.StoredResult` as the store returns it, for report tests."""
    from archbench.config import RunConfig
    from archbench.store import StoredResult

    config = RunConfig(arch=arch, init=init, seed=seed, task=task, image=image, size=32, iterations=1,
                       metrics=tuple(metrics), judge=judge)
    return StoredResult(config=config, layer=layer, status="done", error=None, metrics=dict(metrics),
                        final_loss=final_loss, loss_trace=[1.0, final_loss])


@pytest.fixture
def photo_png(tmp_path: Path) -> Path:
    """A 64x64 RGB crop of the astronaut photo written as PNG."""
    from PIL import Image
    from skimage.data import astronaut

    path = tmp_path / "photo.png"
    Image.fromarray(astronaut()[100:228:2, 180:308:2]).save(path)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
