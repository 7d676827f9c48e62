"""Real-shaped media fixtures, generated (nothing downloaded), tiny so that tests take seconds.

- :func:`write_meld_raw`: a MELD.Raw-shaped tree: ``MELD.Raw/{train,dev,test}_sent_emo.csv`` and
  ``MELD.Raw/{train_splits,dev_splits_complete,output_repeated_splits_test}/dia{D}_utt{U}.mp4``,
  each clip H.264 video + AAC audio (48 kHz stereo) in one file, 25 fps, two or three drawn faces
  with the speaker's mouth moving with the speech; one clip with no face, one shorter than 0.1 s,
  one with a variable frame rate.
- :func:`write_iemocap_release`: an IEMOCAP-release-shaped tree: ``Session{n}/sentences/wav/<dialogue>/
  <uid>.wav``, ``Session{n}/dialog/avi/DivX/<dialogue>.avi`` (MPEG-4 part 2, both actors side by
  side, PCM audio), ``dialog/EmoEvaluation/<dialogue>.txt`` with the time stamps and labels,
  ``dialog/transcriptions/<dialogue>.txt``.

Faces are drawn like the synthetic corpus draws them (``datasets/synthetic/generator.py``).
Each writer returns a manifest: per utterance the speaker's face position, so that a test can
check an active-speaker choice against it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from merbench.features.media import write_av_clip

FPS = 25
WIDTH, HEIGHT = 192, 96
MELD_SR = 48000
IEMOCAP_SR = 16000
MELD_EMOTIONS = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")
MELD_SPLITS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}


# -- signals ---------------------------------------------------------------------------------------


def speech(rng: np.random.Generator, seconds: float, sr: int, f0: float) -> tuple[np.ndarray, np.ndarray]:
    """A voiced, syllable-modulated tone and its envelope per video frame (0..1, mouth opening)."""
    n = max(1, int(round(seconds * sr)))
    t = np.arange(n) / sr
    rate = rng.uniform(3.0, 5.0)  # syllables per second
    env = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, np.pi)), 0, None) ** 0.8
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * env
    wave = (0.25 * wave / (np.abs(wave).max() + 1e-9) + rng.normal(0, 0.003, n)).astype(np.float32)
    hop = sr / FPS
    frames = max(1, int(math.ceil(n / hop)))
    per_frame = np.array([env[int(i * hop):max(int(i * hop) + 1, int((i + 1) * hop))].mean() for i in range(frames)])
    return wave, per_frame / (per_frame.max() + 1e-9)


def render(rng: np.random.Generator, faces: list[dict], n_frames: int, width: int = WIDTH, height: int = HEIGHT
           ) -> list[np.ndarray]:
    """RGB frames of the given faces; each face: ``spk`` (identity), ``cx``, ``cy``, ``mouth`` per frame."""
    from merbench.datasets.synthetic.generator import _draw_face

    bg = rng.uniform(25, 75, 3).astype(np.uint8)
    out = []
    for f in range(n_frames):
        img = np.empty((height, width, 3), np.uint8)
        img[:] = bg
        for face in faces:
            opening = float(face["mouth"][min(f, len(face["mouth"]) - 1)]) * face["spk"]["mouth_open_max"]
            _draw_face(img, face["spk"], face["cx"], face["cy"], 1.0, NEUTRAL_FACE, opening, False)
        noise = rng.normal(0, 3.0, img.shape)
        out.append(np.clip(img + noise, 0, 255).astype(np.uint8)[..., ::-1].copy())  # drawn BGR -> RGB
    return out


NEUTRAL_FACE = {"curve": 0.0, "brow_angle": 0.0, "brow_raise": 0.0, "eye_open": 1.0, "mouth_width": 1.0}


def _identity(k: int) -> dict:
    from merbench.datasets.synthetic.generator import speaker_identity

    return speaker_identity(0, k)


# -- MELD.Raw ---------------------------------------------------------------------------------------

MELD_NAMES = ("Chandler", "Monica", "Ross", "Rachel", "Joey", "Phoebe")


def write_meld_raw(root: Path, seed: int = 0) -> dict[str, dict]:
    """A MELD.Raw-shaped tree under ``root/MELD.Raw``; returns {uid: manifest row} with the uid as
    the MELD adapter spells it (``train/dia0_utt1``) and the speaker's face centre ``speaker_x``."""
    rng = np.random.default_rng(seed)
    base = root / "MELD.Raw"
    plan = {"train": [3, 3, 3, 2], "dev": [3], "test": [3, 2]}  # utterances per dialogue
    manifest: dict[str, dict] = {}
    special = {("train", 0, 1): "no_face", ("train", 1, 2): "short", ("train", 2, 0): "vfr", ("test", 0, 1): "three"}
    for file_split, dialogues in plan.items():
        rows = []
        for d, n_utts in enumerate(dialogues):
            cast = [int(k) for k in rng.choice(len(MELD_NAMES), 3, replace=False)]
            for u in range(n_utts):
                kind = special.get((file_split, d, u), "two")
                who = cast[u % 2]
                spk = _identity(who)
                label = MELD_EMOTIONS[int(rng.integers(4))]  # the four most frequent classes, like MELD
                seconds = 0.08 if kind == "short" else float(rng.uniform(0.6, 1.0))
                wave, mouth = speech(rng, seconds, MELD_SR, spk["f0"])
                n_frames = len(mouth)
                xs = [48, 144] if kind != "three" else [32, 96, 160]
                speaker_slot = int(rng.integers(len(xs)))
                faces = []
                if kind != "no_face":
                    others = [c for c in cast if c != who] + [who]
                    for slot, x in enumerate(xs):
                        ident = spk if slot == speaker_slot else _identity(others.pop(0))
                        still = np.zeros(n_frames) if slot != speaker_slot else mouth
                        faces.append({"spk": ident, "cx": float(x), "cy": 48.0, "mouth": still})
                frames = render(rng, faces, n_frames)
                clip = base / MELD_SPLITS[file_split] / f"dia{d}_utt{u}.mp4"
                write_av_clip(clip, frames, wave, MELD_SR, vfr=kind == "vfr")
                start = 60.0 * d + 3 * u
                rows.append({"Sr No.": len(rows) + 1, "Utterance": f"line {u} of scene {d}, {label} words",
                             "Speaker": MELD_NAMES[who], "Emotion": label, "Sentiment": "neutral",
                             "Dialogue_ID": d, "Utterance_ID": u, "Season": 3, "Episode": 7,
                             "StartTime": _srt(start), "EndTime": _srt(start + seconds)})
                manifest[f"{file_split}/dia{d}_utt{u}"] = {
                    "kind": kind, "n_faces": len(faces), "speaker_x": xs[speaker_slot] if faces else None,
                    "seconds": seconds, "clip": clip, "label": label}
        with open(base / f"{file_split}_sent_emo.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return manifest


def _srt(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


# -- IEMOCAP release ---------------------------------------------------------------------------------

IEMOCAP_CODES = ("neu", "hap", "sad", "ang", "exc", "fru")
# Session 1: two training dialogues and one of COSMIC's validation dialogues; Session 5: the test set.
IEMOCAP_DIALOGUES = {1: ("Ses01F_impro02", "Ses01F_script01_1", "Ses01M_impro01"), 5: ("Ses05F_impro01",)}


def write_iemocap_release(root: Path, seed: int = 0, turns: int = 4) -> dict[str, dict]:
    """An IEMOCAP-release-shaped tree under ``root``; returns {uid: manifest row}. Each dialogue is
    one side-by-side avi (female actor left, male right; whoever speaks moves the mouth) with the
    utterances back to back, 0.2 s apart; its EmoEvaluation holds their start and end times."""
    rng = np.random.default_rng(seed)
    manifest: dict[str, dict] = {}
    for session, dialogues in IEMOCAP_DIALOGUES.items():
        sess = root / f"Session{session}"
        for dialogue in dialogues:
            actors = {"F": _identity(2 * session), "M": _identity(2 * session + 1)}
            t, frames, audio, emo_lines, trans_lines = 0.0, [], [], [], []
            counters = {"F": 0, "M": 0}
            for turn in range(turns):
                letter = "FM"[turn % 2] if dialogue[5] == "F" else "MF"[turn % 2]
                uid = f"{dialogue}_{letter}{counters[letter]:03d}"
                counters[letter] += 1
                spk = actors[letter]
                seconds = float(rng.uniform(0.6, 0.9))
                wave, mouth = speech(rng, seconds, IEMOCAP_SR, spk["f0"])
                gap = np.zeros(int(0.2 * IEMOCAP_SR), np.float32)
                wav = sess / "sentences" / "wav" / dialogue / f"{uid}.wav"
                wav.parent.mkdir(parents=True, exist_ok=True)
                import soundfile as sf

                sf.write(wav, wave, IEMOCAP_SR, subtype="PCM_16")
                faces = [{"spk": actors["F"], "cx": 48.0, "cy": 48.0,
                          "mouth": mouth if letter == "F" else np.zeros(len(mouth))},
                         {"spk": actors["M"], "cx": 144.0, "cy": 48.0,
                          "mouth": mouth if letter == "M" else np.zeros(len(mouth))}]
                frames += render(rng, faces, len(mouth) + int(0.2 * FPS))
                audio += [np.pad(wave, (0, len(mouth) * (IEMOCAP_SR // FPS) - len(wave))), gap]
                start, end = t, t + len(mouth) / FPS
                t = end + 0.2
                code = IEMOCAP_CODES[int(rng.integers(len(IEMOCAP_CODES)))]
                v, a, d = (float(rng.uniform(1.5, 4.5)) for _ in range(3))
                emo_lines.append(f"[{start:.4f} - {end:.4f}]\t{uid}\t{code}\t[{v:.4f}, {a:.4f}, {d:.4f}]")
                trans_lines.append(f"{uid} [{start:08.4f}-{end:08.4f}]: turn {turn} of {dialogue} said with {code}.")
                manifest[uid] = {"dialogue": dialogue, "start": start, "end": end, "code": code, "wav": wav,
                                 "speaker_x": 48 if letter == "F" else 144}
            avi = sess / "dialog" / "avi" / "DivX" / f"{dialogue}.avi"
            write_av_clip(avi, frames, np.concatenate(audio), IEMOCAP_SR, video_codec="mpeg4", audio_codec="pcm_s16le")
            emo = sess / "dialog" / "EmoEvaluation" / f"{dialogue}.txt"
            emo.parent.mkdir(parents=True, exist_ok=True)
            # the release's layout: a header line, then per utterance a summary line and the raters' lines
            body = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            for line in emo_lines:
                body += [line, f"C-E1:\t{line.split(chr(9))[2].capitalize()};\t()", ""]
            emo.write_text("\n".join(body), encoding="utf-8")
            tr = sess / "dialog" / "transcriptions" / f"{dialogue}.txt"
            tr.parent.mkdir(parents=True, exist_ok=True)
            tr.write_text("\n".join(trans_lines) + "\n", encoding="utf-8")
    return manifest
