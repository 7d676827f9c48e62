"""Loading pickles (and object arrays in .npz files) without running their code.

A pickle names the functions and classes it needs ("globals") and the unpickler calls
them, so a crafted file can run anything (``os.system`` through ``__reduce__``). The
corpora ship some annotations as pickles (COSMIC's ``meld.pkl`` / ``iemocap.pkl``, the
``label_*.npz`` object arrays of MERTools). These only need numpy's array
reconstruction and plain containers, so the unpickler below resolves exactly those
globals from a fixed table (no module named in the file is ever imported) and refuses
everything else with :class:`~merbench.errors.UnsafePickleError`.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import MerbenchError, UnsafePickleError

try:  # numpy >= 2 keeps the implementation in numpy._core; numpy.core is a deprecated alias
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

import _codecs


def _allowed_table() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Bytes pickled by Python 3 at protocol 2 (e.g. array buffers) come back through
        # _codecs.encode(str, "latin1"): a pure string-to-bytes function.
        ("_codecs", "encode"): _codecs.encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("collections", "Counter"): collections.Counter,
        ("collections", "deque"): collections.deque,
    }
    # Arrays written by numpy 1.x name numpy.core, by numpy 2.x numpy._core.
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        table[(f"{mod}.multiarray", "scalar")] = _multiarray.scalar
        if hasattr(_numeric, "_frombuffer"):  # protocol 5 array pickles
            table[(f"{mod}.numeric", "_frombuffer")] = _numeric._frombuffer
    plain = {
        "set": set, "frozenset": frozenset, "complex": complex, "slice": slice, "range": range,
        "bytearray": bytearray, "bytes": bytes, "list": list, "dict": dict, "tuple": tuple,
        "str": str, "int": int, "float": float, "bool": bool,
    }
    for name, obj in plain.items():
        table[("builtins", name)] = obj
        table[("__builtin__", name)] = obj  # Python 2 pickles
    table[("__builtin__", "xrange")] = range
    table[("__builtin__", "unicode")] = str
    table[("__builtin__", "long")] = int
    return table


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed_table()

_FIX = ("merbench only unpickles numpy arrays and plain containers. If the file comes from a source "
        "you trust, convert it once to .npz (without object arrays) or .json with your own script; "
        "if this global is harmless and common, report it so it can be added to "
        "merbench.safe_pickle.ALLOWED_GLOBALS")


def pandas_globals() -> dict[tuple[str, str], Any]:
    """What a pickled pandas DataFrame / Series needs beyond arrays (opt-in: ``safe_load(...,
    allow=pandas_globals())``): the frame, series and index classes, the block manager and the
    functions that rebuild blocks and indexes from arrays, under the module names pandas 1.x to 3.x
    write, and, for pandas 3's Arrow-backed strings, pyarrow's array-from-buffers functions. Each
    builds data from data; none imports a module or calls what the file names."""
    import pandas as pd
    from pandas.core.internals import managers

    table: dict[tuple[str, str], Any] = {}

    def add(modules: tuple[str, ...], name: str, obj: Any) -> None:
        if obj is not None:
            for m in modules:
                table[(m, name)] = obj

    frame_mods = ("pandas", "pandas.core.frame")
    add(frame_mods, "DataFrame", pd.DataFrame)
    add(("pandas", "pandas.core.series"), "Series", pd.Series)
    add(("pandas", "pandas.core.indexes.base"), "Index", pd.Index)
    add(("pandas", "pandas.core.indexes.range"), "RangeIndex", pd.RangeIndex)
    add(("pandas", "pandas.core.indexes.multi"), "MultiIndex", pd.MultiIndex)
    add(("pandas", "pandas.core.arrays.string_"), "StringDtype", pd.StringDtype)
    add(("pandas", "pandas.core.arrays.categorical"), "Categorical", pd.Categorical)
    add(("pandas", "pandas.core.dtypes.dtypes"), "CategoricalDtype", pd.CategoricalDtype)
    add(("pandas.arrays", "pandas.core.arrays.string_arrow"), "ArrowStringArray",
        getattr(pd.arrays, "ArrowStringArray", None))
    add(("pandas.arrays", "pandas.core.arrays.string_"), "StringArray", getattr(pd.arrays, "StringArray", None))
    from pandas.core.indexes import base as index_base

    add(("pandas.core.indexes.base",), "_new_Index", index_base._new_Index)
    for name in ("BlockManager", "SingleBlockManager"):
        add(("pandas.core.internals.managers",), name, getattr(managers, name, None))
    try:
        from pandas._libs import internals as libinternals

        add(("pandas._libs.internals",), "_unpickle_block", getattr(libinternals, "_unpickle_block", None))
    except ImportError:  # pragma: no cover - older pandas
        pass
    from pandas.core.internals import blocks

    for name in ("new_block", "make_block", "Block", "ObjectBlock", "FloatBlock", "IntBlock", "NumpyBlock"):
        add(("pandas.core.internals.blocks",), name, getattr(blocks, name, None))
    try:
        import pyarrow.lib as pa_lib

        for name in ("_restore_array", "py_buffer", "type_for_alias"):
            add(("pyarrow.lib",), name, getattr(pa_lib, name, None))
    except ImportError:  # pragma: no cover - pandas without pyarrow pickles no Arrow strings
        pass
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` only answers from :data:`ALLOWED_GLOBALS` (and ``allow``)."""

    def __init__(self, file: IO[bytes], *, source: str = "<stream>", encoding: str = "latin1",
                 allow: dict[tuple[str, str], Any] | None = None):
        super().__init__(file, encoding=encoding)
        self.source = source
        self.allow = allow or {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)] if (module, name) in ALLOWED_GLOBALS else self.allow[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle {self.source}: it asks for the global {module}.{name}, "
                "which is not an array or plain container (loading it could run code)",
                fix=_FIX,
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to unpickle {self.source}: it uses persistent ids ({pid!r})", fix=_FIX)


def _name_of(path_or_file: Any) -> str:
    if isinstance(path_or_file, (str, Path)):
        return str(path_or_file)
    return str(getattr(path_or_file, "name", "<stream>"))


def _unpickle(fh: IO[bytes], source: str, encoding: str, allow: dict | None = None) -> Any:
    try:
        return RestrictedUnpickler(fh, source=source, encoding=encoding, allow=allow).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise MerbenchError(f"cannot unpickle {source}: {type(e).__name__}: {e}",
                            fix="the file is truncated or not a pickle; download it again") from e


def safe_load(path_or_file: str | Path | IO[bytes], encoding: str = "latin1",
              allow: dict[tuple[str, str], Any] | None = None) -> Any:
    """Unpickle a file (path or binary file object) allowing only arrays and plain containers.

    ``encoding="latin1"`` reads Python 2 pickles (their ``str`` are bytes) and numpy arrays
    written by Python 2 the way ``pickle.load(f, encoding="latin1")`` does.
    """
    source = _name_of(path_or_file)
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "rb") as fh:
            return _unpickle(fh, source, encoding, allow)
    return _unpickle(path_or_file, source, encoding, allow)


