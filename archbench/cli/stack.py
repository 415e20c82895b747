"""``archbench stack``: build the stacked random VGG (He et al. 2016) and save it as a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from archbench.cli.app import app, console
from archbench.cli.run import progress_bar, split_list
from archbench.escaping import terminal as esc


@app.command(short_help="Choose random weights greedily; save a checkpoint.")
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
    from archbench.architectures.init import validate_init
    from archbench.config import MAX_SIZE_ENV, defaults_for, max_size, resolve_device
    from archbench.errors import ConfigError
    from archbench.fileio import check_output_file
    from archbench.images import check_image
    from archbench.tasks.stack import build_stacked

    dev = resolve_device(device)
    size = size or defaults_for(dev).stack_size
    iters = iters or defaults_for(dev).stack_iterations
    if size > max_size():
        raise ConfigError(f"--size {size} px is more than the limit of {max_size()} px (set {MAX_SIZE_ENV} to allow more)")
    if candidates < 1:
        raise ConfigError(f"--candidates must be at least 1, got {candidates}")
    validate_init(init)
    check_image(reference)
    check_output_file(out, "--out")  # before the work: a folder, /proc or read-only fails now
    console.print(
        f"stacking [bold]{esc(arch)}[/] ({esc(init)}, base seed {seed}): {candidates} candidates per layer, "
        f"reference {esc(reference)}, {size} px, {iters} iterations, on {dev}",
        highlight=False, soft_wrap=True,
    )
    bar = progress_bar()
    bar_task = bar.add_task("stacking", total=None)

    def progress(done: int, total: int) -> None:
        if not bar.live.is_started:  # shown from the first step: an invalid input stays one error line
            bar.start()
        bar.update(bar_task, completed=done, total=total)

    try:
        result = build_stacked(
            arch, reference, candidates=candidates, size=size, iterations=iters, seed=seed, init=init,
            layers=split_list(layer) or None, device=dev, progress=progress,
        )
    finally:
        bar.stop()
    table = Table(title=esc(f"relative reconstruction loss per candidate · {arch}"), title_justify="left")
    table.add_column("layer")
    for k in range(candidates):
        table.add_column(f"cand {k}", justify="right")
    table.add_column("chosen seed", justify="right")
    for layer_name, losses in result.losses.items():
        best = result.chosen[layer_name]
        cells = [f"[bold green]{v:.4g}[/]" if k == best else f"{v:.4g}" for k, v in enumerate(losses)]
        table.add_row(esc(layer_name), *cells, str(result.seeds[layer_name][best]))
    console.print(table)
    path = result.save(out)
    console.print(f"saved {path}; use it with --arch {arch!r} --init checkpoint:{path}", markup=False, highlight=False,
                  soft_wrap=True)
