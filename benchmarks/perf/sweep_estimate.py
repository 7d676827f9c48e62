"""Estimate a sweep's wall time from the wall times of runs already made.

    python benchmarks/perf/sweep_estimate.py [SUITE] [--results leaderboard/results]
        [--speedup METHOD=X ...] [--variant-ratio METHOD:VARIANT=X ...] [--workers N] [--json OUT]

SUITE (default ``default``) is expanded as ``bench sweep`` expands it. Each run is matched with the
committed results of the same dataset, protocol, method, variant and modalities (any seed, any
config hash: a result's ``provenance.wall_time_s`` is the time of its whole run, training and
prediction, features already extracted); its estimate is the median over those seeds divided by
``--speedup`` for the method (a measured training speed-up since those runs were made, e.g. from
``fit_throughput.py``). A run with no such result borrows the median of the same method's
``default`` variant on the same protocol and modalities, divided by ``--variant-ratio`` (how much
faster the variant trains than the default, measured). Runs with neither are listed as unknown.

The sum is for one worker; with the suite's ``workers`` (or ``--workers``) it also prints the wall
time of the runs handed out in plan order to that many workers, each run as fast as alone (on a
machine with fewer free cores than workers it is not). The committed wall times come from a shared
2-core machine under varying load, so read the totals as an order of magnitude with a margin.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def committed_times(results: Path) -> dict[tuple, list[float]]:
    """(dataset, protocol, method, variant, modalities) -> wall times of the committed results."""
    out: dict[tuple, list[float]] = defaultdict(list)
    for path in sorted(Path(results).glob("**/*.json")):
        if path.name.startswith("."):
            continue
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(r, dict) or "method" not in r:  # not a result file
            continue
        wall = (r.get("provenance") or {}).get("wall_time_s")
        if wall is None:
            continue
        out[(r["dataset"], r["protocol"], r["method"], r.get("variant") or "default", r["modalities"])].append(float(wall))
    return out


def _pairs(values: list[str], what: str) -> dict[str, float]:
    out = {}
    for v in values:
        key, _, x = v.partition("=")
        try:
            out[key] = float(x)
        except ValueError:
            raise SystemExit(f"{what} {v!r}: expected KEY=NUMBER") from None
        if out[key] <= 0:
            raise SystemExit(f"{what} {v!r}: the factor must be positive")
    return out


def makespan(seconds: list[float], workers: int) -> float:
    """Wall time of runs handed out in plan order to ``workers`` workers, each run going to the
    first worker that is free (what the local executor's pool does)."""
    free = [0.0] * max(1, workers)
    for s in seconds:
        i = free.index(min(free))
        free[i] += s
    return max(free)


def estimate(suite: str, results: Path, speedup: dict[str, float], variant_ratio: dict[str, float],
             workers: int | None = None) -> dict:
    from merbench.corpus import modality_key, parse_modalities
    from merbench.sweep import expand_suite

    times = committed_times(results)
    plan = expand_suite(suite, results_dir=results)
    rows, by_entry = [], defaultdict(lambda: {"runs": 0, "seconds": 0.0, "unknown": 0})
    for job in plan.jobs:
        r = job.request
        mods = modality_key(parse_modalities(r.modalities))
        key = (r.dataset, r.protocol, r.method, r.variant, mods)
        own = times.get(key)
        source, seconds = "unknown", None
        if own:
            seconds, source = statistics.median(own) / speedup.get(r.method, 1.0), f"committed ({len(own)} seeds)"
        else:
            base = times.get((r.dataset, r.protocol, r.method, "default", mods))
            ratio = variant_ratio.get(f"{r.method}:{r.variant}")
            if base and ratio:
                seconds = statistics.median(base) / speedup.get(r.method, 1.0) / ratio
                source = f"default variant's ({len(base)} seeds) / {ratio:g}"
        rows.append({"entry": job.entry, "run": job.key, "seconds": seconds, "source": source})
        e = by_entry[job.entry]
        e["runs"] += 1
        if seconds is None:
            e["unknown"] += 1
        else:
            e["seconds"] += seconds
    known = [r["seconds"] for r in rows if r["seconds"] is not None]
    workers = workers or plan.default_workers()
    return {"suite": str(plan.source), "runs": len(rows), "unknown": sum(r["seconds"] is None for r in rows),
            "total_s": sum(known), "workers": workers, "wall_s": makespan(known, workers),
            "by_entry": dict(by_entry), "rows": rows, "speedup": speedup, "variant_ratio": variant_ratio}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", nargs="?", default="default")
    ap.add_argument("--results", type=Path, default=Path("leaderboard/results"))
    ap.add_argument("--speedup", action="append", default=[], metavar="METHOD=X")
    ap.add_argument("--variant-ratio", action="append", default=[], metavar="METHOD:VARIANT=X")
    ap.add_argument("--workers", type=int, default=None,
                    help="runs side by side (default: the suite's `workers`, as bench sweep; auto = CPU cores)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--runs", action="store_true", help="also print every run")
    args = ap.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"--workers {args.workers}: need at least one")
    report = estimate(args.suite, args.results, _pairs(args.speedup, "--speedup"),
                      _pairs(args.variant_ratio, "--variant-ratio"), args.workers)
    print(f"suite {report['suite']}: {report['runs']} runs, {report['unknown']} without a time")
    for name, e in report["by_entry"].items():
        print(f"  {name:<40} {e['runs']:3d} runs  {e['seconds'] / 60:7.1f} min"
              + (f"  ({e['unknown']} unknown)" if e["unknown"] else ""))
    if args.runs:
        for r in report["rows"]:
            s = "?" if r["seconds"] is None else f"{r['seconds']:.0f} s"
            print(f"    {r['run']:<70} {s:>8}  {r['source']}")
    print(f"estimated wall time, one worker: {report['total_s'] / 60:.1f} min")
    if report["workers"] > 1:
        print(f"estimated wall time, {report['workers']} workers (runs in plan order, each to the first free "
              f"worker, each as fast as alone): {report['wall_s'] / 60:.1f} min")
    if args.json:
        from merbench.atomic import atomic_write_json

        atomic_write_json(args.json, report)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
