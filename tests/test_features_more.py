"""The other feature extractors: audio-hf, audio-logmel, audio-emotion2vec, video-hf, text-context.

Every Hugging Face model here is a tiny random-weight one saved to a temporary folder, so
nothing is downloaded; the outputs are checked for shape, dtype, level and wiring (which
layer, which token, which face, which context), not for meaning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data_or_skip
from merbench.corpus import Corpus, Utterance
from merbench.errors import ConfigError, MerbenchError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from test_features import utt, write_tone, write_video  # noqa: E402  (shared media helpers)

SR = 16000


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media_more")
    return {
        "tone": write_tone(d / "tone.wav", seconds=0.6),
        "tone_long": write_tone(d / "tone_long.wav", seconds=1.3, freq=300.0),
        "short": write_tone(d / "short.wav", seconds=0.02),
        "face": write_video(d / "face.mp4", n_frames=12),
        "two_faces": write_video(d / "two.mp4", n_frames=12, size=(200, 120),
                                 faces=((150, 60, 28, 40, "talk"), (50, 62, 27, 39, "still"))),
    }


# -- tiny random models -------------------------------------------------------------------------

SPEECH_KW = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                 conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8)


def _speech_model(root: Path, kind: str) -> Path:
    import transformers as tf

    cfg_cls, model_cls, norm = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model, "group"),
                                "hubert": (tf.HubertConfig, tf.HubertModel, "layer"),
                                "wavlm": (tf.WavLMConfig, tf.WavLMModel, "layer")}[kind]
    d = root / kind
    torch.manual_seed(0)
    model_cls(cfg_cls(feat_extract_norm=norm, **SPEECH_KW)).save_pretrained(d)
    # Like the real checkpoints: group-norm models take no attention mask, layer-norm ones do.
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0, do_normalize=True,
                                return_attention_mask=norm == "layer").save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def speech_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_models")
    return {k: _speech_model(root, k) for k in ("wav2vec2", "hubert", "wavlm")}


def build_tiny_vit(d: Path) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=30), add_pooling_layer=False).save_pretrained(d)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(d)
    return d


def build_tiny_mlm(d: Path, max_positions: int = 64) -> Path:
    """A tiny BERT with a [MASK] token and a word-piece vocabulary of a few words."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "now", "feels", ":", "a", "b", "hi", "i", "am", "sad", "ok"]
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(d / "vocab.txt")).save_pretrained(d)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=20, max_position_embeddings=max_positions)).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    return build_tiny_vit(tmp_path_factory.mktemp("tiny_vit"))


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    """A tiny BERT with a [MASK] token, for the mask read-out of text-context."""
    return build_tiny_mlm(tmp_path_factory.mktemp("tiny_mlm"))


# -- registry and sizes ----------------------------------------------------------------------------


def test_new_extractors_are_registered_and_state_their_sizes_without_weights():
    from merbench.registry import get_feature

    expect = {"audio-hf": (768, 768), "audio-logmel": (128, 64), "audio-emotion2vec": (768, 768),
              "video-hf": (768, 768), "text-context": (384, 384)}
    for name, dims in expect.items():
        ex = get_feature(name)()  # the runner builds extractors with no arguments
        assert ex.name == name and set(ex.levels) == {"pooled", "frames"}
        assert (ex.output_dim("pooled"), ex.output_dim("frames")) == dims, name
        assert ex.settings() and isinstance(ex.settings(), dict)


# -- audio-logmel -----------------------------------------------------------------------------------


