"""Run configs: dataclass defaults, mappings and `key.sub=value` overrides; unknown keys are errors."""

from __future__ import annotations

import pytest

from lmmr1.config import ConfigError, RunConfig, apply_overrides, from_dict, to_dict


def test_defaults_roundtrip():
    cfg = RunConfig()
    assert from_dict(RunConfig, to_dict(cfg)) == cfg
    assert cfg.rollout.backend == "vllm" and cfg.model.freeze_vision is True


def test_overrides_parse_types():
    data = apply_overrides({}, ["rollout.n_samples=16", "algorithm.estimator=ngrpo", "optim.betas=[0.9, 0.99]",
                                "algorithm.estimator_args={r_max: 1.5}", "model.max_pixels=null",
                                "data.train_files=a.jsonl,b.jsonl", "train.tensorboard=false"])
    cfg = from_dict(RunConfig, data)
    assert cfg.rollout.n_samples == 16 and cfg.algorithm.estimator == "ngrpo"
    assert cfg.optim.betas == (0.9, 0.99) and cfg.algorithm.estimator_args == {"r_max": 1.5}
    assert cfg.model.max_pixels is None and cfg.train.tensorboard is False
    assert cfg.data.train_files == ["a.jsonl", "b.jsonl"]


@pytest.mark.parametrize(("data", "message"), [
    ({"rollout": {"n_sample": 4}}, "unknown config key rollout.'n_sample'"),
    ({"rolout": {}}, "unknown config key 'rolout'"),
    ({"rollout": {"n_samples": "many"}}, "rollout.n_samples: expected int, got 'many'"),
    ({"train": {"tensorboard": "perhaps"}}, "train.tensorboard: expected true/false"),
])
def test_bad_keys_and_values_name_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(RunConfig, data)
    assert message in str(err.value)


def test_malformed_override():
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["rollout.n_samples"])
