"""The single-device engine on the tiny Qwen2.5-VL: both rollout backends, image prompts, weight sync,
bad records, a non-finite loss, NGRPO vs GRPO on an all-wrong batch, and a SIGKILL + resume that continues
exactly as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from lmmr1.config import RunConfig, from_dict
from lmmr1.engine import local
from lmmr1.engine.checkpoint import list_checkpoints


def write_dataset(folder: Path, n: int = 16, answer: str | None = None) -> Path:
    """Arithmetic records, every third with an image; plus one missing image, one corrupt image and one
    malformed row in the middle (each must be skipped and counted, never stop the run)."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / "red.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    lines = []
    for i in range(n):
        a, b = i % 7, (3 * i) % 5
        text = {"type": "text", "text": f"What is {a} + {b}?"}
        content, images = [text], []
        if i % 3 == 0:
            content, images = [{"type": "image"}, text], ["red.png"]
        lines.append(json.dumps({"messages": [{"role": "user", "content": content}], "images": images,
                                 "answer": answer or str(a + b), "task": "math", "source": "test"}))
    bad_image = lambda ref: json.dumps({"messages": [{"role": "user", "content": [{"type": "image"}, {
        "type": "text", "text": "How many?"}]}], "images": [ref], "answer": "1"})
    lines[4:4] = [bad_image("missing.png"), bad_image("corrupt.png"), "{not json"]
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_config(tmp_path: Path, dataset: Path, backend: str, **sections) -> RunConfig:
    base = {
        "data": {"train_files": [str(dataset)], "eval_files": [str(dataset)], "max_eval_records": 4},
        "rollout": {"backend": backend, "n_samples": 4, "prompts_per_step": 2, "max_new_tokens": 12},
        "algorithm": {"estimator": "group_norm"},
        "optim": {"micro_batch_size": 4, "updates_per_step": 2, "lr": 1e-3},
        "train": {"steps": 2, "run_dir": str(tmp_path / "run"), "save_every": 1, "progress": False,
                  "tensorboard": False},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return from_dict(RunConfig, base)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def shared_vllm_backend(tiny_vllm, tiny_model_dir):
    """The session's vLLM engine as a rollout backend; afterwards it gets the checkpoint's weights back."""
    from transformers import AutoModelForImageTextToText

    from lmmr1.rollout import get_rollout_backend

    backend = get_rollout_backend("vllm")(llm=tiny_vllm)
    yield backend
    backend.push_weights(AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32))


def test_vllm_engine_trains_with_image_prompts(tmp_path, shared_vllm_backend):
    data = write_dataset(tmp_path / "data", n=5)  # 6 prompts over 3 steps visit every row
    cfg = make_config(tmp_path, data, "vllm", algorithm={"estimator": "ngrpo", "kl_coef": 0.01},
                      model={"freeze_vision": False}, train={"steps": 3, "save_every": 2})
    run_dir = local.run(cfg, backend=shared_vllm_backend)

    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2, 3]  # eval before training, then one line per step
    for r in rows[1:]:
        # After every weight push, vLLM's log-probs equal the trainer's (vision tower trained too).
        assert r["rollout/logprob_gap_max"] < 1e-3
        assert r["train/updates"] == 2 and r["train/nonfinite_step"] == 0
    assert shared_vllm_backend.stats["weight_pushes"] >= 3
    # Bad records in the middle were skipped and counted; the run went on.
    last = rows[-1]
    assert last["data/skipped_image_missing"] >= 1 and last["data/skipped_malformed_row"] == 1
    assert last["data/skipped_image_corrupt"] >= 1, sorted(k for k in last if k.startswith("data/"))
    assert "eval/accuracy" in rows[0] and "eval/accuracy" in last
    # Checkpoints: step 2 (save_every) and 3 (last), HF format, and the final model for the next stage.
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_000002", "step_000003"]
    for name in ("config.json", "versions.json"):
        assert (run_dir / name).is_file()
    from transformers import AutoModelForImageTextToText, AutoProcessor

    AutoProcessor.from_pretrained(run_dir / "final")
    trained = AutoModelForImageTextToText.from_pretrained(run_dir / "final", dtype=torch.float32)
    original = AutoModelForImageTextToText.from_pretrained(cfg.model.path if cfg.model.path != "tiny" else
                                                           local.resolve_model_path("tiny"), dtype=torch.float32)
    changed = [n for n, p in trained.state_dict().items() if not torch.equal(p, original.state_dict()[n])]
    assert any("visual" in n for n in changed) and any("language_model" in n for n in changed)