def test_logmel_shapes_bins_and_bad_setting(media):
    from merbench.features.logmel import LogMelExtractor

    a, b = LogMelExtractor().extract([utt("a", audio=media["tone"]), utt("b", audio=media["short"])])
    assert a.frames.shape == (1 + int(0.6 * SR) // 160, 64) and a.pooled.shape == (128,)  # 10 ms hop, centred
    assert a.frames.dtype == a.pooled.dtype == np.float32 and np.isfinite(a.frames).all()
    np.testing.assert_allclose(a.pooled, np.concatenate([a.frames.mean(0), a.frames.std(0)]), rtol=1e-5, atol=1e-5)
    assert b.frames.shape[1] == 64 and np.isfinite(b.pooled).all()  # 20 ms still gives frames
    # A 220 Hz tone with harmonics: low bands carry more energy than the top ones.
    assert a.frames[:, 2:12].mean() > a.frames[:, -10:].mean() + 3
    ex80 = LogMelExtractor(n_mels=80)
    assert ex80.extract([utt("a", audio=media["tone"])])[0].frames.shape[1] == 80
    assert (ex80.output_dim("pooled"), ex80.output_dim("frames")) == (160, 80)
    assert ex80.settings()["n_mels"] == 80 and ex80.settings()["win_length"] == 400
    with pytest.raises(ConfigError, match="64 or 80"):
        LogMelExtractor(n_mels=40)


# -- audio-hf ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
def test_hf_speech_layers_shapes_and_padding(speech_models, media, kind):
    from merbench.features.speech_hf import HFSpeechExtractor

    path = speech_models[kind]
    batch = [utt("a", audio=media["tone"]), utt("b", audio=media["tone_long"]), utt("c", audio=media["short"])]
    per_layer = []
    for layer in (0, 1, 2):
        items = HFSpeechExtractor(path, layer=layer).extract(batch)
        assert [it.frames.shape for it in items] == [(29, 32), (64, 32), (1, 32)]  # 20 ms frames, padding cut
        per_layer.append(items)
    last = HFSpeechExtractor(path).extract(batch)  # default layer -1 is the last (2)
    np.testing.assert_allclose(last[1].frames, per_layer[2][1].frames, atol=1e-5)
    assert not np.allclose(per_layer[0][1].frames, per_layer[2][1].frames)
    mean = HFSpeechExtractor(path, layer="mean").extract(batch)
    for j, it in enumerate(mean):
        assert it.pooled.dtype == it.frames.dtype == np.float32 and it.pooled.shape == (32,)
        np.testing.assert_allclose(it.frames, np.mean([p[j].frames for p in per_layer], axis=0), atol=1e-4)
        np.testing.assert_allclose(it.pooled, it.frames.mean(0), atol=1e-5)
    # A clip's features do not depend on what it was batched with (mask, or one clip per pass).
    alone = HFSpeechExtractor(path, layer="mean").extract([batch[0]])[0]
    np.testing.assert_allclose(alone.frames, mean[0].frames, atol=1e-4)
    ex = HFSpeechExtractor(path, layer=1)
    assert ex.output_dim("frames") == 32 and ex.settings()["layer"] == 1
    with pytest.raises(ConfigError, match="does not exist"):
        HFSpeechExtractor(path, layer=7).extract(batch[:1])


def test_hf_speech_bad_settings_and_real_speech(speech_models):
    from merbench.features.speech_hf import HFSpeechExtractor

    with pytest.raises(ConfigError, match="integer or 'mean'"):
        HFSpeechExtractor(speech_models["wavlm"], layer="last")
    with pytest.raises(MerbenchError, match="cannot load the Hugging Face speech model"):
        HFSpeechExtractor("/nonexistent/model-folder").model()
    if not torch.cuda.is_available():
        with pytest.raises(MerbenchError, match="no CUDA GPU"):
            HFSpeechExtractor(speech_models["wavlm"], device="cuda").model()
    wav = shared_data_or_skip() / "audio" / "speech_16k.wav"
    if not wav.exists():
        pytest.skip(f"{wav} is not on this machine")
    it = HFSpeechExtractor(speech_models["wavlm"], layer="mean").extract([utt("s", audio=wav)])[0]
    assert it.frames.shape[1] == 32 and 195 <= len(it.frames) <= 210  # about 4.1 s at 50 frames/s
    assert np.isfinite(it.frames).all()


def test_audio_extractors_through_the_cache(speech_models, media, tmp_path):
    """extract_corpus with audio-hf and audio-logmel: table shapes, and a second call reuses the cache."""
    from merbench.features import store
    from merbench.features.logmel import LogMelExtractor
    from merbench.features.speech_hf import HFSpeechExtractor

    utts = [utt(f"u{i}", audio=p, turn=i) for i, p in enumerate([media["tone"], media["tone_long"], media["short"]])]
    corpus = Corpus("tones-more", utts, root=tmp_path)
    calls = []

    class Counting(HFSpeechExtractor):
        def extract(self, utterances):
            calls.append(len(utterances))
            return super().extract(utterances)

    for ex, dim, fdim in ((Counting(speech_models["hubert"], layer="mean"), 32, 32), (LogMelExtractor(), 128, 64)):
        entry = store.extract_corpus(corpus, ex, cache=tmp_path / "cache")
        table = store.load_table(entry)
        assert table.pooled.shape == (3, dim) and table.valid.all() and [f.shape[1] for f in table.frames] == [fdim] * 3
    assert calls == [3]
    again = Counting(speech_models["hubert"], layer="mean")
    assert store.extract_corpus(corpus, again, cache=tmp_path / "cache") == store.entry_dir(corpus, again, tmp_path / "cache")
    assert calls == [3]  # the finished entry was reused: no extraction
    other = Counting(speech_models["hubert"], layer=0)  # another layer is another cache entry
    assert store.entry_dir(corpus, other, tmp_path / "cache") != store.entry_dir(corpus, again, tmp_path / "cache")


# -- audio-emotion2vec ------------------------------------------------------------------------------


def test_emotion2vec_sizes_and_missing_extra(monkeypatch, media):
    from merbench.features.emotion2vec import Emotion2VecExtractor

    assert Emotion2VecExtractor().output_dim("pooled") == 768
    big = Emotion2VecExtractor("emotion2vec_plus_large")
    assert big.model_name == "iic/emotion2vec_plus_large"
    assert big.output_dim("pooled") == big.output_dim("frames") == 1024
    with pytest.raises(ConfigError, match="unknown model"):
        Emotion2VecExtractor("iic/emotion2vec_huge")
    monkeypatch.setitem(sys.modules, "funasr", None)  # as if not installed, even where it is
    with pytest.raises(MerbenchError) as e:
        Emotion2VecExtractor().extract([utt("a", audio=media["tone"])])
    assert "FunASR" in str(e.value) and ".[emotion2vec]" in e.value.fix


# A tiny emotion2vec (data2vec-style audio encoder: conv feature extractor, ALiBi, 2 blocks of
# width 32), in FunASR's own folder layout: config.yaml naming the Emotion2vec class + model.pt.
TINY_E2V_AUDIO = {
    "type": "AUDIO", "prenet_depth": 1, "prenet_layerdrop": 0.0, "prenet_dropout": 0.0, "start_drop_path_rate": 0.0,
    "end_drop_path_rate": 0.0, "num_extra_tokens": 4, "init_extra_token_zero": True, "mask_noise_std": 0.01,
    "mask_prob_min": None, "inverse_mask": False, "mask_prob": 0.5, "mask_prob_adjust": 0.0, "keep_masked_pct": 0.0,
    "mask_length": 5, "add_masks": False, "remove_masks": False, "mask_dropout": 0.0, "encoder_zero_mask": True,
    "mask_channel_prob": 0.0, "mask_channel_length": 64, "ema_local_encoder": False, "local_grad_mult": 1.0,
    "use_alibi_encoder": True, "alibi_scale": 1.0, "learned_alibi": False, "alibi_max_pos": None,
    "learned_alibi_scale": True, "learned_alibi_scale_per_head": True, "learned_alibi_scale_per_layer": False,
    "num_alibi_heads": 2, "model_depth": 2, "decoder": None, "extractor_mode": "layer_norm",
    # 7 conv layers, total stride 320 (20 ms at 16 kHz), as the real model, only narrower
    "feature_encoder_spec": "[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2",
    "conv_pos_width": 31, "conv_pos_groups": 4, "conv_pos_depth": 1, "conv_pos_pre_ln": False}
TINY_E2V = {
    "depth": 2, "embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "norm_eps": 1e-5, "norm_affine": True,
    "encoder_dropout": 0.0, "post_mlp_drop": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "dropout_input": 0.0, "layerdrop": 0.0, "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
    "layer_norm_first": False, "average_top_k_layers": 2, "end_of_block_targets": False, "clone_batch": 1,
    "loss_beta": 0.0, "loss_scale": None, "normalize": True, "modalities": {"audio": TINY_E2V_AUDIO}}


def build_tiny_emotion2vec(folder: Path) -> Path:
    """Write a random-weight emotion2vec that FunASR's AutoModel loads from ``folder`` offline."""
    import yaml
    import funasr.models.emotion2vec.model  # noqa: F401  (registers the class)
    from funasr.register import tables

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec", "model_conf": TINY_E2V}))
    torch.manual_seed(0)
    net = tables.model_classes["Emotion2vec"](model_conf=TINY_E2V)
    torch.save(net.state_dict(), folder / "model.pt")
    return folder


@pytest.fixture(scope="module")
def tiny_emotion2vec(tmp_path_factory):
    pytest.importorskip("funasr", reason="FunASR (the .[emotion2vec] extra) is not installed")
    return build_tiny_emotion2vec(tmp_path_factory.mktemp("tiny_e2v"))


def test_emotion2vec_through_funasr_on_a_tiny_model(tiny_emotion2vec, media, tmp_path):
    """The real FunASR path (AutoModel from a model folder, generate, frame granularity),
    offline, on the real speech clip and through the feature cache."""
    from merbench.features import store
    from merbench.features.emotion2vec import Emotion2VecExtractor

    threads = torch.get_num_threads()
    ex = Emotion2VecExtractor(str(tiny_emotion2vec))
    assert ex.output_dim("pooled") == ex.output_dim("frames") == 32
    assert ex.settings()["model"] == str(tiny_emotion2vec.resolve())
    it = ex.extract([utt("a", audio=media["tone"])])[0]
    assert torch.get_num_threads() == threads  # FunASR would set 4 for the whole process
    assert it.frames.shape[1] == 32 and 28 <= len(it.frames) <= 31  # 0.6 s at 50 frames/s
    assert it.frames.dtype == it.pooled.dtype == np.float32 and np.isfinite(it.frames).all()
    np.testing.assert_allclose(it.pooled, it.frames.mean(0), atol=1e-5)
    utts = [utt("t0", audio=media["tone"], turn=0), utt("t1", audio=media["tone_long"], turn=1)]
    wav = shared_data_or_skip() / "audio" / "speech_16k.wav"
    if wav.exists():
        utts.append(utt("speech", audio=wav, turn=2))
    entry = store.extract_corpus(Corpus("e2v", utts, root=tmp_path), ex, cache=tmp_path / "cache")
    table = store.load_table(entry, frames=True)
    assert table.pooled.shape == (len(utts), 32) and table.valid.all()
    if wav.exists():
        assert 195 <= len(table.frames[2]) <= 210  # about 4.1 s of real speech at 50 frames/s


def test_emotion2vec_local_folder_errors(tmp_path):
    from merbench.features.emotion2vec import Emotion2VecExtractor

    with pytest.raises(ConfigError, match="without config.yaml"):
        Emotion2VecExtractor(str(tmp_path))
    (tmp_path / "config.yaml").write_text("model: Paraformer\nmodel_conf: {}\n")
    with pytest.raises(ConfigError, match="not an emotion2vec config"):
        Emotion2VecExtractor(str(tmp_path))


# -- video-hf ---------------------------------------------------------------------------------------


def test_hf_vision_convolutional_model(media, tmp_path):
    """A CNN (tiny random ResNet: (C, H, W) maps, no tokens): its pooled output per frame."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetModel

    from merbench.features.vision_hf import HFVisionExtractor

    torch.manual_seed(0)
    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], layer_type="basic")).save_pretrained(tmp_path)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(tmp_path)
    ex = HFVisionExtractor(str(tmp_path), max_frames=5)
    assert ex.output_dim("pooled") == ex.output_dim("frames") == 12  # the last stage's width, from the config
    it = ex.extract([utt("v", video=media["face"])])[0]
    assert it.frames.shape == (5, 12) and it.pooled.shape == (12,) and np.isfinite(it.frames).all()
    np.testing.assert_allclose(it.pooled, it.frames.mean(0), atol=1e-5)


def test_hf_vision_on_face_crops(tiny_vit, media, tmp_path):
    from merbench.features import store
    from merbench.features.media import read_video
    from merbench.features.video import default_detector, select_by_mouth_motion
    from merbench.features.vision_hf import HFVisionExtractor, face_boxes

    ex = HFVisionExtractor(tiny_vit, max_frames=6)
    assert ex.output_dim("pooled") == ex.output_dim("frames") == 24
    it = ex.extract([utt("v", video=media["two_faces"])])[0]
    assert it.frames.shape == (6, 24) and it.pooled.shape == (24,)
    assert it.frames.dtype == it.pooled.dtype == np.float32 and np.isfinite(it.frames).all()
    np.testing.assert_allclose(it.pooled, it.frames.mean(0), atol=1e-5)
    assert ex.counts == {"utterances": 1, "no_face": 0, "several_faces": 1}
    # The crops follow the talking face (centre x = 150 of 200), in full-size pixels.
    frames, _ = read_video(media["two_faces"], max_frames=6)
    boxes, n = face_boxes(frames, default_detector(), select_by_mouth_motion)
    assert n == 2 and np.abs(boxes[:, 0] + boxes[:, 2] / 2 - 150).max() < 10
    mean = HFVisionExtractor(tiny_vit, readout="mean", max_frames=6).extract([utt("v", video=media["two_faces"])])[0]
    assert mean.frames.shape == (6, 24) and not np.allclose(mean.frames, it.frames)
    # Through the cache.
    corpus = Corpus("faces", [utt("f0", video=media["face"]), utt("f1", video=media["two_faces"], turn=1)], root=tmp_path)
    table = store.load_table(store.extract_corpus(corpus, HFVisionExtractor(tiny_vit, max_frames=4), cache=tmp_path))
    assert table.pooled.shape == (2, 24) and [f.shape for f in table.frames] == [(4, 24), (4, 24)]
    with pytest.raises(ConfigError):
        HFVisionExtractor(tiny_vit, readout="pooler")


def test_hf_vision_video_model_embeds_one_clip(media, tmp_path):
    """A video model (tiny TimeSformer): the crops go in as one clip of its num_frames."""
    from transformers import TimesformerConfig, TimesformerModel, VideoMAEImageProcessor

    from merbench.features.vision_hf import HFVisionExtractor

    torch.manual_seed(0)
    TimesformerModel(TimesformerConfig(image_size=32, patch_size=8, num_frames=4, hidden_size=24, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=30)).save_pretrained(tmp_path)
    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    it = HFVisionExtractor(tmp_path, max_frames=6).extract([utt("v", video=media["face"])])[0]
    assert it.frames.shape == (1 + 4 * 16, 24)  # [CLS] + 4 frames x 16 patches
    np.testing.assert_allclose(it.pooled, it.frames[0], atol=1e-6)


# -- text-context -----------------------------------------------------------------------------------


def _dialogue(labels: bool = True) -> list[Utterance]:
    texts = ["hello there", "i am sad", "why is that", "my cat ran away", "oh no"]
    return [Utterance(uid=f"d1_{t}", dialogue_id="d1", turn=t, speaker="A" if t % 2 == 0 else "B", text=x,
                      label=("sadness" if labels else None)) for t, x in enumerate(texts)] + \
           [Utterance(uid="d2_0", dialogue_id="d2", turn=0, speaker="C", text="unrelated words", label="joy")]


def test_text_context_prompt_uses_earlier_turns_only_and_no_labels():
    from merbench.features.text_context import TextContextExtractor

    ex = TextContextExtractor()
    utts = _dialogue()
    prompts = dict(zip([u.uid for u in utts], ex.prompts(utts)))
    p3 = prompts["d1_3"]
    assert p3 == ("A: hello there [SEP] B: i am sad [SEP] A: why is that [SEP] B: my cat ran away "
                  "[SEP] Now B feels [MASK]")
    assert "oh no" not in p3 and "unrelated" not in p3 and "sadness" not in p3
    assert prompts["d1_0"] == "A: hello there [SEP] Now A feels [MASK]"
    assert prompts["d2_0"] == "C: unrelated words [SEP] Now C feels [MASK]"
    # Context comes from earlier batches too (the store hands a corpus over in consecutive batches).
    fresh = TextContextExtractor()
    fresh.prompts(utts[:2])
    assert fresh.prompts(utts[3:4]) == ["A: hello there [SEP] B: i am sad [SEP] B: my cat ran away [SEP] Now B feels [MASK]"]
    limited = TextContextExtractor(max_turns=1)
    assert limited.prompts(utts)[3].startswith("A: why is that [SEP] B: my cat")


def test_text_context_features_readouts_and_cache(tiny_mlm, tmp_path):
    from merbench.features import store
    from merbench.features.text_context import TextContextExtractor

    utts = _dialogue()
    ex = TextContextExtractor()
    assert ex.readout == "utterance"  # MiniLM: the mean of the utterance's own tokens, read in context
    items = ex.extract(utts)
    tok, _ = ex.model()
    for u, it, (prompt, (a, b)) in zip(utts, items, TextContextExtractor().prompts_and_spans(utts)):
        assert it.pooled.shape == (384,) and it.frames.shape[1] == 384
        assert it.pooled.dtype == it.frames.dtype == np.float32
        assert prompt[a:b] == u.text
        enc = tok(prompt, return_offsets_mapping=True, truncation=True, max_length=256)
        own = [k for k, (x, y) in enumerate(enc["offset_mapping"]) if y > x and x < b and y > a]
        assert tok.decode([enc["input_ids"][k] for k in own]) == u.text  # exactly the utterance's tokens
        np.testing.assert_allclose(it.pooled, it.frames[own].mean(0), atol=1e-5)
    last = TextContextExtractor(readout="last").extract(utts)
    for it in last:
        np.testing.assert_allclose(it.pooled, it.frames[-1], atol=1e-5)  # the last real token ([SEP])
    assert items[3].frames.shape[0] > items[0].frames.shape[0]
    # Labels play no part; a later turn's text does not change an earlier turn's features.
    unlabelled = TextContextExtractor().extract(_dialogue(labels=False))
    np.testing.assert_allclose(unlabelled[3].pooled, items[3].pooled, atol=1e-5)
    changed = [u if u.turn != 4 else Utterance(u.uid, u.dialogue_id, 4, u.speaker, "something else entirely")
               for u in utts]
    np.testing.assert_allclose(TextContextExtractor().extract(changed)[3].pooled, items[3].pooled, atol=1e-5)
    earlier = [u if u.turn != 0 else Utterance(u.uid, u.dialogue_id, 0, u.speaker, "good morning") for u in utts]
    assert not np.allclose(TextContextExtractor().extract(earlier)[3].pooled, items[3].pooled, atol=1e-4)
    # The mask read-out of a masked-LM style encoder: the state at [MASK], followed by [SEP].
    mlm = TextContextExtractor(model_name=tiny_mlm)
    assert mlm.readout == "mask" and mlm.output_dim() == 16
    m_items = mlm.extract(utts)
    for it in m_items:
        assert it.pooled.shape == (16,)
        np.testing.assert_allclose(it.pooled, it.frames[-2], atol=1e-5)
    # Through the cache, in corpus order (dialogue, then turn), with several batches.
    corpus = Corpus("dlg", utts, root=tmp_path)
    small = TextContextExtractor()
    small.batch_size = 2
    table = store.load_table(store.extract_corpus(corpus, small, cache=tmp_path))
    assert table.pooled.shape == (6, 384)
    np.testing.assert_allclose(table.pooled, np.stack([it.pooled for it in items]), atol=1e-4)
    with pytest.raises(ConfigError):
        TextContextExtractor(readout="cls")


def test_text_context_resumed_extraction_keeps_earlier_turns(tmp_path, monkeypatch):
    """The store primes context extractors with the whole corpus, so parts resumed after an
    interruption still see the earlier turns of dialogues that cross a part boundary."""
    from merbench.features import store
    from merbench.features.text_context import TextContextExtractor

    monkeypatch.setattr(store, "PART_SIZE", 2)
    utts = [Utterance(f"d0_{t}", "d0", t, "AB"[t % 2], f"turn number {t}") for t in range(4)]
    corpus = Corpus("ctx", utts, root=tmp_path)
    ext = TextContextExtractor()
    fresh = store.load_table(store.extract_corpus(corpus, ext, cache=tmp_path / "a"))
    # Simulate a resume: part 0 exists, a new extractor instance does part 1 only.
    entry = store.entry_dir(corpus, ext, tmp_path / "b")
    entry.mkdir(parents=True)
    (entry / "part-00000.npz").write_bytes((store.entry_dir(corpus, ext, tmp_path / "a") / "part-00000.npz").read_bytes())
    resumed = store.load_table(store.extract_corpus(corpus, TextContextExtractor(), cache=tmp_path / "b"))
    np.testing.assert_allclose(resumed.pooled, fresh.pooled, atol=1e-5)
