"""`stage.engine: openrlhf`: a stage on OpenRLHF 0.11.2's PPO-Ray stack with lmmr1's plug-ins.

    python -m lmmr1.stages.fre --config stages/lmmr1_fre_text.yaml stage.engine=openrlhf
    python -m lmmr1.stages.fre --config stages/lmmr1_fre_text.yaml stage.engine=openrlhf --dry-run  # the command
    python -m lmmr1.stages.mgt --config stages/lmmr1_mgt_geo.yaml stage.engine=openrlhf   # from FRE's final/

What `run_openrlhf_stage` does, in order:
    1. inputs: the starting checkpoint, as a prepared model directory when the stage overrides the processor's
       min/max pixels (the same directory the local engine uses); the record files converted to OpenRLHF's
       prompt JSONL (rows with bad fields or images, or prompts too long for the context, rejected and
       counted in <run_dir>/openrlhf/conversion.json, never passed on);
    2. arguments: `stage_to_openrlhf` (lmmr1.distributed.args), parsed and checked by OpenRLHF's own parser
       and rules before Ray starts; written to <run_dir>/openrlhf/command.txt;
    3. Ray: a local one (single node) or the cluster at `openrlhf.ray_address` (multi-node); the reward's
       settings travel to the rollout actors as environment variables;
    4. `train(args)`: OpenRLHF's wiring with lmmr1's classes (lmmr1.distributed.rollout, .trainer): rollout engines that
       reset their encoder caches after every weight broadcast, the trainer with lmmr1's estimators;
    5. <run_dir>/final: the HF checkpoint (model + processor) that the next stage starts from, exactly as
       after the local engine (OpenRLHF writes it to final.incomplete; renamed once complete).
"""

from __future__ import annotations

import json
import os
import random
from contextlib import contextmanager
from pathlib import Path

from lmmr1.config import ConfigError, StageConfig, to_dict
from lmmr1.distributed.args import INCOMPLETE_FINAL, Inputs, command_line, parse_and_validate, stage_to_openrlhf

DISTRIBUTED_DIR = "openrlhf"
"""Subdirectory of the run directory holding the converted data and the command line."""


def reward_file() -> str:
    import lmmr1.rewards.openrlhf_func as module

    return str(Path(module.__file__).resolve())


def agent_file() -> str:
    """lmmr1/distributed/agent_executor.py, located without importing it (it imports OpenRLHF)."""
    return str((Path(__file__).parent / "agent_executor.py").resolve())


def check_supported(cfg: StageConfig) -> None:
    """What the distributed engine refuses, before any work."""
    if cfg.warmup.steps > 0:
        raise ConfigError("warmup.steps > 0: the format warm-up runs only in the local engine; run it as a local "
                          "stage first or set warmup.steps=0 for stage.engine=openrlhf")
    if not cfg.data.train_files and not cfg.synthetic.train_tasks:
        raise ConfigError("no training data: set data.train_files or synthetic.train_tasks")
    if cfg.rollout.max_model_len <= cfg.rollout.max_new_tokens:
        raise ConfigError(f"rollout.max_model_len={cfg.rollout.max_model_len} leaves no room for a prompt next to "
                          f"rollout.max_new_tokens={cfg.rollout.max_new_tokens}")


def episode_envs(files: list[str]) -> set[str]:
    """The envs the records' meta names (agent stages: every record is an episode of one)."""
    envs = set()
    for file in files:
        with open(file, encoding="utf-8") as f:
            for row, line in enumerate(f, 1):
                try:
                    row_meta = json.loads(line).get("meta") or {}
                except (ValueError, AttributeError):
                    continue  # a blank line or not a record: the conversion rejects and counts the latter
                env = row_meta.get("env") if isinstance(row_meta, dict) else None
                if not env:
                    raise ConfigError(f"{file}:{row}: meta.env: missing; openrlhf.agent_executor plays each "
                                      "record as an env episode (data_pipelines.football_tasks / sokoban_tasks)")
                envs.add(env)
    return envs


