"""``bench sweep``: a YAML suite expanded into single-seed runs, run by local worker
processes or by Ray, resumable and tolerant of failing runs.

A suite file (``benchmarks/suites/*.yaml``) holds ``defaults`` (keys every entry
inherits) and ``runs``: named entries, each asking for methods x protocols x modality
subsets x variants x seeds. Names make ``include:`` useful: an including suite
inherits the entries of the included one, can change a field of an entry
(``runs: {baselines: {seeds: 5}}``), drop one (``runs: {baselines: null}``) or add its own.
``runs`` may also be a plain list (entries are then named ``runs[i]``).

Entry keys (all optional; ``defaults`` takes the same keys):

- ``methods``: a list of method names, or ``all`` (every registered method).
- ``datasets``: a list of datasets, or ``all``: every protocol of these datasets.
- ``protocols``: a list of protocol names, or ``all-supported`` (the default): every
  protocol of ``datasets`` (or of every dataset) whose corpus has modalities the method uses.
- ``modalities``: ``default`` (what the method supports and the corpus declares, like
  ``bench run`` without ``--modalities``), ``all-declared`` (every subset from the method's
  ``modality_subsets()`` that the corpus declares), or a list such as ``[t, ta, tav]``.
- ``seeds``: N (seeds 0..N-1), a list of seeds, or left out (the protocol's default).
- ``variants``: a list of config variants, or ``all`` (default: ``[default]``).
- ``set``: config overrides, a list of ``key=value`` or a mapping ``{key: value}``.
- ``epochs``, ``device``, ``root`` (a corpus folder, relative to the suite file),
  ``on_bad_media``.

Every job is one (method, variant, dataset, protocol, modalities, seed): it is what
``merbench.runner.run`` writes as one result file, so the sweep knows each job's result
path before running anything, skips jobs whose result exists and, after an interruption,
re-runs only what is missing. A failing job is written down beside where its result would
go, as ``.<run key>.failure.json`` (the leading dot keeps ``iter_results`` away from it),
and the sweep goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .atomic import atomic_write_json
from .config import config_hash, deep_merge, load_yaml, variants as config_variants
from .corpus import MODALITY_NAMES, modality_key, parse_modalities
from .errors import ConfigError, MerbenchError
from .results import Metrics, RunResult, result_path

SUITES_DIR = Path(__file__).resolve().parent / "suites"

ENTRY_KEYS = frozenset({"methods", "datasets", "protocols", "modalities", "seeds", "variants", "set", "epochs",
                        "device", "root", "on_bad_media", "description"})
SUITE_KEYS = frozenset({"defaults", "runs", "description"})
EXECUTORS = ("local", "ray", "inline")

# Environment a worker needs to find the same caches, corpora and offline models as the parent.
_ENV_PREFIXES = ("MERBENCH_", "HF_", "TRANSFORMERS_")


# -- suite files ------------------------------------------------------------------------


def find_suite(name_or_path: str | Path) -> Path:
    """A path to a suite file, or the name of a built-in suite (``default`` -> suites/default.yaml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for cand in (SUITES_DIR / p.name, SUITES_DIR / f"{p.name}.yaml"):
        if p.parent == Path(".") and cand.is_file():
            return cand
    builtin = ", ".join(sorted(x.stem for x in SUITES_DIR.glob("*.yaml"))) or "(none)"
    raise ConfigError(f"suite file {p} does not exist",
                      fix=f"give the path of a suite YAML file, or a built-in suite name ({builtin})")


def load_suite(path: str | Path) -> dict:
    """Read a suite file (following ``include:``) and check its keys."""
    path = find_suite(path)
    data = load_yaml(path)
    data["_source"] = str(path)
    _check_top_level(data)
    return data


def _check_top_level(suite: dict) -> None:
    unknown = sorted(set(suite) - SUITE_KEYS - {"_source"})
    if unknown:
        raise ConfigError(f"suite {suite.get('_source', '<suite>')}: unknown top-level key(s) "
                          f"{', '.join(map(repr, unknown))}",
                          fix=f"a suite has: {', '.join(sorted(SUITE_KEYS))} (and include)")


def suite_entries(suite: dict) -> list[tuple[str, dict]]:
    """(name, entry with the defaults merged in) for every entry that is not switched off."""
    _check_top_level(suite)
    source = suite.get("_source", "<suite>")
    defaults = suite.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"suite {source}: defaults must be a mapping, not {type(defaults).__name__}")
    runs = suite.get("runs")
    if isinstance(runs, dict):
        items = [(str(k), v) for k, v in runs.items()]
    elif isinstance(runs, list):
        items = [(f"runs[{i}]", v) for i, v in enumerate(runs)]
    else:
        raise ConfigError(f"suite {source} has no runs", fix="add `runs:` with named entries, e.g. "
                          "runs: {baselines: {methods: [majority], protocols: [synthetic-4]}}")
    out = []
    for name, entry in items:
        if entry is None:  # an including suite switched this entry off
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"suite {source}, entry {name}: must be a mapping, not {type(entry).__name__}")
        merged = deep_merge(defaults, entry)
        unknown = sorted(set(merged) - ENTRY_KEYS)
        if unknown:
            raise ConfigError(f"suite {source}, entry {name}: unknown key(s) {', '.join(map(repr, unknown))}",
                              fix=f"an entry has: {', '.join(sorted(ENTRY_KEYS))}")
        out.append((name, merged))
    return out


