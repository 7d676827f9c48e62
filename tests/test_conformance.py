"""One test module over every registered method and each modality subset it declares
(timm style): builds from its default config, forward shape, no NaNs, every parameter
gets a gradient, a few steps lower the loss, and a prediction does not depend on which
other dialogues share its batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakes import LABELS, fake_split
from merbench.config import method_config, variants
from merbench.registry import METHODS, get_method, load_builtins
from merbench.trainer import TorchMethod

load_builtins()
CASES = [(name, mods) for name in METHODS.names() for mods in METHODS.get(name).modality_subsets()]


def make(name, mods, dims):
    cls = get_method(name)
    cfg = method_config(cls)
    method = cls(cfg, mods, LABELS, seed=0)
    split = fake_split(dims={m: dims for m in mods})
    return cls, method, split


def rows_of(method, split):
    return split.dialogues() if method.unit == "dialogue" else list(range(len(split)))


@pytest.mark.parametrize("name,mods", CASES, ids=[f"{n}-{''.join(m)}" for n, m in CASES])
def test_method_conformance(name, mods):
    cls, method, split = make(name, mods, dims=16)
    assert cls.metadata.title, "every method needs metadata.title"
    if not isinstance(method, TorchMethod):
        dims = {m: 16 for m in mods}
        method.fit(split, fake_split(seed=1, name="valid", dims=dims))
        probs = method.predict(fake_split(seed=2, name="test", labels=False, dims=dims))
        assert probs.shape[1] == len(LABELS) and np.isfinite(probs).all()
        return
    torch.manual_seed(0)
    method._fit_normaliser(split)
    model = method.build_model(method.input_dims(split), len(LABELS))
    method.model = model
    batch = method.collate(split, rows_of(method, split))
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


@pytest.mark.parametrize("name,mods", CASES, ids=[f"{n}-{''.join(m)}" for n, m in CASES])
def test_prediction_independent_of_batch_composition(name, mods):
    cls, method, split = make(name, mods, dims=16)
    if not isinstance(method, TorchMethod):
        pytest.skip("not a neural method: predictions are per utterance by construction")
    torch.manual_seed(0)
    method._fit_normaliser(split)
    method.model = method.build_model(method.input_dims(split), len(LABELS))
    method.model.eval()
    dialogues = split.dialogues()
    target = dialogues[0]

    def probs_for(other):
        units = [target, other] if method.unit == "dialogue" else target + other
        with torch.no_grad():
            logits = method.logits(method.forward(method.model, method.collate(split, units)))
        return (logits[0, :len(target)] if method.unit == "dialogue" else logits[:len(target)]).numpy()

    a, b = probs_for(dialogues[1]), probs_for(dialogues[2])
    np.testing.assert_allclose(a, b, atol=1e-5, err_msg="predictions changed with the other dialogues in the batch")


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
