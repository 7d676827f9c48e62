"""``bench run``: one method, one corpus, one protocol, some seeds -> result files.

The runner is where the protocol is enforced. A method gets the training and
validation splits for ``fit`` and, only after ``fit`` has returned, the test split with
its labels and annotations removed for ``predict``; the runner alone holds the test
labels and scores the predictions. Finished folds and finished seeds are stored, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_write_json, atomic_write_text, check_writable_dir
from .config import config_hash, method_config, resolve_select_metric
from .corpus import Corpus, modality_key, parse_modalities, MODALITY_NAMES
from .errors import ConfigError, DamagedFileError, MediaError, MerbenchError
from .features.factory import check_options, make_extractor
from .features.store import bad_media, corpus_fingerprint, default_workers, extract_corpus, load_table, media_notes
from .interfaces import FeatureTable, Method, SplitData
from .metrics import classification_metrics, combine_folds
from .paths import home
from .protocols import Fold, ProtocolSplits
from .provenance import collect
from .registry import get_method
from .results import FoldResult, Metrics, RunResult, alternate_result_path, result_path, write_result
from .validate import check_config, check_run_args

log = logging.getLogger(__name__)


@dataclass
class RunRequest:
    method: str
    dataset: str
    protocol: str | None = None
    modalities: str | Sequence[str] | None = None
    seeds: list[int] | None = None  # None: the protocol's default number of seeds, 0..n-1
    variant: str = "default"
    epochs: int | None = None
    overrides: list[str] = field(default_factory=list)
    results_dir: Path = Path("results")
    device: str = "cpu"
    root: Path | None = None
    on_bad_media: str = "error"  # or "zero": unreadable media become zero features, reported
    force: bool = False  # re-run seeds whose result already exists
    keep_model: bool = True  # keep each fold's selected model beside the result (<stem>.model/)


_now = time.monotonic  # the run clock (tests replace it)


class PieceClock:
    """Wall time of one seed summed over the processes that ran it: a killed run resumes from its
    checkpoints, and its time so far must not be lost. Each process is a *piece* in a JSON file
    beside the run's checkpoints; the current piece is written after every epoch and fold, so a
    killed piece keeps its time up to its last finished epoch."""

    def __init__(self, path: Path):
        import socket
        from datetime import datetime, timezone

        self.path = path
        try:
            self.pieces = json.loads(path.read_text())["pieces"] if path.exists() else []
        except (OSError, ValueError, KeyError, TypeError):
            self.pieces = []  # an unreadable log loses earlier pieces, never the run
        self.t0 = _now()
        self.pieces.append({"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "wall_time_s": 0.0, "hostname": socket.gethostname()})

    def tick(self) -> None:
        self.pieces[-1]["wall_time_s"] = round(_now() - self.t0, 2)
        atomic_write_json(self.path, {"pieces": self.pieces})

    @property
    def total(self) -> float:
        return round(sum(p["wall_time_s"] for p in self.pieces), 2)


class Reporter:
    """How the runner talks to the user; the CLI plugs rich progress bars in here."""

    def stage(self, message: str) -> None:
        log.info(message)

    def progress(self, task: str, done: int, total: int) -> None:
        pass

    def epoch(self, label: str, epoch: int, total: int, row: dict) -> None:
        pass

    def warn(self, message: str) -> None:
        log.warning(message)


class _Timed(Reporter):
    """Passes everything on to ``inner``; records the seed's time after every epoch."""

    def __init__(self, inner: Reporter, clock: PieceClock):
        self.inner, self.clock = inner, clock

    def stage(self, message: str) -> None:
        self.inner.stage(message)

    def progress(self, task: str, done: int, total: int) -> None:
        self.inner.progress(task, done, total)

    def epoch(self, label: str, epoch: int, total: int, row: dict) -> None:
        self.clock.tick()
        self.inner.epoch(label, epoch, total, row)

    def warn(self, message: str) -> None:
        self.inner.warn(message)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def resolve(req: RunRequest):
    """Look everything up and validate it before any work starts."""
    from .registry import resolve_dataset  # a registered name or a corpus .yaml

    check_run_args(req.epochs, req.seeds)
    method_cls = get_method(req.method)
    adapter_cls = resolve_dataset(req.dataset)
    protocol = adapter_cls.protocol(req.protocol)
    default_mods = [m for m in method_cls.modalities if m in adapter_cls.modalities]
    mods = parse_modalities(req.modalities if req.modalities else (default_mods or method_cls.modalities))
    unsupported = [m for m in mods if m not in method_cls.modalities]
    if unsupported:
        raise ConfigError(f"method {method_cls.name} cannot use modality {', '.join(unsupported)}",
                          fix=f"it supports: {','.join(method_cls.modalities)}")
    config = method_config(method_cls, req.variant, adapter_cls.name, protocol.name, req.overrides)
    if req.epochs is not None:
        if "train" not in config:
            raise ConfigError(f"method {method_cls.name} has no epochs to set", fix="drop --epochs")
        config["train"]["epochs"] = int(req.epochs)
    config = resolve_select_metric(method_cls, config, protocol.headline_metric)
    check_config(config)
    return method_cls, adapter_cls, protocol, mods, config


