"""Training speed-ups that must not change results: grouped (foreach) optimizer and clipping
kernels give bitwise the same weights as torch's per-tensor loop, evaluation batches sorted by
length give the same probabilities as padding every utterance to the longest of the split, raw
text is tokenized once per split, and the LipSync EMA's grouped update is the per-tensor one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from fakes import LABELS, fake_split
from merbench.config import method_config
from merbench.errors import ConfigError
from merbench.registry import get_method, load_builtins
from merbench.trainer import Trainer, evaluate, optimizer_impl, to_device

load_builtins()


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 16), nn.Tanh(), nn.Linear(16, 3))


def _train(opt_cls, kwargs, clip: float | None, foreach_clip: bool | None, steps=5):
    net = _net()
    opt = opt_cls(net.parameters(), **kwargs)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(8, 7, generator=g), torch.randint(0, 3, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        if clip:
            nn.utils.clip_grad_norm_(list(net.parameters()), clip, foreach=foreach_clip)
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("opt_cls,kwargs", [
    (torch.optim.Adam, {"lr": 1e-2, "weight_decay": 1e-3}),
    (torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 1e-2}),
    (torch.optim.RMSprop, {"lr": 1e-3}),
    (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
])
def test_foreach_optimizer_and_clipping_give_the_same_weights_as_the_loop(opt_cls, kwargs):
    loop = _train(opt_cls, {**kwargs, "foreach": False}, clip=0.05, foreach_clip=False)
    grouped = _train(opt_cls, {**kwargs, **optimizer_impl("m", {"optimizer_impl": "foreach"})}, clip=0.05,
                     foreach_clip=True)
    assert all(torch.equal(a, b) for a, b in zip(loop, grouped))
    # and the comparison can fail: another clip norm moves the weights
    assert not all(torch.equal(a, b) for a, b in zip(loop, _train(opt_cls, {**kwargs, "foreach": False}, 0.5, False)))


def test_optimizer_impl_reads_the_train_setting():
    assert optimizer_impl("m", {}) == {"foreach": True}
    assert optimizer_impl("m", {"optimizer_impl": "fused"}) == {"fused": True}
    assert optimizer_impl("m", {"optimizer_impl": "fused"}, fused_ok=False) == {"foreach": True}
    assert optimizer_impl("m", {"optimizer_impl": "loop"}) == {"foreach": False}
    with pytest.raises(ConfigError, match="optimizer_impl"):
        optimizer_impl("m", {"optimizer_impl": "fast"})


def _miust(train):
    cls = get_method("miust")
    cfg = method_config(cls, overrides=["model.hidden=8", "model.layers=1", "train.eval_batch_size=4"])
    m = cls(cfg, ("t", "a"), LABELS, seed=0)
    m.batcher = m.make_batcher(train)
    m.model = m.build_model(m.batcher.input_dims(train), m.num_classes)
    return m


def test_length_sorted_evaluation_gives_the_logits_of_padding_to_the_longest_of_the_split():
    train = fake_split(n_dialogues=5, dims={"t": 6, "a": 5}, max_frames=30)
    valid = fake_split(n_dialogues=4, dims={"t": 6, "a": 5}, seed=3, name="valid", max_frames=30)
    m = _miust(train)
    m.model.eval()
    with torch.no_grad():
        every = to_device(m.batcher.collate(valid, list(range(len(valid)))), m.device)  # one batch: global padding
        expected = torch.softmax(m.logits(m.forward(m.model, every)).float(), -1).numpy()
    probs, _ = evaluate(m, m.model, m.batcher, valid, 4)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    # The sorted batches pad less than batches in split order.
    padded = lambda by_length: sum(b["mask"]["a"].numel() for b in m.batcher.batches(valid, 4, False, by_length=by_length))
    assert padded(True) < padded(False)
    keys = [m.batcher.length(valid, i) for i in range(len(valid))]
    first = next(m.batcher.batches(valid, 4, False, by_length=True))["index"].tolist()
    assert sorted(keys[i] for i in first) == sorted(keys)[:4]  # the shortest first


def test_pooled_only_batches_keep_the_split_order():
    cls = get_method("mlp")
    train = fake_split(dims={"t": 6})
    m = cls(method_config(cls, overrides=["model.hidden=[8]"]), ("t",), LABELS, seed=0)
    m.batcher = m.make_batcher(train)
    order = [int(i) for b in m.batcher.batches(train, 3, False, by_length=True) for i in b["index"]]
    assert order == list(range(len(train)))


def test_raw_text_is_tokenized_once_per_split_and_row(monkeypatch):
    from merbench.text_encoder import RawText

    split = fake_split(dims={"t": 4})
    raw = RawText({"encoder": {"name": "tiny-random-bert", "max_length": 16}}, "m")
    calls = []
    real = raw.tokenizer

    class Counting:
        pad_token_id = real.pad_token_id

        def __call__(self, *a, **k):
            calls.append(a)
            return real(*a, **k)

        def tokenize(self, text):
            return real.tokenize(text)

    monkeypatch.setattr(RawText, "tokenizer", property(lambda self: Counting()))
    first = raw.tokenize(split, [0, 1, 2])
    again = raw.tokenize(split, [2, 1, 0])
    assert len(calls) == 3
    assert torch.equal(first["input_ids"].flip(0), again["input_ids"])
    assert torch.equal(first["input_ids"][0, :int(first["attention_mask"][0].sum())],
                       torch.tensor(real(split.utterances[0].text.strip(), truncation=True, max_length=16)["input_ids"]))
    # Other settings (a longer context) tokenize afresh.
    RawText({"encoder": {"name": "tiny-random-bert", "max_length": 16}, "context": {"turns": 2}}, "m").tokenize(split, [0])
    assert len(calls) == 4


def test_lipsync_ema_grouped_update_is_the_per_tensor_update():
    from merbench.methods.lipsync_graph_erc.model import EMAModel

    ema = EMAModel(_net(), decay=0.9)
    with torch.no_grad():
        for p in ema.net.parameters():
            p.add_(torch.randn_like(p))
    shadow = copy.deepcopy(ema.shadow)
    n = int(ema.updates)
    d = min(0.9, (1.0 + n) / (10.0 + n))
    with torch.no_grad():
        for s, p in zip(shadow.parameters(), ema.net.parameters()):
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)
    ema.update()
    assert all(torch.equal(a, b) for a, b in zip(shadow.parameters(), ema.shadow.parameters()))
    assert not torch.equal(next(ema.shadow.parameters()), next(ema.net.parameters()))


def test_trainer_builds_foreach_optimizers_by_default():
    cls = get_method("mlp")
    train, valid = fake_split(dims={"t": 6}), fake_split(dims={"t": 6}, seed=1, name="valid")
    m = cls(method_config(cls, overrides=["model.hidden=[8]", "train.epochs=1"]), ("t",), LABELS, seed=0)
    tr = Trainer(m, train, valid, workdir=None)
    tr.run()
    assert tr.optimizer.defaults["foreach"] is True


def test_freeze_layers_stops_gradients_below_the_first_trained_block():
    from merbench.text_encoder import encoder_from_config

    enc = encoder_from_config({"name": "tiny-random-bert", "freeze_layers": 1})
    text = {"input_ids": torch.randint(1000, 2000, (3, 5)), "attention_mask": torch.ones(3, 5, dtype=torch.long)}
    pooled, _ = enc(text)
    pooled.sum().backward()
    frozen = [n for n, p in enc.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("model.embeddings.", "model.encoder.layer.0.")) for n in frozen)
    assert any(n.startswith("model.embeddings.") for n in frozen)
    assert all(p.grad is None for p in enc.parameters() if not p.requires_grad)
    assert all(p.grad is not None for n, p in enc.named_parameters() if p.requires_grad)
    with pytest.raises(ConfigError, match="freeze_layers 3"):
        encoder_from_config({"name": "tiny-random-bert", "freeze_layers": 3})


def test_text_transformer_cpu_variant_freezes_half_the_encoder_and_fuses_adamw():
    cls = get_method("text_transformer")
    cfg = method_config(cls, "cpu")
    assert cfg["encoder"]["freeze_layers"] == 3 and cfg["train"]["optimizer_impl"] == "fused"
    assert cfg["train"]["epochs"] == method_config(cls)["train"]["epochs"]  # the schedule is the default's
    tiny = method_config(cls, "cpu", overrides=["encoder.name=tiny-random-bert", "encoder.freeze_layers=1"])
    m = cls(tiny, ("t",), LABELS, seed=0)
    model = m.build_model({}, m.num_classes)
    opt = m.configure_optimizer(model)
    assert opt.defaults["fused"] is True
    trained = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert trained == m.num_parameters({}) < sum(p.numel() for p in model.parameters())


def test_resident_pooled_features_on_the_cpu_give_the_per_row_batches():
    cls = get_method("mlp")
    train = fake_split(dims={"t": 6, "a": 5})
    train.features["a"].valid[2] = False  # an unreadable file: zeros after standardising, both ways
    batches = {}
    for flag in (False, "auto"):
        m = cls(method_config(cls, overrides=["model.hidden=[8]", f"train.resident_features={str(flag).lower()}"]),
                ("t", "a"), LABELS, seed=0)
        b = m.make_batcher(train)
        assert (b._resident(train, "t") is not None) == (flag == "auto")
        batches[flag] = list(b.batches(train, 4, shuffle=True, epoch=1))
    for off, on in zip(batches[False], batches["auto"]):
        assert torch.equal(off["index"], on["index"])
        for k in ("t", "a"):
            assert torch.equal(off["x"][k], on["x"][k])
    assert not batches[False][0]["x"]["a"].eq(0).all()


def test_sweep_estimate_sums_the_median_wall_time_of_each_runs_committed_seeds(tmp_path):
    import json

    from merbench.perf import sweep_estimate
    from merbench.sweep import expand_suite

    suite = {"_source": str(tmp_path / "s.yaml"), "runs": {
        "floor": {"methods": ["majority"], "protocols": ["synthetic-4"], "modalities": ["t"], "seeds": 2},
        "miust-cpu": {"methods": ["miust"], "variants": ["cpu"], "protocols": ["synthetic-4"],
                      "modalities": ["t"], "seeds": [0]}}}
    results = tmp_path / "res"
    (tmp_path / "s.yaml").write_text(json.dumps(suite))
    for job, wall in zip(expand_suite(suite, results).jobs, (10.0, 30.0)):
        assert job.request.method == "majority"
        job.result_path.parent.mkdir(parents=True, exist_ok=True)
        r = job.request
        job.result_path.write_text(json.dumps({"method": r.method, "variant": r.variant, "dataset": r.dataset,
                                               "protocol": r.protocol, "modalities": "t",
                                               "provenance": {"wall_time_s": wall}}))
    # miust's default on the same protocol, another seed and config: what the variant borrows
    other = results / "synthetic" / "synthetic-4" / "miust" / "default-t-seed5-0123abcd.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"method": "miust", "variant": "default", "dataset": "synthetic",
                                 "protocol": "synthetic-4", "modalities": "t", "provenance": {"wall_time_s": 8.0}}))
    plain = sweep_estimate.estimate(str(tmp_path / "s.yaml"), results, {}, {})
    assert plain["runs"] == 3 and plain["unknown"] == 1 and plain["total_s"] == pytest.approx(40.0)  # 2 x median(10, 30)
    fast = sweep_estimate.estimate(str(tmp_path / "s.yaml"), results, {"majority": 2.0},
                                   {"miust:cpu": 4.0})
    assert fast["unknown"] == 0 and fast["total_s"] == pytest.approx(20.0 + 2.0)
    assert fast["by_entry"]["miust-cpu"]["seconds"] == pytest.approx(2.0)
    # two workers: the two majority runs side by side (10 s each: median 20 / speed-up 2), then miust
    assert fast["workers"] == 1 and fast["wall_s"] == pytest.approx(22.0)
    two = sweep_estimate.estimate(str(tmp_path / "s.yaml"), results, {"majority": 2.0}, {"miust:cpu": 4.0}, workers=2)
    assert two["workers"] == 2 and two["wall_s"] == pytest.approx(12.0) and two["total_s"] == pytest.approx(22.0)
    assert sweep_estimate.makespan([5, 1, 1, 1, 1, 1], 2) == 5 and sweep_estimate.makespan([3, 3], 1) == 6
