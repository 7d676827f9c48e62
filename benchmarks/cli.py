"""The ``bench`` command line (typer + rich)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .errors import MerbenchError
from .progress import ProgressLines

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="merbench: multimodal emotion recognition methods under honest, named protocols.")
data_app = typer.Typer(no_args_is_help=True, help="Prepare and inspect corpora.")
features_app = typer.Typer(no_args_is_help=True, help="Extract and cache features.")
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
from .cli_new import new_app  # noqa: E402  (scaffolding: bench new method|dataset)

app.add_typer(new_app, name="new")
from .cli_sweep import sweep as _sweep  # noqa: E402  (bench sweep SUITE.yaml)

app.command("sweep")(_sweep)
from .cli_predict import register as _register_predict  # noqa: E402  (bench predict / export / runs prune)

_register_predict(app)

console = Console()
err_console = Console(stderr=True)


# -- progress -------------------------------------------------------------------------


class RichReporter:
    """Runner reporter: one bar per extraction, one per (seed, fold) training; plain lines (at
    most one per task every ~10 s) when the bars are hidden because output is not a terminal."""

    def __init__(self, progress: Progress):
        self.p = progress
        self.tasks: dict[str, int] = {}
        self.lines = None if not progress.disable else ProgressLines(lambda line: progress.console.print(line, markup=False))

    def _task(self, key: str, total: int, description: str):
        if key not in self.tasks:
            self.tasks[key] = self.p.add_task(description, total=total)
        return self.tasks[key]

    def stage(self, message: str) -> None:
        self.p.console.print(f"[dim]·[/dim] {escape(message)}")

    def progress(self, task: str, done: int, total: int) -> None:
        if self.lines is not None:
            self.lines.update(task, done, total)
            return
        tid = self._task(task, total, task)
        self.p.update(tid, completed=done, total=total)

    def epoch(self, label: str, epoch: int, total: int, row: dict) -> None:
        note = f"valid wF1 {row.get('valid_weighted_f1', float('nan')) * 100:.1f}"
        if self.lines is not None:
            self.lines.update(f"train {label} epochs", epoch, total, note)
            return
        tid = self._task(label, total, f"train {label}")
        self.p.update(tid, completed=epoch, total=total, description=f"train {label} · {note}")

    def warn(self, message: str) -> None:
        self.p.console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                    transient=False, disable=not console.is_terminal and os.environ.get("MERBENCH_PROGRESS") != "1")


# -- list / info ------------------------------------------------------------------------


def _emit_table(columns: list[str], rows: list[list[str]], as_json: bool) -> None:
    """A table three ways: JSON (a list of objects), plain tab-separated text with full cells
    when stdout is not a terminal (pipes, grep, scripts), or a rich table for a person."""
    if as_json:
        sys.stdout.write(json.dumps([dict(zip(columns, r)) for r in rows], indent=2) + "\n")
    elif not console.is_terminal:
        sys.stdout.write("".join("\t".join(r) + "\n" for r in [columns, *rows]))
    else:
        table = Table(show_lines=False)
        for col in columns:
            table.add_column(col)
        for r in rows:
            table.add_row(*r)
        console.print(table)


_JSON_OPTION = typer.Option(False, "--json", help="print JSON for programs instead of a table")


@app.command("list")
def list_cmd(kind: str = typer.Argument(..., help="methods, datasets, protocols or features"),
             as_json: bool = _JSON_OPTION):
    """List registered methods, datasets, protocols or feature extractors."""
    from .protocols import all_protocols
    from .registry import DATASETS, FEATURES, METHODS, load_builtins, listed_method_metadata, method_metadata

    load_builtins()
    kind = kind.lower().rstrip("s") + "s"
    if kind == "methods":  # from each method's metadata.yaml: no method module (or torch) is imported
        columns = ["method", "modalities", "unit", "title"]
        rows = [[n, ",".join(md.modalities), md.unit, md.title] for n, md in ((n, listed_method_metadata(n)) for n in METHODS.names())]
    elif kind == "datasets":
        columns = ["dataset", "modalities", "default protocol", "title"]
        rows = [[n, ",".join(c.modalities), c.default_protocol, c.metadata.title]
                for n, c in ((n, DATASETS.get(n)) for n in DATASETS.names())]
    elif kind == "protocols":
        columns = ["protocol", "dataset", "version", "classes", "headline", "note"]
        rows = [[name, ds, p.version, str(len(p.label_names)), p.headline_metric,
                 "as published (leaky)" if p.as_published else ""] for name, (ds, p) in sorted(all_protocols().items())]
    elif kind == "features":
        columns = ["extractor", "modality", "version", "levels"]
        rows = [[n, c.modality, c.version, ",".join(c.levels)] for n, c in ((n, FEATURES.get(n)) for n in FEATURES.names())]
    else:
        raise MerbenchError(f"cannot list {kind!r}", fix="use one of: methods, datasets, protocols, features")
    _emit_table(columns, rows, as_json)


@app.command()
def info(method: str = typer.Argument(..., help="method name"),
         dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="size the model for this corpus"),
         protocol: Optional[str] = typer.Option(None, "--protocol", "-p"),
         variant: str = typer.Option("default", "--variant"),
         modalities: Optional[str] = typer.Option(None, "--modalities", "-m"),
         as_json: bool = _JSON_OPTION):
    """Metadata, modalities, default epochs, what each variant changes, and parameter count of a method."""
    from .config import config_changes, method_config, variants
    from .corpus import parse_modalities
    from .features.text import architecture_only
    from .registry import get_method
    from .runner import feature_dims
    from .registry import resolve_dataset as get_dataset

    cls = get_method(method)
    md = cls.metadata
    ds_cls = get_dataset(dataset) if dataset else None
    proto = ds_cls.protocol(protocol) if ds_cls else None
    ds_proto = (ds_cls.name if ds_cls else None, proto.name if proto else None)
    cfg = method_config(cls, variant, *ds_proto)
    default_cfg = method_config(cls, "default", *ds_proto)
    # What each variant changes against the default config (the keys a leaderboard row would name).
    changes = {v: config_changes(method_config(cls, v, *ds_proto), default_cfg) for v in variants(cls.config_dir)}
    mods = parse_modalities(modalities or [m for m in cls.modalities if not ds_cls or m in ds_cls.modalities])
    n_classes = len(proto.label_names) if proto else 4
    requests = cls.feature_requests(cfg, mods)
    dims = feature_dims(requests, ds_cls.name if ds_cls else None)
    inst = cls(cfg, mods, tuple(proto.label_names) if proto else tuple(f"c{i}" for i in range(n_classes)))
    with architecture_only():  # a fine-tuned encoder's size needs its architecture, not its weights
        n = inst.num_parameters(dims)
    epochs = _epochs(cls, default_cfg) + (f" (variant {variant}: {_epochs(cls, cfg)})" if variant != "default" else "")
    fields = {"method": cls.name, "title": md.title, "authors": md.authors,
              "venue": f"{md.venue} {md.year or ''}".strip(), "code": md.code_url, "paper": md.paper_url,
              "modalities": ",".join(cls.modalities), "unit": cls.unit, "default epochs": epochs,
              "variants": "default" + "".join(f"; {v}: {', '.join(c) or 'no changes'}" for v, c in changes.items())}
    if as_json:
        out = {**fields, "modalities": list(cls.modalities), "variants": ["default", *variants(cls.config_dir)],
               "variant_changes": changes,
               "reported": [{"dataset": r.dataset, "protocol": r.protocol, "metric": r.metric, "value": r.value,
                             "modalities": r.modalities, "source": r.source} for r in md.reported],
               "dataset": ds_cls.name if ds_cls else None, "protocol": proto.name if proto else None,
               "classes": n_classes, "input_modalities": list(mods),
               "inputs": {m: {"extractor": requests[m].extractor, "level": requests[m].level, "dim": dims[m]}
                          for m in requests},
               "parameters": n if n is not None else 0}
        sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")
        return
    # plain prints (no markup, no wrapping) so that a long title or URL stays whole in a pipe
    plain = Console(soft_wrap=True, highlight=False) if not console.is_terminal else console
    plain.print(f"[bold]{escape(cls.name)}[/bold]: {escape(md.title)}")
    for label, value in list(fields.items())[2:]:
        if value:
            plain.print(f"{label}: {value}", markup=False)
    for r in md.reported:
        plain.print(f"reported: {r.dataset}/{r.protocol} {r.metric} {r.value} ({r.modalities}) {r.source}", markup=False)
    where = f"{ds_cls.name}/{proto.name}" if proto else f"{n_classes} classes"
    plain.print("inputs: " + ", ".join(f"{m}={requests[m].extractor}:{requests[m].level}({dims[m]})" for m in requests),
                markup=False)
    plain.print(f"parameters: {n if n is not None else 0}" + f"  [dim]({escape(where)}, modalities {','.join(mods)})[/dim]")


def _epochs(method_cls, cfg: dict) -> str:
    """Training epochs a config asks for (the trainer's default where it names none)."""
    from .trainer import DEFAULT_TRAIN, TorchMethod

    train = cfg.get("train") or {}
    if "epochs" in train:
        return str(train["epochs"])
    return str(DEFAULT_TRAIN["epochs"]) if issubclass(method_cls, TorchMethod) else "— (not trained by epochs)"


# -- run ---------------------------------------------------------------------------------


@app.command()
def run(method: str = typer.Argument(..., help="method name (bench list methods)"),
        dataset: str = typer.Argument("synthetic", help="dataset name (bench list datasets) or a corpus .yaml descriptor"),
        protocol: Optional[str] = typer.Option(None, "--protocol", "-p", help="protocol (default: the dataset's)"),
        modalities: Optional[str] = typer.Option(None, "--modalities", "-m", help="subset of t,a,v"),
        seeds: Optional[int] = typer.Option(None, "--seeds", help="run seeds 0..N-1 (default: the protocol's)"),
        seed: Optional[int] = typer.Option(None, "--seed", help="run this one seed"),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="override train.epochs"),
        variant: str = typer.Option("default", "--variant", help="a config variant of the method"),
        set_: List[str] = typer.Option([], "--set", help="config override key=value (repeatable)"),
        results_dir: Path = typer.Option(Path("results"), "--results-dir", help="where result files go"),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
        root: Optional[Path] = typer.Option(None, "--root", help="corpus folder (default: the dataset's)"),
        on_bad_media: str = typer.Option("error", "--on-bad-media", help="error, or zero: unreadable media -> zero features"),
        force: bool = typer.Option(False, "--force", help="retrain seeds from scratch (no checkpoint or "
                                                          "finished fold reused) and replace their results"),
        keep_model: bool = typer.Option(True, "--keep-model/--no-keep-model",
                                        help="keep each fold's selected model beside the result (<stem>.model/), "
                                             "for bench predict and bench export")):
    """Train and evaluate METHOD on DATASET under a named protocol; write result files."""
    from .results import read_result
    from .runner import RunRequest, run as run_request
    from .validate import check_device

    if seed is not None and seeds is not None:
        raise MerbenchError("give either --seed or --seeds, not both")
    check_device(device)
    if on_bad_media not in ("error", "zero"):
        raise MerbenchError(f"--on-bad-media {on_bad_media!r}", fix="use error or zero")
    req = RunRequest(method=method, dataset=dataset, protocol=protocol, modalities=modalities,
                     seeds=[seed] if seed is not None else (list(range(seeds)) if seeds is not None else None),
                     variant=variant, epochs=epochs, overrides=list(set_), results_dir=results_dir, device=device,
                     root=root, on_bad_media=on_bad_media, force=force, keep_model=keep_model)
    with _progress() as p:
        paths = run_request(req, RichReporter(p))
    _print_results([read_result(x) for x in paths])


