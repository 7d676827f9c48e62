"""Training throughput of the frame-level methods (MIUST, multi-focus BLSTM), length bucketing off and on.

    python -m merbench.perf.training_throughput [--device cpu|cuda] [--steps N] [--lstm fused|packed|both]
        [--methods miust,multifocus_blstm] [--dataset-lengths synthetic|iemocap|meld|lognormal] [--json OUT]

Each method is built through its own class and config (``per_dataset`` block of the chosen corpus
included) and fed through the engine's own batching (``TorchMethod.batches``: shuffling, length
bucketing, ``collate``, padding masks, host-to-device copy). A timed step is a full train step as
``TorchMethod.fit`` runs it: forward, the method's loss, backward, gradient clipping when set,
optimizer step. Feature values are random (throughput does not depend on them); their lengths
come from a real length distribution:

- text: MiniLM token counts (special tokens included, truncated at 256, as ``text-minilm`` gives)
  of the corpus' transcripts;
- audio: utterance durations times the audio extractor's frame rate (100 Hz for the openSMILE
  LLDs and log-mel, 50 Hz for emotion2vec / wav2vec2-style models). MELD has start/end times;
  IEMOCAP's shared files have none, so its durations are a log-normal (see ``IEMOCAP_DURATION``)
  paired with the real token counts through a Gaussian copula; the synthetic corpus has both.

Both settings train one epoch over the same sample of ``steps x batch_size`` utterances, so they
do the same real work and differ only in padding; they alternate ``--repeats`` times so that load
from other jobs hits both alike. The output states which length source was used. ``--lstm both``
also times the LSTMs by packing (the earlier code) beside ``merbench.rnn``'s fused form, in the
same alternation, and reports that ratio and the whole change (fused + bucketing against packed
without bucketing).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DEFAULT_METHODS = ("miust", "multifocus_blstm")
SOURCES = ("synthetic", "iemocap", "meld", "lognormal")
NUM_CLASSES = {"iemocap": 4, "meld": 7, "synthetic": 4, "lognormal": 4}
TEXT_MAX_TOKENS = 256  # text-minilm truncates there

# Frames per second of audio extractors' frame level. openSMILE LLDs and log-mel use a 10 ms hop;
# emotion2vec and wav2vec2-style models emit one frame per 20 ms.
AUDIO_FPS = {"audio-egemaps": 100.0, "audio-compare": 100.0, "audio-logmel": 100.0,
             "audio-emotion2vec": 50.0, "audio-hf": 50.0}

# Log-normal fits (mu, sigma of the natural log), used where no file gives the lengths.
# Token counts and MELD durations: fitted on the shared annotation files (MELD train split,
# 9989 utterances; IEMOCAP, 7433 utterances), MiniLM tokenizer, on 2026-11-23.
MELD_TOKENS = (2.446, 0.616)
MELD_DURATION = (0.880, 0.765)  # seconds; mean 3.14 s, sd 2.42 s
IEMOCAP_TOKENS = (2.691, 0.701)
# IEMOCAP durations: no timing is in the shared files. Assumed, not measured: mean 4.5 s and
# sd 3.2 s, the figures usually quoted for IEMOCAP utterances, as a log-normal.
_IEMOCAP_MEAN_S, _IEMOCAP_SD_S = 4.5, 3.2
_s2 = math.log(1 + (_IEMOCAP_SD_S / _IEMOCAP_MEAN_S) ** 2)
IEMOCAP_DURATION = (math.log(_IEMOCAP_MEAN_S) - _s2 / 2, math.sqrt(_s2))
# Correlation of log tokens and log duration in the Gaussian copula that pairs them: the Spearman
# correlation measured on MELD train (0.757), as a normal-scores correlation (2 sin(pi rho_s / 6)).
TOKEN_DURATION_RHO = 0.77
DURATION_RANGE_S = (0.2, 35.0)  # clip drawn durations: IEMOCAP's longest turns last about 34 s


@dataclass
class Lengths:
    """Per-utterance lengths: text token counts and audio durations in seconds."""

    tokens: np.ndarray
    seconds: np.ndarray
    text_source: str
    audio_source: str
    dataset: str = "custom"

    def __post_init__(self) -> None:
        self.tokens = np.asarray(self.tokens, dtype=np.int64)
        self.seconds = np.asarray(self.seconds, dtype=np.float64)
        if self.tokens.shape != self.seconds.shape or self.tokens.ndim != 1 or len(self.tokens) == 0:
            raise ValueError(f"lengths of {self.dataset}: {self.tokens.shape} token counts against "
                             f"{self.seconds.shape} durations; need two equal, non-empty 1-d arrays")

    def __len__(self) -> int:
        return len(self.tokens)


# -- where lengths come from ---------------------------------------------------------------


def token_counts(texts: Sequence[str]) -> np.ndarray:
    """MiniLM token counts as ``text-minilm`` sees them ([CLS] and [SEP] included, at most 256)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from merbench.features.text import minilm_path

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    ids = tok([(t or "").strip() for t in texts], truncation=True, max_length=TEXT_MAX_TOKENS)["input_ids"]
    return np.array([len(i) for i in ids], dtype=np.int64)


