"""Training-free proxies as a task: ``archbench run --task proxies``.

One run per architecture × init × seed, no optimisation, one output (image label ``noise``, layer
label ``network``) whose scores are the proxies of Abdelfattah et al. (ICLR 2021) and Mellor et al.
(ICML 2021): ``synflow`` (its natural log), ``snip``, ``grad_norm``, ``naswot``, ``jacob_cov``,
``params`` and ``flops`` (definitions: :mod:`archbench.metrics.proxies`; ``docs/proxies.md``).
They reach ``Result.metrics``, the results files and the store like every score.

What the proxies run on
-----------------------
*The network*: the run's network with its weights as built (``--init``, ``--seed``), mapped from
preprocessed images to logits:

* a network that has its own classifier -- ``tv:NAME`` (the whole torchvision model, kept in
  ``.model``), ``timm:NAME`` (the whole timm model) and a wrapped plain module whose output is
  ``(batch, classes)`` -- runs as it is, classifier included;
* any other network -- the built-in ``vgg*``, ``alexnet``, ``resnet*``, ``champandard2016`` (no
  classifier: the taps stop at ``pool5``/``fc7``/``layer4``), a plain module whose output is a
  feature map, a timm model built with ``num_classes=0`` -- gets a **fixed random linear head**:
  its deepest tap (for a plain module: its output), global average pooled (a fully connected tap
  such as ``vgg19(fc=true)``'s ``fc7`` as it is), then ``Linear(C, classes)`` with ``classes =
  1000`` (option ``classes``). The head's weights follow the run's init scheme when it is a random
  one (``gaussian:σ``, ``kaiming``, ``orthogonal``, ``uniform``; ``kaiming`` otherwise: ``native``,
  ``pretrained``, ``checkpoint``, ``stacked``), drawn from a seed derived from the run's seed.
  Its parameters count in ``params``, ``flops``, ``snip``, ``grad_norm`` and ``synflow``. This is
  archbench's choice, not the papers' (their networks all had classifiers): it makes the proxies
  defined for any tapped network, but a proxy of "backbone + random head" is not the proxy of the
  trained architecture's own classifier; compare such networks with each other, not with ``tv:``.
  ``extra["classifier"]`` says which was used.

*The batch*: the six built-in photos (``archbench list images``) at the run's size (resized and
centre-cropped as every task loads them) and their mirror images: 12 images (options ``images``,
``mirror``). *The labels* of the cross-entropy proxies (``snip``, ``grad_norm``): one class per
image drawn uniformly from the classifier's classes by a generator seeded with the run's seed.

*Modes*: BatchNorm in train mode (batch statistics) for ``grad_norm``, ``snip``, ``naswot`` and
``jacob_cov``, every other module in eval mode (dropout and stochastic depth off); running
statistics are restored afterwards, so the network is unchanged for later runs. ``synflow``:
BatchNorm the identity, everything in eval mode, float64 (:func:`archbench.metrics.proxies.synflow`).
``flops``: one image, eval mode.

Results: ``final_loss`` is the cross-entropy of the batch (what ``snip``/``grad_norm``
differentiate; about ``ln(classes)`` at a good initialisation); no loss trace, 0 iterations,
``stalled`` empty. ``extra`` records the classifier, the init of network and head, the batch,
synflow's rescaling, NASWOT's unit and call counts and the seconds each proxy took. The saved
"result" image is a montage of the batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError
from archbench.images import image_label, list_images, load_image
from archbench.metrics.proxies import (
    PROXIES,
    ActivationCodes,
    count_flops,
    grad_norm,
    jacob_cov_score,
    naswot_score,
    parameter_count,
    proxy_weights,
    snip,
    synflow,
)
from archbench.tasks.base import NO_IMAGE, Progress, Task, TaskJob, TaskOutput, register_task

log = logging.getLogger(__name__)

#: the layer label of the proxies' one output
LAYER_LABEL = "network"
#: classes of the random head (ImageNet's, as the torchvision classifiers)
DEFAULT_CLASSES = 1000
#: init schemes the random head copies (any other init: ``kaiming``)
RANDOM_SCHEMES = ("gaussian", "kaiming", "orthogonal", "uniform")


@dataclass
class ProxiesOptions:
    """Options of the proxies task.

    Attributes:
        images: the batch's images (built-in names or files; default: the built-in photos).
        mirror: add each image's mirror image to the batch (default true: 12 images).
        classes: classes of the random head of networks without a classifier.

    Which proxies are computed is the run's ``metrics`` (``--metrics naswot,params``; default all
    of :data:`~archbench.metrics.proxies.PROXIES`).
    """

    images: list[str] | None = None
    mirror: bool = True
    classes: int = DEFAULT_CLASSES

    def __post_init__(self) -> None:
        if isinstance(self.images, str):
            self.images = [s for s in self.images.split(",") if s]
        if self.images is not None:
            self.images = [str(s) for s in self.images]
            if not self.images:
                raise ConfigError("images is empty")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 2:
            raise ConfigError(f"classes must be an integer >= 2, got {self.classes!r}")
        if not isinstance(self.mirror, bool):
            raise ConfigError(f"mirror must be true or false, got {self.mirror!r}")

    @property
    def sources(self) -> list[str]:
        return list(self.images) if self.images else list_images("photo")



def proxy_batch(opts: ProxiesOptions, size: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[str]]:
    """The batch ``(N, 3, size, size)`` in [0, 1] and its labels (mirror images: ``NAME~``)."""
    sources = opts.sources
    images = torch.cat([load_image(s, size) for s in sources])
    labels = [image_label(s) for s in sources]
    if opts.mirror:
        images = torch.cat([images, images.flip(-1)])
        labels = labels + [f"{label}~" for label in labels]
    return images.to(device), labels


def derived_seed(seed: int, purpose: str) -> int:
    """A 31-bit seed for ``purpose`` derived from the run's ``seed`` (independent of the weights' stream)."""
    digest = hashlib.sha256(f"archbench:{purpose}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class HeadNetwork(nn.Module):
    """``features`` (a tapped network read at ``tap``, or a plain module when ``tap`` is None), global
    average pooling of a spatial output, then the linear ``head``: preprocessed images -> logits."""

    def __init__(self, features: nn.Module, tap: str | None, head: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.tap = tap
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tap is not None:
            y = self.features._forward_taps(x, [self.tap])[self.tap]
        else:
            y = self.features(x)
        if y.ndim > 2:
            y = y.flatten(2).mean(2)
        return self.head(y)


def head_init(init: str) -> str:
    """The init of the random head: the run's when it is a random scheme, else ``kaiming``."""
    return init if init.split(":", 1)[0] in RANDOM_SCHEMES else "kaiming"


