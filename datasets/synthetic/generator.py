"""Generate the synthetic multimodal conversation corpus, deterministic from a seed.

The corpus is written as real files (16 kHz PCM_16 wav, mp4v face video, one CSV of
annotations) so the same readers and feature extractors serve it and the real corpora.
Every random draw of dialogue ``i`` comes from a generator seeded with ``(seed, i)``,
so the output does not depend on the number of worker processes or their order.

See README.md next to this file for the planted cues and their strengths.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np

GENERATOR_NAME = "merbench-synthetic"
GENERATOR_VERSION = "1.0"
EMOTIONS = ("neutral", "joy", "sadness", "anger")

ANNOTATION_COLUMNS = ("uid", "dialogue_id", "turn", "speaker", "text", "label", "split", "audio", "video")

# Separate random streams under one seed, so that changing one part (say, the split)
# never shifts the draws of another (the dialogues).
_STREAM_DIALOGUE, _STREAM_SPEAKER, _STREAM_SPLIT = 0, 1, 2

# -- text ------------------------------------------------------------------------------

LEXICON: dict[str, tuple[str, ...]] = {
    "neutral": ("okay", "fine", "calm", "alright", "indifferent", "unbothered"),
    "joy": ("happy", "glad", "delighted", "thrilled", "cheerful", "excited"),
    "sadness": ("sad", "miserable", "heartbroken", "gloomy", "lonely", "hopeless"),
    "anger": ("angry", "furious", "annoyed", "irritated", "outraged", "mad"),
}
TEMPLATES_WITH_WORD = (
    "I feel {w} about the {topic}.",
    "Honestly, the {topic} makes me {w}.",
    "You know I am {w} about the {topic}, right?",
    "I was {w} when I heard about the {topic}.",
    "That {topic} on {day} left me {w}.",
    "I'm {w}. Let's talk about the {topic}.",
    "Everyone says I look {w} since the {topic}.",
    "The {topic}? I am just {w}.",
)
TEMPLATES_PLAIN = (
    "Did you see the {topic} on {day}?",
    "Let's talk about the {topic}.",
    "I heard something about the {topic}.",
    "What do you think of the {topic}?",
    "So the {topic} is on {day}.",
    "Tell me more about the {topic}.",
    "Who else knows about the {topic}?",
    "We need to decide on the {topic} by {day}.",
)
TOPICS = ("meeting", "trip", "dinner", "project", "weekend", "exam", "party", "letter", "car",
          "house", "concert", "game", "news", "job", "phone call", "wedding", "garden", "flight")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
OPENERS = ("", "", "", "Oh, ", "Well, ", "Look, ", "Hey, ", "So, ", "Hmm, ")

# -- audio -----------------------------------------------------------------------------

# Emotion effect at full strength, relative to the speaker's own voice: pitch level
# (factor), pitch range (factor on the speaker's range in semitones), loudness (dB),
# speaking rate (factor) and brightness (spectral tilt, arbitrary units).
AUDIO_PROFILES: dict[str, dict[str, float]] = {
    "neutral": {"pitch": 1.00, "range": 1.00, "energy_db": 0.0, "rate": 1.00, "bright": 0.0},
    "joy": {"pitch": 1.20, "range": 2.20, "energy_db": 3.0, "rate": 1.10, "bright": 0.3},
    "sadness": {"pitch": 0.88, "range": 0.45, "energy_db": -6.0, "rate": 0.80, "bright": -0.6},
    "anger": {"pitch": 1.10, "range": 1.50, "energy_db": 6.0, "rate": 1.15, "bright": 0.9},
}
# Formants (Hz) of five vowels for an average vocal tract; scaled per speaker.
VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (300.0, 2250.0, 3000.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (320.0, 870.0, 2240.0),
}
FORMANT_BANDWIDTHS = (80.0, 110.0, 160.0)

# -- video -----------------------------------------------------------------------------

# Expression at full strength: mouth curvature in pixels (+ smile, - frown), brow angle
# in radians (+ inner ends down as in anger, - inner ends up as in sadness), brow
# raise in pixels, eye opening factor and mouth width factor.
FACE_PROFILES: dict[str, dict[str, float]] = {
    "neutral": {"curve": 0.0, "brow_angle": 0.0, "brow_raise": 0.0, "eye_open": 1.00, "mouth_width": 1.00},
    "joy": {"curve": 5.0, "brow_angle": 0.0, "brow_raise": 2.0, "eye_open": 0.80, "mouth_width": 1.12},
    "sadness": {"curve": -4.0, "brow_angle": -0.40, "brow_raise": 1.0, "eye_open": 0.65, "mouth_width": 0.92},
    "anger": {"curve": -1.5, "brow_angle": 0.45, "brow_raise": -2.5, "eye_open": 1.15, "mouth_width": 0.80},
}
SKIN_TONES_BGR = ((180, 200, 235), (150, 180, 225), (120, 160, 210), (95, 135, 185), (70, 105, 150), (160, 190, 220))
HAIR_BGR = ((30, 30, 35), (40, 60, 100), (60, 110, 170), (110, 120, 130), (20, 35, 70))
MOUTH_INSIDE_BGR = (35, 25, 70)


@dataclass(frozen=True)
class SynthConfig:
    """Every parameter of the generator (all of it is written to generator.json)."""

    n_dialogues: int = 300
    seed: int = 0
    sample_rate: int = 16000
    fps: float = 12.5  # one video frame per 80 ms
    frame_width: int = 128
    frame_height: int = 96
    # dialogues
    n_speakers: int = 32  # pool of persistent identities shared by all dialogues
    p_three_speakers: float = 0.35
    min_turns: int = 6
    max_turns: int = 11
    p_same_speaker_again: float = 0.1
    emotion_prior: tuple[float, ...] = (0.40, 0.20, 0.20, 0.20)
    p_persist: float = 0.45  # the speaker keeps their own last emotion
    p_contagion: float = 0.30  # the speaker takes the previous turn's emotion
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    # text
    p_text_word_absent: float = 0.40
    p_text_word_other: float = 0.12  # of the utterances that have an emotion word
    # audio
    min_duration_s: float = 1.0
    max_duration_s: float = 2.5
    p_weak_audio: float = 0.20  # share of utterances whose audio is nearly neutral
    strength_range: tuple[float, float] = (0.4, 1.0)
    weak_strength_max: float = 0.15
    pitch_jitter_log: float = 0.10  # per-utterance random pitch level (log factor sd)
    range_jitter_log: float = 0.30
    energy_jitter_db: float = 3.0
    rate_jitter_log: float = 0.08
    bright_jitter: float = 0.30
    base_level_dbfs: float = -26.0
    noise_floor_dbfs: tuple[float, float] = (-55.0, -38.0)
    # video
    p_listener: float = 0.30
    p_listener_mouth_moving: float = 0.5
    p_weak_video: float = 0.30
    video_strength_range: tuple[float, float] = (0.25, 1.0)
    expression_jitter: float = 0.30  # sd of random expression offsets, as a fraction of full strength
    head_jitter_px: float = 0.6
    pixel_noise_sd: float = 4.0
    p_blink: float = 0.04
    audio_profiles: dict[str, dict[str, float]] = field(default_factory=lambda: AUDIO_PROFILES)
    face_profiles: dict[str, dict[str, float]] = field(default_factory=lambda: FACE_PROFILES)
    lexicon: dict[str, tuple[str, ...]] = field(default_factory=lambda: LEXICON)

    @property
    def hop(self) -> int:
        """Audio samples per video frame."""
        return int(round(self.sample_rate / self.fps))

    def validate(self) -> None:
        from merbench.errors import ConfigError

        if self.n_dialogues < 3:
            raise ConfigError(f"n_dialogues={self.n_dialogues} is too small: train, valid and test each need a dialogue",
                              fix="generate at least 3 dialogues")
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed} must be a non-negative integer", fix="pass a seed >= 0")
        if not 2 <= self.min_turns <= self.max_turns:
            raise ConfigError(f"turns range {self.min_turns}..{self.max_turns} is invalid", fix="use 2 <= min_turns <= max_turns")


# -- identities and plans ------------------------------------------------------------


@lru_cache(maxsize=256)
def speaker_identity(seed: int, k: int) -> dict[str, Any]:
    """The persistent voice and face of speaker ``k`` (same in every dialogue)."""
    rng = np.random.default_rng([seed, _STREAM_SPEAKER, k])
    female = bool(rng.random() < 0.5)
    skin = np.array(SKIN_TONES_BGR[rng.integers(len(SKIN_TONES_BGR))], float) + rng.normal(0, 6, 3)
    return {
        "speaker": f"spk{k:02d}",
        "f0": float(rng.uniform(170, 235) if female else rng.uniform(95, 140)),
        "vtl": float(rng.uniform(1.05, 1.18) if female else rng.uniform(0.88, 1.0)),  # formant scale
        "range_st": float(rng.uniform(1.5, 3.0)),  # habitual pitch range, semitones
        "skin": tuple(float(c) for c in np.clip(skin, 40, 250)),
        "hair": tuple(float(c) for c in HAIR_BGR[rng.integers(len(HAIR_BGR))]),
        "ax": float(rng.uniform(21, 25)),  # face half width, px
        "ay": float(rng.uniform(32, 36)),  # face half height, px (face height >= 60 px)
        "eye_dx": float(rng.uniform(0.36, 0.44)),
        "eye_size": float(rng.uniform(3.2, 4.4)),
        "mouth_w": float(rng.uniform(0.38, 0.5)),
        "mouth_open_max": float(rng.uniform(8.0, 11.0)),
        "rest_curve": float(rng.normal(0, 1.0)),  # some people look a little happy or sad at rest
        "rest_brow": float(rng.normal(0, 0.08)),
    }


def assign_splits(cfg: SynthConfig) -> list[str]:
    """train / valid / test for each dialogue index, fixed from the seed."""
    n = cfg.n_dialogues
    order = np.random.default_rng([cfg.seed, _STREAM_SPLIT]).permutation(n)
    n_train = int(round(n * cfg.split_fractions[0]))
    n_valid = max(1, int(round(n * cfg.split_fractions[1])))
    n_train = min(n_train, n - n_valid - 1)
    out = ["test"] * n
    for rank, i in enumerate(order):
        out[int(i)] = "train" if rank < n_train else "valid" if rank < n_train + n_valid else "test"
    return out


def _strength(rng: np.random.Generator, p_weak: float, lo: float, hi: float, weak_max: float) -> float:
    if rng.random() < p_weak:
        return float(rng.uniform(0.0, weak_max))
    return float(rng.uniform(lo, hi))


def _next_emotion(rng, cfg: SynthConfig, own_last: int | None, prev: int | None) -> tuple[int, str]:
    r = rng.random()
    if own_last is not None and r < cfg.p_persist:
        return own_last, "persist"
    if prev is not None and r < cfg.p_persist + cfg.p_contagion:
        return prev, "contagion"
    return int(rng.choice(len(EMOTIONS), p=np.asarray(cfg.emotion_prior) / sum(cfg.emotion_prior))), "fresh"


def _make_text(rng, cfg: SynthConfig, emo: int) -> tuple[str, str, str, str]:
    """(text, cue kind own/other/absent, emotion word, emotion of that word)."""
    topic = TOPICS[rng.integers(len(TOPICS))]
    day = DAYS[rng.integers(len(DAYS))]
    opener = OPENERS[rng.integers(len(OPENERS))]
    if rng.random() < cfg.p_text_word_absent:
        body = TEMPLATES_PLAIN[rng.integers(len(TEMPLATES_PLAIN))].format(topic=topic, day=day)
        kind, word, word_emo = "absent", "", ""
    else:
        if rng.random() < cfg.p_text_word_other:
            others = [e for e in range(len(EMOTIONS)) if e != emo]
            w_emo, kind = others[rng.integers(len(others))], "other"
        else:
            w_emo, kind = emo, "own"
        words = cfg.lexicon[EMOTIONS[w_emo]]
        word = words[rng.integers(len(words))]
        word_emo = EMOTIONS[w_emo]
        body = TEMPLATES_WITH_WORD[rng.integers(len(TEMPLATES_WITH_WORD))].format(w=word, topic=topic, day=day)
    if opener:
        # Lower-case the first word after the opener, except the pronoun "I".
        body = opener + (body if body.startswith(("I ", "I'")) else body[0].lower() + body[1:])
    return body, kind, word, word_emo


# -- audio synthesis -------------------------------------------------------------------


def _syllables(rng, n_syll: int, rate: float) -> list[tuple[float, float, float]]:
    """(start s, duration s, peak amplitude) of syllable-like bursts, from t=0."""
    out, t = [], 0.0
    for k in range(n_syll):
        if k:
            gap = 0.035 * rng.uniform(0.5, 1.5) / rate
            if rng.random() < 0.12:  # a short pause between words
                gap += rng.uniform(0.08, 0.2)
            t += gap
        dur = 0.19 * rng.uniform(0.75, 1.3) / rate
        out.append((t, dur, float(rng.uniform(0.6, 1.0))))
        t += dur
    return out


def _bump_envelope(sylls, lead: float, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample-level envelope (sum of syllable bumps) and the syllable index of each sample (-1: none)."""
    env = np.zeros(n, np.float64)
    owner = np.full(n, -1, np.int32)
    for k, (start, dur, amp) in enumerate(sylls):
        a = int(round((lead + start) * sr))
        b = min(n, a + max(2, int(round(dur * sr))))
        if a >= n:
            break
        x = (np.arange(a, b) - a + 0.5) / max(1, b - a)
        env[a:b] = amp * np.sin(np.pi * x) ** 0.8
        owner[a:b] = k
    return env, owner


