"""Issue 26: per-level reconstruction SSIM of given architectures from a sweep store, mean over
photos, per init, beside their ImageNet top-1 (torchvision's weights metadata), as a Markdown table.

    python benchmarks/accuracy_levels5_pairs.py --store /tmp/acc5/s.db \
        --arch tv:resnet18 --arch tv:resnet50 --arch tv:convnext_tiny --arch tv:convnext_small

Reads the store read-only (sqlite3); a tap's stride level comes from the architecture itself.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
from collections import defaultdict

from archbench.architectures import create_arch

TOP1 = {  # torchvision IMAGENET1K_V1 weights, acc@1 (the truth of archbench correlate)
    "tv:resnet18": 69.758, "tv:resnet50": 76.13, "tv:convnext_tiny": 82.52, "tv:convnext_small": 83.616,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--arch", action="append", required=True)
    ap.add_argument("--metric", default="ssim")
    a = ap.parse_args()
    db = sqlite3.connect(f"file:{a.store}?mode=ro", uri=True)
    rows = db.execute(
        "select r.config, s.layer, s.value from runs r join scores s on s.run_key = r.key "
        "where r.status = 'done' and s.metric = ?", (a.metric,)).fetchall()
    vals: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    images: dict[tuple[str, str], set[str]] = defaultdict(set)
    for config, layer, value in rows:
        c = json.loads(config)
        if c["task"] != "reconstruct" or c["arch"] not in a.arch:
            continue
        vals[(c["arch"], c["init"], layer)].append(value)
        images[(c["arch"], c["init"])].add(c["image"])
    print(f"| arch | top-1 | init | photos | {a.metric} level 2 | level 3 | level 4 | level 5 |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for arch in a.arch:
        net = create_arch(arch, "kaiming")
        first = {lv: net.taps_at_level(lv)[0].name for lv in (2, 3, 4, 5) if net.taps_at_level(lv)}
        for init in sorted({i for (ar, i) in images if ar == arch}):
            cells = []
            for lv in (2, 3, 4, 5):
                v = vals.get((arch, init, first.get(lv, "")), [])
                cells.append(f"{statistics.mean(v):.3f} ({first[lv]})" if v else "–")
            print(f"| {arch} | {TOP1.get(arch, '')} | {init} | {len(images[(arch, init)])} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
