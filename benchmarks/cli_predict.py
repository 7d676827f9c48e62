"""``bench predict``, ``bench export`` and ``bench runs prune``: using and publishing kept models.

Registered in the main CLI (``benchmarks/cli.py``); the work is in :mod:`merbench.predict` and
:mod:`merbench.model_card`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import MerbenchError

console = Console()
runs_app = typer.Typer(no_args_is_help=True, help="Manage what runs keep on disk.")
SHOWN_ROWS = 20


def predict(model: Path = typer.Argument(..., help="a result file, its <stem>.model folder, or a folder from bench export"),
            inputs: List[str] = typer.Argument(..., help="wav / mp4 files, folders of clips, or one corpus name or .yaml "
                                                          "descriptor (with --split)"),
            text: List[str] = typer.Option([], "--text", help="transcript of each clip, in order (default: a sidecar "
                                                               "<clip>.txt)"),
            speaker: List[str] = typer.Option([], "--speaker", help="speaker of each clip, in order (dialogue context)"),
            split: Optional[str] = typer.Option(None, "--split", help="train, valid or test of a corpus (default test)"),
            root: Optional[Path] = typer.Option(None, "--root", help="corpus folder (default: the dataset's)"),
            fold: Optional[str] = typer.Option(None, "--fold", help="which fold's model, when the run has several"),
            on_missing: str = typer.Option("error", "--on-missing", help="error, or zero: a clip without a modality "
                                                                        "the model needs gets zero features (recorded)"),
            output: Path = typer.Option(Path("predictions"), "--output", "-o",
                                        help="writes OUTPUT.csv and OUTPUT.json"),
            device: str = typer.Option("cpu", "--device", help="cpu or cuda")):
    """Label clips or a corpus split with a kept model: class probabilities and the predicted label."""
    from .atomic import atomic_write_json, atomic_write_text, check_writable_dir
    from .predict import load_model
    from .validate import check_device

    if on_missing not in ("error", "zero"):
        raise MerbenchError(f"--on-missing {on_missing!r}", fix="use error or zero")
    check_device(device)
    check_writable_dir(output.parent if str(output.parent) else Path("."), "predictions", "--output")
    m = load_model(model, device=device)
    p = m.predict(inputs, text=text or None, speakers=speaker or None, split=split, root=root,
                  on_missing=on_missing, fold=fold)
    csv_path, json_path = Path(f"{output}.csv"), Path(f"{output}.json")
    atomic_write_text(csv_path, p.to_csv())
    atomic_write_json(json_path, p.to_json())
    table = Table(title=f"{m.method} ({m.info.get('variant')}, {''.join(m.info['modalities'])}) from "
                        f"{m.info['dataset']}/{m.info['protocol']} seed {m.info.get('seed')}")
    for col in ("uid", "pred", "p(pred)", "missing"):
        table.add_column(col, justify="left" if col in ("uid", "pred") else "right")
    for i, uid in enumerate(p.uids[:SHOWN_ROWS]):
        k = int(p.probs[i].argmax())
        table.add_row(uid, p.label_names[k], f"{p.probs[i, k]:.3f}", ",".join(p.missing[i]) or "-")
    console.print(table)
    if len(p.uids) > SHOWN_ROWS:
        console.print(f"... and {len(p.uids) - SHOWN_ROWS} more", markup=False)
    zeroed = sum(1 for x in p.missing if x)
    if zeroed:
        console.print(f"{zeroed} utterance(s) had zero features for a missing modality (column 'missing')", markup=False)
    console.print(f"{len(p.uids)} prediction(s) written to {csv_path} and {json_path}", markup=False)


def export(result: Path = typer.Argument(..., help="a result file whose run kept its model"),
           folder: Path = typer.Argument(..., help="new folder for the model, its card and result")):
    """Export a run's kept model as a self-contained folder with a model card (README.md)."""
    from .model_card import export_model

    out = export_model(result, folder)
    console.print(f"exported to {out} (README.md, result.json, {', '.join(sorted(p.name for p in out.glob('fold-*')))})",
                  markup=False)


@runs_app.command("prune")
def prune(results_dir: Path = typer.Option(Path("results"), "--results-dir", help="folder of result files"),
          dry_run: bool = typer.Option(False, "--dry-run", help="list what would be removed, remove nothing")):
    """Remove kept-model folders that no result file references (replaced or deleted results)."""
    from .model_card import prune_models

    if not results_dir.is_dir():
        raise MerbenchError(f"results folder {results_dir} does not exist", fix="pass --results-dir")
    gone = prune_models(results_dir, dry_run=dry_run)
    for folder, size in gone:
        console.print(f"{'would remove' if dry_run else 'removed'} {folder} ({size / 1e6:.1f} MB)", markup=False)
    total = sum(s for _, s in gone)
    console.print(f"{len(gone)} unreferenced model folder(s), {total / 1e6:.1f} MB"
                  + (" (dry run)" if dry_run else " freed"), markup=False)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
    app.command("export")(export)
    app.add_typer(runs_app, name="runs")

