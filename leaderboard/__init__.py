"""The leaderboard: aggregate result files over seeds and render them as Markdown.

Plots (``merbench.leaderboard.plots``) are not imported here, so importing the
leaderboard does not pull in matplotlib.
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
