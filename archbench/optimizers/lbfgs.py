"""Batched L-BFGS: ``B`` independent problems in lockstep, without host synchronisation.

Every sample has its own L-BFGS state: iterate ``x``, loss ``f``, gradient ``g``, direction ``d``,
step ``t``, history of curvature pairs ``s = x_new - x``, ``y = g_new - g`` (ring buffers of
``history`` pairs, ``(B, 2 * history, D)``), initial inverse-Hessian scale ``gamma = s.y / y.y`` of
its newest pair, and its stop state. All samples advance together: each *iteration* evaluates the
objective (loss and gradient) once for the whole batch, at every active sample's trial point
``x + t d``. Decisions (accept, shrink the step, stop, fail) are per-sample masks computed on the
device, so nothing is copied to the host inside the loop except once every
:data:`SYNC_EVERY` iterations, to end the loop when no sample is active any more.

Search direction
    ``d = -H g`` with the compact representation of the L-BFGS inverse Hessian (Byrd, Nocedal &
    Schnabel 1994; Nocedal & Wright, *Numerical Optimization*, eq. 7.24)::

        H = gamma I + [S  gamma Y] [[R^-T (Dg + gamma Y^T Y) R^-1, -R^-T], [-R^-1, 0]] [S^T; gamma Y^T]

    with ``R`` the upper triangle of ``S^T Y`` (pairs in chronological order) and ``Dg`` its
    diagonal. It gives the same direction as the two-loop recursion of ``torch.optim.LBFGS``
    (checked in the tests) but costs a constant number of batched kernels instead of ``4 m``
    small ones: one ``bmm`` for ``[S Y]^T [y g]``, two ``history x history`` triangular solves in
    float64, one ``bmm`` for ``[S Y] c``. ``S^T Y`` and ``Y^T Y`` are updated one column per
    iteration. Empty slots (not yet filled, skipped because ``s.y <= 1e-10``, or cleared) are
    masked out.

Step acceptance (``OptimConfig.line_search``)
    ``"backtracking"``: the trial step ``t`` (``lr``, or ``lr * min(1, 1/|g|_1)`` while the history is
    empty, as ``torch.optim.LBFGS``'s first step) is accepted when it satisfies the Armijo condition
    ``f(x + t d) <= f(x) + 1e-4 t g.d``. Otherwise the sample keeps ``x`` and its next iteration
    tries ``t`` from the minimiser of the quadratic through ``f(x)``, ``g.d`` and ``f(x + t d)``,
    kept within ``[0.1 t, 0.5 t]``. After 10 rejections in a row the sample's history is cleared
    (steepest descent); 10 more and it stops (no progress possible at this precision). Accepted
    steps are the unit quasi-Newton steps in the vast majority of iterations, so the cost is close
    to one evaluation per step, like ``torch.optim.LBFGS`` without line search, while a bad step
    can never increase the loss. ``"none"``: every finite trial is accepted (the tutorial's
    ``torch.optim.LBFGS()`` behaviour).

Scale-free stopping (``OptimConfig.scale_free``, the default)
    Each sample runs on its loss divided by ``c = |g(x0)|_1``, the ℓ1 norm of its gradient at the
    start, so that the first step (``lr`` in ℓ1 along ``-g``), the curvature threshold and the
    stopping tests mean the same at every scale of the objective (see
    :class:`~archbench.optimizers.base.OptimConfig`). Traces and final losses are reported
    unscaled.

Stopping and failure
    A sample stops when its gradient's max-abs is ``<= tolerance_grad`` times its max-abs at the
    start (absolute ``tolerance_grad`` without ``scale_free``), its loss changes by less than
    ``tolerance_change`` (relative) or its step's max-abs is ``<= tolerance_change``. A sample
    whose trial loss or gradient is non-finite is frozen at its last accepted (finite) iterate and
    reported as failed with ``"non-finite loss at iteration k"`` (``k = 0``: the starting point).

Independence: a sample's arithmetic never reads another sample's values, so a batched run
matches running each sample alone up to floating-point differences of batched kernels (tested).
"""

from __future__ import annotations

import torch

from archbench.optimizers.problem import Objective, OptimConfig, OptimResult, ProgressCallback, start_scale
from archbench.optimizers.runtime import Evaluator

