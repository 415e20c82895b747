"""The issue-19 study: which settings make textures and style transfers look right on CPU.

Runs named settings of the texture and style tasks (VGG-19, ``gaussian:0.015`` unless a setting
says otherwise) on the given textures / content × style pairs, keeps every result's PNGs, and
scores them afterwards from the PNGs with the quality scale (``texture-quality``, ``stylization``)
and the judge's ``gram`` / content ``ssim``, so a setting's pictures and numbers come from the same
files. Writes ``study.json`` (every result: setting, image, seconds, scores, PNG path), a Markdown
table per task and one contact sheet per task (``texture.png``, ``style.png``) under ``--out``::

    python benchmarks/quality_study.py --out /tmp/q --texture brick --texture grass \\
        --style ../shared/images/starry_night.jpg --content astronaut \\
        --setting texture:now='{}' --setting texture:phases3='{"phases": 3}'

A setting is ``TASK:NAME=JSON``: the JSON object holds task options plus the special keys
``iterations``, ``size`` and ``arch``. Nothing is timed against anything: ``seconds`` is each run's
wall time on this machine (read it with the load average printed at the start).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from archbench.metrics import get_metric
from archbench.runner import run_task

log = logging.getLogger("quality_study")

ARCH = "vgg19"
INIT = "gaussian:0.015"


def _png(path: str) -> torch.Tensor:
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)


def _score(name: str, output: torch.Tensor, *references: torch.Tensor) -> float | None:
    try:
        metric = get_metric(name)
    except Exception as exc:  # the metric is not registered in this checkout
        log.warning("metric %s unavailable: %s", name, exc)
        return None
    with torch.no_grad():
        return float(metric.fn(output, *references)[0])


def run_setting(task: str, name: str, spec: dict[str, Any], images: list[str], style: str | None, out: Path,
                device: str = "cpu", metrics: list[str] | None = None) -> list[dict]:
    """Run one setting; ``metrics`` the run scores itself (default ``["gram"]``; ``[]`` where the
    judge's trained weights are absent: :func:`score_rows` scores the PNGs later)."""
    spec = dict(spec)
    size = int(spec.pop("size", 128))
    iterations = int(spec.pop("iterations", 100))
    arch = spec.pop("arch", ARCH)
    init = spec.pop("init", INIT)
    options = dict(spec)
    if task == "style":
        options["style"] = style
    folder = out / task / name / (Path(style).stem if style else "texture")
    started = time.perf_counter()
    report = run_task(arch, task, images, out_dir=folder, size=size, iterations=iterations, init=init, seed=0,
                      device=device, options=options, metrics=["gram"] if metrics is None else metrics)
    seconds = time.perf_counter() - started
    rows = []
    for res in report.results:
        rows.append({
            "task": task, "setting": name, "spec": {**spec, "size": size, "iterations": iterations, "arch": arch},
            "image": res.config.image_label if hasattr(res.config, "image_label") else str(res.config.image),
            "style": Path(style).stem if style else None, "layer": res.layer, "status": res.status,
            "stalled": res.stalled, "iterations_run": res.iterations_run, "seconds": res.seconds,
            "batch_seconds": seconds, "paths": dict(res.paths), "size": size,
        })
    return rows


def score_rows(rows: list[dict]) -> None:
    for row in rows:
        if row["status"] != "done" or "result" not in row["paths"]:
            continue
        out = _png(row["paths"]["result"])
        if row["task"] == "texture":
            ref = _png(row["paths"]["target"])
            row["gram"] = _score("gram", out, ref)
            row["texture-quality"] = _score("texture-quality", out, ref)
        else:
            content, style = _png(row["paths"]["target"]), _png(row["paths"]["style"])
            row["gram"] = _score("gram", out, style)
            row["ssim"] = _score("ssim", out, content)
            row["stylization"] = _score("stylization", out, content, style)


def _fmt(v: Any) -> str:
    return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def table(rows: list[dict], task: str, layer: str | None) -> str:
    keys = ["texture-quality", "gram"] if task == "texture" else ["stylization", "ssim", "gram"]
    rows = [r for r in rows if r["task"] == task and (layer is None or r["layer"] == layer)]
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    images = list(dict.fromkeys((r["image"], r["style"]) for r in rows))
    head = ["setting", *[f"{i}{' × ' + s if s and task == 'style' else ''}" for i, s in images], "mean", "s/image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in settings:
        cells, firsts = [], []
        for i, st in images:
            r = next((r for r in rows if r["setting"] == s and r["image"] == i and r["style"] == st), None)
            if r is None:
                cells.append("")
                continue
            vals = [r.get(k) for k in keys]
            firsts.append(vals[0])
            cells.append(" / ".join(_fmt(v) for v in vals) + (" (stalled)" if r.get("stalled") else ""))
        secs = [r["seconds"] for r in rows if r["setting"] == s]
        mean = np.mean([v for v in firsts if v is not None]) if any(v is not None for v in firsts) else None
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {_fmt(None if mean is None else float(mean))} | {np.mean(secs):.0f} |")
    return f"{task} ({' / '.join(keys)}){'' if layer is None else ', layer ' + layer}\n\n" + "\n".join(lines) + "\n"


def contact_sheet(rows: list[dict], task: str, layer: str | None, path: Path, cell: int = 128) -> None:
    rows = [r for r in rows if r["task"] == task and (layer is None or r["layer"] == layer) and "result" in r["paths"]]
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    images = list(dict.fromkeys((r["image"], r["style"]) for r in rows))
    if not rows:
        return
    label_w = 110
    sheet = Image.new("RGB", (label_w + cell * (len(images) + 1), 16 + cell * len(settings)), "white")
    draw = ImageDraw.Draw(sheet)
    for col, (img, st) in enumerate(images):
        draw.text((label_w + cell * (col + 1) + 2, 2), f"{img}{' x ' + st if st and task == 'style' else ''}"[:20], fill="black")
    draw.text((label_w + 2, 2), "reference", fill="black")
    for row_i, s in enumerate(settings):
        y = 16 + cell * row_i
        draw.text((2, y + cell // 2), s[:18], fill="black")
        for col, key in enumerate(images):
            r = next((r for r in rows if r["setting"] == s and (r["image"], r["style"]) == key), None)
            if r is None:
                continue
            sheet.paste(Image.open(r["paths"]["result"]).convert("RGB").resize((cell, cell)), (label_w + cell * (col + 1), y))
        first = next(r for r in rows if r["setting"] == s)
        ref = first["paths"].get("style" if task == "style" else "target")
        if row_i == 0 and ref:
            sheet.paste(Image.open(ref).convert("RGB").resize((cell, cell)), (label_w, y))
    sheet.save(path)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--texture", action="append", default=[])
    ap.add_argument("--content", action="append", default=[])
    ap.add_argument("--style", action="append", default=[])
    ap.add_argument("--setting", action="append", default=[], help="TASK:NAME=JSON (repeatable)")
    ap.add_argument("--layer", default=None, help="only this texture layer set in the tables (default: all)")
    ap.add_argument("--rescore", action="store_true", help="only rescore and re-render OUT/study.json")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "study.json"
    rows: list[dict] = json.loads(store.read_text()) if store.exists() else []
    if not args.rescore:
        print(f"load average {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}", flush=True)
        for s in args.setting:
            head, _, js = s.partition("=")
            task, _, name = head.partition(":")
            spec = json.loads(js or "{}")
            rows = [r for r in rows if not (r["task"] == task and r["setting"] == name)]
            if task == "texture":
                new = run_setting(task, name, spec, args.texture, None, args.out)
            else:
                new = [r for st in args.style for r in run_setting(task, name, spec, args.content, st, args.out)]
            rows.extend(new)
            print(f"{task}:{name}: {len(new)} results, {sum(r['seconds'] for r in new):.0f} s", flush=True)
            store.write_text(json.dumps(rows, indent=1))
    score_rows(rows)
    store.write_text(json.dumps(rows, indent=1))
    md = [table(rows, "texture", args.layer), table(rows, "style", None)]
    (args.out / "study.md").write_text("\n".join(md))
    contact_sheet(rows, "texture", args.layer, args.out / "texture.png")
    contact_sheet(rows, "style", None, args.out / "style.png")
    print("\n".join(md))


if __name__ == "__main__":
    main()
