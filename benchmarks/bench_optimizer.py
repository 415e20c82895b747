"""Benchmark: archbench's batched optimiser against the usual one-image-at-a-time L-BFGS loop.

Task: feature inversion (He et al. 2016) from ``pool5`` of a random-weight VGG-19 (Gaussian
sigma 0.015, seed 0, average pooling): for each of ``--batch`` built-in images ``x0``, minimise
``|F(x) - F(x0)|^2 / |F(x0)|^2`` from white noise. The same work runs three ways in one process:

* reference -- the usual loop, as in the PyTorch style-transfer tutorial: one image at a time,
  ``torch.optim.LBFGS`` (no line search, lr 1), float32, a ``float(loss)`` per evaluation
  (:func:`archbench.optimizers.lbfgs_reference`);
* archbench -- :func:`archbench.optimizers.minimize` on the whole batch (batched sync-free L-BFGS,
  default precision / memory format for the device);
* bare pass -- forward + backward to the input for the same batch and settings, no optimiser:
  the ceiling on what any optimiser can reach.

Both optimisers get the same budget of ``--iterations`` evaluations per image and the same
history; their tolerances are zero so that both do all the work. Prints image-iterations per
second, the speed-up, both mean final losses, the bare throughput and
``overhead_fraction = 1 - archbench / bare``; ``--out`` writes them as JSON.

Example: ``python benchmarks/bench_optimizer.py --device cpu --batch 8 --size 64 --iterations 60
--out reports/benchmarks/cpu.json``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

import archbench
from archbench.architectures import create_arch
from archbench.images import list_images, load_image
from archbench.optimizers import OptimConfig, lbfgs_reference, minimize, prepare_module
from archbench.optimizers.runtime import Evaluator
from archbench.results import cpu_model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Inversion:
    """Normalised feature reconstruction loss per sample, ``objective(x) -> (B,)``."""

    def __init__(self, net: torch.nn.Module, layer: str, targets: torch.Tensor) -> None:
        self.net, self.layer = net, layer
        with torch.no_grad():
            self.feats = net(targets, [layer])[layer].float()
        self.norm = self.feats.flatten(1).square().sum(1)

    def select(self, index: slice | list[int]) -> Inversion:
        other = object.__new__(Inversion)
        other.net, other.layer = self.net, self.layer
        other.feats, other.norm = self.feats[index], self.norm[index]
        return other

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        f = self.net(x, [self.layer])[self.layer].float()  # float32 loss even under bf16 autocast
        return (f - self.feats).flatten(1).square().sum(1) / self.norm


def targets_and_starts(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    names = list_images()
    imgs = []
    for i in range(batch):
        img = load_image(names[i % len(names)], size)
        if (i // len(names)) % 2 == 1:
            img = img.flip(-1)  # a mirrored copy when the batch is larger than the image set
        imgs.append(img)
    g = torch.Generator().manual_seed(0)
    starts = torch.rand(batch, 3, size, size, generator=g)
    return torch.cat(imgs).to(device), starts.to(device)


def time_bare(objective: Inversion, x: torch.Tensor, config: OptimConfig, reps: int) -> float:
    """Seconds per forward+backward of the whole batch, with the optimiser's precision and layout."""
    ev = Evaluator.create(objective, x, config)
    flat = ev.flatten(x).contiguous()
    for _ in range(2):
        ev.loss_and_grad(flat)
    sync(x.device)
    t0 = time.perf_counter()
    for _ in range(reps):
        ev.loss_and_grad(flat)
    sync(x.device)
    return (time.perf_counter() - t0) / reps


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--history", type=int, default=100, help="L-BFGS history (torch.optim.LBFGS default 100)")
    p.add_argument("--arch", default="vgg19")
    p.add_argument("--layer", default="pool5")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--channels-last", default="auto", choices=["auto", "true", "false"])
    p.add_argument("--compile", action="store_true", help="torch.compile the objective")
    p.add_argument("--reference-images", type=int, default=None, help="run the reference on only this many images")
    p.add_argument("--bare-reps", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=1, help="alternate reference/archbench runs, keep the fastest")
    p.add_argument(
        "--no-precision-check", action="store_true", help="skip the archbench run in the other precision (fp32/bf16)"
    )
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cl = {"auto": "auto", "true": True, "false": False}[args.channels_last]
    config = OptimConfig(
        iterations=args.iterations,
        history=args.history,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        precision=args.precision,
        channels_last=cl,
        compile=args.compile,
    )
    ref_config = OptimConfig(
        iterations=args.iterations, history=args.history, tolerance_grad=0.0, tolerance_change=0.0, line_search="none"
    )

    ref_net = create_arch(args.arch, init="gaussian:0.015", seed=0, device=device)
    net = prepare_module(create_arch(args.arch, init="gaussian:0.015", seed=0, device=device), config, device)
    targets, starts = targets_and_starts(args.batch, args.size, device)
    objective = Inversion(net, args.layer, targets)
    ref_objective = Inversion(ref_net, args.layer, targets)
    n_ref = min(args.reference_images or args.batch, args.batch)

    # warm-up (allocator, cuDNN algorithm choice, compilation) outside the timed runs
    lbfgs_reference(ref_objective.select([0]), starts[:1], OptimConfig(**{**ref_config.__dict__, "iterations": 3}))
    minimize(objective, starts, OptimConfig(**{**config.__dict__, "iterations": 3}))
    sync(device)

    t_ref = t_ours = t_bare = float("inf")
    cpu_ref = cpu_ours = float("inf")
    runs: list[dict[str, float]] = []
    for rep in range(args.repeats):  # alternate the three, keep the fastest of each (shared machines)
        print(
            f"[{rep + 1}/{args.repeats}] reference: {n_ref} image(s) one at a time, {args.iterations} iterations",
            flush=True,
        )
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        ref_losses = []
        for b in range(n_ref):
            res = lbfgs_reference(ref_objective.select([b]), starts[b : b + 1], ref_config)
            ref_losses.append(float(res.final_loss[0]))
        sync(device)
        run = {"reference_seconds": time.perf_counter() - t0, "reference_cpu_seconds": time.process_time() - c0}
        print(f"[{rep + 1}/{args.repeats}] archbench: {args.batch} images at once", flush=True)
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        ours = minimize(objective, starts, config)
        sync(device)
        run.update(archbench_seconds=time.perf_counter() - t0, archbench_cpu_seconds=time.process_time() - c0)
        # the bare pass right after the archbench run, under the same machine load
        run["bare_pass_seconds_per_batch"] = time_bare(objective, starts, config, args.bare_reps)
        runs.append(run)
        t_ref, cpu_ref = min(t_ref, run["reference_seconds"]), min(cpu_ref, run["reference_cpu_seconds"])
        t_ours, cpu_ours = min(t_ours, run["archbench_seconds"]), min(cpu_ours, run["archbench_cpu_seconds"])
        t_bare = min(t_bare, run["bare_pass_seconds_per_batch"])

    ref_rate = n_ref * args.iterations / t_ref
    ours_rate = args.batch * args.iterations / t_ours
    bare_rate = args.batch / t_bare
    ours_losses = ours.final_loss.tolist()
    result: dict[str, object] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({cpu_model() or platform.processor() or platform.machine()})",
        "device_type": device.type,
        "task": f"reconstruct {args.arch} {args.layer} (gaussian:0.015, seed 0), normalised feature MSE, white-noise start",
        "batch": args.batch,
        "size": args.size,
        "iterations": args.iterations,
        "history": args.history,
        "reference_images": n_ref,
        "reference_img_iters_per_s": ref_rate,
        "archbench_img_iters_per_s": ours_rate,
        "speedup": ours_rate / ref_rate,
        "bare_pass_img_iters_per_s": bare_rate,
        "overhead_fraction": 1.0 - ours_rate / bare_rate,
        "reference_final_loss": sum(ref_losses) / n_ref,
        "archbench_final_loss": sum(ours_losses) / args.batch,
        "archbench_final_loss_same_images": sum(ours_losses[:n_ref]) / n_ref,
        "reference_final_losses": ref_losses,
        "archbench_final_losses": ours_losses,
        "archbench_failed": [f for f in ours.failed if f],
        "archbench_accepted_steps_mean": sum(ours.settings["accepted_steps"]) / args.batch,
        "archbench_settings": {k: v for k, v in ours.settings.items() if k != "accepted_steps"},
        "reference_seconds": t_ref,
        "archbench_seconds": t_ours,
        "reference_cpu_seconds": cpu_ref,
        "archbench_cpu_seconds": cpu_ours,
        "speedup_cpu_time": (cpu_ref / n_ref) / (cpu_ours / args.batch),
        "runs": runs,
        "bare_pass_seconds_per_batch": t_bare,
        "torch": torch.__version__,
        "archbench": archbench.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", shlex.quote(sys.argv[0])] + [shlex.quote(a) for a in (argv or sys.argv[1:])]),
    }
    if not args.no_precision_check:
        # the same run in the other precision: the measured effect of mixed precision on the score
        alt = "fp32" if ours.settings.get("precision") == "bf16" else "bf16"
        sync(device)
        t0 = time.perf_counter()
        other = minimize(objective, starts, OptimConfig(**{**config.__dict__, "precision": alt}))
        sync(device)
        t_alt = time.perf_counter() - t0
        alt_loss = sum(other.final_loss.tolist()) / args.batch
        main_loss = result["archbench_final_loss"]
        result["alt_precision"] = alt
        result["alt_precision_img_iters_per_s"] = args.batch * args.iterations / t_alt
        result["alt_precision_final_loss"] = alt_loss
        fp32_loss = alt_loss if alt == "fp32" else main_loss
        result["bf16_vs_fp32_final_loss_relative_difference"] = abs(alt_loss - main_loss) / fp32_loss

    rows = [
        ("reference img-iters/s", ref_rate),
        ("archbench img-iters/s", ours_rate),
        ("speed-up", result["speedup"]),
        ("bare fwd+bwd img-iters/s", bare_rate),
        ("overhead fraction", result["overhead_fraction"]),
        ("reference final loss (mean)", result["reference_final_loss"]),
        ("archbench final loss (mean)", result["archbench_final_loss"]),
    ]
    for name, value in rows:
        print(f"{name:32s} {value:12.5g}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
