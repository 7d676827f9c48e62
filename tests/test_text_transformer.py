"""Text transformer baseline and the raw-text hook it shares with cross_modal_attention:
raw text instead of a cached feature, tokenization and padding, the context variant (earlier
turns of the split only, never labels), encoders and a short fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakes import LABELS, fake_split
from merbench.config import deep_merge, method_config
from merbench.corpus import Utterance
from merbench.errors import ConfigError
from merbench.interfaces import SplitData
from merbench.methods.text_transformer.method import TextTransformerMethod
from merbench.text_encoder import TextEncoder, load_tokenizer

TINY = {"encoder": {"name": "tiny-random-bert"}}


def make(variant="default", over=TINY, **kw):
    cfg = deep_merge(method_config(TextTransformerMethod, variant), over or {})
    return TextTransformerMethod(cfg, ("t",), LABELS, **kw)


def text_split(texts, dialogue="d0", speakers=None, labels=True, name="train", first_turn=0, label_names=LABELS):
    """One dialogue; labels are drawn so that their names could be spotted if they leaked."""
    speakers = speakers or ["Ross", "Rachel"]
    utts, ys = [], []
    for i, t in enumerate(texts):
        y = i % len(label_names)
        ys.append(y)
        utts.append(Utterance(uid=f"{dialogue}_u{first_turn + i}", dialogue_id=dialogue, turn=first_turn + i,
                              speaker=speakers[i % len(speakers)], text=t, label=label_names[y] if labels else None))
    return SplitData(name, utts, {}, tuple(label_names), np.array(ys) if labels else None)


def test_text_is_read_raw_not_from_a_feature_table():
    cfg = method_config(TextTransformerMethod)
    assert cfg["features"] == {"t": "raw"} and cfg["encoder"]["name"] == "all-MiniLM-L6-v2"
    assert TextTransformerMethod.feature_requests(cfg, ("t",)) == {}  # nothing for the engine to extract
    m = make()
    split = text_split(["hello there", "a much longer sentence than the first one"])  # no feature tables at all
    m.batcher = m.make_batcher(split)
    assert m.input_dims(split) == {}
    batch = m.make_batcher(split).collate(split, [0, 1])
    ids, mask = batch["text"]["input_ids"], batch["text"]["attention_mask"]
    tok = load_tokenizer("tiny-random-bert")
    for i, t in enumerate(["hello there", "a much longer sentence than the first one"]):
        expect = tok(t)["input_ids"]
        assert ids[i, :len(expect)].tolist() == expect and mask[i].sum() == len(expect)
        assert (ids[i, len(expect):] == tok.pad_token_id).all()
    assert batch["x"] == {} and batch["labels"].tolist() == [0, 1]


def test_raw_is_only_for_text_and_keys_are_checked():
    with pytest.raises(ConfigError, match="encoder keys"):
        make(over={**TINY, "encoder": {"name": "tiny-random-bert", "nmae": "x"}})
    with pytest.raises(ConfigError, match="pooling"):
        TextEncoder("tiny-random-bert", pooling="max")


def test_max_length_truncates():
    m = make(over={"encoder": {"name": "tiny-random-bert", "max_length": 8}})
    split = text_split(["word " * 50])
    assert m.make_batcher(split).collate(split, [0])["text"]["input_ids"].shape == (1, 8)


def test_padding_does_not_change_a_prediction():
    torch.manual_seed(0)
    m = make()
    split = text_split(["short", "this text is a good deal longer than the short one next to it"])
    m.model = m.build_model(m.input_dims(split), len(LABELS)).eval()
    with torch.no_grad():
        alone = m.forward(m.model, m.make_batcher(split).collate(split, [0]))
        padded = m.forward(m.model, m.make_batcher(split).collate(split, [0, 1]))
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
def test_poolings_use_every_parameter(pooling):
    torch.manual_seed(0)
    m = make(over={"encoder": {"name": "tiny-random-bert", "pooling": pooling}})
    split = fake_split(dims={})
    model = m.build_model({}, len(LABELS))
    batch = m.make_batcher(split).collate(split, list(range(len(split))))
    m.loss(m.forward(model, batch), batch).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert (model.encoder.model.pooler is not None) == (pooling == "pooler")


# -- context variant ------------------------------------------------------------------------------

def test_context_variant_prepends_earlier_turns_with_speakers():
    m = make("context")
    assert m.raw_text.context_turns == 8 and m.raw_text.speaker_names
    split = text_split(["first line", "second line", "third line", "fourth line"])
    assert m.raw_text.text_inputs(split, 0) == ("Ross: first line", None)
    assert m.raw_text.text_inputs(split, 2) == ("Ross: third line", "Ross: first line Rachel: second line")
    ids = m.make_batcher(split).collate(split, [2])["text"]["input_ids"][0]
    tok = load_tokenizer("tiny-random-bert")
    assert tok.decode(ids, skip_special_tokens=False) == \
        "[CLS] ross : first line rachel : second line [SEP] ross : third line [SEP]"


def test_context_never_holds_labels_or_later_turns():
    m = make("context")
    texts = [f"line{i} text" for i in range(7)]
    split = text_split(texts, label_names=("labelalpha", "labelbeta", "labelgamma", "labeldelta"))
    rows = list(range(len(split)))
    np.random.default_rng(0).shuffle(rows)  # turn order, not row order, defines "earlier"
    split = SplitData(split.name, [split.utterances[r] for r in rows], {}, split.label_names, split.labels[rows])
    for r, u in enumerate(split.utterances):
        current, context = m.raw_text.text_inputs(split, r)
        seen = f"{current} {context or ''}"
        assert "label" not in seen  # no label name ever enters the text
        for later in range(u.turn + 1, 7):
            assert f"line{later}" not in seen
        for earlier in range(u.turn):
            assert f"line{earlier}" in (context or "")
    # the same, on the tokens handed to the model
    tok = load_tokenizer("tiny-random-bert")
    decoded = tok.batch_decode(m.make_batcher(split).collate(split, list(range(len(split))))["text"]["input_ids"])
    assert not any("label" in d for d in decoded)


def test_context_comes_from_the_split_being_batched_only():
    m = make("context")
    train = text_split(["train zero", "train one", "train two"], name="train")
    # The same dialogue continues in the test split: it must not see the training texts.
    test = text_split(["test three", "test four"], labels=False, name="test", first_turn=3)
    assert m.raw_text.text_inputs(test, 0) == ("Ross: test three", None)
    assert m.raw_text.text_inputs(test, 1) == ("Rachel: test four", "Ross: test three")
    assert m.raw_text.text_inputs(train, 2)[1] == "Ross: train zero Rachel: train one"


def test_context_keeps_the_latest_turns_that_fit():
    m = make("context", over={"encoder": {"name": "tiny-random-bert", "max_length": 16}})
    split = text_split(["alpha beta gamma", "delta epsilon", "zeta eta", "final"])
    current, context = m.raw_text.text_inputs(split, 3)
    assert context is not None and "zeta" in context and "alpha" not in context
    assert m.make_batcher(split).collate(split, [3])["text"]["input_ids"].shape[1] <= 16


def test_short_fit_and_predict(tmp_path):
    m = make(over={**TINY, "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3}}, workdir=tmp_path)
    train, valid = fake_split(dims={}), fake_split(seed=1, name="valid", dims={})
    report = m.fit(train, valid)
    assert report.epochs_run == 2 and len(report.history) == 2
    probs = m.predict(fake_split(seed=2, name="test", labels=False, dims={}))
    assert probs.shape[1] == len(LABELS) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_variants_name_the_original_encoders():
    names = {v: method_config(TextTransformerMethod, v)["encoder"] for v in ("bert", "roberta", "distilbert")}
    assert names["bert"]["name"] == "bert-base-uncased"
    assert names["roberta"] == {"name": "roberta-base", "pooling": "cls", "max_length": 128}
    assert names["distilbert"]["pooling"] == "cls"  # DistilBERT has no pooler layer
