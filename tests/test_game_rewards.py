"""The game rewards through the reward registry, as the engines call them: `(response_text, record)`."""

from __future__ import annotations

import pytest

from lmmr1.data.records import validate_record
from lmmr1.envs.sokoban import generate_level, solve
from lmmr1.rewards import get_reward


def _record(meta: dict, answer: str = "x") -> object:
    return validate_record({"messages": [{"role": "user", "content": "play"}], "answer": answer,
                            "task": "game", "meta": meta})


def test_sokoban_plan_reward_scores_the_solvers_plan():
    level = generate_level(3)
    plan = solve(level)
    record = _record({"level": level.to_rows()})
    reward = get_reward("sokoban_plan")
    reply = f"<think>push the box</think><answer>{', '.join(plan)}</answer>"
    result = reward(reply, record)
    assert result.outcome == "correct"
    assert result.total == pytest.approx(sum(result.components.values()))
    assert result.components["format"] == 0.5
    assert reward("no tags at all", record).total == 0.0 and reward("no tags at all", record).outcome == "invalid"


def test_football_action_reward_weights_format_and_action_value():
    from lmmr1.envs.football import ACTIONS

    values = {a: 0.0 for a in ACTIONS}
    values.update(action_shot=10.0, action_long_pass=5.0)
    record = _record({"action_values": values, "best_actions": ["action_shot"]}, answer="action_shot")
    value_only = get_reward("football_action_value")
    composite = get_reward("football_action")
    # action value (v - min) / (max - min): shot 1, long_pass 0.5; the composite adds 0.5 x strict format.
    assert value_only("<answer>action_long_pass</answer>", record).total == pytest.approx(0.5)
    strict = "<think>shoot now</think><answer>action_shot</answer>"
    result = composite(strict, record)
    assert result.outcome == "correct" and result.total == pytest.approx(1.5)
    assert composite("<answer>nonsense</answer>", record).outcome == "invalid"


@pytest.mark.parametrize("name, needs", [("football_action", "action_values / best_actions"),
                                         ("sokoban_plan", "level")])
def test_a_record_without_the_games_meta_names_the_field_and_its_pipeline(name, needs):
    record = _record({"difficulty": 1})  # e.g. a math record routed to a game reward by mistake
    with pytest.raises(ValueError, match=f"meta has no {needs}.*data_pipelines"):
        get_reward(name)("<think>t</think><answer>action_shot</answer>", record)
