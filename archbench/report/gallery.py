"""The gallery page: one self-contained HTML file of pictures with their quality numbers.

Rendered from ``templates/gallery.html.j2`` with the report's jinja2 environment (autoescape on:
every name, caption and error reaches the page as text); images are embedded as base64 ``data:``
URIs, the CSS is inline and the page has no script, so it opens anywhere without network access.
The sections come from :func:`archbench.gallery.collect`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: side of each picture on the page (CSS px); images keep their own resolution
PICTURE_PX = 160


def _picture(p: Any) -> dict[str, Any]:
    from archbench.report.html import _data_uri

    uri = _data_uri(Path(p.path)) if p.path else None
    missing = "" if uri else (f"{Path(p.path).name} is missing" if p.path else "no image")
    return {"uri": uri, "missing": missing, "alt": p.caption, "caption": p.caption, "scores": p.scores,
            "note": p.note, "failed": p.failed, "ref": p.reference}


def gallery_html(sections: Sequence[Any], config: dict[str, str], title: str = "archbench gallery") -> str:
    """The page for ``sections`` (:class:`archbench.gallery.Section`) and the configuration block
    ``config`` (label -> value)."""
    from archbench.report.html import environment

    n_results = n_failed = 0
    out = []
    for s in sections:
        rows = []
        for row in s.rows:
            results = [p for p in row.pictures if not p.reference]
            n_results += len(results)
            n_failed += sum(p.failed for p in results)
            rows.append({"title": row.title, "pictures": [_picture(p) for p in row.pictures]})
        out.append({"task": s.task, "title": s.title, "rows": rows, "settings": s.settings,
                    "caption": getattr(s, "caption", "")})
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return environment().get_template("gallery.html.j2").render(
        title=title, sections=out, config=config, generated=generated, n_results=n_results, n_failed=n_failed,
        px=PICTURE_PX,
    )
