"""Faults: a truncated results file, a corrupted store, a full disk, and concurrent sweeps on one
store (each job runs once: the sweeps claim jobs with leases in the store)."""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from archbench.cli import main
from archbench.config import RunConfig, resolve
from archbench.errors import StoreError
from archbench.results import Result, RunOutcome, write_results
from archbench.store import ResultStore
from archbench.store.db import CLAIMED, DONE, HELD
from archbench.store.leases import LeaseOwner
from archbench.sweep import expand_jobs, load_suite, run_sweep
from archbench.sweep.executor import Executor

SUITE = """\
name = "faults"
seeds = {seeds}
images = ["astronaut", "brick"]
size = 16
iterations = 2
device = "cpu"
archs = ["vgg11"]

[[task]]
name = "reconstruct"
options = {{ layers = ["pool1"] }}
"""


def suite_file(tmp_path: Path, seeds: str = "[0, 1]") -> Path:
    path = tmp_path / "faults.toml"
    path.write_text(SUITE.format(seeds=seeds))
    return path


def fake_outcome(job: RunConfig, value: float = 0.5) -> RunOutcome:
    r = Result(job, "pool1", 0.1, {"ssim": value, "psnr": 20.0}, iterations_run=2, evaluations=3, loss_trace=[1.0, 0.1] * 20)
    return RunOutcome(job, "done", None, [r], 1.0, 2.0, 1.0)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------------------------
# a results.jsonl cut short by a crash


