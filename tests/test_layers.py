"""The import graph of ``archbench`` (built by grimp, the library under import-linter): no import
cycle, and no module imports one of a higher layer.

The layers, bottom to top, are written once, in ``pyproject.toml`` under ``[tool.archbench]
layers`` (``docs/architecture.md`` explains them). A module belongs to the layer of the longest
entry its name starts with (``archbench.tasks.stack`` runs reconstructions through the run plan,
so it sits above ``archbench.plan`` although its folder is ``archbench.tasks``); modules of one
layer may import each other, as long as no cycle forms. Imports made only for type checking
(``if TYPE_CHECKING:``) are not counted; an import inside a function is.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="grimp is a dev dependency: pip install -e '.[dev]'")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def layers() -> list[list[str]]:
    """The layers of ``pyproject.toml``, bottom first; each a list of module names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["archbench"]
    return [[name.strip() for name in entry.split("|")] for entry in config["layers"]]


@lru_cache(maxsize=1)
def graph():
    return grimp.build_graph("archbench", include_external_packages=False, cache_dir=None,
                             exclude_type_checking_imports=True)


def layer_of(module: str) -> int | None:
    """Index of ``module``'s layer (its longest matching entry), None for the package facade."""
    best, index = "", None
    for i, names in enumerate(layers()):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, index = name, i
    return index


def cycles(g) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(g.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(g.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _where(g, importer: str, imported: str) -> str:
    lines = [d["line_number"] for d in g.get_import_details(importer=importer, imported=imported)]
    return f"{importer} -> {imported} (line {', '.join(map(str, lines)) or '?'})"


def test_every_module_has_a_layer():
    missing = sorted(m for m in graph().modules if m != "archbench" and layer_of(m) is None)
    assert not missing, f"modules in no layer of pyproject.toml [tool.archbench] layers: {missing}"


def test_no_import_cycle():
    g = graph()
    found = cycles(g)
    detail = []
    for component in found:
        members = set(component)
        detail += [_where(g, a, b) for a in component for b in g.find_modules_directly_imported_by(a) if b in members]
    assert not found, "import cycles:\n" + "\n".join(detail)


def test_no_import_runs_up_a_layer():
    g = graph()
    upward = []
    for importer in sorted(g.modules):
        low = layer_of(importer)
        if low is None:
            continue  # the package's lazy facade (archbench/__init__.py)
        for imported in sorted(g.find_modules_directly_imported_by(importer)):
            high = layer_of(imported)
            if high is not None and high > low:
                upward.append(_where(g, importer, imported))
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_check_sees_a_cycle_and_an_upward_import():
    """The checks themselves: a made-up graph with a cycle and an upward import fails them."""
    g = grimp.ImportGraph()
    for m in ("archbench.errors", "archbench.config", "archbench.cli"):
        g.add_module(m)
    g.add_import(importer="archbench.errors", imported="archbench.cli", line_number=1, line_contents="")
    g.add_import(importer="archbench.cli", imported="archbench.errors", line_number=1, line_contents="")
    assert cycles(g) == [["archbench.cli", "archbench.errors"]]
    assert layer_of("archbench.errors") < layer_of("archbench.cli")
