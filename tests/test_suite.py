"""Suite files: parsing, precise errors (file, line, expectation), job expansion and keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from archbench.errors import ArchbenchError, ConfigError
from archbench.sweep import builtin_suites, expand_jobs, load_suite, parse_suite_text

GOOD = """\
name = "t"
reference = "vgg11"
seeds = [0, 1]
images = ["astronaut", "brick"]
size = 32
iterations = 5
device = "cpu"
archs = ["vgg11"]

[[arch]]
spec = "vgg13"
options = { pool = "max" }
seeds = [3]

[[task]]
name = "reconstruct"
options = { layers = ["pool1", "pool2"] }
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> str:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_suite(p)
    return str(exc.value)


def test_good_suite_parses_and_expands(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    assert [a.spec for a in suite.archs] == ["vgg11", "vgg13(pool=max)"]
    jobs = expand_jobs(suite, "cpu")
    # vgg11: 2 seeds x 2 images; vgg13 pins seed 3: 1 x 2 images; layers stay inside a job
    assert len(jobs) == 6
    assert {(j.arch, j.seed) for j in jobs} == {("vgg11", 0), ("vgg11", 1), ("vgg13(pool=max)", 3)}
    assert all(j.task_options() == {"layers": ["pool1", "pool2"]} and j.size == 32 for j in jobs)
    assert len({j.key for j in jobs}) == 6


def test_job_key_is_a_hash_of_the_resolved_configuration(tmp_path):
    a = expand_jobs(load_suite(write(tmp_path, GOOD)), "cpu")
    b = expand_jobs(load_suite(write(tmp_path, GOOD.replace('name = "t"', 'name = "other"'), "o.toml")), "cpu")
    assert [j.key for j in a] == [j.key for j in b]  # the suite name is not part of the key
    c = expand_jobs(load_suite(write(tmp_path, GOOD.replace("iterations = 5", "iterations = 6"), "c.toml")), "cpu")
    assert not {j.key for j in a} & {j.key for j in c}
    # the same spec written differently gives the same key
    d = load_suite(write(tmp_path, GOOD.replace('spec = "vgg13"\noptions = { pool = "max" }', 'spec = "vgg13( pool = max )"'), "d.toml"))
    assert [j.key for j in expand_jobs(d, "cpu")] == [j.key for j in a]


def test_task_restricted_to_some_architectures(tmp_path):
    text = GOOD + '\n[[task]]\nname = "texture"\narchs = ["vgg13(pool=max)"]\nimages = ["brick"]\n'
    jobs = expand_jobs(load_suite(write(tmp_path, text)), "cpu")
    assert {j.arch for j in jobs if j.task == "texture"} == {"vgg13(pool=max)"}
    assert len([j for j in jobs if j.task == "texture"]) == 1  # seed 3 x brick
    msg = error_of(tmp_path, text.replace('archs = ["vgg13(pool=max)"]', 'archs = ["vgg16"]'))
    assert ":21:" in msg and "not among the suite's architectures" in msg


def test_image_file_identity_is_its_content(tmp_path, photo_png):
    from archbench.config import file_digest, resolve

    def key(path) -> str:
        return resolve("vgg11", "reconstruct", [str(path)], device="cpu", size=32, iterations=2)[0].key

    first = key(photo_png)
    assert file_digest(str(photo_png)).startswith("sha256:")
    moved = tmp_path / "elsewhere" / "other-name.png"
    moved.parent.mkdir()
    moved.write_bytes(photo_png.read_bytes())
    assert key(moved) == first  # the content, not the path, is the identity
    photo_png.write_bytes(photo_png.read_bytes() + b"\0")
    assert key(photo_png) != first
    assert file_digest(str(tmp_path / "absent.png")) is None


def test_unknown_top_level_key_names_file_line_and_expectation(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("seeds = [0, 1]", "sedes = [0, 1]"))
    assert msg.startswith(f"{tmp_path / 's.toml'}:3:")
    assert "unknown key 'sedes'" in msg and "did you mean 'seeds'" in msg and "expected one of" in msg


def test_unknown_key_in_an_arch_table(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("seeds = [3]", "seed = [3]"))
    assert ":13:" in msg and "unknown key 'seed' in [[arch]] #1" in msg


def test_unknown_task_option_points_at_the_options_line(tmp_path):
    msg = error_of(tmp_path, GOOD.replace('options = { layers = ["pool1", "pool2"] }', 'options = { layrs = ["pool1"] }'))
    assert ":17:" in msg and "layrs" in msg and "valid:" in msg


def test_wrong_type_gives_expectation(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("size = 32", 'size = "big"'))
    assert ":5:" in msg and "'size' in the top level must be a positive integer" in msg


def test_unknown_arch_and_task_names(tmp_path):
    msg = error_of(tmp_path, GOOD.replace('archs = ["vgg11"]', 'archs = ["vgg111"]'))
    assert ":8:" in msg and "vgg111" in msg and "did you mean" in msg
    msg = error_of(tmp_path, GOOD.replace('name = "reconstruct"', 'name = "reconstrut"'))
    assert ":16:" in msg and "unknown task 'reconstrut'" in msg


def test_malformed_toml_reports_the_line(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("size = 32", "size = = 32"))
    assert ":5:" in msg and "invalid TOML" in msg


def test_missing_pieces(tmp_path):
    assert "missing key 'name'" in error_of(tmp_path, GOOD.replace('name = "t"\n', ""))
    no_task = GOOD.split("[[task]]")[0]
    assert "no tasks" in error_of(tmp_path, no_task)
    assert "not one of the suite's architectures" in error_of(tmp_path, GOOD.replace('reference = "vgg11"', 'reference = "vgg19"'))


def test_unknown_init_is_reported(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("seeds = [0, 1]", 'seeds = [0, 1]\ninits = ["gausian"]'))
    assert ":4:" in msg and "unknown init 'gausian'" in msg


def test_stacked_init_is_accepted_and_resolved_with_every_option(tmp_path):
    from archbench.config import canonical_init, parse_stacked

    suite = load_suite(write(tmp_path, GOOD.replace("seeds = [0, 1]", 'seeds = [0, 1]\ninits = ["stacked(candidates=2)"]')))
    assert suite.inits == ["stacked(candidates=2)"]
    (init,) = {j.init for j in expand_jobs(suite, "cpu")}
    assert init == canonical_init("stacked(candidates=2)", "cpu")
    assert parse_stacked(init) == {"base": "gaussian:0.015", "candidates": 2, "iterations": 50, "reference": "astronaut",
                                   "size": 64}
    with pytest.raises(ConfigError):
        canonical_init("stacked(candidate=2)", "cpu")
    msg = error_of(tmp_path, GOOD.replace("seeds = [0, 1]", 'seeds = [0, 1]\ninits = ["stacked(candidate=2)"]'))
    assert ":4:" in msg and "unknown option(s) candidate" in msg


def test_builtin_suites_parse():
    suites = builtin_suites()
    assert {"ci", "paper", "zoo"} <= set(suites)
    for name in suites:
        s = load_suite(name)
        assert s.name == name and s.archs and s.tasks
        assert expand_jobs(s, "cpu")
    with pytest.raises(ArchbenchError) as exc:
        load_suite("cii")
    assert "did you mean 'ci'" in str(exc.value)


def test_parse_suite_text_directly():
    s = parse_suite_text(GOOD, "inline.toml")
    assert s.reference == "vgg11" and s.path == "inline.toml"