def test_an_unusable_record_is_counted_once_over_epochs_and_a_resume(tmp_path, tiny_model_dir):
    """Three passes over a dataset with a missing and a corrupt image: each is counted once, not per visit;
    the set of unusable rows travels in the data state, so a resumed stream does not count them again."""
    from transformers import AutoProcessor

    from lmmr1.data.images import ImageConfig
    from lmmr1.engine.data import PromptSource

    data = write_dataset(tmp_path / "data", n=6)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    source = PromptSource([str(data)], processor, ImageConfig.from_processor(processor), 4096, seed=0)
    assert len(source.rows) == 8  # 6 good rows + 2 bad images (the malformed row never became a row)
    source.take(6 * 3)
    assert source.epoch >= 2
    assert source.metrics() == {"data/skipped_image_corrupt": 1.0, "data/skipped_image_missing": 1.0,
                                "data/skipped_malformed_row": 1.0}
    resumed = PromptSource([str(data)], processor, ImageConfig.from_processor(processor), 4096, seed=0)
    resumed.load_state(source.state())
    resumed.take(6 * 2)
    assert resumed.metrics() == source.metrics()


def test_hf_engine_freezes_vision_tower(tmp_path):
    data = write_dataset(tmp_path / "data")
    # NGRPO: a gradient even when the untrained model gets every answer wrong (see the next test).
    run_dir = local.run(make_config(tmp_path, data, "hf", algorithm={"estimator": "ngrpo"}, train={"steps": 1}))
    from transformers import AutoModelForImageTextToText

    trained = AutoModelForImageTextToText.from_pretrained(run_dir / "final", dtype=torch.float32)
    original = AutoModelForImageTextToText.from_pretrained(local.resolve_model_path("tiny"), dtype=torch.float32)
    changed = [n for n, p in trained.state_dict().items() if not torch.equal(p, original.state_dict()[n])]
    assert changed and not any("visual" in n for n in changed)  # FRE default: the vision tower is frozen
    (row,) = [r for r in read_metrics(run_dir) if r["step"] == 1]
    assert row["rollout/logprob_gap_max"] < 1e-4  # HF rollout: the same module, the same numbers


def test_ngrpo_learns_from_all_wrong_groups_grpo_does_not(tmp_path, caplog):
    """Every answer is unreachable, so every group is all-wrong (reward 0). GRPO's advantages are 0: no
    gradient. NGRPO's virtual max-reward sample makes them -1/sqrt(G+1): a real gradient, pushing every
    response down, which the engine logs (group composition) and warns about (NGRPO only)."""
    data = write_dataset(tmp_path / "data", answer="unreachable-answer-xyz")
    norms, warned = {}, {}
    for estimator in ("group_norm", "ngrpo"):
        cfg = make_config(tmp_path / estimator, data, "hf", algorithm={"estimator": estimator},
                          data={"eval_files": []}, train={"steps": 1, "save_every": 5})
        caplog.clear()
        (row,) = read_metrics(local.run(cfg))
        assert row["reward/mean"] == 0.0
        assert (row["reward/groups_none_correct_frac"], row["reward/groups_mixed_frac"],
                row["reward/groups_all_correct_frac"]) == (1.0, 0.0, 0.0)
        norms[estimator] = row["train/grad_norm"]
        warned[estimator] = "no group has a correct response, so NGRPO" in caplog.text
    assert norms["group_norm"] == 0.0
    assert norms["ngrpo"] > 1e-3
    assert warned == {"group_norm": False, "ngrpo": True}


