"""The football task generator: valid lmmr1 records whose image is exactly what the env shows after
resetting on the record, action values that the env reproduces, best actions that really are the best,
and the same bytes from the same seed (in another process, through the CLI)."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gfootball")

from data_pipelines.football_tasks import FootballTasksConfig, action_values, generate  # noqa: E402
from lmmr1.data.records import load_records  # noqa: E402
from lmmr1.envs.base import ENV_SCORED  # noqa: E402
from lmmr1.envs.football import ACTIONS, FootballConfig, FootballEnv, action_choice_reward  # noqa: E402

ROOT = Path(__file__).parents[1]
ARGS = ["--n", "2", "--seed", "3", "--horizon", "4", "--scenarios", "lmmr1_3_defender_in_the_way,lmmr1_4_three_vs_two"]


@pytest.fixture(scope="module")
def step_tasks(tmp_path_factory):
    out = tmp_path_factory.mktemp("football_steps")
    config = FootballTasksConfig(out=str(out), n=2, seed=3, horizon=4,
                                 scenarios=("lmmr1_3_defender_in_the_way", "lmmr1_4_three_vs_two"))
    return generate(config)


def test_step_tasks_are_valid_records_with_the_envs_image_and_values(step_tasks):
    records = load_records(step_tasks)  # validates every row
    assert len(records) == 2
    env = FootballEnv(FootballConfig(image="topdown"))
    try:
        for record in records:
            meta = record.meta
            assert record.task == "football_action" and meta["env"] == "football"
            values = meta["action_values"]
            assert list(values) == list(ACTIONS)
            best = max(values.values())
            assert record.answer == meta["best_actions"][0] and values[record.answer] == best
            assert set(meta["best_actions"]) == {a for a in ACTIONS if values[a] >= best - 1e-6}
            assert len(meta["best_actions"]) <= 4 and best - statistics.median(values.values()) >= 1.0
            # The stored image is exactly the env's picture after reset(record) (the prefix replays the game).
            observation = env.reset(record)
            stored = Image.open(step_tasks.parent / record.images[0]).convert("RGB")
            assert np.array_equal(np.asarray(stored), np.asarray(observation.images[0]))
            # The values are reproduced by rolling out from the rebuilt state.
            again = action_values(env, meta["horizon"], meta["loss_cost"])
            assert {a: round(v, 6) for a, v in again.items()} == values
            assert action_choice_reward(f"<answer>{record.answer}</answer>", record).outcome == "correct"
    finally:
        env.close()


def test_same_seed_same_tasks_in_another_process(step_tasks, tmp_path):
    result = subprocess.run([sys.executable, "-m", "data_pipelines.football_tasks", "--out", str(tmp_path), *ARGS],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "football_steps.jsonl").read_bytes() == step_tasks.read_bytes()
    for name in ("football_steps_00000.png", "football_steps_00001.png"):
        assert (tmp_path / "images" / name).read_bytes() == (step_tasks.parent / "images" / name).read_bytes()


def test_episode_records(tmp_path):
    path = generate(FootballTasksConfig(out=str(tmp_path), mode="episodes", n=3, seed=0,
                                        scenarios=("lmmr1_1_open_goal_angle", "academy_empty_goal")))
    records = load_records(path)
    assert [r.meta["scenario"] for r in records] == ["lmmr1_1_open_goal_angle", "academy_empty_goal",
                                                     "lmmr1_1_open_goal_angle"]
    assert all(r.answer == ENV_SCORED and r.task == "football_episode" and r.meta["prefix"] == [] for r in records)
    assert records[0].messages[0]["role"] == "system" and records[0].messages[1]["content"][0] == {"type": "image"}
