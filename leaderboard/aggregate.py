"""Group result files into leaderboard sections and rows (pure functions, no printing).

A *section* is one (dataset, protocol, manifest hash): results of one protocol whose
split manifests differ were made on different splits, so they are never averaged
together; each manifest gets its own section and all of them are flagged.
A *row* is one (method, variant, modalities, config hash) within a section; its
statistics are over seeds. Every score here is in percent (result files hold [0, 1]).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from merbench.results import Metrics, RunResult, iter_results
from merbench.metrics import METRICS, metric_label, ordered  # noqa: F401  (metric_label: for the renderers)

MethodLookup = Callable[[str], Any]


@dataclass(frozen=True)
class MetricStat:
    """Mean and sample standard deviation (ddof=1) over seeds, in percent.

    ``std`` is None when fewer than two finite values exist; ``n`` counts the finite values.
    """

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> "MetricStat":
        vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not vals:
            return cls(None, None, 0)
        mean = statistics.fmean(vals)
        std = statistics.stdev(vals) if len(vals) > 1 else None
        return cls(mean, std, len(vals))


@dataclass(frozen=True)
class PaperNumber:
    """What the method's paper reports for this dataset / protocol / modalities."""

    headline: Any | None  # merbench.interfaces.ReportedResult for the headline metric, if reported
    all: tuple[Any, ...] = ()  # every matching ReportedResult (any metric), in declared order
    # How the row runs the paper's model when its variant is not the reported one: "budget" (a
    # smaller training budget) or "paper" (the paper's own features and hyper-parameters).
    via: str = ""


@dataclass(frozen=True)
class LeaderboardRow:
    method: str
    variant: str
    modalities: str
    config_hash: str
    manifest_hash: str
    as_published: bool
    seeds: tuple[int, ...]
    n: int
    headline_metric: str
    metrics: dict[str, MetricStat]  # scalar metric -> stats over seeds
    per_class_f1: dict[str, MetricStat]  # label -> stats over seeds
    paper: PaperNumber | None  # None: method unknown, failed to import, or reports nothing here
    paper_error: str | None = None  # why no paper lookup was possible (unregistered, import error)
    parameters: int | None = None
    bad_media: int = 0  # largest count of unreadable media over the seeds
    # Largest count per kind over the seeds: unreadable files per modality ("audio": 2) and media
    # that were read but gave no face ("video_no_face": 5).
    bad_media_by_kind: dict[str, int] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # result files, relative to the results root, sorted
    # What this row's config changes against its variant's defaults, e.g. "epochs=1" (empty: nothing,
    # or the method could not be loaded); ``label`` is what every table and chart calls the row.
    config_changes: str = ""
    label: str = ""
    select_metric: str = ""  # the validation metric that selected epochs / checkpoints ("": none)

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.variant)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.method, self.variant, self.modalities, self.config_hash)

    @property
    def headline(self) -> MetricStat:
        return self.metrics.get(self.headline_metric, MetricStat(None, None, 0))


@dataclass(frozen=True)
class LeaderboardSection:
    dataset: str
    protocol: str
    protocol_version: str
    manifest_hash: str
    headline_metric: str
    as_published: bool
    label_names: tuple[str, ...]
    rows: tuple[LeaderboardRow, ...]  # sorted by headline mean, best first
    # True when this protocol also has results on other split manifests (shown in their own
    # sections, never averaged with this one); renderers must say so.
    manifest_conflict: bool = False
    other_manifests: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # Numbers a method's paper reports for this protocol that no row matches (other modalities or
    # variant, e.g. a t,a,v number where only text runs exist): (method name, ReportedResult).
    unmatched_reported: tuple[tuple[str, Any], ...] = ()
    test_n: int = 0  # test utterances (pooled over folds) of this manifest
    support: dict[str, int] | None = None  # test utterances per class

    @property
    def metrics(self) -> tuple[str, ...]:
        """Column order: the headline first, then the other metrics the runs computed (the
        protocol's list), in registry order."""
        computed = {m for row in self.rows for m, stat in row.metrics.items() if stat.n}
        return ordered(computed, first=self.headline_metric)


