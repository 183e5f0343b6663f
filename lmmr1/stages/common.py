"""What every stage entry point shares: config loading, validation, and the stage run itself.

A stage, top to bottom (`run_stage`):
    1. the resolved starting checkpoint: `stage.init_from` (a run directory's `final/`, or an explicit
       checkpoint) or `model.path`; printed, so a user sees which one was used;
    2. synthetic data generated into `<run_dir>/data/` on first use (deterministic from `synthetic.seed`);
    3. the format warm-up (`warmup.steps` > 0): SFT on well-formed responses, saved as `<run_dir>/warmup/`;
    4. the engine (`stage.engine`): `local` -> `lmmr1.engine.local.run`, writing metrics, checkpoints and
       `final/` (what the next stage starts from); `openrlhf` -> `lmmr1.distributed.launch.run_openrlhf_stage`
       (OpenRLHF's PPO-Ray on a GPU cluster, the same `final/`);
    5. the report: `report.md` + PNG curves in the run directory.

Everything that can be checked before step 1 is checked by `validate` (unknown keys, registry names,
missing model / dataset / init paths), so a typo never costs a started run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from lmmr1.config import ConfigError, StageConfig, apply_overrides, field_docs, from_dict, to_dict

log = logging.getLogger("lmmr1.stages")

ENGINES = ("local", "openrlhf")
ROLLOUT_BACKENDS = ("vllm", "hf")

# ---------------------------------------------------------------------------------------- embedded defaults
# Used when no --config is given; stages/default_fre.yaml and stages/default_mgt.yaml hold the same values
# with a comment on why each is set (a test keeps the two identical).

_TINY_COMMON = {
    "model": {"path": "tiny", "dtype": "float32"},
    "data": {"max_prompt_len": 1024, "max_eval_records": 64},
    "rollout": {"backend": "vllm", "n_samples": 8, "prompts_per_step": 4, "max_new_tokens": 32,
                "temperature": 1.0, "max_model_len": 1024},
    "algorithm": {"estimator": "group_norm", "group_filter": "none", "reward": "lmm_r1",
                  "eps_clip_low": 0.2, "eps_clip_high": 0.2, "kl_coef": 0.0},
}

DEFAULTS: dict[str, dict] = {
    "fre": {
        "stage": {"name": "fre", "engine": "local", "init_from": ""},
        "synthetic": {"train_tasks": ["larger"], "eval_tasks": ["larger"], "n_train": 512, "n_eval": 64,
                      "seed": 0, "difficulty": "1", "system_prompt": "none"},
        "warmup": {"steps": 200, "batch_size": 16, "lr": 3e-3},
        **_TINY_COMMON,
        "model": {**_TINY_COMMON["model"], "freeze_vision": True},
        "optim": {"lr": 1e-3, "warmup_ratio": 0.0, "min_lr_ratio": 0.1, "updates_per_step": 1,
                  "micro_batch_size": 16},
        "train": {"steps": 200, "seed": 0, "run_dir": "runs/default_fre", "save_every": 50, "eval_every": 25,
                  "tensorboard": False},
    },
    "mgt": {
        "stage": {"name": "mgt", "engine": "local", "init_from": "runs/default_fre"},
        "synthetic": {"train_tasks": ["shapes"], "eval_tasks": ["shapes"], "n_train": 256, "n_eval": 64, "seed": 0,
                      "difficulty": "1", "image_size": 56, "system_prompt": "none"},
        "warmup": {"steps": 120, "batch_size": 16, "lr": 1e-3},
        **_TINY_COMMON,
        "model": {**_TINY_COMMON["model"], "freeze_vision": False},
        "optim": {"lr": 5e-4, "warmup_ratio": 0.0, "min_lr_ratio": 0.1, "updates_per_step": 1,
                  "micro_batch_size": 16},
        "train": {"steps": 200, "seed": 0, "run_dir": "runs/default_mgt", "save_every": 50, "eval_every": 25,
                  "tensorboard": False},
    },
}


# ------------------------------------------------------------------------------------------------ loading


def load_config(stage: str, config_path: str | None, overrides: list[str]) -> StageConfig:
    """Embedded default of `stage` (or the YAML at `config_path`), then `key.sub=value` overrides."""
    import yaml

    if config_path is None:
        data = json.loads(json.dumps(DEFAULTS[stage]))
    else:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"--config {config_path}: no such file")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"--config {config_path}: expected a mapping at the top level")
    data = apply_overrides(data, overrides)
    return from_dict(StageConfig, data)


@dataclass
class Resolved:
    """What validation found: the checkpoint the stage starts from, and how it was chosen."""

    model_path: str
    how: str


def resolve_init(cfg: StageConfig) -> Resolved:
    """The starting checkpoint: `stage.init_from` by run-directory convention (`<dir>/final`) or as an explicit
    checkpoint, else `model.path`. Raises ConfigError naming the key and path when nothing is there."""
    init = cfg.stage.init_from
    if init:
        path = Path(init)
        if (path / "final" / "config.json").is_file():
            return Resolved(str(path / "final"), f"run-directory convention: stage.init_from={init} -> {path / 'final'}")
        if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
            return Resolved(str(path), f"explicit checkpoint: stage.init_from={init}")
        raise ConfigError(
            f"stage.init_from={init}: neither a run directory with a final/ checkpoint ({path / 'final'}) nor an HF "
            "checkpoint directory; run the previous stage first (its train.run_dir), or point at a checkpoint")
    if cfg.model.path == "tiny":
        return Resolved("tiny", "model.path=tiny (lmmr1's tiny random Qwen2.5-VL, built offline)")
    path = Path(cfg.model.path)
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model.path={cfg.model.path}: no HF checkpoint there (expected {path / 'config.json'}); download the "
            "model yourself (nothing is downloaded at run time), e.g. `huggingface-cli download "
            "Qwen/Qwen2.5-VL-3B-Instruct --local-dir <dir>`, and pass model.path=<dir>")
    return Resolved(str(path), f"model.path={cfg.model.path}")


def validate(cfg: StageConfig, check_paths: bool = True) -> Resolved | None:
    """Every check that needs no model load: names against the registries, value ranges, and (with
    `check_paths`) the model, init and dataset paths. Raises ConfigError naming the key or path."""
    from lmmr1.algorithms import ESTIMATORS, FILTERS
    from lmmr1.rewards import RewardConfig
    from lmmr1.rewards.base import REWARDS

    from data_pipelines.synthetic import GENERATORS

    def name_in(key: str, value: str, valid) -> None:
        if value not in valid:
            raise ConfigError(f"{key}={value!r} is not known; valid: {', '.join(sorted(valid))}")

    name_in("stage.engine", cfg.stage.engine, ENGINES)
    name_in("rollout.backend", cfg.rollout.backend, ROLLOUT_BACKENDS)
    name_in("algorithm.estimator", cfg.algorithm.estimator, ESTIMATORS)
    name_in("algorithm.group_filter", cfg.algorithm.group_filter, FILTERS)
    name_in("algorithm.reward", cfg.algorithm.reward, REWARDS)
    name_in("model.dtype", cfg.model.dtype, ("float32", "bfloat16"))
    name_in("algorithm.kl_mode", cfg.algorithm.kl_mode, ("loss", "reward"))
    name_in("algorithm.kl_estimator", cfg.algorithm.kl_estimator, ("k1", "k2", "k3"))
    try:
        ESTIMATORS[cfg.algorithm.estimator].make_config(**cfg.algorithm.estimator_args)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"algorithm.estimator_args={cfg.algorithm.estimator_args}: {err}") from None
    try:
        RewardConfig(**cfg.algorithm.reward_args)
    except TypeError as err:
        raise ConfigError(f"algorithm.reward_args={cfg.algorithm.reward_args}: {err}") from None
    for key in ("train.steps", "rollout.n_samples", "rollout.prompts_per_step", "rollout.max_new_tokens",
                "rollout.hf_batch_sequences", "optim.micro_batch_size", "optim.updates_per_step", "optim.ppo_epochs"):
        section, name = key.split(".")
        if getattr(getattr(cfg, section), name) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(getattr(cfg, section), name)}")
    if cfg.warmup.steps < 0 or cfg.warmup.batch_size < 1:
        raise ConfigError("warmup.steps must be >= 0 and warmup.batch_size >= 1")
    for task in cfg.synthetic.train_tasks + cfg.synthetic.eval_tasks:
        name_in("synthetic.train_tasks / synthetic.eval_tasks", task, GENERATORS)
    if cfg.synthetic.train_tasks and cfg.data.train_files:
        raise ConfigError("set either synthetic.train_tasks (generated data) or data.train_files, not both")
    if cfg.synthetic.eval_tasks and cfg.data.eval_files:
        raise ConfigError("set either synthetic.eval_tasks (generated data) or data.eval_files, not both")
    if not cfg.synthetic.train_tasks and not cfg.data.train_files:
        raise ConfigError("no training data: set data.train_files (record JSONL) or synthetic.train_tasks")
    for spec in cfg.eval.suites:
        from eval.suites import load_suite

        try:
            load_suite(spec, cfg.eval.overrides)
        except (ConfigError, FileNotFoundError) as err:
            raise ConfigError(f"eval.suites: {err}") from None
    if cfg.stage.engine == "openrlhf":
        from lmmr1.distributed.launch import check_supported

        check_supported(cfg)
    elif cfg.openrlhf.agent_executor:
        raise ConfigError("openrlhf.agent_executor: multi-turn env episodes run on stage.engine=openrlhf only (the "
                          "local engine trains single-turn records, e.g. reward sokoban_plan)")
    if not check_paths:
        return None
    resolved = resolve_init(cfg)
    for key, files in (("data.train_files", cfg.data.train_files), ("data.eval_files", cfg.data.eval_files)):
        for file in files:
            if not Path(file).is_file():
                raise ConfigError(
                    f"{key}: {file} does not exist; convert the dataset first (data_pipelines/, e.g. "
                    "`python -m data_pipelines.lmmr1_messages`), or fix the path")
    return resolved


# ---------------------------------------------------------------------------------------------- the stage


def prepare_synthetic(cfg: StageConfig, run_dir: Path) -> None:
    """Generate the synthetic train / held-out sets into run_dir/data (skipped when already there: generation is
    deterministic, so a resumed stage sees the same files) and point data.* at them."""
    from data_pipelines._common import write_jsonl
    from data_pipelines.synthetic import generate

    s = cfg.synthetic
    data_dir = run_dir / "data"
    for split, tasks, n, seed, field_name in (("train", s.train_tasks, s.n_train, s.seed, "train_files"),
                                               ("eval", s.eval_tasks, s.n_eval, s.seed + 1000, "eval_files")):
        if not tasks:
            continue
        out = data_dir / f"{split}.jsonl"
        if not out.is_file():
            records = []
            for task in tasks:
                records += generate(task, n, seed, data_dir / f"{split}-{task}.jsonl", difficulty=s.difficulty,
                                    unanswerable_fraction=s.unanswerable_fraction, image_size=s.image_size,
                                    system=s.system_prompt)
            tmp = out.with_suffix(".tmp")
            write_jsonl(tmp, records)
            tmp.rename(out)
        setattr(cfg.data, field_name, [str(out)])


def run_stage(cfg: StageConfig, resolved: Resolved | None = None) -> Path:
    """Steps 1-5 of the module docstring; returns the run directory."""
    import copy

    resolved = resolved or validate(cfg)
    requested = to_dict(cfg)
    cfg = copy.deepcopy(cfg)
    run_dir = Path(cfg.train.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "stage_config.json").write_text(json.dumps(requested, indent=2) + "\n")

    # 1. Starting checkpoint.
    print(f"[{cfg.stage.name}] starting checkpoint: {resolved.how}", flush=True)
    cfg.model.path = resolved.model_path
    summary: dict = {"stage": cfg.stage.name, "init": resolved.how, "init_path": resolved.model_path}

    # 2. Data.
    prepare_synthetic(cfg, run_dir)

    # 3. Format warm-up (once: a resumed stage reuses run_dir/warmup).
    if cfg.warmup.steps > 0:
        from lmmr1.engine.local import resolve_model_path
        from lmmr1.engine.warmup import format_warmup

        base = resolve_model_path(cfg.model.path)
        warm_dir = run_dir / "warmup"
        if cfg.data.eval_files:
            summary["eval_before_warmup"] = evaluate_checkpoint(base, cfg.data.eval_files, cfg)
        if not (warm_dir / "config.json").is_file():
            summary["warmup"] = format_warmup(
                base, cfg.data.train_files, warm_dir, steps=cfg.warmup.steps, batch_size=cfg.warmup.batch_size,
                lr=cfg.warmup.lr, seed=cfg.train.seed, freeze_vision=cfg.model.freeze_vision,
                max_prompt_len=cfg.data.max_prompt_len, allow_remote_images=cfg.data.allow_remote_images)
        print(f"[{cfg.stage.name}] format warm-up: {cfg.warmup.steps} SFT steps -> {warm_dir}", flush=True)
        cfg.model.path = str(warm_dir)

    # 4. The engine.
    if cfg.stage.engine == "openrlhf":
        from lmmr1.distributed.launch import run_openrlhf_stage

        run_dir = run_openrlhf_stage(cfg, run_dir)
    else:
        from lmmr1.engine import local

        run_dir = local.run(cfg)
    summary["final_checkpoint"] = str((run_dir / "final").resolve())

    # 5. The stage's eval suites on final/ (the eval harness, as `python -m eval.run --model <run_dir>`).
    if cfg.eval.suites:
        summary["eval_suites"] = run_eval_suites(cfg, run_dir)
    (run_dir / "stage_summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    # 6. The report (from metrics.jsonl; the openrlhf engine logs to TensorBoard instead).
    if cfg.stage.report and cfg.stage.engine == "local":
        from lmmr1.stages.report import write_report

        report = write_report(run_dir, summary)
        print(f"[{cfg.stage.name}] report: {report}", flush=True)
    print(f"[{cfg.stage.name}] final checkpoint (the next stage's stage.init_from={run_dir}): {run_dir / 'final'}",
          flush=True)
    return run_dir


def run_eval_suites(cfg: StageConfig, run_dir: Path) -> dict[str, dict]:
    """Run `eval.suites` on `run_dir/final` with one rollout engine; {suite: {"summary": ..., "report": path}}."""
    import gc

    from eval.run import build_backend, resolve_model, run_suite
    from eval.suites import load_suite

    gc.collect()  # the training engine (and its vLLM memory) is gone before the eval engine starts
    checkpoint, base, _ = resolve_model(str(run_dir))
    suites = [load_suite(spec, cfg.eval.overrides, base_config=base) for spec in cfg.eval.suites]
    backend, processor = build_backend(checkpoint, suites[0].config)
    results = {}
    for suite in suites:
        out_dir = run_dir / "eval" / suite.name
        result = run_suite(suite, checkpoint, out_dir, backend=backend, processor=processor)
        results[suite.name] = {"summary": result["summary"], "report": str(out_dir)}
        print(f"[{cfg.stage.name}] eval suite {suite.name}: {out_dir}", flush=True)
    return results


def evaluate_checkpoint(model_dir, eval_files: list[str], cfg: StageConfig) -> dict[str, float]:
    """Greedy held-out accuracy of an HF checkpoint on `eval_files`, with HF generate (no vLLM start), scored by
    the stage's reward exactly as the engine's eval (`lmmr1.engine.local.evaluate`)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from lmmr1.data.images import ImageConfig
    from lmmr1.engine import local
    from lmmr1.engine.data import load_eval_prompts
    from lmmr1.rewards import RewardConfig, get_reward
    from lmmr1.rollout import get_rollout_backend

    model_dir = local.resolve_model_path(str(model_dir))
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    image_config = ImageConfig.from_processor(processor, allow_remote=cfg.data.allow_remote_images)
    prompts, skipped = load_eval_prompts(eval_files, processor, image_config, cfg.data.max_prompt_len,
                                         cfg.data.max_eval_records)
    backend = get_rollout_backend("hf")(model, processor)
    reward_fn = get_reward(cfg.algorithm.reward, RewardConfig(**cfg.algorithm.reward_args))
    return local.evaluate(backend, prompts, reward_fn, cfg, skipped)


