"""Using a kept model: ``merbench.load_model(folder).predict(inputs)`` and ``bench predict``.

Inputs are clips (wav / mp4 / ... with a transcript from ``text=`` or a sidecar ``.txt``), folders
of clips, or a corpus (a registered name or a ``.yaml`` descriptor) with a split. Features are
extracted by the engine's own path (:func:`merbench.runner.load_features`, the feature cache,
label-free utterances), with exactly the extractor version and settings the model was trained
with; a model whose extractor is unknown here, or whose version or settings changed, is refused.
Dialogue-level methods get the clips in the given order as one dialogue.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .corpus import MODALITY_NAMES, Corpus, Utterance
from .errors import ConfigError, MerbenchError
from .interfaces import FeatureRequest, FeatureTable, SplitData
from .model_store import fold_folders, read_info, read_weights

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
ON_MISSING = ("error", "zero")


class _Quiet:
    """A runner reporter that keeps warnings (the CLI prints them) and drops progress."""

    def __init__(self):
        self.warnings: list[str] = []

    def stage(self, message: str) -> None:
        pass

    def progress(self, task: str, done: int, total: int) -> None:
        pass

    def epoch(self, label, epoch, total, row) -> None:
        pass

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@dataclass
class Predictions:
    """Per utterance: id, source files, predicted label and class probabilities; ``missing`` lists the
    modalities given as zero features (``on_missing="zero"``)."""

    label_names: list[str]
    uids: list[str]
    probs: np.ndarray
    sources: list[str] = field(default_factory=list)
    folds: list[str] = field(default_factory=list)
    missing: list[list[str]] = field(default_factory=list)
    model: str = ""
    on_missing: str = "error"

    @property
    def labels(self) -> list[str]:
        return [self.label_names[i] for i in self.probs.argmax(1)]

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["uid", "fold", "pred", *[f"p_{n}" for n in self.label_names], "missing", "source"])
        for i, uid in enumerate(self.uids):
            w.writerow([uid, self.folds[i], self.labels[i], *[f"{p:.5f}" for p in self.probs[i]],
                        ",".join(self.missing[i]), self.sources[i]])
        return buf.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "label_names": self.label_names, "on_missing": self.on_missing,
                "predictions": [{"uid": u, "fold": self.folds[i], "pred": self.labels[i],
                                 "probs": {n: round(float(p), 6) for n, p in zip(self.label_names, self.probs[i])},
                                 "missing": self.missing[i], "source": self.sources[i]}
                                for i, u in enumerate(self.uids)]}


class FoldModel:
    """One fold's kept model: its description (``info``) and the method with its weights loaded."""

    def __init__(self, folder: Path, device: str = "cpu"):
        from .features.factory import check_options, make_extractor
        from .registry import get_method, load_builtins

        self.folder = Path(folder)
        self.info = info = read_info(self.folder)
        load_builtins()
        self.requests: dict[str, FeatureRequest] = {}
        for m, f in (info.get("features") or {}).items():
            req = FeatureRequest(f["extractor"], f.get("level", "pooled"), dict(f.get("options") or {}))
            try:
                check_options(req)
                extractor = make_extractor(req, only_requested_level=True)  # as the run built it
            except MerbenchError as e:
                raise ConfigError(f"model {self.folder}: its {MODALITY_NAMES.get(m, m)} features come from extractor "
                                  f"{f['extractor']!r}, which is not available here ({e.message})",
                                  fix="install the merbench version or plugin that has it "
                                      f"(the model was made by {info.get('made_by', {}).get('merbench_version', '?')})") from None
            if str(extractor.version) != str(f.get("version")):
                raise ConfigError(f"model {self.folder}: extractor {f['extractor']} is version {extractor.version} here, "
                                  f"the model was trained on version {f.get('version')} features",
                                  fix="use the merbench version the model was made with, or train the model again")
            here = json.loads(json.dumps(extractor.settings(), sort_keys=True, default=str))
            if f.get("settings") and here != f["settings"]:
                differ = sorted(k for k in set(here) | set(f["settings"]) if here.get(k) != f["settings"].get(k))
                raise ConfigError(f"model {self.folder}: extractor {f['extractor']} has other settings here than "
                                  f"when the model was trained (differ: {', '.join(differ)})",
                                  fix="restore the extractor's files and options the model was trained with, or train again")
            self.requests[m] = req
        tensors = read_weights(self.folder, info)
        method_cls = get_method(info["method"])
        self.method = method_cls(info["config"], tuple(info["modalities"]), tuple(info["label_names"]),
                                 seed=int(info.get("seed", 0)), device=device, workdir=None)
        self.method.load_model_state(tensors, info.get("state") or {})

    @property
    def fold(self) -> str:
        return str(self.info.get("fold", ""))


