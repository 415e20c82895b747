"""The results table (archbench.load_results) and the reports computed from it: the layout, a
sweep's values against the store, the committed ci store's reports unchanged in content, export,
and the report path free of torch."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import archbench
from archbench.frame import FINAL_LOSS, IDENTITY, ROW, load_results, load_tables, score_means
from archbench.report import leaderboard_from_store, render
from archbench.report.stats import _scipy_rng_kwargs, bootstrap_cis, cornish_fisher_ci, wilcoxon_p, wilcoxon_ps
from archbench.store import ResultStore
from tests.conftest import ROOT, run_cli

CI_STORE = ROOT / "tests" / "data" / "ci_store"
EXPECTED = CI_STORE / "expected"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def ci_db(tmp_path: Path) -> Path:
    """A copy of the committed ci store (opening a store adds its indices; the original stays as committed)."""
    dest = tmp_path / "ci" / "results.db"
    dest.parent.mkdir()
    shutil.copy(CI_STORE / "results.db", dest)
    return dest


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A real sweep: vgg11, one seed, two images, reconstruction from pool1 and pool2, plus one job that fails."""
    from archbench.sweep import run_sweep
    from tests.conftest import truncated_png

    tmp = tmp_path_factory.mktemp("sweep")
    suite = tmp / "tiny.toml"
    suite.write_text(
        'name = "tiny"\nreference = "vgg11"\nseeds = [0]\nimages = ["astronaut", "chelsea", "{}"]\nsize = 32\n'
        'iterations = 3\ndevice = "cpu"\narchs = ["vgg11"]\n'
        '[[task]]\nname = "reconstruct"\noptions = {{ layers = ["pool1", "pool2"] }}\n'.format(truncated_png(tmp / "broken.png"))
    )
    path = tmp / "r.db"
    with ResultStore(path) as store:
        summary = run_sweep(suite, store)
    assert summary.done == 2 and summary.failed == 1
    return path


# ---------------------------------------------------------------------------------------------
# load_results


def test_load_results_of_a_sweep_matches_the_store(tiny_sweep):
    df = archbench.load_results(tiny_sweep, suite="tiny")
    assert list(df.columns[: len(IDENTITY) + len(ROW)]) == [*IDENTITY, *ROW]
    assert any(c.endswith("_version") for c in df.columns) and "torch_version" in df.columns
    # 2 done runs x 2 layers x 2 metrics (ssim, psnr); the failed run has no rows
    assert len(df) == 8 and df["key"].nunique() == 2
    assert set(df["metric"]) == {"ssim", "psnr"} and set(df["layer"]) == {"pool1", "pool2"}
    assert set(df["image"]) == {"astronaut", "chelsea"} and (df["arch"] == "vgg11").all()
    row = df[(df.image == "chelsea") & (df.layer == "pool2") & (df.metric == "ssim")].iloc[0]
    conn = sqlite3.connect(tiny_sweep)
    stored = conn.execute(
        "SELECT s.value FROM scores s JOIN runs r ON r.key = s.run_key "
        "WHERE r.image_label = 'chelsea' AND s.layer = 'pool2' AND s.metric = 'ssim'"
    ).fetchone()[0]
    assert row["value"] == stored
    with ResultStore(tiny_sweep) as store:
        outcome = store.outcome(row["key"])
        result = next(r for r in outcome.results if r.layer == "pool2")
        assert result.metrics["ssim"] == row["value"]
        assert row["seed"] == outcome.config.seed and row["size"] == 32 and row["iterations"] == 3
        assert json.loads(row["options"]) == outcome.config.task_options()
        assert row["position"] == 1  # pool2 is the run's second result


def test_load_results_options(tiny_sweep):
    df = load_results(tiny_sweep, final_loss=True)
    assert (df["metric"] == FINAL_LOSS).sum() == 4
    with ResultStore(tiny_sweep) as store:
        by_key = {(r.key, r.layer): r.final_loss for r in store.results()}
    for k, layer, v in df[df.metric == FINAL_LOSS][["key", "layer", "value"]].itertuples(index=False):
        assert v == by_key[(k, layer)]
    assert set(load_results(tiny_sweep, metrics=["ssim"])["metric"]) == {"ssim"}
    assert load_results(tiny_sweep, tasks=["texture"]).empty
    one = df["key"].iloc[0]
    assert set(load_results(tiny_sweep, keys=[one])["key"]) == {one}
    failed = load_results(tiny_sweep, include_failed=True)
    assert "status" in failed.columns and set(failed["status"]) == {"done"}  # the failed run stored no scores
    tables = load_tables(tiny_sweep, "tiny")
    assert (tables.runs["status"] == "failed").sum() == 1 and tables.devices == ["cpu"]
    assert "truncated" in tables.runs.loc[tables.runs.status == "failed", "error"].iloc[0]
    assert load_results(tiny_sweep, suite="no-such-suite").empty