def _lognormal(rng: np.random.Generator, mu_sigma: tuple[float, float], n: int) -> np.ndarray:
    return np.exp(rng.normal(mu_sigma[0], mu_sigma[1], n))


def durations_paired_with(tokens: np.ndarray, mu_sigma: tuple[float, float], rng: np.random.Generator,
                          rho: float = TOKEN_DURATION_RHO) -> np.ndarray:
    """Log-normal durations correlated with ``tokens`` (Gaussian copula on the token ranks), so that
    long transcripts tend to get long audio, as in real speech."""
    from scipy.special import ndtri

    ranks = np.argsort(np.argsort(tokens + rng.uniform(0, 0.5, len(tokens))))  # ties broken at random
    z_tok = ndtri((ranks + 0.5) / len(tokens))
    z = rho * z_tok + math.sqrt(1 - rho * rho) * rng.standard_normal(len(tokens))
    return np.clip(np.exp(mu_sigma[0] + mu_sigma[1] * z), *DURATION_RANGE_S)


def lognormal_lengths(tokens_fit: tuple[float, float], duration_fit: tuple[float, float], n: int, seed: int,
                      dataset: str, why: str) -> Lengths:
    rng = np.random.default_rng(seed)
    tokens = np.clip(np.round(_lognormal(rng, tokens_fit, n)), 3, TEXT_MAX_TOKENS).astype(np.int64)
    seconds = durations_paired_with(tokens, duration_fit, rng)
    desc = f"log-normal fit (mu {{:.3f}}, sigma {{:.3f}}){why}"
    return Lengths(tokens, seconds, desc.format(*tokens_fit), desc.format(*duration_fit) + " in seconds", dataset)


def _shared_corpus(name: str):
    from merbench.paths import shared_data
    from merbench.registry import get_dataset

    root = shared_data()
    if root is None or not (root / name).is_dir():
        return None
    return get_dataset(name)(root / name).load()


def _synthetic_lengths(seed: int, n_dialogues: int) -> Lengths:
    """Texts and durations of the synthetic corpus: the one in ``data_root()/synthetic`` when it has
    been generated, else a small one generated into a temporary folder (a few seconds)."""
    import csv

    from merbench.datasets.synthetic.generator import generate
    from merbench.paths import data_root

    def read(root: Path) -> Lengths:
        with open(root / "annotations.csv", newline="", encoding="utf-8") as f:
            text = {r["uid"]: r["text"] for r in csv.DictReader(f)}
        with open(root / "cues.csv", newline="", encoding="utf-8") as f:
            dur = {r["uid"]: float(r["duration_s"]) for r in csv.DictReader(f)}
        uids = [u for u in text if u in dur]
        return Lengths(token_counts([text[u] for u in uids]), np.array([dur[u] for u in uids]),
                       f"synthetic corpus transcripts at {root} (MiniLM tokens)",
                       f"synthetic corpus durations (cues.csv) at {root}", "synthetic")

    own = data_root() / "synthetic"
    if (own / "cues.csv").is_file() and (own / "annotations.csv").is_file():
        return read(own)
    with tempfile.TemporaryDirectory(prefix="merbench-throughput-") as tmp:
        out = read(generate(Path(tmp) / "synthetic", n_dialogues=n_dialogues, seed=seed, workers=1))
    out.text_source = out.text_source.split(" at ")[0] + f" (generated, {n_dialogues} dialogues, seed {seed}; MiniLM tokens)"
    out.audio_source = out.audio_source.split(" at ")[0] + " (generated)"
    return out


