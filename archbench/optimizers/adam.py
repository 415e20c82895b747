"""Adam over a batch of independent samples (Adam's update is per element, so batching is exact)."""

from __future__ import annotations

import torch

from archbench.optimizers.base import Objective, OptimConfig, OptimResult, ProgressCallback


def adam(
    objective: Objective, x0: torch.Tensor, config: OptimConfig, progress: ProgressCallback | None = None
) -> OptimResult:
    B = x0.shape[0]
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=config.step_size)
    trace = torch.empty(B, config.iterations)
    failed: list[str | None] = [None] * B
    for it in range(config.iterations):
        opt.zero_grad()
        losses = objective(x)
        losses.sum().backward()
        opt.step()
        trace[:, it] = losses.detach().cpu()
        if progress:
            progress((it + 1) * B, config.iterations * B)
    with torch.no_grad():
        final = objective(x).detach().cpu()
    trace = torch.cat([trace[:, 1:], final[:, None]], dim=1)
    bad = ~torch.isfinite(final)
    for b in torch.nonzero(bad).flatten().tolist():
        failed[b] = "non-finite loss"
    return OptimResult(x.detach(), trace, final, [config.iterations] * B, [config.iterations + 1] * B, failed)
