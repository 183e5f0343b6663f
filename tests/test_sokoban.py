"""Sokoban: generated levels are solvable (by a plain BFS written here), the solver's plan gets the full
task reward, LMM-R1's plan reward gives exactly what its verifier gives (format failures score 0.0), the
board image shows each thing on its tile, and the interactive env plays by the same rules."""

from __future__ import annotations

from collections import Counter, deque

import pytest

from lmmr1.envs import get_env, play_episode
from lmmr1.envs.sokoban import (BOX_COLOUR, FLOOR_COLOUR, PLAYER_COLOUR, PRESETS, TARGET_COLOUR, WALL_COLOUR, Level,
                                SokobanConfig, SokobanEnv, action_length_bonus, full_task_reward, generate_level,
                                has_repeated_ngrams, parse_actions, plan_reward, render_level, solve,
                                sokoban_plan_reward)

STEPS = {"Up": (-1, 0), "Down": (1, 0), "Left": (0, -1), "Right": (0, 1)}


def bfs_solve(rows: list[str]) -> list[str] | None:
    """A plain breadth-first search over (player, boxes), written from the rules, no pruning: the reference
    the library's solver and generator are checked against."""
    walls = {(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "#"}
    targets = frozenset((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch in ".*+")
    boxes = frozenset((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch in "$*")
    player = next((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch in "@+")
    start = (player, boxes)
    came_from = {start: None}
    queue = deque([start])
    while queue:
        player, boxes = state = queue.popleft()
        if boxes == targets:
            plan = []
            while came_from[state] is not None:
                state, name = came_from[state]
                plan.append(name)
            return plan[::-1]
        for name, (dr, dc) in STEPS.items():
            nxt = (player[0] + dr, player[1] + dc)
            if nxt in walls:
                continue
            new_boxes = boxes
            if nxt in boxes:
                beyond = (nxt[0] + dr, nxt[1] + dc)
                if beyond in walls or beyond in boxes:
                    continue
                new_boxes = (boxes - {nxt}) | {beyond}
            key = (nxt, new_boxes)
            if key not in came_from:
                came_from[key] = (state, name)
                queue.append(key)
    return None


def reply(actions, thinking="push the box right twice"):
    return f"<think>{thinking}</think><answer>{', '.join(actions)}</answer>"


CORRIDOR = ["#######",
            "#@ $ .#",
            "#######"]


# ------------------------------------------------------------------------------------------------ generation

@pytest.mark.parametrize("preset", ["small-v0", "small-v1"])
def test_generated_levels_are_solvable_by_bfs(preset):
    for seed in range(8):
        level = generate_level(seed, PRESETS[preset])
        rows = level.to_rows()
        assert len(level.boxes) == PRESETS[preset].num_boxes and level.shape == (7, 7)
        # gym-sokoban's rule: no box and not the player on a target at the start (so it is not yet solved)
        assert not (level.boxes | {level.player}) & level.targets
        reference = bfs_solve(rows)
        assert reference is not None, rows
        plan = solve(level)
        assert len(plan) == len(reference)  # the library's (pruned) BFS finds a shortest plan too
        assert plan_reward(reply(plan), level).outcome == "correct"


def test_generation_is_deterministic_per_seed():
    assert generate_level(3).to_rows() == generate_level(3).to_rows()
    assert generate_level("7:1").to_rows() == generate_level("7:1").to_rows()
    assert len({tuple(generate_level(s).to_rows()) for s in range(10)}) >= 8


def test_level_text_round_trip():
    rows = ["#####", "#+$ #", "# *.#", "#$  #", "#####"]
    level = Level.from_rows(rows)
    assert level.to_rows() == rows and level.player == (1, 1) and level.player in level.targets
    with pytest.raises(ValueError, match="as many boxes as targets"):
        Level.from_rows(["#####", "#@$ #", "#####"])


# ------------------------------------------------------------------------------------------------- the reward

def test_solver_plan_gets_the_full_task_reward():
    # Corridor: player (1,1), box (1,3), target (1,5). Right, Right, Right: -0.1, -0.1 (box pushed to 1,4),
    # then -0.1 + 1 (box on target) + 10 (solved) = 10.9. Best cumulative = 10.7 = 10 + 1 - 0.3.
    level = Level.from_rows(CORRIDOR)
    plan = solve(level)
    assert plan == ["Right", "Right", "Right"] == bfs_solve(CORRIDOR)
    assert full_task_reward(level, 3) == pytest.approx(10.7, abs=1e-12)
    result = plan_reward(reply(plan), level)
    # thinking "push the box right twice": 5 words longer than one character -> 0.005; 3 actions -> 0.15.
    # total = 10.7 + 0.5 + 0.15 + 0.005 = 11.355
    assert result.components == pytest.approx({"task": 10.7, "format": 0.5, "action_length": 0.15,
                                               "thinking": 0.005}, abs=1e-12)
    assert result.total == pytest.approx(11.355, abs=1e-12) and result.outcome == "correct"
    # Every generated level: the solver's plan collects FINISHED + boxes - 0.1 * moves, the most possible.
    for seed in range(5):
        level = generate_level(seed, PRESETS["small-v1"])
        plan = solve(level)
        assert plan_reward(reply(plan), level).components["task"] == pytest.approx(
            full_task_reward(level, len(plan)), abs=1e-9)


@pytest.mark.parametrize("text", [
    "<answer>Right, Right, Right</answer>",  # no thinking
    "<think>a</think><answer>Right, Jump</answer>",  # not an action
    "<think>a</think><answer></answer>",  # empty answer: the one item "" is not an action
    "<think>a</think><answer>Right</answer><answer>Right</answer>",  # two answers
    "<think>a</think><think>b</think><answer>Right</answer>",  # two thinks
    "<think>a</think><answer>Right Right</answer>",  # not comma-separated
    "<think>a</think>Right, Right",  # no answer tags
    "",
])
def test_format_failure_scores_exactly_zero(text):
    level = Level.from_rows(CORRIDOR)
    result = plan_reward(text, level)
    assert result.total == 0.0 and result.outcome == "invalid"
    assert result.components == {"task": 0.0, "format": 0.0, "action_length": 0.0, "thinking": 0.0}


def test_what_lmm_r1_format_allows():
    # LMM-R1's Sokoban check counts tags and actions only: case, spaces, the order of the tags and text
    # after </answer> are free; end-of-sequence strings are stripped first.
    level = Level.from_rows(CORRIDOR)
    for text in ("<think>go</think> <answer> right ,RIGHT,  Right </answer> done<|im_end|>",
                 "<answer>right, right, right</answer><think>go</think>"):
        result = plan_reward(text, level)
        assert result.outcome == "correct" and result.components["format"] == 0.5


def test_best_reward_along_the_trajectory_counts_and_replay_stops_when_solved():
    # Two boxes: push the first onto its target (+1 -0.1 each step), later push it off again (-1): the task
    # reward keeps the best point of the trajectory.
    #   #########
    #   #@$. $. #   boxes (1,2), (1,5); targets (1,3), (1,6)
    level = Level.from_rows(["#########", "#@$. $. #", "#########"])
    # Right: box onto target: -0.1 + 1 = 0.9 (best 0.9). Right: box pushed off: -0.1 - 1 -> -0.2 (best 0.9).
    assert plan_reward(reply(["Right", "Right"]), level).components["task"] == pytest.approx(0.9, abs=1e-12)
    # After the game is solved the remaining actions are not replayed: the solving step scores
    # -0.1 + 1 + 10 > 3, so the replay stops there.
    corridor = Level.from_rows(CORRIDOR)
    assert plan_reward(reply(["Right"] * 3 + ["Left"] * 5), corridor).components["task"] == pytest.approx(10.7)
    # Only the first 50 actions are replayed: 50 bumps into the wall, then the solution, scores 0 (best of a
    # path that only decreases).
    assert plan_reward(reply(["Left"] * 50 + ["Right"] * 3), corridor).components["task"] == 0.0


@pytest.mark.parametrize("n, expected", [(0, 0.0), (3, 0.15), (19, 0.95), (20, 1.0), (35, 0.95), (50, 0.8),
                                         (80, 0.2)])
def test_action_length_bonus(n, expected):
    # n < 20: 0.05 n; from 20: 1 - ((n - 20) / 30)^2 * 0.2  (35: 1 - 0.25 * 0.2; 80: 1 - 4 * 0.2)
    assert action_length_bonus(n) == pytest.approx(expected, abs=1e-12)


def test_repeated_actions_cancel_the_length_bonus():
    # "Up" 8 times: the 1-gram "up" repeats back to back 8 > 7 times: bonus min(0, 0.4 - 0.2) = 0.
    assert has_repeated_ngrams(", ".join(["Up"] * 8)) and not has_repeated_ngrams(", ".join(["Up"] * 7))
    # "Left, Right" 8 times: the 2-gram repeats 8 times: min(0, 0.8 - 0.2) = 0.
    assert has_repeated_ngrams(", ".join(["Left", "Right"] * 8))
    assert not has_repeated_ngrams(", ".join(["Left", "Right"] * 7))
    level = Level.from_rows(CORRIDOR)
    assert plan_reward(reply(["Up"] * 8), level).components["action_length"] == 0.0
    assert plan_reward(reply(["Up"] * 7), level).components["action_length"] == pytest.approx(0.35)


def test_thinking_bonus_is_capped():
    level = Level.from_rows(CORRIDOR)
    # 300 words of two letters count as 200: 0.2; one-letter words and double spaces count nothing.
    assert plan_reward(reply(["Right"], " ".join(["ab"] * 300)), level).components["thinking"] == pytest.approx(0.2)
    assert plan_reward(reply(["Right"], "a b  c"), level).components["thinking"] == 0.0


def test_plan_reward_on_a_record():
    record = {"messages": [{"role": "user", "content": "x"}], "meta": {"level": CORRIDOR}}
    assert sokoban_plan_reward(reply(["Right"] * 3), record).outcome == "correct"


# ------------------------------------------------------------------------------------------------- the image

def test_board_image_shows_each_thing_on_its_tile():
    # Tile size 20: cell (r, c) covers x in [20c, 20c + 20), y in [20r, 20r + 20); check tile centres.
    level = Level.from_rows(["#####", "#@$.#", "#####"])
    image = render_level(level, tile_px=20)
    assert image.size == (100, 60)
    centre = lambda r, c: image.getpixel((20 * c + 10, 20 * r + 10))  # noqa: E731
    assert centre(1, 1) == PLAYER_COLOUR
    assert centre(1, 2) == BOX_COLOUR
    assert centre(1, 3) == TARGET_COLOUR
    assert image.getpixel((20 * 3 + 2, 20 + 2)) == FLOOR_COLOUR  # the target tile's corner is floor
    wall_tile = image.crop((0, 0, 20, 20))
    assert Counter(wall_tile.getdata()).most_common(1)[0][0] == WALL_COLOUR
    # After pushing the box onto the target the red dot shows on the box.
    solved = Level.from_rows(["#####", "# @*#", "#####"])
    assert render_level(solved, 20).getpixel((70, 30)) == TARGET_COLOUR
    assert render_level(solved, 20).getpixel((63, 23)) == BOX_COLOUR


# ------------------------------------------------------------------------------------------ interactive env

def test_interactive_env_solves_with_the_plan_and_sums_step_rewards():
    level = generate_level(2, PRESETS["small-v0"])
    plan = solve(level)
    env = get_env("sokoban")(SokobanConfig(tile_px=16))
    result = play_episode(env, {"meta": {"level": level.to_rows()}}, _replay_policy(plan))
    assert result.turns == len(plan) and result.done and result.infos[-1]["done_reason"] == "solved"
    assert result.total_reward == pytest.approx(full_task_reward(level, len(plan)), abs=1e-9)
    assert result.components["format"] == 0.0


def _replay_policy(plan):
    moves = iter(plan)
    return lambda observation: f"<think>next</think><answer>{next(moves)}</answer>"


def test_interactive_invalid_reply_is_a_counted_noop():
    env = SokobanEnv(SokobanConfig(tile_px=16))
    first = env.reset({"meta": {"level": CORRIDOR}})
    assert first.images[0].size == (7 * 16, 3 * 16)
    assert first.text == "Current board: 0 of 1 boxes on targets, 0 of 120 steps used."
    observation, reward, done, info = env.step("<answer>Jump</answer>")
    assert reward == -0.5 and not done and not info["valid"] and info["steps"] == 0 and info["turn"] == 1
    assert env.level.player == (1, 1)  # nothing moved
    assert observation.text.startswith("Your reply named no valid action")
    _, reward, _, info = env.step("# analyze\nthe box is to the right\n# action\nRight")  # MageBench's form
    assert reward == pytest.approx(-0.1) and info["valid"] and env.level.player == (1, 2)


def test_several_actions_per_turn():
    env = SokobanEnv(SokobanConfig(max_actions_per_turn=3))
    env.reset({"meta": {"level": CORRIDOR}})
    _, reward, done, info = env.step("<answer>Right, Right, Right</answer>")
    assert done and info["done_reason"] == "solved" and reward == pytest.approx(10.7)
    assert parse_actions("<answer>Up, Up, Up, Up</answer>", 3) is None  # more than the turn allows
    assert parse_actions("<answer>up , LEFT</answer>", 3) == ["up", "left"]


def test_episode_limits():
    env = SokobanEnv(SokobanConfig(max_steps=4, image=False))
    env.reset({"meta": {"level": CORRIDOR}})
    dones = [env.step("<answer>Left</answer>")[2] for _ in range(4)]
    assert dones == [False, False, False, True]
    with pytest.raises(RuntimeError, match="over"):
        env.step("<answer>Right</answer>")
    env = SokobanEnv(SokobanConfig(max_turns=2, image=False))
    env.reset({"meta": {"seed": 4}})  # a level generated from the seed (preset small-v0)
    assert env.level.to_rows() == generate_level(4).to_rows()
    assert [env.step("nothing")[2] for _ in range(2)] == [False, True]


def test_a_level_without_walls_keeps_the_player_and_boxes_on_the_board():
    from lmmr1.envs.sokoban import MOVES, push

    level = Level.from_rows(["@$."])
    for move in ("left", "up", "down"):
        after, moved, _ = push(level, MOVES[move])
        assert not moved and after.player == (0, 0)
    level, moved, pushed = push(level, MOVES["right"])
    assert moved and pushed and level.solved and level.to_rows() == [" @*"]
    after, moved, _ = push(level, MOVES["right"])  # the box would leave the board
    assert not moved and after.boxes == level.boxes