@pytest.mark.parametrize("bad_mini_batch", [0, 1])
def test_nonfinite_loss_stops_the_step_without_checkpoint(tmp_path, monkeypatch, bad_mini_batch):
    """Fault injection: the loss of one of step 2's two mini-batches is made NaN (as an overflow would). The
    step stops there: that mini-batch's gradient never reaches the optimizer, no later one runs, the finite
    update before it stands; reported, not checkpointed; step 3 runs normally."""
    real_policy_loss = local.policy_loss
    calls = {"step": 0, "step_2_losses": 0}
    real_rollout_metrics = local.rollout_metrics

    def counting_rollout_metrics(*args, **kwargs):
        calls["step"] += 1
        return real_rollout_metrics(*args, **kwargs)

    def faulty_policy_loss(*args, **kwargs):
        loss, stats = real_policy_loss(*args, **kwargs)
        if calls["step"] != 1:
            return loss, stats
        calls["step_2_losses"] += 1  # one micro-batch per mini-batch here (8 samples, 2 updates, micro 4)
        return (loss * float("nan"), stats) if calls["step_2_losses"] == bad_mini_batch + 1 else (loss, stats)

    # ppo_update runs before rollout_metrics in a step: calls["step"] == 1 during step 2's update.
    monkeypatch.setattr(local, "policy_loss", faulty_policy_loss)
    monkeypatch.setattr(local, "rollout_metrics", counting_rollout_metrics)
    data = write_dataset(tmp_path / "data")
    run_dir = local.run(make_config(tmp_path, data, "hf", data={"eval_files": []}, train={"steps": 3}))
    rows = {r["step"]: r for r in read_metrics(run_dir)}
    assert calls["step_2_losses"] == bad_mini_batch + 1  # no mini-batch after the bad one
    assert rows[1]["train/nonfinite_step"] == 0 and rows[3]["train/nonfinite_step"] == 0
    assert rows[2]["train/nonfinite_step"] == 1 and rows[2]["train/updates"] == bad_mini_batch
    assert rows[3]["train/updates"] == 2 and "train/lr" in rows[2] and "rollout/logprob_gap_max" in rows[2]
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_000001", "step_000003"]


def test_loss_metrics_do_not_depend_on_the_micro_batch_size(tmp_path):
    """pg_loss / entropy are aggregates over a mini-batch (global token counts): the same rollout trained in
    micro-batches of 8 or of 1 reports the same values (a sum of 8 shares, not their mean)."""
    data = write_dataset(tmp_path / "data")
    rows = {}
    for micro in (8, 1):
        cfg = make_config(tmp_path / str(micro), data, "hf", data={"eval_files": []},
                          algorithm={"entropy_coef": 1e-3}, train={"steps": 1, "save_every": 5},
                          optim={"micro_batch_size": micro, "updates_per_step": 1})
        (rows[micro],) = read_metrics(local.run(cfg))
    assert rows[8]["train/trained_sequences"] == rows[1]["train/trained_sequences"] == 8
    assert rows[8]["train/entropy"] > 1.0  # ~log(vocab) for the random tiny model
    for key in ("train/entropy", "train/pg_loss", "train/clip_frac", "train/approx_kl"):
        assert rows[1][key] == pytest.approx(rows[8][key], rel=1e-4, abs=1e-6), key


def test_lmm_r1_advantage_path_runs_in_the_engine(tmp_path, monkeypatch):
    """LMM-R1's stage setting (reinforce_baseline with whiten_tokens, k1 KL in the reward) through the loop: the
    trained token advantages are whitened over the step's tokens (mean 0, variance 1 over every token)."""
    seen = []
    real = local.response_token_advantages

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(torch.cat(out))
        return out

    monkeypatch.setattr(local, "response_token_advantages", spy)
    from lmmr1.rewards.base import RewardResult

    def by_length(reward_fn, texts, records):  # rewards that differ within groups (the random model earns none)
        return [RewardResult(float(len(t) % 3), {}, "correct" if len(t) % 3 else "wrong") for t in texts]

    monkeypatch.setattr(local, "score_batch", by_length)
    data = write_dataset(tmp_path / "data")
    cfg = make_config(tmp_path, data, "hf", data={"eval_files": []}, train={"steps": 1, "save_every": 5},
                      algorithm={"estimator": "reinforce_baseline", "kl_coef": 0.01, "kl_mode": "reward",
                                 "kl_estimator": "k1",
                                 "estimator_args": {"whiten": False, "whiten_tokens": True}})
    (row,) = read_metrics(local.run(cfg))
    assert row["train/nonfinite_step"] == 0 and row["train/updates"] == 2
    (tokens,) = seen
    assert abs(float(tokens.mean())) < 1e-5 and abs(float(tokens.var(unbiased=False)) - 1) < 1e-3