def _resonator(x: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    from scipy.signal import lfilter

    # Two-pole resonator with unit gain at DC (as in cascade formant synthesizers).
    r = math.exp(-math.pi * bw / sr)
    c1, c2 = 2 * r * math.cos(2 * math.pi * freq / sr), -r * r
    return lfilter([1.0 - c1 - c2], [1.0, -c1, -c2], x)


def synth_audio(rng, cfg: SynthConfig, spk: dict, emo: str, strength: float, n_syll: int
                ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """One utterance: (waveform float32 with noise, clean RMS per video frame, cue values)."""
    from scipy.signal import lfilter

    sr = cfg.sample_rate
    prof = cfg.audio_profiles[emo]
    s = strength
    pitch = math.exp(s * math.log(prof["pitch"]) + rng.normal(0, cfg.pitch_jitter_log))
    range_st = spk["range_st"] * math.exp(s * math.log(prof["range"]) + rng.normal(0, cfg.range_jitter_log))
    energy_db = s * prof["energy_db"] + rng.normal(0, cfg.energy_jitter_db)
    rate = math.exp(s * math.log(prof["rate"]) + rng.normal(0, cfg.rate_jitter_log))
    bright = s * prof["bright"] + rng.normal(0, cfg.bright_jitter)
    f0_mean = spk["f0"] * pitch

    # Syllables, trimmed or padded so the utterance lasts min..max duration.
    lead, tail = rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2)
    sylls = _syllables(rng, n_syll, rate)
    while len(sylls) > 3 and lead + sylls[-1][0] + sylls[-1][1] + tail > cfg.max_duration_s:
        sylls.pop()
    speech = sylls[-1][0] + sylls[-1][1]
    total = min(cfg.max_duration_s, max(cfg.min_duration_s, lead + speech + tail))
    n = int(round(total * sr))
    env, owner = _bump_envelope(sylls, lead, n, sr)

    # Pitch contour: an accent per syllable within the range, plus declination.
    centres = np.array([(lead + st + d / 2) * sr for st, d, _ in sylls])
    accents = range_st * (rng.uniform(-0.5, 0.5, len(sylls)) - 0.35 * np.linspace(0, 1, len(sylls)))
    semitones = np.interp(np.arange(n), centres, accents)
    f0 = f0_mean * 2.0 ** (semitones / 12.0)

    # Source: one impulse per glottal period, shaped by two one-pole low-passes (their
    # coefficient sets the spectral tilt: brighter voice = less low-pass), then the
    # first difference for lip radiation, plus a little aspiration noise.
    phase = np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    a = float(np.clip(0.90 - 0.05 * bright, 0.75, 0.97))
    g = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], pulses))
    src = np.diff(g, prepend=0.0)
    src = src / (np.std(src) + 1e-12) + 0.08 * rng.standard_normal(n)

    # Filter: one cascade of formant resonators per vowel; each syllable uses one vowel.
    vowel_names = list(VOWELS)
    syl_vowel = rng.integers(len(vowel_names), size=len(sylls))
    voiced = np.zeros(n)
    for v, name in enumerate(vowel_names):
        mask = np.isin(owner, np.flatnonzero(syl_vowel == v))
        if not mask.any():
            continue
        y = src
        for freq, bw in zip(VOWELS[name], FORMANT_BANDWIDTHS):
            y = _resonator(y, freq * spk["vtl"], bw, sr)
        y = y / (np.std(y) + 1e-12)
        voiced += np.where(mask, env * y, 0.0)

    # Consonant-like noise bursts at syllable onsets (high-passed noise).
    for st, d, amp in sylls:
        a0 = int(round((lead + st) * sr))
        m = min(n - a0, int(0.04 * sr))
        if m > 4:
            burst = np.diff(rng.standard_normal(m + 1)) * 0.25 * amp * np.hanning(m)
            voiced[a0:a0 + m] += burst

    # Loudness: the RMS of the speech part, in dBFS, carries the energy cue.
    active = env > 0.05
    level_db = cfg.base_level_dbfs + energy_db
    clean = voiced * (10 ** (level_db / 20) / (np.sqrt(np.mean(voiced[active] ** 2)) + 1e-12))
    noise_db = rng.uniform(*cfg.noise_floor_dbfs)
    noise = lfilter([1.0], [1.0, -0.5], rng.standard_normal(n))
    noise *= 10 ** (noise_db / 20) / (np.std(noise) + 1e-12)
    wave = np.clip(clean + noise, -0.999, 0.999).astype(np.float32)

    hop = cfg.hop
    n_frames = int(math.ceil(n / hop))
    padded = np.zeros(n_frames * hop)
    padded[:n] = clean
    frame_rms = np.sqrt(np.mean(padded.reshape(n_frames, hop) ** 2, axis=1))
    cues = {
        "audio_strength": s, "f0_hz": f0_mean, "pitch_range_st": range_st, "energy_db": energy_db,
        "level_dbfs": level_db, "rate": rate, "brightness": bright, "noise_dbfs": noise_db,
        "duration_s": n / sr, "n_syllables": len(sylls),
    }
    return wave, frame_rms, cues


