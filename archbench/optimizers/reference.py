"""Reference L-BFGS: ``torch.optim.LBFGS`` on each sample alone, one after another.

This is the usual loop (one image, ``torch.optim.LBFGS``, a ``float(loss)`` per evaluation, as in
the PyTorch style-transfer tutorial). It is slow but simple and is the yardstick for the batched
:mod:`archbench.optimizers.lbfgs` in the tests and in ``benchmarks/bench_optimizer.py``.

``config.line_search`` selects ``torch.optim.LBFGS``'s line search: ``"none"`` -> none (one
evaluation per iteration, the tutorial's setting), ``"backtracking"`` -> ``"strong_wolfe"`` (a
different procedure from the batched backtracking; one or more evaluations per iteration). Each
sample runs one ``step`` call with ``max_iter = config.iterations``: calling ``step`` once per
iteration with ``max_iter=1`` stalls with ``"strong_wolfe"`` (its state is not carried over
correctly between calls in torch 2.x; measured on a quadratic). Precision, memory-format and
compile options are ignored: the reference always runs the objective as given.

With ``config.scale_free`` (the default) each sample runs on its objective divided by the ℓ1 norm
of its gradient at the start, with ``tolerance_grad`` times the start's largest gradient
component as torch's (absolute) gradient tolerance -- the batched L-BFGS's scale-free rule (see
:class:`~archbench.optimizers.base.OptimConfig`); traces are reported unscaled. That first
evaluation is not counted.
"""

from __future__ import annotations

import math

import torch

from archbench.optimizers.problem import Objective, OptimConfig, OptimResult, ProgressCallback, stalled_flags


def _run_one(
    objective: Objective, x0: torch.Tensor, config: OptimConfig, on_eval: ProgressCallback | None
) -> tuple[torch.Tensor, list[float], int, int, str | None, float]:
    """One sample: ``(x, trace, iterations, evaluations, failure reason, loss at x0)``."""
    x = x0.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        start = objective(x).sum()
        (g0,) = torch.autograd.grad(start, x)
    f0 = float(start.detach())
    scale, tolerance_grad = 1.0, config.tolerance_grad
    if config.scale_free:
        l1 = float(g0.abs().sum())
        scale = l1 if math.isfinite(l1) and l1 > 0 else 1.0
        tolerance_grad = config.tolerance_grad * float(g0.abs().max()) / scale
    opt = torch.optim.LBFGS(
        [x],
        lr=config.step_size,
        max_iter=config.iterations,
        max_eval=config.iterations * 5 // 4 + 1,
        history_size=config.history,
        tolerance_grad=tolerance_grad,
        tolerance_change=config.tolerance_change,
        line_search_fn=None if config.line_search == "none" else "strong_wolfe",
    )
    losses: list[float] = []
    last = x.detach().clone()
    reason: list[str] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        raw = objective(x).sum()
        loss = raw / scale
        value = float(raw.detach())  # the usual loop's host synchronisation
        if not reason:
            if math.isfinite(value):
                last.copy_(x.detach())
            else:
                reason.append(f"non-finite loss at evaluation {len(losses)}")
        losses.append(value)
        loss.backward()
        if on_eval is not None:
            on_eval(min(len(losses), config.iterations), config.iterations)
        return loss

    opt.step(closure)
    n_iter = int(opt.state[x].get("n_iter", 0))
    if reason:
        x.data.copy_(last)
        k = next(i for i, v in enumerate(losses) if not math.isfinite(v))
        trace = losses[1:k] if k > 1 else (losses[:k] or [float("nan")])
    else:
        with torch.no_grad():
            final = float(objective(x).sum())
        trace = losses[1:] + [final]
    return x.detach(), trace, n_iter, len(losses), (reason[0] if reason else None), f0


def lbfgs_reference(
    objective: Objective, x0: torch.Tensor, config: OptimConfig, progress: ProgressCallback | None = None
) -> OptimResult:
    """Run ``torch.optim.LBFGS`` on each sample in turn.

    ``loss_trace[b]`` holds the loss at each evaluation after the first (for ``line_search="none"``
    that is the loss after each iteration) followed by the loss at the final iterate; shorter
    traces are padded with their last value. A sample whose loss becomes non-finite keeps its last
    finite evaluation point and is reported as failed (``"non-finite loss at evaluation k"``).
    ``progress`` is called as ``progress(sample_iterations_done, B * iterations)``.
    """
    B = x0.shape[0]
    xs, traces, iters, evals, failed, starts = [], [], [], [], [], []
    for b in range(B):
        on_eval = None
        if progress is not None:

            def on_eval(done: int, total: int, _b: int = b) -> None:
                progress(_b * total + done, B * total)

        x, trace, n_iter, n_eval, reason, f0 = _run_one(objective, x0[b : b + 1], config, on_eval)
        starts.append(f0)
        xs.append(x)
        traces.append(trace)
        iters.append(n_iter)
        evals.append(n_eval)
        failed.append(reason)
    T = max(len(t) for t in traces)
    trace_t = torch.empty(B, T, dtype=torch.float64)
    for b, t in enumerate(traces):
        trace_t[b, : len(t)] = torch.tensor(t, dtype=torch.float64)
        trace_t[b, len(t) :] = t[-1]
    final_loss = trace_t[:, -1].clone()
    result = OptimResult(torch.cat(xs), trace_t, final_loss, iters, evals, failed,
                         {"implementation": "reference", "scale_free": config.scale_free},
                         initial_loss=torch.tensor(starts, dtype=torch.float64))
    result.stalled = stalled_flags(x0, result.x, result.initial_loss, final_loss, config)
    return result
