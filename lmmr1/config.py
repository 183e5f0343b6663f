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
    """Longest response in tokens (generation stops there; the response counts as truncated)."""
    temperature: float = 1.0
    """Sampling temperature of training rollouts (eval is always greedy)."""
    top_p: float = 1.0
    """Nucleus sampling mass of training rollouts (1.0: off)."""
    max_model_len: int = 2048
    """vLLM context length (prompt + response)."""
    kv_cache_memory_mb: int = 256
    """vLLM KV cache on CPU (on a GPU, gpu_memory_utilization is used instead)."""
    gpu_memory_utilization: float = 0.4
    """Fraction of GPU memory vLLM may take (weights + KV cache) when colocated with the trainer."""
    hf_batch_sequences: int = 64
    """HF backend: the most responses per `generate` call (whole prompts of G responses, at least one prompt
    per call). Lower it when HF generation runs out of memory."""


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
    """Lower clip of the PPO ratio, 1 - eps_clip_low (binds on negative advantages)."""
    eps_clip_high: float = 0.2
    """Asymmetric clip (NGRPO 0.16 / 0.24, DAPO 0.2 / 0.28)."""
    dual_clip: float | None = None
    """Dual-clip constant c (> 1) bounding the loss of negative-advantage tokens; None disables it."""
    loss_agg_mode: str = "token-mean"
    """token-mean, seq-mean-token-mean, seq-mean-token-sum-norm."""
    kl_coef: float = 0.0
    """Weight of the KL to the frozen initial policy; 0 disables the reference model."""
    kl_mode: str = "loss"
    """How the KL to the reference enters (when kl_coef > 0): "loss" (GRPO: kl_coef * agg(KL) added to the loss)
    or "reward" (OpenRLHF / LMM-R1: -kl_coef * KL_t on every response token, reward-to-go advantages; use
    kl_estimator k1 as they do)."""
    kl_estimator: str = "k3"
    """KL estimator: k1, k2 or k3 (Schulman's estimators)."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus (0: off)."""


