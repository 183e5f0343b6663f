"""Environment throughput: env steps per second, with and without the observation image.

    python bench/env_throughput.py                        # football + Sokoban, markdown table on stdout
    xvfb-run -a python bench/env_throughput.py --engine-frames   # also gfootball's own 3D frames

One step = one engine step: the football env runs with adaptive turns off (one turn = one engine step) and
a seeded random choice among the 16 actions, resetting when an episode ends (resets are included in the
time). Rows:
    gfootball FootballEnv, bare          the engine alone (gfootball's own step, no lmmr1 code)
    lmmr1 football, no image             + action parsing, shaped reward, observation text
    lmmr1 football, top-down image       + the PIL top-down picture (672 x 336)
    lmmr1 football, engine frame         + gfootball's 3D rendering (1280 x 720; needs a display)
    lmmr1 sokoban, no image / board image (448 x 448 for 7 x 7)
    sokoban plan reward                  LMM-R1's verifier on a shortest plan (replies scored per second)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time

from lmmr1.envs.football import ACTION_CODES, ACTIONS, FootballConfig, FootballEnv
from lmmr1.envs.sokoban import (ACTION_NAMES, PRESETS, SokobanConfig, SokobanEnv, generate_level, plan_reward,
                                solve)

SCENARIO = "lmmr1_4_three_vs_two"


def bench_gfootball_bare(steps: int) -> float:
    from gfootball.env import config, football_env

    from lmmr1.envs.football import scenario_level

    env = football_env.FootballEnv(config.Config({"level": scenario_level(SCENARIO), "action_set": "v2",
                                                  "players": ["agent:left_players=1"], "real_time": False}))
    rng = random.Random(0)
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        _, _, done, _ = env.step([ACTION_CODES[rng.choice(ACTIONS)]])
        if done:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def bench_football(steps: int, image: str) -> float:
    env = FootballEnv(FootballConfig(image=image, adaptive=False))
    rng = random.Random(0)
    seed = 0
    env.reset({"scenario": SCENARIO, "seed": seed})
    start = time.perf_counter()
    for _ in range(steps):
        _, _, done, _ = env.step(f"<answer>{rng.choice(ACTIONS)}</answer>")
        if done:
            seed += 1
            env.reset({"scenario": SCENARIO, "seed": seed})
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def bench_sokoban(steps: int, image: bool) -> float:
    env = SokobanEnv(SokobanConfig(image=image))
    rng = random.Random(0)
    seed = 0
    env.reset({"meta": {"seed": seed}})
    start = time.perf_counter()
    for _ in range(steps):
        _, _, done, _ = env.step(f"<answer>{rng.choice(ACTION_NAMES)}</answer>")
        if done:
            seed += 1
            env.reset({"meta": {"seed": seed}})
    return steps / (time.perf_counter() - start)


def bench_plan_reward(n: int) -> float:
    levels = [generate_level(i, PRESETS["small-v1"]) for i in range(20)]
    replies = [f"<think>push</think><answer>{', '.join(solve(level))}</answer>" for level in levels]
    start = time.perf_counter()
    for i in range(n):
        plan_reward(replies[i % len(levels)], levels[i % len(levels)])
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="engine steps per football row")
    parser.add_argument("--engine-steps", type=int, default=40, help="steps of the engine-frame row")
    parser.add_argument("--sokoban-steps", type=int, default=5000)
    parser.add_argument("--engine-frames", action="store_true", help="also time gfootball's 3D frames (display)")
    args = parser.parse_args()

    rows = [("gfootball FootballEnv, bare", bench_gfootball_bare(args.steps)),
            ("lmmr1 football, no image", bench_football(args.steps, "none")),
            ("lmmr1 football, top-down image (672x336)", bench_football(args.steps, "topdown"))]
    if args.engine_frames:
        if not os.environ.get("DISPLAY"):
            raise SystemExit("--engine-frames needs a display: run under `xvfb-run -a`")
        rows.append(("lmmr1 football, engine frame (1280x720)", bench_football(args.engine_steps, "engine")))
    rows += [("lmmr1 sokoban, no image", bench_sokoban(args.sokoban_steps, False)),
             ("lmmr1 sokoban, board image (448x448)", bench_sokoban(args.sokoban_steps, True)),
             ("sokoban plan reward (replies/s)", bench_plan_reward(args.sokoban_steps))]

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| env | steps/s | ms/step |\n|---|---:|---:|")
    for name, rate in rows:
        shown = f"{rate:,.1f}" if rate < 10 else f"{rate:,.0f}"
        print(f"| {name} | {shown} | {1000 / rate:.2f} |")


if __name__ == "__main__":
    main()