def load_lengths(source: str, seed: int = 0, synthetic_dialogues: int = 40) -> Lengths:
    """The length distribution named ``source`` (see :data:`SOURCES`)."""
    if source not in SOURCES:
        from merbench.errors import ConfigError

        raise ConfigError(f"unknown --dataset-lengths {source!r}", fix=f"use one of {', '.join(SOURCES)}")
    if source == "synthetic":
        return _synthetic_lengths(seed, synthetic_dialogues)
    if source == "lognormal":
        return lognormal_lengths(MELD_TOKENS, MELD_DURATION, 4000, seed, "lognormal", " of MELD train (no files read)")
    corpus = _shared_corpus(source)
    tok_fit, dur_fit = (MELD_TOKENS, MELD_DURATION) if source == "meld" else (IEMOCAP_TOKENS, IEMOCAP_DURATION)
    if corpus is None:
        return lognormal_lengths(tok_fit, dur_fit, 4000, seed, source,
                                 f" of {source}: shared_data()/{source} not found")
    rng = np.random.default_rng(seed)
    if source == "meld":
        utts = [u for u in corpus.utterances if u.meta.get("split") == "train"
                and u.meta.get("start_s") is not None and u.meta.get("end_s") is not None]
        seconds = np.array([u.meta["end_s"] - u.meta["start_s"] for u in utts])
        keep = seconds > 0  # a few subtitle timings could be broken; none are in the official CSVs
        utts, seconds = [u for u, k in zip(utts, keep) if k], seconds[keep]
        tokens = token_counts([u.text for u in utts])
        return Lengths(tokens, seconds, f"MELD train transcripts ({len(utts)} utterances, MiniLM tokens)",
                       "MELD train start/end times", "meld")
    tokens = token_counts([u.text for u in corpus.utterances])
    seconds = durations_paired_with(tokens, dur_fit, rng)
    return Lengths(tokens, seconds, f"IEMOCAP transcripts ({len(tokens)} utterances, MiniLM tokens)",
                   f"log-normal (mean {_IEMOCAP_MEAN_S} s, sd {_IEMOCAP_SD_S} s, assumed: the shared IEMOCAP files "
                   f"have no timings), paired with the token counts (copula rho {TOKEN_DURATION_RHO})", "iemocap")


# -- the benchmark ------------------------------------------------------------------------------


@dataclass
class SettingResult:
    bucket_by_length: bool
    steps: int = 0
    utterances: int = 0
    seconds: float = 0.0
    real: dict[str, int] = field(default_factory=dict)  # modality -> real frames
    padded: dict[str, int] = field(default_factory=dict)  # modality -> frames incl. padding

    @property
    def utterances_per_s(self) -> float:
        return self.utterances / self.seconds if self.seconds > 0 else float("nan")

    def padding_fraction(self, modality: str | None = None) -> float:
        """Share of the padded frame positions that are padding (all frame modalities together by default)."""
        mods = [modality] if modality else list(self.padded)
        total = sum(self.padded[m] for m in mods)
        return 1.0 - sum(self.real[m] for m in mods) / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"bucket_by_length": self.bucket_by_length, "steps": self.steps, "utterances": self.utterances,
                "seconds": self.seconds, "utterances_per_s": self.utterances_per_s,
                "padding_fraction": self.padding_fraction(),
                "padding_fraction_by_modality": {m: self.padding_fraction(m) for m in self.padded},
                "real_frames": dict(self.real), "padded_frames": dict(self.padded)}


