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
    # CSV: same rows; numbers equal to 1e-9 relative
    old = list(csv.reader(io.StringIO((EXPECTED / "report.csv").read_text())))
    new = list(csv.reader(io.StringIO(reports["csv"])))
    assert len(old) == len(new) and old[0] == new[0]
    for a, b in zip(old, new, strict=True):
        assert all(_same_cells(x, y) for x, y in zip(a, b, strict=True)), (a, b)
    # Markdown: identical but for the generation time (every number is printed to 3-4 digits)
    assert _without_generated(reports["md"]) == _without_generated((EXPECTED / "report.md").read_text())
    # JSON: the same boards, entries and overall ranks
    old_j, new_j = json.loads((EXPECTED / "report.json").read_text()), json.loads(reports["json"])
    for k in ("title", "suite", "reference", "devices", "failures", "versions"):
        assert old_j[k] == new_j[k], k
    assert {k: new_j["jobs"][k] for k in old_j["jobs"]} == old_j["jobs"]  # (the count of jobs not run is new)
    assert _close(old_j["boards"], new_j["boards"]) and _close(old_j["overall"], new_j["overall"])
    # HTML: every table cell (text and sort key) as before
    old_t, new_t = _tables((EXPECTED / "report.html").read_text()), _tables(reports["html"])
    assert set(old_t) == set(new_t) and len(old_t) == 1 + 9  # overall + 9 boards
    for tid in old_t:
        assert len(old_t[tid]) == len(new_t[tid])
        for ra, rb in zip(old_t[tid], new_t[tid], strict=True):
            assert all(_same_cells(x, y) for x, y in zip(ra, rb, strict=True)), (tid, ra, rb)


def test_ci_correlation_is_unchanged_in_content(ci_db, tmp_path):
    for fmt in ("md", "csv", "json", "points"):
        out = tmp_path / f"c.{fmt}"
        r = run_cli("correlate", "--store", str(ci_db), "--suite", "ci", "--format", fmt, "--out", str(out))
        assert r.returncode == 0, r.stderr
        old, new = (EXPECTED / f"correlate.{fmt}").read_text(), out.read_text()
        if fmt == "json":
            assert _close(json.loads(old), json.loads(new))
        elif fmt == "md":  # the one Markdown escaper now escapes underscores too: same rendered text
            assert _unescape_md(new) == old
        else:
            assert new == old
    out = tmp_path / "t.md"
    r = run_cli("report", "--store", str(ci_db), "--suite", "ci", "--truth", "imagenet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert _without_generated(_unescape_md(out.read_text())) == _without_generated(
        _unescape_md((EXPECTED / "report-truth.md").read_text()))


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
    builtin_modules = {"ssim", "gram", "maximize", "lpips", "texture"}
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
