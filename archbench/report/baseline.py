"""Score baselines: the file ``archbench baseline save`` writes and ``archbench check`` reads.

A baseline is a JSON file (format ``archbench-baseline/2``)::

    {"format": "archbench-baseline/2", "suite": "ci", "suite_ref": "ci", "created": "...",
     "command": "archbench baseline save ...", "note": "...",
     "machine": {...fingerprint: CPU, ATen capability, threads, kernel environment, versions, judges},
     "jobs": {"total": 24, "done": 24, "failed": 0, "configurations": "<sha256 of the job keys>"},
     "noise": {"rule": "...", "kernel_factor": 4, "seed_factor": 1, "floors": {...},
               "perturbations": ["aten-default", ...], "seeds": 6},
     "entries": [{"task": "reconstruct", "arch": "vgg11", "init": "gaussian:0.015", "layer": "pool1",
                  "metric": "ssim", "judge": null, "higher_is_better": true, "gating": true,
                  "mean": 0.98, "n": 4, "observations": [["astronaut", 0, 0.981], ...],
                  "noise": {"kernels": 1.8e-05, "seeds": 0.0024, "perturbations": {...}, "seeds_used": 6},
                  "tolerance": 0.0024}, ...]}

An entry is the mean of a metric over a unit's (image, seed) observations for one task, layer and
(for a judged metric such as ``gram``) judge; its tolerance comes from measured noise
(:mod:`archbench.report.noise`). Task metrics gate the check; ``final_loss`` is reported only.
:func:`load_baseline` refuses, with one line, a file that is not such a baseline: missing, not
JSON, another format, no or empty ``entries``, a non-numeric or non-finite number.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from archbench.errors import ConfigError
from archbench.report import noise as noise_mod
from archbench.report.noise import LOSS, Noise, score_observations, tolerance
from archbench.results import cpu_model
from archbench.values import short

BASELINE_FORMAT = "archbench-baseline/2"
ENTRY_KEYS = ("task", "arch", "init", "layer", "metric")


def direction(metric: str) -> bool:
    """Whether higher is better for ``metric`` (``final_loss``: lower; unknown metrics: higher)."""
    from archbench.metric_info import higher_is_better

    return higher_is_better(metric)


def machine_info() -> dict[str, Any]:
    """The fingerprint of this machine: what can change scores without a change of code."""
    import torch

    from archbench.metrics.gram import trained_judge_available
    from archbench.results import package_versions

    return {
        "processor": cpu_model() or platform.processor() or "",
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "kernel_environment": {k: os.environ[k] for k in noise_mod.PERTURBATION_VARIABLES if k in os.environ},
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "trained_judge": trained_judge_available() is None,
        "versions": package_versions(),
    }


def fingerprint_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name: saved -> current"`` for every fingerprint field that differs (platform string and
    CPU count left out: they name the machine, not what computes the scores)."""
    out = []

    def walk(a: Any, b: Any, name: str) -> None:
        if isinstance(a, dict) or isinstance(b, dict):
            a, b = a if isinstance(a, dict) else {}, b if isinstance(b, dict) else {}
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{name}.{k}" if name else k)
        elif a != b and name not in ("platform", "cpus"):
            out.append(f"{name}: {'—' if a is None else a} -> {'—' if b is None else b}")

    walk(saved, current, "")
    return out


