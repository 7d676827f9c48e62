"""One registry per kind of plugin: methods, datasets, feature extractors.

Entries are either classes registered with a decorator, or lazy ``"module:Class"``
strings imported on first use (so ``bench list`` does not import torch models).
Duplicate names are rejected; unknown names are answered with the closest matches.
Out-of-tree plugins register through the entry-point groups ``merbench.methods``,
``merbench.datasets`` and ``merbench.features``.
"""

from __future__ import annotations

import difflib
import importlib
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


def import_object(ref: str):
    """Import ``"package.module:Attr"``."""
    module_name, _, attr = ref.partition(":")
    if not attr:
        raise ValueError(f"lazy reference {ref!r} must look like 'package.module:Class'")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T | str] = {}
        self._entry_points_loaded = False

    # -- registration -------------------------------------------------------
    def add(self, name: str, obj: T | str) -> None:
        name = name.strip()
        existing = self._entries.get(name)
        if existing is not None and existing is not obj and not self._same(existing, obj):
            raise ValueError(f"duplicate {self.kind} name {name!r}: already registered as {existing!r}")
        self._entries[name] = obj

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: ``@METHODS.register("mlp")``."""

        def decorator(obj: T) -> T:
            setattr(obj, "name", name)
            self.add(name, obj)
            return obj

        return decorator

    def add_lazy(self, table: dict[str, str]) -> None:
        for name, ref in table.items():
            self.add(name, ref)

    @staticmethod
    def _same(a, b) -> bool:
        # A lazy "module:Class" string and the class it names are the same entry.
        def ref(x):
            return x if isinstance(x, str) else f"{x.__module__}:{x.__qualname__}"

        return ref(a) == ref(b)

    # -- lookup ---------------------------------------------------------------
    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or not self.entry_point_group:
            return
        self._entry_points_loaded = True
        for ep in importlib_metadata.entry_points(group=self.entry_point_group):
            if ep.name not in self._entries:
                self._entries[ep.name] = ep.value

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def suggest(self, name: str, n: int = 3) -> list[str]:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=n, cutoff=0.4)
        # Also offer names that contain what was typed ("blstm" -> "multifocus_blstm").
        for cand in names:
            if name and name.lower() in cand.lower() and cand not in close:
                close.append(cand)
        return close[:n]

    def entry(self, name: str) -> T | str:
        """The registered class, or its lazy ``"module:Class"`` string (not imported)."""
        self._load_entry_points()
        if name not in self._entries:
            close = self.suggest(name)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else None
            known = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}" + (f"; {hint}" if hint else ""),
                fix=f"run `bench list {self.kind}s` to see them all (known: {known})",
            )
        return self._entries[name]

    def get(self, name: str) -> T:
        obj = self.entry(name)
        if isinstance(obj, str):
            obj = import_object(obj)
            registered_name = getattr(obj, "name", name)
            if registered_name != name:
                raise ValueError(f"{self.kind} {name!r} resolves to {obj!r}, which is named {registered_name!r}")
            self._entries[name] = obj
        return obj  # type: ignore[return-value]


METHODS: Registry = Registry("method", "merbench.methods")
DATASETS: Registry = Registry("dataset", "merbench.datasets")
FEATURES: Registry = Registry("feature", "merbench.features")

# Dataset arguments that are files: suffix -> "module:function" turning the file into a
# registered adapter class (e.g. a YAML corpus descriptor); filled from merbench.datasets.
DATASET_FILES: dict[str, str] = {}

_builtins_loaded = False


def load_builtins() -> None:
    """Add the lazy tables of the in-tree methods, corpora and extractors."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    from merbench.datasets import BUILTIN_DATASETS, DATASET_FILE_LOADERS
    from merbench.features import BUILTIN_FEATURES
    from merbench.methods import BUILTIN_METHODS

    METHODS.add_lazy(BUILTIN_METHODS)
    DATASETS.add_lazy(BUILTIN_DATASETS)
    FEATURES.add_lazy(BUILTIN_FEATURES)
    DATASET_FILES.update(DATASET_FILE_LOADERS)


def get_method(name: str):
    load_builtins()
    return METHODS.get(name)


def get_dataset(name: str):
    load_builtins()
    return DATASETS.get(name)


def resolve_dataset(name_or_path):
    """The adapter class for a dataset argument: a registered name, or the path of a corpus file
    (``*.yaml`` / ``*.yml`` descriptor) that its loader registers under the corpus' name."""
    load_builtins()
    text = str(name_or_path)
    for suffix, ref in DATASET_FILES.items():
        if text.lower().endswith(suffix):
            return import_object(ref)(name_or_path)
    try:
        return DATASETS.get(text)
    except UnknownNameError as e:
        # A corpus file is known by its path, not by the name inside it (registered per run only).
        from merbench.datasets.yaml_corpus.adapter import descriptors_named

        found = descriptors_named(text)
        hint = (f"{text!r} is the name inside the corpus descriptor {found[0]}: pass that path instead of the name"
                if found else "for a corpus described by a file, pass the path of that file, e.g. path/to/corpus.yaml")
        raise UnknownNameError(e.message, fix=f"{e.fix}; {hint}" if e.fix else hint) from None


def get_feature(name: str):
    load_builtins()
    return FEATURES.get(name)


def method_config_dir(name: str) -> Path | None:
    """The folder holding a method's ``config.yaml`` (and ``variants/``), found without importing a
    lazily registered method (so no torch): the folder of its module."""
    import importlib.util

    load_builtins()
    ref = METHODS.entry(name)
    if not isinstance(ref, str):
        return getattr(ref, "config_dir", None)
    try:
        spec = importlib.util.find_spec(ref.partition(":")[0])
    except (ImportError, ValueError):
        return None
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    return folder if folder is not None and (folder / "config.yaml").is_file() else None


def method_metadata(name: str):
    """A method's :class:`~merbench.interfaces.MethodMetadata`, read from the ``metadata.yaml``
    beside a lazily registered method without importing it (so no torch); other methods
    (registered classes, plugins without the file) are imported for their ``metadata``."""
    from .metadata import load_method_metadata, metadata_path_of

    load_builtins()
    ref = METHODS.entry(name)
    path = metadata_path_of(ref) if isinstance(ref, str) else None
    return load_method_metadata(path, name) if path else METHODS.get(name).metadata


def listed_method_metadata(name: str):
    """:func:`method_metadata` as ``bench list`` shows it: for a method without ``metadata.yaml``
    (a plugin), its class's own modalities and unit, which its metadata need not repeat."""
    import dataclasses

    load_builtins()
    ref = METHODS.entry(name)
    from .metadata import metadata_path_of

    if isinstance(ref, str) and metadata_path_of(ref):
        return method_metadata(name)
    cls = METHODS.get(name)
    return dataclasses.replace(cls.metadata, modalities=tuple(cls.modalities), unit=cls.unit)

