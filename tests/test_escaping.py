"""The same hostile names through every renderer: terminal (never read as rich markup), CSV
(formula prefixes neutralised as OWASP recommends), Markdown and HTML (escaped), JSON (unchanged)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from archbench.escaping import csv_cell, md_cell, terminal
from tests.conftest import stored_result

HOSTILE = [
    '=HYPERLINK("http://evil.example","click")',
    "+SUM(1,2)",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "<script>alert(1)</script>",
    "[/red]x[bold]",
    "a|b*c_d`e",
    "ends with a backslash\\",
    "[link=https://evil.example]x[/link]",
]
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def leaderboard():
    from archbench.report import build_leaderboard

    rows = []
    for k, arch in enumerate(HOSTILE):
        for seed in (0, 1):
            for image in ("astronaut", "brick"):
                rows.append(stored_result(arch, seed, image, {"ssim": 0.1 * k + 0.01 * seed + (image == "brick") * 0.02}))
    return build_leaderboard(rows, reference=HOSTILE[0], n_boot=200)


def csv_text_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def assert_csv_safe(text: str) -> None:
    cells = csv_text_cells(text)
    for name in HOSTILE:
        expected = "'" + name if name.startswith(FORMULA) else name
        assert expected in cells, name
    for cell in cells:  # no cell a spreadsheet would evaluate, numbers aside
        if cell.startswith(FORMULA):
            float(cell)


def assert_md_safe(text: str) -> None:
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert re.search(r"(?<!\\)\[link=", text) is None and "\\[link=" in text  # no unescaped link
    for line in text.splitlines():
        if "a\\|b" in line and line.startswith("|"):  # the pipe of a name does not split its table row
            assert line.count("|") - line.count("\\|") == line.count(" | ") + 2 - line.count(" \\| ")
        elif "a\\|b" in line:  # prose (e.g. correlate's list of families): every pipe escaped
            assert line.count("|") == line.count("\\|")


def test_cell_helpers():
    assert csv_cell("=1+2") == "'=1+2" and csv_cell("@x") == "'@x" and csv_cell("\tx") == "'\tx"
    assert csv_cell("-0.5") == "-0.5" and csv_cell("+1e-3") == "+1e-3" and csv_cell("-inf") == "-inf"
    assert csv_cell(-0.5) == -0.5 and csv_cell(None) is None and csv_cell("vgg19") == "vgg19"
    assert md_cell("<b>|x_y") == "&lt;b&gt;\\|x\\_y"
    console = Console(record=True, width=200, file=io.StringIO())
    for name in HOSTILE:
        console.print(f"[bold]{terminal(name)}[/]")
    assert console.export_text().splitlines() == HOSTILE


def test_leaderboard_renderers(tmp_path):
    from archbench.report import render

    lb = leaderboard()
    assert_csv_safe(render(lb, "csv"))
    assert_md_safe(render(lb, "md"))
    page = render(lb, "html")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    units = {e["unit"] for b in json.loads(render(lb, "json"))["boards"] for e in b["entries"]}
    assert units == set(HOSTILE)  # JSON keeps the data as it is


def test_correlation_renderers(tmp_path):
    from archbench.report import render
    from archbench.report.correlate import CsvTruth, correlate, points_csv, to_csv, to_markdown

    truth = tmp_path / "truth.csv"
    with open(truth, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "value"])
        w.writerows([name, 50 + k] for k, name in enumerate(HOSTILE))
    lb = leaderboard()
    c = correlate(lb, CsvTruth(truth))
    assert c.rows
    assert_csv_safe(points_csv(c))
    for cell in csv_text_cells(to_csv(c)):
        assert not cell.startswith(FORMULA) or float(cell) == float(cell)
    assert_md_safe(to_markdown(c))
    page = render(lb, "html", correlation=c)
    assert "<script>alert(1)</script>" not in page


def test_check_renderers():
    from archbench.cli.baseline import check_table
    from archbench.report.check import CheckReport, CheckRow, report_markdown

    rep = CheckReport("ci", [CheckRow("reconstruct", name, "gaussian:0.015", "pool1", "ssim", 0.5, 0.1, 0.01, "worse")
                             for name in HOSTILE])
    md = report_markdown(rep, "base.json")
    assert "<script>" not in md and "&lt;script&gt;" in md
    console = Console(record=True, width=400, file=io.StringIO())
    console.print(check_table(rep, f"scores that moved (suite ci vs {terminal('[/x]base.json')})"))  # as `check` does
    text = console.export_text()
    assert "[/x]base.json" in text and all(name.rstrip("\\") in text for name in HOSTILE)


def test_results_files_and_run_table(tmp_path):
    from archbench.cli.run import results_table
    from archbench.config import RunConfig
    from archbench.results import Result, write_results

    results = [
        Result(RunConfig(arch=name, init="gaussian:0.015", seed=0, task="reconstruct", image=f"/x/{k}.png", size=16,
                         iterations=1), f"layer{name}", 0.1, {"ssim": 0.5}, status="failed", error=name)
        for k, name in enumerate(HOSTILE)
    ]
    write_results(tmp_path, results)
    assert_csv_safe((tmp_path / "results.csv").read_text())
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["config"]["arch"] for r in rows} == set(HOSTILE)
    console = Console(record=True, width=2000, file=io.StringIO())
    console.print(results_table(results, "reconstruct · " + HOSTILE[5]))
    text = console.export_text()
    assert HOSTILE[5] in text and all(f"layer{name}".rstrip("\\") in text for name in HOSTILE)


@pytest.fixture
def hostile_folder(tmp_path) -> Path:
    """Image files whose paths contain ``[/``: ``x[/red].png`` (folder ``x[``, file ``red].png``)."""
    folder = tmp_path / "x["
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / "red].png")
    (folder / "bold].png").write_bytes((folder / "red].png").read_bytes()[:60])  # header only: fails when decoded
    return folder


def test_cli_prints_names_with_markup_as_they_are(hostile_folder, tmp_path, capsys):
    from archbench.cli import main

    image = str(hostile_folder / "red].png")
    arch = tmp_path / "nets[" / "x].py"
    arch.parent.mkdir()
    arch.write_text("from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    # run: the header, the table, the results line
    main(["run", "--arch", f"{arch}:make", "--layer", "1", "--image", image, "--size", "16", "--iters", "1", "--device", "cpu",
          "--out", str(tmp_path / "o[" / "b]")])
    out = capsys.readouterr().out
    assert f"{arch}:make" in out and "red]" in out and "o[/b]" in out
    # an error naming such a path is one line, as it is
    with pytest.raises(SystemExit):
        main(["run", "--image", str(hostile_folder / "none[/b].png"), "--device", "cpu"])
    assert capsys.readouterr().err.strip() == f"error: image file '{hostile_folder / 'none[/b].png'}' does not exist"
    # a sweep whose failing job names such a path goes on to the end and reports the failure
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "s"\nsize = 16\niterations = 1\ndevice = "cpu"\nimages = ["{hostile_folder}"]\n'
                     'archs = ["vgg11"]\n[[task]]\nname = "reconstruct"\noptions = { layers = ["pool1"] }\n')
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(suite), "--store", str(tmp_path / "s[" / "r].db")])
    assert exc.value.code == 1  # one job failed, the other finished
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "bold].png" in captured.err
    assert "1 done now, 1 failed" in captured.out and "s[/r].db" in captured.out
