"""The results store: skipping done jobs, failures with reasons, resume after SIGKILL, concurrency."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archbench.results import Result, RunOutcome
from archbench.store import ResultStore
from archbench.sweep import expand_jobs, load_suite, run_sweep
from tests.conftest import truncated_png

SUITE = """\
name = "tiny"
reference = "vgg11"
seeds = [0, 1]
images = ["astronaut", "{missing}"]
size = 32
iterations = 4
device = "cpu"
archs = ["vgg11"]

[[task]]
name = "reconstruct"
options = {{ layers = ["pool1"] }}
"""


def suite_file(tmp_path: Path, missing: str | None = None, seeds: str = "[0, 1]") -> Path:
    p = tmp_path / "tiny.toml"
    text = SUITE.format(missing=missing if missing is not None else str(truncated_png(tmp_path / "broken.png")))
    if missing == "":
        text = text.replace(', ""', "")
    p.write_text(text.replace("seeds = [0, 1]", f"seeds = {seeds}"))
    return p


def fake_outcome(job, status="done", value=0.5) -> RunOutcome:
    r = Result(job, "pool1", 0.1, {"ssim": value, "psnr": 20.0}, iterations_run=3, evaluations=4, seconds=0.01,
               loss_trace=[1.0, 0.5, 0.1], extra={"layer_weight": 2.0})
    return RunOutcome(job, status, None if status == "done" else "boom", [r] if status == "done" else [], 1.0, 2.0, 1.0)


def test_failed_job_is_stored_with_reason_and_others_finish(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    summary = run_sweep(suite_file(tmp_path), store)
    assert summary.total == 4 and summary.done == 2 and summary.failed == 2
    jobs = store.runs()
    failed = [j for j in jobs if j.status == "failed"]
    assert len(failed) == 2 and all("truncated" in (j.error or "") for j in failed)
    done = [j for j in jobs if j.status == "done"]
    assert {j.image for j in done} == {"astronaut"} and {j.seed for j in done} == {0, 1}
    res = store.results()
    assert len(res) == 2 and all(r.metrics["ssim"] is not None and r.loss_trace for r in res)
    # output images live beside the store, with relative paths
    for r in res:
        assert not Path(r.paths["result"]).is_absolute()
        assert store.resolve_path(r.paths["result"]).is_file()
    # rerun: done jobs skipped, failed ones retried (and fail again, attempts counted)
    again = run_sweep(suite_file(tmp_path), store)
    assert again.skipped == 2 and again.done == 0 and again.failed == 2
    assert {j.attempts for j in store.runs() if j.status == "failed"} == {2}
    # --skip-failed: nothing to do
    third = run_sweep(suite_file(tmp_path), store, rerun_failed=False)
    assert third.skipped == 4 and third.done == third.failed == 0


def test_store_schema_and_pragmas(tmp_path):
    path = tmp_path / "r.db"
    store = ResultStore(path)
    assert not path.exists()  # opening writes nothing: the file is created when first used
    assert store.count() == 0
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = {r[1] for r in conn.execute("PRAGMA table_xinfo(runs)")}
    for c in ("key", "config", "arch", "init", "seed", "task", "image", "size", "iterations", "device", "judge",
              "image_label", "status", "error", "seconds", "versions", "provenance", "attempts"):
        assert c in cols, c
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "results", "scores", "suite_runs", "suites", "leases", "meta"} <= tables
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"


def test_done_rows_are_never_replaced_and_failed_rows_are(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    job = expand_jobs(load_suite(suite_file(tmp_path)), "cpu")[0]
    assert store.put(fake_outcome(job, "failed"))
    assert store.statuses()[job.key] == "failed"
    assert store.put(fake_outcome(job, "done", 0.5))
    assert not store.put(fake_outcome(job, "done", 0.9))  # a concurrent duplicate loses
    assert not store.put(fake_outcome(job, "failed"))
    (row,) = store.results()
    assert row.metrics["ssim"] == 0.5
    assert row.metrics == {"ssim": 0.5, "psnr": 20.0} and row.extra == {"layer_weight": 2.0}
    assert store.runs()[0].attempts == 2


def test_the_stalled_flag_is_stored_and_read_back(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    jobs = expand_jobs(load_suite(suite_file(tmp_path)), "cpu")[:3]
    for job, flag in zip(jobs, (True, False, None), strict=True):
        outcome = fake_outcome(job)
        outcome.results[0].stalled = flag
        store.put(outcome)
    assert [r.stalled for r in store.results()] == [True, False, None]
    assert [store.outcome(j.key).results[0].stalled for j in jobs] == [True, False, None]
    raw = sqlite3.connect(tmp_path / "r.db").execute("SELECT stalled FROM results ORDER BY rowid").fetchall()
    assert raw == [(1,), (0,), (None,)]


def test_a_pre_release_schema_2_store_gets_the_stalled_column(tmp_path):
    path = tmp_path / "r.db"
    with ResultStore(path) as created:
        created.count()  # creates it
    conn = sqlite3.connect(path)  # as written before the column existed, with the index of then
    conn.execute("DROP INDEX results_summary")
    conn.execute("ALTER TABLE results DROP COLUMN stalled")
    conn.execute("CREATE INDEX results_summary ON results(run_key, layer, position, status, final_loss, device)")
    conn.commit()
    conn.close()
    store = ResultStore(path)
    job = expand_jobs(load_suite(suite_file(tmp_path)), "cpu")[0]
    outcome = fake_outcome(job)
    outcome.results[0].stalled = True
    store.put(outcome)
    assert store.results()[0].stalled is True
    # the summary index now holds the flag, so reports read it without the rows that carry traces
    index = [r[2] for r in store.conn.execute("PRAGMA index_info(results_summary)")]
    assert index == ["run_key", "layer", "position", "status", "final_loss", "device", "stalled"]
    plan = " ".join(str(r) for r in store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT runs.rowid, results.layer, results.position, results.final_loss, results.device, "
        "results.stalled FROM runs CROSS JOIN results INDEXED BY results_summary ON results.run_key = runs.key"))
    assert "COVERING INDEX results_summary" in plan


def test_a_read_only_store_of_before_the_flag_is_still_read(tmp_path, monkeypatch):
    import contextlib

    import archbench

    path = tmp_path / "r.db"
    with ResultStore(path) as created:
        created.put(fake_outcome(expand_jobs(load_suite(suite_file(tmp_path)), "cpu")[0]))
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX results_summary")
    conn.execute("ALTER TABLE results DROP COLUMN stalled")
    conn.execute("CREATE INDEX results_summary ON results(run_key, layer, position, status, final_loss, device)")
    conn.commit()
    conn.close()


    @contextlib.contextmanager
    def read_only(self):  # what a read-only file answers (root could write through file modes)
        raise sqlite3.OperationalError("attempt to write a readonly database")
        yield

    monkeypatch.setattr(ResultStore, "transaction", read_only)
    df = archbench.load_results(path)
    assert len(df) == 2 and df["stalled"].isna().all() and set(df["metric"]) == {"ssim", "psnr"}


@pytest.mark.slow
def test_two_processes_writing_one_store(tmp_path):
    """Concurrent writers: every row lands once, the database stays consistent."""
    db = tmp_path / "r.db"
    with ResultStore(db) as store:
        store.count()  # creates it
    suite = suite_file(tmp_path, seeds="20")  # 20 seeds x 2 images
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_store import fake_outcome
from archbench.store import ResultStore
from archbench.sweep import expand_jobs, load_suite
store = ResultStore({str(db)!r})
jobs = expand_jobs(load_suite({str(suite)!r}), "cpu")
for job in jobs:
    store.put(fake_outcome(job, "done", float(job.seed)))
"""
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM runs").fetchone() == (40, 40)
    assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 40
    assert conn.execute("SELECT MAX(attempts) FROM runs").fetchone()[0] == 1