@dataclass(frozen=True)
class Leaderboard:
    sections: tuple[LeaderboardSection, ...]
    n_results: int = 0


# -- paper numbers ---------------------------------------------------------------
def unmatched_reported(rows: Iterable[LeaderboardRow], dataset: str, protocol: str,
                       papers: "_PaperCache") -> tuple[tuple[str, Any], ...]:
    """Reported numbers of the section's methods, for this protocol, that sit beside no row."""
    rows = list(rows)
    shown = {id(r) for row in rows if row.paper is not None for r in row.paper.all}
    out = []
    for name in sorted({row.method for row in rows}):
        found, _ = papers.method(name)
        meta = _metadata(found)
        for r in tuple(getattr(meta, "reported", ()) or ()):
            if (getattr(r, "dataset", None) == dataset and getattr(r, "protocol", None) == protocol
                    and id(r) not in shown):
                out.append((name, r))
    return tuple(out)


def _default_lookup(name: str):
    from merbench.registry import method_metadata

    return method_metadata(name)  # from metadata.yaml: no method module (or torch) is imported


def _metadata(found: Any) -> Any:
    """A lookup may return a method class (tests, plugins) or its metadata."""
    return getattr(found, "metadata", found)


def _same_modalities(a: str, b: str) -> bool:
    return sorted(a) == sorted(b)


def reported_for(method_cls: Any, dataset: str, protocol: str, modalities: str,
                 headline_metric: str, variant: str = "default") -> PaperNumber | None:
    """Match a method's ``metadata.reported`` against one section and modality set."""
    meta = _metadata(method_cls)
    reported = tuple(getattr(meta, "reported", ()) or ())
    budget = dict(getattr(meta, "budget_variants", ()) or ())
    own_features = dict(getattr(meta, "paper_variants", ()) or ())
    variant = variant or "default"
    paper_variant = own_features.get(variant, budget.get(variant, variant))
    via = "" if paper_variant == variant else ("paper" if variant in own_features else "budget")
    matches = tuple(
        r for r in reported
        if getattr(r, "dataset", None) == dataset and getattr(r, "protocol", None) == protocol
        # An empty modality key on a reported number means "whatever the paper used".
        and (not getattr(r, "modalities", "") or _same_modalities(r.modalities, modalities))
        # A number for one variant (e.g. B-MM) belongs only beside that variant's row, or beside a
        # variant that runs the same model on a smaller budget (metadata.budget_variants) or on the
        # paper's own features (metadata.paper_variants).
        and (getattr(r, "variant", "default") or "default") == paper_variant
    )
    if not matches:
        return None
    headline = next((r for r in matches if r.metric == headline_metric), None)
    return PaperNumber(headline, matches, via)


class _PaperCache:
    """Looks every method up once; never lets a broken or unknown method stop the leaderboard."""

    def __init__(self, lookup: MethodLookup | None):
        self.lookup = lookup or _default_lookup
        self.cache: dict[str, tuple[Any, str | None]] = {}

    def method(self, name: str) -> tuple[Any, str | None]:
        if name not in self.cache:
            try:
                self.cache[name] = (self.lookup(name), None)
            except KeyError:  # UnknownNameError is a KeyError too
                self.cache[name] = (None, "method not registered (out-of-tree or removed)")
            except Exception as e:  # noqa: BLE001 - an import failure must not break the board
                first_line = (str(e).strip().splitlines() or [""])[0][:160]
                self.cache[name] = (None, f"method failed to load: {type(e).__name__}: {first_line}".rstrip(": "))
        return self.cache[name]


# -- aggregation -------------------------------------------------------------------


def _metric_value(m: Metrics, name: str) -> float | None:
    v = getattr(m, name, None)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v) * 100.0
    return None


