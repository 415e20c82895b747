"""The ``ray`` executor: same results as the local executor, a killed worker is retried, fractional
logical GPUs are shared, Ctrl-C keeps finished results, no GPU on the cluster fails fast.

One local Ray session (2 CPUs, 1 *logical* GPU, no dashboard, loopback only) serves the module;
the Ray tests are skipped only when Ray is not installed (``pip install 'archbench[ray]'``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from archbench.errors import ConfigError
from archbench.store import ResultStore
from archbench.sweep import RayExecutor, expand_jobs, load_suite, run_sweep
from archbench.sweep.ray_executor import (
    TASK_NAME,
    check_feasible,
    check_reachable,
    choose_device,
    import_ray,
    ray_available,
)
from tests.conftest import run_cli

needs_ray = pytest.mark.skipif(not ray_available(), reason="Ray is not installed: pip install 'archbench[ray]' (.ci/run installs it)")

SUITE = """\
name = "raytiny"
reference = "vgg11"
seeds = {seeds}
images = {images}
size = 32
iterations = {iterations}
device = "cpu"
archs = ["vgg11"]

[[task]]
name = "reconstruct"
options = {{ layers = ["pool1"] }}
"""


def write_suite(tmp_path: Path, seeds="[0, 1]", images='["astronaut"]', iterations=4) -> Path:
    path = tmp_path / "raytiny.toml"
    path.write_text(SUITE.format(seeds=seeds, images=images, iterations=iterations))
    return path


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray instance shared by the module: 2 CPUs and 1 logical GPU (none needs to exist)."""
    ray = import_ray(local=True)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def stored(db: ResultStore) -> dict[str, dict]:
    """key -> {status, attempts, provenance, metrics, final_loss, loss_trace} of every stored run
    (the per-layer values as {layer: value})."""
    out = {}
    for run in db.runs():
        results = db.results(keys=[run.key], include_failed=True)
        out[run.key] = {"status": run.status, "attempts": run.attempts, "provenance": run.provenance,
                        "metrics": {r.layer: r.metrics for r in results},
                        "final_loss": {r.layer: r.final_loss for r in results},
                        "loss_trace": {r.layer: r.loss_trace for r in results}}
    return out


# ----------------------------------------------------------------------------------------------
# without Ray


def test_device_choice_and_fail_fast_rules():
    assert choose_device("auto", None, 0) == "cpu"
    assert choose_device("auto", None, 4) == "cuda"
    assert choose_device("auto", 0, 4) == "cpu"
    assert choose_device("cuda:1", 0.5, 2) == "cuda:1"
    assert choose_device("cpu", 0.5, 1) == "cpu"
    with pytest.raises(ConfigError, match="asks for GPUs \\(device cuda\\) but the Ray cluster at h:1 has no GPU"):
        choose_device("cuda", None, 0, "the Ray cluster at h:1")
    with pytest.raises(ConfigError, match="--gpus-per-job 1.*has no GPU"):
        choose_device("auto", 1, 0)
    with pytest.raises(ConfigError, match="would see no GPU"):
        choose_device("cuda", 0, 1)
    nodes = [{"CPU": 8.0}, {"CPU": 4.0, "GPU": 2.0}]
    check_feasible(nodes, 1, 0.5)
    check_feasible(nodes, 4, 2)
    with pytest.raises(ConfigError, match="no node of the Ray cluster can run a job asking for 8 CPU and 1 GPU"):
        check_feasible(nodes, 8, 1)
    with pytest.raises(ConfigError, match="has no GPU"):
        check_feasible([{"CPU": 2.0}], 1, 1)
    with pytest.raises(ConfigError, match="gpus-per-job"):
        RayExecutor(gpus_per_job=1.5)


def test_unreachable_address_fails_at_once():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.time()
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match="cannot reach"):
        check_reachable(f"ray://127.0.0.1:{port}")
    assert time.time() - t0 < 10
    check_reachable("auto")  # resolved by Ray itself


def test_missing_ray_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'archbench\[ray\]'"):
        RayExecutor().connect()


def test_archbench_does_not_import_ray():
    code = "import sys, archbench.sweep, archbench.cli; from archbench.sweep import EXECUTORS; " \
           "assert 'ray' in EXECUTORS.names(); assert 'ray' not in sys.modules, 'ray imported eagerly'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------------------------
