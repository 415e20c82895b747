"""Correlating scores with trained accuracy: matching, the published values, the statistics against
hand values and scipy, and the command end to end on a real tiny sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from archbench.errors import ConfigError
from archbench.report import build_leaderboard
from archbench.report.correlate import (
    CsvTruth,
    ImagenetTruth,
    TruthValue,
    bootstrap_rho,
    correlate,
    load_truth,
    permutation_p,
    render_correlation,
    spearman,
    trained_counterpart,
)
from archbench.store import ResultStore
from tests.conftest import run_cli, stored_result


def obs(arch, seed, image, value, metric="ssim", task="reconstruct", init="kaiming", layer="pool1"):
    return stored_result(arch, seed, image, {metric: value}, layer, task, init)


# ---------------------------------------------------------------------------------------------
# matching and the published values


@pytest.mark.parametrize(
    ("spec", "name", "match"),
    [
        ("tv:resnet18", "resnet18", "exact"),
        ("tv:resnet18(weights=IMAGENET1K_V1)", "resnet18", "exact"),
        ("tv:resnet18(act=elu)", None, "none"),
        ("resnet50", "resnet50", "exact"),
        ("alexnet", "alexnet", "exact"),
        ("alexnet(fc=true)", "alexnet", "exact"),
        ("alexnet(pool=avg)", None, "none"),
        ("vgg19", "vgg19", "approximate"),
        ("vgg19(down=max)", "vgg19", "exact"),
        ("vgg16(pool=max,fc=true)", "vgg16", "exact"),
        ("vgg19(width=0.5)", None, "none"),
        ("vgg19(down=stride)", None, "none"),
        ("vgg19(act=elu,down=max)", None, "none"),
        ("champandard2016", None, "none"),
        ("timm:resnet18", None, "none"),
        ("nets.py:make", None, "none"),
    ],
)
def test_trained_counterparts(spec, name, match):
    cp = trained_counterpart(spec)
    assert (cp.name, cp.match) == (name, match)
    if match != "exact":
        assert cp.note  # every non-exact match says why


def test_imagenet_truth_reads_torchvision_metadata():
    v1, best = ImagenetTruth("v1"), ImagenetTruth("best")
    r50 = v1.lookup("tv:resnet50")
    assert isinstance(r50, TruthValue)
    assert r50.value == pytest.approx(76.13) and r50.source == "ResNet50_Weights.IMAGENET1K_V1"
    assert r50.params == 25557032 and r50.gflops == pytest.approx(4.089)
    assert best.lookup("resnet50").value == pytest.approx(80.858)  # the V2 recipe
    vgg = v1.lookup("vgg19")
    assert vgg.value == pytest.approx(72.376) and vgg.match == "approximate"
    assert "a variant of VGG" in v1.lookup("vgg19(width=2)")
    assert v1.lookup("tv:googlenet(aux_logits=false)") == "options aux_logits change the trained architecture"
    assert v1.lookup("tv:nosuchnet") == "torchvision publishes no weights for 'nosuchnet'"


def test_csv_truth_and_its_errors(tmp_path):
    good = tmp_path / "t.csv"
    good.write_text("arch,value\nvgg19,1.5\n tv:resnet18 , 2\n")
    t = load_truth(str(good))
    assert isinstance(t, CsvTruth)
    assert t.lookup("tv:resnet18").value == 2.0 and t.lookup("vgg19").value == 1.5
    assert t.lookup("alexnet") == "not in t.csv"
    cases = {
        "arch,score\nvgg19,1\n": "must name the columns 'arch' and 'value'",
        "arch,value\nvgg19,high\n": "t.csv:2: value 'high' for 'vgg19' is not a finite number",
        "arch,value\nvgg19,1\nvgg19,2\n": "t.csv:3: 'vgg19' appears twice",
        "arch,value\n": "no rows",
        "arch,value\nvgg19,nan\n": "not a finite number",
    }
    for text, message in cases.items():
        good.write_text(text)
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            CsvTruth(good)
    with pytest.raises(ConfigError, match="does not exist"):
        load_truth(str(tmp_path / "missing.csv"))
    with pytest.raises(ConfigError, match="did you mean 'imagenet'"):
        load_truth("imagnet")


# ---------------------------------------------------------------------------------------------
# statistics


def test_spearman_and_permutation_p_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    # perfect order: only the identity and the reversal reach |rho| = 1 -> p = 2/4! = 1/12
    assert spearman(x, x * 10) == pytest.approx(1.0)
    assert permutation_p(x, x * 10) == pytest.approx(2 / 24)
    assert spearman(x, -x) == pytest.approx(-1.0) and permutation_p(x, -x) == pytest.approx(2 / 24)
    # ties use average ranks, as scipy
    y = np.array([3.0, 1.0, 1.0, 7.0])
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    # undefined: constant side, fewer than three
    assert spearman(x, np.ones(4)) is None and permutation_p(x, np.ones(4)) is None
    assert spearman(x[:2], x[:2]) is None


def test_permutation_p_agrees_with_the_exact_distribution_and_scipy():
    rng = np.random.default_rng(1)
    # n <= 8: every ordering, so equal to scipy's exact permutation test (7 to keep it quick)
    from scipy.stats import permutation_test

    x, y = rng.normal(size=7), rng.normal(size=7)
    y = y + 0.8 * x
    ref = permutation_test((y,), lambda b: spearmanr(x, b).statistic, permutation_type="pairings",
                           n_resamples=math.inf, vectorized=False).pvalue
    assert permutation_p(x, y) == pytest.approx(ref, abs=1e-9)
    # n = 30: random permutations, close to the t approximation
    x, y = rng.normal(size=30), rng.normal(size=30)
    y = y + 0.4 * x
    assert abs(permutation_p(x, y) - spearmanr(x, y).pvalue) < 0.02
    assert permutation_p(x, y, seed=3) == permutation_p(x, y, seed=3)


def test_bootstrap_interval_is_seeded_and_contains_rho():
    rng = np.random.default_rng(2)
    x = rng.normal(size=15)
    y = x + rng.normal(size=15)
    rho = spearman(x, y)
    lo, hi = bootstrap_rho(x, y, seed=5)
    assert lo < rho < hi and -1 <= lo and hi <= 1
    assert bootstrap_rho(x, y, seed=5) == (lo, hi)
    # a stronger relation gives a narrower interval
    lo2, hi2 = bootstrap_rho(x, x + 0.1 * rng.normal(size=15), seed=5)
    assert hi2 - lo2 < hi - lo


# ---------------------------------------------------------------------------------------------
# correlating a leaderboard


def _truth_file(tmp_path, values):
    path = tmp_path / "truth.csv"
    path.write_text("arch,value\n" + "".join(f"{a},{v}\n" for a, v in values.items()))
    return CsvTruth(path)


def test_correlate_orients_scores_and_lists_what_it_leaves_out(tmp_path):
    truth = _truth_file(tmp_path, {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    rows = []
    for arch, ssim, gram in [("a", 0.1, 0.9), ("b", 0.3, 0.7), ("c", 0.2, 0.5), ("d", 0.6, 0.3), ("e", 0.9, 0.1),
                             ("stranger", 0.5, 0.5)]:
        for seed in (0, 1):
            rows.append(obs(arch, seed, "x", ssim + 0.01 * seed))
            rows.append(obs(arch, seed, "x", gram, metric="gram", task="texture"))
    lb = build_leaderboard(rows)
    c = correlate(lb, truth)
    ssim = c.row("reconstruct", "ssim")
    assert ssim.n == 5 and ssim.higher_is_better
    assert ssim.spearman == pytest.approx(spearmanr([0.105, 0.305, 0.205, 0.605, 0.905], [1, 2, 3, 4, 5]).statistic)
    assert ssim.kendall == pytest.approx(kendalltau([0.105, 0.305, 0.205, 0.605, 0.905], [1, 2, 3, 4, 5]).statistic)
    # gram is lower-is-better: falling distance with rising truth is a perfect positive relation
    gram = c.row("texture", "gram")
    assert not gram.higher_is_better and gram.spearman == pytest.approx(1.0)
    assert gram.p_value == pytest.approx(2 / 120)
    overall = c.row("overall", "rank")
    assert overall is not None and overall.n == 5 and overall.spearman > 0.8
    assert c.unmatched == {"stranger": "not in truth.csv"}
    assert [p.unit for p in gram.points] == ["e", "d", "c", "b", "a"]  # sorted by truth, best first
    assert gram.params_spearman is None  # a CSV truth has no model sizes
    # Holm over the three rows
    from archbench.report.stats import holm

    assert [r.p_holm for r in c.rows] == pytest.approx(holm([r.p_value for r in c.rows]))
    md = render_correlation(c, "md")
    assert "| reconstruct | ssim | all | kaiming | 5 |" in md and "stranger" in md
    data = json.loads(render_correlation(c, "json"))
    assert data["format"] == "archbench-correlation/1" and len(data["rows"]) == 3


def test_correlate_per_init_and_exact_only():
    rows = []
    specs = {"vgg11": 0.2, "vgg19(down=max)": 0.5, "tv:alexnet": 0.1, "resnet18": 0.4, "vgg16": 0.45}
    for spec, v in specs.items():
        rows.append(obs(spec, 0, "x", v))
        rows.append(obs(spec, 0, "x", v / 2, init="gaussian:0.015"))
    lb = build_leaderboard(rows)
    c = correlate(lb, ImagenetTruth())
    inits = {r.init for r in c.rows if r.task == "reconstruct"}
    assert inits == {"kaiming", "gaussian:0.015"}
    row = c.row("reconstruct", "ssim", "kaiming")
    assert row.n == 5 and row.n_approximate == 2
    # baselines: the truth against the trained models' parameter counts, same five models
    truth = {"vgg11": 69.02, "vgg19": 72.376, "alexnet": 56.522, "resnet18": 69.758, "vgg16": 71.592}
    params = {"vgg11": 132863336, "vgg19": 143667240, "alexnet": 61100840, "resnet18": 11689512, "vgg16": 138357544}
    names = list(truth)
    assert row.params_spearman == pytest.approx(spearmanr([params[n] for n in names], [truth[n] for n in names]).statistic)
    assert row.minus_gflops == pytest.approx(row.spearman - row.gflops_spearman)
    assert row.minus_gflops_ci_low <= row.minus_gflops <= row.minus_gflops_ci_high
    exact = correlate(lb, ImagenetTruth(), exact_only=True)
    row = exact.row("reconstruct", "ssim", "kaiming")
    assert row.n == 3 and row.n_approximate == 0
    assert "dropped by exact_only" in exact.unmatched["vgg11 @ kaiming"]


def test_level_scores_each_architecture_at_equal_depth():
    # per-layer results; the level of each layer comes from the architecture's taps
    rows = []
    layer_values = {
        "vgg11": {"pool1": 0.9, "pool2": 0.3, "pool3": 0.1},  # pool2: level 2
        "resnet18": {"stem": 1.0, "layer1": 0.2, "layer2": 0.05},  # layer1: level 2 (after the max pool)
        "alexnet": {"conv1": 0.4, "pool1": 0.25, "pool2": 0.02},  # conv1: level 2 (stride 4)
        "tv:mobilenet_v2": {"features.1": 0.3, "features.3": 0.1},  # features.3: level 2
    }
    for arch, values in layer_values.items():
        for layer, v in values.items():
            rows.append(obs(arch, 0, "x", v, layer=layer))
    lb = build_leaderboard(rows)
    c = correlate(lb, ImagenetTruth(), level=2)
    row = c.row("reconstruct", "ssim")
    assert row.layer == "level 2" and row.n == 4
    picked = {p.arch: p.score for p in row.points}
    assert picked == {"vgg11": 0.3, "resnet18": 0.2, "alexnet": 0.4, "tv:mobilenet_v2": 0.1}
    assert {p.arch: p.note for p in row.points}["resnet18"] == "layer layer1"
    truth = [69.02, 69.758, 56.522, 71.878]
    assert row.spearman == pytest.approx(spearmanr([0.3, 0.2, 0.4, 0.1], truth).statistic)
    # the width baseline: channels of the taps scored (pool2 128, layer1 64, conv1 64, features.3 24)
    assert row.channels_spearman == pytest.approx(spearmanr([128, 64, 64, 24], truth).statistic)
    # the all-layer row of the same data differs: mean over each architecture's own layers
    assert correlate(lb, ImagenetTruth()).row("reconstruct", "ssim").layer == "all"
    # levels: the all-layer row and one row per level, candidates of the selection where they cover
    # the same architectures (tv:mobilenet_v2 has no stored level-3 layer)
    both = correlate(lb, ImagenetTruth(), levels=[2, 3], cv_boot=0)
    assert [(r.layer, r.n) for r in both.rows if r.kind == "visualisation"] == [("all", 4), ("level 2", 4), ("level 3", 3)]
    assert both.row("reconstruct", "ssim").layer == "all" and both.selection[0].candidates == 2
    assert list(both.cv_left_out) == ["reconstruct/ssim/level 3@kaiming"]
    assert "tv:mobilenet_v2" in both.cv_left_out["reconstruct/ssim/level 3@kaiming"]
    # texture layer sets count at the level of their last tap
    sets = [obs("vgg11", 0, "x", 0.5, metric="gram", task="texture", layer="conv1_1"),
            obs("vgg11", 0, "x", 0.4, metric="gram", task="texture", layer="conv1_1..conv2_1"),
            obs("vgg11", 0, "x", 0.3, metric="gram", task="texture", layer="conv1_1..conv3_1"),
            obs("resnet18", 0, "x", 0.6, metric="gram", task="texture", layer="stem"),
            obs("resnet18", 0, "x", 0.2, metric="gram", task="texture", layer="stem..layer1")]
    row = correlate(build_leaderboard(sets), ImagenetTruth(), level=2).row("texture", "gram")
    assert {p.arch: p.score for p in row.points} == {"vgg11": 0.3, "resnet18": 0.2}
    # a level no architecture reaches gives no task row (only the overall rank and the size baselines)
    assert [r.kind for r in correlate(lb, ImagenetTruth(), level=9).rows] == ["overall", "size", "size"]


def test_rows_with_too_few_architectures_have_no_statistics():
    lb = build_leaderboard([obs("tv:resnet18", 0, "x", 0.3), obs("tv:alexnet", 0, "x", 0.1)])
    row = correlate(lb, ImagenetTruth()).row("reconstruct", "ssim")
    assert row.n == 2 and row.spearman is None and row.p_value is None and row.ci_low is None
    assert "fewer than 3" in render_correlation(correlate(lb, ImagenetTruth()), "md")


# ---------------------------------------------------------------------------------------------
# the command


@pytest.fixture(scope="module")
def zoo_store(tmp_path_factory):
    from archbench.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("zoo")
    suite = tmp / "zoo.toml"
    suite.write_text(
        'name = "tinyzoo"\nseeds = [0]\ninits = ["kaiming"]\nimages = ["astronaut"]\nsize = 32\niterations = 3\n'
        'device = "cpu"\narchs = ["tv:squeezenet1_1", "tv:shufflenet_v2_x0_5", "tv:mobilenet_v3_small", "vgg11", '
        '"champandard2016"]\n[[task]]\nname = "reconstruct"\n'
    )
    path = tmp / "r.db"
    with ResultStore(path) as store:
        summary = run_sweep(suite, store)
    assert summary.done == 5 and summary.failed == 0
    return path


def _main(capsys, *args):
    """Run ``archbench ARGS`` in this process: (exit code, stdout, stderr)."""
    from archbench.cli import main

    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_correlate_command_on_a_real_sweep(zoo_store, tmp_path, capsys):
    from archbench.report import leaderboard_from_store

    code, stdout, _ = _main(capsys, "correlate", "--store", str(zoo_store), "--format", "json")
    assert code == 0
    data = json.loads(stdout)
    row = next(r for r in data["rows"] if (r["task"], r["metric"]) == ("reconstruct", "ssim"))
    assert row["n"] == 4 and row["n_approximate"] == 1
    assert "champandard2016" in data["unmatched"]
    # the rho it prints is the rho of the stored means against torchvision's published top-1
    with ResultStore(zoo_store) as db:
        board = leaderboard_from_store(db).board("reconstruct", "ssim")
    means = {e.arch: e.mean for e in board.entries}
    acc = {"tv:squeezenet1_1": 58.178, "tv:shufflenet_v2_x0_5": 60.552, "tv:mobilenet_v3_small": 67.668,
           "vgg11": 69.02}
    expected = spearmanr([means[a] for a in acc], list(acc.values())).statistic
    assert row["spearman"] == pytest.approx(expected)
    # the terminal table (console script, in a subprocess) and a markdown file
    res = run_cli("correlate", "--store", str(zoo_store))
    assert res.returncode == 0 and "rho" in res.stdout and "champandard2016" in res.stdout, res.stderr
    out = tmp_path / "c.md"
    code, _, _ = _main(capsys, "correlate", "--store", str(zoo_store), "--exact-only", "-o", str(out))
    assert code == 0 and "| reconstruct | ssim | all | kaiming | 3 |" in out.read_text()


@pytest.mark.slow
def test_correlate_command_errors(zoo_store, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,acc\nvgg11,1\n")
    res = run_cli("correlate", "--store", str(zoo_store), "--truth", str(bad))
    assert res.returncode == 2 and "must name the columns 'arch' and 'value'" in res.stderr
    unrelated = tmp_path / "u.csv"
    unrelated.write_text("arch,value\nsomething_else,1\n")
    for args, message in [
        (["--truth", "imagenett"], "did you mean 'imagenet'"),
        (["--format", "xml"], "unknown --format 'xml'"),
        (["--suite", "nope"], "suite 'nope' has no jobs"),
        (["--truth", str(unrelated)], "has a u.csv value"),
    ]:
        code, _, err = _main(capsys, "correlate", "--store", str(zoo_store), *args)
        assert code == 2 and message in err, (args, err)
    code, _, err = _main(capsys, "correlate", "--store", str(zoo_store), "--level", "9")
    assert code == 2 and "no stored layer is at stride level 9" in err
    code, _, err = _main(capsys, "correlate", "--store", str(tmp_path / "none.db"))
    assert code == 2 and "does not exist" in err


@pytest.mark.slow
def test_report_with_truth_adds_the_section(zoo_store, tmp_path, capsys):
    page = tmp_path / "r.html"
    code, _, _ = _main(capsys, "report", "--store", str(zoo_store), "--truth", "imagenet", "-f", "html", "-o", str(page))
    assert code == 0
    html = page.read_text()
    assert "Does the score predict imagenet?" in html and 'id="correlation"' in html
    assert html.count("ImageNet-1k top-1 (%)") >= 3  # one scatter plot per row (ssim, psnr, overall)
    assert "tv:squeezenet1_1" in html and "champandard2016 (no published accuracy" in html
    code, stdout, _ = _main(capsys, "report", "--store", str(zoo_store), "--truth", "imagenet", "-f", "json")
    data = json.loads(stdout)
    assert data["format"] == "archbench-leaderboard/1" and data["correlation"]["truth"] == "imagenet"
    code, stdout, _ = _main(capsys, "report", "--store", str(zoo_store), "--truth", "imagenet")
    assert code == 0 and "\n## Does the score predict imagenet?" in stdout and "\n### reconstruct / ssim (kaiming)" in stdout
    code, stdout, _ = _main(capsys, "correlate", "--store", str(zoo_store), "--level", "3", "-f", "csv")
    assert code == 0 and ",level 3,kaiming,4," in stdout
    code, stdout, _ = _main(capsys, "report", "--store", str(zoo_store), "--truth", "imagenet", "--truth-level", "2")
    assert code == 0 and "### reconstruct / ssim at level 2 (kaiming)" in stdout
    code, _, err = _main(capsys, "report", "--store", str(zoo_store), "--truth", "imagenet", "-f", "csv")
    assert code == 2 and "archbench correlate --format csv" in err
    # without --truth the report has no such section
    code, stdout, _ = _main(capsys, "report", "--store", str(zoo_store))
    assert code == 0 and "Does the score predict" not in stdout


def test_accuracy_suites_match_every_architecture_exactly():
    from archbench.sweep.suite import load_suite
    from tests.conftest import ROOT

    gpu = load_suite("accuracy")
    cpu = load_suite(ROOT / "benchmarks" / "suites" / "accuracy_cpu.toml")
    specs = [a.spec for a in gpu.archs]
    assert specs == [a.spec for a in cpu.archs] and len(specs) == 26
    truth = ImagenetTruth()
    values = {}
    for spec in specs:
        found = truth.lookup(spec)
        assert isinstance(found, TruthValue) and found.match == "exact", (spec, found)
        values[spec] = found.value
    assert min(values.values()) == pytest.approx(56.522) and max(values.values()) == pytest.approx(84.228)


def test_difference_to_a_baseline_is_paired():
    from archbench.report.correlate import bootstrap_rho_difference

    rng = np.random.default_rng(4)
    y = rng.normal(size=25)
    good = y + 0.2 * rng.normal(size=25)  # tracks y closely
    weak = y + 2.0 * rng.normal(size=25)  # barely
    d, lo, hi = bootstrap_rho_difference(good, weak, y, seed=1)
    assert d == pytest.approx(spearman(good, y) - spearman(weak, y))
    assert 0 < lo < d < hi  # the better score is significantly better
    d2, lo2, hi2 = bootstrap_rho_difference(good, good + 1e-9 * rng.normal(size=25), y, seed=1)
    assert abs(d2) < 0.05 and lo2 <= 0 <= hi2  # no difference against (almost) itself
    assert bootstrap_rho_difference(good, np.ones(25), y) == (None, None, None)
