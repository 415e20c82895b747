"""Results: one :class:`Result` per optimisation problem, one :class:`RunOutcome` per run, and the
per-run result files (``results.csv`` and ``results.jsonl``).

A result is identified by its run's key (:attr:`archbench.config.RunConfig.key`) and its layer.
CSV rows hold the flat columns (identity, final loss, one column per metric, timings); JSON lines
hold everything, including the loss trace, the full configuration and the package versions, so a
number can be traced to what made it. Files are rewritten atomically (temporary file + rename),
merging with rows already there: a new run never loses earlier results, and a row with the same
key and layer is replaced. A line of ``results.jsonl`` that cannot be read (a write cut short by a
crash) is moved to ``results.jsonl.unreadable`` rather than failing the next run or being lost.
Text cells of ``results.csv`` are neutralised against spreadsheet formula injection
(:func:`archbench.escaping.csv_cell`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from archbench.config import HasConfig, RunConfig, table_columns
from archbench.escaping import csv_dict

log = logging.getLogger(__name__)

#: what ``results.csv`` shows of a result after its run's settings (:func:`csv_columns`)
RESULT_COLUMNS = ["layer", "iterations_run", "evaluations", "final_loss"]
#: after the metric columns
TAIL_COLUMNS = ["seconds", "status", "stalled", "error", "result_path", "key"]


def csv_columns(metrics: list[str]) -> list[str]:
    """The columns of ``results.csv``: the run's settings as the results tables show them
    (:func:`archbench.config.table_columns`; ``device`` is where the result ran), the result's
    summary, one column per metric, then timing, status and key."""
    return [name for name, _ in table_columns()] + RESULT_COLUMNS + metrics + TAIL_COLUMNS


@dataclass
class Result(HasConfig):
    """One scored optimisation problem of a run.

    Attributes:
        config: the run's resolved configuration (its key is the result's identity, with ``layer``).
        layer: label of the layer(s) optimised (``pool3``, ``conv1_1+conv2_1``...).
        final_loss, loss_trace: the task's loss at the end and after each iteration.
        iterations_run, evaluations: iterations run (at most the budget,
            ``config.iterations``) and loss evaluations.
        metrics: metric name -> value (None where it could not be computed).
        seconds: wall time of this problem's share of the optimisation.
        device: where it ran (``cpu``, ``cuda:0``).
        status: ``done`` or ``failed``; error: the reason of a failure.
        stalled: True when the optimisation did not leave its start (its loss fell by less than
            0.1 % of the start's, or no pixel moved by one 8-bit level; see
            :class:`~archbench.optimizers.OptimConfig`): the scores then describe the start, not the
            architecture. None when the task optimises nothing or it was not recorded (results
            from before the flag). The CSV writes 1, 0 or empty.
        extra: task provenance (layer weights used, resolved preset settings, ...).
        paths: image kind (``result``, ``target``, ...) -> file written.
        versions: package versions (:func:`package_versions`).
    """

    config: RunConfig
    layer: str
    final_loss: float | None
    metrics: dict[str, float | None]
    iterations_run: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    status: str = "done"
    error: str | None = None
    loss_trace: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    stalled: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data: the row of ``results.jsonl`` (``from_json`` reads it back)."""
        return {
            "key": self.key,
            "layer": self.layer,
            "config": self.config.to_json(),
            "final_loss": self.final_loss,
            "metrics": dict(self.metrics),
            "iterations_run": self.iterations_run,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "device": self.device,
            "status": self.status,
            "stalled": self.stalled,
            "error": self.error,
            "loss_trace": list(self.loss_trace),
            "extra": self.extra,
            "paths": dict(self.paths),
            "versions": dict(self.versions),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        """The result of a :meth:`to_json` row (rows written before ``iterations_run`` was named
        so call it ``iterations``)."""
        if "iterations_run" not in data and "iterations" in data:
            data = {**data, "iterations_run": data["iterations"]}
        d = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "config"}
        return cls(config=RunConfig.from_json(data["config"]), **d)

    def row(self) -> dict[str, Any]:
        """The flat CSV row (:func:`csv_columns`)."""
        flat: dict[str, Any] = {name: value(self.config) for name, value in table_columns()}
        flat.update(layer=self.layer, iterations_run=self.iterations_run, evaluations=self.evaluations,
                    final_loss=self.final_loss)
        flat.update(self.metrics)
        flat.update(seconds=self.seconds, device=self.device, status=self.status,
                    stalled=None if self.stalled is None else int(self.stalled),
                    error=self.error, result_path=self.paths.get("result"), key=self.key)
        return flat


@dataclass
class RunOutcome(HasConfig):
    """What one run (one :class:`~archbench.config.RunConfig`) produced.

    Attributes:
        config: the configuration.
        status: ``done`` or ``failed``; error: the reason of a failure (one line), else None.
        results: one :class:`Result` per layer (may be partial or empty for a failed run).
        started, finished: UNIX times; seconds: wall time of the run (network build excluded).
        build_seconds: time spent building the network for this run (0 when reused).
        provenance: where the network's weights came from (``network``: trained weights' source, the
            stacked network's choices), how many images its batch held (``batch``) and where it ran
            (``ray``: host, node, GPU ids).
    """

    config: RunConfig
    status: str
    error: str | None = None
    results: list[Result] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    seconds: float = 0.0
    build_seconds: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)


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
    from archbench.fileio import atomic_write

    atomic_write(path, text, what="results file")


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a ``results.jsonl`` and the lines that are not JSON objects (a write cut short by a
    crash leaves a truncated last line); an absent file gives neither."""
    if not path.exists():
        return [], []
    rows, bad = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(line)
    return rows, bad


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """The CSV row of a ``results.jsonl`` row (rows written before run configurations keep their
    own flat fields)."""
    if "config" in row:
        return Result.from_json(row).row()
    flat = {c: row.get(c) for c in csv_columns([])}
    flat["iterations_run"] = row.get("iterations")
    flat.update(row.get("metrics", {}))
    flat["result_path"] = row.get("paths", {}).get("result")
    return flat


def write_results(out_dir: str | Path, results: list[Result]) -> tuple[Path, Path]:
    """Merge ``results`` into ``out_dir/results.jsonl`` and ``results.csv`` atomically.

    Rows already in the files are kept; a row with the key and layer of a new one is replaced.
    """
    out_dir = Path(out_dir)
    jsonl, csv_path = out_dir / "results.jsonl", out_dir / "results.csv"
    new = {(r.key, r.layer): r.to_json() for r in results}
    old, bad = read_jsonl(jsonl)
    if bad:  # keep what cannot be read beside the file instead of failing or dropping it
        kept = jsonl.with_name(jsonl.name + ".unreadable")
        previous = kept.read_text(encoding="utf-8") if kept.exists() else ""
        _atomic_write(kept, previous + "".join(line + "\n" for line in bad))
        log.warning("%s: %d unreadable line(s) moved to %s", jsonl, len(bad), kept)
    rows = [r for r in old if (r.get("key"), r.get("layer")) not in new] + list(new.values())
    _atomic_write(jsonl, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows))

    flat_rows = [_flat(r) for r in rows]
    metric_cols: list[str] = []
    for r in rows:
        for m in r.get("metrics", {}):
            if m not in metric_cols:
                metric_cols.append(m)
    columns = csv_columns(metric_cols)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for flat in flat_rows:
        writer.writerow(csv_dict({k: ("" if v is None else v) for k, v in flat.items()}))
    _atomic_write(csv_path, buf.getvalue())
    return csv_path, jsonl
