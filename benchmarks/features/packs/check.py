"""The check run before any training on a pack: one report, then a clear error or a go.

The extractor sees the utterances without labels or annotations; the comparison with the
corpus's labels happens here, in the engine, and a pack's labels go no further than this report.
"""

from __future__ import annotations

from typing import Any

from ...corpus import Corpus
from .extractor import FIRST, PackExtractor, first
from .labels import compare_labels
from .pack import PackError


def _lines(name: str, rep: dict) -> list[str]:
    out = [f"{name}: {rep['source']} ({rep['format']}, ids {rep['ids']}): {rep['matched']} of "
           f"{rep['matched'] + rep['missing']} utterances matched, dimension {rep['dim']}"]
    if rep["missing"]:
        out.append(f"  missing from the pack: {rep['missing']}, e.g. {first(rep['missing_first'])}")
    if rep["extra"]:
        out.append(f"  extra in the pack (no such utterance): {rep['extra']}, e.g. {first(rep['extra_first'])}")
    if rep["nonfinite"]:
        out.append(f"  NaN / inf entries: {rep['nonfinite']}, e.g. {first(rep['nonfinite_first'])}")
    if rep["wrong_dim"]:
        out.append(f"  entries of another dimension: {rep['wrong_dim']}, e.g. {first(rep['wrong_dim_first'])}")
    fr = rep["frames"]
    if fr:
        out.append(f"  frames per utterance: {fr['min']}..{fr['max']} (median {fr['median']:g}) over {fr['utterances']}"
                   + (f"; {rep['pooled_entries']} pooled entries" if rep["pooled_entries"] else ""))
    for note in rep["notes"][:FIRST]:
        out.append(f"  {note}")
    lab = rep.get("labels")
    if isinstance(lab, dict):
        out.append(f"  labels: {lab['agree']} of {lab['compared']} agree with the corpus ({lab['how']})")
    elif lab:
        out.append(f"  labels: {lab}")
    return out


def check_pack(extractor: PackExtractor, corpus: Corpus, on_bad_media: str = "error", reporter=None) -> dict[str, Any]:
    """Match the pack against ``corpus``, report, and raise :class:`PackError` for what does not fit."""
    extractor.bind(corpus.name)
    extractor.prime([u.without_labels() for u in corpus.utterances])  # ids, dialogues and turns only
    rep = extractor.report()
    pack = extractor.pack()
    src = pack.source
    disagree = []
    if pack.labels and extractor.labels == "check":
        scores = {u.uid: float(u.meta["sentiment"]) for u in corpus.utterances  # MOSI / MOSEI: numbers
                  if isinstance(u.meta.get("sentiment"), (int, float))}
        result = compare_labels(extractor.pack_labels(), {u.uid: u.label for u in corpus.utterances}, scores)
        disagree = result["disagree"]
        rep["labels"] = {**result, "disagree": len(disagree),
                         "disagree_first": [f"{u}: pack {p!r}, corpus {c!r}" for u, p, c in disagree[:20]]}
    elif pack.labels:
        rep["labels"] = "not compared (labels: ignore)"
    if reporter is not None:
        for line in _lines(extractor.name, rep):
            reporter.stage(line)
    if pack.positional and not pack.labels and extractor.ids == "auto":
        raise PackError(f"{src}: the pack is in dialogue order without utterance ids or labels, so nothing can "
                        "show that its turns are ours", fix="check the order yourself, then set the option ids "
                                                            "(e.g. ids: meld) to accept the turn order")
    if rep["extra"] and extractor.extra == "error":
        raise PackError(f"{src}: {rep['extra']} pack entries name no utterance of corpus {corpus.name} "
                        f"(ids {rep['ids']}): {first(rep['extra_first'])}"
                        + (f"; {rep['notes'][0]}" if rep["notes"] else ""),
                        fix="use a pack made for this corpus, set ids to the right scheme or template, or set the "
                            "option extra: ignore if the pack covers more than the corpus")
    if disagree:
        shown = "; ".join(rep["labels"]["disagree_first"][:FIRST])
        raise PackError(f"{src}: the pack's labels disagree with the corpus's for {len(disagree)} of "
                        f"{rep['labels']['compared']} utterances, so its features are probably misaligned: {shown}",
                        fix="check the id mapping (option ids) and the pack's turn order; if the pack uses other "
                            "annotations on purpose, set the option labels: ignore")
    bad = extractor.bad()
    if bad:
        listing = "; ".join(f"{u} ({f}: {r})" if f != src else f"{u} ({r})" for u, (f, r) in list(bad.items())[:FIRST])
        if on_bad_media != "zero":
            raise PackError(f"{src}: {len(bad)} utterances have no usable entry in the pack: {listing}"
                            + (" ..." if len(bad) > FIRST else ""),
                            fix="complete or fix the pack, or run with --on-bad-media zero to use zero features "
                                "for these utterances (flagged invalid)")
        if reporter is not None:
            reporter.warn(f"{extractor.name}: {len(bad)} utterances without a usable pack entry get zero features: "
                          f"{listing}")
    return rep
