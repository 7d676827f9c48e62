"""Speed-up of ``bench sweep`` with 2 local workers over 1, measured in one run.

Runs the same small suite (the MLP baseline on the toy text corpus of the tests, several
seeds) twice into fresh result folders: once with one worker process, once with N. The
features are extracted before timing, so both sweeps only train and evaluate. Everything
goes into a temporary MERBENCH_HOME; nothing outside it is touched.

    python benchmarks/perf/sweep_speedup.py [--seeds 6] [--epochs 40] [--workers 2] [--threads 1]

By default every worker uses one torch thread in both sweeps, so the ratio measures running
runs side by side; ``--threads 0`` uses the sweep's default (cores divided among workers),
which compares what ``bench sweep --workers 1`` and ``--workers 2`` do out of the box.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2] / "tests"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6, help="runs per sweep (one per seed)")
    ap.add_argument("--epochs", type=int, default=40, help="MLP epochs per run (no early stop)")
    ap.add_argument("--workers", type=int, default=2, help="workers of the parallel sweep")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per worker in both sweeps (0: the sweep's default, cores / workers)")
    args = ap.parse_args(argv)

    load = os.getloadavg()[0]  # other work on the machine skews both timings
    sys.path.insert(0, str(TESTS))  # the toy corpus and its bag-of-words extractor; spawned workers inherit sys.path
    with tempfile.TemporaryDirectory(prefix="merbench-speedup-") as tmp:
        os.environ["MERBENCH_HOME"] = str(Path(tmp) / "home")
        import toy
        from merbench.features.store import extract_corpus
        from merbench.sweep import expand_suite, run_sweep

        toy.register()
        extract_corpus(toy.ToyDataset().load(), toy.ToyBagOfWords())  # outside the timings
        suite = {"runs": {"mlp": {"methods": ["mlp"], "protocols": ["toy-4"], "seeds": args.seeds,
                                  "set": ["features.t=toy-bow", f"train.epochs={args.epochs}", "train.patience=1000"]}}}
        times = {}
        for workers in (1, args.workers):
            plan = expand_suite(suite, Path(tmp) / f"results-{workers}")
            t0 = time.perf_counter()
            summary = run_sweep(plan, executor="local", workers=workers, worker_init=toy.register,
                                threads_per_worker=args.threads or None)
            times[workers] = time.perf_counter() - t0
            if summary.failed:
                print(f"{len(summary.failed)} run(s) failed, e.g. {summary.failed[0].error}", file=sys.stderr)
                return 1
            run_s = sum(o.seconds for o in summary.done)
            print(f"{workers} worker(s): {len(summary.done)} runs in {times[workers]:.1f} s wall "
                  f"({run_s:.1f} s inside runs)")
    threads = f"{args.threads} torch thread(s) per worker" if args.threads else "cores / workers torch threads"
    print(f"cpu cores: {os.cpu_count()}, {threads}, load average before: {load:.2f}; "
          f"speed-up with {args.workers} workers over 1: {times[1] / times[args.workers]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
