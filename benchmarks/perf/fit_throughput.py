"""Training throughput of every method through its real ``fit``, on a corpus with cached features.

    python benchmarks/perf/fit_throughput.py [--runs mlp:default:tav,text_transformer:default:t,...]
        [--dataset synthetic] [--protocol synthetic-4] [--epochs 1] [--max-train 400] [--threads 2]
        [--json OUT]

Each run (``method:variant:modalities``) is resolved as ``bench run`` resolves it (config,
variant, per-dataset block), its features are read from the feature cache (extracted first when
missing: run once before timing), and ``method.fit(train, valid)`` runs for ``--epochs`` epochs
(patience off) on the first fold's training split, cut to its first ``--max-train`` utterances
(whole dialogues). The time is that of the whole fit: the training batches and the validation
pass after each epoch, as a run pays them. Reported: training utterances per second (every
utterance a training batch held, over all stages of a staged method, per fit second) and the
fit's seconds. The script only uses the engine's public pieces, so that one copy of it times two
checkouts of the engine (``python -P`` with each checkout's environment) for a before / after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

# The method's own default variant and the variants the default suite runs, on the synthetic corpus.
DEFAULT_RUNS = ("mlp:default:tav", "text_transformer:default:t", "miust:default:ta", "miust:cpu:ta",
                "multifocus_blstm:default:ta", "multifocus_blstm:cpu:ta", "cross_modal_attention:default:t",
                "cross_modal_attention:frozen_text:tav", "lipsync_graph_erc:default:ta")


def parse_run(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) != 3 or not all(parts):
        raise SystemExit(f"--runs entry {spec!r}: expected method:variant:modalities, e.g. mlp:default:tav")
    return parts[0], parts[1], parts[2]


def _cut(split_uids: list[str], corpus, n: int | None) -> list[str]:
    """The first ``n`` utterances of the split, extended to the end of the last dialogue started."""
    if not n or n >= len(split_uids):
        return list(split_uids)
    by_uid = {u.uid: u for u in corpus.utterances}
    keep = list(split_uids[:n])
    last = by_uid[keep[-1]].dialogue_id
    for uid in split_uids[n:]:
        if by_uid[uid].dialogue_id != last:
            break
        keep.append(uid)
    return keep


def time_fit(method: str, variant: str, modalities: str, dataset: str, protocol: str, epochs: int,
             max_train: int | None, seed: int = 0) -> dict:
    import numpy as np

    from merbench import runner, trainer
    from merbench.runner import RunRequest

    req = RunRequest(method=method, dataset=dataset, protocol=protocol, modalities=modalities, seeds=[seed],
                     variant=variant, epochs=epochs)
    method_cls, adapter_cls, proto, mods, config = runner.resolve(req)
    config["train"]["patience"] = epochs + 1  # time every epoch asked for
    for stage in (config.get("stages") or {}).values():
        if isinstance(stage, dict) and "patience" in stage:
            stage["patience"] = epochs + 1
    corpus = adapter_cls(None).load()
    splits = proto.build(corpus)
    requests = method_cls.feature_requests(config, mods)
    tables = runner.load_features(corpus, requests, runner.Reporter(), "error")[0]
    fold = splits.folds[0]
    train_uids = _cut(list(fold.train), corpus, max_train)
    train = runner.split_data("train", train_uids, corpus, tables, splits, True)
    valid = runner.split_data("valid", fold.valid, corpus, tables, splits, True)
    m = method_cls(config, mods, splits.protocol.label_names, seed=seed, device="cpu", workdir=None)

    counted = {"utterances": 0}
    original = trainer.Batcher.batches

    def counting(self, split, batch_size, shuffle, *args, **kwargs):
        for batch in original(self, split, batch_size, shuffle, *args, **kwargs):
            if shuffle:  # training batches only
                index = batch["index"]
                counted["utterances"] += sum(len(d) for d in index) if isinstance(index, list) else len(index)
            yield batch

    trainer.Batcher.batches = counting
    try:
        t0 = time.perf_counter()
        report = m.fit(train, valid)
        seconds = time.perf_counter() - t0
    finally:
        trainer.Batcher.batches = original
    t0 = time.perf_counter()
    probs = np.asarray(m.predict(valid))
    predict_s = time.perf_counter() - t0
    # Bitwise fingerprints of the trained weights and of the predictions: two engines that train
    # identically give the same weights digest (the predictions may differ in the last bits when
    # only the batching of the evaluation differs).
    weights = hashlib.sha256()
    for k, v in sorted(m.model.state_dict().items()):
        weights.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
    return {"run": f"{method}:{variant}:{modalities}", "train_utterances": len(train), "valid_utterances": len(valid),
            "epochs_run": report.epochs_run, "trained_utterances": counted["utterances"], "fit_s": seconds,
            "utterances_per_s": counted["utterances"] / seconds if seconds > 0 else float("nan"),
            "predict_valid_s": predict_s,
            "valid_accuracy_after_fit": float((probs.argmax(1) == valid.labels).mean()),
            "weights_sha256": weights.hexdigest()[:16], "probs": probs.round(7).tolist()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=",".join(DEFAULT_RUNS), help="comma-separated method:variant:modalities")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--protocol", default="synthetic-4")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-train", type=int, default=400, help="training utterances (whole dialogues; 0: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="append one JSON line per run here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    import merbench

    if args.threads:
        torch.set_num_threads(args.threads)
    # The first optimizer a process builds imports torch._dynamo (seconds, once per process): pay it
    # here, so that the first run timed is not charged for it.
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    out = []
    for spec in [s.strip() for s in args.runs.split(",") if s.strip()]:
        method, variant, mods = parse_run(spec)
        load = os.getloadavg()[0]
        try:
            row = time_fit(method, variant, mods, args.dataset, args.protocol, args.epochs, args.max_train or None,
                           args.seed)
        except Exception as e:  # noqa: BLE001 - e.g. a variant this checkout lacks: report it, time the rest
            print(f"{spec:<40} failed: {type(e).__name__}: {e}", flush=True)
            continue
        row.update(engine=str(Path(merbench.__file__).parent.parent), load_before=load,
                   threads=torch.get_num_threads(), epochs=args.epochs)
        print(f"{row['run']:<40} {row['utterances_per_s']:8.2f} utt/s  fit {row['fit_s']:7.2f} s  "
              f"({row['trained_utterances']} trained, {row['epochs_run']} epochs, load {load:.2f}, "
              f"valid acc {row['valid_accuracy_after_fit']:.4f}, weights {row['weights_sha256']})", flush=True)
        out.append(row)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    return {"runs": out}


if __name__ == "__main__":
    main(sys.argv[1:])
