"""Facts about the machine that the engine sizes its work by."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask (``taskset``, a container's CPU set),
    not every core of the host that ``os.cpu_count()`` reports."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
