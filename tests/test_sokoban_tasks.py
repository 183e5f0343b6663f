"""The Sokoban task generator: valid, distinct, solvable records with LMM-R1's prompt, images that show
the stored level, answers that earn the full task reward, the same bytes from the same seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_pipelines.sokoban_tasks import SokobanTasksConfig, generate
from lmmr1.data.records import load_records
from lmmr1.envs.sokoban import PLAN_INSTRUCTION, SYSTEM_PROMPT, Level, render_level, sokoban_plan_reward

ROOT = Path(__file__).parents[1]


def test_sokoban_records(tmp_path):
    path = generate(SokobanTasksConfig(out=str(tmp_path), n=12, seed=5, preset="small-v1", tile_px=32))
    records = load_records(path)
    assert len(records) == 12
    assert len({tuple(r.meta["level"]) for r in records}) == 12  # no duplicate levels
    for record in records:
        meta = record.meta
        level = Level.from_rows(meta["level"])
        assert meta["num_boxes"] == 3 and meta["env"] == "sokoban" and record.task == "sokoban"
        assert record.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert record.messages[1]["content"] == [{"type": "image"}, {"type": "text", "text": PLAN_INSTRUCTION}]
        stored = Image.open(tmp_path / record.images[0]).convert("RGB")
        assert stored.size == (7 * 32, 7 * 32)
        assert np.array_equal(np.asarray(stored), np.asarray(render_level(level, 32)))
        plan = record.answer.split(", ")
        assert len(plan) == meta["optimal_moves"] <= 50
        result = sokoban_plan_reward(f"<think>plan</think><answer>{record.answer}</answer>", record)
        assert result.outcome == "correct"
        assert result.components["task"] == pytest.approx(meta["full_task_reward"], abs=1e-6)
        assert meta["full_task_reward"] == pytest.approx(10 + 3 - 0.1 * len(plan), abs=1e-6)


def test_same_seed_same_bytes(tmp_path):
    args = ["--n", "4", "--seed", "9", "--preset", "small-v0", "--kind", "interactive"]
    outs = []
    for run in ("a", "b"):
        result = subprocess.run([sys.executable, "-m", "data_pipelines.sokoban_tasks", "--out", str(tmp_path / run),
                                 *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        outs.append((tmp_path / run / "sokoban_interactive.jsonl").read_bytes())
    assert outs[0] == outs[1]
    records = load_records(tmp_path / "a" / "sokoban_interactive.jsonl")
    assert {r.task for r in records} == {"sokoban_interactive"} and len(records) == 4
