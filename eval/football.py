"""Football episodes: the model chooses every action through the rollout backend; the metric is MageBench's
accumulated reward, averaged over seeded episodes per scenario (eval.metrics.episode_reward_stats).

One turn: the env's observation (a top-down picture + the score, clock and ball holder) becomes
`lmmr1.envs.football.prompt_messages`, is encoded with the model's processor and answered once (the suite's
temperature; 0 = greedy). A reply without a valid action is a counted no-op with the env's format penalty.
Episodes are short in the synthetic suite (max_turns 3, a 224 x 112 picture) so the tiny model finishes in
seconds.
"""

from __future__ import annotations

from typing import Any

from eval import metrics as M
from eval.suites import EvalConfig, task_name
from lmmr1.rewards.rules import clean_response
from lmmr1.rollout import SamplingConfig, encode_prompt


def evaluate_football(task: dict[str, Any], backend, processor, cfg: EvalConfig) -> dict[str, Any]:
    from lmmr1.envs import get_env, play_episode
    from lmmr1.envs.football import FootballConfig, prompt_messages

    scenarios = task["football"]
    scenarios = [scenarios] if isinstance(scenarios, str) else list(scenarios)
    seeds = [int(s) for s in task.get("seeds", [0])]
    max_turns = int(task.get("max_turns", 10))
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    sizes = {"image_size": tuple(int(v) for v in task["image_size"])} if task.get("image_size") else {}
    env = get_env("football")(FootballConfig(image=cfg.football_image, max_turns=max_turns, **sizes))
    turn = [0]

    def policy(observation) -> str:
        messages = prompt_messages(observation.text, cfg.football_image)
        encoded = encode_prompt(processor, messages, observation.images, cfg.max_prompt_len)
        turn[0] += 1
        return clean_response(backend.generate([encoded], 1, sampling, seed=cfg.seed + turn[0])[0][0].text)

    per_scenario: dict[str, Any] = {}
    try:
        for scenario in scenarios:
            episodes = []
            for seed in seeds:
                result = play_episode(env, {"scenario": scenario, "seed": seed}, policy, max_turns=max_turns)
                last = result.infos[-1] if result.infos else {}
                episodes.append({"seed": seed, "total_reward": result.total_reward, "turns": result.turns,
                                 "invalid_turns": result.invalid_turns, "done": result.done,
                                 "score": last.get("score"), "done_reason": last.get("done_reason"),
                                 "components": result.components})
            per_scenario[scenario] = {**M.episode_reward_stats([e["total_reward"] for e in episodes]),
                                      "invalid_turn_rate": sum(e["invalid_turns"] for e in episodes)
                                      / max(1, sum(e["turns"] for e in episodes)),
                                      "episodes_detail": episodes}
    finally:
        env.close()
    means = [s["mean_reward"] for s in per_scenario.values()]
    return {"name": task_name(task), "kind": "football", "scenarios": per_scenario, "seeds": seeds,
            "max_turns": max_turns,
            "metrics": {"mean_reward": sum(means) / len(means), "episodes": len(seeds) * len(scenarios)}}
