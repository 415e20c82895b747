"""Claims declared in suites: parsed with file and line, tested with paired statistics, verdicts in
every report format and gating in `archbench check`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from archbench.claims import Arm, Claim
from archbench.report.claims import evaluate_claims, iterations_to, paired_test
from archbench.sweep import load_suite
from tests.conftest import run_cli, stored_result

SUITE = """\
name = "claimtiny"
reference = "vgg11"
seeds = [0, 1, 2, 3]
images = ["astronaut", "chelsea"]
size = 32
iterations = 6
device = "cpu"
archs = ["vgg11"]

[[task]]
name = "reconstruct"
options = {{ layers = ["pool1", "pool2"] }}

[[claim]]
id = "shallow-beats-deep"
text = "A reconstruction from pool1 resembles its target more than one from pool2"
source = "He et al. 2016"
task = "reconstruct"
metric = "ssim"
better = {{ unit = "vgg11", layer = "pool1" }}
than = {{ unit = "vgg11", layer = "pool2" }}

[[claim]]
id = "deep-beats-shallow"
text = "The reverse (false by construction)"
task = "reconstruct"
metric = "ssim"
better = {{ unit = "vgg11", layer = "pool2" }}
than = {{ unit = "vgg11", layer = "pool1" }}
{extra}"""


def write_suite(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "claimtiny.toml"
    path.write_text(SUITE.format(extra=extra))
    return path


@pytest.mark.slow  # 17-30 s on idle cores: with --run-slow (CI runs it), to keep the default run under 6 min
def test_claims_that_hold_and_fail_by_construction_in_every_report_format(tmp_path):
    suite = write_suite(tmp_path)
    store = tmp_path / "r.db"
    assert run_cli("sweep", str(suite), "--store", str(store)).returncode == 0
    md = run_cli("report", "--store", str(store), "--suite", "claimtiny", "--format", "md")
    assert md.returncode == 0, md.stderr
    assert "## Claims" in md.stdout and "supported when its Holm-corrected" in md.stdout
    assert "**shallow-beats-deep**" in md.stdout and "→ **supported**" in md.stdout
    assert "**deep-beats-shallow**" in md.stdout and "→ **contradicted**" in md.stdout
    js = json.loads(run_cli("report", "--store", str(store), "--suite", "claimtiny", "--format", "json").stdout)
    claims = {c["id"]: c for c in js["claims"]}
    assert claims["shallow-beats-deep"]["verdict"] == "supported" and claims["deep-beats-shallow"]["verdict"] == "contradicted"
    pair = claims["shallow-beats-deep"]["pairs"][0]
    assert pair["n"] == 8 and pair["diff"] > 0 and pair["ci"][0] > 0 and pair["p_holm"] < 0.05 and pair["effect"] > 0
    assert claims["deep-beats-shallow"]["pairs"][0]["diff"] == pytest.approx(-pair["diff"])
    text = run_cli("report", "--store", str(store), "--suite", "claimtiny", "--format", "csv").stdout
    rows = [r for r in csv.reader(io.StringIO(text)) if r and r[0] == "claim"]
    assert {(r[1], r[4]) for r in rows} == {("shallow-beats-deep", "supported"), ("deep-beats-shallow", "contradicted")}
    out = tmp_path / "r.html"
    assert run_cli("report", "--store", str(store), "--suite", "claimtiny", "--format", "html", "--out", str(out)).returncode == 0
    page = out.read_text()
    assert 'id="claims"' in page and "shallow-beats-deep" in page and "contradicted" in page


def _claim(kind="mean", metric="ssim", pairs=None, **kw) -> Claim:
    a, b = Arm("a", "gaussian:0.015"), Arm("b", "gaussian:0.015")
    return Claim("c", "text", "reconstruct", metric, pairs or [(a, b)], kind=kind, **kw)


def _results(values_a, values_b, metric="ssim", traces=None):
    out = []
    for arch, values in (("a", values_a), ("b", values_b)):
        for i, v in enumerate(values):
            r = stored_result(arch, i % 5, f"img{i // 5}", {metric: v}, final_loss=v)
            if traces is not None:
                r.loss_trace = traces[arch][i]
            out.append(r)
    return out


def test_a_coin_flip_is_inconclusive():
    rng = np.random.default_rng(7)
    base = rng.uniform(0.3, 0.7, 20)
    noise = rng.choice([-1.0, 1.0], 20) * 0.01  # a fair coin decides which arm is better
    (res,) = evaluate_claims([_claim()], _results(base + noise, base))
    assert res.verdict == "inconclusive" and res.pairs[0].n == 20
    assert res.pairs[0].ci[0] < 0 < res.pairs[0].ci[1]


def test_direction_spread_and_order_claims():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 20)
    # gram is lower-is-better: the arm with the lower values is the better one
    (gram,) = evaluate_claims([_claim(metric="gram")], _results(base - 0.1, base, metric="gram"))
    assert gram.verdict == "supported" and gram.pairs[0].diff == pytest.approx(0.1)
    # spread: arm a varies less over seeds (per image) than arm b
    tight = np.repeat([0.5, 0.6, 0.4, 0.55], 5) + rng.normal(0, 0.001, 20)
    loose = np.repeat([0.5, 0.6, 0.4, 0.55], 5) + rng.normal(0, 0.1, 20)
    (spread,) = evaluate_claims([_claim(kind="spread")], _results(tight, loose))
    assert spread.pairs[0].n == 4 and spread.pairs[0].diff > 0  # too few pairs for a verdict
    assert spread.verdict == "inconclusive" and "4 pairs" in spread.pairs[0].note
    # order a > b > c: one pair supported and one contradicted -> contradicted
    c = Arm("c", "gaussian:0.015")
    order = _claim(pairs=[(Arm("a", "gaussian:0.015"), Arm("b", "gaussian:0.015")), (Arm("b", "gaussian:0.015"), c)])
    results = _results(base + 0.2, base) + [stored_result("c", i % 5, f"img{i // 5}", {"ssim": v}) for i, v in enumerate(base + 0.3)]
    (res,) = evaluate_claims([order], results)
    assert [p.verdict for p in res.pairs] == ["supported", "contradicted"] and res.verdict == "contradicted"


def test_iterations_to_loss_and_paired_test():
    assert iterations_to([1.0, 0.5, 0.09, 0.01], 0.1) == 3
    assert iterations_to([1.0, 0.5], 0.1) == 3  # never reached: budget + 1
    mean, ci, p, effect = paired_test(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert mean == 3.5 and ci[0] > 0 and p == pytest.approx(0.03125) and effect > 0
    fast = {"a": [[1.0, 0.05] + [0.01] * 3] * 20, "b": [[1.0, 0.5, 0.3, 0.2, 0.09]] * 20}
    claim = _claim(metric="iterations-to-loss", threshold=0.1)
    (res,) = evaluate_claims([claim], _results([0.0] * 20, [0.0] * 20, traces=fast))
    assert res.pairs[0].mean_better == 2 and res.pairs[0].mean_worse == 5 and res.verdict == "supported"


def test_an_arm_without_trained_weights_is_not_run(tmp_path):
    a, b = Arm("a", "gaussian:0.015"), Arm("a", "pretrained")
    claim = _claim(pairs=[(a, b)])
    results = [stored_result("a", s, "img", {"ssim": 0.5}) for s in range(6)]

    class Run:
        task, arch, status = "reconstruct", "a", "skipped"
        error = "not run: trained weights absent: no trained weights for vgg19"
        config = stored_result("a", 0, "img", {}, init="pretrained").config

    (res,) = evaluate_claims([claim], results, [Run()])
    assert res.verdict == "not run: weights absent"


BAD = {
    "unknown unit": ('better = {{ unit = "vgg11", layer = "pool1" }}', 'better = "vgg19"', "unknown unit 'vgg19'"),
    "unknown metric": ('metric = "ssim"\nbetter = {{ unit = "vgg11", layer = "pool1" }}',
                       'metric = "lpips"\nbetter = {{ unit = "vgg11", layer = "pool1" }}', "unknown metric 'lpips'"),
    "unknown layer": ('better = {{ unit = "vgg11", layer = "pool1" }}', 'better = {{ unit = "vgg11", layer = "pool9" }}',
                      "unknown layer 'pool9'"),
    "unknown init": ('better = {{ unit = "vgg11", layer = "pool1" }}', 'better = "vgg11@kaiming"', "runs with gaussian:0.015"),
    "duplicate id": ('id = "deep-beats-shallow"', 'id = "shallow-beats-deep"', "used twice"),
    "no than": ('than = {{ unit = "vgg11", layer = "pool2" }}\n\n[[claim]]', '\n[[claim]]', "needs 'better' and 'than'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_malformed_claim_fails_at_parsing_with_file_and_line(tmp_path, case):
    old, new, message = BAD[case]
    text = SUITE.replace(old, new, 1).format(extra="")
    assert text != SUITE.format(extra="")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    proc = run_cli("sweep", str(path), "--store", str(tmp_path / "r.db"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and message in err and f"{path}:" in err, err
    line = int(err.split(f"{path}:", 1)[1].split(":", 1)[0])
    assert line >= 14  # points into the [[claim]] tables (line 14 is the first header), not at the top


def test_builtin_suites_declare_the_papers_claims():
    for name in ("paper", "paper-cpu", "champandard2016", "champandard2016-cpu"):
        suite = load_suite(name)
        assert suite.claims, name
    ids = {c.id for c in load_suite("paper-cpu").claims}
    assert {"ranvgg-beats-trained", "stacked-lower-spread", "random-converges-faster", "texture-conv4-helps",
            "style-needs-auto-weights"} <= ids
    ids = {c.id for c in load_suite("champandard2016-cpu").claims}
    assert {"elu-leaky-relu-relu", "stride-beats-pooling", "wider-is-better", "deeper-is-worse"} <= ids


@pytest.mark.slow  # 17-30 s on idle cores: with --run-slow (CI runs it), to keep the default run under 6 min
def test_check_fails_when_a_claim_flips(tmp_path):
    suite = write_suite(tmp_path)
    store = tmp_path / "r.db"
    baseline = tmp_path / "b.json"
    save = run_cli("baseline", "save", "--suite", str(suite), "--store", str(store), "--out", str(baseline),
                   "--perturb", "none", "--noise-seeds", "0")
    assert save.returncode == 0, save.stderr
    data = json.loads(baseline.read_text())
    assert {c["id"]: c["verdict"] for c in data["claims"]} == {"shallow-beats-deep": "supported", "deep-beats-shallow": "contradicted"}
    ok = run_cli("check", "--suite", str(suite), "--store", str(store), "--baseline", str(baseline))
    assert ok.returncode == 0, ok.stdout
    data["claims"][0]["verdict"] = "contradicted"  # the baseline's past: the claim was contradicted then
    baseline.write_text(json.dumps(data))
    flipped = run_cli("check", "--suite", str(suite), "--store", str(store), "--baseline", str(baseline))
    assert flipped.returncode == 1 and "claim shallow-beats-deep: contradicted -> supported (flipped)" in flipped.stdout
