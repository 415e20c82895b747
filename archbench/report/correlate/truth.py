"""Ground truths for :mod:`archbench.report.correlate`: the trained counterpart of an arch spec
(:func:`trained_counterpart`) and the values a correlation compares scores with
(:func:`load_truth`: torchvision's published ImageNet accuracies, or a CSV file of your own).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archbench.errors import ConfigError

log = logging.getLogger(__name__)


#: built-in ground truths: name -> description
TRUTHS: dict[str, str] = {
    "imagenet": "torchvision's published ImageNet-1k top-1 (%) of the IMAGENET1K_V1 weights (original recipes)",
    "imagenet-v1": "same as imagenet",
    "imagenet-best": "torchvision's published ImageNet-1k top-1 (%) of the DEFAULT weights (best recipe per model)",
}


# -- matching archbench architectures to trained models ---------------------------------------
@dataclass(frozen=True)
class Counterpart:
    """The trained model an arch spec stands for.

    Attributes:
        name: torchvision model name (``None`` when there is none).
        match: ``exact``, ``approximate`` or ``none``.
        note: why it is approximate or why there is none.
    """

    name: str | None
    match: str
    note: str = ""


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def trained_counterpart(spec: str) -> Counterpart:
    """The torchvision model whose published accuracy belongs to ``spec``'s architecture."""
    from archbench.architectures.registry import parse_spec

    try:
        name, opts = parse_spec(spec)
    except ConfigError as exc:
        return Counterpart(None, "none", str(exc))
    prefix, sep, rest = name.partition(":")
    if sep and prefix == "tv":
        extra = sorted(k for k in opts if k != "weights")
        if extra:
            return Counterpart(None, "none", f"options {', '.join(extra)} change the trained architecture")
        return Counterpart(rest, "exact")
    if sep and prefix == "timm":
        return Counterpart(None, "none", "timm ships no accuracy metadata offline; give --truth FILE.csv")
    if sep or name.endswith(".py"):
        return Counterpart(None, "none", "user-defined architecture; give --truth FILE.csv")
    opts = {k: v for k, v in opts.items() if k != "fc"}  # classifier layers do not change the conv part
    if name in ("resnet18", "resnet34", "resnet50"):
        if opts:
            return Counterpart(None, "none", f"options {', '.join(sorted(opts))} change the architecture")
        return Counterpart(name, "exact")
    if name == "alexnet":
        pool = opts.pop("pool", "max")
        if opts or pool != "max":
            return Counterpart(None, "none", "a variant of AlexNet (the trained one pools by max)")
        return Counterpart(name, "exact")
    if name in ("vgg11", "vgg13", "vgg16", "vgg19"):
        down = opts.pop("down", None) or opts.pop("pool", "avg")
        opts.pop("pool", None)
        act = opts.pop("act", "relu")
        width, depth = _num(opts.pop("width", 1.0)), _num(opts.pop("depth", 1))
        if opts or act != "relu" or width != 1.0 or depth != 1.0 or down not in ("avg", "max"):
            return Counterpart(None, "none", "a variant of VGG (activation, width, depth or downsampling changed)")
        if down == "avg":
            return Counterpart(name, "approximate", f"average pooling; the trained {name} pools by max")
        return Counterpart(name, "exact")
    return Counterpart(None, "none", "no published accuracy for this architecture; give --truth FILE.csv")


# -- ground truths --------------------------------------------------------------------------
@dataclass(frozen=True)
class TruthValue:
    """A ground-truth value for one arch spec, plus the trained model's size where known."""

    value: float
    source: str
    match: str = "exact"
    note: str = ""
    params: float | None = None
    gflops: float | None = None


class GroundTruth:
    """A value per architecture. Subclasses implement :meth:`lookup`."""

    name: str = ""
    description: str = ""
    #: axis label of the values
    label: str = "value"

    def lookup(self, arch: str, unit: str | None = None) -> TruthValue | str:
        """The value for ``arch`` (spec as stored; ``unit`` its leaderboard name), or the reason
        there is none."""
        raise NotImplementedError


def _torchvision_meta(name: str, which: str) -> dict[str, Any] | None:
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None
    if which == "best":
        weights = enum.DEFAULT
    else:
        weights = getattr(enum, "IMAGENET1K_V1", None) or next(iter(enum))
    meta = dict(weights.meta)
    meta["_weights"] = f"{enum.__name__}.{weights.name}"
    return meta


class ImagenetTruth(GroundTruth):
    """ImageNet-1k top-1 published in torchvision's weight metadata (no download)."""

    def __init__(self, which: str = "v1") -> None:
        if which not in ("v1", "best"):
            raise ValueError(f"which must be 'v1' or 'best', not {which!r}")
        self.which = which
        self.name = "imagenet" if which == "v1" else "imagenet-best"
        self.description = TRUTHS[self.name]
        self.label = "ImageNet-1k top-1 (%)" + (" (best recipe)" if which == "best" else "")

    def lookup(self, arch: str, unit: str | None = None) -> TruthValue | str:
        cp = trained_counterpart(arch)
        if cp.name is None:
            return cp.note
        meta = _torchvision_meta(cp.name, self.which)
        if meta is None:
            return f"torchvision publishes no weights for {cp.name!r}"
        try:
            acc = float(meta["_metrics"]["ImageNet-1K"]["acc@1"])
        except (KeyError, TypeError, ValueError):
            return f"torchvision's {meta['_weights']} has no ImageNet-1K acc@1"
        return TruthValue(
            value=acc,
            source=meta["_weights"],
            match=cp.match,
            note=cp.note,
            params=_num(meta.get("num_params")),
            gflops=_num(meta.get("_ops")),
        )


class CsvTruth(GroundTruth):
    """Values from a CSV file with the columns ``arch`` and ``value``."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.name = path.name
        self.description = f"values from {path}"
        self.label = f"value in {path.name}"
        if not path.is_file():
            raise ConfigError(f"ground-truth file {str(path)!r} does not exist; built-in truths: {', '.join(TRUTHS)}")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read ground-truth file {str(path)!r}: {exc}") from None
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip() for f in (reader.fieldnames or [])]
        if "arch" not in fields or "value" not in fields:
            raise ConfigError(
                f"{path}: the header must name the columns 'arch' and 'value' (found: {', '.join(fields) or 'nothing'})"
            )
        self.values: dict[str, float] = {}
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            arch, raw = row.get("arch", ""), row.get("value", "")
            if not arch:
                raise ConfigError(f"{path}:{line}: empty arch")
            value = _num(raw)
            if value is None or not math.isfinite(value):
                raise ConfigError(f"{path}:{line}: value {raw!r} for {arch!r} is not a finite number")
            if arch in self.values:
                raise ConfigError(f"{path}:{line}: {arch!r} appears twice")
            self.values[arch] = value
        if not self.values:
            raise ConfigError(f"{path}: no rows")

    def lookup(self, arch: str, unit: str | None = None) -> TruthValue | str:
        for key in (unit, arch):
            if key is not None and key in self.values:
                return TruthValue(value=self.values[key], source=self.name)
        return f"not in {self.name}"


def load_truth(name: str) -> GroundTruth:
    """A built-in ground truth by name (:data:`TRUTHS`) or a CSV file's path."""
    if name in ("imagenet", "imagenet-v1"):
        return ImagenetTruth("v1")
    if name == "imagenet-best":
        return ImagenetTruth("best")
    if name.lower().endswith(".csv") or Path(name).exists():
        return CsvTruth(name)
    from archbench.registry import unknown_name_message

    raise ConfigError(unknown_name_message("ground truth", name, list(TRUTHS)) + " (or give a FILE.csv)")


