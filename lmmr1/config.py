"""Run configuration: nested dataclasses whose docstrings are the documentation of every field.

A config is built from defaults, then a YAML/JSON mapping, then `key.sub=value` overrides; an unknown key at
any level is an error naming the full dotted key and the valid ones.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    path: str = "tiny"
    """HF checkpoint directory (model + processor), or "tiny" for lmmr1's tiny random Qwen2.5-VL."""
    dtype: str = "float32"
    """Training dtype: float32, or bfloat16 where the device supports it."""
    freeze_vision: bool = True
    """Freeze the vision tower (LMM-R1's FRE: text-only data gives it no signal)."""
    min_pixels: int | None = None
    """Override the processor's minimum image area; None keeps the checkpoint's."""
    max_pixels: int | None = None
    """Override the processor's maximum image area; None keeps the checkpoint's."""


@dataclass
class DataConfig:
    train_files: list[str] = field(default_factory=list)
    """Record JSONL files (lmmr1 records; image paths relative to each file)."""
    eval_files: list[str] = field(default_factory=list)
    """Held-out record JSONL files scored greedily every `train.eval_every` steps."""
    max_prompt_len: int = 1024
    """Longest prompt in tokens, image tokens included; longer records are skipped (never truncated)."""
    allow_remote_images: bool = False
    """Allow http(s) image references (refused by default: nothing downloads at run time)."""
    max_eval_records: int = 64
    """Cap on held-out records per eval."""


@dataclass
class RolloutConfig:
    backend: str = "vllm"
    """"vllm" (in-process vLLM, weights pushed after every update) or "hf" (transformers generate)."""
    n_samples: int = 8
    """G: responses per prompt."""
    prompts_per_step: int = 4
    """P: prompts per step (rollout batch = P * G responses)."""
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    max_model_len: int = 2048
    """vLLM context length (prompt + response)."""
    kv_cache_memory_mb: int = 256
    """vLLM KV cache on CPU (on a GPU, gpu_memory_utilization is used instead)."""
    gpu_memory_utilization: float = 0.4


@dataclass
class AlgorithmConfig:
    estimator: str = "group_norm"
    """Advantage estimator (lmmr1.algorithms.estimators): group_norm, rloo, reinforce_baseline, dr_grpo,
    w_reinforce, ngrpo, ucpo."""
    estimator_args: dict[str, Any] = field(default_factory=dict)
    """Fields of the estimator's config dataclass, e.g. {r_max: 1.5} for ngrpo."""
    group_filter: str = "none"
    """Dynamic sampling: none, drop_all_correct, drop_homogeneous, non_ternary."""
    reward: str = "lmm_r1"
    """Reward (lmmr1.rewards): e.g. lmm_r1 = 0.5 * strict format + math accuracy."""
    reward_args: dict[str, Any] = field(default_factory=dict)
    """Fields of lmmr1.rewards.RewardConfig."""
    eps_clip_low: float = 0.2
    eps_clip_high: float = 0.2
    """Asymmetric clip (NGRPO 0.16 / 0.24, DAPO 0.2 / 0.28)."""
    dual_clip: float | None = None
    loss_agg_mode: str = "token-mean"
    """token-mean, seq-mean-token-mean, seq-mean-token-sum-norm."""
    kl_coef: float = 0.0
    """Weight of the KL to the frozen initial policy; 0 disables the reference model."""
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0


@dataclass
class OptimConfig:
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1
    """Cosine decay to min_lr_ratio * lr (OpenRLHF's cosine_with_min_lr)."""
    max_grad_norm: float = 1.0
    ppo_epochs: int = 1
    """Passes over each rollout batch."""
    updates_per_step: int = 1
    """Optimizer steps per rollout batch per epoch (the batch is split into this many mini-batches)."""
    micro_batch_size: int = 8
    """Sequences per forward/backward; gradients accumulate over a mini-batch."""


@dataclass
class TrainConfig:
    steps: int = 20
    """RL steps (one rollout batch each)."""
    seed: int = 0
    run_dir: str = "runs/default"
    save_every: int = 10
    """Checkpoint every N steps (and at the end)."""
    keep_last: int = 2
    """Complete checkpoints kept on disk."""
    resume: str = "auto"
    """"auto" (latest checkpoint in run_dir, if any), "never", or a checkpoint directory."""
    eval_every: int = 0
    """Held-out eval every N steps (0: only before and after training)."""
    tensorboard: bool = True
    progress: bool = True
    """Show a progress bar with the live reward."""


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------------------- building


class ConfigError(ValueError):
    """A config key or value is wrong; the message names the dotted key."""


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in [a for a in args if a is not type(None)]:
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} does not match {annotation}")
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, prefix=key)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation in (int, float, str):
        if isinstance(value, bool) and annotation is not str:
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}") from None
    if origin in (list, tuple):
        if isinstance(value, str):
            value = json.loads(value) if value.startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, key) if item is not Any else v for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def from_dict(cls, data: dict | None, prefix: str = ""):
    """Build dataclass `cls` from a mapping; unknown keys are errors naming the dotted key."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown config key {where}{unknown[0]!r}; valid keys{' of ' + prefix if prefix else ''}: "
                          f"{', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`key.sub=value` strings applied to a nested mapping (values parsed as YAML scalars/lists)."""
    import yaml

    data = json.loads(json.dumps(data))  # deep copy
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return data


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
