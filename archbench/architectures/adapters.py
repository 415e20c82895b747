"""Adapters that turn any timm or torchvision CNN into a :class:`TappedNetwork`.

Specs:

* ``timm:<name>`` (``timm:resnet18``, ``timm:mobilenetv3_small_050``, tags allowed:
  ``timm:resnet18.a1_in1k``; other options go to ``timm.create_model``). Taps are timm's
  ``feature_info`` stages, named by timm's module names (``act1``, ``layer1`` ... for ResNets,
  ``blocks.1`` ... for EfficientNets), with ``level = round(log2(reduction))``. The forward pass uses
  ``forward_intermediates(..., stop_early=True, intermediates_only=True)``, which runs the network
  only up to the deepest requested stage (an FX feature extractor for models without it).
* ``tv:<name>`` (``tv:resnet18``, ``tv:mobilenet_v3_small``; any model of
  ``torchvision.models.list_models(module=torchvision.models)``; option ``weights=NAME`` picks the
  trained weights ``pretrained`` loads, default ``DEFAULT``; other options go to ``get_model``).
  Taps are found by :func:`discover_taps`: one tap per stride level, the output of the last whole
  module at that resolution (``relu``, ``layer1`` ... ``layer4`` for ResNet-18), named by its FX
  node / module path. The forward pass runs a torchvision feature extractor built for exactly the
  requested taps (one per tap set, cached): its graph is pruned after the deepest tap.

Weights are never downloaded. ``init=pretrained`` looks only in the local caches (torch hub's
``$TORCH_HOME/hub/checkpoints`` for torchvision, the Hugging Face cache and torch hub for timm) and
otherwise raises :class:`~archbench.errors.WeightsError` naming the file it expected.

Over 500 lines on purpose: the timm and torchvision adapters share tap discovery, naming
and stride levels; one module keeps them from drifting apart.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import fx, nn

from archbench.architectures.base import IMAGENET_MEAN, IMAGENET_STD, Tap, TappedNetwork, no_inplace
from archbench.architectures.registry import register_arch_prefix
from archbench.architectures.variants import replace_activations
from archbench.errors import ConfigError, ImageError, UnknownNameError, WeightsError
from archbench.registry import unknown_name_message

log = logging.getLogger(__name__)

#: input used to find stride levels: non-square so that adaptive (fixed-size) pooling outputs and
#: channels-last tensors do not look like strided feature maps.
TRACE_SIZE = (256, 160)
#: largest |log2(input / output) - level| accepted, per side (valid-padding networks such as
#: AlexNet are a fraction of a level off; adaptive pools at 256x160 are at least 0.41 off).
LEVEL_TOLERANCE = 0.35

_INPLACE_FUNCTIONS = {"iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand", "ior", "ixor"}


# -- graph (torch.fx) taps: torchvision models and plain modules ---------------------------------
def _aliases(nodes: Sequence[str]) -> dict[str, str]:
    """Node path -> the shortest module path whose *last* node it is (else the node path itself).

    ``layer1.1.relu_1`` is the last node of module ``layer1``, so it is called ``layer1``.
    """
    last_of: dict[str, str] = {}
    for node in nodes:
        parts = node.split(".")
        for i in range(1, len(parts)):
            last_of[".".join(parts[:i])] = node
    alias: dict[str, str] = {}
    for node in nodes:
        parts = node.split(".")
        alias[node] = next(
            (".".join(parts[:i]) for i in range(1, len(parts)) if last_of[".".join(parts[:i])] == node), node
        )
    return alias


def _level_of(shape: Sequence[int], height: int, width: int) -> int | None:
    """Stride level of an NCHW output of an input of ``height x width``, or ``None``."""
    if len(shape) != 4 or shape[2] < 1 or shape[3] < 1:
        return None
    lh, lw = math.log2(height / shape[2]), math.log2(width / shape[3])
    level = round(lh)
    if level < 0 or round(lw) != level:
        return None
    if abs(lh - level) > LEVEL_TOLERANCE or abs(lw - level) > LEVEL_TOLERANCE:
        return None
    return level


def _build_extractor(model: nn.Module, return_nodes: dict[str, str]) -> fx.GraphModule:
    """A torchvision feature extractor (eval graph) returning ``{name: output of node}``.

    The graph is pruned after the deepest requested node. A tapped output that a later operation
    modifies in place (``x.relu_()``, ``F.relu(x, inplace=True)``) is cloned first.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ext = create_feature_extractor(model, return_nodes=dict(return_nodes))
        except Exception:
            # a node may exist only in the eval graph (train-only branches differ); taps are read in eval
            from torchvision.models.feature_extraction import get_graph_node_names

            train_nodes, _ = get_graph_node_names(model)
            ext = create_feature_extractor(
                model, train_return_nodes={train_nodes[-1]: "__output"}, eval_return_nodes=dict(return_nodes)
            )
    graph = ext.eval_graph if hasattr(ext, "eval_graph") else ext.graph
    modules = dict(ext.named_modules())
    output = next(n for n in graph.nodes if n.op == "output")
    results = dict(output.args[0])
    changed = False
    for key, node in list(results.items()):
        if any(_mutates(user, modules) for user in node.users if user is not output):
            with graph.inserting_after(node):
                results[key] = graph.call_method("clone", (node,))
            changed = True
    if changed:
        output.args = (results,)
        graph.lint()
    ext.eval()
    ext.graph = graph  # recompiles
    return ext


