"""Cross-modal attention framework: the faithful single-key attention is a linear map, focal
loss, class weights and oversampling from the training split only, gradient accumulation, the
validation-driven plateau schedule, the frame-level variant, and the leaky MELD protocol."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fakes import LABELS, fake_split
from merbench.config import deep_merge, method_config
from merbench.corpus import Utterance
from merbench.errors import ConfigError
from merbench.methods.cross_modal_attention.method import (CrossModalAttentionMethod,
                                                           class_weights, oversample_rows)
from merbench.methods.cross_modal_attention.model import focal_loss
from merbench import trainer as trainer_module

TINY = {"encoder": {"name": "tiny-random-bert"}}
MODS = ("t", "a", "v")


def make(variant="default", over=None, mods=MODS, **kw):
    cfg = deep_merge(method_config(CrossModalAttentionMethod, variant), deep_merge(TINY, over or {}))
    return CrossModalAttentionMethod(cfg, mods, LABELS, **kw)


def built(method, split):
    torch.manual_seed(0)
    method.batcher = method.make_batcher(split)
    method.model = method.build_model(method.batcher.input_dims(split), len(LABELS))
    return method.model


# -- the faithful attention -----------------------------------------------------------------------

def test_default_config_is_the_faithful_one():
    cfg = method_config(CrossModalAttentionMethod)
    assert cfg["model"]["attention"] == "utterance" and cfg["model"]["kv_input"] == "pad"
    assert cfg["encoder"] == {"name": "all-MiniLM-L6-v2", "pooling": "pooler", "max_length": 128}
    assert cfg["features"]["t"] == "raw" and cfg["loss"] == {"focal_gamma": 2.0, "class_weights": True}
    t = cfg["train"]
    assert (t["optimizer"], t["lr"], t["weight_decay"], t["batch_size"], t["accumulation_steps"]) == ("adamw", 2e-5, 1e-5, 128, 2)
    assert t["scheduler"] == "plateau" and t["patience"] == 5
    assert method_config(CrossModalAttentionMethod, dataset="iemocap")["train"]["accumulation_steps"] == 4
    assert method_config(CrossModalAttentionMethod, "bert")["encoder"]["name"] == "bert-base-uncased"


def test_single_key_attention_weight_is_exactly_one_and_a_linear_map():
    m = make()
    split = fake_split(dims={k: 16 for k in MODS})
    model = built(m, split).eval()
    batch = m.batcher.collate(split, list(range(len(split))))
    with torch.no_grad():
        out = m.forward(model, batch)
    for mod in ("a", "v"):
        w = out[f"attention_{mod}"]
        assert w.shape == (len(split), 1, 1) and bool((w == 1.0).all())
    # Whatever the query, the block returns out_proj(v_proj(key)): a linear map of the audio vector.
    att = model.attend["a"]
    key = F.pad(torch.randn(5, 1, 256), (0, 256))
    E = att.embed_dim
    w_v, b_v = att.in_proj_weight[2 * E:], att.in_proj_bias[2 * E:]
    expect = F.linear(F.linear(key, w_v, b_v), att.out_proj.weight, att.out_proj.bias)
    for _ in range(3):
        got, _ = att(torch.randn(5, 1, E), key, key)
        torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)


def test_text_is_required():
    with pytest.raises(ConfigError, match="needs text"):
        CrossModalAttentionMethod.feature_requests(method_config(CrossModalAttentionMethod), ("a", "v"))
    assert all("t" in s for s in CrossModalAttentionMethod.modality_subsets())
    reqs = CrossModalAttentionMethod.feature_requests(method_config(CrossModalAttentionMethod), MODS)
    assert set(reqs) == {"a", "v"}  # text is tokenized by the method, not extracted


# -- loss and balancing ---------------------------------------------------------------------------

def test_focal_loss_is_cross_entropy_at_gamma_zero():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(32, 7, generator=g), torch.randint(0, 7, (32,), generator=g)
    torch.testing.assert_close(focal_loss(logits, y, gamma=0.0), F.cross_entropy(logits, y))
    y_ign = y.clone()
    y_ign[:5] = -100
    torch.testing.assert_close(focal_loss(logits, y_ign, gamma=0.0), F.cross_entropy(logits, y_ign, ignore_index=-100))
    ce = F.cross_entropy(logits, y, reduction="none")
    alpha = torch.rand(7, generator=g)
    manual = (alpha[y] * (1 - torch.exp(-ce)) ** 2 * ce).mean()
    torch.testing.assert_close(focal_loss(logits, y, gamma=2.0, alpha=alpha), manual)
    assert focal_loss(logits, y, gamma=2.0) < F.cross_entropy(logits, y)


def test_class_weights_and_oversampling():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    w = class_weights(labels, 4)
    np.testing.assert_allclose(w, np.array([1 / 6, 1 / 3, 1, 0]) / (1 / 6 + 1 / 3 + 1), rtol=1e-6)
    rows = oversample_rows(labels, seed=0)
    assert sorted(set(rows)) == list(range(10)) and rows[:10] == list(range(10))  # every row kept
    assert collections.Counter(labels[rows]) == {0: 6, 1: 6, 2: 6}
    np.testing.assert_allclose(class_weights(labels[rows], 3), [1 / 3] * 3, rtol=1e-6)  # uniform, as the original's
    assert rows == oversample_rows(labels, seed=0) != oversample_rows(labels, seed=1)


def _skewed(n_per_class, seed, name):
    split = fake_split(n_dialogues=1, turns=(sum(n_per_class),) * 2, dims={"a": 8, "v": 8}, seed=seed, name=name)
    split.labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    return split


@pytest.mark.parametrize("oversample", [False, True])
def test_class_weights_come_from_the_training_split_only(oversample):
    train = _skewed([6, 3, 1, 0], seed=0, name="train")  # class 3 absent from training
    valid = _skewed([1, 1, 1, 7], seed=1, name="valid")
    m = make(over={"train": {"epochs": 1, "batch_size": 4, "oversample": oversample}})
    seen_rows = []
    orig = trainer_module.Batcher.batches

    def spy(self, split, *args, units=None, **kw):
        if split is train:
            seen_rows.append(list(units))
        return orig(self, split, *args, units=units, **kw)

    trainer_module.Batcher.batches = spy
    try:
        m.fit(train, valid)
    finally:
        trainer_module.Batcher.batches = orig
    expect = class_weights(train.labels[oversample_rows(train.labels, 0)] if oversample else train.labels, 4)
    np.testing.assert_allclose(m.alpha.numpy(), expect)
    assert m.alpha[3] == 0  # the validation split's labels never enter the weights
    counts = collections.Counter(train.labels[seen_rows[0]])
    assert counts == ({0: 6, 1: 6, 2: 6} if oversample else {0: 6, 1: 3, 2: 1})


# -- accumulation and the plateau schedule --------------------------------------------------------

def test_accumulation_is_the_trainers_and_clips_the_accumulated_gradient():
    m = make(over={"train": {"grad_clip": 1.0}})  # accumulation 2 with clipping: the trainer clips the sum
    assert (m.train_cfg["accumulation_steps"], m.train_cfg["grad_clip"]) == (2, 1.0)
    with pytest.raises(ConfigError, match="accumulation_steps"):
        from merbench.trainer import Trainer

        Trainer(make(over={"train": {"accumulation_steps": 0}}), None, None)


def test_plateau_steps_on_validation_and_reuses_the_pass(monkeypatch):
    # Text only (no BatchNorm statistics drifting) and a vanishing LR: the validation loss stays
    # flat, so with patience 0 every epoch after the first halves the LR.
    train, valid = fake_split(dims={}), fake_split(seed=1, name="valid", dims={})
    m = make(mods=("t",), over={"train": {"epochs": 4, "batch_size": 8, "lr": 1e-12, "patience": 10,
                                          "plateau": {"monitor": "valid_loss", "factor": 0.5, "patience": 0}}})
    calls = collections.Counter()
    orig = trainer_module.evaluate

    def counting(method, model, batcher, split, batch_size):
        calls[split.name] += 1
        return orig(method, model, batcher, split, batch_size)

    monkeypatch.setattr(trainer_module, "evaluate", counting)
    fed, lrs = [], []
    orig_step = torch.optim.lr_scheduler.ReduceLROnPlateau.step

    def spy_step(self, metric):
        fed.append(metric)
        orig_step(self, metric)
        lrs.append(self.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(torch.optim.lr_scheduler.ReduceLROnPlateau, "step", spy_step)
    report = m.fit(train, valid)
    assert calls["valid"] == report.epochs_run == 4  # one validation pass per epoch, shared
    assert fed == pytest.approx([h["valid_loss"] for h in report.history], rel=1e-6)  # this epoch's loss
    assert lrs == pytest.approx([1e-12, 5e-13, 2.5e-13, 1.25e-13])


# -- the frame-level variant ----------------------------------------------------------------------

def test_sequence_variant_masks_padding():
    m = make("sequence")
    assert m.levels == {"t": "raw", "a": "frames", "v": "frames"}
    split = fake_split(dims={"a": 8, "v": 6}, max_frames=12)
    model = built(m, split).eval()
    lengths = [len(f) for f in split.features["a"].frames]
    short, long = int(np.argmin(lengths)), int(np.argmax(lengths))
    assert lengths[short] < lengths[long]
    with torch.no_grad():
        alone = m.forward(model, m.batcher.collate(split, [short]))
        both = m.forward(model, m.batcher.collate(split, [short, long]))
    torch.testing.assert_close(alone["logits"][0], both["logits"][0], atol=1e-5, rtol=1e-5)
    w = both["attention_a"][0]  # (text tokens, frames) for the short utterance
    assert torch.all(w[:, lengths[short]:] == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[0]))


def test_sequence_variant_trains_every_parameter_and_batchnorm_ignores_padding():
    m = make("sequence")
    split = fake_split(dims={"a": 8, "v": 6}, max_frames=12)
    model = built(m, split).train()
    batch = m.batcher.collate(split, list(range(len(split))))
    m.loss(m.forward(model, batch), batch).backward()
    assert all(p.grad is not None for p in model.parameters())
    # Running mean of the audio BatchNorm = mean over real frames only (momentum 0.1 from zeros).
    bn, fc = model.branch["a"].bn, model.branch["a"].fc
    with torch.no_grad():
        h = F.relu(fc(batch["x"]["a"][batch["mask"]["a"]]))
    torch.testing.assert_close(bn.running_mean, 0.1 * h.mean(0), atol=1e-5, rtol=1e-4)


def test_batch_of_one_trains():
    m = make()
    split = fake_split(dims={"a": 8, "v": 8})
    model = built(m, split).train()
    batch = m.batcher.collate(split, [0])
    loss = m.loss(m.forward(model, batch), batch)  # BatchNorm with a single sample must not fail
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all()
                                        for p in model.parameters() if p.requires_grad)


# -- the leaky MELD protocol ----------------------------------------------------------------------

def _meld_like(counts, other_splits=True):
    utts = []
    for label, n in counts.items():
        for i in range(n):
            utts.append(Utterance(uid=f"train/{label}{i}", dialogue_id=f"train/d{label}", turn=i, speaker="A",
                                  text="x", label=label, meta={"split": "train"}))
            if other_splits:
                utts.append(Utterance(uid=f"test/{label}{i}", dialogue_id=f"test/d{label}", turn=i, speaker="A",
                                      text="x", label=label, meta={"split": "test"}))
    return utts


def test_leaky_splitter_reproduces_the_published_procedure():
    from merbench.datasets.meld.adapter import oversampled_leaky_split

    utts = _meld_like({"neutral": 50, "joy": 20, "fear": 5})
    (fold,) = oversampled_leaky_split(test=0.2, valid=0.1, seed=42)(utts)
    assert all(u.startswith("train/") for s in ("train", "valid", "test") for u in fold.ids(s))  # train split only
    label = {u.uid: u.label for u in utts}
    for s, n in (("test", 10), ("valid", 4), ("train", 36)):  # 50 per class after oversampling
        assert collections.Counter(label[u] for u in fold.ids(s)) == {"neutral": n, "joy": n, "fear": n}
    every = collections.Counter(fold.train + fold.valid + fold.test)
    assert {u for u in every if u.startswith("train/fear")} == {f"train/fear{i}" for i in range(5)}
    assert sum(every[f"train/fear{i}"] for i in range(5)) == 50
    assert max(every[f"train/neutral{i}"] for i in range(50)) == 1  # the largest class is not copied
    # The leak: every test copy of a fear utterance has a twin in training.
    train = set(fold.train)
    assert all(u in train for u in fold.test if label[u] == "fear")
    assert [fold] == oversampled_leaky_split(seed=42)(list(reversed(utts)))  # seeded, order-free


def test_leaky_protocol_is_the_only_one_with_repeated_ids():
    from merbench.datasets.meld.adapter import MELDDataset

    names = [p.name for p in MELDDataset.protocols()]
    assert "meld-oversampled-leaky" in names
    p = MELDDataset.protocol("meld-oversampled-leaky")
    assert p.as_published and p.headline_metric == "accuracy"
    assert p.allow_overlap  # the engine accepts its repeated ids only because the protocol says so
    assert not any(q.allow_overlap for q in MELDDataset.protocols() if q.name != p.name)


def test_leaky_split_of_real_meld():
    from conftest import shared_data_or_skip
    from merbench.datasets.meld.adapter import EMOTIONS, MELDDataset, oversampled_leaky_split

    corpus = MELDDataset(shared_data_or_skip() / "meld").load()
    members = [u for u in corpus.utterances if u.label in EMOTIONS]
    (fold,) = oversampled_leaky_split()(members)
    label = {u.uid: u.label for u in members}
    largest = collections.Counter(u.label for u in members if u.meta["split"] == "train").most_common(1)[0][1]
    assert largest == 4710  # neutral; the original's spreadsheet had 4709
    assert collections.Counter(label[u] for u in fold.test) == {e: 942 for e in EMOTIONS}
    assert len(fold.train) + len(fold.valid) + len(fold.test) == 7 * largest
    train = set(fold.train)
    leaked = sum(u in train for u in fold.test) / len(fold.test)
    assert 0.8 < leaked < 0.86  # measured 82.3%: all but neutral (never copied) and a few joy/surprise


# -- the frozen-text variant ----------------------------------------------------------------------

def test_frozen_text_variant_reads_cached_text_features_and_has_no_encoder():
    cfg = method_config(CrossModalAttentionMethod, "frozen_text")
    assert set(CrossModalAttentionMethod.feature_requests(cfg, MODS)) == {"t", "a", "v"}
    m = make("frozen_text")
    split = fake_split(dims={"t": 12, "a": 8, "v": 8})
    model = built(m, split).train()
    assert model.text is None and model.text_fc[0].in_features == 12
    batch = m.batcher.collate(split, list(range(6)))
    assert "text" not in batch  # nothing tokenized
    loss = m.loss(m.forward(model, batch), batch)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # The text features reach the prediction: changing them changes the logits.
    model.eval()
    before = m.forward(model, batch)["logits"]
    batch["x"]["t"] = batch["x"]["t"] + 1.0
    assert not torch.allclose(before, m.forward(model, batch)["logits"])


def test_frozen_text_sequence_form_uses_token_features():
    m = make("frozen_text", {"features": {"t": {"extractor": "text-minilm", "level": "frames"},
                                          "a": {"extractor": "audio-egemaps", "level": "frames"}},
                             "model": {"attention": "sequence"}}, mods=("t", "a"))
    split = fake_split(dims={"t": 12, "a": 8})
    model = built(m, split).train()
    batch = m.batcher.collate(split, list(range(5)))
    assert batch["x"]["t"].dim() == 3
    m.loss(m.forward(model, batch), batch).backward()
    # Pooled text features cannot drive token queries: a clear error, not a shape crash.
    m2 = make("frozen_text", {"model": {"attention": "sequence"}}, mods=("t",))
    model2, b2 = built(m2, split), m2.batcher.collate(split, [0, 1])
    with pytest.raises(ValueError, match="token states"):
        m2.forward(model2, b2)
