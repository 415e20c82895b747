"""``archbench run``: one architecture, one task, scored results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from archbench.cli.app import RUN_OUT, STORE_FILE, app, console, err_console, store_file
from archbench.errors import ConfigError
from archbench.escaping import terminal as escape


def split_list(values: list[str] | None) -> list[str]:
    """Accept both repeated options and comma-separated values."""
    out: list[str] = []
    for v in values or []:
        out.extend(s.strip() for s in v.split(",") if s.strip())
    return out


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict with numbers and booleans parsed."""
    from archbench.architectures.registry import _parse_value

    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"malformed --option {pair!r}; expected KEY=VALUE")
        k, v = pair.split("=", 1)
        out[k.strip().replace("-", "_")] = _parse_value(v)
    return out


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


RUN_FORMATS = ("table", "csv", "json")


def _score_columns(results) -> tuple[list[str], list[str]]:
    """(metric names in order of first appearance, their scored names as reports show them)."""
    from archbench.metrics import scored_name

    metric_names: list[str] = []
    for r in results:
        for m in r.metrics:
            if m not in metric_names:
                metric_names.append(m)
    judge = next((r.judge for r in results if r.judge), None)
    return metric_names, [scored_name(m, judge) for m in metric_names]


def _value(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def _status(r) -> str:
    """The status cell (rich markup; names escaped)."""
    status = escape(r.status) if not r.error else f"[red]{escape(r.status)}: {escape(r.error)}[/]"
    if getattr(r, "stalled", None):
        status += " [yellow](stalled: did not leave its start)[/]"
    return status


def wide_width(results) -> int:
    """Columns the one-row-per-result table needs without cutting a header or a value (a failure's
    reason may wrap)."""
    from rich.cells import cell_len

    metric_names, scored = _score_columns(results)
    cells: list[list[str]] = [["image"], ["layer"], ["final_loss"], *([name] for name in scored), ["iters"],
                              ["seconds"], ["status", "done"]]
    for r in results:
        row = [r.image, r.layer, _value(r.final_loss), *(_value(r.metrics.get(m)) for m in metric_names),
               str(r.iterations_run), f"{r.seconds:.1f}"]
        for column, text in zip(cells, row, strict=False):
            column.append(text)
    return sum(max(cell_len(t) for t in column) for column in cells) + 3 * len(cells) + 1


def results_table(results, title: str, width: int | None = None) -> Table:
    """The results as a table that fits ``width`` columns (default: the console's).

    Wide enough: one row per result, a column per score. Narrower (many scores, an 80-column
    terminal): one row per score (image, layer, score, value), so that no header or value is cut.
    """
    width = console.width if width is None else width
    if wide_width(results) <= width:
        return _wide_table(results, title)
    return _long_table(results, title)


def _wide_table(results, title: str) -> Table:
    metric_names, scored = _score_columns(results)
    table = Table(title=escape(title), title_justify="left")
    for col in ["image", "layer", "final_loss", *scored, "iters", "seconds", "status"]:
        left = col in ("image", "layer", "status")
        table.add_column(escape(col), justify="left" if left else "right", no_wrap=not left)
    for r in results:
        vals = [_value(r.metrics.get(m)) for m in metric_names]
        table.add_row(escape(r.image), escape(r.layer), _value(r.final_loss), *vals, str(r.iterations_run),
                      f"{r.seconds:.1f}", _status(r))
    return table


def _long_table(results, title: str) -> Table:
    metric_names, scored = _score_columns(results)
    table = Table(title=escape(title), title_justify="left")
    for col, right in (("image", False), ("layer", False), ("score", False), ("value", True)):
        table.add_column(col, justify="right" if right else "left", min_width=len(col), overflow="fold")
    for r in results:
        rows = [("final_loss", _value(r.final_loss)),
                *((name, _value(r.metrics.get(m))) for m, name in zip(metric_names, scored, strict=True)
                  if m in r.metrics),
                ("status", f"{_status(r)}, {r.iterations_run} iters, {r.seconds:.1f} s")]
        for i, (name, value) in enumerate(rows):
            first = i == 0
            table.add_row(escape(r.image) if first else "", escape(r.layer) if first else "", escape(name), value,
                          end_section=i == len(rows) - 1)
    return table


def results_csv(results) -> str:
    """The results as CSV: the columns of ``results.csv`` (identity, final loss, one column per
    metric, timings, status, key), this run's rows only."""
    import csv
    import io

    from archbench.escaping import csv_dict
    from archbench.results import csv_columns

    metric_names, _ = _score_columns(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_columns(metric_names), extrasaction="ignore")
    writer.writeheader()
    for r in results:
        writer.writerow(csv_dict({k: ("" if v is None else v) for k, v in r.row().items()}))
    return buf.getvalue()


def results_json(results) -> str:
    """The results as a JSON array of the rows ``results.jsonl`` holds (scores, configuration,
    loss trace, provenance)."""
    import json

    return json.dumps([r.to_json() for r in results], indent=1, sort_keys=True, default=str) + "\n"


def report_arg(store: Path) -> str:
    """What to give ``archbench report`` for ``store``: its folder when it is a folder's results.db."""
    return str(store.parent) if store.name == STORE_FILE else str(store)


def record(store: Path, outcomes) -> tuple[int, int]:
    """Store ``outcomes`` in ``store`` the way a sweep stores its jobs (one row per run, keyed by
    its configuration; no suite); returns (written, already stored as done and kept)."""
    from archbench.store import ResultStore

    written = kept = 0
    with ResultStore(store) as db:
        for outcome in outcomes:
            outcome.provenance = {**outcome.provenance, "command": "archbench run"}
            if db.put(outcome):
                written += 1
            else:
                kept += 1
    return written, kept


@app.command(short_help="Run one task on one architecture; store, score and print.")
def run(
    arch: Annotated[str, typer.Option("--arch", "-a", help="Architecture spec: vgg19, vgg19(pool=max), variants vgg19(act=elu,down=stride,width=0.5,depth=2) (act: relu, leaky-relu[:SLOPE], elu, selu, gelu, tanh; down: avg, max, stride), alexnet, resnet18, champandard2016, tv:NAME, timm:NAME, file.py:factory (see `archbench list archs`).")] = "vgg19",
    task: Annotated[str, typer.Option("--task", "-t", help="Task: reconstruct, texture, style, maximize, proxies (see `archbench list tasks`).")] = "reconstruct",
    layer: Annotated[list[str] | None, typer.Option("--layer", "-l", help="Layer(s) to use, repeatable or comma-separated. reconstruct: each separately (default pool1..pool5 for VGG); texture: Gram layers, cumulative sets (default conv1_1..conv5_1); maximize: each separately.")] = None,
    image: Annotated[list[str] | None, typer.Option("--image", "-i", help="Built-in image name, file or folder; repeatable. Default: astronaut.")] = None,
    size: Annotated[int | None, typer.Option(help="Image side in px. Default: 256 on GPU (paper), 128 on CPU.")] = None,
    iters: Annotated[int | None, typer.Option("--iters", help="Optimiser iterations per problem. Default: 500 on GPU (paper), 100 on CPU.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random weights and the white-noise start.")] = 0,
    init: Annotated[str, typer.Option(help="Weights: gaussian:SIGMA, kaiming, native (the architecture's own init), orthogonal, uniform, pretrained, checkpoint:PATH.")] = "gaussian:0.015",
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu, cuda.")] = "auto",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: PNGs under ARCH-INIT-sSEED/IMAGE/TASK-KEY/, this run's results.csv/results.jsonl.")] = RUN_OUT,
    store: Annotated[Path | None, typer.Option("--store", "-s", help="Results database the run is recorded in, as a sweep records its jobs (default: OUT/results.db); `archbench report OUT` ranks every run recorded there.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="How the results print: table (fits the terminal), csv or json (for scripts: only the data goes to stdout).")] = "table",
    metrics: Annotated[list[str] | None, typer.Option("--metrics", "-m", help="Metrics, comma-separated, e.g. ssim,psnr,lpips,gram,spectrum,color-swd (default: the task's; see `archbench list metrics`).")] = None,
    optimizer: Annotated[str, typer.Option(help="lbfgs (paper) or adam.")] = "lbfgs",
    history: Annotated[int, typer.Option(help="L-BFGS history size.")] = 100,
    normalize: Annotated[str | None, typer.Option(help="reconstruct: feature-loss normalisation relative (default), paper, none.")] = None,
    tv_weight: Annotated[float | None, typer.Option(help="reconstruct, maximize: weight of the TV prior (default 0 = off).")] = None,
    tv_beta: Annotated[float | None, typer.Option(help="reconstruct: beta of the TV prior (default 2).")] = None,
    alpha_weight: Annotated[float | None, typer.Option(help="reconstruct: weight of the alpha-norm prior (default 0 = off).")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-O", help="Any task option as KEY=VALUE (repeatable). maximize priors: param=pixel|fourier (pixel), l2_decay=0.01, blur_every=4, blur_sigma=0.5, jitter=4, unit=channel|center (channel), natural=photos.")] = None,
    channels: Annotated[str | None, typer.Option(help="maximize: channels per layer: N (N evenly spaced, default 8), a list 0,5,9 (one channel: 5,), or all.")] = None,
    style: Annotated[str | None, typer.Option(help="style: the style image (built-in name or path).")] = None,
    content: Annotated[str | None, typer.Option(help="style: the content image (default: --image).")] = None,
    start: Annotated[str | None, typer.Option(help="reconstruct: pink (default: faint 1/f noise) or noise (white, the paper's); style: noise (paper), content or faint.")] = None,
    preset: Annotated[str | None, typer.Option(help="reconstruct: archbench (default: Fourier basis from pink noise) or paper (pixels from white noise); texture, style: archbench (default), paper, gatys-texture, gatys-style, pytorch-tutorial, neural-style.")] = None,
    weighting: Annotated[str | None, typer.Option(help="texture, style: layer weights auto (paper), none, inverse-loss, normalize-gradients.")] = None,
    gram_norm: Annotated[str | None, typer.Option(help="texture, style: Gram normalisation paper, m, hw, nm, chw.")] = None,
    judge: Annotated[str, typer.Option(help="Network scoring the gram metric: auto, trained-vgg16, random-vgg19.")] = "auto",
    loss: Annotated[str | None, typer.Option(help="texture, style: gram (paper, default) or patches (neural patches on conv3_1, conv4_1; -O variety=W adds the variety term).")] = None,
    phases: Annotated[int | None, typer.Option(help="Coarse-to-fine phases (any task): phase p of N at size/2^(N-p), each from the upsampled previous result; --iters per phase. Default 1.")] = None,
) -> None:
    """Run one task on one architecture, write images and scored results, record them in a results
    store (OUT/results.db; `archbench report OUT` ranks every run there) and print them: a table
    that fits the terminal, or csv or json for scripts."""
    from archbench.config import resolve
    from archbench.fileio import check_output_dir, check_output_file
    from archbench.runner import STRICT, RunReport, execute, prepare

    if fmt not in RUN_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; valid: {', '.join(RUN_FORMATS)}")
    say = console if fmt == "table" else err_console  # csv, json: stdout carries the data only
    options = parse_options(option)
    layers = split_list(layer)
    flags = {
        "normalize": normalize, "tv_weight": tv_weight, "tv_beta": tv_beta, "alpha_weight": alpha_weight,
        "style": style, "content": content, "start": start, "preset": preset, "weighting": weighting,
        "gram_norm": gram_norm, "loss": loss, "phases": phases,
    }
    flags.update(layers=layers or None, channels=channels)
    for key, value in flags.items():  # one setting, two values: say so rather than pick one
        given = options.get(key)
        if key == "layers" and isinstance(given, str):
            given = split_list([given])
        if value is not None and key in options and given != value:
            raise ConfigError(f"{key} is given twice, as --{'layer' if key == 'layers' else key.replace('_', '-')} "
                              f"{value!r} and as -O {key}={options[key]!r}; give it once")
    options.update({k: v for k, v in flags.items() if v is not None})
    configs = resolve(
        arch, task, split_list(image) or ["astronaut"], size=size, iterations=iters, seed=seed, init=init,
        device=device, metrics=split_list(metrics) or None, options=options, optimizer=optimizer, history=history,
        judge=judge,
    )
    plan = prepare(configs, batch_images=len(configs))  # networks built, every input checked: nothing runs yet
    check_output_dir(out, "--out")  # a file, /proc, read-only: fail now, not after the optimisation
    store_path = store_file(store) if store is not None else out / STORE_FILE
    check_output_file(store_path, "--store")
    first = configs[0]
    from archbench.tasks import get_task

    budget = f"{first.iterations} iterations, {first.optimizer}" if get_task(task).optimizes else "no optimisation"
    say.print(
        f"[bold]{escape(task)}[/] on [bold]{escape(first.arch)}[/] ({escape(first.init)}, seed {seed}): {first.size} px, "
        f"{escape(budget)}, on {escape(first.device)}"
        + (f", gram judge {escape(first.judge)}" if first.judge else "")
        + ("" if first.device.startswith("cuda") else " [dim](CPU defaults unless given; the paper's settings: --size 256 --iters 500"
            + (" --preset paper" if task in ("reconstruct", "style") else "") + ")[/]"),
        highlight=False, soft_wrap=True,
    )
    with progress_bar() as bar:
        bar_task = bar.add_task("optimising" if get_task(task).optimizes else "computing", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(bar_task, completed=done, total=total)

        report = RunReport.collect(configs, execute(plan, failures=STRICT, out_dir=out, progress=progress), out)
    unavailable = {m: why for r in report.results for m, why in r.extra.get("unavailable", {}).items()}
    for name, why in unavailable.items():
        err_console.print(f"[yellow]note:[/] metric {escape(name)} unavailable: {escape(why)}", highlight=False, soft_wrap=True)
    written, kept = record(store_path, report.outcomes)
    if fmt == "csv":
        sys.stdout.write(results_csv(report.results))
    elif fmt == "json":
        sys.stdout.write(results_json(report.results))
    else:
        console.print(results_table(report.results, f"{task} · {first.arch} · {first.init} · seed {seed}"))
    say.print(f"results: {', '.join(str(p) for p in report.files)}", highlight=False, markup=False, soft_wrap=True)
    say.print(f"recorded in {store_path}" + (f" ({kept} of {written + kept} runs were stored there already and are "
                                             "kept: same configuration, same key)" if kept else "")
              + f"; rank every run there with: archbench report {report_arg(store_path)}",
              highlight=False, markup=False, soft_wrap=True)
    failed = [r for r in report.results if r.status != "done"]
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(report.results)} optimisations failed[/]")
        raise typer.Exit(1)