# -- expansion -------------------------------------------------------------------------------


@dataclass
class SweepJob:
    """One single-seed run and where its result file will be."""

    request: Any  # merbench.runner.RunRequest with one seed and explicit modalities
    result_path: Path
    entry: str = ""

    @property
    def key(self) -> str:
        r = self.request
        return f"{r.dataset}/{r.protocol}/{r.method}/{self.result_path.stem}"

    @property
    def failure_path(self) -> Path:
        return failure_path_for(self.result_path)


@dataclass
class SweepPlan:
    source: str
    jobs: list[SweepJob]
    notes: list[str] = field(default_factory=list)  # combinations left out, and why


def failure_path_for(result: Path) -> Path:
    # A leading dot: iter_results (and so the leaderboard) skips it.
    return result.with_name(f".{result.stem}.failure.json")


def planned_result_paths(req) -> list[Path]:
    """Result file of each seed of ``req``, computed the way the runner does, without loading the corpus.

    ``req.modalities`` must be given: without it the runner narrows the modalities to what the
    corpus copy has, which is only known after loading it.
    """
    from . import runner

    if not req.modalities:
        raise ConfigError("a planned run needs explicit modalities", fix="set modalities in the request")
    method_cls, adapter_cls, protocol, mods, config = runner.resolve(req)
    seeds = req.seeds if req.seeds is not None else list(range(protocol.default_seeds))
    chash = config_hash(config)
    paths = []
    for seed in seeds:
        stub = RunResult(method=method_cls.name, variant=req.variant, dataset=adapter_cls.name, protocol=protocol.name,
                         protocol_version=protocol.version, manifest_hash="", label_names=[],
                         modalities=modality_key(mods), seed=seed, config=config, config_hash=chash, folds=[],
                         test=Metrics(accuracy=0, ua=0, weighted_f1=0, macro_f1=0))
        paths.append(result_path(req.results_dir, stub))
    return paths


def _names(value, known: Sequence[str], kind: str, where: str) -> list[str]:
    if value is None or value == "all":
        return list(known)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {kind}s must be a list of names or 'all', not {value!r}")
    return list(dict.fromkeys(value))


def _seeds(value, default: int, where: str) -> list[int]:
    if value is None:
        return list(range(default))
    if isinstance(value, bool):
        raise ConfigError(f"{where}: seeds must be a number or a list of numbers, not {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: seeds: {value} runs nothing", fix="give the number of seeds (>= 1) or a list")
        return list(range(value))
    if isinstance(value, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in value) and value:
        return list(dict.fromkeys(value))
    raise ConfigError(f"{where}: seeds must be a number or a list of numbers, not {value!r}")