def test_load_results_dtypes_and_judge_names(ci_db):
    df = load_results(ci_db, "ci")
    assert isinstance(df["arch"].dtype, pd.CategoricalDtype) and df["seed"].dtype == np.int64
    assert set(df["scored_metric"]) == {"ssim", "psnr", "gram@trained-vgg16"}
    gram = df[df.metric == "gram"]
    assert (gram["judge"] == "trained-vgg16").all()
    assert df[df.metric == "ssim"]["judge"].isna().all()
    assert len(df) == 12 * 2 * 2 + 12  # reconstruct: 12 runs x 2 layers x 2 metrics; texture: 12 x 1 x 1


def test_missing_store_is_a_clear_error(tmp_path):
    from archbench.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        load_results(tmp_path / "nope.db")


def test_score_means_equal_the_baseline_entries(ci_db):
    """The check's means of the results table equal the baseline's means of the stored results."""
    from archbench.report.noise import score_observations

    with ResultStore(ci_db) as store:
        expected = {k: sum(v.values()) / len(v) for k, v in score_observations(store.results(suite="ci")).items()}
        means = score_means(load_results(store, "ci", final_loss=True))
    got = {(r["task"], r["arch"], r["init"], r["layer"], r["metric"], r["judge"] or ""): r["mean"]
           for r in means.to_dict("records")}
    assert got.keys() == expected.keys() and all(got[k] == pytest.approx(v, rel=1e-12) for k, v in expected.items())


# ---------------------------------------------------------------------------------------------
# reports of the committed ci store: unchanged in content


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _same_cells(a: str, b: str, rel: float = 1e-9) -> bool:
    x, y = _num(a), _num(b)
    if x is None or y is None:
        return a == b
    return math.isclose(x, y, rel_tol=rel, abs_tol=1e-12)


def _unescape_md(text: str) -> str:
    return re.sub(r"\\([\\|*_`\[\]])", r"\1", text)


def _without_generated(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("Generated ")]


def test_ci_reports_are_unchanged_in_content(ci_db, tmp_path):
    with ResultStore(ci_db) as store:
        lb = leaderboard_from_store(store, suite="ci")
        reports = {fmt: render(lb, fmt, store) for fmt in ("csv", "md", "json", "html")}
    # CSV: same rows; numbers equal to 1e-9 relative; the stall count is a new last column, empty
    # here (the store predates the flag)
    old = list(csv.reader(io.StringIO((EXPECTED / "report.csv").read_text())))
    new = list(csv.reader(io.StringIO(reports["csv"])))
    assert len(old) == len(new) and new[0] == [*old[0], "stalled"]
    for a, b in zip(old, new, strict=True):
        assert all(_same_cells(x, y) for x, y in zip(a, b[:-1], strict=True)), (a, b)
    assert {row[-1] for row in new[1:]} == {""}
    # Markdown: identical but for the generation time (every number is printed to 3-4 digits)
    assert _without_generated(reports["md"]) == _without_generated((EXPECTED / "report.md").read_text())
    # JSON: the same boards, entries and overall ranks
    old_j, new_j = json.loads((EXPECTED / "report.json").read_text()), json.loads(reports["json"])
    for k in ("title", "suite", "reference", "devices", "failures", "versions"):
        assert old_j[k] == new_j[k], k
    assert {k: new_j["jobs"][k] for k in old_j["jobs"]} == old_j["jobs"]  # (the count of jobs not run is new)
    assert new_j["stalled"] is None  # new: the stall counts, None where nothing recorded the flag
    for b in new_j["boards"]:
        assert b.pop("stalled") is None and {e.pop("stalled") for e in b["entries"]} == {None}
    assert {o.pop("stalled") for o in new_j["overall"]} == {None}
    assert _close(old_j["boards"], new_j["boards"]) and _close(old_j["overall"], new_j["overall"])
    # HTML: every table cell (text and sort key) as before
    old_t, new_t = _tables((EXPECTED / "report.html").read_text()), _tables(reports["html"])
    assert set(old_t) == set(new_t) and len(old_t) == 1 + 9  # overall + 9 boards
    for tid in old_t:
        assert len(old_t[tid]) == len(new_t[tid])
        for ra, rb in zip(old_t[tid], new_t[tid], strict=True):
            assert all(_same_cells(x, y) for x, y in zip(ra, rb, strict=True)), (tid, ra, rb)