class TrainedModel:
    """A run's kept model (one per fold). :meth:`predict` labels clips, folders of clips or a corpus split."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        self.path = Path(path)
        self.folds = [FoldModel(f, device) for f in fold_folders(self.path)]
        self.info = self.folds[0].info
        self.label_names = list(self.info["label_names"])

    @property
    def method(self) -> str:
        return self.info["method"]

    def _fold(self, fold: str | None) -> FoldModel:
        if fold is None and len(self.folds) == 1:
            return self.folds[0]
        names = [f.fold for f in self.folds]
        if fold is None:
            raise MerbenchError(f"model {self.path} has one model per fold ({', '.join(names)})",
                                fix="choose one with --fold NAME (python: fold=NAME)")
        for f in self.folds:
            if f.fold == fold:
                return f
        raise MerbenchError(f"model {self.path} has no fold {fold!r}", fix=f"its folds: {', '.join(names)}")

    def predict(self, inputs: str | Path | Sequence[str | Path], *, text: Sequence[str] | str | None = None,
                speakers: Sequence[str] | None = None, split: str | None = None, root: str | Path | None = None,
                on_missing: str = "error", fold: str | None = None) -> Predictions:
        """Class probabilities for ``inputs``: media files and folders of them (one dialogue, in the order
        given; ``text`` per clip or a sidecar ``<stem>.txt``; ``speakers`` per clip), or one corpus name or
        descriptor with ``split`` (``train``, ``valid``, ``test``; each fold's model predicts its own
        fold's split)."""
        if on_missing not in ON_MISSING:
            raise ConfigError(f"on_missing {on_missing!r}", fix="use error or zero")
        items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if len(items) == 1 and _is_corpus(items[0]):
            return self._predict_corpus(str(items[0]), split or "test", root, on_missing, fold)
        if split is not None:
            raise ConfigError("--split applies to a corpus name or descriptor, not to media files",
                              fix="drop --split, or give a corpus name (bench list datasets) or a .yaml descriptor")
        utts = clips_to_utterances([Path(p) for p in items], [text] if isinstance(text, str) else text, speakers)
        m = self._fold(fold)
        packed = [r.extractor for r in m.requests.values() if _is_pack(r)]
        if packed:
            raise ConfigError(f"model {self.path} reads features from a feature pack ({', '.join(packed)}): features "
                              "computed elsewhere for one corpus, so new clips cannot be given them here",
                              fix="predict on the corpus the pack belongs to (a corpus name with --split), or train "
                                  "the model on an extractor merbench runs")
        corpus = Corpus("clips", utts, root=_common_root(utts), modalities=tuple(self.info["modalities"]))
        probs, missing = self._run(m, corpus, [u.uid for u in utts], on_missing)
        return Predictions(self.label_names, [u.uid for u in utts], probs,
                           sources=[";".join(dict.fromkeys(p for p in (u.audio_path, u.video_path) if p)) for u in utts],
                           folds=[m.fold] * len(utts), missing=missing, model=str(self.path), on_missing=on_missing)

    def _predict_corpus(self, name: str, split: str, root, on_missing: str, fold: str | None) -> Predictions:
        from .registry import resolve_dataset

        adapter_cls = resolve_dataset(name)
        names = {p.name for p in adapter_cls.protocols()}
        protocol = adapter_cls.protocol(self.info["protocol"] if self.info["protocol"] in names else None)
        corpus = adapter_cls(root).load()
        splits = protocol.build(corpus)
        if split not in ("train", "valid", "test"):
            raise ConfigError(f"--split {split!r}", fix="use train, valid or test")
        folds = [self._fold(fold)] if fold is not None or len(self.folds) == 1 else self.folds
        by_name = {f.name: f for f in splits.folds}
        out_uids, out_probs, out_missing, out_folds = [], [], [], []
        for m in folds:
            pf = by_name.get(m.fold) if len(splits.folds) > 1 else splits.folds[0]
            if pf is None:
                raise MerbenchError(f"protocol {protocol.name} of {name} has no fold {m.fold!r}",
                                    fix=f"its folds: {', '.join(by_name)}")
            uids = list(getattr(pf, split))
            probs, missing = self._run(m, corpus, uids, on_missing, clips=False)
            out_uids += uids
            out_probs.append(probs)
            out_missing += missing
            out_folds += [m.fold] * len(uids)
        return Predictions(self.label_names, out_uids, np.concatenate(out_probs),
                           sources=[f"{name}:{split}"] * len(out_uids), folds=out_folds, missing=out_missing,
                           model=str(self.path), on_missing=on_missing)

    def _run(self, m: FoldModel, corpus: Corpus, uids: list[str], on_missing: str,
             clips: bool = True) -> tuple[np.ndarray, list[list[str]]]:
        tables, missing = feature_tables(m, corpus, on_missing, clips)
        utts = [u.without_labels() for u in corpus.select(uids)]  # the model never sees a label
        split = SplitData(name="predict", utterances=utts, features={k: t.subset(uids) for k, t in tables.items()},
                          label_names=tuple(self.label_names), labels=None)
        probs = np.asarray(m.method.predict(split), dtype=np.float32)
        index = {u.uid: i for i, u in enumerate(corpus.utterances)}
        return probs, [missing[index[u]] for u in uids]


def load_model(path: str | Path, device: str = "cpu") -> TrainedModel:
    """The kept model of a result file, a ``<stem>.model`` folder, one fold's folder, or an exported folder."""
    return TrainedModel(path, device)


# -- inputs ---------------------------------------------------------------------------------------


def _is_pack(req: FeatureRequest) -> bool:
    from .features.factory import check_options

    return bool(getattr(check_options(req), "is_pack", False))


def _is_corpus(item) -> bool:
    p = Path(item)
    if p.suffix in (".yaml", ".yml"):
        return True
    if p.exists():
        return False
    from .registry import DATASETS, load_builtins

    load_builtins()
    return str(item) in DATASETS


def _common_root(utts: list[Utterance]) -> Path | None:
    import os

    paths = [p for u in utts for p in (u.audio_path, u.video_path) if p]
    return Path(os.path.commonpath([str(Path(p).parent) for p in paths])) if paths else None


def clips_to_utterances(items: list[Path], texts: Sequence[str] | None, speakers: Sequence[str] | None
                        ) -> list[Utterance]:
    """One utterance per clip (files with the same stem in the same folder are one clip: ``x.wav`` +
    ``x.mp4`` + ``x.txt``), in the order given (a folder: its clips sorted by name), all in one dialogue."""
    files: list[Path] = []
    for p in items:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES + VIDEO_SUFFIXES + (".txt",))
        elif p.exists():
            files.append(p)
        else:
            raise MerbenchError(f"input {p} does not exist", fix="give media files, folders of clips, or a corpus name")
    clips: dict[Path, dict[str, Path]] = {}
    for f in files:
        kind = "a" if f.suffix.lower() in AUDIO_SUFFIXES else "v" if f.suffix.lower() in VIDEO_SUFFIXES else \
            "t" if f.suffix.lower() == ".txt" else None
        if kind is None:
            raise MerbenchError(f"input {f}: not a media file this reads ({f.suffix or 'no suffix'})",
                                fix=f"give audio ({', '.join(AUDIO_SUFFIXES)}), video ({', '.join(VIDEO_SUFFIXES)}) "
                                    "or .txt transcripts")
        clips.setdefault(f.with_suffix(""), {})[kind] = f.resolve()
    keys = list(clips)
    if not keys:
        raise MerbenchError(f"no clips in {', '.join(map(str, items))}", fix="give wav / mp4 files or a folder of them")
    if texts is not None and len(texts) != len(keys):
        raise MerbenchError(f"{len(texts)} --text value(s) for {len(keys)} clip(s) ({', '.join(k.name for k in keys)})",
                            fix="give one --text per clip, in the same order, or sidecar .txt files")
    if speakers is not None and len(speakers) != len(keys):
        raise MerbenchError(f"{len(speakers)} speaker(s) for {len(keys)} clip(s)", fix="give one speaker per clip")
    utts, seen = [], set()
    for i, key in enumerate(keys):
        c = clips[key]
        sidecar = Path(f"{key}.txt")
        if "t" not in c and sidecar.is_file():
            c["t"] = sidecar
        text = texts[i] if texts is not None else (c["t"].read_text(encoding="utf-8").strip() if "t" in c else "")
        uid = key.name if key.name not in seen else f"{key.name}-{i}"
        seen.add(uid)
        video = str(c["v"]) if "v" in c else None
        utts.append(Utterance(uid, "input", i, speakers[i] if speakers is not None else "speaker",
                              text=text, audio_path=str(c["a"]) if "a" in c else None, video_path=video))
    return utts


