"""A stage config as OpenRLHF 0.11.2 arguments, parsed and validated by OpenRLHF's own rules.

OpenRLHF builds its argument parser and checks the arguments inside the `if __name__ == "__main__":` block of
`openrlhf/cli/train_ppo_ray.py`; there is no function to call. lmmr1 does not copy those ~500 lines: it reads
the block from the installed module and runs its two halves,

    1. the statements up to `args = parser.parse_args()`  -> OpenRLHF's parser (every flag, default, choice);
    2. the statements after it, up to `train(args)`        -> OpenRLHF's validation and normalisation
       (the VLM rules included: no critic and no packing with images; group estimators need G > 1; ...),

so the arguments lmmr1 launches with are exactly the arguments OpenRLHF would launch with, checked by the same
asserts. lmmr1's own flags (`--lmmr1.*`) are added to that parser; after `hierarchize` they live in
`args.lmmr1`, which travels with the strategy into every Ray actor.

Estimators: OpenRLHF's `--algo.advantage.estimator` has a closed `choices` list. The advantages of a
distributed lmmr1 run always come from lmmr1's estimator (`--lmmr1.estimator`, computed by
`LmmExperienceMaker`); `--algo.advantage.estimator` is set to the same name when OpenRLHF knows it and to
`group_norm` otherwise, so that OpenRLHF's rules for group estimators (G > 1, no critic) apply.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from lmmr1.config import ConfigError, StageConfig

UPSTREAM_ESTIMATORS = ("rloo", "reinforce_baseline", "group_norm", "dr_grpo")
"""lmmr1 estimators that OpenRLHF's `--algo.advantage.estimator` accepts under the same name."""

INCOMPLETE_FINAL = "final.incomplete"
"""Where OpenRLHF writes the final HF checkpoint; renamed to `final` when `train()` has returned."""

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean")
"""`algorithm.loss_agg_mode` values OpenRLHF 0.11.2 implements."""


# ------------------------------------------------------------------------------------ OpenRLHF's own rules


def _main_block() -> tuple[list[ast.stmt], list[ast.stmt], dict, str]:
    """(parser statements, validation statements, module globals, file name) of train_ppo_ray's __main__."""
    try:
        from openrlhf.cli import train_ppo_ray as module
    except ImportError as err:
        raise ConfigError(f"stage.engine=openrlhf: OpenRLHF 0.11.2 does not import here ({err}); the distributed "
                          "engine needs the `openrlhf` and `gpu` extras on a machine with CUDA") from None

    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            body = node.body
            break
    else:
        raise RuntimeError("openrlhf.cli.train_ppo_ray has no `if __name__ == '__main__':` block")

    def is_parse_args(stmt: ast.stmt) -> bool:
        return (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr == "parse_args")

    split = next((i for i, stmt in enumerate(body) if is_parse_args(stmt)), None)
    last = body[-1]
    if (split is None or not isinstance(last, ast.Expr) or not isinstance(last.value, ast.Call)
            or getattr(last.value.func, "id", None) != "train"):
        raise RuntimeError("openrlhf.cli.train_ppo_ray's __main__ block is not `parser...; args = "
                           "parser.parse_args(); <checks>; train(args)`: pin openrlhf==0.11.2")
    return body[:split], body[split + 1 : -1], dict(vars(module)), module.__file__


def _run(statements: list[ast.stmt], namespace: dict, filename: str) -> None:
    exec(compile(ast.Module(body=statements, type_ignores=[]), filename, "exec"), namespace)