def _mutates(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` may modify one of its inputs in place."""
    if node.op == "call_method":
        return str(node.target).endswith("_") and not str(node.target).endswith("__")
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return bool(node.kwargs.get("inplace")) or name in _INPLACE_FUNCTIONS or (
            name.endswith("_") and not name.endswith("__")
        )
    if node.op == "call_module":
        return bool(getattr(modules.get(str(node.target)), "inplace", False))
    return False


def discover_taps(model: nn.Module, size: tuple[int, int] = TRACE_SIZE) -> list[tuple[str, Tap]]:
    """Default taps of a traceable CNN: one per stride level, in forward order.

    Runs the whole FX graph once on a ``size`` input (no gradients, eval mode) and records every
    node's output shape. A node is at level ``L`` when its NCHW output is ``1/2**L`` of the input
    on both sides (within :data:`LEVEL_TOLERANCE` in log2). For each level the tap is the node that
    ends the outermost module (fewest path components; ties: the last in forward order), which
    is the stage output (``layer1``), not an expansion conv inside the next stage.

    Returns:
        ``(node path, Tap)`` pairs; tap names are the module paths (:func:`_aliases`).

    Raises:
        ConfigError: if the model cannot be traced or has no strided NCHW feature maps.
    """
    from torchvision.models.feature_extraction import get_graph_node_names

    was_training = model.training
    model.eval()
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, eval_nodes = get_graph_node_names(model)
        nodes = eval_nodes[1:]  # the first node is the input placeholder
        ext = _build_extractor(model, {n: n for n in nodes})
        last_error: Exception | None = None
        for h, w in (size, (224, 224)):  # square fallback for models that need a square input
            try:
                # a traced module that fails prints its generated code to stderr: keep it to the error
                with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
                    out = ext(torch.rand(1, 3, h, w))
                break
            except Exception as exc:  # noqa: BLE001 - any failure: try the next size
                last_error = exc
        else:
            raise last_error  # type: ignore[misc]
        for name in nodes:
            value = out.get(name)
            if isinstance(value, torch.Tensor):
                shapes[name] = tuple(value.shape)
        del out, ext
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"cannot trace {type(model).__name__} to find its taps ({type(exc).__name__}: {exc}); "
            "return a TappedNetwork instead"
        ) from None
    finally:
        model.train(was_training)
    alias = _aliases(nodes)
    order = {n: i for i, n in enumerate(nodes)}
    best: dict[int, str] = {}
    for name, shape in shapes.items():
        level = _level_of(shape, h, w)
        if level is None:
            continue
        current = best.get(level)
        depth = alias[name].count(".")
        if current is None or depth <= alias[current].count("."):
            best[level] = name
    if not best:
        raise ConfigError(f"{type(model).__name__} has no strided NCHW feature maps to tap")
    chosen = sorted(best.items(), key=lambda item: order[item[1]])
    chosen_nodes = [node for _, node in chosen]
    return [
        (node, Tap(_tap_name(node, alias[node], chosen_nodes), shapes[node][1], level, min_size=2**level))
        for level, node in chosen
    ]


def _tap_name(node: str, shortest: str, chosen: Sequence[str]) -> str:
    """The shortest module path ending at ``node`` that does not also contain another chosen tap.

    ``layer1.1.relu_1`` -> ``layer1``; ``features.12.2`` -> ``features.12`` (not ``features``,
    which also holds ``features.0`` ...).
    """
    parts = node.split(".")
    start = shortest.count(".") + 1
    for i in range(start, len(parts) + 1):
        name = ".".join(parts[:i])
        if not any(other != node and other.startswith(name + ".") for other in chosen):
            return name
    return node


class GraphTappedNetwork(TappedNetwork):
    """Any FX-traceable ``nn.Module`` with taps on graph nodes.

    Args:
        model: the network (in-place activations are turned off).
        taps: ``(node path, Tap)`` pairs; default :func:`discover_taps`.
        description: what it was built from, for messages.
    """

    def __init__(
        self,
        model: nn.Module,
        taps: Sequence[tuple[str, Tap]] | None = None,
        description: str = "",
        input_mean: Sequence[float] = IMAGENET_MEAN,
        input_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        model = no_inplace(model)
        pairs = list(taps) if taps is not None else discover_taps(model)
        super().__init__([t for _, t in pairs], input_mean=input_mean, input_std=input_std)
        self.model = model
        self.tap_nodes: dict[str, str] = {t.name: node for node, t in pairs}
        self.description = description or type(model).__name__
        self._extractors: dict[tuple[str, ...], fx.GraphModule] = {}

    def _apply(self, fn, *args, **kwargs):  # device/dtype moves replace buffers: rebuild extractors
        self._extractors = {}
        return super()._apply(fn, *args, **kwargs)

    def _extractor(self, taps: Sequence[str]) -> fx.GraphModule:
        key = tuple(sorted(set(taps)))
        ext = self._extractors.get(key)
        if ext is None:
            ext = _build_extractor(self.model, {self.tap_nodes[name]: name for name in key})
            self._extractors[key] = ext
        return ext

    def _forward_taps(self, x: torch.Tensor, taps: list[str]) -> dict[str, torch.Tensor]:
        out = self._extractor(taps)(x)
        return {name: out[name] for name in taps}

    def load_pretrained(self) -> None:
        """Plain modules have no known trained weights: use ``init=checkpoint:PATH``."""
        raise WeightsError(
            f"no pretrained weights are known for {self.description!r}; use --init checkpoint:PATH"
        )


# -- torchvision ----------------------------------------------------------------------------------
def torchvision_models() -> list[str]:
    """Names of torchvision's classification models (what ``tv:<name>`` accepts)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def torch_hub_checkpoints() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torch's default ``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def tv_weights(name: str, weights: str | None = None) -> Any:
    """The torchvision weights enum member ``weights`` (default ``DEFAULT``) of model ``name``."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        raise WeightsError(f"torchvision has no trained weights for {name!r}") from None
    choice = weights or "DEFAULT"
    try:
        return enum[choice] if choice != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise UnknownNameError(
            unknown_name_message(f"weights of torchvision {name}", choice, [w.name for w in enum] + ["DEFAULT"])
        ) from None


def tv_weights_file(name: str, weights: str | None = None) -> Path:
    """Where torch hub keeps the trained weights of torchvision model ``name``.

    The file name is the last part of the weights' URL, as ``torch.hub.load_state_dict_from_url``
    stores it: ``$TORCH_HOME/hub/checkpoints/<file>``.
    """
    url = tv_weights(name, weights).url
    return torch_hub_checkpoints() / os.path.basename(urlparse(url).path)


class TorchvisionNetwork(GraphTappedNetwork):
    """A torchvision classification model with graph taps (see :func:`discover_taps`).

    Attributes:
        torchvision_keys: our state-dict key -> torchvision's (ours carry a ``model.`` prefix).
    """

    def __init__(self, name: str, model: nn.Module, weights: str | None = None, options: dict | None = None) -> None:
        super().__init__(model, description=f"tv:{name}")
        self.name = name
        self.weights = weights
        self.options = dict(options or {})
        self.torchvision_keys = {f"model.{k}": k for k in self.model.state_dict()}

    def load_pretrained(self) -> None:
        """Load torchvision's trained weights from the torch hub cache only; never downloads.

        Raises:
            WeightsError: the file is not in ``$TORCH_HOME/hub/checkpoints`` (the message names it
                and where to get it), or it does not fit the model.
        """
        import torchvision

        w = tv_weights(self.name, self.weights)
        path = tv_weights_file(self.name, self.weights)
        if not path.is_file():
            raise WeightsError(
                f"trained weights for tv:{self.name} not found: expected {path}; download {w.url} on a "
                f"machine with network and copy it to {path}, or run `archbench weights import FILE`"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # the file exists, so torch hub reads it from the cache instead of downloading
                ref = torchvision.models.get_model(self.name, weights=w, **self.options)
            self.model.load_state_dict(ref.state_dict())
        except Exception as exc:
            raise WeightsError(f"cannot load {path} into tv:{self.name}: {type(exc).__name__}: {exc}") from None
        log.info("loaded %s into tv:%s", path, self.name)


def check_model_name(prefix: str, name: str) -> bool:
    """Check the model name of a ``tv:NAME`` or ``timm:NAME`` spec without building the model
    (building traces it, which takes a second or more); :class:`UnknownNameError` when unknown.
    Returns False for other prefixes (nothing checked)."""
    if prefix == "tv":
        known = torchvision_models()
        if name not in known:
            raise UnknownNameError(unknown_name_message("torchvision model", name, known))
        return True
    if prefix == "timm":
        import timm

        if not timm.is_model(name.split(".", 1)[0]):
            raise UnknownNameError(unknown_name_message("timm model", name, timm.list_models()))
        return True
    return False


@register_arch_prefix("tv")
def tv_arch(name: str, weights: str | None = None, act: str | None = None, **options: Any) -> TorchvisionNetwork:
    """``tv:<name>``: torchvision model ``name`` without weights, taps from its FX graph.

    ``act`` replaces its ReLUs (see :mod:`archbench.architectures.variants`).
    """
    import torchvision

    known = torchvision_models()
    if name not in known:
        raise UnknownNameError(unknown_name_message("torchvision model", name, known))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torchvision.models.get_model(name, weights=None, **options)
    if act is not None:
        replace_activations(model, act)
    return TorchvisionNetwork(name, model, weights=weights, options=options)


# -- timm ---------------------------------------------------------------------------------------
def hf_hub_cache() -> Path:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


class TimmNetwork(TappedNetwork):
    """A timm model with taps on its ``feature_info`` stages.

    Tap ``i`` is feature ``i`` of ``feature_info`` (name: its module, ``feat{i}`` when timm gives
    none), ``level = round(log2(reduction))``. Inputs are normalised with the model's own
    ``pretrained_cfg`` mean and std.
    """

    def __init__(self, name: str, model: nn.Module) -> None:
        model = no_inplace(model)
        info = getattr(model, "feature_info", None)
        entries = info.get_dicts() if hasattr(info, "get_dicts") else list(info or [])
        if not entries:
            raise ConfigError(f"timm model {name!r} declares no feature_info stages to tap")
        cfg = dict(getattr(model, "pretrained_cfg", None) or {})
        fixed = cfg.get("input_size") if cfg.get("fixed_input_size") else None
        self.fixed_size: tuple[int, int] | None = tuple(fixed[-2:]) if fixed else None  # type: ignore[assignment]
        taps: list[Tap] = []
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            tap_name = entry.get("module") or f"feat{i}"
            if tap_name in seen:
                tap_name = f"feat{i}"
            seen.add(tap_name)
            level = max(0, round(math.log2(entry["reduction"])))
            min_size = max(self.fixed_size) if self.fixed_size else 2**level
            taps.append(Tap(tap_name, int(entry["num_chs"]), level, min_size=min_size))
        mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
        if len(mean) != 3 or len(std) != 3:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        super().__init__(taps, input_mean=mean, input_std=std)
        self.model = model
        self.name = name
        self.pretrained_cfg = cfg
        self._graph: GraphTappedNetwork | None = None
        if not hasattr(model, "forward_intermediates"):
            # older-style model: FX extractor on the feature_info modules
            self._graph = GraphTappedNetwork(
                model, [(entry["module"], tap) for entry, tap in zip(entries, taps, strict=True)], description=f"timm:{name}"
            )

    def _forward_taps(self, x: torch.Tensor, taps: list[str]) -> dict[str, torch.Tensor]:
        if self.fixed_size and tuple(x.shape[-2:]) != self.fixed_size:
            raise ImageError(
                f"timm:{self.name} needs {self.fixed_size[0]}x{self.fixed_size[1]} px input, got "
                f"{x.shape[-2]}x{x.shape[-1]}; use --size {self.fixed_size[0]}"
            )
        if self._graph is not None:
            return self._graph._forward_taps(x, taps)
        indices = sorted({self._tap_index[name] for name in taps})
        outs = self.model.forward_intermediates(x, indices=indices, stop_early=True, intermediates_only=True)
        by_index = dict(zip(indices, outs, strict=True))
        return {name: by_index[self._tap_index[name]] for name in taps}

    def _cached_files(self) -> list[Path]:
        cfg = self.pretrained_cfg
        found: list[Path] = []
        hub_id = cfg.get("hf_hub_id")
        if hub_id:
            from huggingface_hub import try_to_load_from_cache

            names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else []
            for filename in names + ["model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]:
                hit = try_to_load_from_cache(hub_id, filename, cache_dir=str(hf_hub_cache()))
                if isinstance(hit, str) and os.path.isfile(hit):
                    found.append(Path(hit))
        if cfg.get("url"):
            path = torch_hub_checkpoints() / os.path.basename(urlparse(cfg["url"]).path)
            if path.is_file():
                found.append(path)
        return found

    def load_pretrained(self) -> None:
        """Load timm's trained weights from the local Hugging Face / torch hub caches only.

        Raises:
            WeightsError: nothing cached (the message names the files it looked for), or the file
                does not fit the model.
        """
        from timm.models import load_pretrained as timm_load_pretrained

        cfg = self.pretrained_cfg
        files = self._cached_files()
        if not files:
            hub_id, url = cfg.get("hf_hub_id"), cfg.get("url")
            if not hub_id and not url:
                raise WeightsError(f"timm has no trained weights for timm:{self.name}")
            where = []
            if hub_id:
                repo = hf_hub_cache() / ("models--" + hub_id.replace("/", "--"))
                where.append(
                    f"the Hugging Face cache {repo} (on a machine with network: "
                    f"`hf download {hub_id} model.safetensors`, then copy {repo} here)"
                )
            if url:
                path = torch_hub_checkpoints() / os.path.basename(urlparse(url).path)
                where.append(f"{path} (download {url} and copy it there)")
            raise WeightsError(
                f"trained weights for timm:{self.name} not found; expected " + " or ".join(where)
                + ", or run `archbench weights import FILE`"
            )
        path = files[0]
        try:
            timm_load_pretrained(
                self.model,
                pretrained_cfg={**cfg, "file": str(path)},  # 'file' source: read locally, no download
                num_classes=getattr(self.model, "num_classes", 1000),
                in_chans=3,
            )
        except Exception as exc:
            raise WeightsError(f"cannot load {path} into timm:{self.name}: {type(exc).__name__}: {exc}") from None
        log.info("loaded %s into timm:%s", path, self.name)


@register_arch_prefix("timm")
def timm_arch(name: str, act: str | None = None, **options: Any) -> TimmNetwork:
    """``timm:<name>[.<tag>]``: timm model ``name`` built with ``pretrained=False``.

    ``act`` replaces its ``nn.ReLU`` modules (see :mod:`archbench.architectures.variants`).
    """
    import timm

    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        raise UnknownNameError(unknown_name_message("timm model", name, timm.list_models()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = timm.create_model(name, pretrained=False, **options)
    except RuntimeError as exc:
        if "pretrained tag" in str(exc):
            raise UnknownNameError(
                unknown_name_message(f"timm weights of {arch}", name, timm.list_pretrained(f"{arch}.*"))
            ) from None
        raise
    if act is not None:
        replace_activations(model, act)
    return TimmNetwork(name, model)
