"""``bench new method|dataset NAME``: a method or corpus folder that runs as generated.

In the repository (the default destination) it writes ``methods/<name>/`` or
``datasets/<name>/`` from the templates in ``templates/<kind>/`` and adds one line to
``BUILTIN_METHODS`` / ``BUILTIN_DATASETS`` in that folder's ``__init__.py``; the file is
edited in place and every other byte of it is kept.

With a destination outside the repository it writes an installable plugin instead:
the package ``<dest>/merbench_<name>/`` and, when ``<dest>`` has no ``pyproject.toml``
yet, one that declares the entry point (``merbench.methods`` / ``merbench.datasets``
group); the entry-point line is returned for the author's own pyproject otherwise.

Any folder whose ``__init__.py`` holds the kind's table counts as "the repository
folder" (tests scaffold into a copy of ``methods/`` that way).
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import shutil
import string
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write, atomic_write_text
from .errors import ConfigError, MerbenchError

TEMPLATES = Path(__file__).resolve().parent / "templates"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Kind:
    kind: str  # "method" or "dataset"
    table: str  # the lazy table in the folder's __init__.py
    group: str  # entry-point group of out-of-tree plugins
    package: str  # import package of the in-repo folder
    module: str  # the module holding the class
    suffix: str  # class name suffix


KINDS = {
    "method": Kind("method", "BUILTIN_METHODS", "merbench.methods", "merbench.methods", "method", "Method"),
    "dataset": Kind("dataset", "BUILTIN_DATASETS", "merbench.datasets", "merbench.datasets", "adapter", "Dataset"),
}


@dataclass
class ScaffoldResult:
    kind: str
    name: str
    class_ref: str  # "package.module:Class", what the table or the entry point names
    folder: Path  # the new package folder
    files: list[Path] = field(default_factory=list)
    registered_in: Path | None = None  # the __init__.py that got the table line (in-repo mode)
    entry_point: str | None = None  # `name = "package.module:Class"` (plugin mode)
    pyproject: Path | None = None  # the pyproject.toml written (plugin mode, when there was none)

    @property
    def plugin(self) -> bool:
        return self.registered_in is None

    def next_steps(self) -> list[str]:
        n, f = self.name, self.folder
        steps = []
        if self.plugin:
            if self.pyproject is None:
                steps.append(f'add to the [project.entry-points."{KINDS[self.kind].group}"] table of your pyproject.toml: '
                             f"{self.entry_point}")
            steps.append(f"pip install -e {self.pyproject.parent if self.pyproject else f.parent}   "
                         f"(then `bench list {self.kind}s` shows {n})")
        if self.kind == "method":
            steps += [f"replace the toy network in {f / 'model.py'} with the paper's model",
                      f"fill in metadata (title, authors, bibtex, reported numbers) in {f / 'method.py'}; "
                      "set modalities there and the extractors under features: in config.yaml",
                      f"python -m pytest tests/test_conformance.py -k {n}",
                      f"bench run {n} synthetic --epochs 2 --seed 0, then bench leaderboard",
                      f"write {f / 'README.md'} (paper, reported numbers, our numbers, deviations)"]
        else:
            steps += [f"set LABELS, the protocols and metadata in {f / 'adapter.py'} (or adapt load() to the corpus' files)",
                      f"bench data check {n} --root PATH/TO/{n}",
                      f"fill in {f / 'README.md'} (source, license, layout, protocols, label map, counts)"]
        return steps


# -- names ------------------------------------------------------------------------------


def class_name(name: str, suffix: str) -> str:
    """``"tiny_fusion"`` -> ``"TinyFusion" + suffix``."""
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p) + suffix


def suggest_name(name: str) -> str:
    """A valid lowercase identifier close to ``name`` ("My-Net" -> "my_net", "2stage" -> "my_2stage")."""
    s = re.sub(r"[^0-9A-Za-z_]+", "_", name.strip())
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", s).lower()  # CamelCase -> camel_case
    s = re.sub(r"_+", "_", s).strip("_")
    if not s:
        return "my_method"
    if s[0].isdigit():
        s = f"my_{s}"
    if keyword.iskeyword(s):
        s += "_"
    return s


def check_name(name: str, kind: str) -> None:
    """Names are folder names, import names and CLI names: lowercase Python identifiers."""
    if not _NAME.match(name) or keyword.iskeyword(name) or not name.isidentifier():
        fixed = suggest_name(name)
        raise ConfigError(f"{kind} name {name!r} is not a lowercase Python identifier (it names a folder and a package)",
                          fix=f"use letters, digits and underscores, starting with a letter, e.g. {fixed!r}")


def _taken_fix(name: str, taken) -> str:
    for cand in (f"my_{name}", f"{name}_v2", f"{name}_2"):
        if cand not in taken:
            return f"choose another name, e.g. {cand!r}"
    return "choose another name"


# -- the lazy table in __init__.py ----------------------------------------------------------


def _find_table(tree: ast.Module, table: str) -> ast.expr | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == table for t in node.targets):
            return node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == table:
            return node.value
    return None


def _table_node(init_file: Path, table: str, data: bytes) -> ast.Dict:
    try:
        tree = ast.parse(data, filename=str(init_file))
    except SyntaxError as e:
        raise ConfigError(f"{init_file}: cannot parse it ({e.msg}, line {e.lineno})", fix="fix the syntax error first") from None
    node = _find_table(tree, table)
    if node is None:
        raise ConfigError(f"{init_file} has no `{table} = {{...}}` table", fix=f"add `{table} = {{}}` to it")
    if not isinstance(node, ast.Dict):
        raise ConfigError(f"{init_file}: {table} is not a dict literal, so it cannot be edited safely",
                          fix=f"write {table} as a literal {{\"name\": \"package.module:Class\", ...}}")
    return node


def read_table(init_file: Path, table: str) -> dict[str, str]:
    """The entries of ``table`` in ``init_file``, read without importing it."""
    init_file = Path(init_file)
    node = _table_node(init_file, table, init_file.read_bytes())
    try:
        return dict(ast.literal_eval(node))
    except ValueError:
        raise ConfigError(f"{init_file}: {table} holds something other than plain strings",
                          fix="keep it a literal table of \"name\": \"package.module:Class\" strings") from None


def has_table(folder: Path, table: str) -> bool:
    init = Path(folder) / "__init__.py"
    if not init.is_file():
        return False
    try:
        return _find_table(ast.parse(init.read_bytes()), table) is not None
    except SyntaxError:
        return False


def add_to_table(init_file: Path, table: str, name: str, ref: str) -> None:
    """Add ``"name": "ref",`` as the last entry of the dict literal ``table`` in ``init_file``.

    Only bytes are inserted (the entry, and a comma after the old last entry if it had
    none); the result is parsed back and checked before it replaces the file atomically.
    """
    init_file = Path(init_file)
    data = init_file.read_bytes()
    node = _table_node(init_file, table, data)
    old = read_table(init_file, table)
    if name in old:
        raise ConfigError(f"{init_file}: {table} already has {name!r} (-> {old[name]})", fix=_taken_fix(name, old))
    # AST positions are (1-based line, UTF-8 byte column): turn them into byte offsets.
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A]

    def offset(line: int, col: int) -> int:
        return starts[line - 1] + col

    close = offset(node.end_lineno, node.end_col_offset) - 1
    if data[close:close + 1] != b"}":  # pragma: no cover - ast positions always end on the brace
        raise ConfigError(f"{init_file}: could not locate the end of {table}", fix=f"add the line by hand: {name!r}: {ref!r}")
    entry = f"{json.dumps(name)}: {json.dumps(ref)}".encode()
    inserts: list[tuple[int, bytes]] = []
    last_end = offset(node.values[-1].end_lineno, node.values[-1].end_col_offset) if node.keys else None
    # Between the last value and the brace there can only be a comma, blanks and comments.
    has_comma = last_end is not None and any(
        b"," in ln.split(b"#", 1)[0] for ln in data[last_end:close].split(b"\n"))
    brace_line_start = starts[node.end_lineno - 1]
    if data[brace_line_start:close].strip() == b"" and node.end_lineno > node.lineno:
        # Multi-line table: a new line before the closing brace, indented like the first entry.
        first = node.keys[0] if node.keys and node.keys[0] is not None else None
        indent = b" " * first.col_offset if first is not None and first.lineno > node.lineno else b"    "
        inserts.append((brace_line_start, indent + entry + b",\n"))
        if last_end is not None and not has_comma:
            inserts.append((last_end, b","))
    elif last_end is None:
        inserts.append((close, entry))
    elif has_comma:
        inserts.append((close, b" " + entry))
    else:
        inserts.append((last_end, b", " + entry))
    new = data
    for pos, text in sorted(inserts, reverse=True):
        new = new[:pos] + text + new[pos:]
    try:
        got = dict(ast.literal_eval(_table_node(init_file, table, new)))
    except (ConfigError, ValueError):  # pragma: no cover - a bug here must not corrupt the file
        got = None
    if got != {**old, name: ref}:  # pragma: no cover
        raise ConfigError(f"{init_file}: editing {table} automatically failed; the file is unchanged",
                          fix=f"add the line by hand: {json.dumps(name)}: {json.dumps(ref)},")
    mode = init_file.stat().st_mode & 0o7777

    def write(tmp: Path) -> None:
        tmp.write_bytes(new)
        os.chmod(tmp, mode)  # the temporary file is created 0600; keep the original mode

    atomic_write(init_file, write)


# -- templates -------------------------------------------------------------------------------


def _render(kind: str, variables: dict[str, str]) -> dict[str, str]:
    """relative output path -> text, for every ``templates/<kind>/**/*.tmpl``."""
    folder = TEMPLATES / kind
    files = sorted(folder.rglob("*.tmpl")) if folder.is_dir() else []
    if not files:
        raise MerbenchError(f"the {kind} templates are missing from {folder}",
                            fix="reinstall merbench from a full checkout (pip install -e .)")
    out = {}
    for f in files:
        rel = f.relative_to(folder).as_posix()[: -len(".tmpl")]
        out[rel] = string.Template(f.read_text(encoding="utf-8")).substitute(variables)
    return out


def _plugin_pyproject(kind: Kind, name: str, package: str, entry_point: str) -> str:
    text = (TEMPLATES / "plugin" / "pyproject.toml.tmpl").read_text(encoding="utf-8")
    return string.Template(text).substitute(
        kind=kind.kind, name=name, dist_name=f"merbench-{name.replace('_', '-')}", group=kind.group,
        entry_point=entry_point, package=package)


def _write_tree(target: Path, files: dict[str, str]) -> list[Path]:
    """Write all files into a hidden sibling folder, then rename it into place, so a failure
    leaves no half-made method folder behind."""
    tmp = target.parent / f".{target.name}.scaffold-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        for rel, text in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [target / rel for rel in files]


# -- scaffolding -----------------------------------------------------------------------------


def default_dest(kind: str) -> Path:
    """The in-repo folder of the kind (``methods/`` or ``datasets/``)."""
    import importlib

    return Path(importlib.import_module(KINDS[kind].package).__file__).resolve().parent


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def scaffold(kind: str, name: str, dest: str | Path | None = None, package: str | None = None) -> ScaffoldResult:
    """Write a new method or dataset ``name`` (see the module docstring for where)."""
    from .paths import PROJECT_ROOT
    from .registry import DATASETS, METHODS, load_builtins

    k = KINDS[kind]
    check_name(name, kind)
    dest = Path(dest).expanduser().resolve() if dest is not None else default_dest(kind)
    in_repo = has_table(dest, k.table)
    if not in_repo and _inside(dest, PROJECT_ROOT.resolve()):
        raise ConfigError(f"--dest {dest} is inside the merbench checkout but is not its {default_dest(kind).name}/ folder",
                          fix=f"leave --dest out to add the {kind} to this repository, or give a folder outside it "
                              "to write a plugin package")
    load_builtins()
    registry = METHODS if kind == "method" else DATASETS
    taken = set(registry.names())  # built-ins, entry points and run-time registrations
    if in_repo:
        taken |= set(read_table(dest / "__init__.py", k.table))
    if name in taken:
        raise ConfigError(f"a {kind} named {name!r} already exists", fix=_taken_fix(name, taken))

    cls = class_name(name, k.suffix)
    if in_repo:
        if package is None:
            package = k.package if dest == default_dest(kind) else dest.name
        folder = dest / name
        module_pkg = f"{package}.{name}"
    else:
        module_pkg = package or f"merbench_{name}"
        folder = dest / module_pkg
    if not all(p.isidentifier() for p in module_pkg.split(".")):
        raise ConfigError(f"package {module_pkg!r} is not an importable name", fix="pass a dotted Python package name")
    if folder.exists():
        raise ConfigError(f"{folder} already exists", fix=f"remove it, or {_taken_fix(name, taken)}")
    ref = f"{module_pkg}.{k.module}:{cls}"
    model_class = class_name(name, "Model")
    variables = {"name": name, "class_name": cls, "model_class": model_class,
                 "model_indent": " " * (len("        return ") + len(model_class) + 1)}
    files = _render(kind, variables)

    result = ScaffoldResult(kind=kind, name=name, class_ref=ref, folder=folder)
    dest.mkdir(parents=True, exist_ok=True)
    result.files = _write_tree(folder, files)
    if in_repo:
        try:
            add_to_table(dest / "__init__.py", k.table, name, ref)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # all or nothing
            raise
        result.registered_in = dest / "__init__.py"
    else:
        result.entry_point = f"{name} = {json.dumps(ref)}"
        pyproject = dest / "pyproject.toml"
        if not pyproject.exists():
            atomic_write_text(pyproject, _plugin_pyproject(k, name, module_pkg, result.entry_point))
            result.pyproject = pyproject
            result.files.append(pyproject)
    return result


def scaffold_method(name: str, dest: str | Path | None = None, package: str | None = None) -> ScaffoldResult:
    return scaffold("method", name, dest, package)


def scaffold_dataset(name: str, dest: str | Path | None = None, package: str | None = None) -> ScaffoldResult:
    return scaffold("dataset", name, dest, package)
