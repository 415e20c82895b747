"""Leaderboard maths against hand-computed values, the text formats, and the HTML in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from archbench.report import build_leaderboard, leaderboard_from_store, render
from archbench.report.stats import bootstrap_ci, holm, mean, rank, std, wilcoxon_p
from archbench.store import ResultStore
from tests.conftest import stored_result

XSS = "<script>alert(1)</script>"


def obs(arch, seed, image, value, layer="pool1", metric="ssim", task="reconstruct", init="gaussian:0.015"):
    return stored_result(arch, seed, image, {metric: value}, layer, task, init)


# ---------------------------------------------------------------------------------------------
# statistics


def test_mean_std_rank_by_hand():
    assert mean([1, 2, 3, 6]) == 3.0
    assert std([1, 2, 3, 6]) == pytest.approx(np.sqrt((4 + 1 + 0 + 9) / 3))
    assert rank([0.2, 0.9, 0.5], higher_is_better=True) == [3.0, 1.0, 2.0]
    assert rank([0.2, 0.9, 0.5], higher_is_better=False) == [1.0, 3.0, 2.0]
    assert rank([1.0, 1.0, 0.0], higher_is_better=True) == [1.5, 1.5, 3.0]


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    # sorted 0.8 -> min(1, 2*0.8) = 1; 0.9 -> max(1, 0.9): capped at 1 and monotone
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([0.02, 0.5]) == pytest.approx([0.04, 0.5])
    assert holm([]) == []


def test_wilcoxon_matches_scipy_and_hand_value():
    # all five differences positive: exact two-sided p = 2 / 2^5
    assert wilcoxon_p([2, 3, 4, 5, 6], [1, 1, 1, 1, 1]) == pytest.approx(0.0625)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=20), rng.normal(0.5, 1, size=20)
    assert wilcoxon_p(x, y) == pytest.approx(wilcoxon(x, y).pvalue)
    assert wilcoxon_p([1, 2], [1, 2]) == 1.0
    assert wilcoxon_p([], []) is None


def test_bootstrap_ci_is_seeded_and_covers_at_the_nominal_rate():
    assert bootstrap_ci([1.0, 2.0, 3.0], seed=1) == bootstrap_ci([1.0, 2.0, 3.0], seed=1)
    assert bootstrap_ci([4.0]) == (4.0, 4.0)
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    # coverage of the true mean of N(0, 1) samples of size 40: percentile bootstrap ~ 0.93-0.95
    rng = np.random.default_rng(0)
    trials, hits = 300, 0
    for i in range(trials):
        lo, hi = bootstrap_ci(rng.normal(size=40), n_boot=1000, seed=i)
        hits += lo <= 0.0 <= hi
    assert 0.89 <= hits / trials <= 0.99


# ---------------------------------------------------------------------------------------------
# leaderboard


def small_board():
    rows = []
    # a: 0.5, 0.6 / 0.7, 0.8 ; b (reference): 0.4, 0.5 / 0.6, 0.7 ; c: 0.1 everywhere; over 2 layers for a
    for (seed, image), va, vb in [((0, "x"), 0.5, 0.4), ((0, "y"), 0.6, 0.5), ((1, "x"), 0.7, 0.6), ((1, "y"), 0.8, 0.7)]:
        rows.append(obs("a", seed, image, va))
        rows.append(obs("a", seed, image, va + 0.2, layer="pool2"))
        rows.append(obs("b", seed, image, vb))
        rows.append(obs("c", seed, image, 0.1))
    rows.append(obs(XSS, 0, "x", 0.3))
    return rows


def test_leaderboard_means_ranks_and_tests_by_hand():
    lb = build_leaderboard(small_board(), reference="b")
    b1 = lb.board("reconstruct", "ssim", "pool1")
    assert [e.unit for e in b1.entries] == ["a", "b", XSS, "c"]
    ea = b1.entries[0]
    assert ea.mean == pytest.approx(0.65) and ea.n == 4 and ea.rank == 1
    assert ea.ci_low <= 0.65 <= ea.ci_high
    # a - b = +0.1 on every pair -> exact two-sided p = 2/16; Holm over (a, c, xss)
    assert ea.p_value == pytest.approx(0.125)
    c = next(e for e in b1.entries if e.unit == "c")
    assert c.p_value == pytest.approx(0.125)
    x = next(e for e in b1.entries if e.unit == XSS)
    assert x.n == 1 and x.p_value == pytest.approx(wilcoxon([0.3], [0.4]).pvalue)
    adj = holm([ea.p_value, x.p_value, c.p_value])
    assert ea.p_holm == pytest.approx(adj[0]) and c.p_holm == pytest.approx(adj[2])
    ref = next(e for e in b1.entries if e.is_reference)
    assert ref.unit == "b" and ref.p_value is None
    # "all" layers: a's value per pair is the mean of pool1 and pool1 + 0.2
    ball = lb.board("reconstruct", "ssim", "all")
    assert ball.entries[0].unit == "a" and ball.entries[0].mean == pytest.approx(0.75)
    # overall: mean rank over the all-layer boards
    assert [o.unit for o in lb.overall] == ["a", "b", XSS, "c"]


def test_lower_is_better_metric_ranks_ascending():
    rows = [obs("a", 0, "x", 2.0, metric="gram", task="texture"), obs("b", 0, "x", 1.0, metric="gram", task="texture")]
    lb = build_leaderboard(rows)
    assert [e.unit for e in lb.board("texture", "gram", "all").entries] == ["b", "a"]


def test_units_with_several_inits_are_named_with_the_init():
    rows = [obs("vgg19", 0, "x", 0.5), obs("vgg19", 0, "x", 0.4, init="pretrained")]
    lb = build_leaderboard(rows, reference="vgg19@pretrained")
    assert set(lb.units.values()) == {"vgg19 @ gaussian:0.015", "vgg19 @ pretrained"}
    assert lb.reference == "vgg19 @ pretrained"


def test_text_formats_escape_and_parse():
    lb = build_leaderboard(small_board(), reference="b")
    rows = list(csv.DictReader(io.StringIO(render(lb, "csv"))))
    assert any(r["unit"] == XSS for r in rows)
    a = next(r for r in rows if r["unit"] == "a" and r["layer"] == "pool1")
    assert float(a["mean"]) == pytest.approx(0.65) and a["rank"] == "1.0"
    data = json.loads(render(lb, "json"))
    assert data["reference"] == "b" and data["boards"] and data["overall"][0]["unit"] == "a"
    md = render(lb, "md")
    assert XSS not in md and "&lt;script&gt;" in md


# ---------------------------------------------------------------------------------------------
# HTML from a real sweep, rendered by headless Chromium


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _chrome_args(exe: str, profile: Path) -> list[str]:
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"]


@pytest.fixture(scope="module")
def swept_store(tmp_path_factory):
    from archbench.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("sweep")
    suite = tmp / "s.toml"
    suite.write_text(
        'name = "html"\nreference = "vgg11"\nseeds = [0, 1]\nimages = ["astronaut", "brick"]\nsize = 32\n'
        'iterations = 5\ndevice = "cpu"\narchs = ["vgg11", "vgg11(pool=max)"]\n'
        '[[task]]\nname = "reconstruct"\noptions = { layers = ["pool1", "pool2"] }\n'
    )
    store = ResultStore(tmp / "r.db")
    summary = run_sweep(suite, store)
    assert summary.done == 8 and summary.failed == 0
    # an architecture with a hostile name, copied from the real runs of vgg11
    for run in store.runs(suite="html"):
        if run.arch == "vgg11":
            outcome = store.outcome(run.key)
            outcome.config = outcome.config.replace(arch=XSS)
            for r in outcome.results:
                r.config = outcome.config
            store.put(outcome, "html")
    return store


@pytest.mark.slow
def test_html_report_is_self_contained_and_escaped(swept_store):
    lb = leaderboard_from_store(swept_store, suite="html")
    page = render(lb, "html", swept_store)
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert page.count("data:image/png;base64,") >= 2 * 2 * 2  # targets and results of two archs
    assert "<svg" in page and "polyline" in page  # loss curves and box plots


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(swept_store, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); cannot render the HTML report")
    out = tmp_path / "report.html"
    from archbench.cli import main

    main(["report", "--store", str(swept_store.path), "--suite", "html", "--format", "html", "--out", str(out)])
    assert out.is_file()
    dom = subprocess.run(_chrome_args(exe, tmp_path / "profile") + ["--dump-dom", out.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    import re

    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-archbench-ready="' in html_tag, dom[:500]
    assert "data-archbench-error" not in html_tag, html_tag  # no script error
    assert 'data-sorted-by="0:asc"' in dom  # the sorting code ran on every table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # shown as text, not executed
    assert dom.count("<img ") >= 8
    shot = tmp_path / "shot.png"
    subprocess.run(_chrome_args(exe, tmp_path / "profile") + [f"--screenshot={shot}", "--window-size=1200,1600", out.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.std() > 10  # not a blank page
