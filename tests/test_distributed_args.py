"""Stage configs as OpenRLHF 0.11.2 arguments, parsed and checked by OpenRLHF's own parser and rules."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from lmmr1.config import ConfigError
from lmmr1.stages.common import load_config

STAGES = Path(__file__).resolve().parent.parent / "stages"
PAPER_CONFIGS = sorted(p.name for p in STAGES.glob("*.yaml") if not p.name.startswith("default_"))

FRE_GOLDEN = [
    "--actor.model_name_or_path models/Qwen2.5-VL-3B-Instruct",
    "--data.prompt_dataset runs/lmmr1_fre_text/openrlhf/train.jsonl",
    "--data.input_key messages",
    "--data.label_key label",
    "--data.image_key images",
    "--data.apply_chat_template",
    "--data.max_images_per_prompt 1",
    "--data.max_len 8192",  # --prompt_max_len 4096 + --generate_max_len 4096
    "--data.max_samples 40192",  # 157 x 256: OpenRLHF trains no partial batch
    "--train.num_episodes 2",  # 2 x 157 = 314 rollouts = train.steps
    "--rollout.batch_size 256",
    "--rollout.n_samples_per_prompt 16",
    "--rollout.max_new_tokens 4096",
    "--rollout.temperature 1.0",
    "--rollout.top_p 1.0",
    "--rollout.micro_batch_size 2",
    "--algo.advantage.estimator reinforce_baseline",
    "--lmmr1.estimator reinforce_baseline",
    '--lmmr1.estimator_args {"whiten": false, "whiten_tokens": true}',
    "--lmmr1.group_filter none",
    "--actor.eps_clip_low_high 0.2 0.2",
    "--actor.loss_agg_mode token-mean",
    "--algo.kl.init_coef 0.001",
    "--algo.kl.estimator k1",  # KL in the reward (no --algo.kl.use_loss), as LMM-R1
    "--reward.remote_url lmmr1/rewards/openrlhf_func.py",
    "--actor.adam.lr 4e-07",
    "--actor.adam.betas 0.9 0.95",
    "--actor.adam.weight_decay 0.0",
    "--actor.lr_warmup_ratio 0.03",
    "--actor.min_lr_ratio 0.1",
    "--actor.max_norm 1.0",
    "--train.max_epochs 1",
    "--train.batch_size 256",  # 4096 responses / 16 updates
    "--train.micro_batch_size 2",
    "--train.seed 42",
    "--ds.param_dtype bf16",
    "--ckpt.path runs/lmmr1_fre_text/checkpoints",
    "--ckpt.output_dir runs/lmmr1_fre_text/final.incomplete",  # renamed to final/ once complete
    "--ckpt.save_steps 20",
    "--ckpt.max_num 2",
    "--ckpt.load_enable",
    "--logger.tensorboard_dir runs/lmmr1_fre_text/tensorboard",
    "--actor.freeze_visual_encoder",
    "--actor.num_nodes 1",
    "--actor.num_gpus_per_node 8",
    "--ref.num_nodes 1",
    "--ref.num_gpus_per_node 8",
    "--vllm.num_engines 8",
    "--vllm.tensor_parallel_size 1",
    "--vllm.gpu_memory_utilization 0.5",
    "--vllm.sync_backend gloo",
    "--ds.zero_stage 3",
    "--ds.attn_implementation flash_attention_2",
    "--train.colocate_all",
    "--vllm.enable_sleep",
    "--vllm.enable_prefix_caching",
    "--actor.gradient_checkpointing_enable",
]


def _inputs(**kw):
    from lmmr1.distributed.args import Inputs

    values = dict(model="models/Qwen2.5-VL-3B-Instruct", train_dataset="runs/x/openrlhf/train.jsonl",
                  num_prompts=40315, reward_file="lmmr1/rewards/openrlhf_func.py")
    values.update(kw)
    return Inputs(**values)


def _grouped(argv: list[str]) -> list[str]:
    """Each flag with its values on one string: the golden list's shape."""
    groups: list[list[str]] = []
    for arg in argv:
        if arg.startswith("--"):
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return [" ".join(group) for group in groups]