#: Armijo sufficient-decrease constant
ARMIJO_C1 = 1e-4
#: pairs with ``s.y`` at or below this are not stored (as ``torch.optim.LBFGS``)
CURVATURE_EPS = 1e-10
#: rejected trials in a row before the history is cleared (and, again, before the sample stops)
MAX_REJECTIONS = 10
#: iterations between the checks (one host synchronisation each) whether any sample is active
SYNC_EVERY = 50


def _first_step(g: torch.Tensor, lr: float) -> torch.Tensor:
    """``lr * min(1, 1 / |g|_1)`` per sample, the step ``torch.optim.LBFGS`` takes along ``-g``."""
    return lr * torch.clamp(1.0 / g.abs().sum(1), max=1.0)


def compact_direction(
    g: torch.Tensor,
    SY: torch.Tensor,
    StY: torch.Tensor,
    YtY: torch.Tensor,
    stamp: torch.Tensor,
    gamma: torch.Tensor,
    Stg: torch.Tensor,
    Ytg: torch.Tensor,
) -> torch.Tensor:
    """``d = -H g`` per sample from the compact L-BFGS representation (see the module docstring).

    Args:
        g: gradients ``(B, D)``.
        SY: history ``(B, 2m, D)``: ``s`` vectors in rows ``[0, m)``, ``y`` vectors in ``[m, 2m)``.
        StY: ``(B, m, m)`` with ``StY[b, i, j] = s_i . y_j`` (needed for ``i`` not newer than ``j``).
        YtY: ``(B, m, m)`` with ``YtY[b, i, j] = y_i . y_j``.
        stamp: ``(B, m)`` insertion counter of each slot, ``-1`` for an empty slot.
        gamma: ``(B,)`` initial inverse-Hessian scale.
        Stg, Ytg: ``(B, m)`` products ``S^T g`` and ``Y^T g``.

    Returns:
        ``(B, D)`` directions in ``g``'s dtype. With an empty history ``d = -gamma g``.
    """
    B, m = stamp.shape
    f64 = torch.float64
    order = torch.argsort(stamp, dim=1)  # chronological; empty slots (stamp -1) first
    vm = (stamp >= 0).gather(1, order).to(f64)
    pair = vm[:, :, None] * vm[:, None, :]
    rows = order[:, :, None].expand(B, m, m)
    cols = order[:, None, :].expand(B, m, m)
    sty = StY.to(f64).gather(1, rows).gather(2, cols) * pair
    yty = YtY.to(f64).gather(1, rows).gather(2, cols) * pair
    R = torch.triu(sty) + torch.diag_embed(1.0 - vm)  # empty slots decouple as identity rows
    Dg = torch.diagonal(sty, dim1=1, dim2=2)
    a = (Stg.to(f64).gather(1, order) * vm)[:, :, None]
    b = (Ytg.to(f64).gather(1, order) * vm)[:, :, None]
    gam = gamma.to(f64)[:, None, None]
    u = torch.linalg.solve_triangular(R, a, upper=True)  # R^-1 S^T g
    rhs = Dg[:, :, None] * u + gam * torch.bmm(yty, u) - gam * b
    top = torch.linalg.solve_triangular(R.transpose(1, 2), rhs, upper=False)
    # H g = gamma g + S top - gamma Y u   =>   d = -gamma g - S top + gamma Y u
    coef_s = torch.zeros(B, m, dtype=f64, device=g.device).scatter(1, order, -top[:, :, 0])
    coef_y = torch.zeros(B, m, dtype=f64, device=g.device).scatter(1, order, (gam[:, :, 0] * u[:, :, 0]))
    coef = torch.cat([coef_s, coef_y], dim=1).to(SY.dtype)
    return torch.bmm(coef[:, None, :], SY)[:, 0] - gamma.to(g.dtype)[:, None] * g


