"""``dataframe-pickle``: a pickled pandas DataFrame with array columns (the multi-focus BLSTM's
``data_processed.pkl``: per utterance ComParE LLD arrays and transcripts).

Read through the restricted unpickler with pandas' data classes allowed
(:func:`merbench.safe_pickle.pandas_globals`); anything else in the file is refused, nothing
executed. Columns are read as in :mod:`.table` (``key``: the array column; the id column, or the
DataFrame's index when it holds strings; a ``label`` / ``emotion`` column).
"""

from __future__ import annotations

from pathlib import Path

from ...safe_pickle import pandas_globals, safe_load
from .pack import PackError, write_pickle
from .table import ID_COLUMNS, _column, from_frame


def read(path: Path, key: str | None = None):
    import pandas as pd

    df = safe_load(path, allow=pandas_globals())
    if not isinstance(df, pd.DataFrame):
        raise PackError(f"{path}: expected a pickled pandas DataFrame, found a {type(df).__name__}",
                        fix="use the format that matches the file (dialogue-pickle, mmsa)")
    if _column(df.columns, ID_COLUMNS) is None and pd.api.types.is_string_dtype(df.index):  # object or str
        df = df.reset_index(names="uid")
    return from_frame(df, str(path), "dataframe-pickle", key)


def write(out: Path, rows, key: str | None = None) -> Path:
    import pandas as pd

    name = key or "features"
    df = pd.DataFrame({"uid": [r.uid for r in rows], "label": [r.label for r in rows],
                       "split": [r.split for r in rows], name: [r.vector for r in rows]})
    return write_pickle(out / f"{name}.pkl", df)
