"""Honest selection: architecture families, leave-one-family-out cross-validation of choices made
from the data (against a direct re-implementation), no leakage of the held-out truth, the optimism
it removes, and the one table of `correlate` with proxies, size baselines, stall counts and the
comparator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from archbench.report import build_leaderboard
from archbench.report.correlate import ImagenetTruth, correlate, render_correlation
from archbench.report.families import family
from archbench.report.selection import PROCEDURES, Candidate, select_and_validate
from tests.conftest import stored_result

ACCURACY_26 = {
    "alexnet": ["tv:alexnet"],
    "squeezenet": ["tv:squeezenet1_0", "tv:squeezenet1_1"],
    "shufflenet": ["tv:shufflenet_v2_x0_5", "tv:shufflenet_v2_x1_0"],
    "mnasnet": ["tv:mnasnet0_5", "tv:mnasnet1_0"],
    "mobilenet": ["tv:mobilenet_v3_small", "tv:mobilenet_v3_large", "tv:mobilenet_v2"],
    "googlenet": ["tv:googlenet"],
    "vgg": ["tv:vgg11", "tv:vgg13", "tv:vgg16", "tv:vgg19"],
    "resnet": ["tv:resnet18", "tv:resnet34", "tv:resnet50", "tv:resnext50_32x4d", "tv:wide_resnet50_2"],
    "densenet": ["tv:densenet121", "tv:densenet169"],
    "regnet": ["tv:regnet_x_400mf", "tv:regnet_y_800mf"],
    "efficientnet": ["tv:efficientnet_b0", "tv:efficientnet_v2_s"],
}


def test_families_of_the_accuracy_suite_and_other_names():
    from archbench.sweep.suite import load_suite
    from tests.conftest import ROOT

    specs = [a.spec for a in load_suite(ROOT / "benchmarks" / "suites" / "accuracy_cpu.toml").archs]
    assert sorted(specs) == sorted(s for members in ACCURACY_26.values() for s in members)
    for fam, members in ACCURACY_26.items():
        assert {family(s) for s in members} == {fam}
    assert family("vgg19(act=elu,down=stride)") == "vgg" and family("resnet18") == "resnet"
    assert family("timm:resnet50d") == "resnet" and family("tv:inception_v3") == "googlenet"
    assert family("timm:ghostnet_100") == "ghostnet" and family("nets.py:make") == "make"
    assert family("champandard2016") == "champandard2016" and family("tv:convnext_tiny") == "convnext"


def _reference_cv(x: dict[str, np.ndarray], pools: dict[str, str], y: np.ndarray, fams: list[str]):
    """Leave-one-family-out of 'best single score' and 'visualisation + proxy' written out
    directly: scipy's spearmanr, one candidate at a time."""
    names = [n for n in x if pools[n] == "V"] + [n for n in x if pools[n] == "P"]
    ranks = {n: rankdata(x[n]) for n in names}
    pairs = {f"{v}+{p}": (ranks[v] + ranks[p]) / 2 for v in names if pools[v] == "V" for p in names if pools[p] == "P"}
    preds = {"best single score": np.zeros(len(y)), "visualisation + proxy": np.zeros(len(y))}
    for f in sorted(set(fams)):
        test = np.array([g == f for g in fams])
        for proc, cands in (("best single score", ranks), ("visualisation + proxy", pairs)):
            best, best_rho = None, -np.inf
            for name, pred in cands.items():
                rho = spearmanr(pred[~test], y[~test]).statistic
                if rho > best_rho:
                    best, best_rho = name, rho
            preds[proc][test] = cands[best][test]
    return {proc: spearmanr(p, y).statistic for proc, p in preds.items()}