def _frame_rate(method_name: str, modality: str, extractor: str) -> float | None:
    """Frames per second of an audio extractor; None for text (lengths are token counts)."""
    if modality == "t":
        return None
    if modality == "a" and extractor in AUDIO_FPS:
        return AUDIO_FPS[extractor]
    from merbench.errors import ConfigError

    raise ConfigError(f"method {method_name}: no frame rate known for extractor {extractor!r} of modality {modality!r}",
                      fix=f"use a frame-level audio extractor of {sorted(AUDIO_FPS)} or add its rate to AUDIO_FPS "
                          f"in {Path(__file__).name}")


@functools.lru_cache(maxsize=None)
def _frame_dim(extractor: str) -> int:
    from merbench.registry import get_feature

    return int(get_feature(extractor)().output_dim("frames"))


def build_method(name: str, dataset: str, device: str, seed: int = 0, batch_size: int | None = None,
                 overrides: Sequence[str] = ()):
    """The method as a run constructs it (its config with the corpus' per_dataset block and
    ``overrides``, ``--set`` style), and the
    train settings it trains with: for a staged method (``stage_train_cfg``) those of its last,
    multimodal stage."""
    from merbench.config import method_config
    from merbench.errors import ConfigError
    from merbench.registry import get_method
    from merbench.trainer import TorchMethod

    cls = get_method(name)
    if not issubclass(cls, TorchMethod) or cls.unit != "utterance":
        raise ConfigError(f"method {name} is not a per-utterance TorchMethod; this benchmark times frame-level batches",
                          fix=f"pick from {', '.join(DEFAULT_METHODS)}")
    cfg = method_config(cls, dataset=dataset, overrides=overrides)
    labels = tuple(f"c{i}" for i in range(NUM_CLASSES.get(dataset, 4)))
    method = cls(cfg, tuple(cls.modalities), labels, seed=seed, device=device)
    if hasattr(method, "stage_train_cfg"):
        # multifocus_blstm: the fusion stage trains both encoders and the GMU (build_model outside a
        # staged fit builds that same fused architecture from scratch).
        method.train_cfg = method.stage_train_cfg("fusion")
    if batch_size:
        method.train_cfg = {**method.train_cfg, "batch_size": int(batch_size)}
    frames = [m for m in method.modalities if method.levels[m] == "frames"]
    if not frames:
        raise ConfigError(f"method {name} takes no frame-level features, so padding and bucketing do not apply",
                          fix="pick a frame-level method")
    return method


