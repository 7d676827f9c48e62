"""Align the soujanyaporia CMU-MOSI acoustic features to our clip ids and write them as a pack.

The file (``audio.pickle`` of soujanyaporia/multimodal-sentiment-analysis, ``dataset/mosi/raw``)
holds one 73-d openSMILE-derived vector per utterance for all 2199 MOSI clips, grouped by video
and zero-padded to 63 utterances, but without any video or clip id. It is a 7-tuple
``(train, train_labels, test, test_labels, max_len, train_lengths, test_lengths)``: the feature
arrays are ``(videos, 63, 73)``, the label arrays ``(videos, 63)`` hold binary sentiment
(1 = score >= 0) and the lengths say how many utterances each video has.

Ids are recovered from a fingerprint: a video's utterance count and its binary label sequence in
clip-index order (``<video>_1``, ``<video>_2``, ...). :func:`align` maps every video of the pack
to the one video of our corpus with the same fingerprint and refuses (no guessing) unless the
map is a bijection. The labels serve only to identify the clips here; they are not written to
the pack and never reach a method.

Run once (reads ``merbench_label.npz`` from the MOSI root, writes ``<clip>.npy`` files)::

    python -m merbench.datasets.mosi.soujanyaporia_audio PICKLE [--output DIR] [--root MOSI_ROOT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from merbench.atomic import atomic_write, atomic_write_json
from merbench.download import sha256_file
from merbench.errors import MerbenchError
from merbench.paths import data_root
from merbench.safe_pickle import safe_load

from .adapter import MOSIDataset, split_clip_id

PACK_NAME = "soujanyaporia-audio"
FEATURE_DIM = 73


@dataclass(frozen=True)
class PackVideo:
    """One video of the pickle: where it sits and what it holds (no id)."""

    part: str  # "train" or "test" half of the pickle (their split, not ours)
    index: int
    features: np.ndarray  # (n_utterances, 73)
    labels: tuple[int, ...]  # binary, one per utterance

    @property
    def where(self) -> str:
        return f"{self.part}[{self.index}]"


def default_output() -> Path:
    """``<data root>/packs/mosi/soujanyaporia-audio``: a feature request finds it as
    ``{data}/packs/mosi/soujanyaporia-audio`` (``{data}`` = $MERBENCH_DATA, else $MERBENCH_HOME/data)."""
    return data_root() / "packs" / "mosi" / PACK_NAME


def read_pack(path: str | Path) -> list[PackVideo]:
    """The pickle's videos, checked for the layout described above (restricted unpickler)."""
    path = Path(path)
    data = safe_load(path)
    fix = "use audio.pickle of soujanyaporia/multimodal-sentiment-analysis (dataset/mosi/raw)"
    if not isinstance(data, tuple) or len(data) != 7:
        raise MerbenchError(f"{path}: expected a 7-tuple, found {type(data).__name__}"
                            + (f" of {len(data)}" if isinstance(data, (tuple, list)) else ""), fix=fix)
    train, train_labels, test, test_labels, max_len, train_lengths, test_lengths = data
    videos: list[PackVideo] = []
    for part, feats, labels, lengths in (("train", train, train_labels, train_lengths),
                                         ("test", test, test_labels, test_lengths)):
        feats, labels = np.asarray(feats), np.asarray(labels)
        if feats.ndim != 3 or feats.shape[2] != FEATURE_DIM or labels.shape != feats.shape[:2] \
                or len(lengths) != feats.shape[0] or feats.shape[1] != max_len:
            raise MerbenchError(f"{path}: {part} arrays have shapes {feats.shape} / {labels.shape} with "
                                f"{len(lengths)} lengths and max length {max_len}; expected (videos, {max_len}, "
                                f"{FEATURE_DIM}) / (videos, {max_len})", fix=fix)
        for i, n in enumerate(lengths):
            n = int(n)
            where = f"{path} {part}[{i}]"
            if not 0 < n <= max_len:
                raise MerbenchError(f"{where}: length {n} outside 1..{max_len}", fix=fix)
            if np.any(feats[i, n:]) or np.any(labels[i, n:]):
                raise MerbenchError(f"{where}: non-zero padding after its {n} utterances", fix=fix)
            lab = labels[i, :n]
            if not np.isin(lab, (0, 1)).all():
                raise MerbenchError(f"{where}: labels other than 0 / 1", fix=fix)
            if not np.isfinite(feats[i, :n]).all():
                raise MerbenchError(f"{where}: NaN or inf features", fix=fix)
            videos.append(PackVideo(part, i, feats[i, :n].astype(np.float32), tuple(int(x) for x in lab)))
    return videos


