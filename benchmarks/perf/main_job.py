"""Wall time of the README's command 1 main job on a fresh MERBENCH_HOME (a script, not a test).

    python benchmarks/perf/main_job.py [--bench PATH] [--home DIR] [--keep] [--json OUT] [--corpus-from DIR] [-- extra run args]

Runs ``bench run mlp synthetic --modalities t,a,v`` then ``bench leaderboard`` in a new, empty
``MERBENCH_HOME`` (so the corpus is generated and every feature extracted, as on a fresh machine),
with output into a pipe, so the run prints plain lines. Each line is stamped on arrival; the time
between one stage line (``· corpus: ...``, ``· features: ...``, ``· seed ...``) and the next is that
stage's time; the CPU seconds of the process tree (the run and its worker processes, sampled
every 0.25 s) are stamped too, since on a shared machine the wall time says as much about the
other jobs as about the run. Prints the lines, a table of stage times, the wall time to the printed leaderboard,
the test metrics of each seed (to compare results before / after a change) and the load average
before and after. ``--bench`` picks the ``bench`` executable (another checkout's venv, to time the
code before a change on the same machine, alternating).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _stages(stamped: list[tuple[float, float, str]], end: float, end_cpu: float) -> list[tuple[str, float, float]]:
    """(stage, wall seconds, CPU seconds) from the stamped output: a stage runs from its line to the
    next stage line."""
    marks = [(t, c, line.lstrip("· ").strip()) for t, c, line in stamped if line.startswith("· ")]
    marks.insert(0, (0.0, 0.0, "start-up (imports, config, checks)"))
    return [(name, t_next - t, c_next - c)
            for (t, c, name), (t_next, c_next, _) in zip(marks, marks[1:] + [(end, end_cpu, "")])]


class TreeCPU:
    """CPU seconds (user + system) of a process and all its descendants, the finished ones included,
    sampled every ``interval`` s in a thread. On a machine shared with other jobs the wall time of a
    stage says how busy the machine was; its CPU seconds say what the stage costs."""

    def __init__(self, pid: int, interval: float = 0.25):
        import threading

        import psutil

        self.root = psutil.Process(pid)
        self.seen: dict[int, float] = {}  # pid -> last CPU seconds of a live descendant
        self.total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)
        self._thread.start()

    def sample(self) -> float:
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return self.total
        for p in procs:
            try:
                t = p.cpu_times()
                self.seen[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        # a finished child's time stays in seen (its last sample), so the sum never drops
        self.total = max(self.total, sum(self.seen.values()))
        return self.total

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.sample()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.total


def _run(cmd: list[str], env: dict, t0: float, cpu0: float, stamped: list[tuple[float, float, str]]) -> tuple[int, float]:
    """Run ``cmd``, stamping each output line with (wall, CPU of the process tree so far); returns
    (exit code, CPU seconds of the process tree)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    cpu = TreeCPU(proc.pid)
    assert proc.stdout is not None
    for line in proc.stdout:
        t, c = time.perf_counter() - t0, cpu0 + cpu.sample()
        stamped.append((t, c, line.rstrip("\n")))
        print(f"[{t:7.1f}s {c:7.1f} cpu-s] {line.rstrip()}", flush=True)
    rc = proc.wait()
    return rc, cpu.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default=str(Path(sys.executable).parent / "bench"), help="the bench executable")
    ap.add_argument("--home", help="MERBENCH_HOME to use (default: a new temporary folder, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument("--json", help="write the stage times and metrics here")
    ap.add_argument("--corpus-from", help="a generated synthetic corpus folder to hard-link into the fresh home, so "
                                          "the run does not generate it (its corpus stage then only loads it); to time "
                                          "extraction and training twice without generating twice on a busy machine")
    ap.add_argument("extra", nargs="*", help="extra arguments for bench run (after --)")
    args = ap.parse_args(argv)

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="merbench-mainjob-"))
    results = home / "results"
    # unbuffered: lines must arrive when printed, or their stamps say nothing
    env = {**os.environ, "MERBENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("MERBENCH_PROGRESS", None)
    if args.corpus_from:
        shutil.copytree(args.corpus_from, home / "data" / "synthetic", copy_function=os.link)
        print(f"corpus: hard-linked from {args.corpus_from} (not generated in this run)")
    load_before = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPU cores, load average {load_before[0]:.2f} / {load_before[1]:.2f} / "
          f"{load_before[2]:.2f} (1 / 5 / 15 min); bench {args.bench}; MERBENCH_HOME {home}", flush=True)
    stamped: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    try:
        rc, cpu_run = _run([args.bench, "run", "mlp", "synthetic", "--modalities", "t,a,v", "--results-dir",
                            str(results), *args.extra], env, t0, 0.0, stamped)
        t_run = time.perf_counter() - t0
        cpu_lb = 0.0
        if rc == 0:
            rc, cpu_lb = _run([args.bench, "leaderboard", "--results-dir", str(results), "--output",
                               str(home / "LEADERBOARD.md")], env, t0, cpu_run, [])
        total = time.perf_counter() - t0
        load_after = os.getloadavg()
        stages = _stages(stamped, t_run, cpu_run) + [("bench leaderboard", total - t_run, cpu_lb)]
        metrics = {}
        for f in sorted(results.rglob("*.json")):
            try:
                d = json.loads(f.read_text())
                metrics[f"seed{d['seed']}"] = {k: round(v, 4) for k, v in d["test"].items() if isinstance(v, float)}
            except (OSError, ValueError, KeyError, TypeError):
                continue
        print("\nstage times (from the stamped output): wall s, CPU s of the process tree")
        for name, sec, cpu_s in stages:
            print(f"  {sec:7.1f} s  {cpu_s:7.1f} cpu-s  {name}")
        print(f"  {total:7.1f} s  {cpu_run + cpu_lb:7.1f} cpu-s  TOTAL to the printed leaderboard (exit code {rc})")
        print(f"load average after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}")
        for seed, m in metrics.items():
            print(f"test {seed}: " + ", ".join(f"{k} {v}" for k, v in sorted(m.items())))
        if args.json:
            Path(args.json).write_text(json.dumps({
                "bench": args.bench, "cores": os.cpu_count(), "load_before": load_before, "load_after": load_after,
                "stages": stages, "total_s": total, "total_cpu_s": cpu_run + cpu_lb, "exit_code": rc, "test": metrics}, indent=1))
        return rc
    finally:
        if not args.home and not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