def make_split(method, lengths: Lengths, n: int, seed: int, max_seconds: float | None = None):
    """A training split of ``n`` utterances drawn from ``lengths`` (without replacement when there are
    enough), with random features of the dims and frame counts the method's extractors give."""
    from merbench.corpus import Utterance
    from merbench.interfaces import FeatureTable, SplitData

    rng = np.random.default_rng(seed)
    rows = rng.choice(len(lengths), size=n, replace=n > len(lengths))
    utts = [Utterance(uid=f"u{i:06d}", dialogue_id=f"d{i // 10:05d}", turn=i % 10, speaker="s") for i in range(n)]
    reqs = method.feature_requests(method.config, method.modalities)
    features = {}
    for m in method.modalities:
        ext = reqs[m].extractor
        dim = _frame_dim(ext)
        if method.levels[m] != "frames":
            features[m] = FeatureTable(ext, [u.uid for u in utts], rng.standard_normal((n, dim)).astype(np.float32))
            continue
        fps = _frame_rate(method.name, m, ext)
        if fps is None:
            counts = lengths.tokens[rows]
        else:
            secs = lengths.seconds[rows]
            if max_seconds:
                secs = np.minimum(secs, max_seconds)
            counts = np.round(secs * fps)
        counts = np.maximum(1, counts).astype(int)
        frames = [rng.standard_normal((int(c), dim)).astype(np.float32) for c in counts]
        features[m] = FeatureTable(ext, [u.uid for u in utts], np.zeros((n, dim), np.float32), frames)
    labels = rng.integers(0, method.num_classes, n)
    return SplitData("train", utts, features, method.label_names, labels)


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_setting(method, split, bucket: bool, warmup: int, seed: int = 0, lstm: str = "fused") -> SettingResult:
    """Warm-up steps, then one timed epoch over ``split`` with ``bucket_by_length`` = ``bucket``;
    every step as the trainer runs it (one update per batch), batches from the method's batcher. ``lstm``: how
    the methods' LSTMs skip padding (``merbench.rnn.IMPLEMENTATION``: fused, or packed)."""
    import torch
    from torch import nn

    from merbench import rnn
    from merbench.trainer import seed_everything

    cfg, base_impl = {**method.train_cfg, "bucket_by_length": bool(bucket)}, rnn.IMPLEMENTATION
    rnn.IMPLEMENTATION = lstm
    try:
        seed_everything(seed)
        batcher = method.make_batcher(split, train_cfg=cfg)
        model = method.build_model(batcher.input_dims(split), method.num_classes).to(method.device)
        optimizer = method.configure_optimizer(model, cfg)
        model.train()
        bs, clip = int(cfg["batch_size"]), cfg["grad_clip"]

        def step(batch) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss = method.loss(method.forward(model, batch), batch)
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()

        # Warm-up on batches of another epoch (allocator, kernels), same bucketing setting.
        for k, batch in enumerate(batcher.batches(split, bs, shuffle=True, epoch=10_000)):
            if k >= warmup:
                break
            step(batch)
        res = SettingResult(bool(bucket))
        real = {m: torch.zeros((), dtype=torch.long, device=method.device) for m in batcher.modalities
                if batcher.levels[m] == "frames"}
        padded = dict.fromkeys(real, 0)
        _sync(method.device)
        t0 = time.perf_counter()
        for batch in batcher.batches(split, bs, shuffle=True, epoch=0):
            step(batch)
            for m in real:  # summed on the device: no sync inside the timing
                real[m] += batch["mask"][m].sum()
                padded[m] += batch["mask"][m].numel()
            res.steps += 1
            res.utterances += len(batch["labels"])
        _sync(method.device)
        res.seconds = time.perf_counter() - t0
        res.real = {m: int(v) for m, v in real.items()}
        res.padded = padded
        return res
    finally:
        rnn.IMPLEMENTATION = base_impl


def _merge(a: SettingResult | None, b: SettingResult) -> SettingResult:
    if a is None:
        return b
    a.steps += b.steps
    a.utterances += b.utterances
    a.seconds += b.seconds
    a.real = {m: a.real[m] + b.real[m] for m in a.real}
    a.padded = {m: a.padded[m] + b.padded[m] for m in a.padded}
    return a


LSTM_IMPLS = ("fused", "packed")