def _md_sections(text: str) -> list[str]:
    """The per-architecture sections of a correlation report (``## task / metric (init)`` ... up to
    the next heading), Markdown escapes removed."""
    parts = re.split(r"\n(?=#+ )", _unescape_md(text))
    return [p.strip() for p in parts if re.match(r"#+ \S+ / ", p)]


@pytest.mark.slow  # 17-30 s on idle cores: with --run-slow (CI runs it), to keep the default run under 6 min
def test_ci_correlation_is_unchanged_in_content(ci_db, tmp_path):
    """Since issue 18 the correlation carries more (a kind, stall counts, size rows of their own,
    the best baseline, the comparator, a cross-validated selection): every number it had before
    is still there, the same."""
    news = {}
    for fmt in ("md", "csv", "json", "points"):
        out = tmp_path / f"c.{fmt}"
        r = run_cli("correlate", "--store", str(ci_db), "--suite", "ci", "--format", fmt, "--out", str(out),
                    "--cv-boot", "50")
        assert r.returncode == 0, r.stderr
        news[fmt] = out.read_text()
    # csv: the old columns first, the old rows with the same cells; new rows are the size baselines
    old = list(csv.DictReader(io.StringIO((EXPECTED / "correlate.csv").read_text())))
    table, _, selection = news["csv"].partition("\n\n")
    new = list(csv.DictReader(io.StringIO(table)))
    assert list(new[0])[: len(old[0])] == list(old[0])
    scores = [r for r in new if r["kind"] != "size"]
    assert [r["kind"] for r in new if r not in scores] == ["size", "size"]
    assert len(scores) == len(old)
    for a, b in zip(old, scores, strict=True):
        assert all(_same_cells(a[k], b[k]) for k in a), (a, b)
    assert selection.startswith("procedure,candidates,")
    # json: the old keys of every old row with the same values
    old_j, new_j = json.loads((EXPECTED / "correlate.json").read_text()), json.loads(news["json"])
    new_rows = [r for r in new_j["rows"] if r["kind"] != "size"]
    for a, b in zip(old_j["rows"], new_rows, strict=True):
        old_points = a.pop("points")
        points = [{k: q[k] for k in p} for p, q in zip(old_points, b["points"], strict=True)]
        assert _close(a, {k: b[k] for k in a}) and _close(old_points, points)
        assert all(q["stalled"] is None for q in b["points"])
    assert {k: new_j[k] for k in old_j if k != "rows"} == {k: old_j[k] for k in old_j if k != "rows"}
    # points: the old columns of the old rows unchanged
    old_p = list(csv.reader(io.StringIO((EXPECTED / "correlate.points").read_text())))
    new_p = list(csv.reader(io.StringIO(news["points"])))
    assert [r[: len(old_p[0])] for r in new_p[: len(old_p)]] == old_p
    # md: every per-architecture table as before
    assert set(_md_sections((EXPECTED / "correlate.md").read_text())) <= set(_md_sections(news["md"]))
    out = tmp_path / "t.md"
    r = run_cli("report", "--store", str(ci_db), "--suite", "ci", "--truth", "imagenet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    old_md, new_md = (EXPECTED / "report-truth.md").read_text(), out.read_text()
    head = old_md.index("## Does the score predict")
    assert _without_generated(_unescape_md(new_md[: new_md.index("## Does the score predict")])) == _without_generated(
        _unescape_md(old_md[:head]))
    assert set(_md_sections(old_md[head:])) <= set(_md_sections(new_md))


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


class _TableCells(HTMLParser):
    """Cells (text and data-v) of every table with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id"):
            self.current = a["id"]
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag == "td" and self.current:
            self.cell = [a.get("data-v") or ""]

    def handle_endtag(self, tag):
        if tag == "table":
            self.current = None
        elif tag == "td" and self.cell is not None and self.current:
            self.tables[self.current][-1] += [self.cell[0], "".join(self.cell[1:]).strip()]
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _tables(page: str) -> dict[str, list[list[str]]]:
    p = _TableCells()
    p.feed(page)
    return {k: [r for r in v if r] for k, v in p.tables.items()}


# ---------------------------------------------------------------------------------------------
# export


def test_export_csv_and_parquet(ci_db, tmp_path):
    out = tmp_path / "r.csv"
    r = run_cli("export", "--store", str(ci_db), "--suite", "ci", "--out", str(out))
    assert r.returncode == 0, r.stderr
    back = pd.read_csv(out)
    df = load_results(ci_db, "ci")
    assert len(back) == len(df) and list(back.columns) == list(df.columns)
    assert np.allclose(back["value"].to_numpy(), df["value"].to_numpy(), rtol=0, atol=0)  # full precision
    pytest.importorskip("pyarrow")
    pq = tmp_path / "r.parquet"
    r = run_cli("export", "--store", str(ci_db), "--format", "parquet", "--final-loss", "--out", str(pq))
    assert r.returncode == 0, r.stderr
    back = pd.read_parquet(pq)
    assert len(back) == len(load_results(ci_db, final_loss=True)) and FINAL_LOSS in set(back["metric"])


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tiny_sweep, tmp_path):
    from archbench.report.text import csv_cell, csv_text

    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_cell("-1+1") == "'-1+1" and csv_cell("@x") == "'@x"
    assert csv_cell(-0.5) == "-0.5" and csv_cell(None) == "" and csv_cell(3) == "3"
    assert csv_text(["a"], [["+cmd"]]) == "a\n'+cmd\n"
    db = tmp_path / "hostile.db"
    shutil.copy(tiny_sweep, db)
    with ResultStore(db) as store:
        for run in store.runs(status="done"):
            outcome = store.outcome(run.key)
            outcome.config = outcome.config.replace(arch="=cmd|' /C calc'!A0")
            for res in outcome.results:
                res.config = outcome.config
            store.put(outcome, "tiny")
    out = tmp_path / "x.csv"
    assert run_cli("export", "--store", str(db), "--out", str(out)).returncode == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["arch"] for r in rows} == {"vgg11", "'=cmd|' /C calc'!A0"}
    report = run_cli("report", "--store", str(db), "--format", "csv")
    assert "'=cmd" in report.stdout and "\n=cmd" not in report.stdout


# ---------------------------------------------------------------------------------------------
# statistics from scipy, and where archbench keeps its own


def _old_bootstrap_ci(values, level=0.95, n_boot=4000, seed=0):
    """The interval archbench computed before scipy.stats.bootstrap did it (numpy resampling)."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return tuple(float(q) for q in np.quantile(means, [alpha, 1.0 - alpha]))


def test_scipy_bootstrap_keeps_the_seeded_intervals():
    rng = np.random.default_rng(7)
    samples = [rng.normal(size=n) for n in (2, 3, 4, 4, 5, 7, 16, 40, 100)]
    for s, (lo, hi) in zip(samples, bootstrap_cis(samples), strict=True):
        old = _old_bootstrap_ci(s)
        assert (lo, hi) == pytest.approx(old, rel=1e-12, abs=1e-12)
    assert bootstrap_cis([np.array([]), np.array([2.0]), np.array([3.0, 3.0])])[1:] == [(2.0, 2.0), (3.0, 3.0)]


def test_cornish_fisher_is_the_large_sample_bootstrap():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    for x in (rng.exponential(size=500), rng.normal(size=300), rng.lognormal(sigma=0.8, size=1000)):
        ref = bootstrap((x,), np.mean, n_resamples=100_000, method="percentile", **_scipy_rng_kwargs(1))
        lo, hi = cornish_fisher_ci(x)
        se = x.std() / np.sqrt(x.size)
        assert abs(lo - ref.confidence_interval.low) < 0.03 * se
        assert abs(hi - ref.confidence_interval.high) < 0.03 * se
    assert bootstrap_cis([x])[0] == cornish_fisher_ci(x)  # above N_EXACT_BOOTSTRAP values


def test_vectorised_wilcoxon_equals_one_call_per_pair():
    rng = np.random.default_rng(5)
    pairs = [(rng.normal(size=n), rng.normal(size=n)) for n in (4, 12, 60, 60, 200)]
    pairs.append((np.round(rng.normal(size=80), 1), np.round(rng.normal(size=80), 1)))  # ties
    pairs.append((np.ones(70), np.ones(70)))
    assert wilcoxon_ps(pairs) == [pytest.approx(wilcoxon_p(x, y), rel=1e-12) for x, y in pairs]


def test_metric_directions_known_without_loading_metrics_match_the_registry():
    from archbench.metric_info import BUILTIN
    from archbench.metrics import METRICS

    registered = dict(METRICS.items())
    for name, info in BUILTIN.items():
        assert name in registered, name
        assert (info.higher_is_better, info.judged) == (registered[name].higher_is_better, registered[name].judged)
    builtin_modules = {"ssim", "gram", "maximize", "lpips", "texture", "quality"}
    for name, m in registered.items():
        if m.fn.__module__.rsplit(".", 1)[-1] in builtin_modules:
            assert name in BUILTIN, f"built-in metric {name!r} missing from archbench.metric_info.BUILTIN"


def test_reports_do_not_load_torch(ci_db, tmp_path):
    code = (
        "import sys\nfrom archbench.cli import main\n"
        f"main(['report', '--store', {str(ci_db)!r}, '--suite', 'ci', '--format', 'html', '--out', {str(tmp_path / 'r.html')!r}])\n"
        f"main(['export', '--store', {str(ci_db)!r}, '--out', {str(tmp_path / 'r.csv')!r}])\n"
        "import archbench, archbench.frame, archbench.metrics\n"
        "assert archbench.metrics.scored_name('gram', 'trained-vgg16') == 'gram@trained-vgg16'\n"
        "print('torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_one_number_formatter_and_markdown_escaper():
    from archbench.escaping import md_cell as md_escape
    from archbench.report.text import number

    assert number(0.123456) == "0.1235" and number(1.0, ".3g") == "1" and number(None) == "—"
    assert number(float("nan"), ".3f", missing="") == "" and number(12345678.0) == "1.235e+07"
    assert number(0.0004, "p") == "<0.001" and number(0.25, "p") == "0.250"
    assert number(0.0004, "p2") == "4.0e-04" and number(0.0123, "p2") == "0.012"
    assert number(0.1, "r") == "0.1" and number(3, "r") == "3" and number(0.5, "+.2f") == "+0.50"
    assert md_escape("a|b_c*d\n<i>") == "a\\|b\\_c\\*d &lt;i&gt;"


# ---------------------------------------------------------------------------------------------
# stalled results


def test_stalled_results_are_counted_per_entry_board_and_unit_in_every_format(tmp_path):
    """Two archs x two images x two layers; vgg13's pool2 stalls on one image. The flag reaches the
    frame (each metric row of a result), the entries (per layer and over layers), the overall
    table and every report format."""
    from archbench.results import Result, RunOutcome
    from archbench.sweep import expand_jobs, load_suite

    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nreference = "vgg11"\nseeds = [0]\nimages = ["astronaut", "chelsea"]\nsize = 32\n'
                     'iterations = 3\ndevice = "cpu"\narchs = ["vgg11", "vgg13"]\n[[task]]\nname = "reconstruct"\n'
                     'options = { layers = ["pool1", "pool2"] }\n')
    store = ResultStore(tmp_path / "r.db")
    for k, job in enumerate(expand_jobs(load_suite(suite), "cpu")):
        results = []
        for pos, layer in enumerate(("pool1", "pool2")):
            r = Result(job, layer, 0.1, {"ssim": 0.5 + 0.1 * k + 0.01 * pos, "psnr": 20.0 + k}, iterations_run=3,
                       evaluations=4, seconds=0.01, loss_trace=[1.0, 0.5])
            r.stalled = job.arch == "vgg13" and job.image_label == "chelsea" and layer == "pool2"
            results.append(r)
        store.put(RunOutcome(job, "done", None, results, 1.0, 2.0, 1.0), suite="s")
    df = archbench.load_results(store, suite="s")
    assert str(df["stalled"].dtype) == "boolean" and int(df["stalled"].sum()) == 2  # ssim and psnr rows
    lb = leaderboard_from_store(store, suite="s")
    assert lb.stalled == {"stalled": 1, "flagged": 8, "results": 8}
    board = lb.board("reconstruct", "ssim")
    assert {e.unit: e.stalled for e in board.entries} == {"vgg11": 0, "vgg13": 1} and board.stalled == 1
    assert {e.unit: e.stalled for e in lb.board("reconstruct", "ssim", "pool1").entries} == {"vgg11": 0, "vgg13": 0}
    assert {o.unit: o.stalled for o in lb.overall} == {"vgg11": 0, "vgg13": 1}
    rows = list(csv.DictReader(io.StringIO(render(lb, "csv"))))
    assert {(r["section"], r["layer"], r["unit"], r["metric"]): r["stalled"] for r in rows}[
        ("board", "all", "vgg13", "ssim")] == "1"
    assert {r["unit"]: r["stalled"] for r in rows if r["section"] == "overall"} == {"vgg11": "0", "vgg13": "1"}
    md = render(lb, "md")
    assert "1 of 8 results that recorded the flag" in md and "| rank | architecture | mean rank | tables | stalled |" in md
    assert "mean over layers; 1 stalled results" in md
    data = json.loads(render(lb, "json"))
    assert data["stalled"] == {"stalled": 1, "flagged": 8, "results": 8}
    assert [b["stalled"] for b in data["boards"] if b["layer"] == "all"] == [1, 1]
    tables = _tables(render(lb, "html", store))
    overall = {r[3]: r[-1] for r in tables["overall"]}
    assert overall == {"vgg11": "0", "vgg13": "1"}
    store.close()
