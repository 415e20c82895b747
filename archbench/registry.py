"""A small generic registry, in the manner of timm's model registry.

Each concept (architectures, tasks, metrics, suites, executors, ...) owns one :class:`Registry`.
Entries are added with a decorator, looked up by name with a helpful error that suggests the closest
names, listed with shell-style wildcards in natural order, and extended by third-party packages
through a Python entry-point group.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import re
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from archbench.errors import UnknownNameError
from archbench.plugins import plugin_call

log = logging.getLogger(__name__)

T = TypeVar("T")


def natural_key(name: str) -> list[object]:
    """Sort key that orders ``vgg11 < vgg13 < vgg19`` and ``resnet18 < resnet50`` naturally."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def close_matches(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """The ``n`` candidates most similar to ``name`` (for "did you mean" messages)."""
    return difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)


def unknown_name_message(kind: str, name: str, candidates: list[str]) -> str:
    """One-line message for an unknown name, with suggestions and where to look."""
    msg = f"unknown {kind} {name!r}"
    matches = close_matches(name, candidates)
    if matches:
        msg += "; did you mean " + " or ".join(repr(m) for m in matches) + "?"
    else:
        shown = ", ".join(sorted(candidates, key=natural_key)[:12])
        msg += f"; known: {shown}" + (", ..." if len(candidates) > 12 else "")
    return msg


class Registry(Generic[T]):
    """Name -> entry mapping with decorator registration and entry-point discovery.

    Args:
        kind: what the entries are, for messages ("arch", "task", "metric").
        entry_point_group: Python entry-point group scanned once, lazily, for plugins. Each entry
            point's name is the registered name and it must load to an entry of this registry.
        builtins: called once before the first lookup to import the modules that register the
            built-in entries (so that importing the registry itself stays cheap).
    """

    def __init__(
        self, kind: str, entry_point_group: str | None = None, builtins: Callable[[], None] | None = None
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None
        self._builtins = builtins

    def _load_builtins(self) -> None:
        """Import the modules that register the built-in entries, once, on first lookup (``builtins``)."""
        if self._builtins is not None:
            load, self._builtins = self._builtins, None
            load()

    def register(self, name: str | None = None, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator that registers an entry under ``name`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__
            self.add(key, obj, overwrite=overwrite)
            return obj

        return deco

    def add(self, name: str, obj: T, *, overwrite: bool = False) -> None:
        """Register ``obj`` under ``name``; refuse to replace an entry unless ``overwrite``."""
        if not overwrite and name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def _load_plugins(self) -> None:
        self._load_builtins()
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.entry_point_group or ""):
            if ep.name in self._entries:
                continue
            try:
                with plugin_call(f"{ep.name} = {ep.value}", "import"):  # nor can it end the program
                    self._entries[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not break the tool
                log.warning("could not load %s plugin %r from %s: %s", self.kind, ep.name, ep.value, exc)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; :class:`UnknownNameError` with suggestions if absent."""
        self._load_builtins()
        if name not in self._entries:
            self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._entries

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names, naturally sorted, optionally filtered by a shell wildcard pattern."""
        self._load_plugins()
        names = list(self._entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return sorted(names, key=natural_key)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._entries[name]
