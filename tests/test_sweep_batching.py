"""The local executor runs jobs that differ only in their image as one batch, with the same results."""

from __future__ import annotations

from pathlib import Path

import pytest

from archbench.store import ResultStore
from archbench.sweep import run_sweep
from archbench.sweep.executor import LocalExecutor

SUITE = """\
name = "batching"
reference = "vgg11"
seeds = [0, 1]
images = {images}
size = 32
iterations = 6
device = "cpu"
archs = ["vgg11"]

[[task]]
name = "reconstruct"
options = {{ layers = ["pool1", "pool2"] }}
"""


def sweep(tmp_path: Path, name: str, images: list[str], batch_images: int):
    suite = tmp_path / f"{name}.toml"
    suite.write_text(SUITE.format(images="[" + ", ".join(f'"{i}"' for i in images) + "]"))
    store = ResultStore(tmp_path / f"{name}.db")
    summary = run_sweep(suite, store, out_dir=tmp_path / f"{name}-images", executor_options={"batch_images": batch_images})
    return store, summary


def test_batches_group_jobs_that_differ_only_in_their_image(tmp_path):
    store, summary = sweep(tmp_path, "b", ["astronaut", "coffee", "chelsea"], batch_images=2)
    assert summary.done == 6 and summary.failed == 0
    from archbench.runner import batches as split
    from archbench.sweep import expand_jobs, load_suite

    jobs = expand_jobs(load_suite(tmp_path / "b.toml"), "cpu")
    batches = split([j for j in jobs if j.seed == 0], 2)
    assert [[j.image for j in b] for b in batches] == [["astronaut", "coffee"], ["chelsea"]]


def test_batched_sweep_stores_the_same_results_and_images_per_job(tmp_path, monkeypatch):
    one, _ = sweep(tmp_path, "one", ["astronaut", "coffee", "chelsea"], batch_images=1)
    single_runs = []
    import archbench.runner as runner

    original = runner.Batch.prepare
    monkeypatch.setattr(runner.Batch, "prepare", classmethod(
        lambda cls, configs, net: (single_runs.append(configs) if len(configs) == 1 else None) or original(configs, net)))
    many, summary = sweep(tmp_path, "many", ["astronaut", "coffee", "chelsea"], batch_images=3)
    assert not single_runs  # really batched: no job fell back to running alone
    assert summary.done == 6 and summary.failed == 0
    a = {(r.key, r.layer): r for r in one.results()}
    b = {(r.key, r.layer): r for r in many.results()}
    assert a.keys() == b.keys() and len(a) == 12
    for k, r in a.items():
        assert b[k].final_loss == pytest.approx(r.final_loss, rel=1e-3)
        assert b[k].metrics["ssim"] == pytest.approx(r.metrics["ssim"], abs=1e-3)
        # every job's images are in its own folder
        assert b[k].paths["result"].split("/")[1] == k[0] and many.resolve_path(b[k].paths["result"]).is_file()


def test_a_bad_image_in_a_batch_fails_only_its_own_job(tmp_path):
    from tests.conftest import truncated_png

    bad = truncated_png(tmp_path / "corrupt.png")  # its header passes the suite's checks; decoding fails
    store, summary = sweep(tmp_path, "bad", ["astronaut", str(bad), "coffee"], batch_images=3)
    assert summary.done == 4 and summary.failed == 2
    failed = [j for j in store.runs() if j.status == "failed"]
    assert len(failed) == 2 and all("corrupt" in (j.error or "") for j in failed)


def test_batch_images_must_be_positive():
    from archbench.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_images"):
        LocalExecutor(batch_images=0)
