import pytest

from merbench.corpus import Corpus, Utterance
from merbench.errors import ConfigError
from merbench.protocols import Protocol, leave_one_group_out, random_dialogue_split, split_by_field

LABELS = ("neu", "hap", "sad", "ang")
SPLIT_OF = ["train"] * 7 + ["valid", "test", "test"]


def corpus(n_dialogues=30, sessions=3):
    utts = []
    for d in range(n_dialogues):
        for t in range(5):
            utts.append(Utterance(f"d{d}_{t}", f"d{d}", t, "AB"[t % 2], "x", LABELS[(d + t) % 4],
                                  meta={"session": d % sessions, "split": SPLIT_OF[d % 10]}))
    return Corpus("toy", utts)


def make(splitter, **kw):
    return Protocol(name="toy-4", dataset="toy", label_names=LABELS, splitter=splitter, **kw)


@pytest.mark.parametrize("splitter", [split_by_field("split"), random_dialogue_split(seed=3),
                                      leave_one_group_out("session")])
def test_no_id_in_two_splits_and_all_used(splitter):
    c = corpus()
    splits = make(splitter).build(c)
    for f in splits.folds:
        ids = [set(f.train), set(f.valid), set(f.test)]
        assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
        assert len(ids[0] | ids[1] | ids[2]) == len(c)


def test_leave_one_group_out_validation_from_training_groups():
    c = corpus()
    splits = make(leave_one_group_out("session")).build(c)
    assert len(splits.folds) == 3
    for f in splits.folds:
        held = {c[u].meta["session"] for u in f.test}
        assert len(held) == 1
        assert not held & {c[u].meta["session"] for u in f.valid}
        # whole dialogues go to validation
        assert not {c[u].dialogue_id for u in f.valid} & {c[u].dialogue_id for u in f.train}


def test_hash_stable_and_sensitive():
    a = make(random_dialogue_split(seed=1)).build(corpus()).manifest_hash
    assert a == make(random_dialogue_split(seed=1)).build(corpus()).manifest_hash
    assert a != make(random_dialogue_split(seed=2)).build(corpus()).manifest_hash
    c = corpus()
    c.utterances[0] = Utterance(**{**c.utterances[0].__dict__, "label": "sad" if c.utterances[0].label != "sad" else "ang"})
    assert a != make(random_dialogue_split(seed=1)).build(Corpus("toy", c.utterances)).manifest_hash


def test_label_map_merges_and_filters():
    p = Protocol(name="m", dataset="toy", label_names=("pos", "neg"), splitter=random_dialogue_split(),
                 label_map={"hap": "pos", "sad": "neg", "ang": "neg"})
    splits = p.build(corpus())
    assert set(splits.labels.values()) == {0, 1}
    assert len(splits.labels) == 150 - sum(1 for d in range(30) for t in range(5) if LABELS[(d + t) % 4] == "neu")


def test_empty_split_is_an_error():
    c = Corpus("toy", [Utterance(f"u{i}", f"d{i}", 0, "A", "x", "neu", meta={"split": "train"}) for i in range(5)])
    with pytest.raises(ConfigError, match="valid split is empty"):
        make(split_by_field("split")).build(c)


def test_overlap_only_for_as_published_protocols():
    def leaky(utts):
        from merbench.protocols import Fold

        ids = tuple(u.uid for u in utts)
        return [Fold("leaky", ids + ids[:5], ids[:10], ids[:20])]

    with pytest.raises(ConfigError, match="is twice in train"):
        make(leaky).build(corpus())
    with pytest.raises(ConfigError, match="only for as-published"):
        make(leaky, allow_overlap=True).build(corpus())
    splits = make(leaky, allow_overlap=True, as_published=True).build(corpus())
    assert len(splits.folds[0].train) == 155
