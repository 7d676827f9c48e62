"""The executors of ``bench sweep``: run a plan's jobs in this process, in local worker
processes or on Ray; skip jobs whose result exists, re-run only what is missing after an
interruption, and record a failing job beside where its result would go, as
``.<run key>.failure.json`` (the leading dot keeps ``iter_results`` away from it), and go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..atomic import atomic_write_json
from ..errors import ConfigError, MerbenchError
from ..machine import usable_cores
from .suite import EXECUTORS, SweepJob, SweepPlan

# Environment a worker needs to find the same caches, corpora and offline models as the parent.
_ENV_PREFIXES = ("MERBENCH_", "HF_", "TRANSFORMERS_")


@dataclass
class JobOutcome:
    job: SweepJob
    status: str  # "done", "skipped" (result existed) or "failed"
    seconds: float = 0.0
    error: str | None = None
    failure_file: Path | None = None


@dataclass
class SweepSummary:
    outcomes: list[JobOutcome]
    wall_s: float
    executor: str
    workers: int

    def _with(self, status: str) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[JobOutcome]:
        return self._with("done")

    @property
    def skipped(self) -> list[JobOutcome]:
        return self._with("skipped")

    @property
    def failed(self) -> list[JobOutcome]:
        return self._with("failed")


class _QuietReporter:
    """Workers run silently; the parent reports finished jobs."""

    def stage(self, message):
        pass

    def progress(self, task, done, total):
        pass

    def epoch(self, label, epoch, total, row):
        pass

    def warn(self, message):
        import logging

        logging.getLogger(__name__).warning(message)


def _worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}


def execute_job(job: SweepJob, worker_init: Callable[[], None] | None = None,
                env: dict[str, str] | None = None) -> dict:
    """Run one job in this process; never raises for a failing run (KeyboardInterrupt excepted)."""
    from .. import runner

    if env:
        os.environ.update(env)
    t0 = time.time()
    try:
        if worker_init is not None:
            worker_init()
        runner.run(job.request, _QuietReporter())  # looked up at call time, so tests can instrument it
        return {"ok": True, "seconds": time.time() - t0}
    except Exception as e:  # noqa: BLE001 - a failing run is recorded, the sweep goes on
        msg = e.message if isinstance(e, MerbenchError) else str(e)
        return {"ok": False, "seconds": time.time() - t0, "error": f"{type(e).__name__}: {msg}",
                "fix": getattr(e, "fix", None), "traceback": traceback.format_exc()}


def _current_manifest(job: SweepJob, cache: dict) -> str | None:
    """The split manifest hash the job's protocol gives on the corpus as it is now (None when the
    corpus cannot be read here: the run itself would fail and say why)."""
    from ..registry import resolve_dataset

    req = job.request
    corpus_key = ("corpus", str(req.dataset), str(req.root))
    key = (str(req.dataset), str(req.root), req.protocol)
    if key not in cache:
        try:
            adapter_cls = resolve_dataset(req.dataset)
            if corpus_key not in cache:  # each corpus is read once, however many protocols use it
                cache[corpus_key] = adapter_cls(req.root).load()
            cache[key] = adapter_cls.protocol(req.protocol).build(cache[corpus_key]).manifest_hash
        except MerbenchError:
            cache[key] = None
    return cache[key]


def _result_exists(job: SweepJob, manifests: dict) -> bool:
    """A job is skipped only when a result of it exists for the corpus's current split manifest: a
    relabelled corpus of the same name runs again (the runner writes it beside the old result, under
    a name with the manifest hash; see merbench.runner.result_target)."""
    from ..results import alternate_result_path

    if not job.result_path.exists():
        return False
    try:
        have = json.loads(job.result_path.read_text()).get("manifest_hash")
    except (OSError, ValueError, AttributeError):
        return False  # unreadable: the runner names it and decides
    now = _current_manifest(job, manifests)
    if now is None or have == now:
        return True
    return alternate_result_path(job.result_path, now).exists()


def _pool_init(threads: int, worker_init, env: dict[str, str]) -> None:
    # N workers on a shared machine: split the cores, or every worker's torch would take them all
    # (OpenMP threads that wait on each other slow small models down many times over).
    os.environ.update(env)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if worker_init is not None:
        worker_init()


def _request_dict(req) -> dict:
    d = asdict(req)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _record(job: SweepJob, res: dict) -> JobOutcome:
    """Turn a worker's answer into an outcome; write or clear the job's failure file."""
    if res.get("ok"):
        if job.failure_path.exists():
            job.failure_path.unlink()  # it ran fine this time
        return JobOutcome(job, "done", res.get("seconds", 0.0))
    record = {"run": job.key, "entry": job.entry, "error": res.get("error"), "fix": res.get("fix"),
              "traceback": res.get("traceback", ""), "request": _request_dict(job.request),
              "seconds": round(res.get("seconds", 0.0), 2), "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "result_path": str(job.result_path)}
    atomic_write_json(job.failure_path, record)
    return JobOutcome(job, "failed", res.get("seconds", 0.0), res.get("error"), job.failure_path)


def run_sweep(plan: SweepPlan | Sequence[SweepJob], *, executor: str = "local", workers: int | None = 1,
              address: str | None = None, force: bool = False, cpus_per_run: float = 1.0,
              gpus_per_run: float | None = None, worker_init: Callable[[], None] | None = None,
              on_outcome: Callable[[JobOutcome], None] | None = None,
              ray_init_kwargs: dict | None = None, threads_per_worker: int | None = None) -> SweepSummary:
    """Run every job of ``plan`` with no result yet for the corpus's current split manifest (all of
    them with ``force``).

    ``executor``: ``local`` (``workers`` spawned processes), ``ray`` (one Ray task per job, on the
    cluster at ``address`` or a local instance; ``workers`` caps the tasks in flight, None for no cap)
    or ``inline`` (one after the other in this process; for debugging and tests).
    ``worker_init`` is called in every worker before its first job (register out-of-tree plugins
    there; it must be picklable, i.e. a module-level function). ``on_outcome`` sees each job as it ends.
    ``threads_per_worker``: torch / OpenMP threads of each local worker (default: the CPU cores
    divided among the workers).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}", fix=f"use one of: {', '.join(EXECUTORS)}")
    jobs = plan.jobs if isinstance(plan, SweepPlan) else list(plan)
    t0 = time.time()
    outcomes: list[JobOutcome] = []

    def emit(o: JobOutcome) -> None:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)

    pending = []
    manifests: dict = {}
    for job in jobs:
        if not force and _result_exists(job, manifests):
            emit(JobOutcome(job, "skipped"))
        else:
            pending.append(replace(job, request=replace(job.request, force=force)))
    n_workers = 1 if executor == "inline" else (workers or 0)
    if pending:
        if executor == "inline":
            for job in pending:
                emit(_record(job, execute_job(job, worker_init)))
        elif executor == "local":
            if n_workers < 1:
                raise ConfigError(f"--workers {workers}: need at least one worker")
            _run_local(pending, n_workers, worker_init, emit, threads_per_worker)
        else:
            _run_ray(pending, n_workers or None, address, cpus_per_run, gpus_per_run, worker_init, emit,
                     ray_init_kwargs or {})
    # Report in plan order, whatever order the workers finished in.
    by_path = {o.job.result_path: o for o in outcomes}
    ordered = [by_path[j.result_path] for j in jobs if j.result_path in by_path]
    return SweepSummary(ordered, time.time() - t0, executor, n_workers)