# with a local Ray instance


@needs_ray
def test_same_results_as_local_executor(ray_session, tmp_path, photo_png):
    suite = write_suite(tmp_path, images=f'["astronaut", "{photo_png}"]')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a Ray task with num_cpus=1 runs torch on one thread
    try:
        with ResultStore(tmp_path / "local" / "r.db") as db:
            run_sweep(suite, db, executor="local")
            local = stored(db)
    finally:
        torch.set_num_threads(threads)
    with ResultStore(tmp_path / "ray" / "r.db") as db:
        summary = run_sweep(suite, db, executor="ray")
        remote = stored(db)
        paths = {r.key: r.paths for r in db.results()}
        assert summary.done == 4 and summary.failed == 0
        for key, kinds in paths.items():  # images written by the driver beside its store
            for kind, p in kinds.items():
                assert not Path(p).is_absolute() and db.resolve_path(p).is_file(), (key, kind, p)
                twin = tmp_path / "local" / p
                assert db.resolve_path(p).read_bytes() == twin.read_bytes(), (key, kind)
            assert (db.root / "images" / key / "results.jsonl").is_file()
    assert set(remote) == set(local) and len(local) == 4
    for key, row in local.items():
        other = remote[key]
        assert row["status"] == other["status"] == "done"
        assert row["attempts"] == other["attempts"] == 1
        for layer, metrics in row["metrics"].items():
            for name, value in metrics.items():
                assert other["metrics"][layer][name] == pytest.approx(value, rel=1e-6, abs=1e-6), (key, name)
            assert other["final_loss"][layer] == pytest.approx(row["final_loss"][layer], rel=1e-6, abs=1e-9)
            assert other["loss_trace"][layer] == pytest.approx(row["loss_trace"][layer], rel=1e-6, abs=1e-9)
        info = other["provenance"]["ray"]
        assert info["pid"] != os.getpid() and info["node_ip"] == "127.0.0.1"