def _check_modalities(corpus: Corpus, requests: dict, dataset: str) -> None:
    """Every modality the method reads needs the corpus's media, unless a feature pack supplies it."""
    missing = [m for m, r in requests.items()
               if m not in corpus.modalities and not getattr(check_options(r), "is_pack", False)]
    if missing:
        names = ", ".join(MODALITY_NAMES[m] for m in missing)
        have = ",".join(corpus.modalities) or "none"
        raise ConfigError(
            f"corpus {dataset} at {corpus.root} has no {names} files",
            fix=f"run with --modalities {have}, or point --root at a copy of the corpus that has its media")


def load_features(corpus: Corpus, requests: dict, reporter: Reporter, on_bad_media: str
                  ) -> tuple[dict[str, FeatureTable], dict[str, str], int, dict[str, dict]]:
    """Tables per modality, their names (``extractor[options]@version``), the number of bad media
    files, and per modality the extractor's full settings and cache key (for the result's provenance:
    e.g. the hash of the LipSync weights that chose the face track)."""
    tables, names, n_bad, settings = {}, {}, 0, {}
    unreadable: list[tuple[list[dict], str]] = []
    for m, req in requests.items():
        extractor = make_extractor(req, only_requested_level=True)
        if extractor.modality != m:
            raise ConfigError(f"extractor {req.extractor} gives {MODALITY_NAMES[extractor.modality]} features, "
                              f"but the config uses it for {MODALITY_NAMES[m]}")
        reporter.stage(f"features: {req.extractor} ({MODALITY_NAMES[m]})")
        pack_report = None
        if getattr(extractor, "is_pack", False):  # features from files: match ids, check, report first
            from .features.packs.check import check_pack

            pack_report = check_pack(extractor, corpus, on_bad_media, reporter)

        def extract(n=req.extractor):
            return extract_corpus(corpus, extractor, warn=reporter.warn, workers=default_workers(extractor),
                                  progress=lambda d, t: reporter.progress(f"extract {n}", d, t))

        entry = extract()
        bad = bad_media(entry)
        if bad:
            listing = "; ".join(f"{b['path'] or b['uid']}: {b['reason']}" for b in bad[:5])
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            if on_bad_media == "error":
                # Every requested extractor runs first, so that one message lists all bad files of all kinds.
                unreadable.append((bad, f"{len(bad)} for {req.extractor}: {listing}{more}"))
                continue
            reporter.warn(f"{req.extractor}: {len(bad)} unreadable media file(s) zero-filled: {listing}{more}")
            n_bad += len(bad)
        try:
            tables[m] = load_table(entry, frames=req.level == "frames")
        except DamagedFileError as e:  # damaged inside (a CRC error): extract that part again
            reporter.warn(f"feature cache {e.message}; it is extracted again")
            Path(e.path).unlink(missing_ok=True)
            (entry / "meta.json").unlink(missing_ok=True)
            entry = extract()
            tables[m] = load_table(entry, frames=req.level == "frames")
        names[m] = f"{req.label()}@v{extractor.version}"
        settings[m] = {"cache_key": Path(entry).name, "corpus": Path(entry).parent.parent.name,
                       "settings": json.loads(json.dumps(extractor.settings(), sort_keys=True, default=str))}
        if bad:
            settings[m]["bad_media"] = len(bad)
        notes = media_notes(entry)
        if notes.get("no_face"):
            # Not unreadable, but not what the features claim either: whole frames stood in for a face.
            settings[m]["no_face"] = len(notes["no_face"])
            reporter.warn(f"{req.extractor}: no face found in {len(notes['no_face'])} of {len(corpus)} utterances "
                          f"(whole frames used), e.g. {', '.join(notes['no_face'][:3])}")
        if pack_report is not None:
            settings[m]["pack"] = json.loads(json.dumps(pack_report, default=str))
    if unreadable:
        first = unreadable[0][0][0]
        raise MediaError(first["path"] or first["uid"],
                         f"{sum(len(b) for b, _ in unreadable)} unreadable media file(s): "
                         + "; ".join(text for _, text in unreadable),
                         fix="replace or remove these files, or run with --on-bad-media zero to use zero "
                             "features for them (the good files are cached already)")
    return tables, names, n_bad, settings