@dataclass
class OptimConfig:
    lr: float = 1e-5
    """Peak learning rate of the policy (AdamW)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas (OpenRLHF default)."""
    weight_decay: float = 0.0
    """AdamW weight decay (OpenRLHF l2 default 0)."""
    warmup_ratio: float = 0.03
    """Fraction of optimizer updates spent in linear LR warm-up."""
    min_lr_ratio: float = 0.1
    """Cosine decay to min_lr_ratio * lr (OpenRLHF's cosine_with_min_lr)."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
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
    """Seed of data order, sampling and initialisation."""
    run_dir: str = "runs/default"
    """Run directory: config, metrics.jsonl, checkpoints, final/ HF checkpoint, report."""
    save_every: int = 10
    """Checkpoint every N steps (and at the end)."""
    keep_last: int = 2
    """Complete checkpoints kept on disk."""
    resume: str = "auto"
    """"auto" (latest checkpoint in run_dir, if any), "never", or a checkpoint directory."""
    eval_every: int = 0
    """Held-out eval every N steps (0: only before and after training)."""
    tensorboard: bool = True
    """Also write TensorBoard event files (metrics.jsonl is always written)."""
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


# ------------------------------------------------------------------------------------------------ stages


@dataclass
class StageSection:
    name: str = "fre"
    """Stage name (fre, mgt, or any label); used in logs and the report title."""
    engine: str = "local"
    """"local" (lmmr1.engine.local: one process, one device) or "openrlhf" (OpenRLHF 0.11.2's PPO-Ray on a GPU
    cluster, lmmr1's estimators, rewards and envs inside; settings of the cluster in section `openrlhf`)."""
    init_from: str = ""
    """Where the policy starts. "": `model.path` as given. A run directory holding `final/` (the run-directory
    convention: MGT starts from `runs/<fre run>/final`), or an explicit HF checkpoint directory. The stage
    prints which of the two it used."""
    report: bool = True
    """Write report.md and PNG curves into the run directory after the stage."""


@dataclass
class SyntheticConfig:
    train_tasks: list[str] = field(default_factory=list)
    """Synthetic tasks (data_pipelines.synthetic) generated into `<run_dir>/data/` on first use as the training
    set; empty: use `data.train_files`. Setting both is an error."""
    eval_tasks: list[str] = field(default_factory=list)
    """Synthetic held-out tasks (a disjoint seed), written to `<run_dir>/data/eval.jsonl`."""
    n_train: int = 256
    """Training examples per task."""
    n_eval: int = 32
    """Held-out examples per task."""
    seed: int = 0
    """Generator seed of the training set (held-out uses seed + 1000): same seed, byte-identical data."""
    difficulty: str = "1"
    """Difficulty level N or range A-B (1..5)."""
    unanswerable_fraction: float = 0.0
    """Fraction of unanswerable variants (answer UNANSWERABLE; for UCPO-style abstention)."""
    image_size: int = 112
    """Image side in pixels (a multiple of 28); small keeps the tiny model's prompts short."""
    system_prompt: str = "auto"
    """System prompt of generated records: auto (lmm_r1, or abstain with unanswerable variants), lmm_r1, abstain,
    none, or literal text. The tiny default uses none: a random model cannot read instructions, and LMM-R1's
    ~100-word prompt would multiply every forward's cost on a CPU."""


@dataclass
class WarmupConfig:
    steps: int = 0
    """Supervised format warm-up steps before RL (0: none). Each step is one cross-entropy update on
    well-formed `<think>..</think><answer>\\boxed{gold}</answer>` responses to training questions."""
    batch_size: int = 16
    """Responses per warm-up step."""
    lr: float = 3e-3
    """Warm-up learning rate (constant, AdamW)."""


@dataclass
class EvalSection:
    suites: list[str] = field(default_factory=list)
    """Eval suites (built-in names of eval.suites, or suite YAML files) run on the stage's final checkpoint after
    training, through the eval harness (`python -m eval.run`); results in `<run_dir>/eval/<suite>/`."""
    overrides: list[str] = field(default_factory=list)
    """`key=value` settings of those suites (eval.suites.EvalConfig), e.g. [limit=100, backend=hf]."""


@dataclass
class OpenRLHFSection:
    """Cluster layout of `stage.engine: openrlhf` (OpenRLHF 0.11.2's PPO-Ray; see docs/distributed.md). The
    algorithm, rollout, optimizer and checkpoint settings come from the other sections."""

    ray_address: str = ""
    """"": start a local Ray on this node (single node). "auto" or "<head ip>:6379": join an existing Ray
    cluster (multi-node; lmmr1 must be installed on every node and paths reachable from every node)."""
    num_nodes: int = 1
    """Nodes of the actor (and reference) model group."""
    gpus_per_node: int = 8
    """GPUs per node of the actor (and reference) model group."""
    vllm_num_engines: int = 8
    """vLLM rollout engines (with colocate_all: num_nodes x gpus_per_node / vllm_tensor_parallel_size)."""
    vllm_tensor_parallel_size: int = 1
    """GPUs per vLLM engine."""
    vllm_sync_backend: str = "nccl"
    """DeepSpeed -> vLLM weight broadcast backend (nccl, or gloo as LMM-R1's scripts)."""
    colocate_all: bool = True
    """Actor, reference and vLLM engines share the GPUs (LMM-R1: --colocate_all_models)."""
    vllm_enable_sleep: bool = True
    """vLLM sleeps (frees its memory) while DeepSpeed trains; needs colocate_all."""
    ds_enable_sleep: bool = False
    """DeepSpeed offloads its states while vLLM generates; needs colocate_all."""
    enable_prefix_caching: bool = True
    """vLLM prefix caching (reset after every weight broadcast, with the encoder and multimodal caches)."""
    enforce_eager: bool = False
    """Disable CUDA graphs in vLLM."""
    zero_stage: int = 3
    """DeepSpeed ZeRO stage (LMM-R1: 3)."""
    gradient_checkpointing: bool = True
    """Activation checkpointing in the actor (LMM-R1: on)."""
    adam_offload: bool = False
    """Offload Adam states to CPU."""
    attn_implementation: str = "flash_attention_2"
    """Attention of the DeepSpeed models (flash_attention_2, sdpa, eager)."""
    max_images_per_prompt: int = 1
    """vLLM's limit_mm_per_prompt; > 0 enables OpenRLHF's VLM path (also for text-only FRE, so that the engines
    and the pad-token handling are the ones MGT uses)."""
    agent_executor: bool = False
    """Play each row as a multi-turn episode of lmmr1's envs (football, Sokoban) with environment images,
    through lmmr1's agent executor (--train.agent_func_path); the row's meta names the env
    (data_pipelines.football_tasks / sokoban_tasks with --kind interactive). The reward is the env's
    accumulated reward (algorithm.reward is not used). openrlhf engine only."""
    env_config: dict[str, Any] = field(default_factory=dict)
    """Env config fields per env for agent episodes, e.g. {sokoban: {max_turns: 20}} (LMMR1_ENV_CONFIG)."""
    extra_args: list[str] = field(default_factory=list)
    """Further OpenRLHF 0.11.2 flags, appended last and validated with the rest, e.g.
    ["--ds.zpg", "8"]."""


@dataclass
class StageConfig(RunConfig):
    """One stage = a RunConfig (the engine's settings) plus how the stage gets its model and data."""

    stage: StageSection = field(default_factory=StageSection)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    eval: EvalSection = field(default_factory=EvalSection)
    openrlhf: OpenRLHFSection = field(default_factory=OpenRLHFSection)


def field_docs(cls) -> dict[str, str]:
    """`{dotted.key: docstring}` for every field of dataclass `cls`, nested sections included, read from the
    string literal that follows each field in its class body (the house style's `--help` source)."""
    import ast
    import inspect
    import textwrap

    out: dict[str, str] = {}

    def own_docs(klass) -> dict[str, str]:
        docs: dict[str, str] = {}
        for base in reversed(klass.__mro__):
            if not dataclasses.is_dataclass(base):
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(base)))
            body = tree.body[0].body
            for node, after in zip(body, body[1:] + [None]):
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    doc = ""
                    if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                            and isinstance(after.value.value, str)):
                        doc = " ".join(after.value.value.split())
                    docs[node.target.id] = doc
        return docs

    def walk(klass, prefix: str) -> None:
        docs = own_docs(klass)
        hints = typing.get_type_hints(klass)
        for f in dataclasses.fields(klass):
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], key + ".")
            else:
                out[key] = docs.get(f.name, "")

    walk(cls, "")
    return out