def test_fre_paper_config_golden_argument_list():
    from lmmr1.distributed.args import stage_to_openrlhf

    cfg = load_config("fre", str(STAGES / "lmmr1_fre_text.yaml"), ["stage.engine=openrlhf"])
    argv = stage_to_openrlhf(cfg, _inputs(train_dataset="runs/lmmr1_fre_text/openrlhf/train.jsonl"))
    assert _grouped(argv) == FRE_GOLDEN


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_every_paper_config_passes_openrlhf_parser_and_checks(openrlhf_cpu, name):
    from lmmr1.distributed.args import parse_and_validate, stage_to_openrlhf

    cfg = load_config("fre", str(STAGES / name), ["stage.engine=openrlhf"])
    agent = "lmmr1/distributed/agent_executor.py" if cfg.openrlhf.agent_executor else None
    validated = parse_and_validate(stage_to_openrlhf(cfg, _inputs(eval_dataset="runs/x/openrlhf/eval.jsonl",
                                                                  agent_file=agent)))
    args = validated.args
    assert validated.warnings == []
    assert args.lmmr1.estimator == cfg.algorithm.estimator
    assert json.loads(args.lmmr1.estimator_args) == cfg.algorithm.estimator_args
    assert args.rollout.n_samples_per_prompt == cfg.rollout.n_samples
    assert args.critic.model_name_or_path is None  # no critic: OpenRLHF's VLM mode forbids one
    if agent:  # OpenRLHF's checks route rewards through the agent; the label is the episode (the row's meta)
        assert (args.train.agent_func_path, args.reward.remote_url, args.data.label_key) == (agent, ["agent"], "meta")
    else:
        assert args.reward.remote_url == ["lmmr1/rewards/openrlhf_func.py"]  # normalised by OpenRLHF's checks
        assert args.data.label_key == "label"
    assert tuple(args.actor.eps_clip_low_high) == (cfg.algorithm.eps_clip_low, cfg.algorithm.eps_clip_high)
    assert args.train.batch_size * cfg.optim.updates_per_step == cfg.rollout.prompts_per_step * cfg.rollout.n_samples
    assert args.actor.freeze_visual_encoder == cfg.model.freeze_vision
    assert args.algo.kl.use_loss == (cfg.algorithm.kl_coef > 0 and cfg.algorithm.kl_mode == "loss")


def test_lmmr1_estimators_pass_under_an_upstream_group_estimator(openrlhf_cpu):
    from lmmr1.distributed.args import parse_and_validate, stage_to_openrlhf

    cfg = load_config("fre", str(STAGES / "ngrpo_fre_text.yaml"), ["stage.engine=openrlhf"])
    args = parse_and_validate(stage_to_openrlhf(cfg, _inputs())).args
    assert (args.algo.advantage.estimator, args.lmmr1.estimator) == ("group_norm", "ngrpo")
    assert args.lmmr1.group_filter == "drop_all_correct"
    assert json.loads(args.lmmr1.estimator_args) == {"r_max": 1.5}
    assert tuple(args.actor.eps_clip_low_high) == (0.16, 0.24)


@pytest.mark.parametrize("overrides, message", [
    # OpenRLHF's own rules, not lmmr1's:
    (["rollout.n_samples=1"], "group_norm requires n_samples_per_prompt > 1"),
    (["openrlhf.extra_args=[--ds.packing_samples]"], "VLM training does not support --packing_samples"),
    (["openrlhf.extra_args=[--vllm.num_enignes, '2']"], "unrecognized arguments: --vllm.num_enignes"),
    (["openrlhf.extra_args=[--ds.param_dtype, fp32]"], "invalid choice: 'fp32'"),
])
def test_openrlhf_rules_reject_with_their_message(openrlhf_cpu, overrides, message):
    from lmmr1.distributed.args import parse_and_validate, stage_to_openrlhf

    cfg = load_config("fre", str(STAGES / "ngrpo_fre_text.yaml"), ["stage.engine=openrlhf", *overrides])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_and_validate(stage_to_openrlhf(cfg, _inputs()))