def check_image_budget(cfg: StageConfig, envs: set[str]) -> None:
    """vLLM refuses a request with more images than `limit_mm_per_prompt`: an episode shows up to
    max_turns x images_per_turn images, all of which stay in its context."""
    from lmmr1.envs import get_env

    for env in sorted(envs):
        try:
            config = get_env(env).config_class(**cfg.openrlhf.env_config.get(env, {}))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"openrlhf.env_config.{env}: {err}") from None
        needed = config.max_turns * config.images_per_turn
        if cfg.openrlhf.max_images_per_prompt < needed:
            raise ConfigError(
                f"openrlhf.max_images_per_prompt={cfg.openrlhf.max_images_per_prompt}: a {env} episode can show "
                f"{needed} images (max_turns {config.max_turns} x {config.images_per_turn} per turn); raise it, "
                f"or lower openrlhf.env_config.{env}.max_turns")


def convert_records(files: list[str], out: Path, processor=None, max_prompt_len: int | None = None,
                    shuffle_seed: int | None = None, limit: int | None = None) -> tuple[int, dict]:
    """Record JSONL files -> one OpenRLHF prompt JSONL at `out`; (rows kept, conversion report per file).
    Rows with a bad image, a bad field or (with `processor`) a prompt over `max_prompt_len` tokens are
    rejected and counted, never passed on. With `shuffle_seed`, the rows are written in a seeded random
    order: OpenRLHF's --data.max_samples keeps the first rows of the file, which must be a random sample
    of the training set (as the local engine's seeded permutation draws), not its first task. `limit` keeps
    the first usable rows only (the held-out set's `data.max_eval_records`, as the local engine)."""
    from data_pipelines.to_openrlhf import convert_records_file

    out.parent.mkdir(parents=True, exist_ok=True)
    reports, rows = {}, []
    for i, file in enumerate(files):
        part = out.with_name(f"{out.stem}-{i}.jsonl")
        report = convert_records_file(file, part, processor=processor, max_prompt_len=max_prompt_len)
        reports[file] = report.to_dict()
        rows += part.read_text(encoding="utf-8").splitlines(keepends=True)
        part.unlink()
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(rows)
    rows = rows[:limit]
    out.with_suffix(".tmp").write_text("".join(rows), encoding="utf-8")
    out.with_suffix(".tmp").rename(out)
    kept = len(rows)
    if kept == 0:
        raise ConfigError(f"data: no usable record in {', '.join(files)}: {json.dumps(reports)}")
    return kept, reports


def prepare_inputs(cfg: StageConfig, run_dir: Path, convert: bool = True) -> Inputs:
    """Model directory and OpenRLHF datasets of the stage. Without `convert` (dry run) nothing is written:
    the datasets are named where they would be, and counted from the record files."""
    from data_pipelines._common import count_lines
    from lmmr1.engine.local import load_processor, prepare_model_dir, resolve_model_path

    model_dir = resolve_model_path(cfg.model.path)
    out = run_dir / DISTRIBUTED_DIR
    train, evals = out / "train.jsonl", out / "eval.jsonl"
    processor = None
    if convert:
        model_dir = prepare_model_dir(model_dir, cfg, run_dir)
        processor = load_processor(model_dir)  # the one OpenRLHF's actors load from the same directory
        budget = prompt_budget(cfg)
        num_prompts, reports = convert_records(cfg.data.train_files, train, processor, budget,
                                               shuffle_seed=cfg.train.seed)
        if cfg.data.eval_files:
            reports.update(convert_records(cfg.data.eval_files, evals, processor, budget,
                                           limit=cfg.data.max_eval_records)[1])
        (out / "conversion.json").write_text(json.dumps(reports, indent=2) + "\n")
    elif cfg.synthetic.train_tasks:
        num_prompts = cfg.synthetic.n_train * len(cfg.synthetic.train_tasks)
    else:
        num_prompts = sum(count_lines(Path(f)) for f in cfg.data.train_files)
    mm_kwargs = None
    if cfg.model.min_pixels is not None or cfg.model.max_pixels is not None:
        processor = processor or load_processor(model_dir)
        size = processor.image_processor.size  # the prepared directory's, as vLLM reads it
        mm_kwargs = {"min_pixels": cfg.model.min_pixels or size["shortest_edge"],
                     "max_pixels": cfg.model.max_pixels or size["longest_edge"]}
    agent = None
    if cfg.openrlhf.agent_executor:
        check_image_budget(cfg, episode_envs(cfg.data.train_files))
        agent = agent_file()
    return Inputs(model=str(model_dir.resolve()), train_dataset=str(train.resolve()), num_prompts=num_prompts,
                  reward_file=reward_file(), agent_file=agent,
                  eval_dataset=str(evals.resolve()) if cfg.data.eval_files or cfg.synthetic.eval_tasks else None,
                  mm_processor_kwargs=mm_kwargs)


