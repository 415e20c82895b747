"""Deep-layer reconstruction: SSIM per layer against wall time, old vs new defaults, one process.

Runs the reconstruction task (VGG-19, σ = 0.015, CPU default size) under the paper's settings
(``preset=paper``: pixels from white noise, archbench's default before issue 26) and under the
``archbench`` preset (1/f Fourier parameterisation from faint pink noise, the default since issue
26) at several iteration budgets, side by side in the same process on the same machine, and
writes one table: per setting, image and budget, the SSIM of pool1 … pool5 and the wall time of
the whole run. The settings alternate (paper, archbench, paper, ...) so that a change of machine
load hits both alike.

    python benchmarks/deep_layers.py                      # astronaut + chelsea, 50/100/200 its
    python benchmarks/deep_layers.py --images astronaut --budgets 100 --out /tmp/x

Output: ``reports/benchmarks/deep-layers.{json,md}`` (``--out`` to change the folder), with the
machine's core count and load average at the start and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import archbench
from archbench.config import resolve_device
from archbench.fileio import atomic_write

SETTINGS = {
    "paper (old default)": {"preset": "paper"},
    "archbench (new default)": {},
}
LAYERS = ("pool1", "pool2", "pool3", "pool4", "pool5")


def run_one(name: str, options: dict, image: str, budget: int, size: int, device: str = "auto") -> dict:
    t0 = time.perf_counter()
    report = archbench.run_task("vgg19", "reconstruct", [image], size=size, iterations=budget, device=device,
                                options=dict(options))
    wall = time.perf_counter() - t0
    ssim = {r.layer: r.metrics.get("ssim") for r in report.results}
    return {"setting": name, "image": image, "iterations": budget, "size": size, "wall_s": round(wall, 1), "ssim": ssim}


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Deep-layer reconstruction: SSIM per layer against wall time",
        "",
        f"`python benchmarks/deep_layers.py` on {meta['machine']}; load average {meta['load_start']} at the "
        f"start, {meta['load_end']} at the end; {meta['threads']} torch threads. VGG-19 gaussian:0.015, seed 0, "
        f"{rows[0]['size']} px; wall time of the whole run (5 layers, network build and scoring included).",
        "",
        "| setting | image | iterations | wall s | " + " | ".join(LAYERS) + " |",
        "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in LAYERS) + " |",
    ]
    for r in rows:
        cells = [f"{r['ssim'].get(layer):.3f}" if r["ssim"].get(layer) is not None else "—" for layer in LAYERS]
        lines.append(f"| {r['setting']} | {r['image']} | {r['iterations']} | {r['wall_s']} | " + " | ".join(cells) + " |")
    pairs = _pairs(rows)
    if pairs:
        lines += [
            "",
            "New default against the old, same image and budget (wall-time ratio new/old; SSIM differences):",
            "",
            "| image | iterations | wall new/old | " + " | ".join(f"Δ {layer}" for layer in LAYERS) + " |",
            "| --- | ---: | ---: | " + " | ".join("---:" for _ in LAYERS) + " |",
        ]
        for (image, budget), (old, new) in pairs.items():
            ratio = new["wall_s"] / old["wall_s"] if old["wall_s"] else float("nan")
            deltas = [
                f"{new['ssim'][layer] - old['ssim'][layer]:+.3f}"
                if new["ssim"].get(layer) is not None and old["ssim"].get(layer) is not None
                else "—"
                for layer in LAYERS
            ]
            lines.append(f"| {image} | {budget} | {ratio:.2f} | " + " | ".join(deltas) + " |")
    return "\n".join(lines) + "\n"


def _pairs(rows: list[dict]) -> dict[tuple[str, int], tuple[dict, dict]]:
    """(image, budget) -> (old default's row, new default's row), where both ran."""
    old_name, new_name = SETTINGS
    by = {(r["setting"], r["image"], r["iterations"]): r for r in rows}
    return {
        (image, budget): (by[(old_name, image, budget)], r)
        for (setting, image, budget), r in by.items()
        if setting == new_name and (old_name, image, budget) in by
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="astronaut,chelsea")
    ap.add_argument("--budgets", default="50,100,200")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", default="reports/benchmarks")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--name", default="deep-layers", help="file stem of the outputs (NAME.json, NAME.md)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    gpu = f", {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else ""
    meta = {
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}{gpu}",
        "device": device,
        "threads": torch.get_num_threads(),
        "load_start": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "archbench": archbench.__version__,
    }
    rows: list[dict] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for image in args.images.split(","):
        for budget in (int(b) for b in args.budgets.split(",")):
            for name, options in SETTINGS.items():
                row = run_one(name, options, image, budget, args.size, device)
                print(json.dumps(row), flush=True)
                rows.append(row)
                meta["load_end"] = round(os.getloadavg()[0], 2)
                # written after every row, so that a run cut short keeps what it measured
                atomic_write(out / f"{args.name}.json", json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
                atomic_write(out / f"{args.name}.md", markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