def test_cross_validation_equals_a_direct_implementation():
    rng = np.random.default_rng(3)
    fams = ["a", "b", "b", "c", "c", "c", "d", "d", "e", "e", "e", "e"]
    y = rng.normal(size=len(fams))
    x = {"v1": y + rng.normal(size=12), "v2": -y + 2 * rng.normal(size=12), "v3": rng.normal(size=12),
         "p1": y + 1.5 * rng.normal(size=12), "p2": rng.normal(size=12)}
    pools = {"v1": "V", "v2": "V", "v3": "V", "p1": "P", "p2": "P"}
    rows = {r.procedure: r for r in select_and_validate(
        [Candidate(n, pools[n], v) for n, v in x.items()], y, fams, comparator="p1", n_boot=200)}
    expected = _reference_cv(x, pools, y, fams)
    for proc, rho in expected.items():
        assert rows[proc].cv == pytest.approx(rho)
    assert [r for r in rows] == [p.name for p in PROCEDURES]
    assert rows["best single score"].candidates == 5 and rows["visualisation + proxy"].candidates == 6
    assert rows["any"].candidates == 11
    # in-sample: the pick on all the data, and its rho
    best = max(x, key=lambda n: spearmanr(x[n], y).statistic)
    assert rows["best single score"].chosen == best
    assert rows["best single score"].in_sample == pytest.approx(spearmanr(x[best], y).statistic)
    # every fold's pick is listed; the comparator's rho and the paired difference
    assert sum(len(f) for f in rows["any"].fold_choices.values()) == 5
    assert rows["any"].comparator_spearman == pytest.approx(spearmanr(x["p1"], y).statistic)
    assert rows["any"].minus_comparator == pytest.approx(rows["any"].cv - rows["any"].comparator_spearman)
    for r in rows.values():
        assert r.cv_ci_low <= r.cv_ci_high and r.minus_comparator_ci_low <= r.minus_comparator_ci_high


def test_a_fixed_score_is_not_changed_by_cross_validation():
    rng = np.random.default_rng(0)
    fams = [f for f, k in zip("abcdefg", (1, 2, 3, 4, 2, 1, 3), strict=True) for _ in range(k)]
    y = rng.normal(size=len(fams))
    v = y + rng.normal(size=len(fams))
    (row,) = [r for r in select_and_validate([Candidate("v", "V", v)], y, fams, n_boot=100)
              if r.procedure == "best visualisation score"]
    assert row.cv == pytest.approx(spearmanr(v, y).statistic) == pytest.approx(row.in_sample)
    assert row.fold_choices == {"v": sorted(set(fams))}


def test_the_held_out_familys_truth_never_reaches_its_prediction():
    """Rewriting the truth of one family changes nothing of what its fold picks."""
    rng = np.random.default_rng(1)
    fams = ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3
    y = rng.normal(size=12)
    cands = [Candidate(f"v{k}", "V", y * (k % 3) + rng.normal(size=12)) for k in range(6)]
    cands += [Candidate(f"p{k}", "P", y * (k % 2) + rng.normal(size=12)) for k in range(4)]
    y2 = y.copy()
    y2[:3] = -10 * y[:3]  # family a, upside down
    for before, after in zip(select_and_validate(cands, y, fams, n_boot=0),
                             select_and_validate(cands, y2, fams, n_boot=0), strict=True):
        pick = {f: label for label, fs in before.fold_choices.items() for f in fs}
        pick2 = {f: label for label, fs in after.fold_choices.items() for f in fs}
        assert pick["a"] == pick2["a"], before.procedure


def test_picking_the_best_of_many_noisy_scores_is_optimistic_in_sample_and_not_after_cross_validation():
    rng = np.random.default_rng(7)
    fams = [f for f, k in zip("abcdefghijk", (1, 2, 2, 2, 3, 1, 4, 5, 2, 2, 2), strict=True) for _ in range(k)]
    y = rng.normal(size=26)
    noise = [Candidate(f"v{k}", "V", rng.normal(size=26)) for k in range(40)]
    (row,) = [r for r in select_and_validate(noise, y, fams, n_boot=100) if r.procedure == "best visualisation score"]
    assert row.in_sample > 0.45  # the best of 40 unrelated scores looks good on the data that chose it
    assert row.cv < 0.2 and row.cv_ci_low < 0 < row.cv_ci_high  # and predicts nothing out of sample


# ---------------------------------------------------------------------------------------------
# correlate: one table and the selection