def proxy_network(net: TappedNetwork, size: int, classes: int = DEFAULT_CLASSES, seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """``(module, info)``: the network the proxies run on (preprocessed images -> logits, see the
    module docstring) and what it is (``classifier``, ``classes``, ``head_init``)."""
    from archbench.architectures.init import initialize

    device = net.input_mean.device
    probe = net.preprocess(torch.zeros(1, 3, size, size, device=device))
    model = getattr(net, "model", None)
    with torch.no_grad():
        if isinstance(model, nn.Module):
            out = model(probe)
            if not isinstance(out, torch.Tensor):
                raise ConfigError(f"{net.provenance.spec or type(model).__name__}: its model returns "
                                  f"{type(out).__name__}, not a tensor of logits or features")
            if out.ndim == 2 and out.shape[1] >= 2 and getattr(model, "num_classes", None) != 0:
                return model, {"classifier": "own", "classes": int(out.shape[1])}
            features, tap, where = model, None, "the model's output"
        else:
            tap = net.taps[-1].name
            out = net._forward_taps(probe, [tap])[tap]
            features, where = net, f"tap {tap}"
    channels = int(out.shape[1])
    head = nn.Linear(channels, classes)
    scheme = head_init(net.provenance.init or "")
    initialize(head, scheme, derived_seed(seed, "proxies-head"))  # type: ignore[arg-type]
    head.to(device)
    for p in head.parameters():
        p.requires_grad_(False)
    pooled = "global average pool of " if out.ndim > 2 else ""
    return HeadNetwork(features, tap, head).train(False), {
        "classifier": f"random linear head on the {pooled}{where} ({channels} -> {classes})",
        "classes": classes,
        "head_init": scheme,
    }


@contextlib.contextmanager
def batchnorm_train_mode(module: nn.Module, grad: list[torch.Tensor]) -> Iterator[None]:
    """Every module in eval mode except BatchNorm (train mode: batch statistics), ``requires_grad``
    on the tensors ``grad``; running statistics, modes and flags restored afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    flags = [(t, t.requires_grad) for t in grad]
    stats = []
    try:
        for m in module.modules():
            bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
            m.training = bn
            if bn:
                stats += [(b, b.detach().clone()) for b in m.buffers(recurse=False)]
        for t in grad:
            t.requires_grad_(True)
        yield
    finally:
        with torch.no_grad():
            for b, old in stats:
                b.copy_(old)
        for t, flag in flags:
            t.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


def montage(images: torch.Tensor, size: int) -> torch.Tensor:
    """The batch ``(N, 3, H, W)`` tiled into one ``(3, size, size)`` image (white background)."""
    n = images.shape[0]
    cols = math.ceil(math.sqrt(n))
    cell = max(1, size // cols)
    small = F.interpolate(images.float().cpu(), size=(cell, cell), mode="bilinear", align_corners=False,
                          antialias=True).clamp(0, 1)
    canvas = torch.ones(3, size, size)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[:, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = small[i]
    return canvas


@register_task
class Proxies(Task):
    """Training-free proxies of the network at initialisation (see the module docstring)."""

    name = "proxies"
    description = "training-free proxies at init: synflow, snip, grad_norm, naswot, jacob_cov, params, flops (no optimisation)"
    default_metrics = PROXIES
    Options = ProxiesOptions
    takes_images = False  # a fixed batch (option images); one output per network, image label 'noise'
    optimizes = False

    def validate(self, net: TappedNetwork, job: TaskJob) -> None:
        opts = self.parse_options(job.options)
        if "phases" in job.options and int(job.options["phases"]) != 1:
            raise ConfigError("the proxies task optimises nothing: phases must be 1")
        if getattr(net, "model", None) is None:
            net.check_input_size(job.size, job.size, [net.taps[-1].name])
        for src in opts.sources:
            load_image(src, job.size)

    def run(self, net: TappedNetwork, job: TaskJob, progress: Progress | None = None) -> list[TaskOutput]:
        opts = self.parse_options(job.options)
        wanted = [p for p in PROXIES if not job.metrics or p in job.metrics]
        t_start = time.perf_counter()
        total = len(wanted) + 1
        device = job.device

        def step(done: int) -> None:
            if progress:
                progress(done, total)

        images, batch_labels = proxy_batch(opts, job.size, device)
        n = images.shape[0]
        module, info = proxy_network(net, job.size, opts.classes, job.seed)
        x = net.preprocess(images).detach()
        gen = torch.Generator().manual_seed(int(job.seed))
        targets = torch.randint(0, info["classes"], (n,), generator=gen).to(device)
        scores: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        seconds: dict[str, float] = {}
        extra: dict[str, Any] = {
            **info,
            "init": net.provenance.init,
            "seed": job.seed,
            "batch": batch_labels,
            "labels_seed": int(job.seed),
            "batchnorm": "train mode (batch statistics) for grad_norm, snip, naswot, jacob_cov; identity for synflow",
            "proxies": wanted,
        }
        ce = float("nan")
        weights = proxy_weights(module)
        gradient_proxies = [p for p in ("grad_norm", "snip", "naswot", "jacob_cov") if p in wanted]
        done = 0
        if gradient_proxies:
            t0 = time.perf_counter()
            need_w = "grad_norm" in wanted or "snip" in wanted
            with batchnorm_train_mode(module, weights if need_w else []), torch.enable_grad():
                xg = x.clone().requires_grad_("jacob_cov" in wanted)
                codes = ActivationCodes(n) if "naswot" in wanted else None
                with codes if codes is not None else contextlib.nullcontext():
                    logits = module(xg)
                if logits.ndim != 2 or logits.shape[0] != n:
                    raise ConfigError(f"the network's output has shape {tuple(logits.shape)}, not (batch, classes)")
                loss = F.cross_entropy(logits.float(), targets)
                ce = float(loss.detach())
                if need_w:
                    grads = torch.autograd.grad(loss, weights, retain_graph="jacob_cov" in wanted, allow_unused=True)
                    if "grad_norm" in wanted:
                        scores["grad_norm"] = grad_norm(grads)
                    if "snip" in wanted:
                        scores["snip"] = snip(weights, grads)
                    del grads
                if "jacob_cov" in wanted:
                    (jac,) = torch.autograd.grad(logits.sum(), xg)
                    scores["jacob_cov"] = jacob_cov_score(jac)
                    del jac
                del logits, loss
            if codes is not None:
                scores["naswot"] = naswot_score(codes.K)
                extra["naswot_units"] = codes.units
                extra["naswot_activation_calls"] = codes.calls
                extra["naswot_skipped_calls"] = codes.skipped
                if codes.calls == 0:
                    errors["naswot"] = "the network calls no activation function on the batch"
            seconds["forward_backward"] = time.perf_counter() - t0
            done += len(gradient_proxies)
            step(done)
        if "synflow" in wanted:
            t0 = time.perf_counter()
            value, details = synflow(module, tuple(x.shape), device)
            scores["synflow"] = value
            extra["synflow_rescale_log2"] = details.get("rescale_log2")
            extra["synflow_log_R"] = details.get("log_R")
            if "error" in details:
                errors["synflow"] = details["error"]
            seconds["synflow"] = time.perf_counter() - t0
            done += 1
            step(done)
        if "params" in wanted:
            scores["params"] = float(parameter_count(module))
        if "flops" in wanted:
            t0 = time.perf_counter()
            scores["flops"] = float(count_flops(module, x[:1]))
            seconds["flops"] = time.perf_counter() - t0
        for name, value in list(scores.items()):
            if value is None or not math.isfinite(value):
                errors.setdefault(name, f"not finite ({value})")
                scores[name] = None
        extra["seconds"] = seconds
        if errors:
            extra["proxy_errors"] = errors
            log.info("proxies without a value: %s", errors)
        step(total)
        picture = montage(images, job.size)
        return [
            TaskOutput(
                image=NO_IMAGE,
                layer=LAYER_LABEL,
                result=picture,
                start=picture,
                references={},
                final_loss=ce,
                loss_trace=[],
                iterations=0,
                evaluations=0,
                seconds=time.perf_counter() - t_start,
                extra=extra,
                scores=scores,  # type: ignore[arg-type]  # None where a proxy has no value
            )
        ]