def _print_results(results) -> None:
    import numpy as np

    from .metrics import METRICS, ordered

    if not results:
        return
    r0 = results[0]
    # The metrics the protocol computed, headline first.
    shown = ordered([m for m in METRICS if getattr(r0.test, m) is not None], first=r0.headline_metric)
    table = Table(title=f"{r0.method} ({r0.variant}) on {r0.dataset} / {r0.protocol}, modalities {r0.modalities}")
    selected = f"best valid {r0.select_metric}" if r0.select_metric else "best valid"  # the metric that chose the epoch
    for col in ("seed", *(METRICS[m].label for m in shown), selected, "epochs", "time s"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(str(r.seed), *(f"{getattr(r.test, m) * 100:.2f}" for m in shown),
                      ", ".join(f"{f.best_valid_score * 100:.2f}" for f in r.folds if f.best_valid_score is not None),
                      ", ".join(str(f.epochs_run) for f in r.folds), f"{r.provenance.wall_time_s:.1f}")
    if len(results) > 1:
        def ms(key):
            v = np.array([getattr(r.test, key) for r in results]) * 100
            return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"

        table.add_row("mean", *(ms(m) for m in shown), "", "", "")
    console.print(table)


# -- leaderboard ------------------------------------------------------------------------


@app.command()
def leaderboard(results_dir: Path = typer.Option(Path("results"), "--results-dir", help="folder of result files"),
                output: Optional[Path] = typer.Option(None, "--output", "-o", help="write markdown here (default: stdout)"),
                title: str = typer.Option("merbench leaderboard", "--title"),
                extras: bool = typer.Option(True, "--extras/--no-extras",
                                            help="confidence intervals, significance, ablation matrices and plots"),
                strict: bool = typer.Option(False, "--strict", help="fail on a result file that cannot be read "
                                                                    "(default: skip it and list it)")):
    """Turn all result files into a markdown leaderboard."""
    from .atomic import atomic_write_text, check_writable_dir
    from .results import unreadable_results
    from merbench.leaderboard.render import render_markdown

    if not results_dir.is_dir():
        raise MerbenchError(f"results folder {results_dir} does not exist",
                            fix="run `bench run <method> <dataset>` first, or pass --results-dir")
    if output:
        check_writable_dir(output.parent, "the leaderboard", "--output")
    unreadable = unreadable_results(results_dir)
    if unreadable and strict:
        path, why = unreadable[0]
        raise MerbenchError(f"{len(unreadable)} result file(s) cannot be read, e.g. {why}",
                            fix="delete or move them, or run without --strict to skip them")
    for path, why in unreadable:
        err_console.print(f"[yellow]skipped:[/yellow] {escape(why)}", highlight=False, soft_wrap=True)
    md = render_markdown(results_dir, title=title)
    if extras:
        from merbench.leaderboard.ablation import render_extras

        md_dir = output.parent if output else Path(".")
        more = render_extras(results_dir, md_dir / "leaderboard_assets", markdown_dir=md_dir, figures=output is not None)
        if more:
            md = md + "\n" + more
    if output:
        atomic_write_text(output, md)
        console.print(f"leaderboard written to {output}", markup=False)
    else:
        sys.stdout.write(md)


# -- data ---------------------------------------------------------------------------------


@data_app.command("prepare")
def data_prepare(dataset: str = typer.Argument(...), root: Optional[Path] = typer.Option(None, "--root")):
    """Generate (synthetic) or validate a corpus so that runs can start."""
    from .registry import resolve_dataset as get_dataset

    adapter = get_dataset(dataset)(root)
    adapter.prepare(progress=True)
    corpus = adapter.load()
    console.print(f"{dataset}: {len(corpus)} utterances in {len(corpus.dialogues())} dialogues at {corpus.root} "
                  f"(modalities {','.join(corpus.modalities)})", markup=False, soft_wrap=True)


@data_app.command("check")
def data_check(dataset: str = typer.Argument(...), protocol: Optional[str] = typer.Option(None, "--protocol", "-p"),
               root: Optional[Path] = typer.Option(None, "--root")):
    """Counts per split and class under a protocol, dialogues and turns, and missing media."""
    from collections import Counter

    from .registry import resolve_dataset as get_dataset

    cls = get_dataset(dataset)
    corpus = cls(root).load()  # duplicate (dialogue, turn) pairs fail here, with the fix
    proto = cls.protocol(protocol)
    splits = proto.build(corpus)  # and dialogues that span splits here
    dialogue_of = {u.uid: u.dialogue_id for u in corpus.utterances}
    for fold in splits.folds:
        table = Table(title=f"{dataset} / {proto.name} / {fold.name} (manifest {splits.manifest_hash[:12]})")
        table.add_column("split")
        for n in proto.label_names:
            table.add_column(n, justify="right")
        for col in ("total", "dialogues", "turns per dialogue (mean / min / max)"):
            table.add_column(col, justify="right")
        for s in ("train", "valid", "test"):
            c = Counter(splits.labels[u] for u in fold.ids(s))
            turns = list(Counter(dialogue_of[u] for u in fold.ids(s)).values())
            shape = f"{sum(turns) / len(turns):.1f} / {min(turns)} / {max(turns)}" if turns else "—"
            table.add_row(s, *[str(c.get(i, 0)) for i in range(len(proto.label_names))], str(len(fold.ids(s))),
                          str(len(turns)), shape)
        console.print(table)
    # Only the media the corpus declares: a text-only corpus has no audio or video to miss.
    declared = [(attr, name) for m, attr, name in (("a", "audio_path", "audio"), ("v", "video_path", "video"))
                if m in cls.modalities]
    if not declared:
        return
    media = Table(title=f"{dataset} media at {corpus.root}")
    for col in ("modality", "present", "missing", "unreadable", "duration s (mean / min / max)", "total h"):
        media.add_column(col, justify="right" if col != "modality" else "left")
    for attr, name in declared:
        paths = [getattr(u, attr) for u in corpus.utterances]
        present = [p for p in paths if p and Path(p).exists()]
        durations, unreadable = media_durations(present, kind=name)
        stats = (f"{sum(durations) / len(durations):.2f} / {min(durations):.2f} / {max(durations):.2f}" if durations else "—")
        media.add_row(name, str(len(present)), str(len(paths) - len(present)), str(len(unreadable)), stats,
                      f"{sum(durations) / 3600:.2f}" if durations else "—")
        for path, reason in unreadable[:5]:
            console.print(f"[yellow]unreadable {name}:[/yellow] {escape(f'{path}: {reason}')}", soft_wrap=True)
    console.print(media)


def media_durations(paths, kind: str) -> tuple[list[float], list[tuple[str, str]]]:
    """Durations from file headers only (fast on a whole corpus); ``kind`` names the modality."""
    from .features.media import media_duration

    durations, bad = [], []
    for p in paths:
        try:
            durations.append(media_duration(p))
        except Exception as e:  # noqa: BLE001 - report every unreadable file, do not stop
            bad.append((str(p), f"{type(e).__name__}: {e}"))
    return durations, bad


from .download import download as _download  # noqa: E402  (bench data download DATASET)

data_app.command("download")(_download)


# -- features -------------------------------------------------------------------------------


def parse_options(items: List[str]) -> dict:
    """``--option key=value`` pairs -> a dict; values are read as YAML (``layer=6`` is an int)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MerbenchError(f"--option {item!r} is not key=value", fix="write e.g. --option model=path/to/model")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def build_extractor(name: str, device: str = "cpu", batch_size: Optional[int] = None, options: Optional[dict] = None):
    """An extractor by name, on ``device``, with the model batch size set where it has one and
    ``options`` (a feature request's ``options``: checked against what the extractor accepts)."""
    from .features.factory import make_extractor
    from .interfaces import FeatureRequest

    return make_extractor(FeatureRequest(extractor=name, options=dict(options or {})), device=device, batch_size=batch_size)


@features_app.command("extract")
def features_extract(dataset: str = typer.Argument(...),
                     extractor: str = typer.Option(..., "--extractor", "-e", help="bench list features"),
                     root: Optional[Path] = typer.Option(None, "--root"),
                     device: str = typer.Option("cpu", "--device", help="cpu or cuda (for model-based extractors)"),
                     batch_size: Optional[int] = typer.Option(None, "--batch-size", help="utterances per model batch"),
                     workers: int = typer.Option(0, "--workers", help="processes extracting in parallel (0: one per core for "
                                                                      "one-core extractors such as openSMILE, else 1)"),
                     option: List[str] = typer.Option([], "--option", "-o",
                                                      help="extractor option key=value (repeatable), as a config's "
                                                           "features ... options, e.g. model=NAME_OR_FOLDER")):
    """Extract one extractor's features for a whole corpus into the cache (resumable)."""
    from .features.store import bad_media, default_workers, extract_corpus
    from .registry import resolve_dataset as get_dataset

    if workers < 0:
        raise MerbenchError(f"--workers {workers}: need 0 (one per core where it helps) or more")
    ext = build_extractor(extractor, device, batch_size, parse_options(option))
    workers = workers or default_workers(ext)
    corpus = get_dataset(dataset)(root).load()
    with _progress() as p:
        reporter = RichReporter(p)
        if getattr(ext, "is_pack", False):  # a feature pack: its report; bad entries are cached as unreadable
            from .features.packs.check import check_pack

            check_pack(ext, corpus, "zero", reporter)
        entry = extract_corpus(corpus, ext, workers=workers,
                               progress=lambda d, t: reporter.progress(f"extract {extractor}", d, t), warn=reporter.warn)
    bad = bad_media(entry)
    console.print(f"{extractor}: {len(corpus)} utterances cached at {entry}" + (f", {len(bad)} unreadable" if bad else ""),
                  markup=False, soft_wrap=True)


@features_app.command("export")
def features_export(dataset: str = typer.Argument(...),
                    extractor: str = typer.Option(..., "--extractor", "-e", help="bench list features"),
                    fmt: str = typer.Option(..., "--format", help="npy-dir, json, dialogue-pickle, mmsa, table or "
                                                                  "dataframe-pickle"),
                    output: Path = typer.Option(..., "--output", help="folder to write the pack into"),
                    level: str = typer.Option("pooled", "--level", help="pooled (D,) or frames (T, D)"),
                    key: Optional[str] = typer.Option(None, "--key", help="field / file / column name in the pack "
                                                                          "(default: the modality's name)"),
                    root: Optional[Path] = typer.Option(None, "--root"),
                    protocol: Optional[str] = typer.Option(None, "--protocol", "-p",
                                                           help="whose first fold names each utterance's split"),
                    device: str = typer.Option("cpu", "--device"),
                    option: List[str] = typer.Option([], "--option", help="extractor option key=value (repeatable)")):
    """Write one extractor's cached features of a corpus as a feature pack (extracting first if needed)."""
    from .corpus import MODALITY_NAMES
    from .features.packs.export import export
    from .features.store import extract_corpus, load_table
    from .registry import resolve_dataset as get_dataset

    if level not in ("pooled", "frames"):
        raise MerbenchError(f"--level {level!r}", fix="use pooled or frames")
    ext = build_extractor(extractor, device, None, parse_options(option))
    adapter = get_dataset(dataset)
    corpus = adapter(root).load()
    fold = adapter.protocol(protocol).build(corpus).folds[0]
    split_of = {u: s for s, uids in (("train", fold.train), ("valid", fold.valid), ("test", fold.test)) for u in uids}
    with _progress() as p:
        task = p.add_task(f"extract {extractor}", total=len(corpus))
        entry = extract_corpus(corpus, ext, progress=lambda d, t: p.update(task, completed=d, total=t))
    table = load_table(entry, frames=level == "frames")
    key = key or MODALITY_NAMES[ext.modality]
    path, n = export(corpus, table, fmt, output, key, level, split_of)
    pack = {"t": "text-pack", "a": "audio-pack", "v": "video-pack"}[ext.modality]
    console.print(f"{extractor} ({level}): {n} utterances written to {path}", highlight=False, soft_wrap=True)
    console.print(f"read back with: features.{ext.modality}: {{extractor: {pack}, level: {level}, options: "
                  f"{{path: {path}, format: {fmt}, key: {key}}}}}", highlight=False, soft_wrap=True, markup=False)


# -- entry point --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # Without standalone mode typer returns (not raises) exit codes, Ctrl-C included.
        rc = app(args=argv, standalone_mode=False)
        if rc == 130:
            raise KeyboardInterrupt
        return rc if isinstance(rc, int) else 0
    except MerbenchError as e:
        # soft_wrap: a path in a message must stay one piece, copyable from the terminal
        err_console.print(f"[bold red]error:[/bold red] {escape(e.message)}", highlight=False, soft_wrap=True, markup=True)
        if e.fix:
            err_console.print(f"[bold]fix:[/bold] {escape(e.fix)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted: run the same command again to resume (finished folds and seeds are kept)")
        return 130
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
