"""``archbench list archs|tasks|images|metrics``."""

from __future__ import annotations

from typing import Annotated

import typer

from archbench.cli.app import app, console
from archbench.errors import UnknownNameError
from archbench.registry import unknown_name_message

KINDS = ("archs", "tasks", "images", "metrics")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


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


@app.command("list")
def list_cmd(
    kind: Annotated[str, typer.Argument(help="archs, tasks, images or metrics.")],
    pattern: Annotated[str | None, typer.Argument(help="Optional wildcard filter, e.g. 'vgg*'.")] = None,
) -> None:
    """List what exists, one line each."""
    for name, desc in list_lines(kind, pattern):
        console.print(f"[bold]{name}[/]  {desc}" if desc else name, highlight=False, soft_wrap=True)
