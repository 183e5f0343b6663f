"""Sokoban task sets (records + PNG images) for MGT training, deterministic from a seed.

    python -m data_pipelines.sokoban_tasks --out data/sokoban --n 5000 --preset small-v0 --seed 0
    python -m data_pipelines.sokoban_tasks --out data/sokoban_v1 --n 5000 --preset small-v1 --seed 1

LMM-R1 trained on 5000 Sokoban-small-v0 + 5000 Sokoban-small-v1 levels (examples/data/gen_sokoban_tasks.py,
gym-sokoban); this generator makes levels the same way (lmmr1.envs.sokoban.generate_level, reverse play)
without gym-sokoban. Level i of a run is `generate_level(f"{seed}:{i}", preset)`; a level identical to an
earlier one, or whose shortest solution is longer than the MAX_REPLAY (50) actions the plan reward replays,
is skipped and the next i is tried.

Each record: LMM-R1's prompt (`--kind plan`: the whole plan in one reply, scored by
`lmmr1.envs.sokoban.sokoban_plan_reward`) or the interactive one (`--kind interactive`: the "sokoban" env), the
board image, answer = a shortest solution ("Down, Left, ..."; not used by the plan reward, which replays the
model's own plan), meta = {env, level (XSB rows), preset, level_seed, num_boxes, optimal_moves,
full_task_reward}.

Output: OUT/sokoban_<kind>.jsonl (lmmr1 records) and OUT/images/sokoban_<i>.png.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from lmmr1.data.records import Record, validate_record, write_records
from lmmr1.envs.sokoban import (MAX_REPLAY, PRESETS, full_task_reward, generate_level, prompt_messages, render_level,
                                solve)


@dataclass
class SokobanTasksConfig:
    """Settings of the Sokoban task generator (the CLI flags have the same names)."""

    out: str
    """Output folder (created)."""
    n: int = 100
    """Number of records."""
    seed: int = 0
    """Level i comes from the seed string f"{seed}:{i}"."""
    preset: str = "small-v0"
    """Generator preset: small-v0 (7x7, 2 boxes), small-v1 (7x7, 3 boxes), v0 (10x10, 3 boxes)."""
    kind: str = "plan"
    """"plan" (LMM-R1's open-loop prompt) or "interactive" (the multi-turn env's prompt)."""
    tile_px: int = 64
    """Pixels per cell of the board image."""
    max_draws_per_level: int = 50
    """Skipped draws (duplicates, too long) tolerated per record before giving up."""


def generate(config: SokobanTasksConfig) -> Path:
    """Write the task set; returns the JSONL path."""
    if config.preset not in PRESETS:
        raise ValueError(f"--preset {config.preset!r} is not one of {sorted(PRESETS)}")
    out = Path(config.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    seen: set[tuple[str, ...]] = set()
    records: list[Record] = []
    draw = 0
    while len(records) < config.n:
        if draw >= (len(records) + 1) * config.max_draws_per_level:
            raise RuntimeError(f"only {len(records)} distinct levels in {draw} draws (preset {config.preset})")
        level_seed = f"{config.seed}:{draw}"
        draw += 1
        level = generate_level(level_seed, PRESETS[config.preset])
        rows = tuple(level.to_rows())
        plan = solve(level)
        if rows in seen or plan is None or len(plan) > MAX_REPLAY:
            continue
        seen.add(rows)
        image = f"images/sokoban_{len(records):05d}.png"
        render_level(level, config.tile_px).save(out / image)
        meta = {"env": "sokoban", "level": list(rows), "preset": config.preset, "level_seed": level_seed,
                "num_boxes": len(level.boxes), "optimal_moves": len(plan),
                "full_task_reward": round(full_task_reward(level, len(plan)), 6)}
        records.append(validate_record({
            "messages": prompt_messages(config.kind), "images": [image], "answer": ", ".join(plan),
            "task": "sokoban" if config.kind == "plan" else "sokoban_interactive",
            "source": f"lmmr1/sokoban-{config.preset}", "meta": meta,
        }))
    path = out / f"sokoban_{config.kind}.jsonl"
    write_records(path, records)
    return path


def main(argv: list[str] | None = None) -> None:
    defaults = SokobanTasksConfig(out="")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=defaults.n, help="number of records")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--preset", default=defaults.preset, choices=sorted(PRESETS))
    parser.add_argument("--kind", default=defaults.kind, choices=("plan", "interactive"))
    parser.add_argument("--tile-px", type=int, default=defaults.tile_px)
    args = parser.parse_args(argv)
    config = SokobanTasksConfig(out=args.out, n=args.n, seed=args.seed, preset=args.preset, kind=args.kind,
                                tile_px=args.tile_px)
    path = generate(config)
    print(f"wrote {config.n} Sokoban {config.kind} records to {path}")


if __name__ == "__main__":
    main()
