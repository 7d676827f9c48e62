"""``text-pack``, ``audio-pack``, ``video-pack``: features read from a pack instead of computed.

Options (a feature request's ``options``; all in ``settings()``, so in the cache key, together with
a fingerprint of the pack's content, so an edited pack is read again):

- ``path``: the file or folder; ``~``, ``$VARS``, ``{data}`` (the corpus data root) and ``{dataset}``
  (the corpus name) are expanded.
- ``format``: ``npy-dir``, ``json``, ``dialogue-pickle``, ``mmsa``, ``table``, ``dataframe-pickle``
  (default: from the path).
- ``key``: which field, column, file or subfolder of the pack holds this modality.
- ``ids``: pack keys -> our utterance ids (:mod:`.ids`; default ``auto``): a scheme, a template, or
  a mapping table ``{table: ids.csv, key: ..., uid: ...}`` (its content is fingerprinted too).
- ``extra``: ``error`` (default) or ``ignore``: pack entries for utterances the corpus lacks.
- ``labels``: ``check`` (default) or ``ignore``: compare the pack's labels with the corpus's.
- ``dim``: the feature size the pack must have (also what ``bench info`` reports without the pack).

A ``(T, D)`` entry gives frames ``(T, D)`` and the pooled vector their mean; a ``(D,)`` entry gives
the pooled vector and one frame. A missing or malformed entry (NaN / inf, another size, no frames)
is a :class:`~merbench.errors.MediaError` naming the pack file, so ``--on-bad-media zero`` masks it.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from ...corpus import Utterance
from ...errors import ConfigError, MediaError
from ...interfaces import ExtractedItem, FeatureExtractor
from . import infer_format, read_pack
from .ids import IdMap, map_ids, read_id_table
from .pack import Pack, PackError, fingerprint

FIRST = 5  # ids listed in a report line or an error


def expand_path(path: str, dataset: str | None) -> Path:
    from ...paths import data_root

    text = os.path.expandvars(os.path.expanduser(str(path))).replace("{data}", str(data_root()))
    if "{dataset}" in text:
        if dataset is None:
            raise ConfigError(f"pack path {path!r} names {{dataset}}, but no corpus is known here",
                              fix="give the corpus (e.g. bench info ... --dataset NAME), or write the path out")
        text = text.replace("{dataset}", dataset)
    return Path(text).expanduser()


def first(items: Sequence[str], n: int = FIRST) -> str:
    return ", ".join(map(str, items[:n])) + (f" (and {len(items) - n} more)" if len(items) > n else "")


class PackExtractor(FeatureExtractor):
    version: ClassVar[str] = "1"
    levels: ClassVar[tuple[str, ...]] = ("pooled", "frames")
    batch_size = 512
    is_pack: ClassVar[bool] = True

    def __init__(self, path: str | None = None, format: str | None = None, key: str | int | None = None, ids: str = "auto",
                 extra: str = "error", labels: str = "check", dim: int | None = None):
        if not path:
            raise ConfigError(f"{self.name}: the option path is required",
                              fix=f"e.g. features: {{extractor: {self.name}, options: {{path: ~/packs/meld/audio}}}}")
        if extra not in ("error", "ignore"):
            raise ConfigError(f"{self.name}: extra must be error or ignore, not {extra!r}")
        if labels not in ("check", "ignore"):
            raise ConfigError(f"{self.name}: labels must be check or ignore, not {labels!r}")
        self.path_option = str(path)
        self.format = format
        self.key = key
        self.ids = dict(ids) if isinstance(ids, dict) else str(ids)
        self.extra = extra
        self.labels = labels
        self.dim = int(dim) if dim is not None else None
        self.dataset: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._pack: Pack | None = None
        self._fingerprint: str | None = None
        self._primed: tuple | None = None
        self.idmap: IdMap | None = None
        self._bad: dict[str, tuple[str, str]] = {}  # uid -> (file, reason)

    def __getstate__(self) -> dict:  # worker processes read the pack again instead of receiving it
        state = dict(self.__dict__)
        for k in ("_pack", "_primed", "idmap", "_bad"):
            state[k] = None if k != "_bad" else {}
        return state

    # -- where and what --------------------------------------------------------------------
    def bind(self, dataset: str) -> None:
        """The corpus this extractor reads for (fills ``{dataset}`` in the path)."""
        if dataset != self.dataset:
            self.dataset = dataset
            self._reset()

    @property
    def path(self) -> Path:
        return expand_path(self.path_option, self.dataset)

    @property
    def id_table_path(self) -> Path | None:
        return expand_path(str(self.ids.get("table", "")), self.dataset) if isinstance(self.ids, dict) else None

    def fingerprint(self) -> str:
        """The pack's content (and an ids table's): an edit changes the cache key."""
        if self._fingerprint is None:
            p = self.path
            if not p.exists():
                raise PackError(f"feature pack {p} does not exist",
                                fix="check the option path (~, $VARS, {data} and {dataset} are expanded)")
            self._fingerprint = fingerprint(p)
            table = self.id_table_path
            if table is not None and table.is_file():
                self._fingerprint += "+" + fingerprint(table)
        return self._fingerprint

    def settings(self) -> dict[str, Any]:
        # The path as given (e.g. "{data}/packs/..."), not as expanded on this machine: the content
        # fingerprint identifies the pack, so results and cache keys do not name one machine's layout.
        return {"path": self.path_option, "format": self.format or infer_format(self.path), "key": self.key,
                "ids": self.ids, "extra": self.extra, "labels": self.labels, "dim": self.dim,
                "fingerprint": self.fingerprint()}

    def pack(self) -> Pack:
        if self._pack is None:
            self._pack = read_pack(self.path, self.format, self.key)
        return self._pack

    def pack_dim(self) -> int:
        if self.dim is not None:
            return self.dim
        dims = Counter(int(v.shape[-1]) for v in self.pack().vectors.values())
        if not dims:
            raise PackError(f"{self.pack().source}: the pack has no entries", fix="point path at a pack with features")
        return dims.most_common(1)[0][0]

    def output_dim(self, level: str = "pooled") -> int:
        return self.pack_dim()

    # -- matching against the corpus -------------------------------------------------------------
    def prime(self, utterances: Sequence[Utterance]) -> None:
        """Map pack keys onto these utterances and find malformed entries (once per utterance list)."""
        stamp = tuple(u.uid for u in utterances)
        if self._primed == stamp:
            return
        pack = self.pack()
        if isinstance(self.ids, dict):
            table = read_id_table(self.ids, self.id_table_path)
            idmap = map_ids(pack, utterances, f"table {self.id_table_path}", table)
        else:
            idmap = map_ids(pack, utterances, self.ids)
        dim = self.pack_dim()
        bad = {}
        for k, uid in idmap.to_uid.items():
            v = pack.vectors[k]
            reason = None
            if v.shape[-1] != dim:
                reason = f"entry {k!r} has {v.shape[-1]} dimensions, the pack {dim}"
            elif v.size == 0:
                reason = f"entry {k!r} has no frames"
            elif not np.isfinite(v).all():
                rows = np.flatnonzero(~np.isfinite(v.reshape(-1, v.shape[-1])).all(1))
                reason = f"entry {k!r} has NaN or inf values" + (f" in frame(s) {first(rows.tolist())}" if v.ndim == 2 else "")
            if reason:
                bad[uid] = (pack.file_of(k), reason)
        self.idmap, self._bad, self._primed = idmap, bad, stamp

    def _key_of(self) -> dict[str, str]:
        return {uid: k for k, uid in self.idmap.to_uid.items()}

    def pack_labels(self) -> dict[str, Any]:
        """The pack's labels by our utterance id (for the misalignment check; never for a method)."""
        pack = self.pack()
        return {uid: pack.labels[k] for uid, k in self._key_of().items() if k in pack.labels}

    def report(self) -> dict[str, Any]:
        """What the pack gives this corpus: matched, missing, extra, size, bad rows, frame lengths."""
        pack, idmap = self.pack(), self.idmap
        matched = [pack.vectors[k] for k in idmap.to_uid]
        lengths = [len(v) for v in matched if v.ndim == 2]
        nonfinite = [u for u, (_, r) in self._bad.items() if "NaN" in r]
        wrong_dim = [u for u, (_, r) in self._bad.items() if "dimensions" in r]
        return {
            "source": self.path_option, "format": pack.format, "key": self.key, "ids": idmap.scheme,
            "fingerprint": self.fingerprint(), "entries": len(pack.vectors), "matched": len(idmap.to_uid),
            "missing": len(idmap.missing), "missing_first": idmap.missing[:20],
            "extra": len(idmap.extra), "extra_first": idmap.extra[:20], "dim": self.pack_dim(),
            "nonfinite": len(nonfinite), "nonfinite_first": nonfinite[:20],
            "wrong_dim": len(wrong_dim), "wrong_dim_first": wrong_dim[:20],
            "frames": ({"utterances": len(lengths), "min": int(min(lengths)), "median": float(np.median(lengths)),
                        "max": int(max(lengths))} if lengths else None),
            "pooled_entries": len(matched) - len(lengths),
            "notes": idmap.notes[:20],
            "labels": "pack has none" if not pack.labels else None,
        }

    def bad(self) -> dict[str, tuple[str, str]]:
        """uid -> (file, reason) for every utterance the pack cannot give: missing or malformed."""
        out = {u: (self.pack().source, "no entry for this utterance in the pack") for u in self.idmap.missing}
        out.update(self._bad)
        return out

    # -- features ---------------------------------------------------------------------------------
    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        if self.idmap is None:
            raise PackError(f"{self.name}: extract called before prime", fix="extract through extract_corpus")
        key_of = self._key_of()
        out = []
        for u in utterances:
            if u.uid in self._bad:
                raise MediaError(*self._bad[u.uid], fix="fix or remove this entry, or run with --on-bad-media zero")
            if u.uid not in key_of:
                raise MediaError(self.pack().source, f"no entry for utterance {u.uid} in the pack",
                                 fix="add it, or run with --on-bad-media zero to use zeros for it")
            v = self.pack().vectors[key_of[u.uid]]
            if v.ndim == 1:
                out.append(ExtractedItem(v, v[None, :]))
            else:
                out.append(ExtractedItem(v.mean(0), v))
        return out


class TextPack(PackExtractor):
    name: ClassVar[str] = "text-pack"
    modality: ClassVar[str] = "t"


class AudioPack(PackExtractor):
    name: ClassVar[str] = "audio-pack"
    modality: ClassVar[str] = "a"


class VideoPack(PackExtractor):
    name: ClassVar[str] = "video-pack"
    modality: ClassVar[str] = "v"
