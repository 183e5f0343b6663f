"""Football task sets (records + PNG images) for MGT training and evaluation, deterministic from a seed.

    python -m data_pipelines.football_tasks --out data/football --mode steps --n 500 --seed 0
    python -m data_pipelines.football_tasks --out data/football_eval --mode episodes --n 60 --seed 1

`steps`: single-step tasks. For each task: pick a scenario and an engine seed, play a few warm-up turns
with a behaviour policy (the scripted attacker or a random action), and take the state reached as the
task. Every one of the 16 actions is then judged by a short engine rollout from that exact state
(`action_values`): commit to the action (a move runs up to 10 steps, a pass or shot is played out), then
`horizon` steps of gfootball's built-in AI; the value is the shaped reward collected (football_reward), with
the possession term replaced by -loss_cost when the opponents win the ball (MageBench's possession term is a
bonus for time elapsed, which would make losing the ball look good over a short horizon). Tasks where more
than `max_best` actions tie for best, or where the best is within `min_gap` of the median, teach nothing and
are drawn again. The record's answer is the best action; meta holds every value (`action_values`), the
tied best actions and the `prefix` of engine actions that leads from reset to the state, so that
`FootballEnv.reset(record)` rebuilds it and `lmmr1.envs.football.action_choice_reward` scores a reply.

`episodes`: multi-turn online episodes for evaluation and agent rollouts: one record per (scenario, seed),
cycling through the scenarios, with the first frame; the answer is ENV_SCORED (the env scores them).

Output: OUT/football_<mode>.jsonl (lmmr1 records), OUT/images/football_<mode>_<i>.png, and
OUT/football_<mode>.config.json (the settings used). Needs the `football` extra (gfootball).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmmr1.data.records import Record, validate_record, write_records
from lmmr1.envs.base import ENV_SCORED
from lmmr1.envs.football import (ACTION_CODES, ACTIONS, BUILTIN_AI, FootballConfig, FootballEnv, lmmr1_scenarios,
                                 prompt_messages, scripted_action)
from lmmr1.envs.football_render import DEFAULT_SIZE
from lmmr1.envs.football_reward import SCALE, W_POSSESSION

STEP_SCENARIOS = (*lmmr1_scenarios(), "academy_empty_goal", "academy_run_to_score_with_keeper",
                  "academy_pass_and_shoot_with_keeper", "academy_3_vs_1_with_keeper",
                  "academy_counterattack_easy")
TIE = 1e-6  # values this close count as tied


@dataclass
class FootballTasksConfig:
    """Settings of the football task generator (the CLI flags have the same names)."""

    out: str
    """Output folder (created)."""
    mode: str = "steps"
    """"steps" (single-step tasks with judged actions) or "episodes" (online episodes)."""
    n: int = 100
    """Number of records."""
    seed: int = 0
    """Everything (scenarios, engine seeds, warm-up) follows from it."""
    scenarios: tuple[str, ...] = STEP_SCENARIOS
    """Scenarios to draw from (episodes: lmmr1's graded scenarios unless given)."""
    horizon: int = 10
    """Built-in AI engine steps after the judged action."""
    max_warmup_turns: int = 6
    """Warm-up turns before the task state: drawn uniformly from 0..max_warmup_turns."""
    scripted_prob: float = 0.6
    """Warm-up: probability of the scripted attacker's action (else a uniformly random action)."""
    max_best: int = 4
    """A task is kept only if at most this many actions tie for best ..."""
    min_gap: float = 1.0
    """... and the best value exceeds the median by at least this much."""
    loss_cost: float = SCALE * W_POSSESSION
    """Value charged when the opponents win the ball within the rollout (20 = the most MageBench's
    possession term can pay)."""
    image_size: tuple[int, int] = DEFAULT_SIZE
    """Width, height of the top-down images."""
    attempts: int = 30
    """Draws per task before giving up on an informative state."""


def action_values(env: FootballEnv, horizon: int, loss_cost: float) -> dict[str, float]:
    """Value of each of the 16 actions from env's current state (see the module docstring); the env is
    returned to that state."""
    start = env.snapshot()
    values: dict[str, float] = {}
    for name in ACTIONS:
        env.restore(start)
        done, _, components = env.play(ACTION_CODES[name], commit=True)
        value = sum(v for k, v in components.items() if k != "possession")
        for _ in range(horizon):
            if done:
                break
            done, _, components = env.play(BUILTIN_AI)
            value += sum(v for k, v in components.items() if k != "possession")
        if done and int(env.raw_observation["ball_owned_team"]) == 1:
            value -= loss_cost
        values[name] = value
    env.restore(start)
    return values


def warm_up(env: FootballEnv, rng: random.Random, turns: int, scripted_prob: float) -> bool:
    """Play `turns` behaviour-policy turns; False if the episode ended on the way."""
    for _ in range(turns):
        if rng.random() < scripted_prob:
            name = scripted_action(env.raw_observation)
        else:
            name = rng.choice(ACTIONS)
        done, _, _ = env.play(ACTION_CODES[name])
        if done:
            return False
    return True


def step_task(env: FootballEnv, rng: random.Random, index: int, config: FootballTasksConfig, out: Path
              ) -> Record:
    """One informative single-step task (its image written under out/images)."""
    for _ in range(config.attempts):
        scenario = rng.choice(config.scenarios)
        engine_seed = rng.randrange(2**31)
        env.reset({"scenario": scenario, "seed": engine_seed})
        if not warm_up(env, rng, rng.randint(0, config.max_warmup_turns), config.scripted_prob):
            continue
        meta: dict[str, Any] = {"env": "football", "scenario": scenario, "seed": engine_seed,
                                "prefix": env.engine_actions}
        observation = env.reset(meta)  # exactly what a consumer of the record will see
        values = action_values(env, config.horizon, config.loss_cost)
        best = max(values.values())
        best_actions = [a for a in ACTIONS if values[a] >= best - TIE]
        if len(best_actions) > config.max_best or best - statistics.median(values.values()) < config.min_gap:
            continue
        meta.update(action_values={a: round(v, 6) for a, v in values.items()}, best_actions=best_actions,
                    horizon=config.horizon, loss_cost=config.loss_cost)
        return _record(observation, index, "steps", best_actions[0], "football_action", meta, out)
    raise RuntimeError(f"no informative football state in {config.attempts} draws (task {index}); "
                       f"lower min_gap or raise max_best")


def episode_task(env: FootballEnv, rng: random.Random, index: int, config: FootballTasksConfig, out: Path
                 ) -> Record:
    scenario = config.scenarios[index % len(config.scenarios)]
    meta = {"env": "football", "scenario": scenario, "seed": rng.randrange(2**31), "prefix": []}
    return _record(env.reset(meta), index, "episodes", ENV_SCORED, "football_episode", meta, out)


def _record(observation, index: int, mode: str, answer: str, task: str, meta: dict[str, Any], out: Path
            ) -> Record:
    image = f"images/football_{mode}_{index:05d}.png"
    observation.images[0].save(out / image)
    return validate_record({"messages": prompt_messages(observation.text), "images": [image], "answer": answer,
                            "task": task, "source": "lmmr1/football", "meta": meta})


def generate(config: FootballTasksConfig) -> Path:
    """Write the task set; returns the JSONL path."""
    if config.mode not in ("steps", "episodes"):
        raise ValueError(f"--mode {config.mode!r} is not 'steps' or 'episodes'")
    out = Path(config.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    env = FootballEnv(FootballConfig(image="topdown", image_size=tuple(config.image_size)))
    make = step_task if config.mode == "steps" else episode_task
    try:
        records = [make(env, random.Random(f"football:{config.seed}:{i}"), i, config, out) for i in range(config.n)]
    finally:
        env.close()
    path = out / f"football_{config.mode}.jsonl"
    write_records(path, records)
    (out / f"football_{config.mode}.config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    defaults = FootballTasksConfig(out="")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--mode", default=defaults.mode, choices=("steps", "episodes"))
    parser.add_argument("--n", type=int, default=defaults.n, help="number of records")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--scenarios", default=None,
                        help="comma-separated scenario names or .py paths (default: steps: lmmr1's and five "
                             "academy scenarios; episodes: lmmr1's graded scenarios)")
    parser.add_argument("--horizon", type=int, default=defaults.horizon, help="built-in AI steps after the action")
    parser.add_argument("--max-warmup-turns", type=int, default=defaults.max_warmup_turns)
    parser.add_argument("--max-best", type=int, default=defaults.max_best)
    parser.add_argument("--min-gap", type=float, default=defaults.min_gap)
    parser.add_argument("--image-size", default="x".join(map(str, defaults.image_size)), help="WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    if args.scenarios:
        scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    else:
        scenarios = STEP_SCENARIOS if args.mode == "steps" else tuple(lmmr1_scenarios())
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    config = FootballTasksConfig(out=args.out, mode=args.mode, n=args.n, seed=args.seed, scenarios=scenarios,
                                 horizon=args.horizon, max_warmup_turns=args.max_warmup_turns,
                                 max_best=args.max_best, min_gap=args.min_gap, image_size=(width, height))
    path = generate(config)
    print(f"wrote {config.n} football {config.mode} records to {path}")


if __name__ == "__main__":
    main()