@pytest.mark.parametrize("overrides, key", [
    (["model.dtype=float32"], "model.dtype=float32"),
    (["algorithm.loss_agg_mode=seq-mean-token-sum-norm"], "algorithm.loss_agg_mode"),
    (["optim.updates_per_step=3"], "optim.updates_per_step=3"),
    (["train.resume=runs/elsewhere"], "train.resume"),
    # 4096 responses / 256 updates = 16 per update, not a multiple of micro-batch 2 x 8 GPUs x 2 nodes
    (["optim.updates_per_step=256", "openrlhf.num_nodes=2"], "multiple of optim.micro_batch_size x GPUs = 2 x 16"),
])
def test_settings_openrlhf_cannot_express_name_the_key(overrides, key):
    from lmmr1.distributed.args import stage_to_openrlhf

    cfg = load_config("fre", str(STAGES / "lmmr1_fre_text.yaml"), ["stage.engine=openrlhf", *overrides])
    with pytest.raises(ConfigError, match=key):
        stage_to_openrlhf(cfg, _inputs())


@pytest.mark.parametrize("steps, P, N, expected", [
    (10, 4, 100, (1, 40)),       # enough prompts: one episode over steps * P of them
    (10, 4, 40, (1, 40)),
    (314, 256, 40315, (2, 40192)),  # LMM-R1 FRE-Text: 2 episodes x 157 full rollouts (157 x 256 = 40192)
    (118, 128, 15000, (2, 7552)),   # MGT-Geo: floor(15000 / 128) = 117 per episode -> 2 episodes x 59
    (10, 4, 15, (4, 12)),        # 3 full batches per episode -> 4 episodes x 3 = 12 rollouts (the fewest >= 10)
])
def test_steps_to_episodes(steps, P, N, expected):
    """OpenRLHF trains each episode's partial last batch too: max_samples is a multiple of P, and the rollouts
    OpenRLHF runs (episodes x ceil(max_samples / P)) are `steps` or the fewest whole episodes above it."""
    from lmmr1.distributed.args import steps_to_episodes

    episodes, max_samples = steps_to_episodes(steps, P, N)
    assert (episodes, max_samples) == expected
    assert max_samples % P == 0 and max_samples <= N
    rollouts = episodes * -(-max_samples // P)  # OpenRLHF's count: ceil per episode
    assert steps <= rollouts < steps + episodes


def test_fewer_prompts_than_a_rollout_batch_is_an_error():
    from lmmr1.distributed.args import steps_to_episodes

    with pytest.raises(ConfigError, match="fewer than rollout.prompts_per_step=4"):
        steps_to_episodes(10, 4, 3)


def test_stage_dry_run_prints_the_checked_command(openrlhf_cpu, tiny_model_dir, tmp_path, capsys):
    from lmmr1.stages.common import main

    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{i}+1?"}], "answer": str(i + 1)})
                               + "\n" for i in range(8)))
    code = main("fre", ["--config", str(STAGES / "ngrpo_fre_text.yaml"), "--dry-run", "stage.engine=openrlhf",
                        f"model.path={tiny_model_dir}", f"data.train_files=[{records}]", "train.steps=2",
                        "rollout.prompts_per_step=4", "openrlhf.gpus_per_node=1", "openrlhf.vllm_num_engines=1",
                        f"train.run_dir={tmp_path / 'run'}"])
    out = capsys.readouterr().out
    assert code == 0
    command = out.strip().splitlines()[-1]
    assert command.startswith("python -m openrlhf.cli.train_ppo_ray --actor.model_name_or_path ")
    assert "--lmmr1.estimator ngrpo" in command and "--data.max_samples 8 --train.num_episodes 1" in command
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_warmup_is_refused_for_the_openrlhf_engine_before_any_work():
    from lmmr1.stages.common import validate

    cfg = load_config("fre", None, ["stage.engine=openrlhf"])  # the embedded default has a format warm-up
    with pytest.raises(ConfigError, match="warmup.steps > 0"):
        validate(cfg, check_paths=False)