@needs_ray
def test_ray_gives_archbench_runs_key_and_scores_and_batches_images_as_local(ray_session, tmp_path, photo_png):
    """The same configuration through `archbench run` and a one-job suite on the Ray executor: one
    key, the same scores; and a Ray worker batches jobs that differ only in their image."""
    out = tmp_path / "run"
    proc = run_cli("run", "--arch", "vgg11", "--image", str(photo_png), "--size", "32", "--iters", "4",
                   "--layer", "pool1", "--device", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    suite = write_suite(tmp_path, seeds="[0]", images=f'["{photo_png}", "astronaut"]')
    threads = torch.get_num_threads()
    with ResultStore(tmp_path / "r.db") as db:
        summary = run_sweep(suite, db, executor=RayExecutor(batch_images=2, out_dir=tmp_path / "images"))
        assert summary.done == 2
        runs = {r.key: r for r in db.runs()}
        results = {r.key: r for r in db.results()}
    assert torch.get_num_threads() == threads
    assert row["key"] in results
    # alone in `archbench run`, in a batch of two on Ray: equal up to the batch's float rounding
    assert results[row["key"]].final_loss == pytest.approx(row["final_loss"], rel=1e-4)
    assert results[row["key"]].metrics == pytest.approx(row["metrics"], rel=1e-4)
    assert {r.provenance["batch"] for r in runs.values()} == {2}  # the worker ran both images as one batch


def _task_pids() -> list[int]:
    """PIDs of Ray workers running an archbench group task (their title is ``ray::<task name>``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(f"ray::{TASK_NAME}".encode()):
                pids.append(int(entry))
    return pids


@needs_ray
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker process through /proc")
def test_killed_worker_is_retried_and_every_job_stored_once(ray_session, tmp_path):
    # one network group of three jobs: one Ray task; its worker is SIGKILLed after the first job started
    suite = write_suite(tmp_path, seeds="[0]", images='["astronaut", "coffee", "chelsea"]', iterations=15)
    first_started = threading.Event()
    killed: dict[str, float] = {}

    def killer() -> None:
        if not first_started.wait(120):
            return
        for _ in range(2000):
            pids = _task_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.update(pid=pids[0], at=time.time())
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    delivered: list[str] = []
    with ResultStore(tmp_path / "r.db") as db:
        summary = run_sweep(suite, db, executor=RayExecutor(out_dir=tmp_path / "images", max_retries=2),
                            on_start=lambda job: first_started.set(), on_result=lambda o: delivered.append(o.key))
        thread.join(5)
        rows = stored(db)
        n_results = db.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert killed, "the worker was not found running the task"
    assert summary.total == 3 and summary.done == 3 and summary.failed == 0 and summary.taken == 0
    assert sorted(delivered) == sorted(rows) and len(set(delivered)) == 3  # each outcome once
    assert n_results == 3 and all(r["status"] == "done" and r["attempts"] == 1 for r in rows.values())
    infos = [r["provenance"]["ray"] for r in rows.values()]
    retried = [i for i in infos if i["task_started"] > killed["at"]]
    assert retried and all(i["pid"] != killed["pid"] for i in retried), (killed, infos)


@needs_ray
def test_half_gpu_jobs_share_one_logical_gpu(ray_session, tmp_path):
    """The scheduling decision, not the clock: each task asks Ray for half a GPU, two such tasks
    fit the one logical GPU at once (whole-GPU tasks do not), and both ran on GPU 0."""
    suite = load_suite(write_suite(tmp_path, images='["astronaut", "coffee"]', iterations=2))
    ex = RayExecutor(gpus_per_job=0.5)
    jobs = expand_jobs(suite, ex.resolve_device("cpu"))
    assert {ex._task_options(j)["num_gpus"] for j in jobs} == {0.5}
    gpus = ray_session.cluster_resources()["GPU"]
    assert gpus == 1 and 2 * 0.5 <= gpus < 2 * 1.0  # two half-GPU tasks fit together, two whole ones do not
    outcomes = []
    ex.run(jobs, outcomes.append)
    assert len(outcomes) == 4 and all(o.status == "done" for o in outcomes)
    for o in outcomes:
        info = o.provenance["ray"]
        assert info["gpu_ids"] == ["0"] and info["cuda_visible_devices"] == "0"


@needs_ray
@pytest.mark.slow
def test_interrupt_keeps_finished_results_and_rerun_resumes(ray_session, tmp_path):
    suite = write_suite(tmp_path, images='["astronaut", "coffee"]')

    def interrupt(outcome) -> None:  # Ctrl-C arriving in the driver's loop after the first result
        raise KeyboardInterrupt

    with ResultStore(tmp_path / "r.db") as db:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(suite, db, executor="ray", on_result=interrupt)
        assert [j.status for j in db.runs()] == ["done"]
        again = run_sweep(suite, db, executor="ray")
        assert again.skipped == 1 and again.done == 3 and again.failed == 0
        assert len(db.runs()) == 4 and {j.attempts for j in db.runs()} == {1}


@needs_ray
def test_gpus_asked_on_a_cluster_without_gpus_fails_fast(tmp_path):
    suite = write_suite(tmp_path)
    t0 = time.time()
    env = {"CUDA_VISIBLE_DEVICES": ""}  # the private local instance sees no GPU
    proc = run_cli("sweep", str(suite), "--executor", "ray", "--gpus-per-job", "0.5", "--store", str(tmp_path / "r.db"),
                   env=env, timeout=180)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "asks for GPUs (--gpus-per-job 0.5) but the local Ray instance has no GPU" in proc.stderr
    assert time.time() - t0 < 120
    assert not (tmp_path / "r.db").exists()  # refused before anything was stored: no store created


@needs_ray
def test_shared_dir_workers_write_images_there(ray_session, tmp_path):
    suite = write_suite(tmp_path, seeds="[0]", iterations=2)
    shared = tmp_path / "shared"
    with ResultStore(tmp_path / "store" / "r.db") as db:
        summary = run_sweep(suite, db, executor=RayExecutor(shared_dir=shared))
        (res,) = db.results()
    assert summary.done == 1
    assert set(res.paths) == {"target", "start", "result"}
    for p in res.paths.values():
        assert Path(p).is_relative_to(shared) and Path(p).is_file()
    assert not (tmp_path / "store" / "images").exists()  # nothing shipped back to the driver