def prompt_budget(cfg: StageConfig) -> int:
    """Longest prompt in tokens: `data.max_prompt_len`, and room for a whole response in the context (OpenRLHF
    refuses an image prompt longer than max_len - max_new_tokens instead of truncating it)."""
    return min(cfg.data.max_prompt_len, cfg.rollout.max_model_len - cfg.rollout.max_new_tokens)


def reward_env(cfg: StageConfig) -> dict[str, str]:
    """Environment of the rollout actors: which lmmr1 reward `reward_func` computes, with which settings, and
    the env configs of agent episodes."""
    return {"LMMR1_REWARD": cfg.algorithm.reward, "LMMR1_REWARD_ARGS": json.dumps(cfg.algorithm.reward_args),
            "LMMR1_ENV_CONFIG": json.dumps(cfg.openrlhf.env_config),
            # OpenRLHF's own defaults for its actors (a value set in this environment wins):
            "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "true"),
            "NCCL_DEBUG": os.environ.get("NCCL_DEBUG", "WARN"),
            "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": os.environ.get("RAY_ENABLE_ZERO_COPY_TORCH_TENSORS", "1")}


@contextmanager
def ray_session(address: str, env_vars: dict[str, str]):
    """Ray for one stage: a local Ray (address "") or the cluster at `address`, joined with this stage's
    `env_vars` for its actors, and shut down after the stage. So a second stage of the same process
    (`lmmr1.stages.run_all`) starts with its own reward settings, and no placement group or actor of the
    first is left holding GPUs. A Ray the caller already started is used as it is; its actors' environment
    cannot change, so a different lmmr1 setting there is an error."""
    import ray

    if ray.is_initialized():
        current = dict((ray.get_runtime_context().runtime_env or {}).get("env_vars") or {})
        differing = sorted(k for k, v in env_vars.items() if k.startswith("LMMR1_") and current.get(k) != v)
        if differing:
            raise ConfigError(f"Ray is already running in this process with other {', '.join(differing)} for its "
                              "actors; run each openrlhf stage in its own process, or let lmmr1 start Ray")
        yield
        return
    ray.init(address=address or None, runtime_env={"env_vars": env_vars})
    try:
        yield
    finally:
        ray.shutdown()


def train(args) -> None:
    """OpenRLHF's PPO-Ray wiring (as its `train_ppo_ray.train`) with lmmr1's rollout engines and trainer.

    lmmr1's estimators never need a critic and its rewards are rule-based (a reward_func file or an agent
    executor), so there is no critic and no reward-model group."""
    import ray
    from openrlhf.trainer.ray.launcher import RayActorGroup, ReferenceModelActor
    from openrlhf.trainer.ray.ppo_actor import PolicyModelActor
    from openrlhf.utils import get_strategy
    from ray.util.placement_group import placement_group

    from lmmr1.distributed.rollout import create_rollout_engines
    from lmmr1.distributed.trainer import LmmPPOTrainer

    if args.train.async_enable:
        raise ConfigError("--train.async_enable: lmmr1's openrlhf engine runs OpenRLHF's synchronous trainer")
    if args.critic.model_name_or_path or not args.reward.remote_url:
        raise ConfigError("lmmr1's openrlhf engine needs a rule-based reward (reward_func file or agent) and no critic")
    strategy = get_strategy(args)
    actor_gpus = args.actor.num_nodes * args.actor.num_gpus_per_node
    use_ref = args.algo.kl.init_coef > 0

    # Colocated: one placement group of GPU bundles for the actor, the reference and (colocate_all) vLLM.
    pg = None
    if args.train.colocate_actor_ref or args.train.colocate_all:
        pg = placement_group([{"GPU": 1, "CPU": 1}] * actor_gpus, strategy="PACK")
        ray.get(pg.ready())
    engines = None
    if args.vllm.num_engines:
        if args.train.colocate_all and actor_gpus != args.vllm.num_engines * args.vllm.tensor_parallel_size:
            raise ConfigError(f"openrlhf.colocate_all: actor GPUs ({actor_gpus}) must equal vllm_num_engines x "
                              f"vllm_tensor_parallel_size ({args.vllm.num_engines * args.vllm.tensor_parallel_size})")
        engines = create_rollout_engines(args, pg if args.train.colocate_all else None)

    replicas = args.ds.ring_attn_size * args.ds.tensor_parallel_size
    gpus_per_actor = 0.2 if pg else 1
    actor = RayActorGroup(args.actor.num_nodes, args.actor.num_gpus_per_node, PolicyModelActor, pg=pg,
                          num_gpus_per_actor=gpus_per_actor, duplicate_actors=replicas)
    reference = (RayActorGroup(args.ref.num_nodes, args.ref.num_gpus_per_node, ReferenceModelActor, pg=pg,
                               num_gpus_per_actor=gpus_per_actor, duplicate_actors=replicas) if use_ref else None)

    trainer = LmmPPOTrainer.remote(
        args.actor.model_name_or_path, strategy, actor, None, None, reference, engines,
        do_sample=True, max_len=args.data.max_len, max_new_tokens=args.rollout.max_new_tokens,
        temperature=args.rollout.temperature, top_p=args.rollout.top_p)
    max_steps = ray.get(trainer.get_max_steps.remote())  # sizes the actor's LR schedule
    refs = actor.async_init_model_from_pretrained(strategy, args.actor.model_name_or_path, max_steps, engines)
    if reference is not None:
        refs += reference.async_init_model_from_pretrained(strategy, args.actor.model_name_or_path)
    ray.get(refs)
    ray.get(trainer.fit.remote())
    ray.get(actor.async_save_model())


