"""Benchmark: reports, checks and correlations on a results store of N jobs.

A model-zoo sweep (architectures x inits x seeds x images x layers) reaches 10^5 stored runs. This
script builds such a store synthetically -- through the store's public API
(:meth:`archbench.store.ResultStore.put`, one :class:`~archbench.results.RunOutcome` per job, as a
sweep writes them) -- and times what users run on it, each in a fresh process so that its peak
memory is its own:

* ``archbench report --format csv|md|html|json`` (the CLI, start-up included);
* ``archbench correlate --truth imagenet`` (the CLI);
* the regression check: ``archbench check`` re-expands its suite before comparing, which a
  synthetic store cannot do, so the check is timed through its library entry points as
  ``archbench check`` calls them (``compare(load_baseline(...), current_means(store, keys))``,
  the means from the DataFrame: ``check-frame``; the earlier path through ``ResultStore.results``
  is gone since issue 15's merge, and with it ``check-current``);
* ``archbench.load_results`` and ``archbench export --format csv|parquet``.

The synthetic store: the 26 torchvision CNNs of the ``accuracy`` suite (so that ``correlate``
finds their published ImageNet accuracy) x 2 inits x 2 tasks x seeds x images, as many (seed,
image) pairs as it takes to reach ``--jobs``. Reconstruction jobs have 5 layers (``pool1`` ...
``pool5``) scored by ``ssim``, ``psnr`` and ``lpips-alex``; texture jobs 5 cumulative layer sets
(``conv1_1`` ... ``conv1_1..conv5_1``) scored by ``gram`` (trained-VGG16 judge), ``spectrum`` and
``color-swd``. Values are an architecture effect plus seed, image and noise terms; loss traces have
``--iterations + 1`` values (the suite's length); every result records the stall flag and one in
:data:`STALL_EVERY` stalled (store format 2; a format-1 store, without flags, is rebuilt); 0.5 % of
the jobs fail with a reason; output
paths point at a few small PNG files beside the store, so the HTML report embeds real images.

Usage::

    python benchmarks/bench_report.py --jobs 100000 --out reports/benchmarks/report-scale.json

The store is kept (``--store``, default ``/tmp/archbench-bench/report-N.db``) and reused when its
parameters match. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ARCHS = [
    "tv:alexnet", "tv:squeezenet1_0", "tv:squeezenet1_1", "tv:shufflenet_v2_x0_5", "tv:shufflenet_v2_x1_0",
    "tv:mnasnet0_5", "tv:mnasnet1_0", "tv:mobilenet_v3_small", "tv:mobilenet_v3_large", "tv:mobilenet_v2",
    "tv:googlenet", "tv:vgg11", "tv:vgg13", "tv:vgg16", "tv:vgg19", "tv:resnet18", "tv:resnet34", "tv:resnet50",
    "tv:resnet101", "tv:densenet121", "tv:densenet169", "tv:resnext50_32x4d", "tv:wide_resnet50_2",
    "tv:regnet_y_800mf", "tv:efficientnet_b0", "tv:efficientnet_v2_s",
]
INITS = ["gaussian:0.015", "kaiming"]
SUITE = "scale"
REFERENCE = "tv:vgg19"
TASKS = {
    "reconstruct": {
        "layers": ["pool1", "pool2", "pool3", "pool4", "pool5"],
        "metrics": {"ssim": (0.5, 0.15), "psnr": (20.0, 4.0), "lpips-alex": (0.5, 0.1)},
        "judge": None,
    },
    "texture": {
        "layers": ["conv1_1", "conv1_1..conv2_1", "conv1_1..conv3_1", "conv1_1..conv4_1", "conv1_1..conv5_1"],
        "metrics": {"gram": (0.3, 0.1), "spectrum": (1.0, 0.3), "color-swd": (0.05, 0.02)},
        "judge": "trained-vgg16",
    },
}
FAIL_EVERY = 200  # 0.5 % of the jobs fail
STALL_EVERY = 50  # 2 % of the results stalled (every result records the flag)
STORE_FORMAT = 2  # 1: before the stall flags
N_PNG = 16


# ------------------------------------------------------------------------------------------------
# the synthetic store


def plan(jobs: int) -> dict:
    """Seeds and images so that archs x inits x tasks x seeds x images >= ``jobs``."""
    groups = len(ARCHS) * len(INITS) * len(TASKS)
    pairs = math.ceil(jobs / groups)
    seeds = min(20, pairs)
    images = math.ceil(pairs / seeds)
    return {"jobs": jobs, "archs": len(ARCHS), "inits": len(INITS), "tasks": list(TASKS), "seeds": seeds,
            "images": images}


def build_store(path: Path, jobs: int, iterations: int) -> dict:
    """Write ``jobs`` synthetic runs into a new store at ``path`` through ``ResultStore.put``."""
    from PIL import Image

    from archbench.config import RunConfig
    from archbench.results import Result, RunOutcome, package_versions
    from archbench.store import ResultStore

    p = plan(jobs)
    params = {**p, "iterations": iterations, "format": STORE_FORMAT}
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    png_dir = path.parent / "images"
    png_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(N_PNG):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(png_dir / f"p{i}.png")
    versions = package_versions()
    arch_effect = {a: rng.normal() for a in ARCHS}
    init_effect = {i: 0.3 * rng.normal() for i in INITS}
    t0 = time.perf_counter()
    store = ResultStore(path)
    store.record_suite(SUITE, REFERENCE, {"name": SUITE, "synthetic": params})
    written = 0
    steps = np.arange(iterations + 1)
    for seed in range(p["seeds"]):
        for image in range(p["images"]):
            for task, spec in TASKS.items():
                for arch in ARCHS:
                    for init in INITS:
                        if written >= jobs:
                            break
                        config = RunConfig(
                            arch=arch, init=init, seed=seed, task=task, image=f"img{image:04d}.png", size=64,
                            iterations=iterations, device="cpu", options={"layers": spec["layers"]},
                            metrics=tuple(spec["metrics"]), judge=spec["judge"],
                        )
                        effect = arch_effect[arch] + init_effect[init] + 0.2 * math.sin(seed) + 0.1 * math.cos(image)
                        if written % FAIL_EVERY == FAIL_EVERY - 1:
                            outcome = RunOutcome(config, "failed", "synthetic failure: non-finite loss at iteration 7",
                                                 [], 1.0, 2.0, 1.0)
                        else:
                            noise = rng.normal(size=(len(spec["layers"]), len(spec["metrics"])))
                            start = rng.uniform(0.5, 2.0, size=len(spec["layers"]))
                            results = []
                            for li, layer in enumerate(spec["layers"]):
                                values = {
                                    m: float(mu + sd * (0.5 * effect + 0.1 * li + 0.3 * noise[li, k]))
                                    for k, (m, (mu, sd)) in enumerate(spec["metrics"].items())
                                }
                                trace = (start[li] * np.exp(-steps / (10.0 + 5 * li)) + 1e-3).astype(np.float32)
                                paths = {"target": str(png_dir / f"p{image % N_PNG}.png"),
                                         "start": str(png_dir / f"p{(image + 1) % N_PNG}.png"),
                                         "result": str(png_dir / f"p{(image + li + 2) % N_PNG}.png")}
                                results.append(Result(config, layer, float(trace[-1]), values, iterations_run=iterations,
                                                      evaluations=iterations + 3, seconds=0.5, device="cpu",
                                                      loss_trace=[float(v) for v in trace], paths=paths,
                                                      extra={"layer_weight": 1.0}, versions=versions,
                                                      stalled=(written * len(spec["layers"]) + li) % STALL_EVERY == 0))
                            outcome = RunOutcome(config, "done", None, results, 1.0, 2.0, 1.0, 0.1,
                                                 {"network": "synthetic"})
                        store.put(outcome, SUITE)
                        written += 1
            if written and written % 10000 < len(ARCHS) * len(INITS) * len(TASKS):
                print(f"  {written} jobs written ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    store.close()
    seconds = time.perf_counter() - t0
    (path.parent / (path.name + ".params.json")).write_text(json.dumps(params, sort_keys=True))
    return {"params": params, "build_seconds": seconds}


def store_params(path: Path) -> dict | None:
    f = path.parent / (path.name + ".params.json")
    return json.loads(f.read_text()) if f.is_file() and path.is_file() else None


# ------------------------------------------------------------------------------------------------
# measurements, each in a child process


def _peak_mb() -> float:
    """This process's peak resident memory (MB): ``VmHWM`` of ``/proc/self/status``, which -- unlike
    ``ru_maxrss`` -- starts afresh at ``exec`` (a child does not inherit the parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(what: str, store: str, out: str) -> dict:
    """Run one measurement in this process; returns its seconds (after interpreter start) and peak RSS."""
    t0 = time.perf_counter()
    info: dict = {}
    if what.startswith("report-"):
        from archbench.cli import main

        main(["report", "--store", store, "--suite", SUITE, "--format", what.split("-", 1)[1], "--out", out])
    elif what == "correlate":
        from archbench.cli import main

        main(["correlate", "--store", store, "--suite", SUITE, "--truth", "imagenet", "--format", "md", "--out", out])
    elif what.startswith("export-"):
        from archbench.cli import main

        main(["export", "--store", store, "--suite", SUITE, "--format", what.split("-", 1)[1], "--out", out])
    elif what == "load_results":
        import archbench

        df = archbench.load_results(store, SUITE)
        info = {"rows": len(df), "frame_mb": round(df.memory_usage(deep=True).sum() / 2**20, 1)}
    elif what == "check-frame":
        from archbench.report.baseline import load_baseline
        from archbench.report.check import compare, current_means

        rep = compare(load_baseline(out), current_means(store, None))
        info = {"scores_compared": len(rep.rows), "passed": rep.passed}
    else:
        raise SystemExit(f"unknown measurement {what!r}")
    return {"seconds_in_process": time.perf_counter() - t0, "peak_rss_mb": round(_peak_mb(), 1), **info}


def run_child(what: str, store: Path, out: Path) -> dict:
    """``what`` in a fresh interpreter: wall time from process start to exit, its own peak memory."""
    cmd = [sys.executable, __file__, "--measure", what, "--store", str(store), "--measure-out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-2000:], "wall_seconds": wall}
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["wall_seconds"] = round(wall, 2)
    data["cpu_seconds"] = round(cpu, 2)  # user + system time of the process: less sensitive to other load
    data["seconds_in_process"] = round(data["seconds_in_process"], 2)
    if out.exists() and not what.startswith("check"):
        data["output_bytes"] = out.stat().st_size
    return data


def write_baseline(store: Path, path: Path) -> None:
    """A baseline of the store's scores (the entries ``archbench baseline save`` writes), built
    through the DataFrame; saved with check's own writer."""
    from archbench.frame import load_results, score_means
    from archbench.report.baseline import BASELINE_FORMAT, save_baseline
    from archbench.report.noise import Noise, tolerance

    means = score_means(load_results(store, SUITE, final_loss=True, versions=False))
    entries = [{**e, "tolerance": tolerance(e["metric"], e["mean"], Noise())} for e in means.to_dict("records")]
    save_baseline({"format": BASELINE_FORMAT, "suite": SUITE, "suite_ref": SUITE, "entries": entries}, path)


def machine() -> dict:
    from archbench.results import cpu_model, package_versions

    try:
        mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")) / 2**20
    except (OSError, StopIteration):
        mem = None
    return {"platform": platform.platform(), "processor": cpu_model() or platform.processor(),
            "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "memory_gb": round(mem, 1) if mem else None, "python": platform.python_version(),
            "versions": package_versions()}


TARGETS = {"report-csv": 10.0, "report-md": 10.0, "report-html": 30.0, "check-frame": 10.0}
MEMORY_TARGET_MB = 1024.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100_000, help="jobs in the synthetic store (default 100000)")
    ap.add_argument("--iterations", type=int, default=100, help="optimiser iterations: loss traces of this length + 1")
    ap.add_argument("--store", type=Path, default=None, help="store file (default /tmp/archbench-bench/report-N.db)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the store even when one with these parameters exists")
    ap.add_argument("--only", default="", help="comma-separated measurements (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--measure-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.measure:
        print(json.dumps(measure(args.measure, str(args.store), args.measure_out)))
        return

    store = args.store or Path(tempfile.gettempdir()) / "archbench-bench" / f"report-{args.jobs}.db"
    wanted = {**plan(args.jobs), "iterations": args.iterations, "format": STORE_FORMAT}
    build: dict = {"reused": True}
    if args.rebuild or store_params(store) != wanted:
        print(f"building a store of {args.jobs} jobs at {store} ...", file=sys.stderr, flush=True)
        build = {"reused": False, **build_store(store, args.jobs, args.iterations)}
        build["build_seconds"] = round(build["build_seconds"], 1)
    import sqlite3

    conn = sqlite3.connect(store)
    counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "results", "scores")}
    counts["failed_runs"] = conn.execute("SELECT COUNT(*) FROM runs WHERE status != 'done'").fetchone()[0]
    conn.close()

    work = Path(tempfile.mkdtemp(prefix="archbench-bench-"))
    baseline = work / "baseline.json"
    write_baseline(store, baseline)
    plan_ = [
        ("load_results", work / "unused"),
        ("report-csv", work / "report.csv"),
        ("report-md", work / "report.md"),
        ("report-json", work / "report.json"),
        ("report-html", work / "report.html"),
        ("check-frame", baseline),
        ("correlate", work / "correlate.md"),
        ("export-csv", work / "export.csv"),
        ("export-parquet", work / "export.parquet"),
    ]
    only = {s for s in args.only.split(",") if s}
    results = {}
    load_before = os.getloadavg()
    for what, out in plan_:
        if only and what not in only:
            continue
        print(f"  {what} ...", file=sys.stderr, flush=True)
        r = run_child(what, store, out)
        if what in TARGETS and "wall_seconds" in r:
            r["target_seconds"] = TARGETS[what]
            r["meets_target"] = r["wall_seconds"] < TARGETS[what] and r.get("peak_rss_mb", 1e9) < MEMORY_TARGET_MB
        results[what] = r
        print(f"    {json.dumps(r)[:300]}", file=sys.stderr, flush=True)
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
    except OSError:
        commit = ""
    record = {
        "benchmark": "reports on a results store of N jobs (benchmarks/bench_report.py)",
        "commit": commit,
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": ("a shared machine: other processes (other engineers' test runs) may have been running during the "
                 "measurements; see the load averages. Times are wall-clock seconds of a fresh process (interpreter "
                 "start and imports included: what a user waits); peak_rss_mb is that process's maximum resident "
                 "memory. check-frame times archbench check's library path (current_means from archbench.load_results, "
                 "then compare). correlate includes the leave-one-family-out cross-validation (2000 resamples)."),
        "store": {"path": str(store), "bytes": store.stat().st_size, **counts, **build, "parameters": wanted},
        "targets": {"seconds": TARGETS, "peak_rss_mb": MEMORY_TARGET_MB},
        "results": results,
    }
    text = json.dumps(record, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)


if __name__ == "__main__":
    main()
