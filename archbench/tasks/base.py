"""The task interface and registry.

A task turns a network and a :class:`TaskJob` (images, size, iterations, seed, task options) into
:class:`TaskOutput` s: one per optimisation problem (e.g. one per image and layer), with the
result image, its start, the reference images metrics compare with, and the loss trace. Scoring,
saving and storing happen downstream (:mod:`archbench.runner`), so a task only optimises.

Add a task as a module in this package with a class decorated by :func:`register_task`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError
from archbench.optimizers import OptimConfig, OptimResult
from archbench.registry import Registry

#: progress(done_units, total_units)
Progress = Callable[[int, int], None]
#: the image label of the outputs of tasks that read no image (they start from noise)
NO_IMAGE = "noise"


@dataclass
class TaskJob:
    """What to run, independent of the network.

    Attributes:
        images: image sources (built-in names or paths); the task's main images (targets for
            reconstruction, textures for texture synthesis, content images for style transfer).
        size: side of the (square) images in pixels.
        seed: seed of the white-noise start (and of anything else random in the task).
        optim: optimiser settings.
        options: task-specific settings, validated by the task's ``Options`` dataclass (plus the
            generic ``phases``, see :mod:`archbench.tasks.phases`).
        device: where to run.
        start: ``None`` (the task's own start: white noise, the content image, ...) or, per output
            ``(image label, layer label)``, the ``(3, size, size)`` image to start from instead
            (set by the coarse-to-fine phase loop; read it with :meth:`start_batch`).
        metrics: the metrics the run will report (its configuration's); a task that computes
            scores itself may compute only these (empty: all it can).
    """

    images: list[str]
    size: int
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    options: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    start: dict[tuple[str, str], torch.Tensor] | None = None
    metrics: tuple[str, ...] = ()

    def start_batch(self, images: list[str], layer: str, default: torch.Tensor) -> torch.Tensor:
        """The starts of the outputs ``(images[b], layer)``: ``default`` ``(B, 3, H, W)`` when no
        ``start`` is set, else the given images stacked (on ``default``'s device and dtype)."""
        if self.start is None:
            return default
        missing = [img for img in images if (img, layer) not in self.start]
        if missing:
            raise ValueError(f"no start image for layer {layer!r} of {', '.join(missing)}")
        return torch.stack([self.start[(img, layer)] for img in images]).to(default.device, default.dtype)


@dataclass
class TaskOutput:
    """The outcome of one optimisation problem.

    Attributes:
        image: label of the main image (built-in name or file stem).
        layer: label of the layer(s) used (``pool3``, ``conv1_1+conv2_1``...).
        result: optimised image ``(3, H, W)`` in [0, 1] (clamped for saving and scoring).
        start: the starting image ``(3, H, W)``.
        references: role (``"target"``, ``"style"``) -> ``(3, H, W)`` image metrics compare with.
        final_loss: final value of the task's (normalised) loss.
        loss_trace: loss after each iteration.
        iterations: iterations run; ``evaluations``: loss evaluations used.
        seconds: wall time of this problem's share of the optimisation.
        failed: ``None`` or the reason the optimisation failed.
        extra: task-specific provenance (layer weights used, settings) stored with the result.
        scores: scores the task computed itself (name -> value; e.g. scores over a set of
            outputs, such as the diversity between channels' images); the runner puts them
            into ``Result.metrics`` as they are, beside (and instead of) registered metrics of
            the same name. Register the names as metrics for their direction and description.
        stalled: whether the optimisation did not leave its start (its loss fell by less than
            0.1 % or no pixel moved by one 8-bit level: :class:`~archbench.optimizers.OptimConfig`);
            None for outputs that optimise nothing (e.g. the proxies task).
    """

    image: str
    layer: str
    result: torch.Tensor
    start: torch.Tensor
    references: dict[str, torch.Tensor]
    final_loss: float
    loss_trace: list[float]
    iterations: int
    evaluations: int
    seconds: float
    failed: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    stalled: bool | None = None


def outputs_from_optim(
    res: OptimResult,
    images: list[str],
    layer: str,
    starts: torch.Tensor,
    references: list[dict[str, torch.Tensor]],
    seconds: float,
    extra: list[dict[str, Any]],
) -> list[TaskOutput]:
    """One :class:`TaskOutput` per sample of an optimiser result (sample ``b`` is ``images[b]``,
    with reference images ``references[b]`` and provenance ``extra[b]``)."""
    from archbench.images import image_label

    return [
        TaskOutput(
            image=image_label(src),
            layer=layer,
            result=res.x[b].clamp(0, 1),
            start=starts[b].clamp(0, 1),
            references=references[b],
            final_loss=float(res.final_loss[b]),
            loss_trace=res.loss_trace[b].tolist(),
            iterations=int(res.iterations[b]),
            evaluations=int(res.evaluations[b]),
            seconds=seconds,
            failed=res.failed[b] if res.failed else None,
            extra=extra[b],
            stalled=res.stalled[b] if res.stalled else None,
        )
        for b, src in enumerate(images)
    ]


class Task:
    """Base class of tasks. Subclasses set ``name``, ``description``, ``default_metrics``,
    optionally an ``Options`` dataclass, and implement :meth:`run`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_metrics: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type | None] = None
    #: set by tasks that always use one optimiser (whatever ``--optimizer`` says)
    fixed_optimizer: ClassVar[str | None] = None
    #: False for tasks that start from noise and read no image (one run, image label ``noise``)
    takes_images: ClassVar[bool] = True
    #: False for tasks that optimise nothing (``proxies``): iterations and optimiser do not apply
    optimizes: ClassVar[bool] = True
    #: an option that names the task's main image instead of ``--image`` (style: ``content``);
    #: :func:`archbench.config.resolve` moves it into the configuration's image
    image_option: ClassVar[str | None] = None
    #: options whose values are image sources (names or paths; comma-separated lists too): a
    #: suite resolves relative paths in them from the suite file and checks them when parsed
    path_options: ClassVar[tuple[str, ...]] = ()

    def parse_options(self, options: dict[str, Any]) -> Any:
        """Validate ``options`` against ``Options``; unknown keys give a clear error. The generic
        options every task accepts (:data:`GENERIC_OPTIONS`) are checked and left out."""
        if "phases" in options:
            check_phases(options["phases"])
        options = {k: v for k, v in options.items() if k not in GENERIC_OPTIONS}
        if self.Options is None:
            if options:
                raise ConfigError(f"task {self.name!r} takes no options, got {', '.join(options)}")
            return None
        import dataclasses

        valid = {f.name for f in dataclasses.fields(self.Options)} | set(GENERIC_OPTIONS)
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for task {self.name!r}; valid: {', '.join(sorted(valid))}"
            )
        import typing

        from archbench.values import check_field, short

        hints = typing.get_type_hints(self.Options)
        checked = {k: check_field(v, hints.get(k, Any), k) for k, v in options.items()}
        try:
            return self.Options(**checked)
        except (TypeError, ValueError, ArithmeticError) as exc:  # a check of the Options class itself
            raise ConfigError(f"invalid options for task {self.name!r} ({short(checked, 120)}): {exc}") from None

    def validate(self, net: TappedNetwork, job: TaskJob) -> None:
        """Check everything that can be checked before any work (layers exist, images load,
        sizes fit) so that a bad input fails before anything is written."""

    def run(self, net: TappedNetwork, job: TaskJob, progress: Progress | None = None) -> list[TaskOutput]:
        raise NotImplementedError


#: options every task accepts, handled by :mod:`archbench.tasks.phases` rather than by the task
GENERIC_OPTIONS = ("phases",)


def check_phases(value: Any) -> int:
    """``value`` as a number of phases (an integer >= 1), else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"phases must be an integer >= 1, got {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"phases must be an integer >= 1, got {value!r}") from None
    if n != float(value) or n < 1:
        raise ConfigError(f"phases must be an integer >= 1, got {value!r}")
    return n


TASKS: Registry[type[Task]] = Registry("task", entry_point_group="archbench.tasks")


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator registering a task under its ``name``."""
    TASKS.add(cls.name, cls)
    return cls


def get_task(name: str) -> Task:
    """An instance of the task registered as ``name``."""
    return TASKS.get(name)()


def list_tasks(pattern: str | None = None) -> list[str]:
    """Registered task names."""
    return TASKS.names(pattern)
