"""One test module over every registered method, each of its config variants, and (for the
default config) each modality subset it declares (timm style): builds, forward shape, no NaNs,
every parameter gets a gradient, a few steps lower the loss, and, after a short real fit, a
prediction does not depend on which other dialogues share its batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakes import LABELS, fake_split
from merbench.config import deep_merge, method_config, variants
from merbench.registry import METHODS, get_method, load_builtins
from merbench.trainer import TorchMethod

load_builtins()


TEST_FIXTURE_MODULES = {"toy", "fakes"}


def _cases():
    out = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        if cls.__module__.split(".")[0] in TEST_FIXTURE_MODULES:
            continue  # toy methods other test modules register (e.g. toy.SpyMethod) are not plugins
        for variant in ["default", *variants(cls.config_dir)]:
            subsets = cls.modality_subsets() if variant == "default" else [max(cls.modality_subsets(), key=len)]
            out += [(name, variant, mods) for mods in subsets]
    return out


CASES = _cases()
IDS = [f"{n}-{v}-{''.join(m)}" for n, v, m in CASES]


def make(name, variant, mods, over=None):
    cls = get_method(name)
    # A method's conformance_overrides swap in what the tests can run offline and fast (a tiny
    # random text encoder instead of a hub model); runs never use them.
    cfg = deep_merge(method_config(cls, variant), deep_merge(getattr(cls, "conformance_overrides", {}), over or {}))
    if cfg.get("encoder", {}).get("freeze_layers", 0) > 1:
        # A variant that freezes the lower blocks of the real encoder (text_transformer cpu: 3 of 6)
        # runs here on the 2-block tiny encoder: freezing one block keeps the frozen path tested.
        cfg = deep_merge(cfg, {"encoder": {"freeze_layers": 1}})
    method = cls(cfg, mods, LABELS, seed=0)
    split = fake_split(dims=dims_of(cls, cfg, mods))
    return cls, method, split


def dims_of(cls, cfg, mods):
    """16 per modality, or the width a feature request pins (a feature pack's ``dim``)."""
    requests = cls.feature_requests(cfg, mods)
    return {m: int(requests[m].options.get("dim", 16)) if m in requests else 16 for m in mods}


def rows_of(method, split):
    return split.dialogues() if method.unit == "dialogue" else list(range(len(split)))


def test_every_variant_is_covered():
    assert {(n, v) for n, v, _ in CASES} >= {("lipsync_graph_erc", "no_graph"), ("miust", "no_cmd"),
                                             ("multifocus_blstm", "bmm"), ("text_transformer", "bert"),
                                             ("cross_modal_attention", "sequence")}


@pytest.mark.parametrize("name,variant,mods", CASES, ids=IDS)
def test_method_conformance(name, variant, mods, tmp_path):
    cls, method, split = make(name, variant, mods)
    assert cls.metadata.title, "every method needs metadata.title"
    if not isinstance(method, TorchMethod):
        dims = dims_of(cls, method.config, mods)
        method.fit(split, fake_split(seed=1, name="valid", dims=dims))
        probs = method.predict(fake_split(seed=2, name="test", labels=False, dims=dims))
        assert probs.shape == (len(fake_split(seed=2, dims=dims)), len(LABELS))
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        _kept_model_predicts_the_same(cls, method, mods, dims, tmp_path)
        return
    torch.manual_seed(0)
    batcher = method.make_batcher(split)
    model = method.build_model(batcher.input_dims(split), len(LABELS))
    batch = batcher.collate(split, rows_of(method, split))
    model.train()
    out = method.forward(model, batch)
    logits = method.logits(out)
    expected = (len(split.dialogues()), max(len(d) for d in split.dialogues()), len(LABELS)) \
        if method.unit == "dialogue" else (len(split), len(LABELS))
    assert tuple(logits.shape) == expected
    assert torch.isfinite(logits).all()
    loss = method.loss(out, batch)
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"parameters without a gradient: {missing}"

    # A few steps on the tiny batch lower the loss (measured in eval mode, so dropout does not blur it).
    model.eval()
    with torch.no_grad():
        before = float(method.loss(method.forward(model, batch), batch))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(30):
        opt.zero_grad()
        method.loss(method.forward(model, batch), batch).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = float(method.loss(method.forward(model, batch), batch))
    assert after < before, f"loss did not go down: {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name,variant,mods", CASES, ids=IDS)
def test_prediction_independent_of_batch_composition(name, variant, mods, tmp_path):
    """On a model after a short real fit (trained weights, BatchNorm statistics, an EMA), not only
    on a freshly initialised one."""
    cls, method, split = make(name, variant, mods, over={"train": {"epochs": 2, "batch_size": 4, "lr": 1e-3}})
    if not isinstance(method, TorchMethod):
        pytest.skip("not a neural method: predictions are per utterance by construction")
    fresh = method.build_model(method.make_batcher(split).input_dims(split), len(LABELS)).state_dict()
    report = method.fit(split, fake_split(seed=1, name="valid", dims=dims_of(cls, method.config, mods)))
    assert report.epochs_run >= 1
    trained = method.model.state_dict()
    assert any(not torch.equal(fresh[k], trained[k]) for k in fresh if fresh[k].is_floating_point()), "fit changed nothing"
    method.model.eval()
    dialogues = split.dialogues()
    target = dialogues[0]

    def probs_for(other):
        units = [target, other] if method.unit == "dialogue" else target + other
        with torch.no_grad():
            logits = method.logits(method.forward(method.model, method.batcher.collate(split, units)))
        return (logits[0, :len(target)] if method.unit == "dialogue" else logits[:len(target)]).numpy()

    a, b = probs_for(dialogues[1]), probs_for(dialogues[2])
    np.testing.assert_allclose(a, b, atol=1e-5, err_msg="predictions changed with the other dialogues in the batch")
    _kept_model_predicts_the_same(cls, method, mods, dims_of(cls, method.config, mods), tmp_path)


def _kept_model_predicts_the_same(cls, method, mods, dims, folder):
    """The model a run keeps (safetensors + model.yaml) rebuilt in a fresh method predicts as the fitted one."""
    from merbench.model_store import read_info, read_weights, save_fold_model

    assert save_fold_model(method, folder / "model", {"method": cls.name}), f"{cls.name} cannot keep its model"
    fresh = cls(method.config, mods, LABELS, seed=0)
    fresh.load_model_state(read_weights(folder / "model", read_info(folder / "model")),
                           read_info(folder / "model")["state"])
    test = fake_split(seed=2, name="test", labels=False, dims=dims)
    np.testing.assert_allclose(fresh.predict(test), method.predict(test), atol=1e-6,
                               err_msg="the kept model predicts otherwise than the fitted one")


@pytest.mark.parametrize("name", METHODS.names())
def test_metadata_is_complete(name):
    cls = get_method(name)
    assert cls.modalities and set(cls.modalities) <= {"t", "a", "v"}
    assert cls.unit in ("utterance", "dialogue")
    cfg = method_config(cls)
    for subset in cls.modality_subsets():
        assert set(subset) <= set(cls.modalities)
        cls.feature_requests(cfg, subset)  # every declared subset has its extractors configured
    for r in cls.metadata.reported:
        assert 0 < r.value <= 100 and r.metric in ("accuracy", "ua", "weighted_f1", "macro_f1") and r.source
    # A budget variant must exist, and stand in for the default or another existing variant.
    known = set(variants(cls.config_dir)) | {"default"}
    for budget, paper_variant in cls.metadata.budget_variants + cls.metadata.paper_variants:
        assert budget in known and paper_variant in known and budget != paper_variant, (budget, paper_variant)
