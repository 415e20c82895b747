"""One identity per result: the resolved run configuration, its key, and the one execution path.

* the same configuration through ``archbench run`` and through a one-job suite gives one key and
  the same scores (the Ray executor's half of this is in test_ray.py);
* presets' iteration budgets apply in suites too;
* the judge of ``gram`` is part of the key and of every report;
* what the store wrote comes back (``extra`` included) through its API;
* a schema-1 store is migrated in place without losing anything.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from archbench.config import RunConfig, resolve
from archbench.errors import ConfigError
from archbench.metrics.gram import trained_judge_available
from archbench.results import read_jsonl
from archbench.store import ResultStore
from archbench.sweep import expand_jobs, load_suite, parse_suite_text, run_sweep
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data"

ONE_JOB = """\
name = "onejob"
seeds = [4]
size = 32
iterations = 5
device = "cpu"
archs = ["vgg11"]

[[task]]
name = "reconstruct"
images = ["{image}"]
options = {{ layers = ["pool1", "pool2"] }}
"""


def test_archbench_run_and_a_one_job_suite_give_one_key_and_the_same_scores(tmp_path, photo_png):
    out = tmp_path / "run"
    proc = run_cli("run", "--arch", "vgg11", "--image", str(photo_png), "--seed", "4", "--size", "32", "--iters", "5",
                   "--layer", "pool1,pool2", "--device", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows, bad = read_jsonl(out / "results.jsonl")
    assert not bad and len(rows) == 2
    suite = tmp_path / "onejob.toml"
    suite.write_text(ONE_JOB.format(image=photo_png.name))  # relative to the suite file: another path, same file
    with ResultStore(tmp_path / "r.db") as db:
        summary = run_sweep(suite, db)
        assert summary.done == 1
        stored = {r.layer: r for r in db.results()}
    assert {row["key"] for row in rows} == {r.key for r in stored.values()} == set(summary.keys)
    for row in rows:
        r = stored[row["layer"]]
        assert RunConfig.from_json(row["config"]).key == r.key
        assert r.final_loss == row["final_loss"]  # the same path: bit for bit
        assert r.metrics == row["metrics"]


def test_keys_follow_the_configuration_not_how_it_was_written():
    a = resolve("vgg13(pool=max)", "reconstruct", ["astronaut"], device="cpu", size=32, iterations=3)[0]
    b = resolve("vgg13( pool = max )", "reconstruct", "astronaut", device="cpu", size=32, iterations=3)[0]
    assert a.key == b.key and a.arch == "vgg13(pool=max)"
    assert resolve("vgg13(pool=max)", "reconstruct", ["astronaut"], device="cpu", size=32, iterations=4)[0].key != a.key
    assert RunConfig.from_json(json.loads(json.dumps(a.to_json()))).key == a.key
    with pytest.raises(ConfigError, match="size must be a positive integer"):
        resolve("vgg11", "reconstruct", ["astronaut"], device="cpu", size=0)
    with pytest.raises(ConfigError, match="iterations must be a positive integer"):
        resolve("vgg11", "reconstruct", ["astronaut"], device="cpu", iterations=0)


@pytest.mark.slow
def test_a_suite_with_a_preset_runs_the_presets_iteration_budget(tmp_path):
    suite = tmp_path / "preset.toml"
    suite.write_text(
        'name = "preset"\nseeds = [1]\nsize = 16\niterations = 3\ndevice = "cpu"\narchs = ["vgg11(width=0.125)"]\n'
        '[[task]]\nname = "texture"\nimages = ["brick"]\noptions = { preset = "gatys-texture" }\n'
    )
    with ResultStore(tmp_path / "r.db") as db:
        assert run_sweep(suite, db).done == 1
        (r,) = db.results()
    assert r.config.iterations == 2000  # the preset's budget, above the suite-wide 3
    assert 3 < r.iterations_run <= 2000 and len(r.loss_trace) == r.iterations_run
    # the same resolution as `archbench run --preset gatys-texture`
    (cli,) = resolve("vgg11(width=0.125)", "texture", ["brick"], seed=1, size=16, device="cpu",
                     options={"preset": "gatys-texture"})
    assert cli.key == r.key
    # a task's own iterations beat the preset
    suite.write_text(suite.read_text() + "iterations = 7\n")
    assert {j.iterations for j in expand_jobs(load_suite(suite), "cpu")} == {7}


@pytest.mark.slow
def test_the_judge_is_part_of_the_key_and_named_by_reports_and_checks(tmp_path):
    why = trained_judge_available()
    if why is not None:
        pytest.skip(f"the trained VGG-16 judge's weights are absent here: {why}")
    common = dict(device="cpu", size=32, iterations=3, seed=1, options={"layers": ["conv1_1", "conv2_1"]})
    (trained,) = resolve("vgg11", "texture", ["brick"], judge="trained-vgg16", **common)
    (random,) = resolve("vgg11", "texture", ["brick"], judge="random-vgg19", **common)
    (auto,) = resolve("vgg11", "texture", ["brick"], **common)
    assert (trained.judge, random.judge, auto.judge) == ("trained-vgg16", "random-vgg19", "trained-vgg16")
    assert trained.key != random.key and auto.key == trained.key
    assert resolve("vgg11", "reconstruct", ["brick"], device="cpu")[0].judge is None  # no gram, no judge

    suite = tmp_path / "judges.toml"
    base = ('name = "judges"\nseeds = [1]\nsize = 32\niterations = 3\ndevice = "cpu"\narchs = ["vgg11"]\n{judge}'
            '[[task]]\nname = "texture"\nimages = ["brick"]\noptions = {{ cumulative = false, layers = ["conv1_1", "conv2_1"] }}\n')
    store = tmp_path / "r.db"
    suite.write_text(base.format(judge='judge = "random-vgg19"\n'))
    assert run_cli("sweep", str(suite), "--store", str(store)).returncode == 0
    suite.write_text(base.format(judge=""))
    edited = run_cli("sweep", str(suite), "--store", str(store))  # one name, two definitions: refused
    assert edited.returncode == 2 and "defined differently" in edited.stderr and "judge" in edited.stderr
    assert run_cli("sweep", str(suite), "--store", str(store), "--redefine").returncode == 0
    with ResultStore(store) as db:
        runs = db.runs()
        assert sorted(r.config.judge for r in runs) == ["random-vgg19", "trained-vgg16"] and len({r.key for r in runs}) == 2
        values = {r.judge: r.metrics["gram"] for r in db.results()}
    assert values["random-vgg19"] != values["trained-vgg16"]
    report = run_cli("report", "--store", str(store), "--format", "md")
    assert report.returncode == 0, report.stderr
    assert "gram@random-vgg19" in report.stdout and "gram@trained-vgg16" in report.stdout
    baseline = tmp_path / "base.json"
    assert run_cli("baseline", "save", "--suite", str(suite), "--store", str(store), "--out", str(baseline)).returncode == 0
    entries = json.loads(baseline.read_text())["entries"]
    assert {e["judge"] for e in entries if e["metric"] == "gram"} == {"trained-vgg16"}
    # a store scored by another judge: the check names the judge of every gram score that moved
    suite.write_text(base.format(judge='judge = "random-vgg19"\n'))
    check = run_cli("check", "--suite", str(suite), "--store", str(tmp_path / "other.db"), "--baseline", str(baseline),
                    "--format", "md")
    assert check.returncode == 1
    assert "gram@trained-vgg16" in check.stdout and "gram@random-vgg19" in check.stdout


def test_results_read_back_carry_everything_written(tmp_path):
    suite = tmp_path / "t.toml"
    suite.write_text(
        'name = "t"\nseeds = [2]\nsize = 32\niterations = 3\ndevice = "cpu"\narchs = ["vgg11"]\njudge = "random-vgg19"\n'
        '[[task]]\nname = "texture"\nimages = ["brick"]\noptions = { layers = ["conv1_1", "conv2_1"] }\n'
    )
    with ResultStore(tmp_path / "r.db") as db:
        run_sweep(suite, db)
        (run,) = db.runs()
        outcome = db.outcome(run.key)
    assert outcome.config.judge == "random-vgg19" and outcome.status == "done"
    assert [r.layer for r in outcome.results] == ["conv1_1", "conv1_1..conv2_1"]
    for r in outcome.results:
        assert r.extra["weighting"] == "auto" and set(r.extra["layer_weights"]) == {f"gram:{x}" for x in r.extra["layers"]}
        assert r.metrics["gram"] > 0 and len(r.loss_trace) == r.iterations_run
        assert Path(r.paths["result"]).is_file() and r.versions["torch"]
    assert run.versions == outcome.results[0].versions and run.host


def _v1_rows(path: Path) -> dict[str, dict]:
    conn = sqlite3.connect(path)
    rows = {}
    for key, status, metrics, settings in conn.execute("SELECT key, status, metrics, settings FROM jobs"):
        rows[key] = {"status": status, "metrics": json.loads(metrics), "settings": json.loads(settings)}
    conn.close()
    return rows


def test_a_schema_1_store_is_migrated_in_place_without_losing_anything(tmp_path):
    store = tmp_path / "results.db"
    shutil.copy(DATA / "store_v1" / "results.db", store)
    before = _v1_rows(store)
    assert len(before) == 3 and sorted(r["status"] for r in before.values()) == ["done", "done", "failed"]
    with ResultStore(store) as db:
        runs = {r.provenance["migrated_from"]["key"]: r for r in db.runs()}
        results = db.results(include_failed=True)
    assert (tmp_path / "results.db.schema1.bak").is_file()
    assert _v1_rows(tmp_path / "results.db.schema1.bak") == before  # the untouched copy
    assert set(runs) == set(before)
    for old_key, v1 in before.items():
        run = runs[old_key]
        assert run.status == v1["status"] and run.config.iterations == v1["settings"]["iterations"]
        mine = {r.layer: r.metrics for r in results if r.key == run.key}
        assert mine == v1["metrics"]  # every score, under the new key
    assert all(r.stalled is None for r in results)  # schema 1 did not record it
    texture = next(r for r in runs.values() if r.task == "texture")
    assert texture.config.judge == "trained-vgg16"  # recorded by the schema-1 job in its results
    failed = next(r for r in runs.values() if r.status == "failed")
    assert failed.error and "does not exist" in failed.error
    # today's resolution of the same suite finds the migrated done runs: a sweep runs only the failed one
    # (without its missing image, which a suite is now refused for when parsed)
    # and with the metrics the v1 texture job scored (the texture task's defaults have since grown by
    # texture-quality: a configuration with more metrics is another configuration)
    text = (DATA / "store_v1" / "suite.toml").read_text().replace(', "no-such-image.png"', "")
    text = text.replace('images = ["brick"]', 'images = ["brick"]\nmetrics = ["gram"]')
    suite = parse_suite_text(text, str(DATA / "store_v1" / "suite.toml"))
    if trained_judge_available() is None:
        jobs = expand_jobs(suite, "cpu")
        done_keys = {r.key for r in runs.values() if r.status == "done"}
        assert done_keys <= {j.key for j in jobs}
    with ResultStore(store) as db:  # opening again: already schema 2, nothing to do
        assert len(db.runs()) == 3 and db.suite_names() == ["v1fixture"]
