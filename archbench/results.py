"""Result rows and the per-run result files (``results.csv`` and ``results.jsonl``).

One :class:`Result` per optimisation problem. CSV rows hold the flat columns (identity, settings
summary, final loss, one column per metric, timings); JSON lines hold everything, including the
loss trace, the full settings and the package versions, so a number can be traced to what made it.
Files are rewritten atomically (temporary file + rename), merging with rows already there: a new
run never loses earlier results, and a row with the same key is replaced.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

#: identity and summary columns, in CSV order; metric columns follow, then timing/status columns
BASE_COLUMNS = ["arch", "init", "seed", "task", "layer", "image", "size", "iterations", "evaluations", "final_loss"]
TAIL_COLUMNS = ["seconds", "device", "status", "error", "result_path"]


@dataclass
class Result:
    """One scored optimisation result."""

    arch: str
    init: str
    seed: int
    task: str
    layer: str
    image: str
    size: int
    iterations: int
    evaluations: int
    final_loss: float | None
    metrics: dict[str, float | None]
    seconds: float
    device: str
    status: str = "done"
    error: str | None = None
    loss_trace: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity of the result: hash of arch, init, seed, task, layer, image and settings."""
        ident = [self.arch, self.init, self.seed, self.task, self.layer, self.image, self.size, self.settings]
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = self.key
        return d


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that determine results."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("archbench", "torch", "torchvision", "timm", "numpy", "scikit-image", "lpips"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    import torch

    out["torch"] = torch.__version__  # includes the build (+cu130, +cpu)
    out["cuda"] = torch.version.cuda or "none"
    return out


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (empty where unavailable), for provenance."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``results.jsonl`` (an absent file gives no rows)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def write_results(out_dir: str | Path, results: list[Result]) -> tuple[Path, Path]:
    """Merge ``results`` into ``out_dir/results.jsonl`` and ``results.csv`` atomically.

    Rows already in the files are kept; a row whose key equals a new one is replaced.
    """
    out_dir = Path(out_dir)
    jsonl, csv_path = out_dir / "results.jsonl", out_dir / "results.csv"
    new = {r.key: r.to_json() for r in results}
    rows = [r for r in read_jsonl(jsonl) if r.get("key") not in new] + list(new.values())
    _atomic_write(jsonl, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows))

    metric_cols: list[str] = []
    for r in rows:
        for m in r.get("metrics", {}):
            if m not in metric_cols:
                metric_cols.append(m)
    columns = BASE_COLUMNS + metric_cols + TAIL_COLUMNS
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        flat = {c: r.get(c) for c in BASE_COLUMNS}
        flat.update({m: ("" if v is None else v) for m, v in r.get("metrics", {}).items()})
        flat.update(
            seconds=r.get("seconds"),
            device=r.get("device"),
            status=r.get("status"),
            error=r.get("error") or "",
            result_path=r.get("paths", {}).get("result", ""),
        )
        writer.writerow({k: ("" if v is None else v) for k, v in flat.items()})
    _atomic_write(csv_path, buf.getvalue())
    return csv_path, jsonl