def test_reward_func_scores_a_game_through_the_json_label(tiny_model_dir, monkeypatch):
    """Game rewards need the record's meta; to_openrlhf's `label` column carries it to reward_func, called
    as OpenRLHF's agent executor calls it (one sample, decoded prompt+response with special tokens)."""
    from transformers import AutoProcessor

    from data_pipelines.to_openrlhf import record_to_openrlhf
    from lmmr1.data.records import validate_record
    from lmmr1.envs.sokoban import generate_level, solve
    from lmmr1.rewards import openrlhf_func

    level = generate_level(3)
    record = validate_record({"messages": [{"role": "user", "content": "Solve the level."}], "answer": "solved",
                              "task": "game", "meta": {"level": level.to_rows()}})
    row = record_to_openrlhf(record, ".")
    assert json.loads(row["label"]) == {"answer": "solved", "meta": {"level": level.to_rows()}}

    monkeypatch.setenv("LMMR1_REWARD", "sokoban_plan")
    monkeypatch.setenv("LMMR1_REWARD_ARGS", "{}")
    monkeypatch.setattr(openrlhf_func, "_REWARD", None)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    prompt = processor.apply_chat_template([{"role": "user", "content": "Solve the level."}], tokenize=False,
                                           add_generation_prompt=True)
    solved = f"<think>push</think><answer>{', '.join(solve(level))}</answer><|im_end|>"
    out = openrlhf_func.reward_func([prompt + solved, prompt + "no plan<|im_end|>"], [prompt, prompt],
                                    [row["label"], row["label"]])
    assert out["scores"].tolist() == [1.0, 0.0]
    assert out["extra_logs"]["reward_correct"].tolist() == [1.0, 0.0]
    assert out["extra_logs"]["reward_invalid"].tolist() == [0.0, 1.0]
    assert out["rewards"][0] > 1.0 and out["rewards"][1] == 0.0
    monkeypatch.setattr(openrlhf_func, "_REWARD", None)


def test_a_bare_answer_label_is_kept_as_it_is():
    from lmmr1.rewards.openrlhf_func import record_from_label

    assert record_from_label("{1, 2}").answer == "{1, 2}"  # a set answer, not a JSON label
    assert (record_from_label('{"answer": "3", "meta": {"k": 1}}').answer,
            record_from_label('{"answer": "3", "meta": {"k": 1}}').meta) == ("3", {"k": 1})
    assert record_from_label(7).answer == "7"


def test_the_openrlhf_signatures_lmmr1_calls_are_the_pinned_ones(openrlhf_cpu):
    """launch.train and the rollout engines call OpenRLHF's classes positionally: bind those calls against
    the installed signatures, so a changed OpenRLHF fails here and not on a GPU cluster."""
    import inspect

    from openrlhf.trainer.ppo_trainer import PPOTrainer
    from openrlhf.trainer.ray.launcher import RayActorGroup
    from openrlhf.trainer.ray.ppo_actor import PolicyModelActor
    from openrlhf.trainer.ray.vllm_engine import RolloutRayActor

    from lmmr1.distributed.experience_maker import LmmExperienceMaker
    from lmmr1.distributed.rollout import LmmRolloutRayActorImpl
    from lmmr1.distributed.trainer import LmmPPOTrainerImpl

    signature = inspect.signature
    signature(PPOTrainer.__ray_actor_class__.__init__).bind(
        "self", "pretrain", "strategy", "actor", None, None, "reference", ["engine"],
        do_sample=True, max_len=1, max_new_tokens=1, temperature=1.0, top_p=1.0)
    signature(RayActorGroup.__init__).bind("self", 1, 8, PolicyModelActor, pg=None, num_gpus_per_actor=0.2,
                                           duplicate_actors=1)
    signature(PolicyModelActor.__ray_actor_class__.init_model_from_pretrained).bind(
        "self", "strategy", "pretrain", 10, ["engine"])
    signature(RolloutRayActor.__ray_actor_class__.__init__).bind(
        "self", model="m", bundle_indices=None, num_gpus=1, agent_func_path=None, remote_rm_url=["r.py"],
        mm_pad_token_ids=set())
    signature(LmmExperienceMaker.__init__).bind("self", "actor", None, None, "reference", "kl_ctl", "strategy",
                                                "tokenizer")
    assert issubclass(LmmPPOTrainerImpl, PPOTrainer.__ray_actor_class__)
    assert issubclass(LmmRolloutRayActorImpl, RolloutRayActor.__ray_actor_class__)
    # The vLLM engine calls reset_caches makes (AsyncLLM in vLLM 0.29):
    from vllm.v1.engine.async_llm import AsyncLLM

    assert all(inspect.iscoroutinefunction(getattr(AsyncLLM, name))
               for name in ("reset_encoder_cache", "reset_mm_cache", "reset_prefix_cache"))


