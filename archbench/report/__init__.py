"""Reports: leaderboards (ranking, bootstrap CIs, Wilcoxon/Holm), CSV/MD/HTML/JSON, baselines and checks."""

from archbench.report.formats import FORMATS, render, to_csv, to_json, to_markdown
from archbench.report.leaderboard import (
    ALL_LAYERS,
    Board,
    Entry,
    Leaderboard,
    OverallEntry,
    build_leaderboard,
    leaderboard_from_store,
)

__all__ = [
    "ALL_LAYERS",
    "Board",
    "Entry",
    "FORMATS",
    "Leaderboard",
    "OverallEntry",
    "build_leaderboard",
    "leaderboard_from_store",
    "render",
    "to_csv",
    "to_json",
    "to_markdown",
]
