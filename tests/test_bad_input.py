"""Bad input, table-driven: every case of the corpus exits with code 2, prints one line on stderr
that names what is wrong, shows no traceback and writes nothing.

The cases run the command line in this process (``archbench.cli.main``), in a folder of prepared
bad files that is snapshotted before and compared after each case; a few run the installed
console script too (tests/test_cli.py has more).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archbench.cli import main
from archbench.store import ResultStore

VALID_SUITE = """\
name = "tiny"
seeds = [0]
size = 16
iterations = 1
device = "cpu"
archs = ["vgg11"]
tasks = ["reconstruct"]
"""


def png_header(path: Path, width: int, height: int) -> Path:
    """A small PNG file whose header declares ``width`` x ``height`` pixels (a decompression bomb
    as far as the header tells: its pixel data is empty)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def suite(name: str, text: str) -> tuple[str, str]:
    return name, text


#: suite files of the corpus (written into the case folder)
SUITES = dict([
    suite("valid.toml", VALID_SUITE),
    suite("invalid_toml.toml", 'name = "x"\narchs = [\n'),
    suite("typo_key.toml", VALID_SUITE + "sedes = [1]\n"),
    suite("no_tasks.toml", 'name = "x"\narchs = ["vgg11"]\n'),
    suite("no_archs.toml", 'name = "x"\ntasks = ["reconstruct"]\n'),
    suite("no_name.toml", 'archs = ["vgg11"]\ntasks = ["reconstruct"]\n'),
    suite("bad_name.toml", VALID_SUITE.replace('"tiny"', '"a b"')),
    suite("width_abc.toml", VALID_SUITE.replace('["vgg11"]', '["vgg11(width=abc)"]')),
    suite("unknown_arch.toml", VALID_SUITE.replace('["vgg11"]', '["vgg91"]')),
    suite("unknown_arch_option.toml", VALID_SUITE.replace('["vgg11"]', '["vgg11(wdth=2)"]')),
    suite("gaussian_nan.toml", VALID_SUITE + 'inits = ["gaussian:nan"]\n'),
    suite("unknown_init.toml", VALID_SUITE + 'inits = ["random"]\n'),
    suite("missing_checkpoint.toml", VALID_SUITE + 'inits = ["checkpoint:weights/none.pt"]\n'),
    suite("missing_image.toml", VALID_SUITE + 'images = ["pictures/none.png"]\n'),
    suite("bomb_image.toml", VALID_SUITE + 'images = ["bomb.png"]\n'),
    suite("missing_arch_file.toml", VALID_SUITE.replace('["vgg11"]', '["nets/none.py:make"]')),
    suite("two_seeds.toml", VALID_SUITE.replace("seeds = [0]", "seeds = [0, 1]")),
    suite("million_seeds.toml", VALID_SUITE.replace("seeds = [0]", "seeds = 1000000")),
    suite("negative_seed.toml", VALID_SUITE.replace("seeds = [0]", "seeds = [-1]")),
    suite("zero_size.toml", VALID_SUITE.replace("size = 16", "size = 0")),
    suite("huge_size.toml", VALID_SUITE.replace("size = 16", "size = 100000")),
    suite("duplicate_arch.toml", VALID_SUITE.replace('["vgg11"]', '["vgg11", "vgg11"]')),
    suite("unknown_metric.toml", VALID_SUITE.replace('tasks = ["reconstruct"]\n', "")
          + '[[task]]\nname = "reconstruct"\nmetrics = ["ssimm"]\n'),
    suite("unknown_task_option.toml", VALID_SUITE.replace('tasks = ["reconstruct"]\n', "")
          + '[[task]]\nname = "reconstruct"\noptions = { layerz = ["pool1"] }\n'),
    suite("missing_style.toml", VALID_SUITE.replace('tasks = ["reconstruct"]\n', "")
          + '[[task]]\nname = "style"\noptions = { style = "styles/none.png" }\n'),
    suite("bad_reference.toml", VALID_SUITE + 'reference = "vgg19"\n'),
    suite("bad_device.toml", VALID_SUITE.replace('device = "cpu"', 'device = "tpu"')),
    suite("bad_optimizer.toml", VALID_SUITE + 'optimizer = "sgd"\n'),
])


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    """A folder of bad (and a few good) input files shared by the cases."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "photo.png")
    Image.fromarray(rng.integers(0, 255, (60, 40, 3), dtype=np.uint8)).save(d / "ref40x60.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "tiny.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (d / "text.png").write_text("not an image\n")
    png_header(d / "bomb.png", 20000, 20000)
    png_header(d / "big12k.png", 12000, 12000)
    (d / "empty_folder").mkdir()
    (d / "afile").write_text("a file, not a folder\n")
    (d / "text.pt").write_text("hello\n")
    (d / "ckdir").mkdir()
    torch.save({"foo.weight": torch.zeros(3)}, d / "wrong.pt")
    (d / "syntax_error.py").write_text("def make(:\n")
    (d / "net.py").write_text("from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Conv2d(3, 4, 3))\n")
    (d / "notes.db").write_text("not a database\n")
    for name, text in SUITES.items():
        (d / name).write_text(text)
    # a store that already holds a suite "tiny" defined differently (other iterations)
    with ResultStore(d / "named.db") as store:
        store.record_suite("tiny", None, {"name": "tiny", "iterations": 99, "path": "/elsewhere/tiny.toml"})
    with ResultStore(d / "results.db") as store:
        store.record_suite("other", None, {"name": "other"})
        store.add_to_suite("other", ["k"])
    (d / "torch").mkdir()
    entry = {"task": "reconstruct", "arch": "vgg11", "init": "gaussian:0.015", "layer": "pool1", "metric": "ssim",
             "judge": None, "higher_is_better": True, "gating": True, "mean": 0.5, "n": 1, "tolerance": 0.01}
    (d / "baseline.json").write_text(json.dumps({"format": "archbench-baseline/2", "suite": "tiny", "suite_ref": "tiny",
                                                 "entries": [entry]}))
    return d


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
            for p in sorted(root.rglob("*"))}


RUN = ["run", "--arch", "vgg11", "--image", "{d}/photo.png", "--size", "32", "--iters", "1", "--layer", "pool1",
       "--device", "cpu"]
SWEEP_STORE = ["--store", "{d}/new/results.db"]
GALLERY = ["gallery", "--arch", "vgg11", "--photo", "{d}/photo.png", "--texture", "{d}/photo.png", "--size", "32",
           "--iters", "1", "--device", "cpu", "--judge", "random-vgg19", "--out", "{d}/new/gallery"]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")

#: (id, command line, what the one line on stderr must say); ``{d}`` is the folder of bad files
CORPUS = [
    # ---- run: architectures
    ("run unknown arch", [*RUN, "--arch", "vgg91"], "did you mean 'vgg19'"),
    ("run unknown arch option", [*RUN, "--arch", "vgg11(foo=1)"], "unknown option 'foo' for arch 'vgg11'; valid: pool"),
    ("run bad arch option value", [*RUN, "--arch", "vgg11(width=abc)"], "invalid width='abc'"),
    ("run malformed arch spec", [*RUN, "--arch", "vgg11(pool)"], "malformed option 'pool'"),
    ("run unknown arch prefix", [*RUN, "--arch", "tf:resnet"], "unknown arch prefix 'tf'"),
    ("run arch file missing", [*RUN, "--arch", "{d}/none.py:make"], "does not exist"),
    ("run arch file without factory", [*RUN, "--arch", "{d}/net.py:nope"], "has no callable 'nope'"),
    ("run arch file syntax error", [*RUN, "--arch", "{d}/syntax_error.py:make"], "SyntaxError"),
    # ---- run: task, layers, options
    ("run unknown task", [*RUN, "--task", "recon"], "unknown task 'recon'"),
    ("run unknown layer", [*RUN, "--layer", "pool9"], "unknown layer of vgg11 'pool9'"),
    ("run unknown task option", [*RUN, "-O", "nope=1"], "unknown option(s) nope for task 'reconstruct'"),
    ("run malformed option", [*RUN, "-O", "nope"], "malformed --option 'nope'"),
    ("run bad channels", [*RUN, "--task", "maximize", "--layer", "conv1_1", "--channels", "abc"], "malformed channels='abc'"),
    ("run style without style image", [*RUN[:-4], "--device", "cpu", "--task", "style"], "needs a style image"),
    ("run style image missing", [*RUN[:-4], "--device", "cpu", "--task", "style", "--style", "{d}/none.png"],
     "does not exist"),
    ("run zero phases", [*RUN, "--phases", "0"], "phases must be a positive integer, got 0"),
    ("run unknown judge", [*RUN, "--task", "texture", "--layer", "conv1_1", "--judge", "nope"], "unknown judge 'nope'"),
    ("run unknown metric", [*RUN, "--metrics", "nope"], "unknown metric 'nope'"),
    ("run unknown optimizer", [*RUN, "--optimizer", "sgd"], "unknown optimizer 'sgd'"),
    ("run unknown cli option", [*RUN, "--no-such-option"], "No such option: --no-such-option"),
    # ---- run: numbers
    ("run size 0", [*RUN, "--size", "0"], "size must be a positive integer, got 0"),
    ("run size -5", [*RUN, "--size", "-5"], "size must be a positive integer, got -5"),
    ("run size 100000", [*RUN, "--size", "100000"], "more than the limit of 4096 px"),
    ("run size not a number", [*RUN, "--size", "abc"], "Invalid value for '--size'"),
    ("run iters 0", [*RUN, "--iters", "0"], "iterations must be a positive integer, got 0"),
    ("run iters -3", [*RUN, "--iters", "-3"], "iterations must be a positive integer, got -3"),
    ("run history 0", [*RUN, "--history", "0"], "history must be a positive integer, got 0"),
    ("run negative seed", [*RUN, "--seed", "-1"], "seed must be a non-negative integer, got -1"),
    # ---- run: weights
    ("run init gaussian:nan", [*RUN, "--init", "gaussian:nan"], "invalid sigma 'nan'"),
    ("run init gaussian:-1", [*RUN, "--init", "gaussian:-1"], "invalid sigma '-1'"),
    ("run init unknown", [*RUN, "--init", "random"], "unknown init 'random'"),
    ("run init with stray argument", [*RUN, "--init", "kaiming:3"], "init 'kaiming' takes no argument"),
    ("run checkpoint missing", [*RUN, "--init", "checkpoint:{d}/none.pt"], "does not exist"),
    ("run checkpoint is a text file", [*RUN, "--init", "checkpoint:{d}/text.pt"], "not a PyTorch checkpoint"),
    ("run checkpoint is a folder", [*RUN, "--init", "checkpoint:{d}/ckdir"], "is a folder"),
    ("run checkpoint does not fit", [*RUN, "--init", "checkpoint:{d}/wrong.pt"], "does not fit this architecture"),
    # ---- run: images
    ("run image missing", [*RUN, "--image", "{d}/none.png"], "does not exist"),
    ("run image corrupt", [*RUN, "--image", "{d}/corrupt.png"], "corrupt"),
    ("run image is text", [*RUN, "--image", "{d}/text.png"], "not an image file"),
    ("run image too small", [*RUN, "--image", "{d}/tiny.png", "--layer", "pool5"], "smaller than"),
    ("run image bomb 20000x20000", [*RUN, "--image", "{d}/bomb.png"], "20000x20000 = 400 million pixels"),
    ("run image 12000x12000 for 32 px", [*RUN, "--image", "{d}/big12k.png"], "more than the limit of 64 million"),
    ("run image folder empty", [*RUN, "--image", "{d}/empty_folder"], "contains no images"),
    ("run unknown builtin image", [*RUN, "--image", "astronot"], "did you mean 'astronaut'"),
    # ---- run: device and output
    ("run invalid device", [*RUN, "--device", "tpu"], "invalid device 'tpu'"),
    pytest.param("run cuda without gpu", [*RUN, "--device", "cuda"], "no CUDA GPU is available", marks=NO_GPU),
    ("run out is a file", [*RUN, "--out", "{d}/afile"], "is a file, not a folder"),
    ("run out under a file", [*RUN, "--out", "{d}/afile/sub"], "is not writable"),
    ("run out under /proc", [*RUN, "--out", "/proc/archbench-out"], "is not writable"),
    # ---- sweep: the suite file
    ("sweep suite file missing", ["sweep", "{d}/none.toml", *SWEEP_STORE], "does not exist"),
    ("sweep unknown builtin suite", ["sweep", "cii", *SWEEP_STORE], "unknown suite 'cii'"),
    ("sweep invalid toml", ["sweep", "{d}/invalid_toml.toml", *SWEEP_STORE], "invalid TOML"),
    ("sweep misspelt key", ["sweep", "{d}/typo_key.toml", *SWEEP_STORE], "unknown key 'sedes'"),
    ("sweep no tasks", ["sweep", "{d}/no_tasks.toml", *SWEEP_STORE], "at least one [[task]] table"),
    ("sweep no archs", ["sweep", "{d}/no_archs.toml", *SWEEP_STORE], "no architectures"),
    ("sweep no name", ["sweep", "{d}/no_name.toml", *SWEEP_STORE], "missing key 'name'"),
    ("sweep bad name", ["sweep", "{d}/bad_name.toml", *SWEEP_STORE], "'name' must contain only"),
    ("sweep width=abc", ["sweep", "{d}/width_abc.toml", *SWEEP_STORE], "width_abc.toml:6: in 'archs': invalid width='abc'"),
    ("sweep unknown arch", ["sweep", "{d}/unknown_arch.toml", *SWEEP_STORE], "unknown_arch.toml:6"),
    ("sweep unknown arch option", ["sweep", "{d}/unknown_arch_option.toml", *SWEEP_STORE], "unknown option 'wdth'"),
    ("sweep gaussian:nan", ["sweep", "{d}/gaussian_nan.toml", *SWEEP_STORE], "gaussian_nan.toml:8: invalid sigma 'nan'"),
    ("sweep unknown init", ["sweep", "{d}/unknown_init.toml", *SWEEP_STORE], "unknown init 'random'"),
    ("sweep checkpoint missing (from the suite's folder)", ["sweep", "{d}/missing_checkpoint.toml", *SWEEP_STORE],
     "{d}/weights/none.pt' does not exist"),
    ("sweep image missing (from the suite's folder)", ["sweep", "{d}/missing_image.toml", *SWEEP_STORE],
     "{d}/pictures/none.png' does not exist"),
    ("sweep image bomb", ["sweep", "{d}/bomb_image.toml", *SWEEP_STORE], "million pixels"),
    ("sweep arch file missing (from the suite's folder)", ["sweep", "{d}/missing_arch_file.toml", *SWEEP_STORE],
     "{d}/nets/none.py' does not exist"),
    ("sweep a million seeds", ["sweep", "{d}/million_seeds.toml", *SWEEP_STORE], "1000000 jobs, more than the limit of 10000"),
    ("sweep negative seed", ["sweep", "{d}/negative_seed.toml", *SWEEP_STORE], "'seeds' in the top level must be"),
    ("sweep size 0", ["sweep", "{d}/zero_size.toml", *SWEEP_STORE], "'size' in the top level must be"),
    ("sweep size 100000", ["sweep", "{d}/huge_size.toml", *SWEEP_STORE], "more than the limit of 4096 px"),
    ("sweep duplicate arch", ["sweep", "{d}/duplicate_arch.toml", *SWEEP_STORE], "listed twice"),
    ("sweep unknown metric", ["sweep", "{d}/unknown_metric.toml", *SWEEP_STORE], "unknown metric 'ssimm'"),
    ("sweep unknown task option", ["sweep", "{d}/unknown_task_option.toml", *SWEEP_STORE], "unknown option(s) layerz"),
    ("sweep style image missing", ["sweep", "{d}/missing_style.toml", *SWEEP_STORE], "{d}/styles/none.png' does not exist"),
    ("sweep reference not in suite", ["sweep", "{d}/bad_reference.toml", *SWEEP_STORE], "'reference' 'vgg19' is not one"),
    ("sweep bad device", ["sweep", "{d}/bad_device.toml", *SWEEP_STORE], "'device' must be auto, cpu, cuda"),
    ("sweep bad optimizer", ["sweep", "{d}/bad_optimizer.toml", *SWEEP_STORE], "'optimizer' must be lbfgs or adam"),
    # ---- sweep: options, store, output
    ("sweep unknown executor", ["sweep", "{d}/valid.toml", *SWEEP_STORE, "--executor", "nope"], "unknown executor 'nope'"),
    ("sweep ray option without ray", ["sweep", "{d}/valid.toml", *SWEEP_STORE, "--address", "auto"], "for --executor ray only"),
    ("sweep batch images 0", ["sweep", "{d}/valid.toml", *SWEEP_STORE, "--batch-images", "0"], "'--batch-images'"),
    ("sweep store is a folder", ["sweep", "{d}/valid.toml", "--store", "{d}/ckdir"], "is a folder"),
    ("sweep store is a text file", ["sweep", "{d}/valid.toml", "--store", "{d}/notes.db"], "not an archbench results store"),
    ("sweep out is a file", ["sweep", "{d}/valid.toml", *SWEEP_STORE, "--out", "{d}/afile"], "is a file, not a folder"),
    ("sweep out under /proc", ["sweep", "{d}/valid.toml", *SWEEP_STORE, "--out", "/proc/archbench-images"], "is not writable"),
    ("sweep same name, other definition", ["sweep", "{d}/valid.toml", "--store", "{d}/named.db"],
     "already holds a suite named 'tiny' defined differently"),
    ("sweep more jobs than --max-jobs", ["sweep", "{d}/two_seeds.toml", *SWEEP_STORE, "--max-jobs", "1"],
     "has 2 jobs, more than the limit of 1 per sweep"),
    ("sweep device override invalid", ["sweep", "{d}/valid.toml", *SWEEP_STORE, "--device", "tpu"], "invalid device 'tpu'"),
    # ---- gallery (validated before anything is written: no page, no store)
    ("gallery texture missing", [*GALLERY, "--texture", "{d}/none.png"], "does not exist"),
    ("gallery unknown section", [*GALLERY, "--section", "textures"], "valid: figure1, reconstruct, texture, style"),
    ("gallery unknown layer", [*GALLERY, "--recon-layer", "pool9"], "unknown layer of vgg11 'pool9'"),
    ("gallery size 0", [*GALLERY, "--size", "0"], "size must be a positive integer, got 0"),
    ("gallery out is a file", [*GALLERY[:-2], "--out", "{d}/afile"], "is a file, not a folder"),
    # ---- report
    ("report store missing", ["report", "--store", "{d}/none.db"], "does not exist"),
    ("report store is a text file", ["report", "--store", "{d}/notes.db"], "not an archbench results store"),
    ("report store is a folder", ["report", "--store", "{d}/ckdir"], "is a folder"),
    ("report unknown format", ["report", "--store", "{d}/results.db", "--format", "xml"], "unknown --format 'xml'"),
    ("report unknown suite", ["report", "--store", "{d}/results.db", "--suite", "nope"], "suite 'nope' has no jobs"),
    ("report html to the terminal", ["report", "--store", "{d}/results.db", "--format", "html"], "needs --out"),
    ("report out is a folder", ["report", "--store", "{d}/results.db", "--out", "{d}/ckdir"], "is a folder"),
    ("report out under /proc", ["report", "--store", "{d}/results.db", "--out", "/proc/archbench/r.md"], "cannot be written"),
    ("report unknown truth", ["report", "--store", "{d}/results.db", "--truth", "imagenot"], "unknown ground truth"),
    ("report truth with csv", ["report", "--store", "{d}/results.db", "--truth", "imagenet", "--format", "csv"],
     "--truth adds a section"),
    # ---- check and baseline
    ("check baseline missing", ["check", "--baseline", "{d}/none.json", "--store", "{d}/new/r.db"], "does not exist"),
    ("check baseline not json", ["check", "--baseline", "{d}/afile", "--store", "{d}/new/r.db"], "is not valid JSON"),
    ("check unknown format", ["check", "--format", "xml"], "unknown --format 'xml'"),
    # ---- score
    ("score image missing", ["score", "{d}/photo.png", "{d}/none.png"], "does not exist"),
    ("score images of different sizes", ["score", "{d}/photo.png", "{d}/ref40x60.png", "--metrics", "ssim"],
     "differ in size"),
    ("score unknown metric", ["score", "{d}/photo.png", "{d}/photo.png", "--metrics", "nope"], "unknown metric 'nope'"),
    ("score empty metrics", ["score", "{d}/photo.png", "{d}/photo.png", "--metrics", ","], "--metrics is empty"),
    ("score unknown format", ["score", "{d}/photo.png", "{d}/photo.png", "--format", "xml"], "invalid --format 'xml'"),
    ("score size 0", ["score", "{d}/photo.png", "{d}/photo.png", "--size", "0"], "size must be a positive integer, got 0"),
    ("score image bomb", ["score", "{d}/photo.png", "{d}/bomb.png"], "million pixels"),
    # ---- weights, list, stack, correlate
    ("weights import missing file", ["weights", "import", "{d}/none.pth"], "does not exist"),
    ("weights import unknown file", ["weights", "import", "{d}/text.pt"], "is none of torchvision's weight files"),
    ("weights status unknown format", ["weights", "status", "--format", "xml"], "invalid --format 'xml'"),
    ("list unknown kind", ["list", "nope"], "unknown list 'nope'"),
    ("list taps unknown arch", ["list", "taps", "vgg91"], "did you mean 'vgg19'"),
    ("stack out is a folder", ["stack", "--arch", "vgg11", "--out", "{d}/ckdir"], "is a folder"),
    ("stack non-sequential arch", ["stack", "--arch", "{d}/net.py:make", "--size", "16", "--out", "{d}/s.pt"],
     "needs a sequential network"),
    ("baseline save with an invalid suite", ["baseline", "save", "--suite", "{d}/invalid_toml.toml", "--store",
                                             "{d}/new/r.db", "--out", "{d}/new/b.json"], "invalid TOML"),
    ("check with an invalid suite", ["check", "--suite", "{d}/typo_key.toml", "--baseline", "{d}/baseline.json",
                                     "--store", "{d}/new/r.db"], "unknown key 'sedes'"),
    ("stack size 100000", ["stack", "--arch", "vgg11", "--size", "100000", "--out", "{d}/s.pt"], "more than the limit"),
    ("stack reference missing", ["stack", "--arch", "vgg11", "--reference", "{d}/none.png", "--out", "{d}/s.pt"],
     "does not exist"),
    ("correlate unknown format", ["correlate", "--store", "{d}/results.db", "--format", "xml"], "unknown --format 'xml'"),
    ("correlate store missing", ["correlate", "--store", "{d}/none.db"], "does not exist"),
    ("correlate out is a folder", ["correlate", "--store", "{d}/results.db", "--out", "{d}/ckdir"], "is a folder"),
]


def _values(case) -> tuple:
    return tuple(case.values) if hasattr(case, "marks") else case


def _params():
    for case in CORPUS:
        yield pytest.param(*_values(case), id=_values(case)[0], marks=getattr(case, "marks", ()))


def test_the_corpus_is_large_and_covers_every_command():
    ids = [_values(c)[0] for c in CORPUS]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    commands = {i.split()[0] for i in ids}
    assert {"run", "sweep", "report", "check", "score", "weights"} <= commands
    assert sum(i.startswith("sweep") for i in ids) >= 20  # suites: parse-time checks


@pytest.mark.parametrize("name, argv, message", list(_params()))
def test_bad_input_is_one_line_exit_2_no_traceback_nothing_written(name, argv, message, bad_dir, capsys, monkeypatch):
    d = str(bad_dir)
    monkeypatch.chdir(bad_dir)
    monkeypatch.setenv("TORCH_HOME", str(bad_dir / "torch"))
    monkeypatch.setenv("COLUMNS", "80")
    before = snapshot(bad_dir)
    with pytest.raises(SystemExit) as exc:
        main([a.replace("{d}", d) for a in argv])
    out, err = capsys.readouterr()
    assert exc.value.code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert message.replace("{d}", d) in lines[0], lines[0]
    assert snapshot(bad_dir) == before  # nothing written, nothing half-written


@pytest.mark.parametrize("argv, message", [
    (["run", "--size", "0", "--device", "cpu"], "size must be a positive integer, got 0"),
    (["sweep", "{d}/no_tasks.toml", "--store", "{d}/new/results.db"], "at least one [[task]] table"),
])
def test_the_console_script_says_the_same(argv, message, bad_dir, tmp_path):
    from tests.conftest import run_cli

    proc = run_cli(*[a.replace("{d}", str(bad_dir)) for a in argv], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {message}"] or message in proc.stderr.strip()
    assert len(proc.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_fails_before_the_optimisation(bad_dir, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(SystemExit) as exc:
            main([a.replace("{d}", str(bad_dir)) for a in RUN] + ["--out", str(ro / "out")])
        assert exc.value.code == 2 and "is not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)
