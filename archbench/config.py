"""The resolved run configuration: one frozen :class:`RunConfig` per result, and :func:`resolve`.

Every way of asking for work -- ``archbench run``, a suite entry, ``archbench stack``, Python --
goes through :func:`resolve`, which fills in everything the work depends on, once:

* defaults per device (:data:`DEVICE_DEFAULTS`: the paper's 256 px / 500 iterations on a GPU, 128 px
  / 100 iterations on a CPU; the stacked network's own budget);
* the iteration budget of a preset (``options = {preset = "gatys-texture"}`` runs 2000 iterations);
  precedence: the call's (CLI ``--iters``, a suite task's ``iterations``) > the preset's > the
  suite-wide ``iterations`` (``base_iterations``) > the device default;
* the device (``auto`` -> ``cuda`` when there is a GPU; see :func:`resolve_device`);
* the metrics (the task's defaults unless given) and the **judge** that scores ``gram``
  (:mod:`archbench.metrics.gram`), resolved for this candidate: which network and which weights;
* the content digest of every input file (image, style image, checkpoint), so moving a file keeps
  the key and editing it changes it.

:attr:`RunConfig.key` -- the first 20 hex digits of the SHA-256 of :meth:`RunConfig.identity` -- is
the only identity a result has: results files, the store, baselines and reports all use it.
A ``RunConfig`` is one image; a run over several images is several configurations, and
configurations that share a network and differ only in their image run as one batch
(:func:`archbench.runner.execute`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from archbench.errors import ConfigError
from archbench.limits import MAX_SIZE, MAX_SIZE_ENV, max_size  # noqa: F401  (documented limits)

# Over 500 lines on purpose: the settings (RunConfig), how each enters the key, and how they are
# resolved (defaults per device, presets, digests of input files) are one subject, read together.

#: bump when the meaning of a configuration changes (every key changes with it); 3: the
#: optimisers' scale-free stopping rule (results of format 2 came from the absolute one); 4: the
#: texture and style tasks' default preset is ``archbench`` (was ``paper``), and style transfer
#: calibrates its automatic weights at white noise whatever the start; 5: the reconstruct task's
#: default preset is ``archbench`` (1/f Fourier parameterisation from pink noise; ``paper`` keeps
#: pixels from white noise), and stacked candidates reconstruct under ``paper``
CONFIG_FORMAT = 5
KEY_LENGTH = 20


@dataclass(frozen=True)
class DeviceDefaults:
    """What a run uses on one kind of device when it is not told.

    Attributes:
        size, iterations: image side (px) and optimiser iterations of a task.
        stack_size, stack_iterations: the same for each candidate reconstruction of
            ``archbench stack`` and of the ``stacked(...)`` init.
    """

    size: int
    iterations: int
    stack_size: int
    stack_iterations: int


#: the paper's settings on a GPU; on a CPU, settings that finish the default job in under 3 minutes
DEVICE_DEFAULTS: dict[str, DeviceDefaults] = {
    "cuda": DeviceDefaults(size=256, iterations=500, stack_size=256, stack_iterations=500),
    "cpu": DeviceDefaults(size=128, iterations=100, stack_size=64, stack_iterations=50),
}

#: options of the ``stacked(...)`` init besides ``size`` and ``iterations`` (device defaults)
STACKED_OPTIONS: dict[str, Any] = {"base": "gaussian:0.015", "candidates": 5, "reference": "astronaut"}


def device_type(device: str) -> str:
    """``cuda:1`` -> ``cuda``."""
    return device.split(":", 1)[0]


def defaults_for(device: str) -> DeviceDefaults:
    """The defaults of ``device`` (``cpu``, ``cuda``, ``cuda:N``; any other kind: the CPU's)."""
    return DEVICE_DEFAULTS.get(device_type(device), DEVICE_DEFAULTS["cpu"])


def resolve_device(requested: str = "auto", gpus: bool | None = None) -> str:
    """The device runs use for a requested one: ``auto`` -> ``cuda`` when ``gpus`` (default: this
    machine has a CUDA GPU), else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` are checked.

    Raises:
        ConfigError: a malformed device, or ``cuda`` asked for where there is no GPU.
    """
    requested = str(requested).strip()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", requested):
        raise ConfigError(f"invalid device {requested!r}; valid: auto, cpu, cuda, cuda:N")
    if gpus is None:
        import torch

        gpus = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if gpus else "cpu"
    if requested.startswith("cuda") and not gpus:
        raise ConfigError(f"device {requested} was requested but no CUDA GPU is available; use --device cpu or auto")
    return requested


# ----------------------------------------------------------------------------------------------
# content identities of input files


@lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]


