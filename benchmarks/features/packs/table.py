"""``table``: a CSV / TSV / xlsx with vector columns beside an id column.

Vectors either as a list literal in one cell (the cross-modal attention spreadsheet: ``V1`` ..
``V4``, ``A2``; frames as a list of lists) or as numbered columns ``<key>_0 .. <key>_{D-1}``
(``key`` is then the prefix); ``key: V1,V3,V4`` joins several into one vector. The id column is the first of ``uid``, ``id``, ``file name``,
``file_name``, ``filename``, ``file``, ``name``, ``utterance_id`` (case-insensitive; a media
extension is dropped: ``dia0_utt0.mp4`` -> ``dia0_utt0``), or else ``Dialogue_ID`` + ``Utterance_ID``
as ``dia{d}_utt{u}``. A ``label`` / ``emotion`` column is the pack's labels, a ``split`` column its
split. :mod:`.dataframe` reads a pickled DataFrame through :func:`from_frame` too.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_write_text
from .pack import Pack, PackError, as_array

ID_COLUMNS = ("uid", "id", "file name", "file_name", "filename", "file", "name", "utterance_id")
LABEL_COLUMNS = ("label", "emotion", "labels", "emotion_label")
MEDIA_EXT = re.compile(r"\.(mp4|avi|mkv|wav|flac|mp3|npy|npz)$", re.IGNORECASE)


def _column(columns, wanted) -> str | None:
    low = {str(c).strip().lower(): c for c in columns}
    return next((low[w] for w in wanted if w in low), None)


def _cell(value: Any, where: str) -> Any:
    """A vector cell: an array, a list, or a list literal in a string (read with literal_eval: data only)."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise PackError(f"{where}: cell is not a list literal ({value[:60]!r})",
                            fix="store vectors as [x, y, ...] or as numbered columns key_0, key_1, ...") from None
    return value


def _vector_columns(df) -> dict[str, list]:
    """Candidate keys: name -> columns (one list-literal / array column, or numbered columns)."""
    import pandas as pd

    out: dict[str, list] = {}
    numbered: dict[str, list[tuple[int, Any]]] = {}
    for c in df.columns:
        m = re.match(r"^(.*?)_?(\d+)$", str(c))
        if m and m.group(1) and pd.api.types.is_numeric_dtype(df[c].dtype):
            numbered.setdefault(m.group(1), []).append((int(m.group(2)), c))
            continue
        first = next((v for v in df[c] if v is not None and not (isinstance(v, float) and np.isnan(v))), None)
        if isinstance(first, (list, tuple, np.ndarray)) or (isinstance(first, str) and first.lstrip().startswith("[")):
            out[str(c)] = [c]
    for prefix, cols in numbered.items():
        idx = sorted(cols)
        if [i for i, _ in idx] == list(range(idx[0][0], idx[0][0] + len(idx))) and len(idx) > 1:
            out[prefix] = [c for _, c in idx]
    return out


def from_frame(df, source: str, fmt: str, key: str | None) -> Pack:
    cands = _vector_columns(df)
    if key is None:
        if len(cands) != 1:
            raise PackError(f"{source}: " + (f"several vector columns ({', '.join(cands)})" if cands
                                             else f"no vector column (columns: {', '.join(map(str, df.columns))})"),
                            fix="set key to the column (or the prefix of numbered columns) of this modality")
        key = next(iter(cands))
    names = [k.strip() for k in str(key).split(",")]
    for name in names:
        if name not in cands:
            raise PackError(f"{source}: no vector column {name!r}; vector columns: {', '.join(cands) or 'none'}",
                            fix="set key to a column of lists / arrays, the prefix of numbered columns key_0, "
                                "key_1 ..., or several of them joined by commas (V1,V3,V4)")
    id_col = _column(df.columns, ID_COLUMNS)
    if id_col is not None:
        keys = [MEDIA_EXT.sub("", str(v).strip()) for v in df[id_col]]
    else:
        d, u = _column(df.columns, ("dialogue_id",)), _column(df.columns, ("utterance_id",))
        if d is None or u is None:
            raise PackError(f"{source}: no id column (looked for {', '.join(ID_COLUMNS)}, or Dialogue_ID and "
                            f"Utterance_ID; columns: {', '.join(map(str, df.columns))})",
                            fix="add a column uid with our utterance ids, or the pack's own ids and set the option ids")
        keys = [f"dia{int(a)}_utt{int(b)}" for a, b in zip(df[d], df[u])]
    label_col = _column(df.columns, LABEL_COLUMNS)
    split_col = _column(df.columns, ("split",))
    pack = Pack(source=source, format=fmt)
    # per key name: an (N, D) block of numbered columns, or None (one cell per row to read)
    blocks = {n: df[cands[n]].to_numpy(dtype=np.float32) if len(cands[n]) > 1 else None for n in names}
    for i, k in enumerate(keys):
        where = f"{source}, row {i + 1} ({k})"
        parts = [as_array(blocks[n][i] if blocks[n] is not None else _cell(df[cands[n][0]].iloc[i], where),
                          f"{where}, column {n}") for n in names]
        if len(parts) > 1 and len({p.shape[:-1] for p in parts}) > 1:
            raise PackError(f"{where}: columns {', '.join(names)} have shapes {[p.shape for p in parts]}, which "
                            "cannot be joined", fix="join only pooled columns, or frames of equal length")
        pack.add(k, parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1), where)
        pack.files.pop(k, None)  # one file: messages name the row through the key
        if label_col is not None:
            lab = df[label_col].iloc[i]
            pack.labels[k] = lab.item() if isinstance(lab, np.generic) else lab
        if split_col is not None:
            pack.split[k] = str(df[split_col].iloc[i])
    return pack


def read(path: Path, key: str | None = None) -> Pack:
    import pandas as pd

    name = path.name.lower()
    try:
        if name.endswith((".xlsx", ".xls")):
            df = pd.read_excel(path)  # needs openpyxl
        else:
            df = pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
    except ImportError as e:
        raise PackError(f"{path}: reading spreadsheets needs {e.name or 'openpyxl'}",
                        fix="pip install openpyxl, or save the sheet as CSV") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise PackError(f"{path}: cannot read the table: {e}", fix="write it again as CSV or xlsx") from None
    return from_frame(df, str(path), "table", key)


def write(out: Path, rows, key: str | None = None) -> Path:
    """CSV: ``uid, label, split`` and numbered columns ``<key>_0 ..`` (pooled) or one list-literal
    column ``<key>`` (frames)."""
    name = key or "features"
    frames = bool(rows) and rows[0].vector.ndim == 2
    buf = io.StringIO()
    w = csv.writer(buf)
    dim = rows[0].vector.shape[-1] if rows else 0
    w.writerow(["uid", "label", "split", *([name] if frames else [f"{name}_{i}" for i in range(dim)])])
    for r in rows:
        # repr of a float32 widened to float64 reads back to the same float32
        vec = [json.dumps(r.vector.tolist())] if frames else [repr(float(x)) for x in r.vector]
        w.writerow([r.uid, r.label or "", r.split or "", *vec])
    target = out / f"{name}.csv"
    atomic_write_text(target, buf.getvalue())
    return target
