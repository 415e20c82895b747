"""Adam over a batch of independent samples, without host synchronisation.

Adam's update is element-wise, so batching is exact. The update is ``torch.optim.Adam``'s
(``betas = (0.9, 0.999)``, ``eps = 1e-8``, no weight decay)::

    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
    x = x - lr * (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)

written out here so that it can be masked per sample: a sample whose loss or gradient becomes
non-finite is frozen at its last finite iterate and reported as failed
(``"non-finite loss at iteration k"``); a sample whose gradient's max-abs falls to
``tolerance_grad`` times its max-abs at the start stops (``OptimConfig.scale_free``, the default:
each sample then runs on its loss divided by that start max-abs, so ``eps`` is 1e-8 of it and the
steps do not depend on the objective's scale; without ``scale_free`` ``tolerance_grad`` is
absolute). One iteration = one step; the loss after the last step is evaluated without a gradient.
"""

from __future__ import annotations

import torch

from archbench.optimizers.problem import Objective, OptimConfig, OptimResult, ProgressCallback, start_scale
from archbench.optimizers.runtime import Evaluator

BETAS = (0.9, 0.999)
EPS = 1e-8


def adam(
    objective: Objective, x0: torch.Tensor, config: OptimConfig, progress: ProgressCallback | None = None
) -> OptimResult:
    """Batched, synchronisation-free Adam (see the module docstring)."""
    ev = Evaluator.create(objective, x0, config)
    dtype = torch.float64 if x0.dtype == torch.float64 else torch.float32
    B = x0.shape[0]
    N = config.iterations
    lr = config.step_size
    b1, b2 = BETAS

    x = ev.flatten(x0.detach().to(dtype)).clone()
    f, g = ev.loss_and_grad(x)
    ok = torch.isfinite(f) & torch.isfinite(g).all(1)
    f_start = f.clone()
    scale = start_scale(torch.where(ok[:, None], g, 0.0), ok, "max") if config.scale_free else torch.ones_like(f)
    g = g / scale[:, None]
    tol_grad = config.tolerance_grad * (g.abs().amax(1) if config.scale_free else 1.0)
    fail_iter = torch.where(ok, -1, 0)
    active = ok & (g.abs().amax(1) > tol_grad)
    m1 = torch.zeros_like(x)
    v = torch.zeros_like(x)
    n_steps = torch.zeros(B, dtype=torch.long, device=x.device)
    n_eval = torch.ones(B, dtype=torch.long, device=x.device)
    trace = x.new_empty(B, N)

    for k in range(1, N + 1):
        mask = active[:, None]
        g = torch.where(mask, g, 0.0)
        m1 = torch.where(mask, torch.lerp(m1, g, 1 - b1), m1)
        v = torch.where(mask, v * b2 + (1 - b2) * g * g, v)
        denom = (v / (1 - b2**k)).sqrt_().add_(EPS)
        x_new = torch.where(mask, x - (lr / (1 - b1**k)) * m1 / denom, x)
        n_steps += active
        n_eval += active
        if k < N:
            f_new, g = ev.loss_and_grad(x_new)
            g = g / scale[:, None]
            ok = torch.isfinite(f_new) & torch.isfinite(g).all(1)
        else:
            f_new = ev.losses(x_new)
            ok = torch.isfinite(f_new)
        bad = active & ~ok
        fail_iter = torch.where(bad, k, fail_iter)
        keep = active & ok
        x = torch.where(keep[:, None], x_new, x)
        f = torch.where(keep, f_new, f)
        active = keep & (g.abs().amax(1) > tol_grad)
        trace[:, k - 1] = f
        if progress is not None:
            progress(k * B, N * B)

    fail_at = fail_iter.cpu().tolist()
    steps = n_steps.cpu().tolist()
    # a sample that failed at step k did not keep that step
    steps = [s - 1 if fk > 0 else s for s, fk in zip(steps, fail_at, strict=True)]
    final = f.cpu()
    return OptimResult(
        x=ev.unflatten(x).to(x0.dtype).contiguous(),
        loss_trace=trace.cpu(),
        final_loss=final,
        iterations=steps,
        evaluations=n_eval.cpu().tolist(),
        failed=[None if k < 0 else f"non-finite loss at iteration {k}" for k in fail_at],
        settings={**ev.settings, "implementation": "batched", "scale_free": config.scale_free,
                  "loss_scale": scale.cpu().tolist()},
        initial_loss=f_start.cpu(),
    )
