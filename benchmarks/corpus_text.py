"""Text clean-up shared by the real-corpus adapters (MELD, IEMOCAP, MOSI read through it).

Corpus files mix encodings: MELD's CSVs are UTF-8 in one release and cp1252 in
another, COSMIC's pickles hold cp1252 bytes read as latin-1 (``\\x92`` for a right
quote), and some copies were double-encoded ("â€™"). Everything is turned into clean
UTF-8 text on one line, so that identical sentences compare equal and tokenizers see
the characters the annotators typed.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path

from merbench.errors import CorpusNotFoundError

_ERROR_HANDLER = "merbench-cp1252-fallback"


def _cp1252_fallback(exc: UnicodeError):
    # Bytes that are not valid UTF-8 inside an otherwise UTF-8 file: read them as cp1252.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return bad.decode("cp1252", errors="replace"), exc.end


codecs.register_error(_ERROR_HANDLER, _cp1252_fallback)

_C1 = re.compile("[\x80-\x9f]")
_MOJIBAKE_HINT = re.compile("[\u00c2\u00c3\u00e2][\u0080-\u00bf\u0152-\u2122]")
_SPACES = re.compile(r"\s+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)


def decode_bytes(raw: bytes) -> str:
    """UTF-8 (with or without BOM), falling back to cp1252 byte by byte where it is not."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    return raw.decode("utf-8", errors=_ERROR_HANDLER)


def read_text_file(path: Path) -> str:
    try:
        return decode_bytes(Path(path).read_bytes())
    except FileNotFoundError:
        raise CorpusNotFoundError(f"missing file {path}", fix="check the corpus root (--root PATH)") from None


def _fix_double_encoding(s: str) -> str:
    """'donâ€™t' (UTF-8 read as cp1252) -> 'don’t'; left alone unless it decodes cleanly."""
    if not _MOJIBAKE_HINT.search(s):
        return s
    for enc in ("cp1252", "latin-1"):
        try:
            return s.encode(enc).decode("utf-8")
        except UnicodeError:
            continue
    return s


def _c1_to_cp1252(s: str) -> str:
    """C1 control characters are cp1252 bytes that were read as latin-1 ('\\x92' -> '’')."""
    def repl(m: re.Match) -> str:
        return m.group().encode("latin-1").decode("cp1252", errors="ignore")

    return _C1.sub(repl, s)


def clean_text(s: object) -> str:
    """One clean line of NFC UTF-8: encodings repaired, whitespace (newlines too) collapsed."""
    if s is None:
        return ""
    if isinstance(s, bytes):
        s = decode_bytes(s)
    s = str(s)
    s = _fix_double_encoding(s)
    s = _c1_to_cp1252(s)
    s = unicodedata.normalize("NFC", s).translate(_INVISIBLE)
    return _SPACES.sub(" ", s).strip()