def benchmark_method(name: str, lengths: Lengths, device: str = "cpu", steps: int = 10, warmup: int = 2,
                     repeats: int = 1, seed: int = 0, batch_size: int | None = None,
                     max_seconds: float | None = None, overrides: Sequence[str] = (),
                     lstms: Sequence[str] = ("fused",)) -> dict[str, Any]:
    """Bucketing off and on for one method (for each LSTM implementation in ``lstms``),
    alternating ``repeats`` times; one result dict. ``off`` / ``on`` are those of ``lstms[0]``;
    with two implementations ``by_lstm`` holds both and ``speed_ratio_fused_packed`` compares them."""
    method = build_method(name, lengths.dataset, device, seed, batch_size, overrides)
    bs = int(method.train_cfg["batch_size"])
    split = make_split(method, lengths, steps * bs, seed, max_seconds)
    settings = [(bucket, impl) for impl in lstms for bucket in (False, True)]
    totals: dict[tuple[bool, str], SettingResult | None] = dict.fromkeys(settings)
    for r in range(repeats):
        for key in (settings if r % 2 == 0 else settings[::-1]):
            totals[key] = _merge(totals[key], time_setting(method, split, key[0], warmup, seed, key[1]))
    reqs = method.feature_requests(method.config, method.modalities)
    by_lstm = {}
    for impl in lstms:
        off, on = totals[(False, impl)], totals[(True, impl)]
        assert off is not None and on is not None
        by_lstm[impl] = {"off": off.as_dict(), "on": on.as_dict(),
                         "speed_ratio_on_off": on.utterances_per_s / off.utterances_per_s,
                         "padded_frames_ratio_on_off": sum(on.padded.values()) / sum(off.padded.values())}
    out = {
        "method": name, "batch_size": bs, "utterances_per_epoch": len(split), "repeats": repeats,
        "optimizer": method.train_cfg["optimizer"],
        "features": {m: {"extractor": reqs[m].extractor, "dim": _frame_dim(reqs[m].extractor),
                         "frames_per_s": _frame_rate(name, m, reqs[m].extractor)} for m in method.modalities},
        "parameters": method.num_parameters(method.input_dims(split)),
        "lstm": lstms[0], **by_lstm[lstms[0]],
    }
    if len(lstms) > 1:
        out["by_lstm"] = by_lstm
        f, pk = by_lstm["fused"], by_lstm["packed"]
        out["speed_ratio_fused_packed"] = {b: f[b]["utterances_per_s"] / pk[b]["utterances_per_s"] for b in ("off", "on")}
        # The whole change: the earlier code (packed LSTMs, no bucketing) against the current default.
        out["speed_ratio_fused_on_vs_packed_off"] = f["on"]["utterances_per_s"] / pk["off"]["utterances_per_s"]
    return out


def run(methods: Sequence[str] = DEFAULT_METHODS, lengths: Lengths | None = None, dataset_lengths: str = "meld",
        device: str = "cpu", steps: int = 10, warmup: int = 2, repeats: int = 1, seed: int = 0,
        batch_size: int | None = None, max_seconds: float | None = None, threads: int = 0,
        overrides: Sequence[str] = (), lstms: Sequence[str] = ("fused",)) -> dict[str, Any]:
    """The whole benchmark as a JSON-ready dict; ``lengths`` overrides ``dataset_lengths``."""
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        from merbench.errors import ConfigError

        raise ConfigError("--device cuda asked for, but torch sees no CUDA device", fix="run with --device cpu")
    if threads:
        torch.set_num_threads(threads)
    if lengths is None:
        lengths = load_lengths(dataset_lengths, seed)
    load = os.getloadavg()[0]  # other work on the machine skews the timings
    results = [benchmark_method(m, lengths, device, steps, warmup, repeats, seed, batch_size, max_seconds, overrides,
                                lstms) for m in methods]
    return {
        "benchmark": "training_throughput", "device": device,
        "device_name": torch.cuda.get_device_name(0) if str(device).startswith("cuda") else "cpu",
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpu_cores": os.cpu_count(),
        "load_average_before": load, "load_average_after": os.getloadavg()[0],
        "steps": steps, "warmup": warmup, "seed": seed, "max_seconds": max_seconds, "overrides": list(overrides),
        "lstm": list(lstms),
        "lengths": {"dataset": lengths.dataset, "text_source": lengths.text_source,
                    "audio_source": lengths.audio_source, "utterances": len(lengths),
                    "tokens_median": float(np.median(lengths.tokens)), "tokens_p95": float(np.percentile(lengths.tokens, 95)),
                    "seconds_median": float(np.median(lengths.seconds)),
                    "seconds_p95": float(np.percentile(lengths.seconds, 95))},
        "methods": results,
    }