# -------------------------------------------------------------------------------------------------- the CLI


def help_epilog() -> str:
    """Every config field with its documentation (from the dataclass field docstrings)."""
    lines = ["config fields (set in the YAML, or override with key.sub=value; [class default]):", ""]
    defaults = to_dict(StageConfig())
    for key, doc in field_docs(StageConfig).items():
        section, _, name = key.partition(".")
        lines.append(f"  {key}  [{json.dumps(defaults[section][name])}]")
        lines += textwrap.wrap(doc or "(undocumented)", width=100, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def build_parser(stage: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m lmmr1.stages.{stage}",
        description=f"Run the {stage.upper()} stage of the LMM-R1 recipe. Without --config: the embedded default "
                    f"(stages/default_{stage}.yaml: the tiny Qwen2.5-VL on synthetic data, CPU-sized).",
        epilog=help_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="stage YAML (stages/*.yaml); default: the embedded default")
    parser.add_argument("--dry-run", action="store_true", help="validate the config, print it resolved, and stop")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    return parser


def main(stage: str, argv: list[str] | None = None) -> int:
    """`python -m lmmr1.stages.<stage>`: parse, validate everything, then run."""
    args = build_parser(stage).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(stage, args.config, args.overrides)
        resolved = validate(cfg)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        print(f"[{cfg.stage.name}] starting checkpoint: {resolved.how}")
        if cfg.stage.engine == "openrlhf":
            from lmmr1.distributed.launch import dry_run_command

            try:
                print(dry_run_command(cfg, resolved.model_path))
            except ConfigError as err:
                print(f"config error: {err}", file=sys.stderr)
                return 2
        return 0
    run_stage(cfg, resolved)
    return 0
