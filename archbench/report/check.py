"""Score baselines and regression checks (``archbench baseline save`` / ``archbench check``).

A baseline is a JSON file::

    {"format": "archbench-baseline/1", "suite": "ci", "suite_ref": "ci", "created": "...", "command": "archbench baseline save ...",
     "machine": {...}, "versions": {...}, "jobs": {"total": 32, "done": 32, "failed": 0},
     "tolerances": {"ssim": {"abs": 0.02, "rel": 0.0}, ...}, "tolerance_note": "...",
     "entries": [{"task": "reconstruct", "arch": "vgg11", "init": "gaussian:0.015", "layer": "pool1",
                  "metric": "ssim", "higher_is_better": true, "mean": 0.41, "n": 4}, ...]}

An entry is the mean of a metric over a unit's (image, seed) observations for one task and layer;
``final_loss`` is checked too (lower is better). A score *moved* when ``|new − base| > max(abs,
rel·|base|)`` of its metric's tolerance; the direction (``worse``/``better``) comes from the
metric's ``higher_is_better``. The check fails on a worse score, on a baseline entry with no
current result (``missing``), and -- unless improvements are allowed -- on a better score (the
baseline is then stale and should be re-saved). Entries new since the baseline are listed, not
failed.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.errors import ConfigError
from archbench.escaping import md_cell
from archbench.report import stats
from archbench.results import cpu_model
from archbench.store import ResultStore, StoredResult

BASELINE_FORMAT = "archbench-baseline/1"
LOSS = "final_loss"


@dataclass
class Tolerance:
    """Allowed movement of a score: ``max(abs, rel·|baseline|)``."""

    abs: float = 0.0
    rel: float = 0.0

    def allowed(self, base: float) -> float:
        return max(self.abs, self.rel * abs(base))

    def to_json(self) -> dict[str, float]:
        return {"abs": self.abs, "rel": self.rel}


#: default tolerances (see docs/sweeps.md for how they were chosen); ``*``: any other metric
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "ssim": Tolerance(abs=0.01),
    "psnr": Tolerance(abs=0.25),
    "gram": Tolerance(rel=0.02),
    LOSS: Tolerance(rel=0.02),
    "*": Tolerance(rel=0.02),
}


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """``"ssim=0.01"`` (absolute) or ``"psnr=2%"`` (relative) -> (metric, Tolerance)."""
    if "=" not in text:
        raise ConfigError(f"malformed tolerance {text!r}; expected METRIC=ABS or METRIC=REL%")
    name, value = (s.strip() for s in text.split("=", 1))
    try:
        if value.endswith("%"):
            return name, Tolerance(rel=float(value[:-1]) / 100)
        return name, Tolerance(abs=float(value))
    except ValueError:
        raise ConfigError(f"malformed tolerance value {value!r} in {text!r}") from None


def tolerance_for(tolerances: dict[str, Tolerance], metric: str) -> Tolerance:
    return tolerances.get(metric) or tolerances.get("*") or Tolerance()


def _direction(metric: str) -> bool:
    if metric == LOSS:
        return False
    from archbench.metrics import get_metric

    try:
        return get_metric(metric).higher_is_better
    except Exception:
        return True


def _judged(metric: str) -> bool:
    from archbench.metrics import get_metric

    try:
        return get_metric(metric).judged
    except Exception:
        return False


def score_entries(results: list[StoredResult]) -> list[dict[str, Any]]:
    """Mean of every metric (and ``final_loss``) per task, arch, init, layer and -- for a metric
    scored in a judge network -- judge, over (image, seed)."""
    acc: dict[tuple[str, str, str, str, str, str], list[float]] = defaultdict(list)
    for r in results:
        values = dict(r.metrics)
        values[LOSS] = r.final_loss
        for m, v in values.items():
            if v is not None and math.isfinite(v):
                judge = (r.judge or "") if _judged(m) else ""
                acc[(r.task, r.arch, r.init, r.layer, m, judge)].append(float(v))
    out = []
    for (task, arch, init, layer, m, judge), vals in sorted(acc.items()):
        out.append({"task": task, "arch": arch, "init": init, "layer": layer, "metric": m, "judge": judge or None,
                    "higher_is_better": _direction(m), "mean": stats.mean(vals), "n": len(vals)})
    return out


def machine_info() -> dict[str, Any]:
    """Where a baseline was produced."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu_model() or platform.processor() or "",
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # pragma: no cover
        pass
    return info


