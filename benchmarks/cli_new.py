"""``bench new method|dataset NAME``: scaffold a method or a corpus adapter.

Mounted in the main CLI with ``app.add_typer(new_app, name="new")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

new_app = typer.Typer(no_args_is_help=True, help="Scaffold a new method or corpus that runs as generated.")
console = Console()

_DEST_HELP = ("where to write it (default: this repository's {folder}/ folder, registered in {folder}/__init__.py); "
              "a folder outside the repository gets an installable plugin package registered by entry point")


def _report(result) -> None:
    from .paths import PROJECT_ROOT

    def show(p: Path) -> str:
        try:
            return str(p.relative_to(PROJECT_ROOT.resolve()))
        except ValueError:
            return str(p)

    console.print(f"[bold green]created[/bold green] {result.kind} [bold]{result.name}[/bold] in {show(result.folder)}")
    for f in result.files:
        console.print(f"  {show(f)}", highlight=False, soft_wrap=True)
    if result.registered_in is not None:
        console.print(f"registered in {show(result.registered_in)}: {result.name} -> {result.class_ref}", highlight=False)
    else:
        from .scaffold import KINDS

        group = KINDS[result.kind].group
        where = f"written to {show(result.pyproject)}" if result.pyproject else "add it to your pyproject.toml"
        console.print(f"entry point ({where}):", highlight=False)
        console.print(f'  [project.entry-points."{group}"]\n  {result.entry_point}', highlight=False, markup=False)
    console.print("next:")
    for i, step in enumerate(result.next_steps(), 1):
        console.print(f"  {i}. {step}", highlight=False, markup=False, soft_wrap=True)


@new_app.command("method")
def new_method(name: str = typer.Argument(..., help="method name: a lowercase Python identifier, e.g. tiny_fusion"),
               dest: Optional[Path] = typer.Option(None, "--dest", help=_DEST_HELP.format(folder="methods"))):
    """Scaffold methods/NAME: model, TorchMethod, config, an ablation variant and a README."""
    from .scaffold import scaffold_method

    _report(scaffold_method(name, dest))


@new_app.command("dataset")
def new_dataset(name: str = typer.Argument(..., help="dataset name: a lowercase Python identifier, e.g. my_corpus"),
                dest: Optional[Path] = typer.Option(None, "--dest", help=_DEST_HELP.format(folder="datasets"))):
    """Scaffold datasets/NAME: an adapter reading a CSV, its protocol and a README."""
    from .scaffold import scaffold_dataset

    _report(scaffold_dataset(name, dest))
