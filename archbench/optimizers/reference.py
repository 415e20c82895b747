"""L-BFGS over a batch of independent samples.

Reference implementation: each sample runs ``torch.optim.LBFGS`` (strong-Wolfe line search) on its
own, one after another. Simple and exact; the batched implementation replaces it.
"""

from __future__ import annotations

import math

import torch

from archbench.optimizers.base import Objective, OptimConfig, OptimResult, ProgressCallback


def lbfgs(
    objective: Objective, x0: torch.Tensor, config: OptimConfig, progress: ProgressCallback | None = None
) -> OptimResult:
    B = x0.shape[0]
    xs, traces, iters, evals, failed = [], [], [], [], []
    total = config.iterations * B
    done = 0
    for b in range(B):
        x = x0[b : b + 1].detach().clone().requires_grad_(True)
        opt = torch.optim.LBFGS(
            [x],
            lr=config.step_size,
            max_iter=1,
            history_size=config.history,
            tolerance_grad=config.tolerance_grad,
            tolerance_change=config.tolerance_change,
            line_search_fn="strong_wolfe",
        )
        n_eval = 0
        last = x.detach().clone()
        reason = None

        def closure() -> torch.Tensor:
            nonlocal n_eval
            n_eval += 1
            opt.zero_grad()
            loss = objective(x).sum()
            loss.backward()
            return loss

        trace: list[float] = []
        for it in range(config.iterations):
            loss = float(opt.step(closure))
            if not math.isfinite(loss) or not torch.isfinite(x).all():
                reason = f"non-finite loss ({loss}) at iteration {it + 1}"
                x.data.copy_(last)
                break
            last.copy_(x.detach())
            trace.append(loss)
            done += 1
            if progress:
                progress(done, total)
        with torch.no_grad():
            final = float(objective(x).sum()) if reason is None else (trace[-1] if trace else float("nan"))
        if reason is None:
            trace.append(final)
            trace = trace[1:] if len(trace) > 1 else trace
        xs.append(x.detach())
        traces.append(trace)
        iters.append(len(trace))
        evals.append(n_eval)
        failed.append(reason)
    T = max(1, max(len(t) for t in traces))
    trace_t = torch.full((B, T), float("nan"))
    for b, t in enumerate(traces):
        if t:
            trace_t[b, : len(t)] = torch.tensor(t)
            trace_t[b, len(t) :] = t[-1]
    final_loss = trace_t[:, -1].clone()
    return OptimResult(torch.cat(xs), trace_t, final_loss, iters, evals, failed)
