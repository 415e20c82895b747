"""Image optimisers: minimise a batch of independent per-sample objectives.

The entry points are :func:`minimize` (``objective(x) -> losses``) and :func:`minimize_chunked`
(``objective(x, index) -> losses``, split into chunks and halved on CUDA out-of-memory). An
objective maps a batch of images ``x`` of shape ``(B, C, H, W)`` to per-sample losses of shape
``(B,)``; sample ``b``'s loss may depend only on ``x[b]`` (the full contract is in
:mod:`archbench.optimizers.base`). Each sample is optimised as if alone (its own L-BFGS history,
step and stop state), so a batched run gives the same results as running the samples one by one,
and the loop never waits for the device (no per-iteration host synchronisation).
:func:`lbfgs_reference` is the slow per-sample ``torch.optim.LBFGS`` loop used as a yardstick.
"""

from archbench.optimizers.base import (
    Objective,
    OptimConfig,
    OptimResult,
    SliceableObjective,
    minimize,
    minimize_chunked,
    prepare_module,
)
from archbench.optimizers.reference import lbfgs_reference

__all__ = [
    "Objective",
    "OptimConfig",
    "OptimResult",
    "SliceableObjective",
    "lbfgs_reference",
    "minimize",
    "minimize_chunked",
    "prepare_module",
]