@pytest.mark.slow
def test_sigkill_partway_then_resume_stores_every_job_exactly_once(tmp_path):
    suite = suite_file(tmp_path, missing="", seeds="10")
    db = tmp_path / "r.db"
    cmd = [sys.executable, "-c", "from archbench.cli import main; main()", "sweep", str(suite), "--store", str(db)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    n_done = 0
    try:
        while time.time() < deadline:
            if db.exists():
                try:
                    conn = sqlite3.connect(db, timeout=5)
                    n_done = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
                    conn.close()
                except sqlite3.OperationalError:
                    n_done = 0
                if n_done >= 1:
                    break
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the sweep finished before it could be killed; make it longer"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(db)
    before = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert 1 <= before < 10, before
    conn.close()

    store = ResultStore(db)
    summary = run_sweep(suite, store)
    assert summary.total == 10 and summary.skipped == before and summary.done == 10 - before and summary.failed == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM runs").fetchone() == (10, 10)
    assert conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0] == 10
    assert conn.execute("SELECT MAX(attempts) FROM runs").fetchone()[0] == 1
    keys = {j.key for j in expand_jobs(load_suite(suite), "cpu")}
    assert {r[0] for r in conn.execute("SELECT key FROM runs")} == keys
    assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 10
    seeds = sorted(r[0] for r in conn.execute("SELECT seed FROM runs"))
    assert seeds == list(range(10))
