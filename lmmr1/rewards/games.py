"""Rewards of the game tasks (MGT-Football, MGT-Sokoban), in the registry beside the math rewards.

    football_action_value  action value of a single-step football reply: (v(a) - min v) / (max v - min v),
                           from the engine rollouts stored in the record (lmmr1.envs.football)
    football_action        0.5 x format_strict + 1.0 x football_action_value (LMM-R1's format weight)
    sokoban_plan           LMM-R1's Sokoban verifier: format check, replay of up to 50 actions, best
                           cumulative reward, length and thinking bonuses (lmmr1.envs.sokoban)

The envs are imported when a reward is built, not when lmmr1.rewards is imported.
"""

from __future__ import annotations

from lmmr1.rewards.base import RewardConfig, RewardFn, RewardResult, register_reward

FOOTBALL_ACTION_WEIGHTS = {"format_strict": 0.5, "football_action_value": 1.0}


def _as_reward_result(score) -> RewardResult:
    return RewardResult(float(score.total), dict(score.components), score.outcome)


@register_reward("football_action_value")
def build_football_action_value(config: RewardConfig) -> RewardFn:
    from lmmr1.envs.football import action_choice_reward

    return lambda response_text, record: _as_reward_result(action_choice_reward(response_text, record))


@register_reward("football_action")
def build_football_action(config: RewardConfig) -> RewardFn:
    from lmmr1.rewards.library import build_composite

    return build_composite(config, FOOTBALL_ACTION_WEIGHTS, "football_action_value")


@register_reward("sokoban_plan")
def build_sokoban_plan(config: RewardConfig) -> RewardFn:
    from lmmr1.envs.sokoban import sokoban_plan_reward

    return lambda response_text, record: _as_reward_result(sokoban_plan_reward(response_text, record))
