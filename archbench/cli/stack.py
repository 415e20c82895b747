"""``archbench stack``: build the stacked random VGG (He et al. 2016) and save it as a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from archbench.cli.app import app, console
from archbench.cli.run import progress_bar, split_list


@app.command()
def stack(
    arch: Annotated[str, typer.Option("--arch", "-a", help="Sequential architecture: vgg11 ... vgg19, with options.")] = "vgg19",
    candidates: Annotated[int, typer.Option(help="Random weight sets tried per convolution.")] = 5,
    reference: Annotated[str, typer.Option(help="Reference image reconstructed through each layer.")] = "astronaut",
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (use it with --init checkpoint:PATH).")] = Path("ranvgg.pt"),
    size: Annotated[int | None, typer.Option(help="Image side in px. Default: 256 on GPU, 64 on CPU.", min=1)] = None,
    iters: Annotated[int | None, typer.Option("--iters", help="Optimiser iterations per reconstruction. Default: 500 on GPU, 50 on CPU.", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Base seed: other weights, the noise start, and the candidates' derived seeds.")] = 0,
    init: Annotated[str, typer.Option(help="Random scheme the candidates are drawn from.")] = "gaussian:0.015",
    layer: Annotated[list[str] | None, typer.Option("--layer", "-l", help="Conv layers to stack (default all).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
) -> None:
    """Choose each convolution's random weights greedily by reconstruction loss; save a checkpoint."""
    from archbench.config import defaults_for, resolve_device
    from archbench.tasks.stack import build_stacked

    dev = resolve_device(device)
    size = size or defaults_for(dev).stack_size
    iters = iters or defaults_for(dev).stack_iterations
    console.print(
        f"stacking [bold]{arch}[/] ({init}, base seed {seed}): {candidates} candidates per layer, "
        f"reference {reference}, {size} px, {iters} iterations, on {dev}",
        highlight=False,
    )
    with progress_bar() as bar:
        bar_task = bar.add_task("stacking", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(bar_task, completed=done, total=total)

        result = build_stacked(
            arch, reference, candidates=candidates, size=size, iterations=iters, seed=seed, init=init,
            layers=split_list(layer) or None, device=dev, progress=progress,
        )
    table = Table(title=f"relative reconstruction loss per candidate · {arch}", title_justify="left")
    table.add_column("layer")
    for k in range(candidates):
        table.add_column(f"cand {k}", justify="right")
    table.add_column("chosen seed", justify="right")
    for layer_name, losses in result.losses.items():
        best = result.chosen[layer_name]
        cells = [f"[bold green]{v:.4g}[/]" if k == best else f"{v:.4g}" for k, v in enumerate(losses)]
        table.add_row(layer_name, *cells, str(result.seeds[layer_name][best]))
    console.print(table)
    path = result.save(out)
    console.print(f"saved {path}; use it with --arch {arch!r} --init checkpoint:{path}", highlight=False)
