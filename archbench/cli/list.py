"""``archbench list archs|tasks|images|metrics`` and ``archbench list taps SPEC``."""

from __future__ import annotations

from typing import Annotated

import typer

from archbench.cli.app import app, console
from archbench.cli.help import plain
from archbench.errors import UnknownNameError
from archbench.escaping import terminal as esc
from archbench.registry import unknown_name_message

KINDS = ("archs", "tasks", "images", "metrics", "taps")


def _first_line(text: str | None) -> str:
    """A docstring's first line as plain words (no ``code`` markup)."""
    return plain((text or "").strip().splitlines()[0]) or "" if (text or "").strip() else ""


def list_lines(kind: str, pattern: str | None = None) -> list[tuple[str, str]]:
    """``(name, description)`` pairs for ``kind``."""
    if kind == "archs":
        from archbench.architectures import ARCHS
        from archbench.architectures.registry import PREFIXES

        rows = [(n, _first_line(f.__doc__)) for n, f in ARCHS.items()]
        rows += [(f"{p}:<name>", _first_line(h.__doc__)) for p, h in sorted(PREFIXES.items())]
    elif kind == "tasks":
        from archbench.tasks import TASKS

        rows = [(n, t.description) for n, t in TASKS.items()]
    elif kind == "images":
        from archbench.images import IMAGES

        rows = [(n, f"{i.kind}: {i.description}") for n, i in IMAGES.items()]
    elif kind == "taps":
        if not pattern:
            raise UnknownNameError("`archbench list taps` needs an arch spec, e.g. `archbench list taps 'tv:resnet18'`")
        from archbench.architectures.create import build_arch

        net = build_arch(pattern)
        return [
            (t.name, f"level {t.level} (1/{2**t.level} of the input), {t.channels} channels"
             + ("" if t.spatial else ", not spatial") + (f", needs >= {t.min_size} px" if t.min_size > 1 else ""))
            for t in net.taps
        ]
    elif kind == "metrics":
        from archbench.metrics import METRICS

        rows = [
            (n, f"{'higher' if m.higher_is_better else 'lower'} is better; {m.description}"
             + (f" (needs {', '.join(m.requires)})" if m.requires else ""))
            for n, m in METRICS.items()
        ]
    else:
        raise UnknownNameError(unknown_name_message("list", kind, list(KINDS)))
    if pattern:
        import fnmatch

        rows = [r for r in rows if fnmatch.fnmatchcase(r[0], pattern)]
    return rows


@app.command("list", short_help="List architectures, tasks, images, metrics or taps.")
def list_cmd(
    kind: Annotated[str, typer.Argument(help="archs, tasks, images, metrics, or taps (the layers of one arch).")],
    pattern: Annotated[str | None, typer.Argument(help="Optional wildcard filter, e.g. 'vgg*'; for taps: the arch spec.")] = None,
) -> None:
    """List what exists, one line each; `list taps SPEC`: an architecture's layers in forward order with stride level and channels."""
    for name, desc in list_lines(kind, pattern):
        console.print(f"[bold]{esc(name)}[/]  {esc(desc)}" if desc else esc(name), highlight=False, soft_wrap=True)
