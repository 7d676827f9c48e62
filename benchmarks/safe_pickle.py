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


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` only answers from :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file: IO[bytes], *, source: str = "<stream>", encoding: str = "latin1"):
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
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


def _unpickle(fh: IO[bytes], source: str, encoding: str) -> Any:
    try:
        return RestrictedUnpickler(fh, source=source, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise MerbenchError(f"cannot unpickle {source}: {type(e).__name__}: {e}",
                            fix="the file is truncated or not a pickle; download it again") from e


def safe_load(path_or_file: str | Path | IO[bytes], encoding: str = "latin1") -> Any:
    """Unpickle a file (path or binary file object) allowing only arrays and plain containers.

    ``encoding="latin1"`` reads Python 2 pickles (their ``str`` are bytes) and numpy arrays
    written by Python 2 the way ``pickle.load(f, encoding="latin1")`` does.
    """
    source = _name_of(path_or_file)
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "rb") as fh:
            return _unpickle(fh, source, encoding)
    return _unpickle(path_or_file, source, encoding)


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
