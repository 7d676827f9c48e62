"""MIUST: parameter count against the original, CMD, masking, variants and a short fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakes import LABELS, fake_split
from merbench.config import method_config
from merbench.methods.miust.method import MIUSTMethod
from merbench.methods.miust.model import AttentionPool, cmd, miust_loss

IEMOCAP4 = ("ang", "hap", "neu", "sad")
MELD7 = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")

# Trainable parameters of the original model (HANLM15/MIUST, IEMOCAP_exp/model.py and MELD_exp/model.py)
# with 768-d BERT and 768-d emotion2vec inputs. Derived layer by layer from the original definitions
# (and confirmed by building them in a scratch folder outside the repository):
#   4 x LSTM(768, 128, 2 layers, bidirectional)
#       layer 1, per direction: 4*128*(768+128) + 2*4*128 = 459,776; x2 directions = 919,552
#       layer 2, per direction: 4*128*(256+128) + 2*4*128 = 197,632; x2 directions = 395,264
#       one LSTM = 1,314,816; four LSTMs = 5,259,264
#   6 x Att (w_omega 256x4 + u_omega 4) = 6 x 1,028 = 6,168
#   2 x MultiheadAttention(256, 2 heads): in_proj 3*256*256 + 3*256 = 197,376, out_proj 256*256 + 256
#       = 65,792; one = 263,168; two = 526,336
#   IEMOCAP (4 classes): st Linear(1536, 64) = 98,368; c_fc Linear(64, 4) = 260; ss, tt Linear(256, 4)
#       = 2 x 1,028 -> total 5,259,264 + 6,168 + 526,336 + 98,368 + 260 + 2,056 = 5,892,452
#   MELD (7 classes): st Linear(1536, 128) = 196,736; c_fc Linear(128, 7) = 903; ss, tt Linear(256, 7)
#       = 2 x 1,799 -> total 5,259,264 + 6,168 + 526,336 + 196,736 + 903 + 3,598 = 5,993,005
ORIGINAL_PARAMS_IEMOCAP4 = 5_892_452
ORIGINAL_PARAMS_MELD = 5_993_005


def make(mods=("t", "a"), labels=LABELS, dataset=None, variant="default", overrides=()):
    cfg = method_config(MIUSTMethod, variant, dataset=dataset, overrides=overrides)
    return MIUSTMethod(cfg, mods, labels, seed=0)


@pytest.mark.parametrize("dataset,labels,expected", [("iemocap", IEMOCAP4, ORIGINAL_PARAMS_IEMOCAP4),
                                                     ("meld", MELD7, ORIGINAL_PARAMS_MELD)])
def test_parameter_count_equals_original(dataset, labels, expected):
    method = make(labels=labels, dataset=dataset)
    assert method.num_parameters({"t": 768, "a": 768}) == expected


def test_per_dataset_training_settings():
    iem, meld = make(dataset="iemocap"), make(dataset="meld")
    assert (iem.train_cfg["epochs"], iem.train_cfg["batch_size"]) == (70, 128)
    assert (meld.train_cfg["epochs"], meld.train_cfg["batch_size"]) == (40, 256)
    assert iem.config["model"]["fusion_hidden"] == 64 and meld.config["model"]["fusion_hidden"] == 128
    assert iem.train_cfg["optimizer"] == "rmsprop" and iem.train_cfg["lr"] == 5e-4
    opt = iem.configure_optimizer(torch.nn.Linear(2, 2))
    assert isinstance(opt, torch.optim.RMSprop)
    assert isinstance(iem.configure_scheduler(opt, 70, 1), torch.optim.lr_scheduler.CosineAnnealingLR)


def test_cmd_zero_for_identical_distributions_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    for squared in (True, False):
        assert float(cmd(x, x.clone(), squared=squared)) == pytest.approx(0.0, abs=1e-5)
        # Same empirical distribution in another order: still zero.
        assert float(cmd(x, x[torch.randperm(64, generator=g)], squared=squared)) == pytest.approx(0.0, abs=1e-5)
        assert float(cmd(x, 2.0 * x, squared=squared)) > 0.1
        assert float(cmd(x, x + 0.5, squared=squared)) > 0.1
    # Without the first-moment term (the published code) a pure shift of the mean is invisible.
    assert float(cmd(x, x + 0.5, first_moment=False)) == pytest.approx(0.0, abs=1e-5)


def test_cmd_gradient_is_finite_at_zero():
    x = torch.randn(16, 4, requires_grad=True)
    for squared in (True, False):
        x.grad = None
        cmd(x, x.detach().clone(), squared=squared).backward()
        assert torch.isfinite(x.grad).all()


def test_attention_pool_ignores_padded_steps():
    pool = AttentionPool(6, 4, init=0.3)
    h = torch.randn(3, 7, 6)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for i, n in enumerate((7, 4, 1)):
        mask[i, :n] = True
    other = h.clone()
    other[~mask] = 1e3 * torch.randn(int((~mask).sum()), 6)
    torch.testing.assert_close(pool(h, mask), pool(other, mask))
    # And it equals pooling the unpadded sequence alone.
    torch.testing.assert_close(pool(h, mask)[1:2], pool(h[1:2, :4], mask[1:2, :4]))


@pytest.mark.parametrize("mods", [("t", "a"), ("t",), ("a",)])
def test_model_output_ignores_padding_values(mods):
    method = make(mods)
    split = fake_split(dims={m: 10 for m in mods})
    method.batcher = method.make_batcher(split)
    model = method.build_model(method.input_dims(split), len(LABELS)).eval()
    batch = method.batcher.collate(split, list(range(len(split))))
    noisy = {**batch, "x": {m: x.clone() for m, x in batch["x"].items()}}
    for m in mods:
        pad = ~batch["mask"][m]
        noisy["x"][m][pad] = 100.0 * torch.randn(int(pad.sum()), noisy["x"][m].shape[-1])
    with torch.no_grad():
        logits = model(batch)["logits"]
        torch.testing.assert_close(logits, model(noisy)["logits"])
        # Each row as if it were alone (no padding at all): the original's evaluation setting.
        for i in (0, 5, len(split) - 1):
            alone = model(method.batcher.collate(split, [i]))["logits"]
            torch.testing.assert_close(logits[i:i + 1], alone, atol=1e-5, rtol=1e-4)


def test_single_modality_is_that_branch_with_its_auxiliary_head():
    model = make(("t",)).build_model({"t": 768}, 4)
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {"lstm_t", "pool_t", "head_t"}
    # The same branch inside the full model has the same size.
    full = make().build_model({"t": 768, "a": 768}, 4)
    branch = sum(p.numel() for n, p in full.named_parameters() if n.split(".")[0] in ("lstm_t", "pool_t", "head_t"))
    assert sum(p.numel() for p in model.parameters()) == branch


def test_ablation_variants():
    full = make().num_parameters({"t": 768, "a": 768})
    no_ca = make(variant="no_cross_attention")
    # Two MultiheadAttention(256) (263,168 each), two attention pools (1,028 each) and 512*64 fusion weights go.
    assert no_ca.num_parameters({"t": 768, "a": 768}) == full - 2 * 263_168 - 2 * 1_028 - 512 * 64
    no_cmd = make(variant="no_cmd")
    assert no_cmd.loss_cfg["cmd"] == 0.0
    split = fake_split(dims={"t": 8, "a": 8})
    no_cmd.batcher = no_cmd.make_batcher(split)
    model = no_cmd.build_model(no_cmd.input_dims(split), len(LABELS))
    batch = no_cmd.batcher.collate(split, list(range(len(split))))
    out = model(batch)
    y = batch["labels"]
    ce = torch.nn.functional.cross_entropy
    expected = 0.1 * ce(out["logits"], y) + 0.15 * ce(out["logits_t"], y) + 0.15 * ce(out["logits_a"], y)
    torch.testing.assert_close(no_cmd.loss(out, batch), expected)
    # The default loss adds the two weighted CMD terms.
    with_cmd = miust_loss(out, y, {"main": 0.1, "cmd": 0.3, "text": 0.15, "audio": 0.15})
    extra = 0.3 * (cmd(out["z_t"], out["z_a2"]) + cmd(out["z_a"], out["z_t2"]))
    torch.testing.assert_close(with_cmd, expected + extra)
    assert make(variant="original_cmd").loss_cfg["cmd_first_moment"] is False


def test_unknown_loss_key_is_rejected():
    from merbench.errors import ConfigError

    cfg = method_config(MIUSTMethod)
    cfg["loss"]["cmd_weight"] = 1.0
    with pytest.raises(ConfigError, match="cmd_weight"):
        MIUSTMethod(cfg, ("t", "a"), LABELS)


def test_short_fit_and_predict():
    method = make(overrides=["train.epochs=2", "train.batch_size=8", "model.hidden=16"])
    train = fake_split(dims={"t": 8, "a": 8})
    report = method.fit(train, fake_split(seed=1, name="valid", dims={"t": 8, "a": 8}))
    assert report.epochs_run == 2 and report.best_epoch in (1, 2)
    probs = method.predict(fake_split(seed=2, name="test", labels=False, dims={"t": 8, "a": 8}))
    assert probs.shape[1] == len(LABELS) and np.allclose(probs.sum(1), 1, atol=1e-5)