def test_truncated_last_line_of_results_jsonl_is_kept_aside_and_new_results_land(tmp_path, capsys):
    out = tmp_path / "out"
    (config,) = resolve("vgg11", "reconstruct", ["astronaut"], size=16, iterations=1, device="cpu")
    old = Result(config, "pool2", 0.2, {"ssim": 0.4})
    write_results(out, [old])
    jsonl = out / "results.jsonl"
    whole = jsonl.read_text()
    truncated = json.dumps({"key": "x", "layer": "pool9", "metrics": {"ssim": 0.1}})[:25]  # a crash mid-write
    jsonl.write_text(whole + truncated)

    # the CLI run into that folder works, keeps the earlier row and keeps the cut line aside
    main(["run", "--arch", "vgg11", "--image", "astronaut", "--size", "16", "--iters", "1", "--layer", "pool1",
          "--device", "cpu", "--out", str(out)])
    assert "Traceback" not in capsys.readouterr().err
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(r["layer"] for r in rows) == ["pool1", "pool2"]
    assert (out / "results.jsonl.unreadable").read_text() == truncated + "\n"
    assert len((out / "results.csv").read_text().splitlines()) == 3  # header + 2 rows
    assert not list(out.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------------
# a corrupted store


def corrupt(path: Path) -> None:
    """Overwrite every page of an SQLite file but the first (the header and schema survive)."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for i in range(page, len(data)):
        data[i] = (i * 7) % 251
    path.write_bytes(bytes(data))


def test_a_corrupted_store_is_reported_in_one_line(tmp_path, capsys):
    db = tmp_path / "r.db"
    jobs = expand_jobs(load_suite(suite_file(tmp_path, "30")), "cpu")
    with ResultStore(db) as store:
        for job in jobs:
            store.put(fake_outcome(job), "faults")
    corrupt(db)
    with ResultStore(db) as store, pytest.raises(StoreError, match="is damaged .database disk image is malformed."):
        store.results()
    for argv in (["report", "--store", str(db)], ["sweep", str(suite_file(tmp_path, "30")), "--store", str(db)],
                 ["correlate", "--store", str(db)]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        line = one_error_line(capsys)
        assert "is damaged" in line and ".recover" in line


# ----------------------------------------------------------------------------------------------
# a full disk


def test_disk_full_while_a_sweep_writes_images_stops_it_cleanly(tmp_path, capsys, monkeypatch):
    """The second job's images hit a full disk: the sweep stops with one line, the first job
    stays stored, no job is stored as failed, no temporary file is left, no lease is left."""
    from archbench import fileio

    writes = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        writes["n"] += 1
        if writes["n"] > 5:  # a job writes 3 images, results.csv and results.jsonl
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    db, images = tmp_path / "r.db", tmp_path / "images"
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(suite_file(tmp_path)), "--store", str(db), "--out", str(images)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No space left on device" in err.strip().splitlines()[-1]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall() == [("done", 1)]
    assert conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
    assert not [p for p in images.rglob("*") if p.name.endswith(".tmp")]
    # space again: the rerun runs the remaining jobs only
    monkeypatch.setattr(fileio.os, "fsync", real_fsync)
    main(["sweep", str(suite_file(tmp_path)), "--store", str(db), "--out", str(images)])
    assert conn.execute("SELECT status, COUNT(*), MAX(attempts) FROM runs GROUP BY status").fetchall() == [("done", 4, 1)]


class FullDisk:
    """A connection whose writes of results fail as on a full disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args):
        if sql.startswith("INSERT INTO runs"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_disk_full_in_the_store_stops_the_sweep_with_one_line(tmp_path, capsys, monkeypatch):
    real_connect = ResultStore._connect
    monkeypatch.setattr(ResultStore, "_connect", lambda self: FullDisk(real_connect(self)))
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(suite_file(tmp_path, "[0]")), "--store", str(tmp_path / "r.db")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "the disk is full" in err.strip().splitlines()[-1]


# ----------------------------------------------------------------------------------------------
# leases


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims(tmp_path):
    jobs = expand_jobs(load_suite(suite_file(tmp_path)), "cpu")
    a, b = LeaseOwner.this_process(), LeaseOwner.this_process()
    with ResultStore(tmp_path / "r.db") as store:
        key = jobs[0].key
        assert store.claim(key, a, 60) == CLAIMED
        assert store.claim(key, a, 60) == CLAIMED  # renewing one's own claim
        assert store.claim(key, b, 60) == HELD
        store.put(fake_outcome(jobs[0]), "faults", a)  # storing drops the lease
        assert store.leases() == {} and store.claim(key, b, 60) == DONE
        # an expired lease of another machine, and a lease of a process of this host that died
        now = time.time()
        store.conn.execute("INSERT INTO leases VALUES (?, 'x', 'elsewhere', 1, ?, ?)", (jobs[1].key, now - 100, now - 1))
        store.conn.execute("INSERT INTO leases VALUES (?, 'y', ?, ?, ?, ?)",
                           (jobs[2].key, socket.gethostname(), dead_pid(), now, now + 600))
        store.conn.execute("INSERT INTO leases VALUES (?, 'z', 'elsewhere', 1, ?, ?)", (jobs[3].key, now, now + 600))
        assert set(store.leases()) == {jobs[3].key}  # only the live one
        assert store.claim(jobs[1].key, b, 60) == CLAIMED
        assert store.claim(jobs[2].key, b, 60) == CLAIMED
        assert store.claim(jobs[3].key, b, 60) == HELD
        assert store.release(b) == 2


class RecordingExecutor(Executor):
    """Runs jobs instantly (fake outcomes), recording which; ``gate(job)`` may block a job."""

    name = "recording"

    def __init__(self, runs: list[str], gate=None) -> None:
        self.runs, self.gate = runs, gate

    def run(self, jobs, on_result, on_start=None, skip=None):
        for job in jobs:
            if skip is not None and skip(job):
                continue
            if on_start:
                on_start(job)
            self.runs.append(job.key)
            if self.gate is not None:
                self.gate(job)
            on_result(fake_outcome(job))


def test_two_sweeps_split_the_work_and_wait_for_each_other(tmp_path):
    """Sweep A holds job 1 (blocked inside it) while sweep B runs every other job and waits for
    job 1; then A finishes job 1 and finds the rest done. Each job ran once."""
    suite = load_suite(suite_file(tmp_path, "[0, 1, 2]"))
    jobs = expand_jobs(suite, "cpu")
    db = tmp_path / "r.db"
    runs: list[str] = []
    a_inside, release_a, b_waits = threading.Event(), threading.Event(), threading.Event()

    def gate(job):
        if job.key == jobs[0].key:
            a_inside.set()
            assert release_a.wait(60)

    summaries = {}

    def sweep(name, executor, **kw):
        with ResultStore(db) as store:
            summaries[name] = run_sweep(suite, store, executor=executor, poll_seconds=0.05, **kw)

    a = threading.Thread(target=sweep, args=("a", RecordingExecutor(runs, gate)))
    a.start()
    assert a_inside.wait(60)
    b = threading.Thread(target=sweep, args=("b", RecordingExecutor(runs)), kwargs={"on_wait": lambda n, h: b_waits.set()})
    b.start()
    assert b_waits.wait(60)  # B ran everything it could claim and waits for job 1
    release_a.set()
    a.join(60)
    b.join(60)
    assert sorted(runs) == sorted(j.key for j in jobs)  # total job runs == jobs
    assert summaries["a"].ran == 1 and summaries["b"].ran == len(jobs) - 1
    assert summaries["b"].taken == 1 and summaries["a"].taken == len(jobs) - 1
    with ResultStore(db) as store:
        assert store.count("done") == len(jobs) and store.leases() == {}


def test_a_job_held_by_a_dead_sweep_elsewhere_is_taken_over_when_its_lease_expires(tmp_path):
    suite = load_suite(suite_file(tmp_path))
    jobs = expand_jobs(suite, "cpu")
    runs: list[str] = []
    with ResultStore(tmp_path / "r.db") as store:
        now = time.time()
        store.conn.execute("INSERT INTO leases VALUES (?, 'ghost', 'another-host', 4242, ?, ?)",
                           (jobs[0].key, now, now + 0.5))
        summary = run_sweep(suite, store, executor=RecordingExecutor(runs), poll_seconds=0.1)
    assert sorted(runs) == sorted(j.key for j in jobs) and summary.ran == len(jobs) and summary.done == len(jobs)


SWEEPER = """
import json, sys
import torch
torch.set_num_threads(1)
from archbench.store import ResultStore
from archbench.sweep import run_sweep
with ResultStore(sys.argv[2]) as store:
    s = run_sweep(sys.argv[1], store, out_dir=sys.argv[3], poll_seconds=0.2)
print(json.dumps({"ran": s.ran, "done": s.done, "failed": s.failed, "taken": s.taken, "total": s.total}))
"""


def test_two_sweep_processes_on_one_store_run_each_job_once(tmp_path):
    """Two `run_sweep` processes started together on one suite and store: the store ends with
    every job done once, and the jobs the two processes ran add up to the number of jobs (how
    they interleave is up to the scheduler and is not asserted)."""
    suite = suite_file(tmp_path, "6")  # 6 seeds x 2 images = 12 jobs
    n_jobs = len(expand_jobs(load_suite(suite), "cpu"))
    db, images = tmp_path / "r.db", tmp_path / "images"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", SWEEPER, str(suite), str(db), str(images)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(s["ran"] for s in summaries) == n_jobs  # total job runs == jobs
    assert all(s["total"] == n_jobs and s["failed"] == 0 for s in summaries)
    assert sum(s["done"] for s in summaries) == n_jobs
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*), MAX(attempts) FROM runs WHERE status = 'done'").fetchone() == (n_jobs, 1)
    assert conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