def run_openrlhf_stage(cfg: StageConfig, run_dir: Path) -> Path:
    """Steps 1-5 of the module docstring (`cfg.model.path` is the resolved starting checkpoint and `cfg.data`
    names record files)."""
    check_supported(cfg)
    inputs = prepare_inputs(cfg, run_dir)
    argv = stage_to_openrlhf(cfg, inputs)
    validated = parse_and_validate(argv)
    for warning in validated.warnings:
        print(f"[{cfg.stage.name}] OpenRLHF: {warning}", flush=True)
    out = run_dir / DISTRIBUTED_DIR
    (out / "command.txt").write_text(f"python -m openrlhf.cli.train_ppo_ray {command_line(argv)}\n")
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    print(f"[{cfg.stage.name}] OpenRLHF arguments checked; command in {out / 'command.txt'}", flush=True)
    with ray_session(cfg.openrlhf.ray_address, reward_env(cfg)):
        train(validated.args)
    publish_final(run_dir)
    return run_dir


def publish_final(run_dir: Path) -> Path:
    """OpenRLHF's final HF save -> `<run_dir>/final`, in one rename once it is complete (model weights and
    processor written), so the next stage never starts from a half-written checkpoint."""
    import shutil

    saved, final = run_dir / INCOMPLETE_FINAL, run_dir / "final"
    missing = [] if (saved / "config.json").is_file() else ["config.json"]
    if not any((saved / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")):
        missing.append("processor_config.json")
    if not any(saved.glob("*.safetensors")):
        missing.append("*.safetensors")
    if missing:
        raise RuntimeError(f"OpenRLHF's final save in {saved} is incomplete (missing: {', '.join(missing)})")
    shutil.rmtree(final, ignore_errors=True)
    saved.rename(final)
    return final


def dry_run_command(cfg: StageConfig, model_path: str) -> str:
    """The checked OpenRLHF command of a stage, without converting data or starting anything (`--dry-run`):
    the datasets are named where the run would write them, their sizes counted from the record files (or
    the synthetic sizes)."""
    import copy

    check_supported(cfg)
    cfg = copy.deepcopy(cfg)
    cfg.model.path = model_path
    run_dir = Path(cfg.train.run_dir)
    inputs = prepare_inputs(cfg, run_dir, convert=False)
    argv = stage_to_openrlhf(cfg, inputs)
    validated = parse_and_validate(argv)
    lines = [f"# OpenRLHF: {warning}" for warning in validated.warnings]
    return "\n".join(lines + [f"python -m openrlhf.cli.train_ppo_ray {command_line(argv)}"])
