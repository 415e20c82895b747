"""Layer weights for multi-layer objectives (texture, style): the paper's automatic pre-pass and
the alternatives, plus the weighted objective they feed.

An objective is a sum of *terms*: a Gram (style/texture) loss at a layer, a neural-patches loss
at a layer (:mod:`archbench.losses.patches`), a feature (content) loss at a layer, or the TV
prior. Term ``t`` enters as ``w_t · L_t(x)`` with

    w_t = g_t · s_t

where ``g_t`` is the fixed weight the user or the preset gives (α, β, γ times a per-layer weight)
and ``s_t`` the scale chosen by the *weighting* scheme, computed once at the starting image x0:

* ``none`` -- ``s_t = 1`` (the tools' own fixed weights);
* ``auto`` -- the paper's pre-pass (He et al. 2016): ``1/s_t = (1/(C·H·W)) Σ |∂L_t/∂x|`` at x0,
  so every layer pushes the image with the same mean absolute gradient at the start (the TV term
  keeps ``s = 1``: its weight γ is applied as given);
* ``inverse-loss`` -- ``s_t = 1 / L_t(x0)``;
* ``normalize-gradients`` -- ``s_t = 1``, and at every evaluation the gradient a layer's loss sends
  into that layer's features is divided by its L1 norm (per sample) before it is scaled by
  ``w_t`` and back-propagated, as jcjohnson/neural-style's ``-normalize_gradients``. The loss
  values reported stay the weighted sum Σ w_t L_t; the gradient is then no longer that sum's
  gradient (as in neural-style), which line searches tolerate but do not expect.

All scales are per sample ``(B,)``: samples in one batch are independent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError
from archbench.losses import FEATURE_NORMS, feature_loss, tv_loss
from archbench.losses.gram import check_gram_norm, gram_loss
from archbench.losses.patches import PatchSource, patch_loss

#: weighting schemes: name -> description
WEIGHTINGS: dict[str, str] = {
    "auto": "reciprocal mean absolute input gradient of each layer's loss at the start (He et al. 2016)",
    "none": "the fixed weights only",
    "inverse-loss": "reciprocal of each layer's loss at the start",
    "normalize-gradients": "per-evaluation L1 normalisation of each layer's feature gradient (jcjohnson/neural-style)",
}

#: TV normalisations: ``sum`` is Σ squared differences (the paper's R_TV, jcjohnson's TV); ``mean``
#: divides it by the number of pixel values C·H·W
TV_NORMS = ("sum", "mean")
#: content (feature) loss normalisations: :data:`archbench.losses.FEATURE_NORMS` plus ``mse``
#: (mean over C·H·W, the style tools' content loss)
CONTENT_NORMS = (*FEATURE_NORMS, "mse")


def check_weighting(name: str) -> str:
    """Return ``name`` if it is a weighting scheme, else raise :class:`ConfigError`."""
    if name not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {name!r}; valid: {', '.join(WEIGHTINGS)}")
    return name


class _NormalizeGradient(torch.autograd.Function):
    """Identity forward; backward divides each sample's incoming gradient by its L1 norm and
    multiplies it by ``strength`` (one value per sample)."""

    @staticmethod
    def forward(ctx, f: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(strength)
        return f.view_as(f)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (strength,) = ctx.saved_tensors
        norm = grad.abs().flatten(1).sum(1) + 1e-8
        scale = (strength / norm).view(-1, *([1] * (grad.ndim - 1)))
        return grad * scale.to(grad.dtype), None


def normalize_gradient(f: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """``f`` unchanged; its gradient per sample becomes ``strength · g / (‖g‖₁ + 1e-8)``."""
    return _NormalizeGradient.apply(f, strength)


@dataclass
class Term:
    """One term of an objective.

    Attributes:
        name: label, e.g. ``style:conv1_1``, ``content:conv2_2``, ``tv``.
        kind: ``gram``, ``patches``, ``feature`` or ``tv``.
        layer: the tap (``None`` for ``tv``).
        target: the reference Gram ``(B, N, N)`` (``gram``), the source patches
            (:class:`~archbench.losses.patches.PatchSource`, ``patches``) or features
            ``(B, C, H, W)`` (``feature``).
        weight: the fixed weight ``g_t`` (α, β or γ times the per-layer weight).
        norm: Gram normalisation (``gram``), feature normalisation (``feature``) or TV norm (``tv``).
        gram_m: ``M`` used by the ``paper`` Gram normalisation (the reference's H·W).
        variety: weight of the patch loss's variety (coverage) term (``patches`` only).
    """

    name: str
    kind: str
    layer: str | None
    target: Any
    weight: float
    norm: str
    gram_m: int | None = None
    variety: float = 0.0


@dataclass
class WeightedObjective:
    """``x -> Σ_t w_t · L_t(x)`` per sample, callable as ``objective(x)`` or ``objective(x, index)``.

    Attributes:
        net: the network whose taps the terms read.
        terms: the terms.
        weighting: the scheme (see module docstring).
        scales: ``(T, B)`` scales ``s_t`` (set by :meth:`calibrate`; ones before).
    """

    net: TappedNetwork
    terms: list[Term]
    weighting: str = "auto"
    scales: torch.Tensor | None = None
    layers: list[str] = field(init=False)

    def __post_init__(self) -> None:
        check_weighting(self.weighting)
        for t in self.terms:
            if t.kind == "gram":
                check_gram_norm(t.norm)
            elif t.kind == "tv":
                if t.norm not in TV_NORMS:
                    raise ConfigError(f"unknown TV normalisation {t.norm!r}; valid: {', '.join(TV_NORMS)}")
            elif t.kind == "patches":
                pass  # no normalisation choice: mean squared patch difference
            elif t.kind == "feature":
                if t.norm not in CONTENT_NORMS:
                    raise ConfigError(f"unknown content normalisation {t.norm!r}; valid: {', '.join(CONTENT_NORMS)}")
            else:
                raise ValueError(f"unknown term kind {t.kind!r}")
        self.layers = list(dict.fromkeys(t.layer for t in self.terms if t.layer is not None))

    def _select(self, t: Any, index: torch.Tensor | None) -> Any:
        if isinstance(t, PatchSource):
            return t.select(index)
        if index is None or t.shape[0] == 1:
            return t
        return t[index]

    def term_losses(
        self, x: torch.Tensor, index: torch.Tensor | None = None, strengths: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Unweighted per-term losses ``[L_t(x)]``, each ``(B,)``.

        With ``strengths`` (``(T, B)``), each layer's features pass through
        :func:`normalize_gradient` with that strength first.
        """
        feats = self.net(x, self.layers) if self.layers else {}
        out = []
        for i, t in enumerate(self.terms):
            if t.kind == "tv":
                loss = tv_loss(x, 2.0)
                if t.norm == "mean":
                    loss = loss / x[0].numel()
                out.append(loss)
                continue
            f = feats[t.layer].float()
            if strengths is not None:
                f = normalize_gradient(f, strengths[i])
            target = self._select(t.target, index)
            if t.kind == "gram":
                out.append(gram_loss(f, target, t.norm, m=t.gram_m))
            elif t.kind == "patches":
                out.append(patch_loss(f, target, t.variety))
            elif t.norm == "mse":
                out.append(feature_loss(f, target, "none") / f[0].numel())
            else:
                out.append(feature_loss(f, target, t.norm))
        return out

    def weights(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Effective weights ``w_t = g_t · s_t``, ``(T, B)`` (``B`` = 1 before calibration)."""
        g = torch.tensor([t.weight for t in self.terms], dtype=torch.float32)
        scales = self.scales if self.scales is not None else torch.ones(len(self.terms), 1)
        w = g.to(scales.device)[:, None] * scales
        return w if index is None else w[:, index.to(w.device)] if w.shape[1] > 1 else w

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weights(index).to(x.device)
        if self.weighting == "normalize-gradients":
            # value: Σ w_t L_t; gradient: each layer's feature gradient L1-normalised, times w_t
            losses = self.term_losses(x, index, strengths=w.expand(len(self.terms), x.shape[0]))
            total = x.new_zeros(x.shape[0])
            for i, (t, loss) in enumerate(zip(self.terms, losses, strict=True)):
                if t.kind == "tv":
                    total = total + w[i] * loss
                else:
                    total = total + (w[i] * loss).detach() + (loss - loss.detach())
            return total
        losses = self.term_losses(x, index)
        return sum(w[i] * loss for i, loss in enumerate(losses))

    def calibrate(self, x0: torch.Tensor) -> torch.Tensor:
        """Compute the scales ``s_t`` at the start ``x0`` (see module docstring); returns ``(T, B)``."""
        B = x0.shape[0]
        scales = torch.ones(len(self.terms), B, device=x0.device)
        if self.weighting == "auto":
            x = x0.detach().clone().requires_grad_(True)
            losses = self.term_losses(x)
            for i, (t, loss) in enumerate(zip(self.terms, losses, strict=True)):
                if t.kind == "tv":
                    continue
                (grad,) = torch.autograd.grad(loss.sum(), x, retain_graph=i < len(losses) - 1)
                scales[i] = 1.0 / grad.abs().flatten(1).mean(1).clamp_min(1e-30)
        elif self.weighting == "inverse-loss":
            with torch.no_grad():
                losses = self.term_losses(x0)
            for i, (t, loss) in enumerate(zip(self.terms, losses, strict=True)):
                if t.kind != "tv":
                    scales[i] = 1.0 / loss.clamp_min(1e-30)
        self.scales = scales
        return scales

    def describe(self, b: int = 0) -> dict[str, float]:
        """Term name -> effective weight ``w_t`` of sample ``b`` (for results)."""
        w = self.weights()
        col = min(b, w.shape[1] - 1)
        return {t.name: float(w[i, col]) for i, t in enumerate(self.terms)}


def input_gradient_means(objective: WeightedObjective, x: torch.Tensor) -> torch.Tensor:
    """Mean absolute input gradient of each *weighted* term, ``(T, B)``: what ``auto`` equalises."""
    x = x.detach().clone().requires_grad_(True)
    losses = objective.term_losses(x)
    w = objective.weights().to(x.device)
    out = torch.zeros(len(losses), x.shape[0])
    for i, loss in enumerate(losses):
        (grad,) = torch.autograd.grad((w[i] * loss).sum(), x, retain_graph=i < len(losses) - 1)
        out[i] = grad.abs().flatten(1).mean(1).detach().cpu()
    return out
