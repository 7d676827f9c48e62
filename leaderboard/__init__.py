"""The leaderboard: aggregate result files over seeds and render them as Markdown.

The charts of the extras (``merbench.leaderboard.ablation``) are not imported here, so
importing the leaderboard does not pull in matplotlib. Per-run plots (confusion matrix,
training curves) are the engine's: ``merbench.run_plots``.
"""

from .aggregate import (
    Leaderboard,
    LeaderboardRow,
    LeaderboardSection,
    MetricStat,
    PaperNumber,
    aggregate,
    aggregate_results,
)
from .render import render_leaderboard, render_markdown, render_rich_tables

__all__ = [
    "Leaderboard",
    "LeaderboardRow",
    "LeaderboardSection",
    "MetricStat",
    "PaperNumber",
    "aggregate",
    "aggregate_results",
    "render_leaderboard",
    "render_markdown",
    "render_rich_tables",
]
