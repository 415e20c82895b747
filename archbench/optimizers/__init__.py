"""Image optimisers: minimise a batch of independent per-sample objectives.

The one entry point is :func:`minimize`. An objective maps a batch of images ``x`` of shape
``(B, C, H, W)`` to per-sample losses of shape ``(B,)``; sample ``b``'s loss may depend only on
``x[b]``. Each sample is optimised as if alone (its own L-BFGS history, step and convergence), so
a batched run gives the same results as running the samples one by one.
"""

from archbench.optimizers.base import OptimConfig, OptimResult, minimize

__all__ = ["OptimConfig", "OptimResult", "minimize"]
