"""Architecture registry: ``register_arch``, ``create_arch``, ``list_archs``.

An architecture is a factory ``f(**options) -> TappedNetwork`` registered by name. Specs name one,
with options: ``vgg19``, ``vgg19(pool=max)``. Besides registered names a spec may be

* ``timm:<name>`` or ``tv:<name>`` -- any timm or torchvision CNN through an adapter;
* ``path/to/file.py:factory`` (options allowed: ``file.py:factory(width=2)``) -- an ad hoc network;
* a name from the ``archbench.archs`` entry-point group of an installed plugin package.

``create_arch`` builds the network, initialises its weights (``init``, ``seed``) and moves it to a
device in eval mode with gradients off for its parameters.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archbench.architectures.base import TappedNetwork
from archbench.errors import ArchbenchError, ConfigError, UnknownNameError
from archbench.plugins import plugin_call
from archbench.registry import Registry

ArchFactory = Callable[..., TappedNetwork]

ARCHS: Registry[ArchFactory] = Registry("arch", entry_point_group="archbench.archs")
#: ``prefix -> handler(model_name, **options)`` for ``timm:``/``tv:`` style specs.
PREFIXES: dict[str, ArchFactory] = {}

_SPEC_RE = re.compile(r"^\s*(?P<name>[^()]+?)\s*(?:\((?P<opts>.*)\))?\s*$", re.S)


def register_arch(name: str | None = None) -> Callable[[ArchFactory], ArchFactory]:
    """Decorator registering an architecture factory under ``name`` (default: function name)."""
    return ARCHS.register(name)


def register_arch_prefix(prefix: str) -> Callable[[ArchFactory], ArchFactory]:
    """Decorator registering a handler for specs ``<prefix>:<model name>``."""

    def deco(fn: ArchFactory) -> ArchFactory:
        PREFIXES[prefix] = fn
        return fn

    return deco


def list_archs(pattern: str | None = None) -> list[str]:
    """Registered architecture names, naturally sorted, optionally filtered (``"vgg*"``)."""
    return ARCHS.names(pattern)


def _parse_value(text: str) -> Any:
    text = text.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"vgg19(pool=max,width=0.5)"`` into ``("vgg19", {"pool": "max", "width": 0.5})``."""
    m = _SPEC_RE.match(spec)
    if not m or not m.group("name").strip():
        raise ConfigError(f"malformed arch spec {spec!r}; expected NAME or NAME(key=value,...)")
    opts: dict[str, Any] = {}
    body = (m.group("opts") or "").strip()
    if body:
        for part in body.split(","):
            if "=" not in part:
                raise ConfigError(f"malformed option {part.strip()!r} in arch spec {spec!r}; expected key=value")
            key, value = part.split("=", 1)
            key = key.strip().replace("-", "_")
            if not key.isidentifier():
                raise ConfigError(f"malformed option name {key!r} in arch spec {spec!r}")
            opts[key] = _parse_value(value)
    return m.group("name").strip(), opts


def canonical_spec(spec: str, extra: dict[str, Any] | None = None) -> str:
    """``spec`` with ``extra`` options merged, options sorted: ``vgg19(pool=max)``."""
    name, opts = parse_spec(spec)
    opts.update(extra or {})
    if not opts:
        return name
    parts = []
    for k in sorted(opts):
        v = opts[k]
        if isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:\-]*", v) and v.lower() not in ("true", "false", "none", "null"):
            text = v
        elif isinstance(v, bool):
            text = "true" if v else "false"
        else:
            text = repr(v)
        parts.append(f"{k}={text}")
    return f"{name}({','.join(parts)})"


def _load_file_factory(name: str) -> ArchFactory:
    path_text, _, func = name.rpartition(":")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UnknownNameError(f"arch file {str(path)!r} does not exist (spec {name!r})")
    mod_name = "archbench_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module = sys.modules.get(mod_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ConfigError(f"cannot import {str(path)!r} as Python")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            with plugin_call(str(path), "import"):  # sys.exit or a hang at import: a PluginError
                loader_spec.loader.exec_module(module)
        except ArchbenchError:
            del sys.modules[mod_name]
            raise
        except Exception as exc:
            del sys.modules[mod_name]
            raise ConfigError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, func, None)
    if not callable(factory):
        raise UnknownNameError(f"{str(path)!r} has no callable {func!r} (spec {name!r})")
    return factory


def resolve_factory(name: str) -> ArchFactory:
    """The factory for a spec's name part (registered, prefixed or ``file.py:factory``)."""
    if ".py:" in name:
        return _load_file_factory(name)
    prefix, sep, rest = name.partition(":")
    if sep and prefix in PREFIXES:
        handler = PREFIXES[prefix]

        def factory(**opts: Any) -> TappedNetwork:
            return handler(rest, **opts)

        return factory
    if sep and prefix not in PREFIXES:
        raise UnknownNameError(
            f"unknown arch prefix {prefix!r} in {name!r}; known prefixes: {', '.join(sorted(PREFIXES))}"
        )
    return ARCHS.get(name)