def test_lr_schedule_follows_the_steps_when_updates_are_skipped(tmp_path):
    """Every group all-wrong and dropped (drop_homogeneous): no update is taken, yet after 2 steps the schedule
    stands where 2 steps x 2 updates put it (the cosine does not fall behind the run)."""
    from lmmr1.engine.checkpoint import load_trainer_state

    data = write_dataset(tmp_path / "data", answer="unreachable-answer-xyz")
    cfg = make_config(tmp_path, data, "hf", data={"eval_files": []}, algorithm={"group_filter": "drop_homogeneous"},
                      train={"steps": 2, "save_every": 2}, optim={"warmup_ratio": 0.5})
    rows = read_metrics(local.run(cfg))
    assert [r["train/updates"] for r in rows] == [0.0, 0.0]
    # 4 updates in all, warm-up over the first 2: lr(0) = lr / 3, lr(2) = lr (the cosine's start).
    assert [r["train/lr"] for r in rows] == pytest.approx([1e-3 / 3, 1e-3])
    state = load_trainer_state(list_checkpoints(Path(cfg.train.run_dir))[-1])
    assert state["scheduler"]["last_epoch"] == 4


def test_tensorboard_forgets_the_steps_a_resume_replays(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lmmr1.engine.logging import MetricsLogger

    logger = MetricsLogger(tmp_path)
    for step in (1, 2, 3):
        logger.log(step, {"train/x": float(step)})
    logger.close()
    logger = MetricsLogger(tmp_path)  # the resumed run: its checkpoint is step 1
    logger.truncate_after(1)
    for step in (2, 3):
        logger.log(step, {"train/x": 10.0 * step})
    logger.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/x")] == [(1, 1.0), (2, 20.0), (3, 30.0)]
    assert [json.loads(line)["train/x"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        1.0, 20.0, 30.0]


RESUME_SCRIPT = """
import json, sys
from lmmr1.config import RunConfig, from_dict
from lmmr1.engine.local import run
run(from_dict(RunConfig, json.loads(sys.argv[1])))
"""


def _launch(cfg: RunConfig) -> subprocess.Popen:
    from lmmr1.config import to_dict

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, json.dumps(to_dict(cfg))], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/")}


def test_sigkill_mid_step_then_resume_matches_uninterrupted_run(tmp_path):
    data = write_dataset(tmp_path / "data", n=24)
    steps = {"steps": 5, "save_every": 1}
    # NGRPO: the untrained model's all-wrong groups still move the weights, so the comparison covers the
    # optimizer and scheduler state, not just the data order and sampling RNG.
    same = dict(data={"eval_files": []}, train=steps, algorithm={"estimator": "ngrpo"})
    reference_cfg = make_config(tmp_path / "a", data, "hf", **same)
    killed_cfg = make_config(tmp_path / "b", data, "hf", **same)

    reference = _launch(reference_cfg)
    victim = _launch(killed_cfg)
    victim_dir = Path(killed_cfg.train.run_dir)
    deadline = time.time() + 240
    while not (victim_dir / "checkpoints" / "step_000002" / "COMPLETE").exists():
        assert victim.poll() is None and time.time() < deadline, "the run ended or hung before step 2"
        time.sleep(0.05)
    time.sleep(0.05)  # now inside step 3 (or, on a fast idle machine, a step or two later)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert reference.wait(timeout=300) == 0
    saved = [p.name for p in list_checkpoints(victim_dir)]
    # Killed before the end, with a complete checkpoint to resume from (which one depends on the machine's speed:
    # keep_last=2 may already have removed step 2).
    assert saved and "step_000005" not in saved, saved

    resumed = _launch(killed_cfg)  # resume=auto picks the latest complete checkpoint
    assert resumed.wait(timeout=300) == 0

    expected = {r["step"]: _comparable(r) for r in read_metrics(Path(reference_cfg.train.run_dir))}
    got = {r["step"]: _comparable(r) for r in read_metrics(victim_dir)}
    assert sorted(got) == [1, 2, 3, 4, 5]  # no duplicated or missing step lines
    assert all(expected[step]["train/grad_norm"] > 0 for step in expected)
    for step in range(1, 6):
        assert got[step].keys() == expected[step].keys()
        for key, value in expected[step].items():
            assert got[step][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, key)


def test_kl_as_reward_penalty_runs_and_leaves_no_kl_loss(tmp_path):
    """kl_mode=reward (OpenRLHF / LMM-R1): the KL enters each token's reward, not the loss."""
    data = write_dataset(tmp_path / "data")
    cfg = make_config(tmp_path, data, "hf", data={"eval_files": []}, train={"steps": 2, "save_every": 5},
                      algorithm={"estimator": "ngrpo", "kl_coef": 0.5, "kl_mode": "reward", "kl_estimator": "k1"})
    rows = read_metrics(local.run(cfg))
    assert rows[1]["train/kl_loss"] == 0.0 and rows[1]["train/grad_norm"] > 0
    assert all(r["train/nonfinite_step"] == 0 for r in rows)


def test_token_advantages_with_kl_in_the_reward():
    """A_t = A - kl_coef * sum_{t' >= t} KL_t' (k1: KL_t = log pi_old - log pi_ref), worked by hand:
    A = 1, kl_coef = 0.5, KL = [0.2, -0.4, 0.6] -> tails [0.4, 0.2, 0.6] -> [0.8, 0.9, 0.7]."""
    from lmmr1.algorithms import kl_estimate, kl_penalized_advantages

    old, ref = torch.tensor([[0.2, -0.4, 0.6]]), torch.zeros(1, 3)
    kl = kl_estimate(old, ref, "k1")
    got = kl_penalized_advantages(torch.tensor([1.0]), kl, torch.ones(1, 3), 0.5)
    assert torch.allclose(got, torch.tensor([[0.8, 0.9, 0.7]]))


def test_bfloat16_training_on_cpu(tmp_path):
    """model.dtype=bfloat16: the policy, its rollouts and the trainer's forward in bf16 (measured gap ~2e-3);
    the optimizer updates fp32 master weights, saved in the checkpoint, so a resumed run ends with the same
    master weights as an uninterrupted one. At lr 1e-5 on the tiny model's ~0.02 weights (bf16 spacing
    ~1e-4) a bf16 AdamW would lose nearly every update; the master copy keeps them."""
    from lmmr1.engine.checkpoint import load_trainer_state

    data = write_dataset(tmp_path / "data")
    sections = dict(model={"dtype": "bfloat16"}, algorithm={"estimator": "ngrpo"}, data={"eval_files": []},
                    optim={"lr": 1e-5, "warmup_ratio": 0.0, "min_lr_ratio": 1.0})  # constant LR: 2 + 1 steps = 3
    cfg = make_config(tmp_path / "straight", data, "hf", train={"steps": 3, "save_every": 1}, **sections)
    rows = read_metrics(local.run(cfg))
    assert all(r["train/nonfinite_step"] == 0 and r["train/grad_norm"] > 0 for r in rows)
    assert max(r["rollout/logprob_gap_max"] for r in rows) < 2e-2
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(Path(cfg.train.run_dir) / "final").text_config.dtype in ("bfloat16", torch.bfloat16)

    straight = load_trainer_state(Path(cfg.train.run_dir) / "checkpoints" / "step_000003")["master_weights"]
    initial = local.master_weights_for(local.load_policy(local.resolve_model_path("tiny"), cfg)).params
    assert all(m.dtype == torch.float32 for m in straight)
    moved = sum(int((m != w).sum()) for m, w in zip(straight, initial)) / sum(m.numel() for m in straight)
    assert moved > 0.5, moved  # the fp32 copy moved; each update (~1e-5) is below the bf16 weights' spacing

    resumed_cfg = make_config(tmp_path / "resumed", data, "hf", train={"steps": 2, "save_every": 1}, **sections)
    local.run(resumed_cfg)
    resumed_cfg = make_config(tmp_path / "resumed", data, "hf", train={"steps": 3, "save_every": 1}, **sections)
    local.run(resumed_cfg)
    resumed = load_trainer_state(Path(resumed_cfg.train.run_dir) / "checkpoints" / "step_000003")["master_weights"]
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))


def test_pixel_overrides_prepare_a_model_dir_both_engines_load(tmp_path):
    """model.min_pixels / max_pixels: a prepared copy whose processor carries them; the source is untouched."""
    from transformers import AutoProcessor

    source = local.resolve_model_path("tiny")
    cfg = from_dict(RunConfig, {"model": {"min_pixels": 8 * 28 * 28, "max_pixels": 64 * 28 * 28}})
    prepared = local.prepare_model_dir(source, cfg, tmp_path)
    assert prepared == tmp_path / "prepared_model"
    assert AutoProcessor.from_pretrained(prepared).image_processor.size == {
        "shortest_edge": 8 * 28 * 28, "longest_edge": 64 * 28 * 28}
    assert AutoProcessor.from_pretrained(source).image_processor.size == {
        "shortest_edge": 4 * 28 * 28, "longest_edge": 256 * 28 * 28}
    # The weights are the source's (hard-linked where the filesystem allows, else copied).
    assert (prepared / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