def _read_npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if hasattr(fmt, "_read_array_header"):  # handles versions 1.0, 2.0 and 3.0
        return fmt._read_array_header(fh, version)
    return fmt.read_array_header_1_0(fh) if version == (1, 0) else fmt.read_array_header_2_0(fh)


def safe_load_npy(path_or_file: str | Path | IO[bytes], encoding: str = "latin1") -> np.ndarray:
    """Read one .npy array; object arrays go through the restricted unpickler."""
    source = _name_of(path_or_file)
    if isinstance(path_or_file, (str, Path)):
        data = Path(path_or_file).read_bytes()
    else:
        data = path_or_file.read()
    return _npy_from_bytes(data, source, encoding)


def _npy_from_bytes(data: bytes, source: str, encoding: str) -> np.ndarray:
    fh = io.BytesIO(data)
    try:
        shape, _fortran, dtype = _read_npy_header(fh)
    except ValueError as e:
        raise MerbenchError(f"{source} is not a .npy array: {e}", fix="download or write the file again") from e
    if not dtype.hasobject:
        fh.seek(0)
        return np.lib.format.read_array(fh, allow_pickle=False)
    # np.save pickles the whole object array after the header.
    arr = _unpickle(fh, source, encoding)
    if not isinstance(arr, np.ndarray):
        raise UnsafePickleError(f"{source}: the pickled payload is a {type(arr).__name__}, not an array",
                                fix="write the file again with np.save / np.savez")
    if arr.shape != tuple(shape):
        raise MerbenchError(f"{source}: header says shape {tuple(shape)} but the payload has {arr.shape}",
                            fix="the file is damaged; download or write it again")
    return arr


def safe_load_npz(path: str | Path, encoding: str = "latin1") -> dict[str, np.ndarray]:
    """All arrays of an .npz file as ``{key: array}`` (keys without ``.npy``).

    Plain arrays are read with ``allow_pickle=False``; object arrays (which ``np.load``
    would only read with ``allow_pickle=True``, i.e. running any code) are parsed
    through the restricted unpickler.
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise MerbenchError(f"{path} is not an .npz (zip) file: {e}", fix="download or write the file again") from e
    with zf:
        for member in zf.namelist():
            key = member[:-4] if member.endswith(".npy") else member
            out[key] = _npy_from_bytes(zf.read(member), f"{path}[{member}]", encoding)
    return out