def _has(u: Utterance, m: str) -> bool:
    if m == "t":
        return bool((u.text or "").strip())
    if m == "a":
        return bool(u.audio_path or (u.video_path and _video_has_audio(u.video_path)))
    return bool(u.video_path)


def _video_has_audio(path: str) -> bool:
    try:
        import av

        with av.open(path) as c:
            return bool(c.streams.audio)
    except Exception:  # noqa: BLE001 - unreadable: the extractor names it
        return True


def feature_tables(m: FoldModel, corpus: Corpus, on_missing: str, clips: bool = True
                   ) -> tuple[dict[str, FeatureTable], list[list[str]]]:
    """The model's features of every utterance of ``corpus`` (the engine's extraction and cache), and
    per utterance the modalities it lacks (given as zero features when ``on_missing`` is zero). A
    corpus's texts are taken as they are (an empty transcript is what the run trained on too)."""
    from .runner import load_features

    info = m.info
    needed = [mod for mod in info["modalities"] if clips or mod != "t"]
    missing = [[mod for mod in needed if not _has(u, mod)] for u in corpus.utterances]
    lacking = [(u, miss) for u, miss in zip(corpus.utterances, missing) if miss]
    if lacking and on_missing == "error":
        u, miss = lacking[0]
        raise MerbenchError(f"{u.uid} ({u.audio_path or u.video_path or 'no media'}) has no "
                            f"{', '.join(MODALITY_NAMES[x] for x in miss)}, which model {info['method']} needs"
                            + (f" ({len(lacking)} clips lack a modality)" if len(lacking) > 1 else ""),
                            fix="give it (--text or a sidecar .txt for text, the wav or mp4), or run with "
                                "--on-missing zero to use zero features for it (recorded in the output)")
    reporter = _Quiet()
    tables: dict[str, FeatureTable] = {}
    for mod, req in m.requests.items():
        have = [u for u, miss in zip(corpus.utterances, missing) if mod not in miss]
        sub = corpus if len(have) == len(corpus) else Corpus(corpus.name, have, root=corpus.root,
                                                             modalities=corpus.modalities)
        table = None
        if have:
            # Unreadable media of a corpus follow the same policy as a missing modality.
            got, _, _, settings = load_features(sub, {mod: req}, reporter, on_missing)
            table = got[mod]
            want = info["features"][mod].get("settings")
            if want and settings[mod]["settings"] != want:
                raise ConfigError(f"model {m.folder}: extractor {req.extractor} ran with other settings than the model's",
                                  fix="train the model again with this version")
        tables[mod] = _fill(table, corpus, req, m, mod)
        for i, ok in enumerate(tables[mod].valid):
            if not ok and mod not in missing[i]:
                missing[i].append(mod)  # unreadable: zero features, recorded like a missing modality
    return tables, missing