def _store_rows():
    truth = ImagenetTruth()
    rows = []
    rng = np.random.default_rng(5)
    archs = [s for members in ACCURACY_26.values() for s in members][:14]
    for arch in archs:
        acc = truth.lookup(arch).value
        for init in ("kaiming", "native"):
            if init == "kaiming":
                for layer, noise in (("l2", 8.0), ("l3", 3.0)):
                    for image in ("x", "y"):
                        r = stored_result(arch, 0, image, {"ssim": acc / 100 + rng.normal(0, noise / 100)}, layer,
                                          "reconstruct", init)
                        r.stalled = arch == "tv:vgg11" and layer == "l2" and image == "x"
                        rows.append(r)
            metrics = {"naswot": acc + rng.normal(0, 4), "synflow": rng.normal()}
            rows.append(stored_result(arch, 0, "noise", metrics, "network", "proxies", init))
    return rows


def test_correlate_puts_scores_proxies_and_sizes_in_one_table_and_cross_validates_the_choices():
    lb = build_leaderboard(_store_rows())
    c = correlate(lb, ImagenetTruth(), cv_boot=100)
    kinds = {r.label: r.kind for r in c.rows}
    assert kinds["reconstruct/ssim@kaiming"] == "visualisation" and kinds["proxies/naswot@native"] == "proxy"
    assert kinds["torchvision/params"] == kinds["torchvision/GFLOPs"] == "size" and kinds["overall/rank@kaiming"] == "overall"
    assert c.comparator == "proxies/naswot@native"
    ssim = c.row("reconstruct", "ssim", "kaiming")
    assert ssim.stalled == 1 and c.row("proxies", "naswot", "native").stalled is None
    # the best baseline: the proxy or size row with the highest rho over the same architectures
    baselines = {r.label: r.spearman for r in c.rows if r.kind in ("proxy", "size")}
    assert ssim.best_baseline == max(baselines, key=baselines.get)
    assert ssim.minus_best == pytest.approx(ssim.spearman - baselines[ssim.best_baseline])
    assert ssim.minus_best_ci_low <= ssim.minus_best <= ssim.minus_best_ci_high
    naswot = c.row("proxies", "naswot", "native")
    assert naswot.minus_comparator is None  # not against itself
    assert ssim.minus_comparator == pytest.approx(ssim.spearman - naswot.spearman)
    # the size rows' p is not Holm-corrected with the scores
    assert all(r.p_holm is None for r in c.rows if r.kind == "size")
    # the selection: pools V (1 visualisation row) and P (4 proxy rows + 2 size rows)
    sel = {s.procedure: s for s in c.selection}
    assert sel["best visualisation score"].candidates == 1 and sel["best baseline"].candidates == 6
    assert sel["visualisation + proxy"].candidates == 6 and sel["any"].candidates == 13
    assert sel["best visualisation score"].cv == pytest.approx(ssim.spearman)  # nothing to choose
    assert set(c.families.values()) == {"alexnet", "squeezenet", "shufflenet", "mnasnet", "mobilenet", "googlenet", "vgg"}
    md = render_correlation(c, "md")
    assert "## Chosen from the data: leave-one-family-out cross-validation" in md
    assert "| visualisation | reconstruct | ssim | all | kaiming | 14 | 1 |" in md
    csv_text = render_correlation(c, "csv")
    assert "\n\nprocedure,candidates,n,families,chosen," in csv_text
    import json

    data = json.loads(render_correlation(c, "json"))
    assert [s["procedure"] for s in data["selection"]] == [p.name for p in PROCEDURES]
    assert data["comparator"] == "proxies/naswot@native" and len(data["families"]) == 14


def test_correlate_command_levels_and_comparator_options(tmp_path, capsys):
    from archbench.cli import main

    def run(*args):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code or 0
        return code, capsys.readouterr()

    code, out = run("correlate", "--store", str(tmp_path / "none.db"), "--levels", "2,x")
    assert code == 2 and "--levels must be stride levels" in out.err
    code, out = run("correlate", "--store", str(tmp_path / "none.db"), "--levels", "2", "--level", "3")
    assert code == 2 and "not both" in out.err
