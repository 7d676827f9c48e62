"""The suite language of ``bench sweep``: a YAML suite expanded into single-seed jobs.
(The executors that run the jobs are in :mod:`merbench.sweep.executors`.)

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

Top-level ``workers`` (optional): how many runs the local executor runs side by side when
``bench sweep`` gets no ``--workers``: a positive integer, or ``auto`` (one per CPU core, each
with one torch thread: the suite's runs are small, single-threaded models). Without it: 1.

Every job is one (method, variant, dataset, protocol, modalities, seed): it is what
``merbench.runner.run`` writes as one result file, so the sweep knows each job's result
path before running anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ..config import config_hash, deep_merge, load_yaml, variants as config_variants
from ..corpus import MODALITY_NAMES, modality_key, parse_modalities
from ..errors import ConfigError, MerbenchError
from ..results import Metrics, RunResult, result_path

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"

ENTRY_KEYS = frozenset({"methods", "datasets", "protocols", "modalities", "seeds", "variants", "set", "epochs",
                        "device", "root", "on_bad_media", "description"})
SUITE_KEYS = frozenset({"defaults", "runs", "description", "workers"})
EXECUTORS = ("local", "ray", "inline")


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
    workers: int | str | None = None  # the suite's own default for the local executor (None, N or "auto")

    def default_workers(self, cpu_count: int | None = None) -> int:
        """Local workers when the command line gives none: the suite's ``workers`` (``auto``: one per core), else 1."""
        if self.workers == "auto":
            from ..machine import usable_cores

            return max(1, cpu_count or usable_cores())
        return self.workers or 1


def failure_path_for(result: Path) -> Path:
    # A leading dot: iter_results (and so the leaderboard) skips it.
    return result.with_name(f".{result.stem}.failure.json")


def planned_result_paths(req) -> list[Path]:
    """Result file of each seed of ``req``, computed the way the runner does, without loading the corpus.

    ``req.modalities`` must be given: without it the runner narrows the modalities to what the
    corpus copy has, which is only known after loading it.
    """
    from .. import runner

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
    from ..protocols import all_protocols
    from ..registry import DATASETS, load_builtins

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
    from ..registry import get_dataset, get_method, load_builtins, METHODS
    from ..runner import RunRequest

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
    return SweepPlan(str(source), list(jobs.values()), notes, _suite_workers(suite.get("workers"), source))


def _suite_workers(value, source: str) -> int | str | None:
    if value is None or value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ConfigError(f"suite {source}: workers {value!r} is not a number of workers",
                      fix="use a positive integer, or auto (one per CPU core)")