def _overrides(value, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{k}={json.dumps(v)}" for k, v in value.items()]  # JSON is YAML, so apply_overrides reads it back
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: set must be a list of key=value strings or a mapping, not {value!r}")


def _modality_sets(spec, method_cls, ds_mods: tuple[str, ...], where: str) -> tuple[list[tuple[str, ...]], list[str]]:
    """Modality subsets to run for one method on one corpus, and notes on what was left out."""
    declared, notes = set(method_cls.modalities), []
    if spec is None or spec == "default":
        mods = tuple(m for m in method_cls.modalities if m in ds_mods)
        return ([parse_modalities(mods)] if mods else []), notes
    if spec == "all-declared":
        return [parse_modalities(s) for s in method_cls.modality_subsets() if set(s) <= set(ds_mods)], notes
    items = spec if isinstance(spec, list) else [spec]
    out = []
    for item in items:
        try:
            mods = parse_modalities(item if isinstance(item, str) else list(item))
        except ConfigError as e:
            raise ConfigError(f"{where}: {e.message}", fix=e.fix) from None
        if not set(mods) <= declared:
            notes.append(f"{method_cls.name} cannot use modalities {modality_key(mods)} "
                         f"(it declares {','.join(method_cls.modalities)})")
        elif not set(mods) <= set(ds_mods):
            missing = ", ".join(MODALITY_NAMES[m] for m in mods if m not in ds_mods)
            notes.append(f"corpus has no {missing}")
        elif mods not in out:
            out.append(mods)
    return out, notes


def _protocols(entry: dict, where: str) -> tuple[list[tuple[str, Any]], bool]:
    """[(dataset, Protocol)] an entry asks for; the flag says whether they were named one by one."""
    from .protocols import all_protocols
    from .registry import DATASETS, load_builtins

    load_builtins()
    every = all_protocols()
    datasets = entry.get("datasets")
    ds_names = _names(datasets, DATASETS.names(), "dataset", where) if datasets is not None else None
    for d in ds_names or []:
        if d not in DATASETS:
            try:
                DATASETS.get(d)
            except MerbenchError as e:  # unknown name, with suggestions
                raise ConfigError(f"{where}: {e.message}", fix=e.fix) from None
    protos = entry.get("protocols", "all-supported")
    if protos in (None, "all-supported", "all"):
        chosen = [(ds, p) for _, (ds, p) in sorted(every.items()) if ds_names is None or ds in ds_names]
        # protocol order: as the datasets were listed, then by name
        if ds_names:
            chosen.sort(key=lambda dp: (ds_names.index(dp[0]), dp[1].name))
        return chosen, False
    names = _names(protos, list(every), "protocol", where)
    out = []
    for n in names:
        if n not in every:
            import difflib

            close = difflib.get_close_matches(n, list(every), n=3, cutoff=0.4)
            raise ConfigError(f"{where}: unknown protocol {n!r}" + (f"; did you mean {', '.join(map(repr, close))}?" if close else ""),
                              fix="run `bench list protocols` to see them all")
        ds, p = every[n]
        if ds_names is not None and ds not in ds_names:
            raise ConfigError(f"{where}: protocol {n} belongs to dataset {ds}, which is not in datasets {ds_names}",
                              fix="add the dataset or drop the protocol")
        out.append((ds, p))
    return out, True


def expand_suite(suite: dict | str | Path, results_dir: str | Path = "results") -> SweepPlan:
    """Every job of a suite (loaded dict, file path or built-in suite name), in suite order, deduplicated."""
    from .registry import get_dataset, get_method, load_builtins, METHODS
    from .runner import RunRequest

    if not isinstance(suite, dict):
        suite = load_suite(suite)
    load_builtins()
    source = suite.get("_source", "<suite>")
    base = Path(source).parent if source != "<suite>" else Path(".")
    results_dir = Path(results_dir).resolve()  # workers may run in another working directory
    jobs: dict[Path, SweepJob] = {}
    notes: list[str] = []
    for name, entry in suite_entries(suite):
        where = f"suite {source}, entry {name}"
        methods = _names(entry.get("methods", "all"), METHODS.names(), "method", where)
        protocols, named = _protocols(entry, where)
        variant_spec = entry.get("variants", ["default"])
        overrides = _overrides(entry.get("set"), where)
        epochs = entry.get("epochs")
        if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
            raise ConfigError(f"{where}: epochs must be a positive integer, not {epochs!r}")
        on_bad = entry.get("on_bad_media", "error")
        if on_bad not in ("error", "zero"):
            raise ConfigError(f"{where}: on_bad_media {on_bad!r}", fix="use error or zero")
        root = entry.get("root")
        root = (base / root).resolve() if root else None
        variant_hits: dict[str, int] = {}
        for mname in methods:
            try:
                method_cls = get_method(mname)
            except MerbenchError as e:
                raise ConfigError(f"{where}: {e.message}", fix=e.fix) from None
            except Exception as e:  # noqa: BLE001 - a method whose module does not import
                if entry.get("methods", "all") != "all":
                    raise ConfigError(f"{where}: method {mname} failed to import: {type(e).__name__}: {e}",
                                      fix="install what it needs, or drop it from the entry") from None
                notes.append(f"{name}: method {mname} left out: it failed to import ({type(e).__name__}: {e})")
                continue
            known_variants = ["default", *config_variants(method_cls.config_dir)]
            wanted = known_variants if variant_spec == "all" else _names(variant_spec, known_variants, "variant", where)
            for v in wanted:
                variant_hits.setdefault(v, 0)
                if v not in known_variants:
                    notes.append(f"{name}: {mname} has no variant {v!r}, left out")
                    continue
                variant_hits[v] += 1
                for ds, proto in protocols:
                    adapter_cls = get_dataset(ds)
                    subsets, why = _modality_sets(entry.get("modalities"), method_cls, tuple(adapter_cls.modalities), where)
                    if not subsets:
                        if named or why:
                            notes.append(f"{name}: {mname} on {proto.name} left out: "
                                         + ("; ".join(why) if why else "no modality in common"))
                        continue
                    for w in why:
                        notes.append(f"{name}: {mname} on {proto.name}: {w}, left out")
                    seeds = _seeds(entry.get("seeds"), proto.default_seeds, where)
                    for mods in subsets:
                        req = RunRequest(method=mname, dataset=ds, protocol=proto.name, modalities=",".join(mods),
                                         seeds=seeds, variant=v, epochs=epochs, overrides=overrides,
                                         results_dir=results_dir, device=str(entry.get("device", "cpu")), root=root,
                                         on_bad_media=on_bad)
                        try:
                            paths = planned_result_paths(req)
                        except MerbenchError as e:
                            raise ConfigError(f"{where}: {mname} on {proto.name}: {e.message}", fix=e.fix) from None
                        for seed, path in zip(seeds, paths):
                            if path not in jobs:
                                jobs[path] = SweepJob(replace(req, seeds=[seed], overrides=list(overrides)), path, name)
        unknown = [v for v, hits in variant_hits.items() if hits == 0]
        if unknown and variant_spec != "all":
            raise ConfigError(f"{where}: no method of this entry has variant(s) {', '.join(map(repr, unknown))}",
                              fix="check the names in the methods' variants/ folders (`bench info <method>`)")
    return SweepPlan(str(source), list(jobs.values()), notes)


# -- execution -------------------------------------------------------------------------------


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
    from . import runner

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
    """Run every job of ``plan`` whose result file does not exist yet (all of them with ``force``).

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
    for job in jobs:
        if job.result_path.exists() and not force:
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
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
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
