"""Issue 26: does the default style transfer stylise photos and paintings it was never tuned on?

Runs named style settings (VGG-19 ``gaussian:0.015``, 128 px, 100 iterations, seed 0: the CPU
defaults) on photo × painting pairs and scores each result from its PNGs with
``benchmarks/quality_study.py``'s scorer (``stylization``, content ``ssim``, judge ``gram``).

Pairs (``PAIRS``): three *tuning* pairs, on which settings are compared and chosen, and one
*held-out* pair, run only for the old default and the chosen setting (``--held-out SETTING``),
never used to choose. Two of the four paintings are not files: they are drawn by
:func:`strokes_painting` (a deterministic brush-stroke picture, public domain by construction) and
written under ``--out`` with the results; the other two are ``../shared/images``'s
``starry_night.jpg`` and ``the_scream.jpg``. Photos are scikit-image's (``astronaut``,
``coffee``, ``chelsea``, ``rocket``). Reproduce::

    OMP_NUM_THREADS=1 python benchmarks/style_study.py --out /tmp/style-unseen \\
        --setting now='{}' --setting a0.03='{"content_weight": 0.03}' ... \\
        --held-out now --held-out a0.03

Writes ``study.json`` (every result), ``study.md`` (tables: tuning, held out) and ``style.png``
(contact sheet) under ``--out``. Settings are JSON objects of style options plus ``iterations``,
``size`` and ``arch`` (as in ``quality_study.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_study import contact_sheet, run_setting, score_rows  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"

#: (name, photo, painting, role); a painting name without a suffix is generated here
PAIRS = [
    ("astronaut×starry_night", "astronaut", "starry_night.jpg", "tuning"),
    ("coffee×the_scream", "coffee", "the_scream.jpg", "tuning"),
    ("chelsea×strokes_warm", "chelsea", "strokes_warm", "tuning"),
    ("rocket×strokes_cool", "rocket", "strokes_cool", "held-out"),
]

PALETTES = {
    # ochres, reds and a deep blue: a warm, Fauve-like palette
    "strokes_warm": [(214, 120, 40), (190, 50, 40), (240, 200, 80), (120, 60, 30), (40, 60, 140), (250, 230, 180)],
    # blues, greens and a pale yellow: a cool, Van-Gogh-like night palette
    "strokes_cool": [(20, 40, 110), (50, 100, 180), (120, 170, 220), (30, 110, 90), (230, 210, 90), (10, 20, 50)],
}


def strokes_painting(name: str, size: int = 256) -> Image.Image:
    """A deterministic "painting": thousands of short thick brush strokes following a flow field.

    ``strokes_warm`` swirls around two centres with broad strokes; ``strokes_cool`` follows
    horizontal waves with thinner strokes. Seeded, so the same picture every time.
    """
    warm = name == "strokes_warm"
    rng = np.random.default_rng(7 if warm else 11)
    palette = np.array(PALETTES[name], dtype=np.float64)
    img = Image.new("RGB", (size, size), tuple(int(c) for c in palette[-1 if warm else 0]))
    draw = ImageDraw.Draw(img)
    n = 2600 if warm else 3400
    for _ in range(n):
        x, y = rng.uniform(0, size, 2)
        u, v = x / size, y / size
        if warm:  # swirls around two centres
            a1 = math.atan2(v - 0.35, u - 0.3) + math.pi / 2
            a2 = math.atan2(v - 0.7, u - 0.72) - math.pi / 2
            w = (
                1
                / (1e-3 + math.hypot(u - 0.3, v - 0.35))
                / (1 / (1e-3 + math.hypot(u - 0.3, v - 0.35)) + 1 / (1e-3 + math.hypot(u - 0.72, v - 0.7)))
            )
            angle = w * a1 + (1 - w) * a2
            length, width = rng.uniform(6, 16) * size / 256, int(rng.integers(3, 7) * size / 256) + 1
            k = int(rng.choice(len(palette), p=[0.25, 0.2, 0.2, 0.15, 0.1, 0.1]))
        else:  # horizontal waves
            angle = 0.6 * math.sin(2 * math.pi * (2.5 * u + 1.5 * v)) + 0.3 * math.sin(6 * math.pi * v)
            length, width = rng.uniform(8, 20) * size / 256, int(rng.integers(2, 5) * size / 256) + 1
            band = min(int(v * 4), 3)
            probs = np.full(len(palette), 0.05)
            probs[[0, 1, 2, 3][band]] += 0.5
            probs[4] += 0.12 if band < 2 else 0.0
            k = int(rng.choice(len(palette), p=probs / probs.sum()))
        colour = np.clip(palette[k] + rng.normal(0, 18, 3), 0, 255)
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=tuple(int(c) for c in colour), width=width)
    return img.filter(ImageFilter.SMOOTH)


def painting_path(painting: str, out: Path, shared: Path = SHARED) -> str:
    if Path(painting).suffix:
        return str((shared / painting).resolve())
    path = out / "paintings" / f"{painting}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        strokes_painting(painting).save(path)
    return str(path)


def _fmt(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def tables(rows: list[dict]) -> str:
    out = []
    for role in ("tuning", "held-out"):
        pairs = [p for p in PAIRS if p[3] == role]
        settings = list(dict.fromkeys(r["setting"] for r in rows if r["pair"] in {p[0] for p in pairs}))
        head = ["setting", *[p[0] for p in pairs], "mean stylization", "min ssim", "s/image"]
        lines = [
            f"{role} pairs (each cell: stylization / content ssim / gram)",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for s in settings:
            cells, styl, ssim, secs = [], [], [], []
            for p in pairs:
                r = next((r for r in rows if r["setting"] == s and r["pair"] == p[0]), None)
                if r is None or r.get("stylization") is None:
                    cells.append("")
                    continue
                cells.append(f"{_fmt(r['stylization'])} / {_fmt(r['ssim'])} / {_fmt(r['gram'])}")
                styl.append(r["stylization"])
                ssim.append(r["ssim"])
                secs.append(r["seconds"])
            full = len(styl) == len(pairs)
            lines.append(
                f"| {s} | "
                + " | ".join(cells)
                + f" | {_fmt(float(np.mean(styl)) if full else None)} | {_fmt(min(ssim) if full else None)}"
                + f" | {np.mean(secs) if secs else 0:.0f} |"
            )
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


#: the rule that picks a setting, fixed before the runs: every tuning pair stylised at least this much
MIN_STYLIZATION = 0.5


def choose(rows: list[dict]) -> str | None:
    """The setting the tuning pairs pick: among settings whose every tuning pair reaches
    :data:`MIN_STYLIZATION`, the one with the highest minimum content SSIM over the tuning pairs.
    The held-out pair plays no part."""
    tuning = [p[0] for p in PAIRS if p[3] == "tuning"]
    best, best_ssim = None, -1.0
    for s in dict.fromkeys(r["setting"] for r in rows):
        cells = [next((r for r in rows if r["setting"] == s and r["pair"] == p), None) for p in tuning]
        if any(c is None or c.get("stylization") is None or c.get("ssim") is None for c in cells):
            continue
        if min(c["stylization"] for c in cells) >= MIN_STYLIZATION and min(c["ssim"] for c in cells) > best_ssim:
            best, best_ssim = s, min(c["ssim"] for c in cells)
    return best


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--setting", action="append", default=[], help="NAME=JSON, run on the tuning pairs")
    ap.add_argument("--held-out", action="append", default=[], help="NAME of a setting also run on the held-out pair")
    ap.add_argument(
        "--only-held-out",
        action="append",
        default=[],
        help="NAME of a setting run on the held-out pair only (a post-hoc probe, not tuning)",
    )
    ap.add_argument("--rerun", action="store_true", help="rerun settings already in OUT/study.json")
    ap.add_argument("--rescore", action="store_true", help="only rescore and re-render OUT/study.json")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the runs; scoring is on the CPU)")
    ap.add_argument("--shared", type=Path, default=SHARED, help="folder of the two shared paintings")
    ap.add_argument(
        "--no-score",
        action="store_true",
        help="run only (no trained judge here); score later with --rescore where the weights are",
    )
    ap.add_argument(
        "--relocate",
        default=None,
        help="OLD=NEW: rewrite result paths recorded under OLD (results made on another machine)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "study.json"
    rows: list[dict] = json.loads(store.read_text()) if store.exists() else []
    if args.relocate:
        old_prefix, _, new_prefix = args.relocate.partition("=")
        for r in rows:
            r["paths"] = {k: v.replace(old_prefix, new_prefix, 1) for k, v in r["paths"].items()}
    specs = {}
    for s in args.setting:
        name, _, js = s.partition("=")
        specs[name] = json.loads(js or "{}")
    if not args.rescore:
        print(f"load average {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}", flush=True)
        for name, spec in specs.items():
            for pair, photo, painting, role in PAIRS:
                if role == "held-out" and name not in args.held_out:
                    continue
                if role == "tuning" and name in args.only_held_out:
                    continue
                old = [r for r in rows if r["setting"] == name and r["pair"] == pair]
                if old and not args.rerun and all(r["spec"].items() >= spec.items() for r in old):
                    continue  # already measured with this spec
                rows = [r for r in rows if not (r["setting"] == name and r["pair"] == pair)]
                new = run_setting(
                    "style",
                    name,
                    spec,
                    [photo],
                    painting_path(painting, args.out, args.shared),
                    args.out,
                    device=args.device,
                    metrics=[] if args.no_score else None,
                )
                for r in new:
                    r.update(pair=pair, role=role, device=args.device)
                if not args.no_score:
                    score_rows(new)
                rows.extend(new)
                print(
                    f"{name} {pair}: "
                    + ", ".join(f"{k} {_fmt(new[0].get(k))}" for k in ("stylization", "ssim", "gram"))
                    + f", {new[0]['seconds']:.0f} s",
                    flush=True,
                )
                store.write_text(json.dumps(rows, indent=1))
    if args.no_score:
        return
    score_rows(rows)
    store.write_text(json.dumps(rows, indent=1))
    md = tables(rows)
    md += (
        f"\nchosen by the tuning pairs (every tuning pair stylization >= {MIN_STYLIZATION}, then the highest "
        f"minimum content SSIM): {choose(rows) or 'none qualifies'}\n"
    )
    (args.out / "study.md").write_text(md)
    for r in rows:  # the contact sheet's columns are the pairs
        r["image"] = r["pair"]
    contact_sheet(rows, "style", None, args.out / "style.png")
    print(md)


if __name__ == "__main__":
    main()
