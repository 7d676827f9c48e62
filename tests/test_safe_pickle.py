"""The restricted unpickler: arrays and plain containers load, anything else is refused
before it runs."""

import collections
import io
import os
import pickle
import re
import zipfile

import numpy as np
import pytest

from merbench.errors import UnsafePickleError
from merbench.safe_pickle import safe_load, safe_load_npy, safe_load_npz


class _Exploit:
    """Pickles to ``os.system("touch <marker>")``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalExploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("exploit", [_Exploit, _EvalExploit])
def test_malicious_pickle_is_refused_without_running(tmp_path, protocol, exploit):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    # Hidden inside an otherwise harmless structure.
    path.write_bytes(pickle.dumps({"labels": [1, 2], "x": exploit(marker)}, protocol=protocol))
    with pytest.raises(UnsafePickleError) as info:
        safe_load(path)
    assert not marker.exists()
    msg = str(info.value)
    assert str(path) in msg  # names the file
    assert re.search(r"(posix|os)\.system|_?_?builtins?_?_?\.eval", msg)  # names the global
    assert "Fix:" in msg


def test_file_object_and_other_globals_refused(tmp_path):
    # A hand-written protocol-0 pickle calling subprocess.call: never imported or called.
    marker = tmp_path / "pwned2"
    evil = f"csubprocess\ncall\n((S'touch'\nS'{marker}'\nltR.".encode()
    with pytest.raises(UnsafePickleError, match="subprocess.call"):
        safe_load(io.BytesIO(evil))
    assert not marker.exists()
    # Even a "harmless" class that is not on the allowlist is refused.
    with pytest.raises(UnsafePickleError, match="datetime"):
        import datetime

        safe_load(io.BytesIO(pickle.dumps(datetime.date(2020, 1, 1))))


def test_persistent_ids_refused():
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "secret" else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump(["secret"])
    with pytest.raises(UnsafePickleError):
        safe_load(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_and_containers_round_trip(protocol):
    obj = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "fortran": np.asfortranarray(np.ones((3, 2))),
        "obj": np.array([{"emo": 1}, "x"], dtype=object),
        "rec": np.array([(1, 2.0)], dtype=[("i", "i4"), ("f", "f8")]),
        "scalar": np.float64(0.25),
        "od": collections.OrderedDict(b=1, a=2),
        "dd": collections.defaultdict(list, {"k": [1]}),
        "set": {1, 2}, "fs": frozenset({3}), "c": complex(1, 2), "sl": slice(1, 5, 2),
        "r": range(3), "ba": bytearray(b"ab"), "b": b"\x00\xff", "t": (1, "u", None, True),
    }
    back = safe_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
    assert set(back) == set(obj)
    for k in ("a", "fortran", "rec"):
        np.testing.assert_array_equal(back[k], obj[k])
        assert back[k].dtype == obj[k].dtype
    assert list(back["obj"]) == list(obj["obj"])
    assert back["scalar"] == 0.25 and back["od"] == obj["od"] and list(back["od"]) == ["b", "a"]
    assert back["dd"]["k"] == [1] and back["dd"]["new"] == []
    for k in ("set", "fs", "c", "sl", "r", "ba", "b", "t"):
        assert back[k] == obj[k]


def test_npz_plain_and_object_arrays(tmp_path):
    path = tmp_path / "x.npz"
    labels = {"Ses01F_impro01_F000": {"emo": 2, "val": np.float32(-1.5)}}
    np.savez(path, plain=np.arange(4), whole_corpus=np.array(labels, dtype=object))
    out = safe_load_npz(path)
    np.testing.assert_array_equal(out["plain"], np.arange(4))
    assert out["whole_corpus"].item() == labels
    single = tmp_path / "y.npy"
    np.save(single, np.array([[1, "a"]], dtype=object))
    assert safe_load_npy(single).tolist() == [[1, "a"]]


def test_npz_with_malicious_object_array_is_refused(tmp_path):
    marker = tmp_path / "pwned_npz"
    path = tmp_path / "evil.npz"
    np.savez(path, ok=np.arange(3), whole_corpus=np.array([_Exploit(marker)], dtype=object))
    with pytest.raises(UnsafePickleError) as info:
        safe_load_npz(path)
    assert not marker.exists()
    assert "evil.npz" in str(info.value) and "whole_corpus" in str(info.value)
    # A payload that is not an array at all (a bare pickle after a valid object-array header).
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("x.npy", hdr.getvalue() + pickle.dumps({"not": "array"}))
    with pytest.raises(UnsafePickleError, match="not an array"):
        safe_load_npz(bad)


def test_real_pickles_load():
    from conftest import shared_data_or_skip

    root = shared_data_or_skip()
    meld = safe_load(root / "meld" / "cosmic_meld.pkl")
    assert len(meld) == 7 and len(meld[4]) == 1038 and len(meld[5]) == 280 and len(meld[6]) == 114
    assert "\x92" in meld[3][0][0]  # cp1252 bytes come back as latin-1 code points
    iem = safe_load(root / "iemocap" / "cosmic" / "iemocap.pkl")
    assert len(iem) == 6 and sum(len(iem[2][d]) for d in iem[2]) == 7433
    mosi = safe_load(root / "mosi" / "audio_features_soujanyaporia.pickle")
    assert mosi[0].shape[-1] == 73 and mosi[0].dtype.kind == "f"
    six = safe_load_npz(root / "iemocap" / "merbench" / "label_6way.npz")["whole_corpus"].item()
    assert len(six) == 7433 and six["Ses01F_impro01_F000"]["emo"] == 2