def binary(score: float) -> int:
    """The pickle's label: 1 for a score >= 0 (so its 1176 positives include the 96 zeros)."""
    return int(score >= 0)


def corpus_fingerprints(root: str | Path | None = None) -> dict[str, tuple[list[str], tuple[int, ...]]]:
    """{video: (clip ids in clip-index order, binary labels in that order)} from our MOSI labels."""
    clips: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    for uid, (_split, score) in MOSIDataset(root)._labels().items():
        video, seg = split_clip_id(uid)
        clips[video].append((seg, uid, score))
    out = {}
    for video, rows in clips.items():
        rows.sort()
        out[video] = ([uid for _, uid, _ in rows], tuple(binary(s) for _, _, s in rows))
    return out


def align(videos: list[PackVideo], fingerprints: dict[str, tuple[list[str], tuple[int, ...]]],
          source: str = "the pack") -> dict[str, PackVideo]:
    """{our video id: pack video}, only if every pack video has exactly one video of ours with the same
    (count, label sequence) and the map is one to one; otherwise a MerbenchError listing the failures."""
    by_print: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for video, (_uids, labels) in fingerprints.items():
        by_print[labels].append(video)
    problems, out = [], {}
    for pv in videos:
        found = by_print.get(pv.labels, [])
        if len(found) != 1:
            problems.append(f"{pv.where} ({len(pv.labels)} utterances, {sum(pv.labels)} positive) matches "
                            + (f"{len(found)} videos ({', '.join(sorted(found)[:4])})" if found else "no video"))
        elif found[0] in out:
            problems.append(f"{pv.where} and {out[found[0]].where} both match {found[0]}")
        else:
            out[found[0]] = pv
    unmatched = sorted(set(fingerprints) - set(out))
    if unmatched and not problems:
        problems.append(f"{len(unmatched)} of our videos have no counterpart ({', '.join(unmatched[:4])})")
    if problems:
        raise MerbenchError(f"{source} cannot be aligned to MOSI clip ids without guessing: "
                            + "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
                            fix="the pack or the label file is not the one this preparation expects; "
                                "use audio.pickle of soujanyaporia/multimodal-sentiment-analysis and MERTools' labels")
    return out


def chance_log10(videos: list[PackVideo]) -> float:
    """log10 of the chance that a random order of each video's utterances reproduces its label sequence
    (the product over videos of 1 / C(n, k)): how much the fingerprint says about order across labels."""
    return -sum(math.log10(math.comb(len(v.labels), sum(v.labels))) for v in videos)