def _episode_records(tmp_path: Path, n: int = 3) -> Path:
    records = tmp_path / "episodes.jsonl"
    records.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "Play."}], "answer": "",
                                           "task": "game", "meta": {"env": "sokoban", "seed": i}}) + "\n"
                               for i in range(n)))
    return records


def test_agent_stages_check_the_image_budget_of_an_episode(tmp_path):
    from lmmr1.distributed.launch import check_image_budget, episode_envs

    records = _episode_records(tmp_path)
    assert episode_envs([str(records)]) == {"sokoban"}
    cfg = load_config("fre", str(STAGES / "sokoban_interactive.yaml"), ["openrlhf.max_images_per_prompt=8"])
    with pytest.raises(ConfigError, match=r"openrlhf.max_images_per_prompt=8: a sokoban episode can show 20 images "
                                          r"\(max_turns 20 x 1 per turn\)"):
        check_image_budget(cfg, {"sokoban"})
    check_image_budget(load_config("fre", str(STAGES / "sokoban_interactive.yaml"), [
        "openrlhf.max_images_per_prompt=8", "openrlhf.env_config={sokoban: {max_turns: 8}}"]), {"sokoban"})
    with pytest.raises(ConfigError, match="openrlhf.env_config.sokoban"):
        check_image_budget(load_config("fre", str(STAGES / "sokoban_interactive.yaml"), [
            "openrlhf.env_config={sokoban: {max_turn: 8}}"]), {"sokoban"})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "Play."}], "answer": "", "meta": {}}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: meta.env: missing"):
        episode_envs([str(bad)])


def test_agent_stage_dry_run_uses_the_agent_executor(openrlhf_cpu, tiny_model_dir, tmp_path, capsys):
    from lmmr1.stages.common import main

    records = _episode_records(tmp_path, n=8)
    code = main("fre", ["--config", str(STAGES / "sokoban_interactive.yaml"), "--dry-run",
                        f"model.path={tiny_model_dir}", f"data.train_files=[{records}]", "train.steps=2",
                        "rollout.prompts_per_step=4", "optim.updates_per_step=1"])
    command = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0
    assert "/lmmr1/distributed/agent_executor.py" in command and "--data.label_key meta" in command
    assert "--reward.remote_url" not in command


def test_multi_turn_episodes_are_refused_by_the_local_engine():
    from lmmr1.stages.common import validate

    cfg = load_config("fre", str(STAGES / "sokoban_interactive.yaml"), ["stage.engine=local"])
    with pytest.raises(ConfigError, match="openrlhf.agent_executor: multi-turn env episodes run on "
                                          "stage.engine=openrlhf only"):
        validate(cfg, check_paths=False)


def test_final_checkpoint_is_published_only_when_complete(tiny_model_dir, tmp_path):
    import shutil

    from lmmr1.distributed.launch import publish_final
    from lmmr1.stages.common import resolve_init

    saved = tmp_path / "final.incomplete"
    saved.mkdir()
    shutil.copy(tiny_model_dir / "config.json", saved)
    with pytest.raises(RuntimeError, match="incomplete"):
        publish_final(tmp_path)  # weights and processor not written yet (a crash mid-save)
    assert not (tmp_path / "final").exists()
    shutil.rmtree(saved)
    shutil.copytree(tiny_model_dir, saved)
    assert publish_final(tmp_path) == tmp_path / "final" and not saved.exists()
    cfg = load_config("mgt", None, [f"stage.init_from={tmp_path}"])
    assert resolve_init(cfg).model_path == str(tmp_path / "final")  # MGT's run-directory convention


