import pytest

from merbench.config import apply_overrides, config_hash, load_yaml, method_config
from merbench.errors import ConfigError
from merbench.registry import get_method


def test_include_and_variant(tmp_path):
    (tmp_path / "config.yaml").write_text("a: 1\nmodel: {h: 2, d: 0.1}\n")
    (tmp_path / "v.yaml").write_text("include: config.yaml\nmodel: {h: 3}\n")
    assert load_yaml(tmp_path / "v.yaml") == {"a": 1, "model": {"h": 3, "d": 0.1}}


def test_include_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_yaml(tmp_path / "a.yaml")


def test_overrides_parse_values_and_reject_unknown_keys():
    cfg = {"train": {"lr": 0.1, "epochs": 3}, "model": {"hidden": [4]}}
    out = apply_overrides(cfg, ["train.lr=0.001", "model.hidden=[8, 8]"])
    assert out["train"]["lr"] == 0.001 and out["model"]["hidden"] == [8, 8]
    assert cfg["train"]["lr"] == 0.1  # the input is not changed
    with pytest.raises(ConfigError, match="no key 'train.lrr'"):
        apply_overrides(cfg, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(cfg, ["train.lr"])


def test_hash_is_order_independent():
    assert config_hash({"a": 1, "b": {"c": 2}}) == config_hash({"b": {"c": 2}, "a": 1})


def test_unknown_variant_lists_known():
    with pytest.raises(ConfigError, match="no variant 'nope'"):
        method_config(get_method("mlp"), "nope")


def test_trainer_settings_can_be_set_without_being_in_the_file():
    cfg = method_config(get_method("mlp"), overrides=["train.grad_clip=1.0"])
    assert cfg["train"]["grad_clip"] == 1.0
    with pytest.raises(ConfigError, match="no key 'train.grad_clipp'"):
        method_config(get_method("mlp"), overrides=["train.grad_clipp=1.0"])