def word_count_order_check(aligned: dict[str, PackVideo], fingerprints, texts: dict[str, str], dim: int = 6,
                           shuffles: int = 200, seed: int = 0) -> dict[str, float]:
    """Evidence on order among same-label clips, which the labels cannot give: within each video, the
    correlation of feature ``dim`` (it tracks utterance length) with our transcripts' word counts, summed
    over videos, against the same sum after shuffling clips within (video, label). Returns the observed
    sum, the shuffles' mean and sd, and z."""
    rng = np.random.default_rng(seed)

    def total(perms: dict[str, np.ndarray]) -> float:
        s = 0.0
        for video, pv in aligned.items():
            uids, _ = fingerprints[video]
            f = pv.features[:, dim].astype(float)
            w = np.array([len(texts.get(uids[j], "").split()) for j in perms[video]], dtype=float)
            if f.std() > 0 and w.std() > 0:
                s += float(np.corrcoef(f, w)[0, 1])
        return s

    ident = {v: np.arange(len(pv.labels)) for v, pv in aligned.items()}
    observed = total(ident)
    null = []
    for _ in range(shuffles):
        perms = {}
        for v, pv in aligned.items():
            p = np.arange(len(pv.labels))
            lab = np.array(pv.labels)
            for b in (0, 1):
                idx = np.where(lab == b)[0]
                p[idx] = rng.permutation(idx)
            perms[v] = p
        null.append(total(perms))
    null_a = np.array(null)
    return {"observed": observed, "shuffled_mean": float(null_a.mean()), "shuffled_sd": float(null_a.std()),
            "shuffled_max": float(null_a.max()), "z": float((observed - null_a.mean()) / null_a.std())}


def _save_npy(path: Path, row: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to the temporary name
        np.save(fh, row)


def prepare(pickle_path: str | Path, output: str | Path | None = None, root: str | Path | None = None,
            order_check: bool = True) -> dict:
    """Align and write ``<output>/<clip id>.npy`` (float32, shape (73,)) and ``manifest.json``;
    refuses (MerbenchError, nothing written) unless the alignment is unique. Returns the manifest."""
    pickle_path = Path(pickle_path)
    output = Path(output) if output is not None else default_output()
    videos = read_pack(pickle_path)
    prints = corpus_fingerprints(root)
    aligned = align(videos, prints, source=str(pickle_path))
    n_clips = sum(len(u) for u, _ in prints.values())
    manifest = {
        "pack": PACK_NAME, "dataset": "mosi", "format": "npy-dir", "dim": FEATURE_DIM,
        "source": str(pickle_path), "source_sha256": sha256_file(pickle_path), "clips": n_clips,
        "videos": {v: {"pack": pv.where, "clips": len(pv.labels)} for v, pv in sorted(aligned.items())},
        "alignment": "unique: every pack video's (utterance count, binary label sequence in clip-index order) "
                     "matches exactly one MOSI video and the map is one to one",
        "label_sequence_chance_log10": chance_log10(videos),
    }
    if order_check:
        adapter = MOSIDataset(root)
        manifest["order_check_word_count"] = word_count_order_check(aligned, prints, adapter._texts())
    output.mkdir(parents=True, exist_ok=True)
    for video, pv in aligned.items():
        for uid, row in zip(prints[video][0], pv.features):
            atomic_write(output / f"{uid}.npy", lambda p, row=row: _save_npy(p, row))
    atomic_write_json(output / "manifest.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m merbench.datasets.mosi.soujanyaporia_audio",
                                 description="Align soujanyaporia's MOSI audio.pickle to clip ids; write an npy-dir pack.")
    ap.add_argument("pickle", type=Path, help="audio.pickle (soujanyaporia/multimodal-sentiment-analysis dataset/mosi/raw)")
    ap.add_argument("--output", type=Path, default=None, help=f"folder to write (default {default_output()})")
    ap.add_argument("--root", type=Path, default=None, help="MOSI root with merbench_label.npz (default: the adapter's)")
    args = ap.parse_args(argv)
    try:
        m = prepare(args.pickle, args.output, args.root)
    except MerbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = args.output or default_output()
    oc = m.get("order_check_word_count", {})
    print(f"wrote {m['clips']} clips of {len(m['videos'])} videos to {out} (alignment unique; label-sequence "
          f"chance 1e{m['label_sequence_chance_log10']:.0f}; word-count order check z = {oc.get('z', float('nan')):.1f})")
    print(json.dumps({"format": "npy-dir", "path": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