def _listener_mouth(rng, cfg: SynthConfig, n_frames: int, moving: bool) -> np.ndarray:
    """A listener's mouth: closed, or moving with its own rhythm (unrelated to the audio)."""
    if not moving:
        return np.zeros(n_frames)
    sr, hop = cfg.sample_rate, cfg.hop
    n = n_frames * hop
    sylls = _syllables(rng, 12, rng.uniform(0.7, 1.3))
    env, _ = _bump_envelope(sylls, rng.uniform(0.0, 0.6), n, sr)
    rms = np.sqrt(np.mean(env.reshape(n_frames, hop) ** 2, axis=1))
    return (rms / (rms.max() + 1e-9)) ** 0.7 * rng.uniform(0.4, 0.9)


# -- video rendering -------------------------------------------------------------------

_SHIFT = 4  # cv2 drawing with 4 fractional bits, for sub-pixel shapes
_ONE = 1 << _SHIFT


def _p(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _expression(rng, cfg: SynthConfig, spk: dict, emo: str, strength: float) -> dict[str, float]:
    prof = cfg.face_profiles[emo]
    full = cfg.face_profiles["joy"]["curve"]  # scale for the random offsets
    j = cfg.expression_jitter
    return {
        "curve": spk["rest_curve"] + strength * prof["curve"] + rng.normal(0, j * full),
        "brow_angle": spk["rest_brow"] + strength * prof["brow_angle"] + rng.normal(0, j * 0.45),
        "brow_raise": strength * prof["brow_raise"] + rng.normal(0, j * 2.5),
        "eye_open": 1.0 + strength * (prof["eye_open"] - 1.0) + rng.normal(0, j * 0.3),
        "mouth_width": 1.0 + strength * (prof["mouth_width"] - 1.0) + rng.normal(0, j * 0.15),
    }


def _draw_face(img: np.ndarray, spk: dict, cx: float, cy: float, scale: float, expr: dict,
               opening: float, blink: bool) -> None:
    import cv2

    aa = cv2.LINE_AA
    ax, ay = spk["ax"] * scale, spk["ay"] * scale
    skin = spk["skin"]
    # Hair behind the top of the head, then the face.
    cv2.ellipse(img, _p(cx, cy - 0.12 * ay), _p(ax + 2.5, ay * 0.98), 0, 180, 360, spk["hair"], -1, aa, _SHIFT)
    cv2.ellipse(img, _p(cx, cy), _p(ax, ay), 0, 0, 360, skin, -1, aa, _SHIFT)
    # Eyes.
    ey = cy - 0.18 * ay
    er = spk["eye_size"] * scale
    eye_h = max(0.6, er * 0.75 * float(np.clip(expr["eye_open"], 0.3, 1.5)))
    for side in (-1, 1):
        ex = cx + side * spk["eye_dx"] * 2 * ax * 0.6
        if blink:
            cv2.line(img, _p(ex - er, ey), _p(ex + er, ey), (40, 40, 40), 1, aa, _SHIFT)
        else:
            cv2.ellipse(img, _p(ex, ey), _p(er, eye_h), 0, 0, 360, (245, 245, 245), -1, aa, _SHIFT)
            cv2.circle(img, _p(ex, ey), int(min(er, eye_h) * 0.6 * _ONE), (40, 30, 30), -1, aa, _SHIFT)
        # Brow: a thick line; positive angle lowers the inner end (towards the nose).
        by = ey - er - 3.0 * scale - expr["brow_raise"]
        half = er * 1.3
        t = math.tan(float(np.clip(expr["brow_angle"], -0.9, 0.9))) * half
        inner = (ex - side * half, by + t)
        outer = (ex + side * half, by - t)
        cv2.line(img, _p(*inner), _p(*outer), (45, 40, 45), 2, aa, _SHIFT)
    # Mouth: corners and centre from the curvature; opening from the speech envelope.
    my = cy + 0.48 * ay
    w = spk["mouth_w"] * ax * float(np.clip(expr["mouth_width"], 0.6, 1.4))
    c = float(expr["curve"]) * scale
    xs = np.linspace(-w, w, 11)
    shape = 1 - (xs / w) ** 2
    base = my + c * (0.5 - (xs / w) ** 2)
    lip = tuple(0.55 * v for v in skin)
    if opening > 0.6:
        upper = base - 0.3 * opening * shape
        lower = base + 0.7 * opening * shape
        pts = np.concatenate([np.stack([cx + xs, upper], 1), np.stack([cx + xs[::-1], lower[::-1]], 1)])
        poly = np.round(pts * _ONE).astype(np.int32)
        cv2.fillPoly(img, [poly], MOUTH_INSIDE_BGR, aa, _SHIFT)
        cv2.polylines(img, [poly], True, lip, 1, aa, _SHIFT)
    else:
        line = np.round(np.stack([cx + xs, base], 1) * _ONE).astype(np.int32)
        cv2.polylines(img, [line], False, lip, 2, aa, _SHIFT)


def render_video(path: Path, rng, cfg: SynthConfig, faces: list[dict], n_frames: int) -> None:
    """Write ``n_frames`` frames of the given faces (each: identity, position, expression,
    mouth opening per frame in 0..1) to an mp4v file."""
    import cv2

    h, w = cfg.frame_height, cfg.frame_width
    bg = np.array(rng.uniform(25, 75, 3))
    jit = [np.zeros(2) for _ in faces]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), cfg.fps, (w, h))
    if not writer.isOpened():
        from merbench.errors import MediaError

        raise MediaError(path, "OpenCV cannot open an mp4v video writer",
                         fix="install opencv-python-headless with FFmpeg support (pip install opencv-python-headless)")
    try:
        for f in range(n_frames):
            img = np.empty((h, w, 3), np.uint8)
            img[:] = bg.astype(np.uint8)
            for k, face in enumerate(faces):
                # Head jitter: a mean-reverting random walk of about a pixel.
                jit[k] = 0.7 * jit[k] + rng.normal(0, cfg.head_jitter_px, 2)
                blink = bool(rng.random() < cfg.p_blink)
                opening = face["mouth"][f] * face["spk"]["mouth_open_max"] * face["scale"]
                _draw_face(img, face["spk"], face["cx"] + jit[k][0], face["cy"] + jit[k][1], face["scale"],
                           face["expr"], float(opening), blink)
            noise = rng.standard_normal((h, w, 3), dtype=np.float32) * cfg.pixel_noise_sd
            writer.write(np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8))
    finally:
        writer.release()