def two_loop_direction(g: torch.Tensor, S: list[torch.Tensor], Y: list[torch.Tensor]) -> torch.Tensor:
    """``d = -H g`` by the two-loop recursion (as ``torch.optim.LBFGS``), for one sample.

    ``S`` and ``Y`` are the pairs oldest first, each a ``(D,)`` tensor. Used to check
    :func:`compact_direction`; the optimiser itself does not call it.
    """
    q = -g.clone()
    rhos = [1.0 / torch.dot(y, s) for s, y in zip(S, Y, strict=True)]
    alphas = [torch.zeros((), dtype=g.dtype)] * len(S)
    for i in reversed(range(len(S))):
        alphas[i] = rhos[i] * torch.dot(S[i], q)
        q = q - alphas[i] * Y[i]
    gamma = torch.dot(S[-1], Y[-1]) / torch.dot(Y[-1], Y[-1]) if S else 1.0
    r = gamma * q
    for i in range(len(S)):
        beta = rhos[i] * torch.dot(Y[i], r)
        r = r + S[i] * (alphas[i] - beta)
    return r


def lbfgs(
    objective: Objective, x0: torch.Tensor, config: OptimConfig, progress: ProgressCallback | None = None
) -> OptimResult:
    """Batched, synchronisation-free L-BFGS (see the module docstring for the algorithm)."""
    ev = Evaluator.create(objective, x0, config)
    dtype = torch.float64 if x0.dtype == torch.float64 else torch.float32
    B = x0.shape[0]
    m = config.history
    lr = config.step_size
    N = config.iterations
    backtracking = config.line_search == "backtracking"
    tol_grad, tol_change = config.tolerance_grad, config.tolerance_change

    x = ev.flatten(x0.detach().to(dtype)).clone()
    D = x.shape[1]
    dev = x.device
    rows = torch.arange(B, device=dev)

    f, g = ev.loss_and_grad(x)
    finite = torch.isfinite(f) & torch.isfinite(g).all(1)
    g = torch.where(finite[:, None], g, 0.0)
    f_start = f.clone()
    # scale-free: every sample runs on f / c (c = |g(x0)|_1); thresholds then mean the same at any scale
    scale = start_scale(g, finite, "l1") if config.scale_free else torch.ones_like(f)
    f_raw = f  # the loss in the objective's own units (what traces report)
    f = f / scale
    g = g / scale[:, None]
    if config.scale_free:
        tol_grad = tol_grad * g.abs().amax(1)  # relative to the start's largest gradient component
    fail_iter = torch.where(finite, -1, 0)
    active = finite & (g.abs().amax(1) > tol_grad)

    SY = x.new_zeros(B, 2 * m, D)
    StY = torch.zeros(B, m, m, dtype=torch.float64, device=dev)
    YtY = torch.zeros(B, m, m, dtype=torch.float64, device=dev)
    stamp = torch.full((B, m), -1, dtype=torch.long, device=dev)
    count = torch.zeros(B, dtype=torch.long, device=dev)
    gamma = torch.ones(B, dtype=torch.float64, device=dev)

    d = -g
    t = _first_step(g, lr)
    gtd = (g * d).sum(1)
    rejects = torch.zeros(B, dtype=torch.long, device=dev)
    n_acc = torch.zeros(B, dtype=torch.long, device=dev)
    n_iter = torch.zeros(B, dtype=torch.long, device=dev)
    n_eval = torch.ones(B, dtype=torch.long, device=dev)
    trace = x.new_empty(B, N)

    ran = 0
    for k in range(1, N + 1):
        step = torch.where(active, t, 0.0)
        xt = torch.addcmul(x, step[:, None], d)
        ft_raw, gt = ev.loss_and_grad(xt)
        ft = ft_raw / scale
        gt = gt / scale[:, None]
        n_eval += active
        ok = torch.isfinite(ft) & torch.isfinite(gt).all(1)
        fail_iter = torch.where(active & ~ok, k, fail_iter)
        active = active & ok
        n_iter += active
        gt = torch.where(ok[:, None], gt, 0.0)
        if backtracking:
            acc = active & (ft <= f + ARMIJO_C1 * step * gtd)
        else:
            acc = active
        rej = active & ~acc

        # accepted samples move
        s = xt - x
        y = gt - g
        ys = (s * y).sum(1)
        yy = (y * y).sum(1)
        f_old = f
        x = torch.where(acc[:, None], xt, x)
        f = torch.where(acc, ft, f)
        f_raw = torch.where(acc, ft_raw, f_raw)
        g = torch.where(acc[:, None], gt, g)
        n_acc += acc

        # store the pair (s, y) in each accepting sample's next ring slot
        valid = acc & (ys > CURVATURE_EPS)
        slot = count % m
        vcol = valid[:, None]
        SY[rows, slot] = torch.where(vcol, s, SY[rows, slot])
        SY[rows, slot + m] = torch.where(vcol, y, SY[rows, slot + m])
        # [y g]^T [S Y], (B, 2, 2m); this operand order is ~3x faster than SY @ [y g] with MKL
        W = torch.bmm(torch.stack([y, g], dim=1), SY.transpose(1, 2)).to(torch.float64)
        col = slot[:, None, None].expand(B, m, 1)
        sty_new = torch.where(vcol, W[:, 0, :m], StY.gather(2, col)[:, :, 0])
        StY.scatter_(2, col, sty_new[:, :, None])
        yty_new = torch.where(vcol, W[:, 0, m:], YtY.gather(2, col)[:, :, 0])
        YtY.scatter_(2, col, yty_new[:, :, None])
        YtY.scatter_(1, slot[:, None, None].expand(B, 1, m), yty_new[:, None, :])
        stamp[rows, slot] = torch.where(valid, count, stamp[rows, slot])
        count += valid
        gamma = torch.where(valid, ys.to(torch.float64) / yy.to(torch.float64), gamma)

        # new direction for accepted samples; clear the history where it is not a descent direction
        d_new = compact_direction(g, SY, StY, YtY, stamp, gamma, W[:, 1, :m], W[:, 1, m:])
        gtd_new = (g * d_new).sum(1)
        bad = acc & ~(gtd_new < 0)  # also catches NaN
        # rejected samples shrink the step (quadratic interpolation, safeguarded)
        t_quad = -gtd * step * step / (2.0 * (ft - f_old - gtd * step))
        t_quad = torch.where(torch.isfinite(t_quad), t_quad, 0.5 * step)
        t_shrunk = torch.minimum(torch.maximum(t_quad, 0.1 * step), 0.5 * step)
        rejects = torch.where(acc, 0, rejects + rej.long())
        too_many = rej & (rejects >= MAX_REJECTIONS)
        has_hist = (stamp >= 0).any(1)
        reset = bad | (too_many & has_hist)
        stalled = too_many & ~has_hist
        stamp = torch.where(reset[:, None], -1, stamp)
        gamma = torch.where(reset, 1.0, gamma)
        rejects = torch.where(reset, 0, rejects)
        has_hist = has_hist & ~reset
        d = torch.where(reset[:, None], -g, torch.where(acc[:, None], d_new, d))
        t_new = torch.where(has_hist, lr, _first_step(g, lr))
        t = torch.where(acc | reset, t_new, torch.where(rej, t_shrunk, t))
        gtd = (g * d).sum(1)

        # stopping tests for accepted samples
        converged = acc & (
            (g.abs().amax(1) <= tol_grad)
            | ((f_old - f).abs() <= tol_change * f_old.abs())
            | (s.abs().amax(1) <= tol_change)
        )
        active = active & ~converged & ~stalled

        trace[:, k - 1] = f_raw
        ran = k
        if progress is not None:
            progress(k * B, N * B)
        if k % SYNC_EVERY == 0 and k < N and not bool(active.any()):
            break

    fail_at = fail_iter.cpu().tolist()
    x_out = ev.unflatten(x).to(x0.dtype).contiguous()
    return OptimResult(
        x=x_out,
        loss_trace=trace[:, :ran].cpu(),
        final_loss=f_raw.cpu(),
        iterations=n_iter.cpu().tolist(),
        evaluations=n_eval.cpu().tolist(),
        failed=[None if k < 0 else f"non-finite loss at iteration {k}" for k in fail_at],
        settings={
            **ev.settings,
            "implementation": "batched",
            "line_search": config.line_search,
            "iterations_run": ran,
            "accepted_steps": n_acc.cpu().tolist(),
            "scale_free": config.scale_free,
            "loss_scale": scale.cpu().tolist(),
        },
        initial_loss=f_start.cpu(),
    )
