"""The newcomer's path: `archbench run` twice, then `archbench report` ranks both; help and listings
read cleanly through a pipe; `run`'s table fits an 80-column terminal; `--format csv|json`."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess

import pytest
from rich.console import Console

from archbench.cli import main
from tests.conftest import archbench_exe, run_cli
from tests.test_help import _paths

RUN = ["--size", "16", "--iters", "2", "--layer", "pool1", "--device", "cpu"]


# ----------------------------------------------------------------------------------------------
# run -> run -> report


def test_two_runs_are_ranked_by_report_in_md_csv_and_html(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the defaults: archbench-out/, archbench-out/results.db
    main(["run", "--arch", "vgg11", *RUN])
    out = capsys.readouterr().out
    assert "recorded in archbench-out/results.db" in out and "archbench report archbench-out" in out
    main(["run", "--arch", "alexnet", *RUN])
    capsys.readouterr()
    assert (tmp_path / "archbench-out" / "results.db").is_file()

    main(["report"])  # no store given, no sweep store here: the runs' store
    md = capsys.readouterr().out
    assert "## Overall" in md and "| vgg11 |" in md and "| alexnet |" in md
    assert "reconstruct · ssim" in md

    main(["leaderboard", "archbench-out", "--format", "csv"])  # a folder stands for its results.db
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    ssim = [r for r in rows if r["section"] == "board" and r["metric"] == "ssim" and r["layer"] == "all"]
    assert sorted(r["arch"] for r in ssim) == ["alexnet", "vgg11"]
    assert sorted(float(r["rank"]) for r in ssim) == [1.0, 2.0]

    main(["report", "archbench-out", "--format", "html", "--out", "board.html"])
    html = (tmp_path / "board.html").read_text()
    assert "vgg11" in html and "alexnet" in html and "<table" in html

    # the console script, as a newcomer types it
    proc = run_cli("report", "archbench-out", "--format", "md", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| vgg11 |" in proc.stdout and "| alexnet |" in proc.stdout


def test_runs_differing_only_in_settings_keep_their_own_pictures(tmp_path, monkeypatch, capsys):
    # two runs of the same network, seed and photo into one --out, only the budget differs: each
    # keeps its own PNGs (a folder per run key), and the store points each result at its own
    import hashlib
    import sqlite3

    monkeypatch.chdir(tmp_path)
    main(["run", "--arch", "vgg11", *RUN])
    capsys.readouterr()
    first = sorted((tmp_path / "archbench-out").rglob("*-result.png"))
    assert len(first) == 1
    digest = hashlib.sha256(first[0].read_bytes()).hexdigest()
    main(["run", "--arch", "vgg11", *[("3" if a == "2" else a) for a in RUN]])  # --iters 3
    capsys.readouterr()
    both = sorted((tmp_path / "archbench-out").rglob("*-result.png"))
    assert len(both) == 2 and first[0] in both
    assert hashlib.sha256(first[0].read_bytes()).hexdigest() == digest  # the first run's picture is intact
    db = sqlite3.connect(tmp_path / "archbench-out" / "results.db")
    paths = [json.loads(p)["result"] for (p,) in db.execute("select paths from results")]
    assert len(set(paths)) == 2  # paths are relative to the --out folder
    assert all((tmp_path / "archbench-out" / p).exists() for p in paths)


def test_run_store_and_suites_share_one_identity_without_mixing_reports(tmp_path, capsys):
    """A run keyed like a suite job is that job (same configuration, same key, one row); a suite's
    report holds only its own jobs; a repeated run keeps the stored result and says so."""
    from archbench.store import ResultStore

    store = tmp_path / "results.db"
    common = ["--out", str(tmp_path / "out"), "--store", str(store), "--seed", "0", *RUN]
    main(["run", "--arch", "vgg11", *common])
    main(["run", "--arch", "alexnet", *common])
    capsys.readouterr()
    main(["run", "--arch", "vgg11", *common])
    assert "1 of 1 runs were stored there already and are kept" in capsys.readouterr().out
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nsize = 16\niterations = 2\ndevice = "cpu"\nseeds = [0]\nimages = ["astronaut"]\n'
                     'archs = ["vgg11"]\n[[task]]\nname = "reconstruct"\noptions = { layers = ["pool1"] }\n')
    main(["sweep", str(suite), "--store", str(store)])
    assert "1 already stored, 0 done now" in capsys.readouterr().out  # the run is the suite's job
    with ResultStore(store) as db:
        assert len(db.runs()) == 2 and len(db.runs(suite="s")) == 1
        assert db.runs(suite="s")[0].arch == "vgg11"
    main(["report", str(store), "--suite", "s", "--format", "csv"])
    assert {r["arch"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["arch"]} == {"vgg11"}
    main(["report", "--store", str(store), "--format", "csv"])
    assert {r["arch"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["arch"]} == {"vgg11", "alexnet"}


def test_report_without_any_store_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["report"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no results store here" in err and "archbench run" in err and "archbench sweep" in err
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path / "a.db"), "--store", str(tmp_path / "b.db")])
    assert "two stores given" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# --format csv|json: only the data on stdout


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_run_format_for_scripts_prints_only_the_data(tmp_path, fmt, capsys):
    main(["run", "--arch", "vgg11", "--out", str(tmp_path), "--format", fmt, *RUN[:4], "--layer", "pool1,pool2",
          "--device", "cpu"])
    captured = capsys.readouterr()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(captured.out)))
        assert [r["layer"] for r in rows] == ["pool1", "pool2"] and {"ssim", "psnr", "key"} <= set(rows[0])
    else:
        rows = json.loads(captured.out)
        assert [r["layer"] for r in rows] == ["pool1", "pool2"] and set(rows[0]["metrics"]) == {"ssim", "psnr"}
    assert "recorded in" in captured.err and "reconstruct on vgg11" in captured.err


# ----------------------------------------------------------------------------------------------
# help and listings through a pipe


def _plain(text: str) -> None:
    assert "`" not in text, text
    assert "<bool>" not in text, text
    assert not any(ch in text for ch in "╭│┃━"), text  # no box drawing


@pytest.mark.parametrize("path", _paths(), ids=lambda p: " ".join(p) or "archbench")
def test_help_piped_into_head_exits_0_and_reads_plainly(path):
    command = " ".join([archbench_exe(), *path, "--help"])
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", f"{command} | head -1"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: archbench"), proc.stdout
    assert proc.stderr == ""
    full = subprocess.run([archbench_exe(), *path, "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80"}, timeout=120)
    assert full.returncode == 0, full.stderr
    _plain(full.stdout)


def test_list_archs_piped_into_head_exits_0_without_markup(capsys):
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", f"{archbench_exe()} list archs | head -1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() and proc.stderr == ""
    main(["list", "archs"])
    listing = capsys.readouterr().out
    assert "timm:<name>[.<tag>]: timm model name" in listing
    _plain(listing)


@pytest.mark.parametrize("args", [["--help"], ["list", "archs"]], ids=["help", "list archs"])
def test_a_closed_stdout_ends_quietly_with_exit_0(args):
    """The reader is gone before the first byte (what `| head -1` does to a longer output)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([archbench_exe(), *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


# ----------------------------------------------------------------------------------------------
# run's table at 80 columns


def _render(table, width: int) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(table)
    return console.export_text()


def _results(metrics: dict, task: str = "reconstruct", layer: str = "pool1"):
    from archbench.config import RunConfig
    from archbench.results import Result

    config = RunConfig(arch="vgg11", init="gaussian:0.015", seed=0, task=task, image="astronaut", size=16,
                       iterations=1, metrics=tuple(metrics))
    return [Result(config, layer, 0.1, dict(metrics), iterations_run=5, seconds=1.5)]


def test_run_table_fits_80_columns_with_every_header_readable():
    from archbench.cli.run import results_table

    few = _results({"ssim": 0.5, "psnr": 17.0})
    text = _render(results_table(few, "reconstruct · vgg11", width=80), 80)
    assert all(h in text for h in ("image", "layer", "final_loss", "ssim", "psnr", "iters", "seconds", "status"))
    many = {m: 1.0e6 + k for k, m in enumerate(["grad_norm", "snip", "jacob_cov", "naswot", "synflow", "params", "flops"])}
    wide = _render(results_table(_results(many, "proxies", "network"), "proxies · vgg11", width=200), 200)
    assert "flops" in wide.splitlines()[2]  # a column per score when it fits
    narrow = _render(results_table(_results(many, "proxies", "network"), "proxies · vgg11", width=80), 80)
    assert "…" not in narrow and max(len(line) for line in narrow.splitlines()) <= 80
    for name in [*many, "final_loss", "image", "layer", "score", "value"]:
        assert name in narrow, name
    assert "1e+06" in narrow  # values whole too


def test_run_prints_a_readable_table_in_an_80_column_terminal(tmp_path):
    proc = run_cli("run", "--arch", "vgg11", "--task", "proxies", "--size", "32", "--device", "cpu",
                   "--out", str(tmp_path), env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    for name in ("score", "value", "final_loss", "grad_norm", "snip", "jacob_cov", "naswot", "synflow", "params", "flops"):
        assert name in proc.stdout, proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines() if "│" in line or "┃" in line) <= 80


def test_plain_strips_docstring_markup():
    from archbench.cli.help import plain

    assert plain("``timm:<name>[.<tag>]``: see `archbench list archs` and :class:`~archbench.store.ResultStore`") \
        == "timm:<name>[.<tag>]: see archbench list archs and ResultStore"
    assert plain(":func:`the runner <archbench.runner.run_task>` and it's fine") == "the runner and it's fine"
