"""Run settings are listed once: :class:`~archbench.config.RunConfig`'s fields.

A new field reaches the key, the store (its JSON and a generated column), the DataFrame, the
results files and their JSON with no other edit; stores written before the settings were derived
from the fields still open and read the same.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import sys
from dataclasses import make_dataclass
from pathlib import Path

import pytest

import archbench
from archbench.config import UNLESS_DEFAULT, RunConfig, setting
from archbench.frame import frame_from_results, load_results
from archbench.results import Result, RunOutcome, write_results
from archbench.store import ResultStore

DATA = Path(__file__).parent / "data"


def _config(cls: type = RunConfig, **changes) -> RunConfig:
    base = dict(arch="vgg11", init="gaussian:0.015", seed=0, task="reconstruct", image="astronaut", size=32,
                iterations=4, options={"layers": ["pool1"]}, metrics=("ssim",))
    return cls(**{**base, **changes})


@pytest.fixture
def with_blur(monkeypatch):
    """RunConfig with one more setting, ``blur`` (a float, default 0.0), put in its place
    everywhere archbench refers to the class: the test's only 'edit'."""
    new = make_dataclass("RunConfig", [("blur", float, setting(0.0, identity=UNLESS_DEFAULT))],
                         bases=(RunConfig,), frozen=True, eq=False)
    new.__module__ = RunConfig.__module__
    for name, module in list(sys.modules.items()):
        if name.startswith("archbench") and getattr(module, "RunConfig", None) is RunConfig:
            monkeypatch.setattr(module, "RunConfig", new)
    return new


def test_a_new_setting_reaches_key_json_store_frame_and_files(with_blur, tmp_path):
    plain, blurred = _config(with_blur), _config(with_blur, blur=0.5)
    # the key: a setting at its default keeps every existing key; set, it is part of the identity
    assert plain.key == _config().key
    assert blurred.key != plain.key and blurred.identity()["blur"] == 0.5 and "blur" not in plain.identity()
    # the JSON, and back
    assert blurred.to_json()["blur"] == 0.5 and with_blur.from_json(blurred.to_json()) == blurred
    # the store: its configuration JSON, a generated column, and the configuration read back
    result = Result(blurred, "pool1", 0.1, {"ssim": 0.5}, iterations_run=3, evaluations=4, loss_trace=[1.0, 0.1])
    with ResultStore(tmp_path / "r.db") as store:
        assert store.put(RunOutcome(blurred, "done", results=[result]), suite="s")
        (run,) = store.runs()
        assert run.config.blur == 0.5 and run.config.key == blurred.key
        (stored,) = store.results()
    conn = sqlite3.connect(tmp_path / "r.db")
    assert conn.execute("SELECT blur FROM runs").fetchone() == (0.5,)
    conn.close()
    # the DataFrame, from the store and from results in memory: a column after the other settings
    for df in (load_results(tmp_path / "r.db"), frame_from_results([stored])):
        assert df["blur"].tolist() == [0.5]
        columns = list(df.columns)
        assert columns.index("judge") < columns.index("blur") < columns.index("layer")
    # the results files
    write_results(tmp_path / "out", [result])
    with open(tmp_path / "out" / "results.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["blur"] == "0.5" and row["iterations"] == "4" and row["iterations_run"] == "3"
    line = json.loads((tmp_path / "out" / "results.jsonl").read_text())
    assert line["config"]["blur"] == 0.5 and line["iterations_run"] == 3


def test_a_new_setting_is_added_to_an_older_store(with_blur, tmp_path):
    """A store written before the setting existed gets its column when opened; its runs read the
    default (they were run without the setting) and keep their keys."""
    path = tmp_path / "results.db"
    shutil.copy(DATA / "store_v2" / "results.db", path)
    expected = json.loads((DATA / "store_v2" / "expected.json").read_text())
    with ResultStore(path) as store:
        runs = store.runs()
        assert [_identity(r.config) for r in runs] == [_identity(i) for i in expected["identities"]]
        assert {r.config.blur for r in runs} == {0.0}
    conn = sqlite3.connect(path)
    assert {r[0] for r in conn.execute("SELECT blur FROM runs")} == {None}  # not in the stored JSON
    conn.close()


def _identity(config_or_identity) -> dict:
    """An identity as plain JSON, without its configuration format."""
    data = config_or_identity if isinstance(config_or_identity, dict) else config_or_identity.identity()
    return {k: v for k, v in json.loads(json.dumps(data, default=str)).items() if k != "format"}


def _frame_rows(df) -> list[list]:
    return [[None if (isinstance(v, float) and v != v) else (v.item() if hasattr(v, "item") else v) for v in row]
            for row in df.astype(object).itertuples(index=False)]


def test_a_store_written_before_the_change_reads_the_same(tmp_path):
    """``tests/data/store_v2`` was written by the code before the settings were derived from the
    fields (see its README): the same keys, the same table."""
    path = tmp_path / "results.db"
    shutil.copy(DATA / "store_v2" / "results.db", path)
    expected = json.loads((DATA / "store_v2" / "expected.json").read_text())
    conn = sqlite3.connect(path)
    assert [k for (k,) in conn.execute("SELECT key FROM runs ORDER BY rowid")] == expected["keys"]
    conn.close()
    with ResultStore(path) as store:
        runs = store.runs()
        # the same identity as the code that wrote the store computed (its configuration format aside:
        # a later CONFIG_FORMAT changes every key on purpose)
        assert [_identity(r.config) for r in runs] == [_identity(i) for i in expected["identities"]]
        assert [_identity(RunConfig.from_json(r.config.to_json())) for r in runs] == [
            _identity(i) for i in expected["identities"]]
        assert all(r.iterations_run <= r.config.iterations for r in store.results())
    df = archbench.load_results(path, suite="tiny-v2", versions=False, final_loss=True)
    assert list(df.columns) == expected["columns"]
    got = _frame_rows(df)
    assert len(got) == len(expected["rows"])
    for mine, theirs in zip(got, expected["rows"], strict=True):
        assert mine == [pytest.approx(t, rel=1e-12) if isinstance(t, float) else t for t in theirs]
