"""``archbench run``: one architecture, one task, scored results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from archbench.cli.app import app, console, err_console
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


def results_table(results, title: str) -> Table:
    table = Table(title=escape(title), title_justify="left")
    from archbench.metrics import scored_name

    metric_names: list[str] = []
    for r in results:
        for m in r.metrics:
            if m not in metric_names:
                metric_names.append(m)
    judge = next((r.judge for r in results if r.judge), None)
    for col in ["image", "layer", "final_loss", *(scored_name(m, judge) for m in metric_names), "iters", "seconds", "status"]:
        table.add_column(escape(col), justify="left" if col in ("image", "layer", "status") else "right")
    for r in results:
        vals = ["—" if r.metrics.get(m) is None else f"{r.metrics[m]:.4g}" for m in metric_names]
        status = r.status if not r.error else f"[red]{escape(r.status)}: {escape(r.error)}[/]"
        if getattr(r, "stalled", None):
            status += " [yellow](stalled: did not leave its start)[/]"
        loss = "—" if r.final_loss is None else f"{r.final_loss:.4g}"
        table.add_row(escape(r.image), escape(r.layer), loss, *vals, str(r.iterations), f"{r.seconds:.1f}", status)
    return table


@app.command()
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
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for images and results.csv/results.jsonl.")] = Path("archbench-out"),
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
    start: Annotated[str | None, typer.Option(help="style: start from noise (paper), content or faint.")] = None,
    preset: Annotated[str | None, typer.Option(help="texture, style: archbench (default), paper, gatys-texture, gatys-style, pytorch-tutorial, neural-style.")] = None,
    weighting: Annotated[str | None, typer.Option(help="texture, style: layer weights auto (paper), none, inverse-loss, normalize-gradients.")] = None,
    gram_norm: Annotated[str | None, typer.Option(help="texture, style: Gram normalisation paper, m, hw, nm, chw.")] = None,
    judge: Annotated[str, typer.Option(help="Network scoring the gram metric: auto, trained-vgg16, random-vgg19.")] = "auto",
    loss: Annotated[str | None, typer.Option(help="texture, style: gram (paper, default) or patches (neural patches on conv3_1, conv4_1; -O variety=W adds the variety term).")] = None,
    phases: Annotated[int | None, typer.Option(help="Coarse-to-fine phases (any task): phase p of N at size/2^(N-p), each from the upsampled previous result; --iters per phase. Default 1.")] = None,
) -> None:
    """Run one task on one architecture, write images and scored results, and print a table."""
    from archbench.config import resolve
    from archbench.fileio import check_output_dir
    from archbench.runner import prepare, run_configs

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
    first = configs[0]
    from archbench.tasks import get_task

    budget = f"{first.iterations} iterations, {first.optimizer}" if get_task(task).optimizes else "no optimisation"
    console.print(
        f"[bold]{escape(task)}[/] on [bold]{escape(first.arch)}[/] ({escape(first.init)}, seed {seed}): {first.size} px, "
        f"{escape(budget)}, on {escape(first.device)}"
        + (f", gram judge {escape(first.judge)}" if first.judge else "")
        + ("" if first.device.startswith("cuda") else " [dim](CPU defaults unless given; the paper's settings: --size 256 --iters 500)[/]"),
        highlight=False, soft_wrap=True,
    )
    with progress_bar() as bar:
        bar_task = bar.add_task("optimising" if get_task(task).optimizes else "computing", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(bar_task, completed=done, total=total)

        report = run_configs(configs, out_dir=out, progress=progress, plan=plan)
    unavailable = {m: why for r in report.results for m, why in r.extra.get("unavailable", {}).items()}
    for name, why in unavailable.items():
        err_console.print(f"[yellow]note:[/] metric {escape(name)} unavailable: {escape(why)}", highlight=False, soft_wrap=True)
    console.print(results_table(report.results, f"{task} · {first.arch} · {first.init} · seed {seed}"))
    console.print(f"results: {', '.join(str(p) for p in report.files)}", highlight=False, markup=False, soft_wrap=True)
    failed = [r for r in report.results if r.status != "done"]
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(report.results)} optimisations failed[/]")
        raise typer.Exit(1)