def test_inputs_reject_bad_rows_and_carry_the_image_sizing(tiny_model_dir, tmp_path):
    """What a distributed stage trains on: the records converted for OpenRLHF, with a missing image and a
    prompt longer than the context counted and left out (OpenRLHF would stop the run on the latter), and the
    prepared model directory's pixel bounds as vLLM's mm_processor_kwargs."""
    from PIL import Image

    from lmmr1.distributed.launch import prepare_inputs

    Image.new("RGB", (56, 56), "red").save(tmp_path / "red.png")
    image_turn = [{"type": "image"}, {"type": "text", "text": "Colour?"}]
    rows = [{"messages": [{"role": "user", "content": f"{i} + 1 = ?"}], "answer": str(i + 1)} for i in range(3)]
    rows.append({"messages": [{"role": "user", "content": image_turn}], "images": ["red.png"], "answer": "red"})
    rows.append({"messages": [{"role": "user", "content": image_turn}], "images": ["gone.png"], "answer": "x"})
    rows.append({"messages": [{"role": "user", "content": "many words " * 400}], "answer": "1"})
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = load_config("fre", str(STAGES / "ngrpo_fre_text.yaml"), [
        "stage.engine=openrlhf", f"model.path={tiny_model_dir}", f"data.train_files=[{records}]",
        f"data.eval_files=[{records}]", "data.max_eval_records=3",
        "data.max_prompt_len=4096", "rollout.max_model_len=512", "rollout.max_new_tokens=256",
        "model.min_pixels=3136", "model.max_pixels=50176", f"train.run_dir={tmp_path / 'run'}"])
    inputs = prepare_inputs(cfg, tmp_path / "run")
    converted = [json.loads(line) for line in Path(inputs.train_dataset).read_text().splitlines()]
    assert inputs.num_prompts == len(converted) == 4
    # Written in a seeded random order (train.seed): OpenRLHF's max_samples keeps the file's first rows.
    in_file_order = ["1", "2", "3", "red"]
    random.Random(cfg.train.seed).shuffle(in_file_order)
    assert [json.loads(row["label"])["answer"] for row in converted] == in_file_order
    held_out = [json.loads(line) for line in Path(inputs.eval_dataset).read_text().splitlines()]
    assert [json.loads(row["label"])["answer"] for row in held_out] == ["1", "2", "3"]  # in order, max_eval_records
    (red,) = [row for row in converted if json.loads(row["label"])["answer"] == "red"]
    assert red["images"] == [str((tmp_path / "red.png").resolve())]
    report = json.loads((tmp_path / "run" / "openrlhf" / "conversion.json").read_text())[str(records)]
    assert report["kept"] == 4 and report["rejected"] == {"image_missing": 1, "prompt_too_long": 1}
    assert inputs.mm_processor_kwargs == {"min_pixels": 3136, "max_pixels": 50176}
    assert Path(inputs.model) == (tmp_path / "run" / "prepared_model").resolve()


def test_each_openrlhf_stage_gets_its_own_ray_session():
    """A stage starts Ray with its reward settings for the actors and shuts it down after, so the next stage of
    the same process (run_all) starts a Ray of its own (no placement group of the first left holding GPUs). A
    Ray already running with other lmmr1 settings is an error, not a silent use of the first stage's reward."""
    import ray

    from lmmr1.distributed.launch import ray_session

    @ray.remote(num_cpus=0)
    def actor_reward() -> str | None:
        return os.environ.get("LMMR1_REWARD")

    assert not ray.is_initialized()
    with ray_session("", {"LMMR1_REWARD": "lmm_r1"}):
        assert ray.get(actor_reward.remote()) == "lmm_r1"
        with pytest.raises(ConfigError, match="already running in this process with other LMMR1_REWARD"):
            with ray_session("", {"LMMR1_REWARD": "sokoban_plan"}):
                pass
        with ray_session("", {"LMMR1_REWARD": "lmm_r1"}):  # the same settings: used as it is, left running
            assert ray.get(actor_reward.remote()) == "lmm_r1"
        assert ray.is_initialized()
    assert not ray.is_initialized()
