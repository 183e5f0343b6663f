"""A test of learning, not of plumbing: on a toy task where the right answer is reachable, RL raises the
mean reward and the accuracy; with the learning rate at 0 (the same loop, nothing learned) it does not.

Toy task: after a short format warm-up on synthetic arithmetic (varied answers), every RL question asks for
"the secret number", whose gold is 2. The warmed-up tiny model writes the LMM-R1 format part of the time and
says "2" now and then: both are reachable, and the lmm_r1 reward (0.5 x strict format + accuracy) pays for
them. Measured on this CPU (seed 0, HF rollouts): mean reward 0.29 -> 0.73 and accuracy 0.08 -> 0.31 over
30 GRPO steps.
"""

from __future__ import annotations

import json
import statistics

import pytest

from lmmr1.config import RunConfig, from_dict
from lmmr1.engine.local import run

STEPS = 30


@pytest.fixture(scope="module")
def toy(tmp_path_factory, tiny_model_dir):
    from data_pipelines.synthetic import generate
    from lmmr1.engine.warmup import format_warmup

    root = tmp_path_factory.mktemp("learning")
    generate("arithmetic", 128, seed=0, out=root / "warm.jsonl", system="none")
    format_warmup(tiny_model_dir, [str(root / "warm.jsonl")], root / "warm", steps=40, batch_size=16, lr=3e-3)
    with open(root / "secret.jsonl", "w") as f:
        for i in range(32):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Puzzle {i}: what is the secret number?"}],
                                "answer": "2"}) + "\n")
    return root


def _train(toy, lr: float) -> list[dict]:
    run_dir = toy / f"run_lr{lr}"
    cfg = from_dict(RunConfig, {
        "model": {"path": str(toy / "warm")}, "data": {"train_files": [str(toy / "secret.jsonl")]},
        "rollout": {"backend": "hf", "n_samples": 8, "prompts_per_step": 4, "max_new_tokens": 24},
        "algorithm": {"estimator": "group_norm", "reward": "lmm_r1"},
        "optim": {"lr": lr, "micro_batch_size": 16, "warmup_ratio": 0.0},
        "train": {"steps": STEPS, "run_dir": str(run_dir), "save_every": 1000, "progress": False,
                  "tensorboard": False},
    })
    run(cfg)
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _rise(rows: list[dict], key: str) -> float:
    """Mean over the last 10 steps minus mean over the first 5."""
    return statistics.mean(r[key] for r in rows[-10:]) - statistics.mean(r[key] for r in rows[:5])


def test_grpo_raises_reward_and_accuracy_on_a_reachable_task(toy):
    learned = _train(toy, lr=2e-4)
    frozen = _train(toy, lr=0.0)
    assert len(learned) == len(frozen) == STEPS
    assert _rise(learned, "reward/mean") > 0.15, [r["reward/mean"] for r in learned]
    assert _rise(learned, "reward/accuracy") > 0.05, [r["reward/accuracy"] for r in learned]
    # The control: the same loop with nothing learned stays where it started.
    assert abs(_rise(frozen, "reward/mean")) < 0.1, [r["reward/mean"] for r in frozen]
    assert _rise(learned, "reward/mean") > _rise(frozen, "reward/mean") + 0.1
