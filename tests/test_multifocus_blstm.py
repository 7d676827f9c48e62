"""Multi-focus BLSTM: parameter counts against the original, masked pooling, the staged fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakes import LABELS, fake_split
from merbench.config import method_config
from merbench.errors import ConfigError
from merbench.methods.multifocus_blstm import model as mf
from merbench.methods.multifocus_blstm.method import MultiFocusBLSTMMethod

# Trainable parameters of the original notebooks' models (ViraAkshat/CS772-Project, MMClassifiers.ipynb
# and UnimodalClassifiers.ipynb) with ComParE_2016 LLD audio (65-d), bert-base text (768-d), 4 classes,
# hidden 128, 2 layers, attention 64, GMU 128. Derived layer by layer from the original definitions
# (and confirmed by building them in a scratch folder outside the repository):
#   audio LSTM(65, 128, 2, bidirectional): layer 1 2 x (4*128*(65+128) + 2*4*128) = 199,680;
#       layer 2 2 x (4*128*(256+128) + 2*4*128) = 395,264 -> 594,944
#   text LSTM(768, ...): layer 1 2 x (4*128*(768+128) + 1,024) = 919,552; layer 2 395,264 -> 1,314,816
#   context attention: Linear(256, 64) = 16,448 + v (64) = 16,512
#   GMU: Linear(256, 128) x 2 = 2 x 32,896, gate Linear(512, 128) = 65,664 -> 131,456; fc_mm Linear(128, 4) = 516
#   fused GMU model (MultimodalClassifier_GMU): 594,944 + 1,314,816 + 2 x 16,512 + 131,456 + 516 = 2,074,756
#   B-MM (MultimodalClassifier_baseline): 594,944 + 1,314,816 + Linear(512, 4) 2,052 = 1,911,812
#   acoustic attention model: 594,944 + 16,512 + Linear(256, 4) 1,028 = 612,484
#   lexical attention model: 1,314,816 + 16,512 + 1,028 = 1,332,356
#   last-step / mean-pool models (no attention): audio 595,972, text 1,315,844
ORIGINAL = {"gmu": 2_074_756, "bmm": 1_911_812, "a_attention": 612_484, "t_attention": 1_332_356,
            "a_plain": 595_972, "t_plain": 1_315_844}
DIMS = {"a": 65, "t": 768}
IEMOCAP4 = ("ang", "hap", "neu", "sad")


def make(mods=("t", "a"), variant="default", overrides=(), labels=LABELS, workdir=None):
    cfg = method_config(MultiFocusBLSTMMethod, variant, overrides=overrides)
    return MultiFocusBLSTMMethod(cfg, mods, labels, seed=0, workdir=workdir)


def test_parameter_counts_equal_original():
    assert make(labels=IEMOCAP4).num_parameters(DIMS) == ORIGINAL["gmu"]
    assert make(variant="bmm", labels=IEMOCAP4).num_parameters(DIMS) == ORIGINAL["bmm"]
    assert make(("a",), labels=IEMOCAP4).num_parameters({"a": 65}) == ORIGINAL["a_attention"]
    assert make(("t",), labels=IEMOCAP4).num_parameters({"t": 768}) == ORIGINAL["t_attention"]
    for variant in ("pool_last", "pool_mean"):
        assert make(("a",), variant, labels=IEMOCAP4).num_parameters({"a": 65}) == ORIGINAL["a_plain"]
        assert make(("t",), variant, labels=IEMOCAP4).num_parameters({"t": 768}) == ORIGINAL["t_plain"]


@pytest.mark.parametrize("pooling", mf.POOLINGS)
def test_pooling_ignores_padded_frames(pooling):
    torch.manual_seed(0)
    enc = mf.Encoder(5, hidden=8, pooling=pooling, attention_dim=4).eval()
    x = torch.randn(3, 6, 5)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    for i, n in enumerate((6, 3, 1)):
        mask[i, :n] = True
    noisy = x.clone()
    noisy[~mask] = 50.0 * torch.randn(int((~mask).sum()), 5)
    with torch.no_grad():
        out = enc(x, mask)
        torch.testing.assert_close(out, enc(noisy, mask))
        # The same as encoding the unpadded sequence alone.
        torch.testing.assert_close(out[1:2], enc(x[1:2, :3], mask[1:2, :3]))


def test_last_pooling_takes_the_last_real_step():
    torch.manual_seed(0)
    enc = mf.Encoder(4, hidden=3, pooling="last").eval()
    x, mask = torch.randn(1, 5, 4), torch.tensor([[True, True, True, False, False]])
    with torch.no_grad():
        h, _ = enc.rnn(x[:, :3])
        torch.testing.assert_close(enc(x, mask), h[:, 2])


def test_gmu_gate_mixes_the_two_projections():
    gmu = mf.GMU(3, 3, 2)
    za, zl = torch.randn(4, 3), torch.randn(4, 3)
    h, z = gmu(za, zl)
    torch.testing.assert_close(h, z * torch.tanh(gmu.fc_a(za)) + (1 - z) * torch.tanh(gmu.fc_l(zl)))
    assert ((z > 0) & (z < 1)).all()


TINY = ["model.hidden=8", "model.attention_dim=4", "model.gmu_dim=8", "train.batch_size=8",
        "stages.a.epochs=2", "stages.t.epochs=2", "stages.fusion.epochs=1"]


def test_two_stage_fit_end_to_end(tmp_path, monkeypatch):
    dims = {"t": 12, "a": 6}
    train, valid = fake_split(dims=dims), fake_split(seed=1, name="valid", dims=dims)
    method = make(overrides=TINY, workdir=tmp_path)

    captured = {}
    original = mf.FusedBLSTM.from_unimodal.__func__

    def spy(cls, audio, text, *args, **kwargs):
        model = original(cls, audio, text, *args, **kwargs)
        captured["init"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        captured["audio"] = {k: v.detach().clone() for k, v in audio.state_dict().items()}
        captured["text"] = {k: v.detach().clone() for k, v in text.state_dict().items()}
        return model

    monkeypatch.setattr(mf.FusedBLSTM, "from_unimodal", classmethod(spy))
    report = method.fit(train, valid)

    # Three stages ran, each with its own epochs, recorded in order in the history.
    assert [row["stage"] for row in report.history] == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert report.epochs_run == 5 and set(report.extra["stages"]) == {"a", "t", "fusion"}
    assert set(method.unimodal_models) == {"a", "t"}
    assert isinstance(method.model, mf.FusedBLSTM) and method.model.gmu is not None
    # The fused model started from the trained unimodal encoders (BiLSTM and attention) ...
    init = captured["init"]
    for m, uni in (("a", captured["audio"]), ("t", captured["text"])):
        enc = {k[len("encoder."):]: v for k, v in uni.items() if k.startswith("encoder.")}
        assert enc and any(k.startswith("attention.") for k in enc)
        for k, v in enc.items():
            torch.testing.assert_close(init[f"encoder_{m}.{k}"], v)
    # ... and fusion training left the stored unimodal models untouched (the encoders were copied).
    for m in ("a", "t"):
        for k, v in method.unimodal_models[m].state_dict().items():
            torch.testing.assert_close(captured["audio" if m == "a" else "text"][k], v)
    # The fusion stage trained the fused model further.
    final = method.model.state_dict()
    assert any(not torch.equal(final[k], init[k]) for k in init)
    # Only the audio frames are z-normalised, with training statistics.
    assert set(method.batcher.norm) == {"a"}
    # The stages' resume checkpoints are cleaned up once the fit is done.
    assert not any(tmp_path.glob("stage_*"))
    test = fake_split(seed=2, name="test", labels=False, dims=dims)
    probs = method.predict(test)
    assert probs.shape == (len(test), len(LABELS)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert method.modalities == ("t", "a")


def test_single_modality_fit_is_one_stage():
    dims = {"a": 6}
    method = make(("a",), overrides=TINY)
    report = method.fit(fake_split(dims=dims), fake_split(seed=1, name="valid", dims=dims))
    assert [row["stage"] for row in report.history] == [0.0, 0.0]
    assert isinstance(method.model, mf.UnimodalBLSTM) and method.unimodal_models == {}


def test_bmm_starts_as_the_sum_of_unimodal_logits():
    torch.manual_seed(0)
    kw = {"hidden": 8, "layers": 2, "pooling": "mean", "attention_dim": 4}
    audio, text = mf.UnimodalBLSTM("a", 6, 4, **kw).eval(), mf.UnimodalBLSTM("t", 12, 4, **kw).eval()
    fused = mf.FusedBLSTM.from_unimodal(audio, text, 4, fusion="concat").eval()
    split = fake_split(dims={"t": 12, "a": 6})
    method = make(variant="bmm")
    batch = method.make_batcher(split).collate(split, list(range(len(split))))
    with torch.no_grad():
        torch.testing.assert_close(fused(batch), audio(batch) + text(batch))


def test_stage_settings():
    method = make()
    a, t, fusion = (method.stage_train_cfg(s) for s in ("a", "t", "fusion"))
    assert (a["epochs"], t["epochs"], fusion["epochs"]) == (15, 10, 2)
    assert (a["weight_decay"], t["weight_decay"], fusion["weight_decay"]) == (0.0, 1e-5, 0.0)
    assert a["lr"] == t["lr"] == fusion["lr"] == 1e-4 and a["batch_size"] == 32
    # train.epochs (what --epochs sets) caps every stage.
    capped = make(overrides=["train.epochs=1"])
    assert {capped.stage_train_cfg(s)["epochs"] for s in ("a", "t", "fusion")} == {1}
    assert make(variant="bmm").stage_train_cfg("fusion")["epochs"] == 5
    cfg = method_config(MultiFocusBLSTMMethod)
    cfg["stages"]["t"]["lr_text"] = 1.0
    with pytest.raises(ConfigError, match="lr_text"):
        MultiFocusBLSTMMethod(cfg, ("t", "a"), LABELS)
    cfg = method_config(MultiFocusBLSTMMethod)
    cfg["stages"]["video"] = {}
    with pytest.raises(ConfigError, match="video"):
        MultiFocusBLSTMMethod(cfg, ("t", "a"), LABELS)