# -- one dialogue ----------------------------------------------------------------------


def _r(x: float) -> float:
    return round(float(x), 4)


def render_dialogue(cfg: SynthConfig, out_dir: str, i: int, split: str) -> tuple[list[dict], list[dict]]:
    """Plan and write dialogue ``i``: its wav and mp4 files, then its annotation and cue rows."""
    import soundfile as sf

    rng = np.random.default_rng([cfg.seed, _STREAM_DIALOGUE, i])
    out = Path(out_dir)
    did = f"d{i:04d}"
    n_spk = 3 if rng.random() < cfg.p_three_speakers else 2
    members = [int(k) for k in rng.choice(cfg.n_speakers, n_spk, replace=False)]
    n_turns = int(rng.integers(cfg.min_turns, cfg.max_turns + 1))
    last: dict[int, int] = {}
    prev_emo: int | None = None
    cur = members[0]
    prev_speaker: int | None = None
    rows, cue_rows = [], []
    for turn in range(n_turns):
        if turn:
            others = [m for m in members if m != cur]
            if rng.random() >= cfg.p_same_speaker_again:
                prev_speaker, cur = cur, others[rng.integers(len(others))]
        spk = speaker_identity(cfg.seed, cur)
        emo_i, source = _next_emotion(rng, cfg, last.get(cur), prev_emo)
        if turn == 0:
            source = "first"
        emo = EMOTIONS[emo_i]
        text, t_kind, t_word, t_word_emo = _make_text(rng, cfg, emo_i)

        # Audio.
        a_strength = _strength(rng, cfg.p_weak_audio, *cfg.strength_range, cfg.weak_strength_max)
        n_words = len(text.split())
        n_syll = int(np.clip(round(n_words * 0.9 + rng.normal(0, 1)), 4, 11))
        wave, frame_rms, a_cues = synth_audio(rng, cfg, spk, emo, a_strength, n_syll)
        uid = f"{did}_t{turn:02d}"
        sf.write(out / "audio" / f"{uid}.wav", wave, cfg.sample_rate, subtype="PCM_16")
        n_frames = len(frame_rms)
        mouth = (frame_rms / (frame_rms.max() + 1e-12)) ** 0.7

        # Video: the speaker, and sometimes a listener in the same frame.
        v_strength = _strength(rng, cfg.p_weak_video, *cfg.video_strength_range, cfg.weak_strength_max)
        expr = _expression(rng, cfg, spk, emo, v_strength)
        listener_k = None
        if rng.random() < cfg.p_listener:
            listeners = [m for m in members if m != cur]
            listener_k = prev_speaker if prev_speaker in listeners else listeners[rng.integers(len(listeners))]
        faces = []
        if listener_k is None:
            side = "center"
            sx = float(rng.uniform(38, cfg.frame_width - 38))
            sscale = 1.0
        else:
            side = "left" if rng.random() < 0.5 else "right"
            left_x, right_x = 33 + rng.uniform(-3, 3), cfg.frame_width - 33 + rng.uniform(-3, 3)
            sx, lx = (left_x, right_x) if side == "left" else (right_x, left_x)
            sscale = float(rng.uniform(0.95, 1.0))
        sy = float(rng.uniform(47, 51))
        faces.append({"spk": spk, "cx": sx, "cy": sy, "scale": sscale, "expr": expr, "mouth": mouth})
        lis = {}
        if listener_k is not None:
            lspk = speaker_identity(cfg.seed, listener_k)
            l_emo = EMOTIONS[last.get(listener_k, 0)]  # their current state; neutral before they spoke
            l_strength = _strength(rng, cfg.p_weak_video, *cfg.video_strength_range, cfg.weak_strength_max)
            moving = bool(rng.random() < cfg.p_listener_mouth_moving)
            lscale = float(rng.uniform(0.95, 1.0))
            ly = float(rng.uniform(47, 51))
            faces.append({"spk": lspk, "cx": lx, "cy": ly, "scale": lscale,
                          "expr": _expression(rng, cfg, lspk, l_emo, l_strength),
                          "mouth": _listener_mouth(rng, cfg, n_frames, moving)})
            lis = {"listener": lspk["speaker"], "listener_emotion": l_emo, "listener_video_strength": _r(l_strength),
                   "listener_mouth": "moving" if moving else "closed", "listener_face_x": _r(lx),
                   "listener_face_y": _r(ly), "listener_face_h": _r(2 * lspk["ay"] * lscale)}
        render_video(out / "video" / f"{uid}.mp4", rng, cfg, faces, n_frames)

        rows.append({"uid": uid, "dialogue_id": did, "turn": turn, "speaker": spk["speaker"], "text": text,
                     "label": emo, "split": split, "audio": f"audio/{uid}.wav", "video": f"video/{uid}.mp4"})
        cue = {"uid": uid, "dialogue_id": did, "turn": turn, "speaker": spk["speaker"], "label": emo,
               "emotion_source": source, "text_cue": t_kind, "text_word": t_word, "text_word_emotion": t_word_emo}
        cue.update({k: (_r(v) if isinstance(v, float) else v) for k, v in a_cues.items()})
        cue.update({"video_strength": _r(v_strength), "mouth_curve": _r(expr["curve"]),
                    "brow_angle": _r(expr["brow_angle"]), "brow_raise": _r(expr["brow_raise"]),
                    "n_frames": n_frames, "n_faces": len(faces), "speaker_side": side,
                    "speaker_face_x": _r(sx), "speaker_face_y": _r(sy), "speaker_face_h": _r(2 * spk["ay"] * sscale)})
        cue.update({k: lis.get(k, "") for k in CUE_LISTENER_COLUMNS})
        cue_rows.append(cue)
        last[cur] = emo_i
        prev_emo = emo_i
    return rows, cue_rows


