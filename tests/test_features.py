"""Feature extractors (text, audio, video), media reading, and their use through the cache."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data_or_skip
from merbench.corpus import Corpus, Utterance
from merbench.errors import MediaError

cv2 = pytest.importorskip("cv2")
sf = pytest.importorskip("soundfile")

SR = 16000


# -- helpers -------------------------------------------------------------------------------


def write_tone(path: Path, seconds: float = 0.6, freq: float = 220.0, sr: int = SR, channels: int = 1,
               amp: float = 0.3) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    # A vowel-like tone: harmonics with a slow amplitude wobble, so openSMILE finds pitch.
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x = (amp * x / np.max(np.abs(x))).astype(np.float32)
    sf.write(path, np.stack([x] * channels, 1) if channels > 1 else x, sr, subtype="PCM_16")
    return path


def draw_face(img: np.ndarray, cx: int, cy: int, ax: int, ay: int, mouth_open: float,
              skin=(150, 180, 225)) -> None:
    """A cartoon face like the synthetic corpus draws (BGR): skin ellipse, eyes, brows, mouth."""
    cv2.ellipse(img, (cx, cy), (ax, ay), 0, 0, 360, skin, -1)
    for s in (-1, 1):
        ex, ey = cx + s * ax // 2, cy - ay // 5
        cv2.ellipse(img, (ex, ey), (max(2, ax // 7), max(2, ax // 10)), 0, 0, 360, (245, 245, 245), -1)
        cv2.circle(img, (ex, ey), max(1, ax // 14), (40, 30, 30), -1)
        cv2.line(img, (ex - ax // 5, ey - ay // 6), (ex + ax // 5, ey - ay // 6), (45, 40, 45), 2)
    my, mw = cy + ay // 2, ax // 2
    if mouth_open > 0.15:
        cv2.ellipse(img, (cx, my), (mw, max(1, int(ay * 0.18 * mouth_open))), 0, 0, 360, (35, 25, 70), -1)
    else:
        cv2.line(img, (cx - mw, my), (cx + mw, my), (80, 100, 120), 2)


def write_video(path: Path, n_frames: int = 30, size=(160, 120), faces=((80, 60, 28, 40, "talk"),),
                fps: float = 12.5, background=(55, 40, 45), noise: float = 3.0, seed: int = 0) -> Path:
    """An mp4v clip; each face is (cx, cy, ax, ay, "talk" | "still")."""
    rng = np.random.default_rng(seed)
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened(), "OpenCV cannot write mp4v here"
    for t in range(n_frames):
        img = np.empty((h, w, 3), np.uint8)
        img[:] = background
        for cx, cy, ax, ay, kind in faces:
            draw_face(img, cx, cy, ax, ay, abs(math.sin(t * 0.9)) if kind == "talk" else 0.0)
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        vw.write(img)
    vw.release()
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Small wav and mp4 files shared by the tests of this module."""
    d = tmp_path_factory.mktemp("media")
    files = {
        "tone": write_tone(d / "tone.wav"),
        "tone8k_stereo": write_tone(d / "tone8k.wav", seconds=0.5, sr=8000, channels=2),
        "short": write_tone(d / "short.wav", seconds=0.05),
        "face": write_video(d / "face.mp4"),
        "two_faces": write_video(d / "two.mp4", size=(200, 120), faces=((150, 60, 28, 40, "talk"), (50, 62, 27, 39, "still"))),
        "no_face": write_video(d / "noface.mp4", faces=(), noise=40.0),
    }
    sf.write(d / "silent.wav", np.zeros(SR // 2, np.float32), SR, subtype="PCM_16")
    files["silent"] = d / "silent.wav"
    (d / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    files["corrupt_wav"] = d / "corrupt.wav"
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(4000))
    files["corrupt_mp4"] = d / "corrupt.mp4"
    (d / "empty.wav").write_bytes(b"")
    files["empty"] = d / "empty.wav"
    files["blank"] = write_video(d / "blank.mp4", faces=(), noise=0.0, background=(90, 90, 90))
    return files


def utt(uid: str, text: str = "", audio=None, video=None, dialogue="d0", turn=0) -> Utterance:
    return Utterance(uid=uid, dialogue_id=dialogue, turn=turn, speaker="A", text=text,
                     audio_path=None if audio is None else str(audio), video_path=None if video is None else str(video))


# -- media --------------------------------------------------------------------------------------


def test_read_audio_mono_float32_and_resampled(media):
    from merbench.features.media import read_audio

    x = read_audio(media["tone"])
    assert x.dtype == np.float32 and x.ndim == 1 and len(x) == int(0.6 * SR)
    y = read_audio(media["tone8k_stereo"], sr=SR)  # 8 kHz stereo -> 16 kHz mono
    assert y.dtype == np.float32 and y.ndim == 1 and abs(len(y) - SR // 2) <= 2
    assert 0.2 < np.abs(y).max() < 0.4


@pytest.mark.parametrize("key, reason", [("corrupt_wav", "not a readable audio file"), ("silent", "silent"),
                                         ("empty", "empty")])
def test_bad_audio_raises_media_error_naming_the_file(media, key, reason):
    from merbench.features.media import read_audio

    with pytest.raises(MediaError) as e:
        read_audio(media[key])
    assert e.value.path == str(media[key]) and str(media[key]) in str(e.value)
    assert reason in e.value.reason and e.value.fix


def test_missing_audio_and_container_without_ffmpeg(media, tmp_path, monkeypatch):
    from merbench.features import media as m

    with pytest.raises(MediaError, match="does not exist"):
        m.read_audio(tmp_path / "nope.wav")
    monkeypatch.setattr(m, "_have_av", lambda: False)  # the fallback when PyAV is not installed
    monkeypatch.setattr(m.shutil, "which", lambda name: None)
    with pytest.raises(MediaError) as e:
        m.read_audio(media["face"])
    assert "ffmpeg" in e.value.reason and ".wav" in e.value.fix


def test_audio_from_a_container_goes_through_ffmpeg(media, tmp_path, monkeypatch):
    """The ffmpeg-program fallback (no PyAV), with a stand-in ffmpeg (a script) so that the test needs no real one."""
    import sys

    from merbench.features import media as m
    from merbench.features.media import read_audio

    monkeypatch.setattr(m, "_have_av", lambda: False)

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    fake.write_text(f"#!{sys.executable}\n"
                    "import sys, numpy as np\n"
                    "args = sys.argv[1:]\n"
                    "src, sr = args[args.index('-i') + 1], int(args[args.index('-ar') + 1])\n"
                    "if 'broken' in src:\n"
                    "    sys.stderr.write('moov atom not found\\n'); sys.exit(1)\n"
                    "t = np.arange(sr // 4) / sr\n"
                    "sys.stdout.buffer.write((0.5 * np.sin(2 * np.pi * 200 * t)).astype('<f4').tobytes())\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    x = read_audio(media["face"], sr=8000)
    assert x.dtype == np.float32 and len(x) == 2000 and np.abs(x).max() == pytest.approx(0.5, abs=1e-3)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"xx")
    with pytest.raises(MediaError) as e:
        read_audio(broken)
    assert e.value.path == str(broken) and "moov atom not found" in e.value.reason


def test_read_video_rgb_uint8_sampled(media, tmp_path):
    from merbench.features.media import read_video

    frames, fps = read_video(media["face"], max_frames=8)
    assert frames.dtype == np.uint8 and frames.shape == (8, 120, 160, 3)
    assert fps == pytest.approx(12.5 * 7 / 29, rel=0.05)  # 8 frames spread over 30
    # RGB order: the face is drawn with BGR (150, 180, 225), so red is the largest channel there.
    assert frames[0, 60, 80, 0] > frames[0, 60, 80, 2] + 40
    allf, fps_all = read_video(media["face"], max_frames=0)
    assert len(allf) == 30 and fps_all == pytest.approx(12.5)
    half, fps_half = read_video(media["face"], max_frames=0, fps=6.25)
    assert len(half) == 15 and fps_half == pytest.approx(6.25)


@pytest.mark.parametrize("key, reason", [("corrupt_mp4", ""), ("blank", "blank"), ("empty", "empty")])
def test_bad_video_raises_media_error_naming_the_file(media, key, reason):
    from merbench.features.media import read_video

    with pytest.raises(MediaError) as e:
        read_video(media[key])
    assert e.value.path == str(media[key]) and reason in e.value.reason and e.value.fix


# -- registry --------------------------------------------------------------------------------------


def test_builtin_extractors_resolve_to_classes_with_their_names():
    from merbench.features import BUILTIN_FEATURES
    from merbench.interfaces import FeatureExtractor
    from merbench.registry import get_feature

    for name in BUILTIN_FEATURES:
        cls = get_feature(name)
        assert issubclass(cls, FeatureExtractor) and cls.name == name
        assert set(cls.levels) == {"pooled", "frames"}


# -- text -------------------------------------------------------------------------------------------


def test_minilm_offline_pooled_frames_and_empty_text():
    from merbench.features.text import MiniLMTextExtractor

    texts = ["I am so happy today!", "", "no.", "This is a considerably longer sentence, which pads the others."]
    ex = MiniLMTextExtractor()
    items = ex.extract([utt(f"u{i}", t) for i, t in enumerate(texts)])
    assert len(items) == len(texts)
    for it in items:
        assert it.pooled.dtype == np.float32 and it.pooled.shape == (384,)
        assert it.frames.dtype == np.float32 and it.frames.ndim == 2 and it.frames.shape[1] == 384
        assert np.linalg.norm(it.pooled) == pytest.approx(1.0, abs=1e-4)  # the model normalises
    assert items[1].frames.shape[0] == 2  # "" -> [CLS] [SEP], no padding rows
    assert items[3].frames.shape[0] > items[0].frames.shape[0] > items[2].frames.shape[0]
    # Same vectors as sentence-transformers' own encode, in the caller's order despite length sorting.
    ref = ex.model().encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(np.stack([it.pooled for it in items]), ref, atol=1e-5)
    # Batched with padding == alone.
    alone = ex.extract([utt("x", texts[0])])[0]
    np.testing.assert_allclose(alone.frames, items[0].frames, atol=1e-4)
    assert ex.model() is MiniLMTextExtractor().model()  # loaded once per process


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny_bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i", "am", "so", "happy", "sad", "today", "!", ".", "no",
             "this", "is", "a", "long", "sentence"]
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(d / "vocab.txt")).save_pretrained(d)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=48, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(d)
    return d


def test_hf_extractor_on_random_tiny_bert(tiny_bert):
    from merbench.features.text import HFTextExtractor

    ex = HFTextExtractor(model_name=tiny_bert, max_length=16)
    texts = ["i am so happy today !", "", "no .", "this is a long long long long long long long long long long long sentence ."]
    items = ex.extract([utt(f"u{i}", t) for i, t in enumerate(texts)])
    for it in items:
        assert it.pooled.dtype == np.float32 and it.pooled.shape == (32,)
        assert it.frames.dtype == np.float32 and it.frames.shape[1] == 32
        np.testing.assert_allclose(it.pooled, it.frames.mean(0), atol=1e-5)  # mean pooling without padding
    assert [it.frames.shape[0] for it in items] == [8, 2, 4, 16]  # [CLS] ... [SEP]; the last truncated at 16
    alone = ex.extract([utt("x", texts[2])])[0]
    np.testing.assert_allclose(alone.pooled, items[2].pooled, atol=1e-5)
    assert ex.settings()["model_name"] == str(tiny_bert) and ex.settings()["max_length"] == 16
    assert ex.output_dim("pooled") == ex.output_dim("frames") == 32


def test_hf_extractor_unknown_model_is_a_clear_error(tmp_path):
    from merbench.errors import MerbenchError
    from merbench.features.text import HFTextExtractor

    with pytest.raises(MerbenchError, match="cannot load the Hugging Face model"):
        HFTextExtractor(model_name=tmp_path / "missing-model").extract([utt("u", "hi")])


# -- audio ------------------------------------------------------------------------------------------


def test_egemaps_on_real_speech():
    from merbench.features.audio import ComParE2016Extractor, EGeMAPSExtractor

    wav = shared_data_or_skip() / "audio" / "speech_16k.wav"
    if not wav.exists():
        pytest.skip(f"{wav} is not on this machine")
    it = EGeMAPSExtractor().extract([utt("s", audio=wav)])[0]
    assert it.pooled.shape == (88,) and it.pooled.dtype == np.float32 and np.isfinite(it.pooled).all()
    assert it.frames.dtype == np.float32 and it.frames.shape[1] == 25 and 380 <= len(it.frames) <= 420  # 4.1 s / 10 ms
    names = EGeMAPSExtractor().feature_names[0]
    f0 = it.pooled[names.index("F0semitoneFrom27.5Hz_sma3nz_amean")]
    assert 15 < f0 < 50  # a human voice: 27.5 Hz * 2**(f0/12) is 65 to 500 Hz
    compare = ComParE2016Extractor()
    cp = compare.extract([utt("s", audio=wav)])[0]
    assert cp.pooled.shape == (6373,) and cp.frames.shape[1] == 65 and np.isfinite(cp.pooled).all()
    assert (compare.output_dim("pooled"), compare.output_dim("frames")) == (6373, 65)


def test_egemaps_on_tones_short_clip_and_video_fallback(media):
    from merbench.features.audio import EGeMAPSExtractor

    ex = EGeMAPSExtractor()
    a, b = ex.extract([utt("a", audio=media["tone"]), utt("b", audio=media["short"])])
    assert a.pooled.shape == b.pooled.shape == (88,) and a.frames.shape[1] == b.frames.shape[1] == 25
    assert np.isfinite(a.pooled).all() and np.isfinite(b.pooled).all()  # 50 ms is padded, not NaN
    with pytest.raises(MediaError, match="no audio_path or video_path"):
        ex.extract([utt("c")])


# -- video ------------------------------------------------------------------------------------------


def test_detectors_find_the_cartoon_face(media):
    from merbench.features.media import read_video
    from merbench.features.video import HaarFaceDetector, SkinBlobDetector

    frame = read_video(media["face"], max_frames=1)[0][0]
    for det in (HaarFaceDetector(), SkinBlobDetector()):
        boxes = det.detect(frame)
        assert len(boxes) == 1, type(det).__name__
        x, y, w, h = boxes[0]
        assert abs(x + w / 2 - 80) < 8 and abs(y + h / 2 - 60) < 10 and 40 < h < 100


def test_tracking_links_nearest_boxes_and_fills_gaps():
    from merbench.features.video import track_faces

    a = [(10, 10, 20, 20), (12, 10, 20, 20), None, (16, 10, 20, 20)]
    b = [(100, 12, 22, 22), (98, 12, 22, 22), (97, 12, 22, 22), (96, 12, 22, 22)]
    dets = [[x for x in (bb, aa) if x is not None] for aa, bb in zip(a, b)]
    dets[1].append((60, 60, 5, 5))  # a one-frame false positive, dropped
    tracks = track_faces(dets)
    assert len(tracks) == 2
    assert tracks[0].boxes == b and tracks[1].boxes == a
    np.testing.assert_allclose(tracks[1].filled()[2], (14, 10, 20, 20))


def test_facecrop_picks_the_talking_face(media):
    from merbench.features.video import FaceCropExtractor

    ex = FaceCropExtractor()
    it = ex.extract([utt("v", video=media["two_faces"])])[0]
    D = ex.frame_dim
    assert D <= 600 and it.frames.shape == (30, D) and it.pooled.shape == (2 * D,)
    assert it.frames.dtype == it.pooled.dtype == np.float32 and np.isfinite(it.pooled).all()
    # Box centre x / frame width (a descriptor column): the talking face is at x = 150 of 200.
    assert it.frames[:, D - 4].mean() == pytest.approx(0.75, abs=0.05)
    assert {k: ex.counts[k] for k in ("utterances", "no_face", "several_faces")} == {
        "utterances": 1, "no_face": 0, "several_faces": 1}
    assert ex.counts["frames"] == 30 and ex.counts["detected_frames"] <= 3  # detected sparsely, tracked between


def test_facecrop_hooks_and_no_face_fallback(media):
    from merbench.features.video import FaceCropExtractor

    calls = []

    class Fixed:
        name = "fixed"

        def detect(self, frame_rgb):
            return [(5, 5, 40, 50), (110, 5, 40, 50)]

    def pick_second(tracks, audio, frames):
        calls.append((len(tracks), None if audio is None else audio.shape, frames.shape))
        return 1

    pick_second.needs_audio = True
    ex = FaceCropExtractor(detector=Fixed(), select_track=pick_second, max_frames=6)
    it = ex.extract([utt("v", video=media["face"], audio=media["tone"])])[0]
    assert calls == [(2, (int(0.6 * SR),), (6, 120, 160, 3))]
    assert it.frames[0, -4:] == pytest.approx([130 / 160, 30 / 120, 40 / 160, 50 / 120])
    assert ex.settings()["detector"]["name"] == "fixed" and ex.settings()["select_track"].endswith("pick_second")

    ex = FaceCropExtractor()
    it = ex.extract([utt("n", video=media["no_face"])])[0]
    assert it.frames.shape == (30, ex.frame_dim) and ex.counts["no_face"] == 1
    assert it.frames[0, -4:] == pytest.approx([0.5, 0.5, 1.0, 1.0])  # the whole frame


# -- through the cache -------------------------------------------------------------------------------


def _audio_corpus(root: Path, n: int, corrupt: set[int] = frozenset()) -> Corpus:
    root.mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(n):
        p = root / f"u{i}.wav"
        if i in corrupt:
            p.write_bytes(b"not a wav at all" * 20)
        else:
            write_tone(p, seconds=0.3, freq=150 + 20 * i)
        utts.append(utt(f"u{i}", f"text {i}", audio=p, turn=i))
    return Corpus("tones", utts, root=root)


def _counting(base):
    class Counting(base):
        def __init__(self, fail_on=()):
            super().__init__()
            self.seen: list[str] = []
            self.fail_on = set(fail_on)

        def extract(self, utterances):
            if self.fail_on & {u.uid for u in utterances}:
                raise RuntimeError("interrupted")
            self.seen += [u.uid for u in utterances]
            return super().extract(utterances)

    return Counting


def test_cache_is_reused_and_resumes_after_interruption(tmp_path, monkeypatch):
    from merbench.features import store
    from merbench.features.audio import EGeMAPSExtractor

    monkeypatch.setattr(store, "PART_SIZE", 2)
    corpus = _audio_corpus(tmp_path / "wavs", 5)
    Counting = _counting(EGeMAPSExtractor)
    cache = tmp_path / "cache"

    flaky = Counting(fail_on={"u3"})  # dies in the second part
    with pytest.raises(RuntimeError, match="interrupted"):
        store.extract_corpus(corpus, flaky, cache=cache)
    entry = store.entry_dir(corpus, flaky, cache)
    assert (entry / "part-00000.npz").exists() and not (entry / "meta.json").exists()

    resumed = Counting()
    assert store.extract_corpus(corpus, resumed, cache=cache) == entry
    assert resumed.seen == ["u2", "u3", "u4"]  # part 0 was not recomputed

    again = Counting()
    store.extract_corpus(corpus, again, cache=cache)
    assert again.seen == []  # finished entry: no extractor call at all

    table = store.load_table(entry, ["u4", "u0"])
    assert table.pooled.shape == (2, 88) and table.pooled.dtype == np.float32 and table.valid.all()
    assert [f.shape[1] for f in table.frames] == [25, 25]
    fresh = EGeMAPSExtractor().extract([corpus["u0"]])[0]
    np.testing.assert_allclose(table.pooled[1], fresh.pooled, rtol=1e-5)


def test_corrupt_file_in_corpus_is_zero_filled_and_reported(tmp_path):
    from merbench.features import store
    from merbench.features.audio import EGeMAPSExtractor

    corpus = _audio_corpus(tmp_path / "wavs", 4, corrupt={2})
    entry = store.extract_corpus(corpus, EGeMAPSExtractor(), cache=tmp_path / "cache")
    bad = store.bad_media(entry)
    assert [b["uid"] for b in bad] == ["u2"] and bad[0]["path"] == str(tmp_path / "wavs" / "u2.wav")
    table = store.load_table(entry)
    assert table.valid.tolist() == [True, True, False, True]
    assert not table.pooled[2].any() and table.pooled[[0, 1, 3]].any(axis=1).all()


# -- the synthetic corpus ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    from merbench.datasets.synthetic import generator as gen  # an import error is a failure, not a skip
    root = tmp_path_factory.mktemp("syn") / "synthetic"
    gen.generate(root, n_dialogues=3, seed=0, workers=1)
    rows = list(csv.DictReader(open(root / "annotations.csv", encoding="utf-8")))
    cues = {r["uid"]: r for r in csv.DictReader(open(root / "cues.csv", encoding="utf-8"))}
    utts = [Utterance(uid=r["uid"], dialogue_id=r["dialogue_id"], turn=int(r["turn"]), speaker=r["speaker"],
                      text=r["text"], label=r["label"], audio_path=str(root / r["audio"]), video_path=str(root / r["video"]))
            for r in rows]
    return Corpus("synthetic-tiny", utts, root=root), cues


def test_extractors_on_a_tiny_synthetic_corpus(tiny_synthetic, tmp_path):
    from merbench.features import store
    from merbench.features.audio import EGeMAPSExtractor
    from merbench.features.text import MiniLMTextExtractor
    from merbench.features.video import FaceCropExtractor

    corpus, cues = tiny_synthetic
    head = Corpus("synthetic-head", corpus.utterances[:8], root=corpus.root)  # openSMILE is slow-ish
    video = FaceCropExtractor()
    for ex, corp, dim, fdim in ((MiniLMTextExtractor(), corpus, 384, 384), (EGeMAPSExtractor(), head, 88, 25),
                                (video, corpus, 2 * video.frame_dim, video.frame_dim)):
        assert (ex.output_dim("pooled"), ex.output_dim("frames")) == (dim, fdim)  # stated before extracting
        entry = store.extract_corpus(corp, ex, cache=tmp_path)
        table = store.load_table(entry)
        assert table.pooled.shape == (len(corp), dim) and table.valid.all() and not store.bad_media(entry)
        assert all(f.shape[1] == fdim for f in table.frames)
        assert np.isfinite(table.pooled).all()
    assert video.counts["no_face"] == 0
    # The crop follows the speaker's face (the listener's mouth is closed or moving at random, so
    # only utterances with no listener or a closed-mouth listener must be right).
    table = store.load_table(store.entry_dir(corpus, video, tmp_path))
    D, W = video.frame_dim, 128
    for uid, fr in zip(table.uids, table.frames):
        c = cues[uid]
        if c["listener_mouth"] != "moving":
            assert fr[:, D - 4].mean() * W == pytest.approx(float(c["speaker_face_x"]), abs=6), uid
