"""The metric interface and registry.

A metric is a batched function ``(output, reference) -> Tensor[B]`` on RGB images in ``[0, 1]`` of
shape ``(B, 3, H, W)``, computed on the images' device, with a name, a direction
(``higher_is_better``), the reference image it compares with (``"target"`` for the task's
target/texture/content image, ``"style"`` for a style image) and the trained weights it needs.
A metric that needs several references names their roles joined by ``+`` (``"target+style"``: the
stylisation index compares the result with the content photo *and* the style image) and takes
them as further arguments in that order: ``(output, target, style) -> Tensor[B]``.
A metric whose weights are absent raises :class:`MetricUnavailable`; the run then leaves that
metric's column empty and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archbench.errors import ArchbenchError
from archbench.registry import Registry

if TYPE_CHECKING:
    import torch

#: ``(output, reference, ...) -> Tensor[B]``: one reference per role of :attr:`Metric.roles`
MetricFn = Callable[..., Any]


class MetricUnavailable(ArchbenchError):
    """A metric cannot be computed here (typically: its trained weights are absent)."""


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: registry name (also the results column).
        fn: ``(output, reference) -> Tensor[B]``, or ``(output, ref1, ref2, ...)`` for several roles.
        higher_is_better: direction, used by rankings and regression checks.
        reference: which image(s) the task compares the output with: ``"target"``, ``"style"``,
            or several roles joined by ``+`` (``"target+style"``), passed to ``fn`` in that order.
        requires: names of trained weights the metric needs (for ``archbench weights status``).
        description: one line for ``archbench list metrics``.
        judged: scored in the judge network (:mod:`archbench.metrics.gram`): a run's configuration
            then records which judge, and reports name it with the metric (``gram@trained-vgg16``).
    """

    name: str
    fn: MetricFn
    higher_is_better: bool
    reference: str = "target"
    requires: tuple[str, ...] = ()
    description: str = ""
    judged: bool = False

    @property
    def roles(self) -> tuple[str, ...]:
        """The reference roles ``fn`` takes after the output, in order (``("target", "style")``)."""
        return tuple(r.strip() for r in self.reference.split("+"))

    def __call__(self, output: torch.Tensor, *references: torch.Tensor) -> torch.Tensor:
        if len(references) != len(self.roles):
            raise TypeError(f"metric {self.name} takes {len(self.roles)} reference image(s) "
                            f"({', '.join(self.roles)}), got {len(references)}")
        return self.fn(output, *references)


def _load_builtin_metrics() -> None:
    """Import the modules of the built-in metrics (they register themselves); torch comes with them."""
    import importlib

    for module in ("ssim", "gram", "maximize", "lpips", "texture", "proxies", "quality"):
        importlib.import_module(f"archbench.metrics.{module}")


METRICS: Registry[Metric] = Registry("metric", entry_point_group="archbench.metrics", builtins=_load_builtin_metrics)


def register_metric(
    name: str,
    *,
    higher_is_better: bool,
    reference: str = "target",
    requires: tuple[str, ...] = (),
    description: str | None = None,
    judged: bool = False,
) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering a batched metric function under ``name`` (``reference``: its reference
    role, or roles joined by ``+``; see :class:`Metric`)."""

    def deco(fn: MetricFn) -> MetricFn:
        doc = description or (fn.__doc__ or "").strip().splitlines()[0] if (description or fn.__doc__) else ""
        METRICS.add(name, Metric(name, fn, higher_is_better, reference, requires, doc, judged))
        return fn

    return deco


def get_metric(name: str) -> Metric:
    """The metric registered as ``name`` (helpful error with suggestions otherwise)."""
    return METRICS.get(name)


def list_metrics(pattern: str | None = None) -> list[str]:
    """Registered metric names, optionally filtered by a wildcard pattern."""
    return METRICS.names(pattern)


def compute_metrics(
    names: list[str], output: torch.Tensor, references: dict[str, torch.Tensor]
) -> tuple[dict[str, list[float | None]], dict[str, str]]:
    """Evaluate metrics on a batch.

    Args:
        names: metric names.
        output: ``(B, 3, H, W)`` images in ``[0, 1]``.
        references: reference role (``"target"``, ``"style"``) -> ``(B, 3, H', W')`` images; a
            metric of several roles (:attr:`Metric.roles`) gets each of them.

    Returns:
        ``(values, unavailable)``: per metric a list of ``B`` floats (``None`` where unavailable),
        and per unavailable metric the reason.
    """
    import torch

    values: dict[str, list[float | None]] = {}
    unavailable: dict[str, str] = {}
    B = output.shape[0]
    for name in names:
        metric = get_metric(name)
        missing = [role for role in metric.roles if references.get(role) is None]
        if missing:
            unavailable[name] = f"no {' or '.join(missing)} image in this task"
            values[name] = [None] * B
            continue
        refs = [references[role] for role in metric.roles]
        try:
            with torch.no_grad():
                v = metric(output, *(r.expand(B, *r.shape[1:]) if r.shape[0] == 1 else r for r in refs))
            values[name] = [float(t) for t in v.detach().float().cpu()]
        except MetricUnavailable as exc:
            unavailable[name] = str(exc)
            values[name] = [None] * B
    return values, unavailable
