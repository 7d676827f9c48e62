"""Plain progress lines when output is not a terminal (CI logs, nohup): throttled, with rate and ETA."""

from merbench.progress import ProgressLines


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_lines_are_throttled_and_say_rate_and_eta():
    clock, out = Clock(), []
    lines = ProgressLines(out.append, interval=10.0, clock=clock)
    lines.update("extract audio-egemaps", 0, 100)
    for done in range(1, 50):
        clock.t = done * 0.5  # two utterances a second
        lines.update("extract audio-egemaps", done, 100)
    # one line at the start, then one per 10 s of clock: t = 10, 20
    assert len(out) == 3, out
    assert out[1] == "extract audio-egemaps: 20/100 (20%), 2/s, eta 40s, elapsed 10s"
    clock.t = 50.0
    lines.update("extract audio-egemaps", 100, 100)
    assert out[-1] == "extract audio-egemaps: 100/100 (100%), 2/s, elapsed 50s"
    lines.update("extract audio-egemaps", 100, 100)  # completion is said once
    assert len(out) == 4


def test_a_resumed_task_rates_only_the_new_work():
    clock, out = Clock(), []
    lines = ProgressLines(out.append, interval=1.0, clock=clock)
    lines.update("extract", 90, 100)  # 90 were cached before this run
    clock.t = 5.0
    lines.update("extract", 95, 100)
    assert out[-1] == "extract: 95/100 (95%), 1/s, eta 5s, elapsed 5s"