def configuration_digest(keys: Iterable[str]) -> str:
    """SHA-256 (16 hex) of a suite's sorted job keys: equal digests mean equal configurations."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]


def make_baseline(
    results: list[Any],
    *,
    suite: str,
    suite_ref: str,
    jobs: dict[str, Any],
    noise: dict[tuple, Noise],
    noise_settings: dict[str, Any],
    command: str = "",
    note: str = "",
) -> dict[str, Any]:
    """A baseline (plain data) of ``results`` (a suite's done, stored per-layer results) with the
    measured ``noise`` per score key."""
    observations = score_observations(results)
    if not observations:
        raise ConfigError(f"no done results of suite {suite!r} in the store; run `archbench sweep {suite_ref}` first")
    entries = []
    for key in sorted(observations):
        task, arch, init, layer, metric, judge = key
        obs = observations[key]
        mean = sum(obs.values()) / len(obs)
        nz = noise.get(key, Noise())
        entries.append({
            "task": task, "arch": arch, "init": init, "layer": layer, "metric": metric, "judge": judge or None,
            "higher_is_better": direction(metric), "gating": metric != LOSS,
            "mean": mean, "n": len(obs),
            "observations": [[image, seed, v] for (image, seed), v in sorted(obs.items())],
            "noise": {"kernels": nz.kernels, "seeds": nz.seeds, "perturbations": nz.perturbations,
                      "seeds_used": nz.seeds_used},
            "tolerance": tolerance(metric, mean, nz),
        })
    return {
        "format": BASELINE_FORMAT,
        "suite": suite,
        "suite_ref": suite_ref,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "note": note,
        "machine": machine_info(),
        "jobs": jobs,
        "noise": {"rule": noise_mod.rule_text(), "kernel_factor": noise_mod.KERNEL_FACTOR,
                  "seed_factor": noise_mod.SEED_FACTOR, "floors": noise_mod.FLOORS, **noise_settings},
        "entries": entries,
    }


def save_baseline(baseline: dict[str, Any], path: str | Path) -> Path:
    """Write ``baseline`` as indented JSON (atomically)."""
    from archbench.fileio import atomic_write

    path = Path(path)
    atomic_write(path, json.dumps(baseline, indent=1) + "\n")
    return path


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read and validate a baseline; :class:`ConfigError` (one line) for anything that is not one."""
    path = Path(path)
    where = str(path)
    try:
        if not path.exists():
            raise ConfigError(f"baseline {where!r} does not exist; create it with `archbench baseline save`")
        if path.is_dir():
            raise ConfigError(f"baseline {where!r} is a folder; give the JSON file")
        from archbench.fileio import read_text

        data = json.loads(read_text(path, "baseline"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"baseline {where!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("archbench-baseline/"):
        raise ConfigError(f"{where!r} is not an archbench baseline (format {BASELINE_FORMAT})")
    if data["format"] != BASELINE_FORMAT:
        raise ConfigError(
            f"baseline {where!r} has format {data['format']}; this archbench reads {BASELINE_FORMAT} "
            "(tolerances from measured noise): re-save it with `archbench baseline save`"
        )
    if not isinstance(data.get("suite"), str) or not data["suite"]:
        raise ConfigError(f"baseline {where!r} names no suite")
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"baseline {where!r} has no entries: nothing to check against; re-save it")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), str) for k in ENTRY_KEYS):
            raise ConfigError(f"baseline {where!r}: entry {i + 1} lacks one of {', '.join(ENTRY_KEYS)}")
        for k in ("mean", "tolerance"):
            if not _number(e.get(k)):
                raise ConfigError(
                    f"baseline {where!r}: entry {i + 1} ({' · '.join(e[x] for x in ENTRY_KEYS)}) has a "
                    f"non-numeric or non-finite {k} ({e.get(k)!r})"
                )
        if e["tolerance"] < 0 or not isinstance(e.get("n"), int) or e["n"] < 1:
            raise ConfigError(f"baseline {where!r}: entry {i + 1} has a negative tolerance or no observations")
        if e.get("judge") is not None and not isinstance(e["judge"], str):
            raise ConfigError(f"baseline {where!r}: entry {i + 1} has a malformed judge ({e['judge']!r})")
    for key, kind, what in (("suite_ref", str, "a string"), ("jobs", dict, "a table"), ("machine", dict, "a table"),
                            ("noise_settings", dict, "a table"), ("claims", list, "a list")):
        if key in data and data[key] is None:
            del data[key]  # null: as if absent (readers use .get(key, default))
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise ConfigError(f"baseline {where!r}: {key!r} must be {what}, got {short(data[key])}")
    for i, c in enumerate(data.get("claims") or []):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("verdict"), str | None):
            raise ConfigError(f"baseline {where!r}: claim {i + 1} lacks a string 'id' and 'verdict'")
    if not isinstance((data.get("jobs") or {}).get("configurations"), str | None):
        raise ConfigError(f"baseline {where!r}: 'jobs.configurations' must be a string")
    return data
