"""``bench export``: a run's kept model as a self-contained folder with a model card, and
``bench runs prune``: model folders no result references are removed.

An exported folder holds the fold folders of the kept model (``fold-<name>/weights.safetensors``
and ``model.yaml``), the result file it came from (``result.json``) and ``README.md``: method,
paper, protocol, metrics over the seeds found beside the result (mean, std and 95% interval as
the leaderboard computes them), features, and the commands that reproduce and use it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .atomic import atomic_write_text
from .errors import MerbenchError
from .metrics import METRICS, ordered
from .model_store import SUFFIX, fold_folders, model_folder_of, read_info, replace_folder
from .results import RunResult, iter_results, read_result


def _same_row(a: RunResult, b: RunResult) -> bool:
    return (a.dataset, a.protocol, a.manifest_hash, a.method, a.variant, a.modalities, a.config_hash) == \
        (b.dataset, b.protocol, b.manifest_hash, b.method, b.variant, b.modalities, b.config_hash)


def _metrics_table(result_file: Path, r: RunResult) -> list[str]:
    from .stats import seed_stats

    seeds = {r.seed: r}
    for path, other in iter_results(result_file.parent):
        if _same_row(other, r) and other.seed not in seeds:
            seeds[other.seed] = other
    shown = ordered([m for m in METRICS if getattr(r.test, m) is not None], first=r.headline_metric)
    lines = [f"Test scores in percent over {len(seeds)} seed(s) ({', '.join(map(str, sorted(seeds)))}) of this "
             f"configuration found beside the result; the interval is the 95% t interval of the mean over seeds "
             f"(as the leaderboard's), shown when there are two seeds or more. This model is seed {r.seed}.", "",
             "| metric | this seed | mean | std | 95% CI |", "|---|---|---|---|---|"]
    for m in shown:
        s = seed_stats([getattr(x.test, m) * 100 for x in seeds.values() if getattr(x.test, m) is not None])
        ci = f"[{s.ci_low:.2f}, {s.ci_high:.2f}]" if s.ci_low is not None else "-"
        std = f"{s.std:.2f}" if s.std is not None else "-"
        head = " (headline)" if m == r.headline_metric else ""
        lines.append(f"| {METRICS[m].label}{head} | {getattr(r.test, m) * 100:.2f} | {s.mean:.2f} | {std} | {ci} |")
    return lines


def model_card(result_file: Path, r: RunResult, folds: list[dict]) -> str:
    from .registry import method_metadata

    try:
        meta = method_metadata(r.method)
    except Exception:  # noqa: BLE001 - a card without the paper's details beats no card
        meta = None
    info = folds[0]
    title = getattr(meta, "title", "") or r.method
    lines = [f"# {r.method} ({r.variant}) on {r.dataset} / {r.protocol}, modalities {r.modalities}, seed {r.seed}", "",
             f"A trained merbench model: **{title}**."]
    if meta is not None:
        who = ", ".join(x for x in (meta.authors, meta.venue, str(meta.year or "")) if x)
        if who:
            lines.append(f"Paper: {who}.")
        for what, url in (("paper", meta.paper_url), ("original code", meta.code_url)):
            if url:
                lines.append(f"{what.capitalize()}: <{url}>.")
    lines += ["", "## Use it", "", "```bash",
              "bench predict . clip.wav --text \"what was said\"       # or clip.mp4, a folder of clips, a corpus --split test",
              "```", "", "```python", "import merbench", "",
              "model = merbench.load_model(\"path/to/this/folder\")",
              "predictions = model.predict([\"clip.wav\"], text=[\"what was said\"])",
              "print(predictions.labels, predictions.probs)", "```", "",
              f"Labels: {', '.join(r.label_names)}. Unit: {info.get('unit', 'utterance')}"
              + (" (the clips given are one dialogue, in order)" if info.get("unit") == "dialogue" else "") + ".", "",
              "## Protocol and scores", "",
              f"Protocol `{r.protocol}` v{r.protocol_version}{' (as published, leaky)' if r.as_published else ''}, "
              f"split manifest `{r.manifest_hash[:12]}`, folds: {', '.join(f['fold'] for f in folds)}. "
              f"Epochs selected on the validation split by {r.select_metric or 'the method'}.", ""]
    lines += _metrics_table(result_file, r)
    lines += ["", "## Features", "", "| modality | extractor | level | version | options | cache key |", "|---|---|---|---|---|---|"]
    for m, f in (info.get("features") or {}).items():
        opts = ", ".join(f"{k}={v}" for k, v in sorted((f.get("options") or {}).items())) or "-"
        lines.append(f"| {m} | {f['extractor']} | {f.get('level', 'pooled')} | {f.get('version')} | {opts} | {f.get('cache_key', '')} |")
    raw = [m for m in info.get("modalities", []) if m not in (info.get("features") or {})]
    if raw:
        lines.append(f"\nRead raw by the method (no extractor): {', '.join(raw)}.")
    lines += ["", "`bench predict` extracts features with exactly these extractors, versions and settings, and refuses "
              "a model whose extractor is missing or changed here.", "",
              "## Model", "", f"Parameters: {r.parameters if r.parameters is not None else '-'}. Weights: "
              "`fold-<name>/weights.safetensors` (safetensors, never a pickle; SHA-256 in `model.yaml`), the "
              "standardisation statistics of the training split inside it.", "",
              "## Reproduce", "", "```bash", r.provenance.command if r.provenance.command.startswith("bench ") else
              f"bench run {r.method} {r.dataset} --protocol {r.protocol} "
              f"--variant {r.variant} --modalities {','.join(r.modalities)} --seed {r.seed}", "```", "",
              f"Config hash `{r.config_hash[:12]}` (the resolved config is in `model.yaml`), merbench "
              f"{r.provenance.merbench_version}, git commit `{(r.provenance.git_commit or '-')[:12]}`"
              f"{' (dirty)' if r.provenance.git_dirty else ''}, device {r.provenance.device or '-'}, "
              f"corpus fingerprint `{r.corpus_fingerprint or '-'}`. The run's result file is `result.json`.", ""]
    return "\n".join(lines)


def export_model(result_file: Path, folder: Path) -> Path:
    """Copy the kept model of ``result_file`` into ``folder`` (created; must be empty or absent) with
    ``result.json`` and a model card ``README.md``."""
    result_file, folder = Path(result_file), Path(folder)
    r = read_result(result_file)
    folds = fold_folders(result_file)  # refuses a result without a kept model, with the fix
    infos = [read_info(f) for f in folds]
    if folder.exists() and any(folder.iterdir()):
        raise MerbenchError(f"export folder {folder} is not empty", fix="give a new or empty folder")
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in folds:
        shutil.copytree(f, tmp / f.name)
    shutil.copy2(result_file, tmp / "result.json")
    atomic_write_text(tmp / "README.md", model_card(result_file, r, infos))
    if folder.exists():
        folder.rmdir()
    replace_folder(tmp, folder)
    return folder


def prune_models(results_dir: Path, dry_run: bool = False) -> list[tuple[Path, int]]:
    """Model folders under ``results_dir`` no readable result references (its result was deleted or
    replaced, or the run kept no model), and half-written ones; (folder, bytes) of each, removed
    unless ``dry_run``."""
    results_dir = Path(results_dir)
    gone = []
    for folder in sorted(p for p in results_dir.rglob(f"*{SUFFIX}*") if p.is_dir()):
        stale = folder.name.startswith(".") and (f"{SUFFIX}.tmp-" in folder.name or f"{SUFFIX}.old-" in folder.name)
        if not stale:
            if not folder.name.endswith(SUFFIX):
                continue
            result_file = folder.with_suffix(".json")
            try:
                r = read_result(result_file) if result_file.exists() else None
            except MerbenchError:
                r = None
            stale = r is None or r.model.get("folder") != folder.name or model_folder_of(result_file) != folder
            if not stale:
                from .model_store import INFO, fold_dirname

                kept = r.model.get("weights_sha256") or {}
                for fold, digest in kept.items():
                    info_file = folder / fold_dirname(fold) / INFO
                    if not info_file.exists() or read_info(info_file.parent)["weights"]["sha256"] != digest:
                        stale = True
        if stale:
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            gone.append((folder, size))
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
    return gone
