"""``bench sweep SUITE``: run a suite of benchmark runs (see ``merbench.sweep``).

Mounted on the main CLI with ``app.command("sweep")(sweep)``; ``sweep_app`` also runs
on its own (``python -m merbench.cli_sweep SUITE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import MerbenchError

sweep_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                        help="Run a suite of benchmark runs (methods x protocols x modalities x seeds).")
console = Console()


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}h{m % 60:02d}m{s:02d}s" if m >= 60 else f"{m}m{s:02d}s"


def _mods(job) -> str:
    from .corpus import modality_key, parse_modalities

    return modality_key(parse_modalities(job.request.modalities))


def _group_key(job):
    r = job.request
    # the config hash is part of the key: two entries may run one method with different --set
    return (job.entry, r.dataset, r.protocol, r.method, r.variant, _mods(job), job.result_path.stem.rsplit("-", 1)[-1])


def plan_table(plan) -> Table:
    table = Table(title=f"sweep plan: {plan.source} ({len(plan.jobs)} runs)")
    for col in ("entry", "protocol", "method", "variant", "mods", "seeds to run", "seeds done"):
        table.add_column(col)
    groups: dict[tuple, dict[str, list[int]]] = {}
    for job in plan.jobs:
        g = groups.setdefault(_group_key(job), {"todo": [], "done": []})
        g["done" if job.result_path.exists() else "todo"].append(job.request.seeds[0])
    for key, g in groups.items():
        entry, ds, proto, method, variant, mods, _ = key
        table.add_row(entry, proto, method, variant, mods,
                      ", ".join(map(str, g["todo"])) or "—", ", ".join(map(str, g["done"])) or "—")
    return table


def summary_table(summary) -> Table:
    table = Table(title=f"sweep: {len(summary.done)} done, {len(summary.skipped)} skipped (result existed), "
                        f"{len(summary.failed)} failed in {_fmt_s(summary.wall_s)} "
                        f"({summary.executor}, {summary.workers or 'any'} worker{'s' if summary.workers != 1 else ''})")
    for col in ("protocol", "method", "variant", "mods", "done", "skipped", "failed (seeds)", "time"):
        table.add_column(col, justify="left" if col in ("protocol", "method", "variant", "mods") else "right")
    groups: dict[tuple, list] = {}
    for o in summary.outcomes:
        groups.setdefault(_group_key(o.job), []).append(o)
    for key, outs in groups.items():
        _, ds, proto, method, variant, mods, _ = key

        def count(status):
            return str(sum(1 for o in outs if o.status == status))

        failed = [str(o.job.request.seeds[0]) for o in outs if o.status == "failed"]
        table.add_row(proto, method, variant, mods, count("done"), count("skipped"),
                      f"[red]{len(failed)} ({', '.join(failed)})[/red]" if failed else "0",
                      _fmt_s(sum(o.seconds for o in outs if o.status != "skipped")))
    return table


@sweep_app.command("sweep")
def sweep(suite: Optional[Path] = typer.Argument(None, help="suite YAML file, or the name of a built-in suite "
                                                             "(e.g. default); or give --method/--protocol lists"),
          method: list[str] = typer.Option([], "--method", "-M", help="method (repeatable): a suite from the command line"),
          protocol: list[str] = typer.Option([], "--protocol", "-p", help="protocol (repeatable)"),
          dataset: list[str] = typer.Option([], "--dataset", "-d", help="dataset (repeatable): all its protocols"),
          modalities: list[str] = typer.Option([], "--modalities", "-m",
                                               help="modality set (repeatable, e.g. t, ta, tav; default: all declared)"),
          seeds: int = typer.Option(3, "--seeds", help="with --method: seeds 0..N-1"),
          set_: list[str] = typer.Option([], "--set", help="with --method: config override key=value (repeatable)"),
          workers: Optional[int] = typer.Option(None, "--workers", "-j",
                                                help="parallel runs (local default: the suite's `workers`, else 1; ray default: no cap)"),
          executor: str = typer.Option("local", "--executor", help="local (worker processes), ray, or inline"),
          address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray)"),
          results_dir: Path = typer.Option(Path("results"), "--results-dir", help="where result files go"),
          dry_run: bool = typer.Option(False, "--dry-run", help="list the runs and what exists; run nothing"),
          force: bool = typer.Option(False, "--force", help="retrain runs from scratch and replace their results"),
          threads: Optional[int] = typer.Option(None, "--threads",
                                                help="local: torch threads per worker (default: cores / workers)"),
          cpus_per_run: float = typer.Option(1.0, "--cpus-per-run", help="Ray: CPUs requested per run"),
          gpus_per_run: Optional[float] = typer.Option(None, "--gpus-per-run",
                                                       help="Ray: GPUs per run (default: 1 for cuda runs, else 0)")):
    """Run every run of SUITE whose result file does not exist yet; failures are recorded, not fatal."""
    from .sweep import expand_suite, run_sweep

    if executor not in ("local", "ray", "inline"):
        raise MerbenchError(f"unknown executor {executor!r}", fix="use local, ray or inline")
    if address and executor != "ray":
        raise MerbenchError("--address is only used by the ray executor", fix="add --executor ray")
    if workers is not None and workers < 1:
        raise MerbenchError(f"--workers {workers}: need at least one", fix="use --workers 1 or more")
    if threads is not None and threads < 1:
        raise MerbenchError(f"--threads {threads}: need at least one", fix="use --threads 1 or more")
    plan = expand_suite(suite_from_cli(suite, method, protocol, dataset, modalities, seeds, set_), results_dir)
    for note in plan.notes:
        console.print(f"[dim]note: {note}[/dim]")
    if dry_run:
        console.print(plan_table(plan))
        todo = sum(1 for j in plan.jobs if force or not j.result_path.exists())
        console.print(f"{len(plan.jobs)} runs, {todo} to run, {len(plan.jobs) - todo} with a result already "
                      f"(results in {Path(results_dir).resolve()})")
        return
    if workers is None:
        # the suite may name its own (default.yaml: one per core); ray's default is no cap
        workers = plan.default_workers() if executor == "local" else (1 if executor == "inline" else None)
    from .machine import usable_cores

    if executor == "local" and workers and workers > usable_cores():
        console.print(f"[yellow]warning:[/yellow] {workers} workers on {usable_cores()} usable CPU cores")

    todo = sum(1 for j in plan.jobs if force or not j.result_path.exists())
    # soft_wrap: in a log (not a terminal) rich would break lines at 80 columns, splitting run keys
    console.print(f"sweep {plan.source}: {len(plan.jobs)} runs, {todo} to run, executor {executor}"
                  + (f", {workers} worker(s)" if workers and executor != "inline" else ""), soft_wrap=True)
    finished = [0]

    def on_outcome(o):
        if o.status == "skipped":
            return
        finished[0] += 1
        mark = "[green]done[/green]" if o.status == "done" else "[red]FAILED[/red]"
        line = f"[{finished[0]}/{todo}] {mark} {o.job.key} ({_fmt_s(o.seconds)})"
        if o.status == "failed":
            line += f": {(o.error or '').splitlines()[0] if o.error else ''}"
        console.print(line, highlight=False, soft_wrap=True)

    summary = run_sweep(plan, executor=executor, workers=workers, address=address, force=force,
                        cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, on_outcome=on_outcome,
                        threads_per_worker=threads)
    console.print(summary_table(summary))
    if summary.failed:
        console.print(f"[red]{len(summary.failed)} run(s) failed[/red]; the error and traceback of each are in:")
        for o in summary.failed:
            console.print(f"  {o.failure_file}", highlight=False)
        console.print("run the same command again to retry them (finished runs are skipped)")
        raise typer.Exit(1)


def suite_from_cli(suite, methods, protocols, datasets, modalities, seeds, overrides):
    """The suite file, or a one-entry suite built from --method/--protocol/--dataset lists."""
    if suite is not None:
        if methods or protocols or datasets or modalities or overrides:
            raise MerbenchError("give either a suite file or --method/--protocol lists, not both",
                                fix="put the lists into a suite file's entry, or drop the suite argument")
        return suite
    if not methods or not (protocols or datasets):
        raise MerbenchError("nothing to sweep: give a suite file (e.g. `bench sweep default`) or at least one "
                            "--method and one --protocol or --dataset")
    entry: dict = {"methods": list(methods), "seeds": seeds,
                   "modalities": list(modalities) if modalities else "all-declared"}
    if protocols:
        entry["protocols"] = list(protocols)
    if datasets:
        entry["datasets"] = list(datasets)
    if overrides:
        entry["set"] = list(overrides)
    return {"_source": "<command line>", "runs": {"command-line": entry}}


def main(argv: list[str] | None = None) -> int:
    """Run ``sweep_app`` on its own, printing merbench errors without a traceback."""
    import sys

    try:
        # Without standalone mode typer returns the exit code (of typer.Exit, or 130 on Ctrl-C).
        rc = sweep_app(args=argv, standalone_mode=False)
        if rc == 130:
            print("interrupted: run the same command again to resume (finished runs are skipped)", file=sys.stderr)
        return rc if isinstance(rc, int) else 0
    except MerbenchError as e:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {e.message}" + (f"\n[bold]fix:[/bold] {e.fix}" if e.fix else ""),
                                   highlight=False)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume (finished runs are skipped)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
