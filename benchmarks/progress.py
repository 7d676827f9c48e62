"""Plain, line-based progress for output that is not a terminal (CI logs, ``nohup``, notebooks).

Rich hides its bars when stdout is not a terminal, which left long extractions silent for
minutes. :class:`ProgressLines` prints one line per task at most every ``interval`` seconds
(and when the task completes): stage, done / total, rate and ETA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class _Task:
    start: float
    start_done: int
    last_print: float = float("-inf")
    finished: bool = False


@dataclass
class ProgressLines:
    """``update(task, done, total)`` -> at most one printed line per task per ``interval`` s."""

    write: Callable[[str], None]
    interval: float = 10.0
    clock: Callable[[], float] = time.monotonic
    tasks: dict[str, _Task] = field(default_factory=dict)

    def update(self, task: str, done: int, total: int, note: str = "") -> None:
        now = self.clock()
        state = self.tasks.get(task)
        if state is None:
            # The first call may report work done before (a resumed extraction): the rate counts
            # only what is done from here on.
            state = self.tasks[task] = _Task(start=now, start_done=done)
        complete = total > 0 and done >= total
        if state.finished or (not complete and now - state.last_print < self.interval):
            return
        state.last_print = now
        state.finished = complete
        self.write(self.line(task, done, total, now - state.start, done - state.start_done, note))

    @staticmethod
    def line(task: str, done: int, total: int, elapsed: float, done_here: int, note: str = "") -> str:
        parts = [f"{task}: {done}/{total}"]
        if total:
            parts[0] += f" ({100 * done / total:.0f}%)"
        if elapsed > 0 and done_here > 0:
            rate = done_here / elapsed
            parts.append(f"{rate:.3g}/s")
            if done < total:
                parts.append(f"eta {_duration((total - done) / rate)}")
        parts.append(f"elapsed {_duration(elapsed)}")
        if note:
            parts.append(note)
        return ", ".join(parts)
