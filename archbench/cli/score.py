"""``archbench score IMAGE_A IMAGE_B``: score two image files with any registered metrics."""

from __future__ import annotations

import json
import math
from typing import Annotated

import typer
from rich.table import Table

from archbench.cli.app import app, console, err_console
from archbench.errors import ConfigError
from archbench.escaping import terminal as esc

FORMATS = ("table", "json")
DEFAULT_METRICS = ("lpips-alex", "lpips-vgg", "ssim", "psnr", "spectrum", "color-swd")


def score_images(
    image_a: str, image_b: str, metrics: list[str], size: int | None = None, device: str = "cpu"
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Score ``image_a`` (the output) against ``image_b`` (the reference) with ``metrics``.

    Returns:
        ``(values, unavailable)``: metric -> value (``None`` where it could not be computed) and
        metric -> reason for those.
    """
    import torch

    from archbench.config import MAX_SIZE_ENV, max_size, resolve_device
    from archbench.images import load_image
    from archbench.metrics import MetricUnavailable, get_metric

    chosen = [get_metric(m) for m in metrics]  # unknown names fail before any work
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError(f"--size must be a positive integer, got {size!r}")
    if size is not None and size > max_size():
        raise ConfigError(f"--size {size} px is more than the limit of {max_size()} px (set {MAX_SIZE_ENV} to allow more)")
    dev = torch.device(resolve_device(device))
    a = load_image(image_a, size=size).to(dev)
    b = load_image(image_b, size=size).to(dev)
    if a.shape != b.shape:  # metrics compare pixel by pixel: never stretch one image onto the other
        (ha, wa), (hb, wb) = a.shape[-2:], b.shape[-2:]
        raise ConfigError(
            f"the images differ in size ({image_a}: {wa}x{ha} px, {image_b}: {wb}x{hb} px); metrics compare them "
            "pixel by pixel: pass --size N to resize both (shorter side to N px, centre crop), or give images of one size"
        )
    values: dict[str, float | None] = {}
    unavailable: dict[str, str] = {}
    for metric in chosen:
        if len(metric.roles) != 1:
            values[metric.name] = None
            unavailable[metric.name] = (f"{metric.name} compares the output with {len(metric.roles)} images "
                                        f"({', '.join(metric.roles)}); `archbench score` compares two images")
            continue
        try:
            with torch.no_grad():
                v = float(metric(a, b)[0])
            values[metric.name] = v if math.isfinite(v) else None
            if not math.isfinite(v):
                unavailable[metric.name] = f"{metric.name} is not finite for these images ({v})"
        except MetricUnavailable as exc:
            values[metric.name], unavailable[metric.name] = None, str(exc)
        except ValueError as exc:  # e.g. images too small for the metric's window
            values[metric.name], unavailable[metric.name] = None, f"{metric.name}: {exc}"
    return values, unavailable


@app.command("score", short_help="Score one image against another with any metrics.")
def score_cmd(
    image_a: Annotated[str, typer.Argument(help="Image scored (file path or built-in image name).")],
    image_b: Annotated[str, typer.Argument(help="Reference image it is compared with.")],
    metrics: Annotated[
        str, typer.Option("--metrics", "-m", help="Comma-separated metric names (archbench list metrics).")
    ] = ",".join(DEFAULT_METRICS),
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    size: Annotated[
        int | None, typer.Option("--size", help="Resize both images (shorter side, centre crop) first.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Score IMAGE_A against IMAGE_B with any registered metrics.

    A metric that cannot be computed here (e.g. LPIPS without its trained weights) gets an empty
    value (null in JSON) and one line on stderr saying why and how to fix it; the exit code stays 0.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"invalid --format {fmt!r}; valid: {', '.join(FORMATS)}")
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    if not names:
        raise ConfigError("--metrics is empty; name at least one metric (archbench list metrics)")
    values, unavailable = score_images(image_a, image_b, names, size=size, device=device)
    for name, reason in unavailable.items():
        err_console.print(f"[yellow]{esc(name)} unavailable:[/] {esc(reason)}", highlight=False, soft_wrap=True)
    if fmt == "json":
        typer.echo(json.dumps(values))
        return
    from archbench.metrics import get_metric

    table = Table(title=esc(f"{image_a} vs {image_b}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("better")
    for name, value in values.items():
        better = "higher" if get_metric(name).higher_is_better else "lower"
        table.add_row(esc(name), "—" if value is None else f"{value:.4f}", better)
    console.print(table)
