"""Baselines and `archbench check`: direction-aware tolerances, pass on an unchanged store, fail when perturbed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archbench.cli import main
from archbench.report.check import Tolerance, compare, parse_tolerance

SUITE = """\
name = "tinycheck"
reference = "vgg11"
seeds = [0, 1]
images = ["astronaut"]
size = 32
iterations = 5
device = "cpu"
archs = ["vgg11"]

[[task]]
name = "reconstruct"
options = { layers = ["pool1"] }
"""


def entry(metric, mean, hib, arch="a", layer="pool1"):
    return {"task": "t", "arch": arch, "init": "i", "layer": layer, "metric": metric, "higher_is_better": hib,
            "mean": mean, "n": 2}


def base(entries, tolerances=None):
    return {"format": "archbench-baseline/1", "suite": "s", "entries": entries,
            "tolerances": tolerances or {"ssim": {"abs": 0.01, "rel": 0.0}, "gram": {"abs": 0.0, "rel": 0.1},
                                         "*": {"abs": 0.0, "rel": 0.05}}}


def test_compare_is_direction_aware():
    b = base([entry("ssim", 0.5, True), entry("gram", 1.0, False), entry("ssim", 0.5, True, arch="b"),
              entry("gram", 1.0, False, arch="b"), entry("ssim", 0.5, True, arch="gone")])
    cur = [entry("ssim", 0.505, True), entry("gram", 1.05, False),  # within tolerance
           entry("ssim", 0.6, True, arch="b"), entry("gram", 1.2, False, arch="b"),  # better ssim, worse gram
           entry("psnr", 20.0, True)]  # new
    rep = compare(b, cur)
    status = {(r.arch, r.metric): r.status for r in rep.rows}
    assert status == {("a", "ssim"): "ok", ("a", "gram"): "ok", ("b", "ssim"): "better", ("b", "gram"): "worse",
                      ("gone", "ssim"): "missing", ("a", "psnr"): "new"}
    assert not rep.passed and {r.status for r in rep.failing} == {"better", "worse", "missing"}
    assert {r.status for r in compare(b, cur, allow_improvements=True).failing} == {"worse", "missing"}
    # a lower-is-better metric that went down is an improvement
    assert compare(base([entry("gram", 1.0, False)]), [entry("gram", 0.5, False)]).rows[0].status == "better"


def test_tolerances():
    assert Tolerance(abs=0.01, rel=0.1).allowed(1.0) == pytest.approx(0.1)
    assert Tolerance(abs=0.01, rel=0.1).allowed(0.01) == pytest.approx(0.01)
    assert parse_tolerance("ssim=0.02") == ("ssim", Tolerance(abs=0.02))
    assert parse_tolerance("psnr=2%") == ("psnr", Tolerance(rel=0.02))


def test_baseline_save_and_check_pass_then_fail_when_perturbed(tmp_path, capsys):
    suite = tmp_path / "tinycheck.toml"
    suite.write_text(SUITE)
    store = tmp_path / "r.db"
    baseline = tmp_path / "baselines" / "tiny.json"
    main(["baseline", "save", "--suite", str(suite), "--out", str(baseline), "--store", str(store),
          "--note", "test tolerances"])
    data = json.loads(baseline.read_text())
    assert data["suite"] == "tinycheck" and data["command"].startswith("archbench baseline save")
    assert data["versions"]["torch"] and data["machine"]["cpus"] and data["tolerance_note"] == "test tolerances"
    assert data["jobs"] == {"total": 2, "done": 2, "failed": 0}
    metrics = {e["metric"] for e in data["entries"]}
    assert {"ssim", "psnr", "final_loss"} <= metrics
    ssim = next(e for e in data["entries"] if e["metric"] == "ssim")
    assert ssim["higher_is_better"] is True and ssim["n"] == 2

    # unchanged: passes (reuses the stored results, runs nothing)
    capsys.readouterr()
    main(["check", "--baseline", str(baseline), "--suite", str(suite), "--store", str(store)])
    out = capsys.readouterr().out
    assert "passed" in out and "0 to run" in out

    # perturb one stored ssim by -0.2 (beyond the 0.01 tolerance): mean moves by -0.1
    import sqlite3

    conn = sqlite3.connect(store)
    (key,) = conn.execute("SELECT key FROM runs ORDER BY rowid LIMIT 1").fetchone()
    conn.execute("UPDATE scores SET value = value - 0.2 WHERE run_key = ? AND layer = 'pool1' AND metric = 'ssim'", (key,))
    conn.commit()
    conn.close()

    with pytest.raises(SystemExit) as exc:
        main(["check", "--baseline", str(baseline), "--suite", str(suite), "--store", str(store)])
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "worse" in out and "ssim" in out

    md_file = tmp_path / "comment.md"
    with pytest.raises(SystemExit) as exc:
        main(["check", "--baseline", str(baseline), "--store", str(store), "--format", "md", "--out", str(md_file)])
    assert exc.value.code == 1
    md = md_file.read_text()
    assert "❌ failed" in md and "| worse | reconstruct | vgg11 | gaussian:0.015 | pool1 | ssim |" in md
    assert "-0.1" in md


def test_check_reports_a_missing_baseline_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "--baseline", str(tmp_path / "nope.json"), "--store", str(tmp_path / "r.db")])
    assert exc.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_committed_ci_baseline_matches_the_ci_suite():
    """The committed baseline covers every (task, arch, layer, metric) the ci suite produces."""
    from archbench.sweep import expand_jobs, load_suite

    path = Path(__file__).resolve().parent.parent / "reports" / "baselines" / "ci.json"
    if not path.exists():
        pytest.skip("reports/baselines/ci.json not committed yet")
    data = json.loads(path.read_text())
    jobs = expand_jobs(load_suite("ci"), "cpu")
    assert data["jobs"]["total"] == len(jobs) and data["jobs"]["failed"] == 0
    assert {e["arch"] for e in data["entries"]} == {j.arch for j in jobs}
    assert {e["task"] for e in data["entries"]} == {j.task for j in jobs}
    assert data["tolerance_note"] and data["command"] and data["machine"]
