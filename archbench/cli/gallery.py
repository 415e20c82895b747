"""``archbench gallery``: reconstructions, textures and style transfers of one architecture on one page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archbench.cli.app import app, console, err_console
from archbench.cli.run import split_list
from archbench.escaping import terminal as esc


@app.command(short_help="Every task on one architecture, as one HTML page.")
def gallery(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the page (index.html), its store (gallery.db) and images.")] = Path("archbench-gallery"),
    photo: Annotated[list[str] | None, typer.Option("--photo", "-p", help="Photo to reconstruct and stylise (built-in name or file), repeatable. Default: astronaut, chelsea.")] = None,
    texture: Annotated[list[str] | None, typer.Option("--texture", "-x", help="Texture source (built-in name or file), repeatable. Default: brick, grass, gravel.")] = None,
    style: Annotated[list[str] | None, typer.Option("--style", help="Style image (built-in name or file), repeatable. Default: the textures.")] = None,
    arch: Annotated[str, typer.Option("--arch", "-a", help="Architecture spec (see `archbench list archs`).")] = "vgg19",
    init: Annotated[str, typer.Option(help="Weights, as for `archbench run`.")] = "gaussian:0.015",
    seed: Annotated[int, typer.Option(help="Seed of the weights and the white-noise starts.")] = 0,
    size: Annotated[int | None, typer.Option(help="Image side in px. Default: the task default (256 on GPU, 128 on CPU).")] = None,
    iters: Annotated[int | None, typer.Option("--iters", help="Iterations per problem. Default: the task default.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    judge: Annotated[str, typer.Option(help="Network scoring gram, texture-quality and stylization: auto, trained-vgg16, random-vgg19.")] = "auto",
    recon_layer: Annotated[list[str] | None, typer.Option("--recon-layer", help="Reconstruction layers, repeatable or comma-separated. Default: the task's (pool1..pool5 for VGG).")] = None,
    texture_layer: Annotated[list[str] | None, typer.Option("--texture-layer", help="Texture layers (cumulative sets), repeatable or comma-separated. Default: the task's (conv1_1..conv5_1 for VGG).")] = None,
    section: Annotated[list[str] | None, typer.Option("--section", help="Sections to run: figure1, reconstruct, texture, style (repeatable or comma-separated). Default: all.")] = None,
    trained: Annotated[str, typer.Option("--trained", help="Trained network of the figure1 section (--init pretrained), or 'none'. VGG-19's trained weights are not offline; VGG-16's are.")] = "vgg16",
    store: Annotated[Path | None, typer.Option("--store", "-s", help="Results store. Default: OUT/gallery.db (a rerun reuses what is stored there).")] = None,
) -> None:
    """Run the paper's Figure 1 (pool1..pool5 of the random network, paper and archbench presets, beside a
    trained VGG-16), reconstructions per layer, textures per layer set and style transfers (each photo in each
    style) on one architecture at the task defaults, store them like any sweep, and write one
    self-contained HTML page (OUT/index.html) with the quality numbers under each picture."""
    from archbench.cli.sweep import run_suite_with_progress
    from archbench.gallery import DEFAULT_PHOTOS, DEFAULT_TEXTURES, SECTIONS, GallerySpec, run_gallery

    spec = GallerySpec(
        photos=split_list(photo) or list(DEFAULT_PHOTOS),
        textures=split_list(texture) or list(DEFAULT_TEXTURES),
        styles=split_list(style) or None,
        arch=arch, init=init, seed=seed, size=size, iterations=iters, device=device, judge=judge,
        reconstruct_layers=split_list(recon_layer) or None, texture_layers=split_list(texture_layer) or None,
        sections=tuple(split_list(section) or SECTIONS), trained=None if trained.lower() == "none" else trained,
    )
    report = run_gallery(spec, out, store, runner=lambda suite, db: run_suite_with_progress(suite, db, redefine=True))
    s = report.summary
    shown = sum(len(r.pictures) for sec in report.sections for r in sec.rows)
    console.print(
        f"gallery: {s.total} jobs ({s.skipped} already stored, {s.done} done now, {s.failed} failed), "
        f"{shown} pictures; page {esc(report.page)}",
        highlight=False, soft_wrap=True,
    )
    if s.failed:
        err_console.print(f"[red]{s.failed} of {s.total} gallery jobs failed[/] (their reasons are on the page)")
        raise SystemExit(1)