def make_baseline(
    store: ResultStore,
    suite: str,
    keys: list[str] | None = None,
    tolerances: dict[str, Tolerance] | None = None,
    command: str = "",
    note: str = "",
    suite_ref: str | None = None,
) -> dict[str, Any]:
    """A baseline (plain data) of the suite's done results in ``store``."""
    from archbench.results import package_versions

    tol = dict(DEFAULT_TOLERANCES)
    tol.update(tolerances or {})
    jobs = store.runs(suite=suite, keys=keys)
    results = store.results(suite=suite, keys=keys)
    if not results:
        raise ConfigError(f"no done results of suite {suite!r} in the store; run `archbench sweep {suite}` first")
    return {
        "format": BASELINE_FORMAT,
        "suite": suite,
        "suite_ref": suite_ref or suite,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine_info(),
        "versions": package_versions(),
        "jobs": {"total": len(jobs), "done": sum(j.status == "done" for j in jobs),
                 "failed": sum(j.status != "done" for j in jobs)},
        "tolerances": {k: v.to_json() for k, v in sorted(tol.items())},
        "tolerance_note": note,
        "entries": score_entries(results),
    }


def save_baseline(baseline: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def load_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"baseline {str(path)!r} does not exist; create it with `archbench baseline save`") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"baseline {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise ConfigError(f"{str(path)!r} is not an archbench baseline (format {BASELINE_FORMAT})")
    return data


@dataclass
class CheckRow:
    """One compared score."""

    task: str
    arch: str
    init: str
    layer: str
    metric: str
    baseline: float | None
    current: float | None
    allowed: float
    status: str  # ok, worse, better, missing, new

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass
class CheckReport:
    """Outcome of comparing current scores with a baseline."""

    suite: str
    rows: list[CheckRow] = field(default_factory=list)
    allow_improvements: bool = False

    @property
    def moved(self) -> list[CheckRow]:
        return [r for r in self.rows if r.status != "ok"]

    @property
    def failing(self) -> list[CheckRow]:
        bad = {"worse", "missing"} | (set() if self.allow_improvements else {"better"})
        return [r for r in self.rows if r.status in bad]

    @property
    def passed(self) -> bool:
        return not self.failing

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = defaultdict(int)
        for r in self.rows:
            c[r.status] += 1
        return dict(c)


def compare(baseline: dict[str, Any], current: list[dict[str, Any]], allow_improvements: bool = False) -> CheckReport:
    """Compare ``current`` entries (:func:`score_entries`) with ``baseline``'s."""
    tol = {k: Tolerance(**v) for k, v in baseline.get("tolerances", {}).items()}
    rep = CheckReport(baseline.get("suite", "?"), allow_improvements=allow_improvements)

    def key(e: dict[str, Any]) -> tuple[str, str, str, str, str]:
        from archbench.metrics import scored_name

        return (e["task"], e["arch"], e["init"], e["layer"], scored_name(e["metric"], e.get("judge")))

    cur = {key(e): e for e in current}
    seen = set()
    for b in baseline.get("entries", []):
        k = key(b)
        seen.add(k)
        t = tolerance_for(tol, b["metric"])
        allowed = t.allowed(b["mean"])
        c = cur.get(k)
        if c is None:
            rep.rows.append(CheckRow(*k, b["mean"], None, allowed, "missing"))
            continue
        d = c["mean"] - b["mean"]
        if abs(d) <= allowed + 1e-12:
            status = "ok"
        else:
            hib = b.get("higher_is_better", _direction(b["metric"]))
            status = "better" if (d > 0) == hib else "worse"
        rep.rows.append(CheckRow(*k, b["mean"], c["mean"], allowed, status))
    for k, c in cur.items():
        if k not in seen:
            rep.rows.append(CheckRow(*k, None, c["mean"], 0.0, "new"))
    return rep


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.5g}"


def report_markdown(rep: CheckReport, baseline_path: str = "") -> str:
    """Markdown summary for a pull-request comment: verdict, counts and the table of what moved."""
    counts = rep.counts()
    verdict = "✅ passed" if rep.passed else "❌ failed"
    lines = [
        f"### archbench check: suite `{rep.suite}` {verdict}",
        "",
        f"{len(rep.rows)} scores compared" + (f" with `{baseline_path}`" if baseline_path else "") + ": "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ".",
        "",
    ]
    moved = rep.moved
    if moved:
        lines += ["| status | task | architecture | init | layer | metric | baseline | current | Δ | tolerance |",
                  "|:---|:---|:---|:---|:---|:---|---:|---:|---:|---:|"]
        for r in moved:
            cells = [r.status, r.task, r.arch, r.init, r.layer, r.metric]
            cells = [md_cell(c) for c in cells]
            d = r.delta
            lines.append("| " + " | ".join(cells + [_f(r.baseline), _f(r.current), "—" if d is None else f"{d:+.4g}",
                                                   f"±{r.allowed:.3g}"]) + " |")
    else:
        lines.append("No score moved beyond its tolerance.")
    return "\n".join(lines) + "\n"