def _rel(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def _sort_key(row: LeaderboardRow):
    h = row.headline.mean
    # Rows without a headline value go last; ties are broken by name so output is stable.
    return (h is None, -(h or 0.0), row.method, row.variant, row.modalities, row.config_hash)


def _majority(values: list[str]) -> str:
    counts = Counter(values)
    return sorted(counts, key=lambda v: (-counts[v], v))[0]


MAX_CHANGES = 4  # config changes spelled out in a row's label; more are counted


def _config_changes(found: Any, r: RunResult) -> str:
    """``epochs=1, lr=0.0003``: the result's config against its variant's defaults (read from the
    method's config files; no method module is imported). The selection metric has a column of its
    own and is left out here. ``found``: what the method lookup gave (a class carries config_dir)."""
    from types import SimpleNamespace

    from merbench.config import config_changes, method_config
    from merbench.registry import method_config_dir

    if not r.config:  # nothing recorded to compare
        return ""
    try:
        cdir = getattr(found, "config_dir", None) if isinstance(found, type) else method_config_dir(r.method)
        if cdir is None:
            return ""
        base = method_config(SimpleNamespace(name=r.method, config_dir=cdir), r.variant, r.dataset, r.protocol)
    except Exception:  # noqa: BLE001 - a variant since removed, a broken config: label by hash instead
        return ""
    config, base = dict(r.config), dict(base)
    for c in (config, base):
        if isinstance(c.get("train"), dict):
            c["train"] = {k: v for k, v in c["train"].items() if k != "select_metric"}
    changes = config_changes(config, base)
    if len(changes) > MAX_CHANGES:
        changes = changes[:MAX_CHANGES - 1] + [f"+{len(changes) - MAX_CHANGES + 1} more"]
    return ", ".join(changes)


def _label_rows(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Each row's label: variant plus its config changes; the config hash is added only where two
    rows of one method and modalities would still read the same."""
    def base(r: LeaderboardRow) -> str:
        return r.variant + (f", {r.config_changes}" if r.config_changes else "")

    count = Counter((r.method, base(r), r.modalities) for r in rows)
    return [replace(r, label=base(r) + (f" (cfg {r.config_hash[:8]})" if count[(r.method, base(r), r.modalities)] > 1
                                        else "")) for r in rows]


def _build_row(results: list[tuple[Path, RunResult]], root: Path | None, headline_metric: str,
               label_names: tuple[str, ...], papers: _PaperCache, warnings: list[str]) -> LeaderboardRow:
    first = results[0][1]
    # One value per seed: a second file with the same seed (a copy, a renamed file) is dropped.
    by_seed: dict[int, tuple[Path, RunResult]] = {}
    for path, r in results:
        if r.seed in by_seed:
            warnings.append(
                f"{first.method}/{first.variant}/{first.modalities}: seed {r.seed} appears in both "
                f"{_rel(by_seed[r.seed][0], root)} and {_rel(path, root)}; only the first is counted"
            )
            continue
        by_seed[r.seed] = (path, r)
    kept = [by_seed[s] for s in sorted(by_seed)]
    metrics = {m: MetricStat.of(v for v in (_metric_value(r.test, m) for _, r in kept) if v is not None)
               for m in ordered(METRICS, first=headline_metric)}
    per_class = {
        label: MetricStat.of(r.test.per_class[label].f1 * 100.0 for _, r in kept if label in r.test.per_class)
        for label in label_names
    }
    cls, err = papers.method(first.method)
    paper = None if cls is None else reported_for(cls, first.dataset, first.protocol, first.modalities, headline_metric,
                                                   first.variant)
    params = next((r.parameters for _, r in kept if r.parameters is not None), None)
    selected = sorted({r.select_metric for _, r in kept})
    if len(selected) > 1:
        warnings.append(f"{first.method}/{first.variant}/{first.modalities}: seeds selected by different metrics "
                        f"({', '.join(s or 'none' for s in selected)})")
    return LeaderboardRow(
        method=first.method,
        variant=first.variant,
        modalities=first.modalities,
        config_hash=first.config_hash,
        manifest_hash=first.manifest_hash,
        as_published=any(r.as_published for _, r in kept),
        seeds=tuple(sorted(by_seed)),
        n=len(kept),
        headline_metric=headline_metric,
        metrics=metrics,
        per_class_f1=per_class,
        paper=paper,
        paper_error=err,
        parameters=params,
        bad_media=max((r.bad_media for _, r in kept), default=0),
        bad_media_by_kind={k: max(r.bad_media_by_kind.get(k, 0) for _, r in kept)
                           for k in sorted({k for _, r in kept for k in r.bad_media_by_kind})},
        files=tuple(sorted(_rel(p, root) for p, _ in kept)),
        config_changes=_config_changes(cls, first),
        select_metric=", ".join(s for s in selected if s),
    )


def aggregate_results(results: Iterable[tuple[Path, RunResult]], root: Path | None = None,
                      method_lookup: MethodLookup | None = None) -> Leaderboard:
    """Aggregate ``(path, RunResult)`` pairs into a :class:`Leaderboard`.

    ``method_lookup(name)`` returns a method class or its metadata (default
    ``merbench.registry.method_metadata``, which reads ``metadata.yaml`` without importing the method);
    any exception it raises only removes the paper column for that method.
    """
    papers = _PaperCache(method_lookup)
    groups: dict[tuple[str, str, str], list[tuple[Path, RunResult]]] = {}
    n_results = 0
    for path, r in results:
        n_results += 1
        groups.setdefault((r.dataset, r.protocol, r.manifest_hash), []).append((Path(path), r))

    manifests: dict[tuple[str, str], list[str]] = {}
    for ds, proto, mh in groups:
        manifests.setdefault((ds, proto), []).append(mh)

    sections = []
    for (ds, proto, mh) in sorted(groups):
        items = sorted(groups[(ds, proto, mh)], key=lambda pr: pr[0].as_posix())
        warnings: list[str] = []
        others = tuple(sorted(h for h in manifests[(ds, proto)] if h != mh))
        headlines = [r.headline_metric for _, r in items]
        headline = _majority(headlines)
        if len(set(headlines)) > 1:
            warnings.append(f"results disagree on the headline metric ({', '.join(sorted(set(headlines)))}); "
                            f"using {headline}")
        versions = [r.protocol_version for _, r in items]
        version = _majority(versions)
        if len(set(versions)) > 1:
            warnings.append(f"results disagree on the protocol version ({', '.join(sorted(set(versions)))})")
        labels: list[str] = []
        for _, r in items:
            labels.extend(n for n in r.label_names if n not in labels)

        rows_in: dict[tuple[str, str, str, str], list[tuple[Path, RunResult]]] = {}
        for path, r in items:
            rows_in.setdefault((r.method, r.variant, r.modalities, r.config_hash), []).append((path, r))
        rows = _label_rows([_build_row(rows_in[k], root, headline, tuple(labels), papers, warnings)
                            for k in sorted(rows_in)])
        rows.sort(key=_sort_key)
        # One manifest, one test set: its size and class support are the same for every result.
        ref = items[0][1].test
        support = {n: ref.per_class[n].support for n in labels if n in ref.per_class}
        sections.append(LeaderboardSection(
            dataset=ds,
            protocol=proto,
            protocol_version=version,
            manifest_hash=mh,
            headline_metric=headline,
            as_published=any(r.as_published for _, r in items),
            label_names=tuple(labels),
            rows=tuple(rows),
            manifest_conflict=bool(others),
            other_manifests=others,
            warnings=tuple(warnings),
            unmatched_reported=unmatched_reported(rows, ds, proto, papers),
            test_n=ref.n or sum(support.values()),
            support=support,
        ))
    return Leaderboard(tuple(sections), n_results)


def aggregate(results_root: str | Path, method_lookup: MethodLookup | None = None) -> Leaderboard:
    """Read every result file under ``results_root`` and aggregate it.

    A missing folder gives an empty leaderboard; an unreadable or old-schema file raises
    :class:`~merbench.errors.MerbenchError` naming that file.
    """
    root = Path(results_root)
    if not root.is_dir():
        return Leaderboard((), 0)
    return aggregate_results(iter_results(root), root=root, method_lookup=method_lookup)