def _cache_keys(feature_settings: dict[str, dict]) -> dict[str, str]:
    return {m: s["cache_key"] for m, s in sorted(feature_settings.items())}


def features_key(feature_settings: dict[str, dict]) -> str:
    """Short hash of the feature caches a run reads: extractor version and settings (the cache key)
    and the corpus content they were extracted from (name and fingerprint)."""
    blob = json.dumps({m: [s["cache_key"], s.get("corpus", "")] for m, s in sorted(feature_settings.items())},
                      sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def result_target(results_dir: Path, stub: RunResult) -> Path:
    """The result file of this run: the usual name, unless that file holds the same run on another split
    manifest (a relabelled corpus of the same name), then a name with the manifest hash in it."""
    base = result_path(results_dir, stub)
    try:
        other = json.loads(base.read_text()).get("manifest_hash")
    except (OSError, ValueError, AttributeError):
        return base  # none yet, or unreadable (replaced by this run)
    return base if other in (None, stub.manifest_hash) else alternate_result_path(base, stub.manifest_hash)


def result_differences(path: Path, want: RunResult) -> list[str] | None:
    """What differs between the existing result ``path`` and the run ``want`` would make: config, seed,
    split manifest, feature caches, corpus content. [] when nothing does; None when ``path`` cannot be read."""
    try:
        have = json.loads(path.read_text())
        if not isinstance(have, dict):
            return None
        differs = []
        if have.get("config_hash") != want.config_hash:
            differs.append(f"config hash {str(have.get('config_hash'))[:12]}, now {want.config_hash[:12]}")
        if have.get("seed") != want.seed:
            differs.append(f"seed {have.get('seed')}, now {want.seed}")
        if have.get("manifest_hash") != want.manifest_hash:
            differs.append(f"split manifest {str(have.get('manifest_hash'))[:12]}, now {want.manifest_hash[:12]}")
        fs = have.get("feature_settings") or {}
        if fs:  # older files do not say which features they were made from
            had, now = _cache_keys(fs), _cache_keys(want.feature_settings)
            if had != now:
                differs.append(f"other features: feature caches {had}, now {now}")
            had_c = {m: s.get("corpus", "") for m, s in sorted(fs.items())}
            now_c = {m: s.get("corpus", "") for m, s in sorted(want.feature_settings.items())}
            if had == now and had_c != now_c:
                differs.append(f"features from another corpus content {had_c}, now {now_c}")
        if have.get("corpus_fingerprint") and have["corpus_fingerprint"] != want.corpus_fingerprint:
            differs.append(f"corpus fingerprint {have['corpus_fingerprint']}, now {want.corpus_fingerprint}")
        return differs
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def feature_dims(requests: dict, dataset: str | None = None) -> dict[str, int]:
    """modality -> input size of each requested feature, without extracting anything (``dataset``:
    the corpus, for extractors that read per-corpus files, e.g. a feature pack whose path names it)."""
    dims = {}
    for m, r in requests.items():
        extractor = make_extractor(r)
        if dataset and hasattr(extractor, "bind"):
            extractor.bind(dataset)
        dims[m] = extractor.output_dim(r.level)
    return dims


def split_data(name: str, uids: Sequence[str], corpus: Corpus, tables: dict[str, FeatureTable],
               splits: ProtocolSplits, with_labels: bool) -> SplitData:
    utts = corpus.select(uids)
    if not with_labels:
        utts = [u.without_labels() for u in utts]
    return SplitData(
        name=name, utterances=utts, features={m: t.subset(uids) for m, t in tables.items()},
        label_names=splits.protocol.label_names,
        labels=np.array([splits.labels[u] for u in uids], dtype=np.int64) if with_labels else None,
    )


def _predictions_csv(rows: list[tuple], label_names: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["uid", "fold", "gold", "pred", *[f"p_{n}" for n in label_names]])
    for uid, fold, gold, probs in rows:
        w.writerow([uid, fold, label_names[gold], label_names[int(np.argmax(probs))], *[f"{p:.5f}" for p in probs]])
    return buf.getvalue()


def _set_aside(path: Path, reason: str, reporter: Reporter) -> None:
    """Move a damaged run file out of the way (kept for a look, never read again) and say so."""
    aside = path.with_name(path.name + ".damaged")
    path.replace(aside)
    reporter.warn(f"{path}: {reason}; moved to {aside.name}, the fold restarts from the beginning")


def _finished_fold(done_file: Path, n_test: int, n_classes: int, reporter: Reporter):
    """(fold result, test probabilities, parameters) of a finished fold, or None when there is none
    or its file is damaged (then it is set aside and the fold is trained again)."""
    if not done_file.exists():
        return None
    try:
        saved = json.loads(done_file.read_text())
        fr = FoldResult.model_validate(saved["fold"])
        probs = np.array(saved["probs"], dtype=np.float32)
        if probs.shape != (n_test, n_classes):
            raise ValueError(f"predictions of shape {probs.shape}, expected ({n_test}, {n_classes})")
        return fr, probs, saved.get("parameters")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        _set_aside(done_file, f"damaged finished-fold file ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                   reporter)
        return None


def _check_checkpoints(workdir: Path, reporter: Reporter) -> None:
    """A checkpoint (the fold's, or a training stage's below it) that does not load as plain weights (cut
    short, or a planted pickle that would run code) is set aside before the trainer sees it; nothing in
    it runs."""
    from .weights import load_weights

    for ckpt in sorted(workdir.rglob("checkpoint.pt")) if workdir.is_dir() else []:
        try:
            content = load_weights(ckpt)
            if not isinstance(content, dict) or "model" not in content:
                raise DamagedFileError(ckpt, "not a merbench checkpoint (no model weights)")
        except DamagedFileError as e:
            _set_aside(ckpt, e.reason, reporter)


def run_fold(method_cls, config: dict, mods, seed: int, device: str, workdir: Path, fold: Fold,
             corpus: Corpus, tables, splits: ProtocolSplits, reporter: Reporter, label: str,
             model_info: dict | None = None):
    """Fit on train (selecting on valid), then predict the label-free test split. With ``model_info``
    the selected model is kept in ``workdir/model`` (see :mod:`merbench.model_store`)."""
    done_file = workdir / "fold.json"
    finished = _finished_fold(done_file, len(fold.test), len(splits.protocol.label_names), reporter)
    if finished is not None:  # finished before an interruption
        reporter.stage(f"{label}: reusing finished fold")
        return finished
    _check_checkpoints(workdir, reporter)
    train = split_data("train", fold.train, corpus, tables, splits, True)
    valid = split_data("valid", fold.valid, corpus, tables, splits, True)
    method: Method = method_cls(config, mods, splits.protocol.label_names, seed=seed, device=device, workdir=workdir)
    report = method.fit(train, valid, on_epoch=lambda e, t, row: reporter.epoch(label, e, t, row))
    # Only now does the method see the test split, without labels or annotations.
    test = split_data("test", fold.test, corpus, tables, splits, False)
    probs = np.asarray(method.predict(test), dtype=np.float32)
    if probs.shape != (len(test), len(splits.protocol.label_names)):
        raise MerbenchError(f"method {method_cls.name}: predict returned shape {probs.shape}, expected "
                            f"({len(test)}, {len(splits.protocol.label_names)})")
    gold = [splits.labels[u] for u in fold.test]
    metrics = classification_metrics(gold, probs.argmax(1), splits.protocol.label_names, splits.protocol.metrics)
    fr = FoldResult(name=fold.name, n_train=len(train), n_valid=len(valid), n_test=len(test),
                    epochs_run=report.epochs_run, best_epoch=report.best_epoch,
                    best_valid_score=report.best_valid_score, test=metrics, history=report.history)
    params = method.num_parameters()
    model_sha256 = None  # what a later reuse of this fold checks a copy of its model against
    if model_info is not None:
        from .model_store import save_fold_model

        model_sha256 = save_fold_model(method, workdir / "model", {
            **model_info, "fold": fold.name, "parameters": params, "best_epoch": report.best_epoch,
            "select_metric": report.select_metric, "best_valid_score": report.best_valid_score})
        if model_sha256 is None:
            reporter.warn(f"method {method_cls.name} cannot keep its model; no model is kept for this run")
    atomic_write_json(done_file, {"fold": fr.model_dump(), "probs": probs.round(6).tolist(), "parameters": params,
                                  "select_metric": report.select_metric, "model_sha256": model_sha256})
    ckpt = workdir / "checkpoint.pt"
    if ckpt.exists():
        ckpt.unlink()  # the fold is finished; its scores and predictions are kept in fold.json
    return fr, probs, params


def run(req: RunRequest, reporter: Reporter | None = None) -> list[Path]:
    reporter = reporter or Reporter()
    method_cls, adapter_cls, protocol, mods, config = resolve(req)
    requests = method_cls.feature_requests(config, mods)
    for r in requests.values():
        check_options(r)  # unknown extractor names and options fail before the corpus is read
    check_writable_dir(req.results_dir, "results", "--results-dir")  # before hours of training, not after
    reporter.stage(f"corpus: {adapter_cls.name}")
    corpus = adapter_cls(req.root).load()
    if not req.modalities:
        # No modalities asked for: use what the method supports and this copy of the corpus has.
        mods = tuple(m for m in mods if m in corpus.modalities) or mods
        requests = method_cls.feature_requests(config, mods)
    _check_modalities(corpus, requests, adapter_cls.name)  # only what the method reads
    splits = protocol.build(corpus)
    reporter.stage(f"protocol: {protocol.name} v{protocol.version}, folds: {len(splits.folds)}, "
                   f"manifest {splits.manifest_hash[:12]}")
    tables, feature_names, n_bad, feature_settings = load_features(corpus, requests, reporter, req.on_bad_media)
    seeds = req.seeds if req.seeds is not None else list(range(protocol.default_seeds))
    chash = config_hash(config)
    mkey = modality_key(mods)
    fkey = features_key(feature_settings)
    fingerprint = corpus_fingerprint(corpus)
    written = []
    for seed in seeds:
        # The program's name, not its path: a path names one machine's layout, not the command.
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else []
        prov = collect(req.device, command=" ".join(shlex.quote(a) for a in argv))
        stub = RunResult(method=method_cls.name, variant=req.variant, dataset=adapter_cls.name, protocol=protocol.name,
                         protocol_version=protocol.version, manifest_hash=splits.manifest_hash, label_names=[],
                         modalities=mkey, seed=seed, config=config, config_hash=chash, folds=[],
                         test=Metrics(accuracy=0, ua=0, weighted_f1=0, macro_f1=0))
        out = result_target(req.results_dir, stub)
        if out.exists() and not req.force:
            differs = result_differences(out, stub.model_copy(update=dict(
                feature_settings=feature_settings, corpus_fingerprint=fingerprint)))
            if differs is None:
                reporter.warn(f"seed {seed}: {out} cannot be read; it is replaced by this run")
            elif not differs:
                reporter.stage(f"seed {seed}: result exists (same config, seed, split manifest, features and "
                               f"corpus), skipped ({out})")
                written.append(out)
                continue
            else:
                # Same config and splits, other inputs (e.g. a new extractor version or an edited corpus):
                # not the run asked for, and not shown as its result.
                reporter.warn(f"seed {seed}: {out} was made from other inputs ({'; '.join(differs)}); kept as "
                              f"is and not reported as this run's result. Re-run with --force to replace it.")
                continue
        fold_results, all_probs, gold_all, pred_rows, params = [], [], [], [], None
        seed_dir = home() / "runs" / adapter_cls.name / protocol.name / method_cls.name / stub.run_key()
        if req.force and seed_dir.exists():
            shutil.rmtree(seed_dir)  # --force re-trains: no finished fold or checkpoint is reused
        # Keyed like the fold folders: only pieces that share their checkpoints add up.
        clock = PieceClock(seed_dir / f"pieces-{splits.manifest_hash[:12]}-{fkey}.json")
        timed = _Timed(reporter, clock)
        model_info = _model_info(stub, method_cls, requests, feature_names, feature_settings, fingerprint, protocol,
                                 prov) if req.keep_model else None
        fold_models: list[tuple[str, Path]] = []
        for k, fold in enumerate(splits.folds):
            label = f"seed {seed}" + (f" fold {k + 1}/{len(splits.folds)}" if len(splits.folds) > 1 else "")
            # Keyed by split manifest and features too: a finished fold or checkpoint is reused only
            # by the same config, seed, splits and feature caches.
            workdir = seed_dir / f"{splits.manifest_hash[:12]}-{fkey}-{_safe(fold.name)}"
            fr, probs, params = run_fold(method_cls, config, mods, seed, req.device, workdir, fold, corpus, tables,
                                         splits, timed, label, model_info=model_info)
            if model_info is not None:
                _model_of_reused_fold(workdir, fold.name, model_info)
            fold_models.append((fold.name, workdir / "model"))
            clock.tick()
            fold_results.append(fr)
            gold = [splits.labels[u] for u in fold.test]
            gold_all += gold
            all_probs.append(probs)
            pred_rows += [(u, fold.name, g, p) for u, g, p in zip(fold.test, gold, probs)]
        preds = np.concatenate(all_probs).argmax(1)
        combined = combine_folds([f.test for f in fold_results], gold_all, preds, protocol.label_names,
                                 protocol.metrics)
        clock.tick()
        prov.wall_time_s, prov.pieces = clock.total, list(clock.pieces)
        result = stub.model_copy(update=dict(
            label_names=list(protocol.label_names), as_published=protocol.as_published, features=feature_names,
            feature_settings=feature_settings,
            headline_metric=protocol.headline_metric, select_metric=config.get("train", {}).get("select_metric", ""),
            fold_combination=protocol.fold_combination if len(fold_results) > 1 else "single split",
            folds=fold_results, test=combined, parameters=params, bad_media=n_bad, corpus_fingerprint=fingerprint,
            bad_media_by_kind={**{MODALITY_NAMES[m]: s["bad_media"] for m, s in feature_settings.items()
                                  if s.get("bad_media")},
                               **{f"{MODALITY_NAMES[m]}_no_face": s["no_face"] for m, s in feature_settings.items()
                                  if s.get("no_face")}},
            provenance=prov))
        # Side files first, the result JSON last: a result file means a complete run.
        atomic_write_text(out.with_suffix(".predictions.csv"), _predictions_csv(pred_rows, protocol.label_names))
        _plots(result, out, reporter)
        result.model = _keep_model(out, fold_models, req.keep_model, reporter)
        write_result(req.results_dir, result, out)
        if result.model:
            from .model_store import model_folder_of

            _note_where_models_went(fold_models, model_folder_of(out), reporter)
        for _, folder in fold_models:  # now beside the result; the run folder's copy is not needed
            shutil.rmtree(folder, ignore_errors=True)
        reporter.stage(f"seed {seed}: {protocol.headline_metric} {getattr(combined, protocol.headline_metric) * 100:.2f} -> {out}")
        written.append(out)
    return written


def _model_info(stub: RunResult, method_cls, requests: dict, feature_names: dict, feature_settings: dict,
                fingerprint: str, protocol, prov) -> dict:
    """What a kept model records besides its weights: enough to extract the same features and
    rebuild the model without the run (see :mod:`merbench.model_store`)."""
    features = {}
    for m, r in requests.items():
        s = feature_settings.get(m, {})
        features[m] = {"extractor": r.extractor, "level": r.level, "options": dict(r.options),
                       "version": feature_names[m].rsplit("@v", 1)[1], "settings": s.get("settings", {}),
                       "cache_key": s.get("cache_key", "")}
    return {"method": stub.method, "variant": stub.variant, "unit": method_cls.unit,
            "modalities": list(stub.modalities), "label_names": list(protocol.label_names),
            "config": stub.config, "config_hash": stub.config_hash, "seed": stub.seed, "features": features,
            "dataset": stub.dataset, "protocol": stub.protocol, "protocol_version": stub.protocol_version,
            "manifest_hash": stub.manifest_hash, "corpus_fingerprint": fingerprint,
            "made_by": {"merbench_version": prov.merbench_version, "git_commit": prov.git_commit,
                        "packages": {k: v for k, v in prov.packages.items() if k in ("torch", "transformers")}}}


_MAX_MODEL_COPIES = 8  # locations remembered per fold


def _note_where_models_went(fold_models: list[tuple[str, Path]], target: Path, reporter: Reporter) -> None:
    """Each finished fold's file lists where copies of its kept model went (beside each result that
    kept it), so that a later run reusing the fold (e.g. the same run into another results folder)
    keeps that model too instead of none. Bookkeeping only: a failure to write it is a warning."""
    from .model_store import fold_dirname

    for name, folder in fold_models:
        done_file = folder.parent / "fold.json"
        try:
            saved = json.loads(done_file.read_text())
            if not saved.get("model_sha256"):
                continue
            where = str((target / fold_dirname(name)).resolve())
            known = [p for p in saved.get("model_kept_at") or [] if isinstance(p, str) and p != where]
            saved["model_kept_at"] = [where, *known][:_MAX_MODEL_COPIES]
            atomic_write_json(done_file, saved)
        except (OSError, ValueError, TypeError, AttributeError) as e:
            reporter.warn(f"{done_file}: could not note where its model was kept ({type(e).__name__}); a later "
                          "run reusing this fold will keep no model")


def _model_of_reused_fold(workdir: Path, fold: str, model_info: dict) -> None:
    """A reused finished fold has no ``model`` folder of its own (it was moved beside the result that
    kept it): copy it back from one of the places its fold file lists. A copy is taken only if it is
    this fold's model: plain files (no links), weights whose SHA-256 is the one the fold recorded when it
    trained (checked again after copying, against a folder replaced meanwhile), and a description of
    the same fold, config, seed and splits. Otherwise no model is kept, as before."""
    from .download import sha256_file
    from .model_store import INFO, WEIGHTS, read_info

    if (workdir / "model").is_dir():
        return
    try:
        saved = json.loads((workdir / "fold.json").read_text())
        want = saved.get("model_sha256")
        places = [Path(p) for p in saved.get("model_kept_at") or [] if isinstance(p, str)]
    except (OSError, ValueError, TypeError, AttributeError):
        return
    if not isinstance(want, str) or not want:
        return
    same = ("config_hash", "seed", "manifest_hash", "method", "variant")
    for src in places:
        files = [src / INFO, src / WEIGHTS]
        if not src.is_absolute() or src.is_symlink() or any(f.is_symlink() or not f.is_file() for f in files):
            continue
        tmp = workdir / f".model.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            info = read_info(src)
            if (info.get("weights", {}).get("sha256") != want or info.get("fold") != fold
                    or any(info.get(k) != model_info.get(k) for k in same)):
                continue
            tmp.mkdir(parents=True)
            for f in files:
                shutil.copyfile(f, tmp / f.name, follow_symlinks=False)
            if sha256_file(tmp / WEIGHTS) != want or read_info(tmp).get("weights", {}).get("sha256") != want:
                continue
            os.replace(tmp, workdir / "model")
            return
        except (OSError, MerbenchError):  # gone or replaced meanwhile: try the next place
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _keep_model(out: Path, fold_models: list[tuple[str, Path]], keep: bool, reporter: Reporter) -> dict:
    """Move each fold's kept model beside the result as ``<stem>.model/fold-<name>/``; the result's
    ``model`` entry. A stale model folder of an earlier result of this name is removed."""
    from .model_store import collect_model, model_folder_of

    target = model_folder_of(out)
    if keep and fold_models and all(f.is_dir() for _, f in fold_models):
        hashes = collect_model(target, fold_models)
        return {"folder": target.name, "weights_sha256": hashes}
    if keep and fold_models:
        missing = [name for name, f in fold_models if not f.is_dir()]
        reporter.warn(f"no model kept for {out.name}: fold(s) {', '.join(missing)} finished without one (before "
                      "models were kept, the method cannot keep one, or no copy of it is left "
                      "beside an earlier result); --force retrains and keeps it")
    shutil.rmtree(target, ignore_errors=True)
    return {}


def _plots(result: RunResult, out: Path, reporter: Reporter) -> None:
    try:
        from .run_plots import classification_report_text, save_confusion_png, save_curves_png, save_per_class_png
    except ImportError as e:  # plotting is a convenience; a run must not fail on it
        reporter.warn(f"plots skipped: {e}")
        return
    title = f"{result.method} on {result.dataset}/{result.protocol} ({result.modalities}, seed {result.seed})"
    save_confusion_png(result.test.confusion, result.label_names, out.with_suffix(".confusion.png"), title=title)
    atomic_write_text(out.with_suffix(".report.txt"), classification_report_text(
        result.test.per_class, result.label_names, result.test.accuracy, result.test.ua, title=title))
    save_per_class_png(result.test.per_class, result.label_names, out.with_suffix(".per_class.png"), title=title)
    history = [dict(h, fold=i) for i, f in enumerate(result.folds) for h in f.history] if len(result.folds) > 1 \
        else (result.folds[0].history if result.folds else [])
    save_curves_png(history, out.with_suffix(".curves.png"), title=title)