CUE_LISTENER_COLUMNS = ("listener", "listener_emotion", "listener_video_strength", "listener_mouth",
                        "listener_face_x", "listener_face_y", "listener_face_h")


def _job(args: tuple[SynthConfig, str, int, str]) -> tuple[list[dict], list[dict]]:
    return render_dialogue(*args)


def _worker_init(parent_pid: int | None = None) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    if parent_pid is not None:  # a pool worker: killed with its parent, not left writing into a removed folder
        from merbench.features.store import _die_with_parent

        _die_with_parent(parent_pid)


def _iter_dialogues(cfg: SynthConfig, out_dir: Path, splits: list[str], workers: int) -> Iterator[tuple[list, list]]:
    jobs = [(cfg, str(out_dir), i, splits[i]) for i in range(cfg.n_dialogues)]
    if workers <= 1:
        _worker_init()
        for job in jobs:
            yield _job(job)
        return
    import multiprocessing as mp

    # spawn: never inherit the parent's threads (torch, BLAS) into a forked child.
    with mp.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(os.getpid(),)) as pool:
        yield from pool.imap(_job, jobs, chunksize=2)


# -- the corpus folder -------------------------------------------------------------------


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _partial_name(root: Path) -> str:
    return f".{root.name}.partial-"


def _remove_stale_partials(root: Path) -> None:
    """Remove temporary folders left by generations that were killed (their process is gone)."""
    if not root.parent.is_dir():
        return
    for p in root.parent.glob(_partial_name(root) + "*"):
        try:
            pid = int(p.name[len(_partial_name(root)):].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _check_target(root: Path) -> None:
    from merbench.errors import MerbenchError

    if root.exists() and not root.is_dir():
        raise MerbenchError(f"{root} exists and is not a folder", fix="remove it or generate the corpus elsewhere")
    if root.is_dir() and any(root.iterdir()) and not (root / "generator.json").exists():
        raise MerbenchError(f"{root} is not empty and holds no synthetic corpus (no generator.json); "
                            "refusing to replace it",
                            fix="choose a new or empty folder: `bench data prepare synthetic --root NEW_FOLDER`")


def _swap_into_place(tmp: Path, root: Path) -> None:
    old = None
    if root.exists():
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        else:
            old = root.parent / f".{root.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(root, old)
    os.rename(tmp, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate(root: Path, n_dialogues: int = 300, seed: int = 0, workers: int = 2, progress: bool = False,
             *, config: SynthConfig | None = None) -> Path:
    """Generate the corpus into ``root`` and return it.

    Files are written into a temporary sibling folder which is renamed onto ``root`` at
    the end, so an interrupted run never leaves a corpus that looks complete. An
    existing synthetic corpus at ``root`` is replaced; any other non-empty folder is refused.
    The output is identical for any ``workers``. ``config`` overrides every parameter
    (its n_dialogues and seed win over the arguments).
    """
    cfg = config or SynthConfig(n_dialogues=int(n_dialogues), seed=int(seed))
    cfg.validate()
    root = Path(root).expanduser().absolute()
    _check_target(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(root)
    tmp = root.parent / f"{_partial_name(root)}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        (tmp / "audio").mkdir(parents=True)
        (tmp / "video").mkdir()
        splits = assign_splits(cfg)
        rows: list[dict] = []
        cue_rows: list[dict] = []
        results = _iter_dialogues(cfg, tmp, splits, max(1, int(workers)))
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            cols = (TextColumn("[bold]synthetic corpus[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("dialogues"), TimeElapsedColumn(), TimeRemainingColumn())
            with Progress(*cols) as bar:
                task = bar.add_task("generate", total=cfg.n_dialogues)
                for r, c in results:
                    rows += r
                    cue_rows += c
                    bar.advance(task)
        else:
            for r, c in results:
                rows += r
                cue_rows += c
        _write_csv(tmp / "annotations.csv", rows, list(ANNOTATION_COLUMNS))
        _write_csv(tmp / "cues.csv", cue_rows, list(cue_rows[0]))
        summary = {
            "n_utterances": len(rows),
            "labels": {e: sum(r["label"] == e for r in rows) for e in EMOTIONS},
            "splits": {s: sum(r["split"] == s for r in rows) for s in ("train", "valid", "test")},
        }
        info = {"generator": GENERATOR_NAME, "version": GENERATOR_VERSION, "seed": cfg.seed,
                "parameters": asdict(cfg), "summary": summary,
                "note": "cues.csv holds the planted cue values, for analysis only; methods never see it."}
        (tmp / "generator.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _swap_into_place(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