def _fill(table: FeatureTable | None, corpus: Corpus, req: FeatureRequest, m: FoldModel, mod: str) -> FeatureTable:
    """``table`` over every utterance of ``corpus``: rows it lacks are zeros marked not valid."""
    uids = [u.uid for u in corpus.utterances]
    if table is not None and table.uids == uids:
        return table
    model_dim = int((m.info.get("state") or {}).get("input_dims", {}).get(mod, 0))  # per frame for frames
    if table is not None:
        dim, frame_dim = table.dim, table.frame_dim
    elif req.level == "frames":
        from .features.factory import make_extractor

        dim, frame_dim = make_extractor(req).output_dim("pooled"), model_dim
    else:
        dim, frame_dim = model_dim, None
    index = {u: i for i, u in enumerate(table.uids)} if table is not None else {}
    pooled = np.zeros((len(uids), dim), dtype=np.float32)
    valid = np.zeros(len(uids), dtype=bool)
    frames = [] if req.level == "frames" else None
    for i, u in enumerate(uids):
        j = index.get(u)
        if j is not None:
            pooled[i] = table.pooled[j]
            valid[i] = table.valid[j]
        if frames is not None:
            frames.append(table.frames[j] if j is not None else np.zeros((1, frame_dim), dtype=np.float32))
    return FeatureTable(req.extractor, uids, pooled, frames, valid)