def json_mapping(text: str) -> str:
    """A JSON object, kept as text: OpenRLHF's `hierarchize` would turn a dict into a namespace."""
    if not isinstance(json.loads(text), dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return text


def add_lmmr1_flags(parser: argparse.ArgumentParser) -> None:
    """lmmr1's flags, read inside the Ray actors as `args.lmmr1.*`."""
    parser.add_argument("--lmmr1.estimator", type=str, default=None,
                        help="lmmr1 advantage estimator (lmmr1.algorithms), computed by LmmExperienceMaker")
    parser.add_argument("--lmmr1.estimator_args", type=json_mapping, default="{}",
                        help="JSON mapping: fields of the estimator's config dataclass")
    parser.add_argument("--lmmr1.group_filter", type=str, default="none",
                        help="lmmr1 group filter; dropped groups get advantage 0, as in the local engine")
    parser.add_argument("--lmmr1.mm_processor_kwargs", type=json_mapping, default="{}",
                        help="JSON mapping passed to every vLLM engine (Qwen2.5-VL: min_pixels, max_pixels)")


def openrlhf_parser() -> tuple[argparse.ArgumentParser, list[ast.stmt], dict, str]:
    """OpenRLHF 0.11.2's train_ppo_ray parser (built by its own statements) plus lmmr1's flags; with the check
    statements, the namespace they run in, and their file name."""
    parser_part, checks, namespace, filename = _main_block()
    _run(parser_part, namespace, filename)
    parser = namespace["parser"]
    add_lmmr1_flags(parser)
    return parser, checks, namespace, filename


@dataclass
class Validated:
    args: object
    """The hierarchized namespace exactly as OpenRLHF's `train(args)` would receive it."""
    warnings: list[str]
    """What OpenRLHF's checks printed (settings it changed or recommends changing)."""


def parse_and_validate(argv: list[str]) -> Validated:
    """Parse `argv` with OpenRLHF's parser and run OpenRLHF's checks on the result.

    Raises ConfigError with OpenRLHF's message when an argument is unknown, malformed, or breaks a rule."""
    parser, checks, namespace, filename = openrlhf_parser()
    parser.exit_on_error = False
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            flat = parser.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as err:
        message = str(err) if isinstance(err, argparse.ArgumentError) else errors.getvalue().strip().splitlines()[-1]
        raise ConfigError(f"OpenRLHF 0.11.2 rejects the arguments: {message}") from None

    captured: list = []
    namespace.update(args=flat, train=captured.append)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            _run(checks, namespace, filename)
    except AssertionError as err:
        raise ConfigError(f"OpenRLHF 0.11.2's checks reject the arguments: {err}") from None
    if len(captured) != 0:
        raise RuntimeError("unexpected: OpenRLHF's checks called train() before the end of the block")
    return Validated(namespace["args"], [line for line in printed.getvalue().splitlines() if line.strip()])


# ----------------------------------------------------------------------------------- stage -> arguments


@dataclass
class Inputs:
    """The files a distributed stage runs on (prepared by `lmmr1.distributed.launch`)."""

    model: str
    """HF checkpoint directory (model + processor with the stage's min/max pixels)."""
    train_dataset: str
    """OpenRLHF prompt JSONL (data_pipelines.to_openrlhf)."""
    num_prompts: int
    """Rows in `train_dataset` (sizes episodes and max_samples from train.steps)."""
    reward_file: str
    """lmmr1's reward_func file (lmmr1/rewards/openrlhf_func.py)."""
    eval_dataset: str | None = None
    agent_file: str | None = None
    """lmmr1's agent executor file, for multi-turn environment stages; replaces the reward file, and the label
    is the row's meta (the episode: env, level or scenario, seed)."""
    mm_processor_kwargs: dict | None = None


def steps_to_episodes(steps: int, prompts_per_step: int, num_prompts: int) -> tuple[int, int]:
    """(num_episodes, max_samples) giving `steps` rollouts of P prompts from a dataset of N prompts.

    OpenRLHF 0.11.2 trains every episode's last, partial batch too (ceil(max_samples / P) rollouts per
    episode), and has no step limit; so max_samples is a multiple of P:

        N >= steps * P:  1 episode over steps * P prompts                       (exactly `steps` rollouts)
        otherwise:       E = ceil(steps / floor(N / P)) episodes of R = ceil(steps / E) rollouts,
                         max_samples = R * P                      (E * R rollouts: steps, or up to E - 1 more)

    The converted training set is shuffled (train.seed), so the prompts left out are a random sample."""
    if num_prompts < prompts_per_step:
        raise ConfigError(f"the training set has {num_prompts} prompts, fewer than rollout.prompts_per_step="
                          f"{prompts_per_step}")
    if num_prompts >= steps * prompts_per_step:
        return 1, steps * prompts_per_step
    episodes = math.ceil(steps / (num_prompts // prompts_per_step))
    return episodes, math.ceil(steps / episodes) * prompts_per_step


def stage_to_openrlhf(cfg: StageConfig, inputs: Inputs) -> list[str]:
    """The OpenRLHF 0.11.2 argument list of a stage (one flag per config value; section `openrlhf` adds the
    cluster layout, `openrlhf.extra_args` come last). Settings OpenRLHF cannot express are ConfigErrors
    naming the key."""
    a, o, r, t, d = cfg.algorithm, cfg.optim, cfg.rollout, cfg.train, cfg.openrlhf
    if cfg.model.dtype != "bfloat16":
        raise ConfigError(f"model.dtype={cfg.model.dtype}: OpenRLHF trains in bf16 (DeepSpeed); set "
                          "model.dtype=bfloat16 for stage.engine=openrlhf")
    if a.loss_agg_mode not in LOSS_AGG_MODES:
        raise ConfigError(f"algorithm.loss_agg_mode={a.loss_agg_mode}: OpenRLHF 0.11.2 implements "
                          f"{', '.join(LOSS_AGG_MODES)}")
    samples = r.prompts_per_step * r.n_samples
    if samples % o.updates_per_step:
        raise ConfigError(f"optim.updates_per_step={o.updates_per_step} must divide the rollout batch "
                          f"(rollout.prompts_per_step x rollout.n_samples = {samples})")
    per_pass = o.micro_batch_size * d.num_nodes * d.gpus_per_node  # DeepSpeed: batch = micro x accumulation x GPUs
    if (samples // o.updates_per_step) % per_pass:
        raise ConfigError(f"optim.updates_per_step={o.updates_per_step}: each update's {samples // o.updates_per_step} "
                          f"responses must be a multiple of optim.micro_batch_size x GPUs = {o.micro_batch_size} x "
                          f"{d.num_nodes * d.gpus_per_node} (DeepSpeed refuses the batch after the vLLM engines started)")
    if t.resume not in ("auto", "never"):
        raise ConfigError(f"train.resume={t.resume}: the openrlhf engine resumes from its own checkpoints in "
                          "<run_dir>/checkpoints (auto) or not at all (never)")
    episodes, max_samples = steps_to_episodes(t.steps, r.prompts_per_step, inputs.num_prompts)
    run_dir = Path(t.run_dir)
    estimator = a.estimator if a.estimator in UPSTREAM_ESTIMATORS else "group_norm"

    argv = [
        # model and data
        "--actor.model_name_or_path", inputs.model,
        "--data.prompt_dataset", inputs.train_dataset,
        "--data.input_key", "messages", "--data.label_key", "meta" if inputs.agent_file else "label",
        "--data.image_key", "images",
        "--data.apply_chat_template",
        "--data.max_images_per_prompt", str(d.max_images_per_prompt),
        "--data.max_len", str(r.max_model_len),
        "--data.max_samples", str(max_samples),
        "--train.num_episodes", str(episodes),
        # rollout
        "--rollout.batch_size", str(r.prompts_per_step),
        "--rollout.n_samples_per_prompt", str(r.n_samples),
        "--rollout.max_new_tokens", str(r.max_new_tokens),
        "--rollout.temperature", str(r.temperature),
        "--rollout.top_p", str(r.top_p),
        "--rollout.micro_batch_size", str(o.micro_batch_size),
        # algorithm
        "--algo.advantage.estimator", estimator,
        "--lmmr1.estimator", a.estimator,
        "--lmmr1.estimator_args", json.dumps(a.estimator_args, sort_keys=True),
        "--lmmr1.group_filter", a.group_filter,
        "--actor.eps_clip_low_high", str(a.eps_clip_low), str(a.eps_clip_high),
        "--actor.loss_agg_mode", a.loss_agg_mode,
        "--algo.kl.init_coef", str(a.kl_coef),
        "--algo.kl.estimator", a.kl_estimator,
    ]
    if a.entropy_coef > 0:
        argv += ["--actor.entropy_coef", str(a.entropy_coef)]
    if a.dual_clip is not None:
        argv += ["--actor.dual_clip", str(a.dual_clip)]
    if a.kl_coef > 0 and a.kl_mode == "loss":
        argv += ["--algo.kl.use_loss"]
    if inputs.agent_file:
        argv += ["--train.agent_func_path", inputs.agent_file]
    else:
        argv += ["--reward.remote_url", inputs.reward_file]
    argv += [
        # optimizer and schedule
        "--actor.adam.lr", str(o.lr),
        "--actor.adam.betas", str(o.betas[0]), str(o.betas[1]),
        "--actor.adam.weight_decay", str(o.weight_decay),
        "--actor.lr_warmup_ratio", str(o.warmup_ratio),
        "--actor.min_lr_ratio", str(o.min_lr_ratio),
        "--actor.max_norm", str(o.max_grad_norm),
        "--train.max_epochs", str(o.ppo_epochs),
        "--train.batch_size", str(samples // o.updates_per_step),
        "--train.micro_batch_size", str(o.micro_batch_size),
        "--train.seed", str(t.seed),
        "--ds.param_dtype", "bf16",
        # checkpoints and logs (the launcher renames the HF save to final/, the next stage's start, once the
        # run has finished: a crashed run never leaves a half-written final/)
        "--ckpt.path", str(run_dir / "checkpoints"),
        "--ckpt.output_dir", str(run_dir / INCOMPLETE_FINAL),
        "--ckpt.save_steps", str(t.save_every),
        "--ckpt.max_num", str(t.keep_last),
        # no --ckpt.save_hf: the final HF save to output_dir happens without it; with it every save also
        # writes a full HF copy that --ckpt.max_num never rotates (openrlhf.extra_args can add it back)
    ]
    if t.resume == "auto":
        argv += ["--ckpt.load_enable"]
    if t.tensorboard:
        argv += ["--logger.tensorboard_dir", str(run_dir / "tensorboard")]
    if inputs.eval_dataset:
        argv += ["--eval.dataset", inputs.eval_dataset, "--eval.steps", str(t.eval_every or -1),
                 "--eval.temperature", "0", "--eval.n_samples_per_prompt", "1"]
    if cfg.model.freeze_vision:
        argv += ["--actor.freeze_visual_encoder"]
    if inputs.mm_processor_kwargs:
        argv += ["--lmmr1.mm_processor_kwargs", json.dumps(inputs.mm_processor_kwargs, sort_keys=True)]
    argv += cluster_flags(cfg)
    return argv + list(d.extra_args)


def cluster_flags(cfg: StageConfig) -> list[str]:
    """Section `openrlhf`: nodes, GPUs, vLLM engines, DeepSpeed."""
    d = cfg.openrlhf
    argv = [
        "--actor.num_nodes", str(d.num_nodes), "--actor.num_gpus_per_node", str(d.gpus_per_node),
        "--ref.num_nodes", str(d.num_nodes), "--ref.num_gpus_per_node", str(d.gpus_per_node),
        "--vllm.num_engines", str(d.vllm_num_engines),
        "--vllm.tensor_parallel_size", str(d.vllm_tensor_parallel_size),
        "--vllm.gpu_memory_utilization", str(cfg.rollout.gpu_memory_utilization),
        "--vllm.sync_backend", d.vllm_sync_backend,
        "--ds.zero_stage", str(d.zero_stage),
        "--ds.attn_implementation", d.attn_implementation,
    ]
    for flag, on in (("--train.colocate_all", d.colocate_all), ("--vllm.enable_sleep", d.vllm_enable_sleep),
                     ("--ds.enable_sleep", d.ds_enable_sleep), ("--vllm.enable_prefix_caching", d.enable_prefix_caching),
                     ("--actor.gradient_checkpointing_enable", d.gradient_checkpointing),
                     ("--ds.adam_offload", d.adam_offload), ("--vllm.enforce_eager", d.enforce_eager)):
        if on:
            argv.append(flag)
    return argv


def command_line(argv: list[str]) -> str:
    """The argument list as one shell-quoted line (for logs and docs)."""
    import shlex

    return " ".join(shlex.quote(arg) for arg in argv)