def _run_local(pending: list[SweepJob], workers: int, worker_init, emit, threads: int | None = None) -> None:
    threads = threads or max(1, usable_cores() // workers)
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch / thread state of the parent
    env = _worker_env()
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx,
                                initializer=_pool_init, initargs=(threads, worker_init, env)) as pool:
        futures = {pool.submit(execute_job, job): job for job in pending}
        try:
            for fut in cf.as_completed(futures):
                job = futures[fut]
                try:
                    res = fut.result()
                except cf.process.BrokenProcessPool as e:
                    res = {"ok": False, "error": f"worker process died ({e}); its run, and runs not yet "
                                                 "started, are marked failed", "fix": "run the sweep again to retry "
                                                 "them; if it keeps dying, the run may need more memory (use fewer --workers)"}
                except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
                    res = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
                emit(_record(job, res))
        except KeyboardInterrupt:
            # Stop now rather than wait for the runs in progress: they resume from their
            # checkpoints next time. (The pool has no public way to stop its workers before 3.14.)
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
            raise


def _run_ray(pending: list[SweepJob], max_in_flight: int | None, address: str | None, cpus: float,
             gpus: float | None, worker_init, emit, init_kwargs: dict) -> None:
    try:
        import ray
    except ImportError:
        raise MerbenchError("the ray executor needs the ray package, which is not installed",
                            fix="pip install 'merbench[ray]' (or use --executor local)") from None
    started = False
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=False) | init_kwargs
        if address:
            kwargs["address"] = address
        ray.init(**kwargs)
        started = True
    env = _worker_env()
    remote = ray.remote(execute_job)
    queue = list(pending)
    in_flight: dict[Any, SweepJob] = {}
    try:
        while queue or in_flight:
            while queue and (max_in_flight is None or len(in_flight) < max_in_flight):
                job = queue.pop(0)
                n_gpus = gpus if gpus is not None else (1.0 if str(job.request.device).startswith("cuda") else 0.0)
                ref = remote.options(num_cpus=cpus, num_gpus=n_gpus).remote(job, worker_init, env)
                in_flight[ref] = job
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                job = in_flight.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a dead worker or node: recorded like a failing run
                    res = {"ok": False, "error": f"ray task failed: {type(e).__name__}: {str(e)[:2000]}",
                           "traceback": traceback.format_exc()}
                emit(_record(job, res))
    except KeyboardInterrupt:
        for ref in list(in_flight):
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


# -- failures ----------------------------------------------------------------------------------


def iter_failures(results_root: str | Path) -> Iterable[tuple[Path, dict]]:
    """Failure records left under ``results_root`` by sweeps (sorted)."""
    for path in sorted(Path(results_root).rglob(".*.failure.json")):
        try:
            yield path, json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            yield path, {"error": f"unreadable failure record: {e}"}