def file_digest(source: str) -> str | None:
    """``sha256:<16 hex>`` of the file ``source``, or None when it is not a readable file."""
    p = Path(source).expanduser()
    try:
        if not p.is_file():
            return None
        st = p.stat()
        return _file_digest(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def _input_files(value: Any) -> list[str]:
    """Strings in ``value`` (nested lists/dicts; comma-separated lists too) that name files."""
    out: list[str] = []
    if isinstance(value, str):
        for part in [value, *value.split(",")] if "," in value else [value]:
            if part and file_digest(part) is not None:
                out.append(part)
    elif isinstance(value, list | tuple):
        for v in value:
            out += _input_files(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            out += _input_files(v)
    return out


def _substitute(value: Any, digests: Mapping[str, str]) -> Any:
    """``value`` with every file path replaced by its digest (identity of the content, not the path)."""
    if isinstance(value, str):
        if value in digests:
            return digests[value]
        if "," in value:
            return ",".join(digests.get(p, p) for p in value.split(","))
        return value
    if isinstance(value, list | tuple):
        return [_substitute(v, digests) for v in value]
    if isinstance(value, Mapping):
        return {k: _substitute(v, digests) for k, v in value.items()}
    return value


def _frozen(value: Any) -> Any:
    """A read-only deep copy of plain JSON-like data (dicts become mapping proxies)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _frozen(v) for k, v in sorted(value.items())})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """The inverse of :func:`_frozen`: plain dicts and lists (JSON-serialisable)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys (what keys hash)."""
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), default=str)


# ----------------------------------------------------------------------------------------------
# the configuration


# -- how each field of a configuration enters its identity (the key) ---------------------------
# A field's ``metadata["identity"]`` is one of: True (its plain value), False (not part of the key),
# :data:`UNLESS_DEFAULT` (its plain value, left out while it equals the field's default: a setting
# added later keeps the keys of every configuration that does not use it) or a function
# ``(config) -> value``.

UNLESS_DEFAULT = "unless-default"

#: how a field shows in the results table (:mod:`archbench.frame`) and ``results.csv``
#: (``metadata["frame"]``): its value (the default), the compact JSON of its value, the image's
#: label plus its source (``image`` and ``image_source``), or None: not shown
VALUE, JSON, LABEL = "value", "json", "label"

_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "bool": "INTEGER", "str": "TEXT"}


def setting(default: Any = MISSING, *, default_factory: Any = MISSING, identity: Any = True,
            frame: str | None = VALUE, kw_only: Any = MISSING) -> Any:
    """A :class:`RunConfig` field: ``dataclasses.field`` with the metadata that says how the
    setting enters the key (``identity``) and the results table (``frame``). Adding a setting to
    :class:`RunConfig` is one such line: its JSON, key, store column and DataFrame column follow."""
    return field(default=default, default_factory=default_factory, kw_only=kw_only,
                 metadata={"identity": identity, "frame": frame})


def sql_type(f: Field) -> str | None:
    """The SQL type of a scalar field (``INTEGER``, ``REAL``, ``TEXT``), None for mappings and
    sequences (kept in the configuration's JSON only)."""
    name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    parts = [p.strip() for p in name.split("|") if p.strip() != "None"]
    return _SQL_TYPES.get(parts[0]) if len(parts) == 1 else None


def _arch_identity(c: RunConfig) -> str:
    path, sep, rest = c.arch.partition(".py:")
    source = path + ".py"
    return f"{c.digests[source]}:{rest}" if sep and source in c.digests else c.arch


def _init_identity(c: RunConfig) -> str:
    scheme, _, path = c.init.partition(":")
    return f"checkpoint:{c.digests[path]}" if scheme == "checkpoint" and path in c.digests else c.init


def _judge_identity(c: RunConfig) -> Any:
    from archbench.judges import judge_identity

    return judge_identity(c.judge) if c.judge else None


@dataclass(frozen=True)
class RunConfig:
    """Everything one result depends on, resolved (build it with :func:`resolve`).

    The fields are the one list of run settings: :meth:`to_json` (what results files and the
    store keep), :meth:`identity` (what the key hashes), the store's columns
    (:mod:`archbench.store.schema`), the results table's columns (:mod:`archbench.frame`) and
    ``results.csv`` are all derived from :func:`dataclasses.fields` and each field's
    :func:`setting` metadata.

    Attributes:
        arch: canonical architecture spec (options sorted: ``vgg19(pool=max)``).
        init: weight initialisation (``stacked(...)`` with every option filled in).
        seed: seed of the weights and of the white-noise start.
        task: task name; ``options``: task options (read-only); ``metrics``: metric names.
        image: the image source (built-in name or absolute path).
        size, iterations: image side (px) and optimiser iterations (the budget; the iterations a
            result ran are :attr:`archbench.results.Result.iterations_run`).
        optimizer, history: ``lbfgs``/``adam`` and the L-BFGS history.
        device: where it runs (``cpu``, ``cuda``, ``cuda:N``); only its kind is part of the key.
        judge: the network scoring ``gram`` (:data:`archbench.metrics.gram.JUDGES` name), or None
            when ``gram`` is not among the metrics.
        digests: input file path -> ``sha256:...`` of its content, for every file the run reads;
            the key hashes contents, not paths.
    """

    arch: str = setting(identity=_arch_identity)
    init: str = setting(identity=_init_identity)
    seed: int = setting()
    task: str = setting()
    options: Mapping[str, Any] = setting(
        default_factory=lambda: MappingProxyType({}), kw_only=True, frame=JSON,
        identity=lambda c: _substitute(plain(c.options), c.digests))
    image: str = setting(identity=lambda c: c.digests.get(c.image, c.image), frame=LABEL)
    size: int = setting()
    iterations: int = setting()
    optimizer: str = setting("lbfgs")
    history: int = setting(100)
    device: str = setting("cpu", identity=lambda c: device_type(c.device))
    judge: str | None = setting(None, identity=_judge_identity)
    metrics: tuple[str, ...] = setting((), identity=lambda c: sorted(c.metrics), frame=None)
    digests: Mapping[str, str] = setting(default_factory=lambda: MappingProxyType({}), identity=False, frame=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen(dict(self.options)))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "digests", _frozen(dict(self.digests)))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunConfig) and self.to_json() == other.to_json()

    # -- identity --------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What the key hashes: the configuration format and every field by its ``identity``
        metadata (file paths replaced by content digests, the device by its kind, the judge by
        its network and weights)."""
        out: dict[str, Any] = {"format": CONFIG_FORMAT}
        for f in fields(self):
            how = f.metadata.get("identity", True)
            value = getattr(self, f.name)
            if how is False or (how == UNLESS_DEFAULT and value == _default(f)):
                continue
            out[f.name] = how(self) if callable(how) else plain(value)
        return out

    @cached_property
    def key(self) -> str:
        """SHA-256 (first 20 hex digits) of the canonical JSON of :meth:`identity`."""
        return hashlib.sha256(canonical_json(self.identity()).encode()).hexdigest()[:KEY_LENGTH]

    # -- derived ---------------------------------------------------------------------------
    @property
    def image_label(self) -> str:
        """Short label of the image: the built-in name or the file's stem."""
        from archbench.images import image_label

        return image_label(self.image)

    @property
    def network_key(self) -> tuple[str, str, int, str]:
        """Configurations with the same network key can share one built network."""
        return (self.arch, self.init, self.seed, self.device)

    @property
    def batch_key(self) -> str:
        """Configurations with the same batch key differ only in their image (one batch)."""
        d = self.to_json()
        d.pop("image")
        d.pop("digests")
        d["image_options"] = _substitute(d.pop("options"), self.digests)
        return canonical_json(d)

    def task_options(self) -> dict[str, Any]:
        """The task options as a plain (mutable) dict."""
        return plain(self.options)

    def describe(self) -> str:
        """One line for messages: ``reconstruct · vgg19 · gaussian:0.015 · seed 0 · astronaut``."""
        return f"{self.task} · {self.arch} · {self.init} · seed {self.seed} · {self.image_label}"

    # -- serialisation -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Plain data, one entry per field (what the store and results files keep);
        :meth:`from_json` reads it back."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        """The configuration of :meth:`to_json`'s data (a field it lacks takes its default)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` (no re-resolution: use :func:`resolve` for new settings)."""
        return replace(self, **changes)


def table_columns() -> list[tuple[str, Callable[[RunConfig], Any]]]:
    """``(column, value of a configuration)`` for every column the results tables show of a run
    (:mod:`archbench.frame`, ``results.csv``), derived from the fields' ``frame`` metadata in field
    order: a value, the compact JSON of a mapping (``options``), or an image's label (``image``)
    and source (``image_source``)."""
    out: list[tuple[str, Callable[[RunConfig], Any]]] = []
    for f in fields(RunConfig):
        how, name = f.metadata.get("frame", VALUE), f.name
        if how == LABEL:
            out += [(name, lambda c: c.image_label), (f"{name}_source", lambda c, n=name: getattr(c, n))]
        elif how == JSON:
            out.append((name, lambda c, n=name: canonical_json(getattr(c, n))))
        elif how is not None:
            out.append((name, lambda c, n=name: getattr(c, n)))
    return out


def _default(f: Field) -> Any:
    """The default value of field ``f`` (MISSING when it has none)."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


class HasConfig:
    """Mixin: the identity columns of a record that carries a ``config`` (:class:`RunConfig`), as
    every table shows them (``image`` is the image's label)."""

    config: RunConfig

    @property
    def key(self) -> str:
        return self.config.key

    arch = property(lambda self: self.config.arch)
    init = property(lambda self: self.config.init)
    seed = property(lambda self: self.config.seed)
    task = property(lambda self: self.config.task)
    size = property(lambda self: self.config.size)
    judge = property(lambda self: self.config.judge)
    image = property(lambda self: self.config.image_label, doc="label of the run's image")


# ----------------------------------------------------------------------------------------------
# resolving


def _posint(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def canonical_init(init: str, device: str) -> str:
    """``init`` with a ``stacked(...)`` init's options filled in and sorted (device defaults for
    its size and iterations); any other init unchanged."""
    if not (init == "stacked" or init.startswith("stacked(")):
        return init
    from archbench.architectures.init import validate_init
    from archbench.architectures.registry import canonical_spec, parse_spec

    _, opts = parse_spec(init)
    d = defaults_for(device)
    valid = {**STACKED_OPTIONS, "size": d.stack_size, "iterations": d.stack_iterations}
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} in init {init!r}; valid: {', '.join(valid)}")
    full = {**valid, **opts}
    for key in ("candidates", "size", "iterations"):
        if isinstance(full[key], bool) or not isinstance(full[key], int) or full[key] < 1:
            raise ConfigError(f"{key} in init {init!r} must be a positive integer, got {full[key]!r}")
    if full["size"] > max_size():
        raise ConfigError(f"size in init {init!r} is more than the limit of {max_size()} px")
    if not isinstance(full["base"], str) or full["base"].startswith("stacked"):
        raise ConfigError(f"base in init {init!r} must be a random init such as gaussian:0.015")
    validate_init(full["base"])
    return canonical_spec("stacked", full)


def parse_stacked(init: str) -> dict[str, Any] | None:
    """Options of a canonical ``stacked(...)`` init (:func:`canonical_init`), or None for any other init."""
    if not init.startswith("stacked("):
        return None
    from archbench.architectures.registry import parse_spec

    return parse_spec(init)[1]


def resolve(
    arch: str,
    task: str = "reconstruct",
    images: str | Sequence[str] = ("astronaut",),
    *,
    init: str = "gaussian:0.015",
    seed: int = 0,
    size: int | None = None,
    iterations: int | None = None,
    optimizer: str = "lbfgs",
    history: int = 100,
    options: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    device: str = "auto",
    judge: str = "auto",
    base_size: int | None = None,
    base_iterations: int | None = None,
) -> list[RunConfig]:
    """One :class:`RunConfig` per image (folders expand to their image files), fully resolved.

    Args:
        arch: architecture spec (canonicalised). ``task``: task name. ``images``: built-in image
            names, files or folders.
        init, seed: the weights (``stacked(...)`` inits get their options filled in).
        size, iterations: explicit values (CLI flags, a suite task's); ``None``: see the module
            docstring for what applies instead. ``base_size``/``base_iterations``: suite-wide values,
            below a preset's budget and above the device defaults.
        optimizer, history: the optimiser (a task with a fixed optimiser overrides it).
        options: task options (validated by the task). ``metrics``: default the task's.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (resolved on this machine; executors that
            run elsewhere resolve it first and pass the result).
        judge: ``auto``, ``trained-vgg16``, ``random-vgg19``: the network scoring ``gram``.

    Raises:
        ConfigError (or another :class:`~archbench.errors.ArchbenchError`): anything invalid that
        can be known without running: unknown names, bad options, non-positive sizes, a judge that
        would grade its own candidate or whose weights are absent.
    """
    from archbench.architectures.registry import canonical_spec
    from archbench.images import expand_sources
    from archbench.metrics import get_metric
    from archbench.metrics.gram import judge_for
    from archbench.optimizers.problem import METHODS
    from archbench.tasks import get_task
    from archbench.tasks.base import NO_IMAGE
    from archbench.tasks.presets import preset_iterations

    dev = resolve_device(device)
    d = defaults_for(dev)
    task_obj = get_task(task)
    opts = dict(options or {})
    task_obj.parse_options(dict(opts))  # unknown or malformed options fail here
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    size = _posint(size, "size") or _posint(base_size, "size") or d.size
    if size > max_size():
        raise ConfigError(
            f"size {size} px is more than the limit of {max_size()} px (the paper uses 256; set {MAX_SIZE_ENV} to allow more)"
        )
    iterations = (
        _posint(iterations, "iterations")
        or preset_iterations(opts.get("preset"))
        or _posint(base_iterations, "iterations")
        or d.iterations
    )
    optimizer = task_obj.fixed_optimizer or optimizer
    if optimizer not in METHODS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; valid: {', '.join(METHODS)}")
    history = _posint(history, "history") or 100
    metric_names = tuple(metrics) if metrics is not None else tuple(task_obj.default_metrics)
    for name in metric_names:
        get_metric(name)
    spec = canonical_spec(arch)
    if not isinstance(init, str) or not init.strip():
        raise ConfigError(f"init must be a non-empty string, got {init!r}")
    init = canonical_init(init.strip(), dev)
    if parse_stacked(init) is None:
        from archbench.architectures.init import validate_init

        validate_init(init)
    judged = any(get_metric(m).judged for m in metric_names)
    chosen_judge = judge_for(spec, init, seed, judge).name if judged else None
    sources = [images] if isinstance(images, str) else list(images)
    if task_obj.image_option and opts.get(task_obj.image_option):
        sources = [str(opts.pop(task_obj.image_option))]  # e.g. style's content image is the run's image
    if not sources and task_obj.takes_images:
        raise ConfigError("no images given")
    sources = expand_sources(sources) if task_obj.takes_images else [NO_IMAGE]
    configs = []
    for src in sources:
        src = _absolute(src) if task_obj.takes_images else src
        files = _input_files([src, opts, init.partition(":")[2] if init.startswith("checkpoint:") else "",
                              spec.partition(".py:")[0] + ".py" if ".py:" in spec else ""])
        configs.append(
            RunConfig(
                arch=spec, init=init, seed=seed, task=task, image=src, size=size, iterations=iterations,
                optimizer=optimizer, history=history, device=dev, options=opts, metrics=metric_names,
                judge=chosen_judge, digests={f: file_digest(f) for f in files},
            )
        )
    return configs


def _absolute(source: str) -> str:
    """A file source as an absolute path (built-in names and missing files unchanged)."""
    from archbench.images import IMAGES

    if source in IMAGES:
        return source
    p = Path(source).expanduser()
    return str(p.resolve()) if p.exists() else source
