"""The trainer's hooks, on the guide's example method (tests/guide_method.py): gradient
accumulation applies the mean gradient of k batches (the rest of an epoch included), the
per-update hook runs once per update, the validation-end hook gets this epoch's metrics and can
drive a plateau schedule or the selection, stateful hook objects survive a resume, the training
units per epoch come from the hook, and fit reports every epoch through on_epoch."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from fakes import LABELS, fake_split
from guide_method import GuideMethod
from merbench.errors import ConfigError
from merbench.trainer import Trainer

DIMS = {"t": 6, "a": 5}
FEATURES = {"t": "text-minilm", "a": "audio-egemaps"}


def make(train=None, workdir=None, cls=GuideMethod, seed=0):
    cfg = {"features": FEATURES, "model": {"hidden": 8},
           "train": {"epochs": 3, "batch_size": 4, "lr": 0.05, "optimizer": "sgd", "patience": 10,
                     "accumulation_steps": 3, **(train or {})}}
    return cls(cfg, tuple(DIMS), LABELS, seed=seed, workdir=workdir)


def splits():
    return fake_split(n_dialogues=6, dims=DIMS), fake_split(seed=1, name="valid", dims=DIMS)


def test_accumulation_applies_the_mean_gradient_of_each_group_of_batches():
    train, valid = splits()
    groups, current, seen = [], [], []

    class Spy(GuideMethod):
        def forward(self, model, batch):
            if model.training:
                current.append(batch)
            return super().forward(model, batch)

        def on_fit_start(self, trainer):
            super().on_fit_start(trainer)

            def before_step(opt, args, kwargs):  # weights and gradient the update is about to apply
                net = trainer.model.net
                seen.append(({k: v.detach().clone() for k, v in net.state_dict().items()},
                             [p.grad.detach().clone() for p in net.parameters()]))
                groups.append(list(current))
                current.clear()

            trainer.optimizer.register_step_pre_hook(before_step)

    m = make({"epochs": 1}, cls=Spy)
    m.fit(train, valid)
    batches = math.ceil(len(train) / 4)
    assert [len(g) for g in groups] == [3] * (batches // 3) + ([batches % 3] if batches % 3 else [])
    assert batches % 3, "the fake split should leave a partial group at the end of the epoch"
    for (weights, grads), group in zip(seen, groups):
        net = copy.deepcopy(m.model.net)
        net.load_state_dict(weights)
        loss = sum(m.loss(net(torch.cat([b["x"][k] for k in sorted(b["x"])], -1)), b) for b in group) / len(group)
        expected = torch.autograd.grad(loss, list(net.parameters()))
        for g, e in zip(grads, expected):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def test_per_update_hook_runs_once_per_update_and_the_ema_answers_in_eval_mode():
    train, valid = splits()
    m = make()
    report = m.fit(train, valid)
    per_epoch = math.ceil(math.ceil(len(train) / 4) / 3)
    # The selected epoch's weights come with that epoch's EMA state.
    assert int(m.model.ema.n_averaged) == per_epoch * report.best_epoch
    batch = m.batcher.collate(valid, list(range(len(valid))))
    m.model.eval()
    with torch.no_grad():
        x = torch.cat([batch["x"][k] for k in sorted(batch["x"])], -1)
        torch.testing.assert_close(m.forward(m.model, batch), m.model.ema(x))
        assert not torch.allclose(m.model.ema(x), m.model.net(x))  # the average is not the last weights


def test_plateau_schedule_steps_with_this_epochs_validation_loss():
    train, valid = splits()
    fed, lrs = [], []

    class Spy(GuideMethod):
        def on_validation_end(self, trainer, metrics):
            fed.append(metrics["valid_loss"])
            super().on_validation_end(trainer, metrics)
            lrs.append(trainer.optimizer.param_groups[0]["lr"])

    # A vanishing LR keeps the validation loss flat: with patience 0 each epoch after the first halves the LR.
    m = make({"epochs": 4, "lr": 1e-12, "plateau_patience": 0}, cls=Spy)
    report = m.fit(train, valid)
    assert fed == [h["valid_loss"] for h in report.history]
    assert lrs == pytest.approx([1e-12, 5e-13, 2.5e-13, 1.25e-13])


def test_validation_end_hook_can_choose_the_selection_score():
    train, valid = splits()

    class FirstEpoch(GuideMethod):
        def on_validation_end(self, trainer, metrics):
            super().on_validation_end(trainer, metrics)
            return -metrics["epoch"]  # prefer the earliest epoch, whatever the metrics say

    report = make(cls=FirstEpoch).fit(train, valid)
    assert report.best_epoch == 1 and report.best_valid_score == -1 and report.epochs_run == 3


def test_train_units_hook_sets_what_an_epoch_trains_on():
    train, valid = splits()
    counted = []

    class Twice(GuideMethod):
        def train_units(self, split, units):
            return units + units

        def on_update(self, trainer):
            super().on_update(trainer)
            counted.append(trainer.updates)

    m = make({"epochs": 1, "accumulation_steps": 1}, cls=Twice)
    m.fit(train, valid)
    assert len(counted) == math.ceil(2 * len(train) / 4)


def test_resume_restores_the_hook_state_and_gives_the_same_model(tmp_path):
    train, valid = splits()
    whole = make({"epochs": 4}, workdir=tmp_path / "a")
    whole.fit(train, valid)

    class Stop(Exception):
        pass

    def stop_after_two(epoch, total, row):
        if epoch == 2:
            raise Stop

    first = make({"epochs": 4}, workdir=tmp_path / "b")
    with pytest.raises(Stop):
        first.fit(train, valid, on_epoch=stop_after_two)
    rows = []
    again = make({"epochs": 4}, workdir=tmp_path / "b")
    report = again.fit(train, valid, on_epoch=lambda e, t, row: rows.append((e, t)))
    assert rows == [(3, 4), (4, 4)]  # only the epochs left ran, reported through on_epoch
    assert report.epochs_run == 4
    for k, v in whole.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[k], v)  # plateau, EMA and RNG state came back


def test_accumulation_steps_must_be_a_positive_integer():
    train, valid = splits()
    for bad in (0, 1.5):
        with pytest.raises(ConfigError, match="accumulation_steps"):
            Trainer(make({"accumulation_steps": bad}), train, valid)


def test_raw_level_needs_a_raw_capable_modality():
    cfg = {"features": {"t": "raw", "a": "audio-egemaps"}}
    with pytest.raises(ConfigError, match="raw is not supported"):
        GuideMethod.feature_requests(cfg, ("t", "a"))

    class RawText(GuideMethod):
        raw_capable = ("t",)

    assert set(RawText.feature_requests(cfg, ("t", "a"))) == {"a"}  # nothing is extracted for raw text
    m = RawText({**cfg, "encoder": {"name": "tiny-random-bert", "max_length": 8}}, ("t", "a"), LABELS)
    assert m.levels == {"t": "raw", "a": "pooled"}
    split = fake_split(dims={"a": 5})
    batcher = m.make_batcher(split)
    assert batcher.input_dims(split) == {"a": 5}
    batch = batcher.collate(split, [0, 1])
    assert batch["text"]["input_ids"].shape[0] == 2 and "t" not in batch["x"]
    np.testing.assert_array_equal(batch["text"]["attention_mask"].sum(1) > 0, [True, True])