def print_report(report: dict[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    L = report["lengths"]
    console.print(f"[bold]lengths[/] ({L['dataset']}): text = {L['text_source']}; audio = {L['audio_source']}")
    console.print(f"  tokens median {L['tokens_median']:.0f}, p95 {L['tokens_p95']:.0f}; "
                  f"seconds median {L['seconds_median']:.2f}, p95 {L['seconds_p95']:.2f}")
    table = Table(title=f"training throughput on {report['device_name']} ({report['torch_threads']} torch threads, "
                        f"load average {report['load_average_before']:.2f} before)")
    # padding = share of padded frame positions that are padding (t: text tokens, a: audio frames)
    for col in ("method", "batch", "lstm", "bucket", "steps", "utt/s", "pad", "pad t", "pad a", "on/off", "fused/packed"):
        table.add_column(col, justify="left" if col in ("method", "lstm", "bucket") else "right")
    for r in report["methods"]:
        by_lstm = r.get("by_lstm", {r["lstm"]: r})
        first = True
        for impl, res in by_lstm.items():
            for key in ("off", "on"):
                s = res[key]
                by = s["padding_fraction_by_modality"]
                vs_packed = r.get("speed_ratio_fused_packed", {}).get(key) if impl == "fused" else None
                table.add_row(r["method"] if first else "", str(r["batch_size"]) if first else "", impl, key,
                              str(s["steps"]), f"{s['utterances_per_s']:.2f}", f"{s['padding_fraction']:.1%}",
                              f"{by['t']:.1%}" if "t" in by else "-", f"{by['a']:.1%}" if "a" in by else "-",
                              f"{res['speed_ratio_on_off']:.2f}x" if key == "on" else "",
                              f"{vs_packed:.2f}x" if vs_packed else "")
                first = False
        if "speed_ratio_fused_on_vs_packed_off" in r:
            console.print(f"{r['method']}: fused LSTM + bucketing vs packed LSTM without bucketing (the earlier code): "
                          f"[bold]{r['speed_ratio_fused_on_vs_packed_off']:.2f}x[/] utterances / s")
    console.print(table)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m merbench.perf.training_throughput",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per setting and repeat (one epoch over steps x batch size utterances)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before each timed epoch")
    ap.add_argument("--repeats", type=int, default=1, help="off/on pairs, alternating order (times are summed)")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated method names")
    ap.add_argument("--dataset-lengths", default="meld", choices=SOURCES,
                    help="where text and audio lengths come from (lognormal: the documented fits, no files)")
    ap.add_argument("--batch-size", type=int, default=0, help="override the methods' own batch size (0: theirs)")
    ap.add_argument("--max-seconds", type=float, default=0.0, help="cap audio durations (0: no cap; for quick checks)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every method, e.g. model.hidden=16 (repeatable; for quick checks)")
    ap.add_argument("--lstm", default="fused", choices=("fused", "packed", "both"),
                    help="how the LSTMs skip padding: fused (merbench.rnn, the default), packed (pack_padded_sequence, "
                         "the earlier code), or both, timed side by side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the report here (atomically)")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1 or not methods:
        ap.error("--steps and --repeats must be >= 1, --warmup >= 0, and --methods non-empty")
    report = run(methods, dataset_lengths=args.dataset_lengths, device=args.device, steps=args.steps,
                 warmup=args.warmup, repeats=args.repeats, seed=args.seed, batch_size=args.batch_size or None,
                 max_seconds=args.max_seconds or None, threads=args.threads, overrides=args.overrides,
                 lstms=LSTM_IMPLS if args.lstm == "both" else (args.lstm,))
    report["command"] = "python -m merbench.perf.training_throughput " + " ".join(argv if argv is not None else sys.argv[1:])
    print_report(report)
    if args.json:
        from merbench.atomic import atomic_write_json

        atomic_write_json(args.json, report)
    return report


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a MerbenchError already names the file and the fix
        from merbench.errors import MerbenchError

        if isinstance(e, MerbenchError):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        raise
