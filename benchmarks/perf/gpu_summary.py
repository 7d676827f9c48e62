"""Summarise a gpu_check.sh folder: wall time per run and in all, peak GPU memory, utilisation.

``python -m merbench.perf.gpu_summary OUT_DIR --suite gpu --wall-s 1234`` reads the result files
under OUT_DIR/results and the nvidia-smi samples (when the machine had one) and writes
summary.json and summary.md beside them.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def gpu_samples(path: Path) -> dict:
    """Peak memory and mean utilisation from ``nvidia-smi --query-gpu=timestamp,utilization.gpu,
    memory.used,memory.total --format=csv,noheader,nounits`` lines (absent file: no GPU)."""
    if not path.exists():
        return {"samples": 0}
    util, used, total = [], [], 0.0
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            try:
                util.append(float(row[1]))
                used.append(float(row[2]))
                total = max(total, float(row[3]))
            except (IndexError, ValueError):
                continue  # a line cut by the kill at the end
    if not util:
        return {"samples": 0}
    busy = [u for u in util if u > 0]
    return {"samples": len(util), "peak_memory_mib": max(used), "memory_total_mib": total,
            "mean_utilisation_pct": sum(util) / len(util),
            "mean_utilisation_busy_pct": sum(busy) / len(busy) if busy else 0.0}


def runs(results: Path) -> list[dict]:
    out = []
    for f in sorted(results.rglob("*.json")):
        try:
            r = json.loads(f.read_text())
            out.append({"file": str(f.relative_to(results)), "method": r["method"], "variant": r.get("variant", ""),
                        "protocol": r["protocol"], "modalities": r.get("modalities", ""), "seed": r["seed"],
                        "wall_time_s": r.get("provenance", {}).get("wall_time_s", r.get("wall_time_s")),
                        "device": r.get("provenance", {}).get("device", ""),
                        "weighted_f1": r.get("test", {}).get("weighted_f1"), "accuracy": r.get("test", {}).get("accuracy")})
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # not a result file
    return out


def summarise(out: Path, suite: str, wall_s: float, sweep_status: int = 0) -> dict:
    summary = {"suite": suite, "sweep_exit_status": sweep_status, "wall_time_s": wall_s,
               "environment": json.loads((out / "env.json").read_text()) if (out / "env.json").exists() else {},
               "gpu": gpu_samples(out / "gpu_samples.csv"), "runs": runs(out / "results")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# GPU check: suite `{suite}`", "",
             f"- device: {summary['environment'].get('device', '?')}, torch {summary['environment'].get('torch', '?')}",
             f"- wall time of the sweep: {wall_s:.0f} s (exit status {sweep_status})"]
    g = summary["gpu"]
    if g.get("samples"):
        lines.append(f"- GPU memory peak {g['peak_memory_mib']:.0f} of {g['memory_total_mib']:.0f} MiB; utilisation "
                     f"{g['mean_utilisation_pct']:.0f} % on average ({g['mean_utilisation_busy_pct']:.0f} % while busy)")
    else:
        lines.append("- no GPU samples (no nvidia-smi on this machine)")
    lines += ["", "| method | variant | protocol | modalities | seed | wall s | device | W-F1 | acc |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        def pct(x):
            return "" if x is None else f"{100 * x:.2f}"
        wall = "" if r["wall_time_s"] is None else f"{r['wall_time_s']:.0f}"
        lines.append(f"| {r['method']} | {r['variant']} | {r['protocol']} | {r['modalities']} | {r['seed']} | {wall} | "
                     f"{r['device']} | {pct(r['weighted_f1'])} | {pct(r['accuracy'])} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--suite", default="gpu")
    ap.add_argument("--wall-s", type=float, default=0.0)
    ap.add_argument("--sweep-status", type=int, default=0)
    a = ap.parse_args(argv)
    s = summarise(a.out, a.suite, a.wall_s, a.sweep_status)
    print((a.out / "summary.md").read_text())
    return s


if __name__ == "__main__":
    main()
