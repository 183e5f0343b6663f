"""Sokoban: level generation by reverse play, rendering, LMM-R1's open-loop plan reward, and an
interactive multi-turn Env.

Levels. A level is a grid in the standard text form (XSB): '#' wall, ' ' floor, '.' target, '$' box,
'*' box on a target, '@' player, '+' player on a target. Records store it as a list of rows in
`meta["level"]`. `generate_level` follows gym-sokoban's generator (mpSchrader/gym-sokoban
`envs/room_utils.py`): a random walk with 3x3 masks carves the room, the player and the targets are dropped
on random floor cells with the boxes on the targets, then a depth-first search plays the game backwards
(moves and pulls) and keeps the state with the highest score = (number of times the pulled box changes) x
(sum of box-to-target Manhattan distances) among states where every target is empty (no box, not the
player; so gym-sokoban's .npy levels, which LMM-R1 trains on, represent every generated level). Every level
so made is solvable: its reverse play, read forwards, solves it.

Game rules and step reward: gym-sokoban's SokobanEnv with LMM-R1's DirectLoadSokobanEnv settings. An action
Up/Down/Left/Right pushes the box in front if the cell behind it is free, else moves the player if the
cell in front is free, else does nothing. Each step scores STEP_PENALTY (-0.1), plus BOX_ON_TARGET (+1)
when the number of boxes on targets grows, BOX_OFF_TARGET (-1) when it shrinks, and FINISHED (+10) when
every box is on a target. The game ends when solved or after MAX_STEPS (120) steps.

Plan reward (LMM-R1 `openrlhf/models/remote_rm/sokoban_verifier.py`, TideDra/lmm-r1): the whole plan in one
reply, `<think> ... </think><answer> Left, Up, ... </answer>`.
  1. Format: exactly one each of <think>, </think>, <answer>, </answer>, and every comma-separated item of
     the answer, stripped and lower-cased, is left/right/up/down. If not: total 0, nothing else is run.
  2. task = the best cumulative step reward along the replay of the first MAX_REPLAY (50) actions (starting
     at 0; the replay stops when the game ends or a step scores more than EARLY_STOP_REWARD (3)).
  3. action_length = 0.05 n for n < 20 actions, else 1 - ((n - 20) / 30)^2 * 0.2 (n counts every action);
     if some k-gram (k <= 5) of the answer's words repeats back to back more than 7 times, it becomes
     min(0, action_length - 0.2).
  4. thinking = 0.001 per word of the thinking longer than one character, at most 200 words (0.2).
  total = task + 0.5 * format + action_length + thinking. The full task reward of a level is
  FINISHED + n_boxes * BOX_ON_TARGET + n_moves * STEP_PENALTY for the shortest solution (`solve`).

Interactive variant (`SokobanEnv`, registered as "sokoban"): each turn the reply names up to
`max_actions_per_turn` actions (same answer syntax, or MageBench's "# action" then the action on the next
line); the reward is the sum of their step rewards; a reply without valid actions is a counted no-op with
reward -format_penalty.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from lmmr1.envs import register_env
from lmmr1.envs.base import Observation, StepResult, action_text, record_meta

Cell = tuple[int, int]

# Actions: name -> (row, col) change. gym-sokoban push actions 1..4 are Up, Down, Left, Right.
MOVES: dict[str, Cell] = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
ACTION_NAMES = ("Up", "Down", "Left", "Right")

# gym-sokoban's rewards (SokobanEnv) and LMM-R1's DirectLoadSokobanEnv settings.
STEP_PENALTY = -0.1  # LMM-R1 sets penalty_for_step = -0.1
BOX_ON_TARGET = 1.0
BOX_OFF_TARGET = -1.0
FINISHED = 10.0
MAX_STEPS = 120  # DirectLoadSokobanEnv(max_steps=120)

# LMM-R1 sokoban_verifier.py constants.
FORMAT_WEIGHT = 0.5  # total = task + 0.5 * format + ...
MAX_REPLAY = 50  # `for act in acts[:50]`
EARLY_STOP_REWARD = 3.0  # `if done or sreward > 3: break`
LENGTH_BONUS_PER_ACTION = 0.05
LENGTH_KNEE = 20  # below it, 0.05 per action; above, 1 - ((n - 20) / 30)^2 * 0.2
LENGTH_SPAN = 30
LENGTH_DROP = 0.2
REPEAT_TIMES = 7  # check_repeated_substrings(acts_text, 7, 5): a k-gram repeated back to back > 7 times
REPEAT_MAX_K = 5
REPEAT_PENALTY = 0.2
THINK_BONUS_PER_WORD = 0.001
THINK_MAX_WORDS = 200

EOS_STRINGS = ("<|im_end|>", "<｜end▁of▁sentence｜>", "<|endoftext|>")  # stripped from replies, as LMM-R1 does

# LMM-R1's prompt (examples/scripts/lmm_r1/train_sokoban.sh header).
SYSTEM_PROMPT = (
    "You're going to play a game of Sokoban, where the goal is to manipulate the green character to push the "
    "yellow box into the target area (an area with a red dot in the center). \n"
    "Generate all actions from the initial frame to the end at once."
)
PLAN_INSTRUCTION = (
    "You should first thinks about the reasoning process in the mind and then provides the user with the "
    "answer, the answer is a long sequence of Left, Right, Up, Down, separated by ','. The reasoning process "
    "and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, e.g., "
    "<think> To ... </think><answer> Left, Right, ... </answer>, which means your output should start with "
    "<think> and end with </answer>."
)
INTERACTIVE_SYSTEM_PROMPT = (
    "You're going to play a game of Sokoban, where the goal is to manipulate the green character to push the "
    "yellow boxes onto the target areas (areas with a red dot in the center). Walls are red bricks. Each "
    "action moves the character one cell Up, Down, Left or Right and pushes a box in that direction if there "
    "is one; two boxes in a row cannot be pushed."
)
INTERACTIVE_INSTRUCTION = (
    "Think first, then give your next action in <answer> </answer>, e.g. <think> ... </think><answer> Up "
    "</answer>."
)


# ------------------------------------------------------------------------------------------------ levels

@dataclass(frozen=True)
class Level:
    """A Sokoban position: the fixed grid (walls, targets) and the movable parts (boxes, player)."""

    shape: tuple[int, int]
    walls: frozenset[Cell]
    targets: frozenset[Cell]
    boxes: frozenset[Cell]
    player: Cell

    @classmethod
    def from_rows(cls, rows: Sequence[str]) -> "Level":
        """Parse XSB rows ('#', ' ', '.', '$', '*', '@', '+'); ragged rows are padded with walls."""
        width = max(len(r) for r in rows)
        walls, targets, boxes, players = set(), set(), set(), []
        for r, row in enumerate(rows):
            for c in range(width):
                ch = row[c] if c < len(row) else "#"
                if ch == "#":
                    walls.add((r, c))
                elif ch in ".*+":
                    targets.add((r, c))
                if ch in "$*":
                    boxes.add((r, c))
                if ch in "@+":
                    players.append((r, c))
                if ch not in "# .$*@+":
                    raise ValueError(f"Sokoban level row {r}: unknown cell {ch!r} (XSB uses '# .$*@+')")
        if len(players) != 1:
            raise ValueError(f"a Sokoban level needs exactly one player ('@' or '+'), found {len(players)}")
        if len(boxes) != len(targets) or not boxes:
            raise ValueError(f"a Sokoban level needs as many boxes as targets (and some): {len(boxes)} boxes, "
                             f"{len(targets)} targets")
        return cls((len(rows), width), frozenset(walls), frozenset(targets), frozenset(boxes), players[0])

    def to_rows(self) -> list[str]:
        rows = []
        for r in range(self.shape[0]):
            row = []
            for c in range(self.shape[1]):
                cell = (r, c)
                if cell in self.walls:
                    row.append("#")
                elif cell == self.player:
                    row.append("+" if cell in self.targets else "@")
                elif cell in self.boxes:
                    row.append("*" if cell in self.targets else "$")
                else:
                    row.append("." if cell in self.targets else " ")
            rows.append("".join(row))
        return rows

    def with_state(self, player: Cell, boxes: frozenset[Cell]) -> "Level":
        return Level(self.shape, self.walls, self.targets, boxes, player)

    @property
    def solved(self) -> bool:
        return self.boxes == self.targets

    def blocks(self, cell: Cell) -> bool:
        """A wall, or off the board (a level need not be enclosed by walls)."""
        r, c = cell
        return cell in self.walls or not (0 <= r < self.shape[0] and 0 <= c < self.shape[1])


def push(level: Level, move: Cell) -> tuple[Level, bool, bool]:
    """One action (gym-sokoban `_push`, falling back to `_move`): push the box in front if the cell behind it
    is neither wall nor box, else step if the cell in front is free. Returns (level, moved, pushed)."""
    (r, c), (dr, dc) = level.player, move
    front, behind = (r + dr, c + dc), (r + 2 * dr, c + 2 * dc)
    if front in level.boxes:
        if level.blocks(behind) or behind in level.boxes:
            return level, False, False
        return level.with_state(front, (level.boxes - {front}) | {behind}), True, True
    if level.blocks(front):
        return level, False, False
    return level.with_state(front, level.boxes), True, False


def step_reward(before: Level, after: Level) -> float:
    """gym-sokoban `_calc_reward`: STEP_PENALTY, +/- a box on target by count change, FINISHED when solved."""
    on_before, on_after = len(before.boxes & before.targets), len(after.boxes & after.targets)
    reward = STEP_PENALTY
    if on_after > on_before:
        reward += BOX_ON_TARGET
    elif on_after < on_before:
        reward += BOX_OFF_TARGET
    if after.solved:
        reward += FINISHED
    return reward


def full_task_reward(level: Level, n_moves: int) -> float:
    """The plan reward's task part for a solution of n_moves moves: FINISHED + boxes - 0.1 n_moves."""
    return FINISHED + BOX_ON_TARGET * len(level.boxes - level.targets) + STEP_PENALTY * n_moves


# ----------------------------------------------------------------------------------------------- solving

def dead_cells(level: Level) -> frozenset[Cell]:
    """Floor cells from which no box can ever reach a target (a box can be pulled there from no target):
    boxes are never pushed onto them. Standard simple-deadlock detection."""
    floor = {(r, c) for r in range(level.shape[0]) for c in range(level.shape[1])} - level.walls
    alive = set(level.targets)
    queue = deque(level.targets)
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES.values():
            box, puller = (r + dr, c + dc), (r + 2 * dr, c + 2 * dc)
            if box in floor and puller in floor and box not in alive:
                alive.add(box)
                queue.append(box)
    return frozenset(floor - alive)


def solve(level: Level, max_states: int = 500_000) -> list[str] | None:
    """A shortest plan (fewest moves) by breadth-first search over (player, boxes), or None when there is
    none within max_states states. Pushes onto dead cells are pruned (they never lead to a solution)."""
    dead = dead_cells(level)
    start = (level.player, level.boxes)
    parents: dict[tuple[Cell, frozenset[Cell]], tuple[Any, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        player, boxes = queue.popleft()
        if boxes == level.targets:
            plan, key = [], (player, boxes)
            while parents[key] is not None:
                key, name = parents[key]
                plan.append(name)
            return plan[::-1]
        for name, move in zip(ACTION_NAMES, MOVES.values()):
            after, moved, pushed = push(level.with_state(player, boxes), move)
            if not moved or (pushed and (after.boxes - boxes) <= dead):
                continue
            key = (after.player, after.boxes)
            if key not in parents:
                parents[key] = ((player, boxes), name)
                if len(parents) > max_states:
                    return None
                queue.append(key)
    return None


# -------------------------------------------------------------------------------------------- generating

@dataclass
class SokobanGenConfig:
    """Settings of `generate_level` (defaults: gym-sokoban's Sokoban-small-v0, which LMM-R1 trains on)."""

    dim: tuple[int, int] = (7, 7)
    """Rows, columns of the room, outer walls included."""
    num_boxes: int = 2
    p_change_directions: float = 0.35
    """Random walk: probability of turning at each step (gym-sokoban)."""
    num_walk_steps: int | None = None
    """Random-walk length; None: int(1.7 * (rows + cols)), gym-sokoban's default."""
    search_depth: int = 300
    """Reverse play: depth limit of the search (gym-sokoban's ttl)."""
    max_search_states: int = 20_000
    """Reverse play: states explored at most (gym-sokoban: 300 000; fewer keeps generation fast in Python)."""
    tries: int = 100
    """Rooms tried before giving up."""


PRESETS: dict[str, SokobanGenConfig] = {
    "small-v0": SokobanGenConfig(dim=(7, 7), num_boxes=2),  # gym-sokoban Sokoban-small-v0
    "small-v1": SokobanGenConfig(dim=(7, 7), num_boxes=3),  # Sokoban-small-v1
    "v0": SokobanGenConfig(dim=(10, 10), num_boxes=3),  # Sokoban-v0
}

_MASKS = (  # gym-sokoban room_topology_generation: floor stamped around each step of the walk
    ((0, 0, 0), (1, 1, 1), (0, 0, 0)),
    ((0, 1, 0), (0, 1, 0), (0, 1, 0)),
    ((0, 0, 0), (1, 1, 0), (0, 1, 0)),
    ((0, 0, 0), (1, 1, 0), (1, 1, 0)),
    ((0, 0, 0), (0, 1, 1), (0, 1, 0)),
)


def room_topology(rng: random.Random, dim: tuple[int, int], p_change: float, steps: int) -> set[Cell]:
    """Floor cells carved by a random walk (gym-sokoban room_topology_generation); the border stays wall."""
    rows, cols = dim
    directions = [(1, 0), (0, 1), (-1, 0), (0, -1)]
    direction = rng.choice(directions)
    r, c = rng.randint(1, rows - 1), rng.randint(1, cols - 1)
    floor: set[Cell] = set()
    for _ in range(steps):
        if rng.random() < p_change:
            direction = rng.choice(directions)
        r = max(min(r + direction[0], rows - 2), 1)
        c = max(min(c + direction[1], cols - 2), 1)
        mask = rng.choice(_MASKS)
        for i in range(3):
            for j in range(3):
                if mask[i][j]:
                    floor.add((r - 1 + i, c - 1 + j))
    return {(r, c) for r, c in floor if 0 < r < rows - 1 and 0 < c < cols - 1}


def reverse_play(floor: frozenset[Cell], targets: tuple[Cell, ...], player: Cell, depth: int, max_states: int
                 ) -> tuple[Cell, tuple[Cell, ...], int]:
    """Play backwards from the solved position (boxes on `targets`): the player moves, or pulls the box
    behind it. Returns the best (player, boxes, score); score = box swaps x total displacement, and 0 for a
    state with a box or the player on a target. Box i starts on targets[i]."""
    best = (player, targets, 0)
    seen: set[tuple[Cell, tuple[Cell, ...]]] = set()
    stack = [(player, targets, 0, -1, 0)]  # player, boxes, swaps, last pulled box, depth
    while stack and len(seen) < max_states:
        player, boxes, swaps, last, d = stack.pop()
        if (player, boxes) in seen:
            continue
        seen.add((player, boxes))
        if not (set(boxes) | {player}) & set(targets):  # gym-sokoban: every target empty
            score = swaps * sum(abs(b[0] - t[0]) + abs(b[1] - t[1]) for b, t in zip(boxes, targets))
            if score > best[2]:
                best = (player, boxes, score)
        if d + 1 >= depth:
            continue
        children = []
        for dr, dc in MOVES.values():
            step = (player[0] + dr, player[1] + dc)
            if step not in floor or step in boxes:
                continue
            children.append((step, boxes, swaps, last, d + 1))  # move
            behind = (player[0] - dr, player[1] - dc)
            if behind in boxes:  # pull
                i = boxes.index(behind)
                pulled = boxes[:i] + (player,) + boxes[i + 1:]
                children.append((step, pulled, swaps + (i != last), i, d + 1))
        stack.extend(reversed(children))
    return best


def generate_level(seed: int | str, config: SokobanGenConfig | None = None) -> Level:
    """A solvable level, the same for the same seed and config (see the module docstring)."""
    config = config or SokobanGenConfig()
    rng = random.Random(f"sokoban:{seed}")
    rows, cols = config.dim
    steps = config.num_walk_steps or int(1.7 * (rows + cols))
    for _ in range(config.tries):
        floor = room_topology(rng, config.dim, config.p_change_directions, steps)
        if len(floor) <= config.num_boxes + 1:
            continue
        cells = sorted(floor)
        player = rng.choice(cells)
        targets = tuple(rng.sample([c for c in cells if c != player], config.num_boxes))
        end_player, boxes, score = reverse_play(frozenset(floor), targets, player, config.search_depth,
                                                config.max_search_states)
        if score == 0:
            continue
        walls = frozenset((r, c) for r in range(rows) for c in range(cols)) - frozenset(floor)
        return Level((rows, cols), walls, frozenset(targets), frozenset(boxes), end_player)
    raise RuntimeError(f"no Sokoban level with a positive score in {config.tries} rooms (seed {seed!r}, {config})")


# ------------------------------------------------------------------------------------------------ render

WALL_COLOUR = (150, 62, 42)  # red bricks, as in gym-sokoban / MageBench ("The red brick pattern is the wall")
MORTAR_COLOUR = (95, 40, 28)
FLOOR_COLOUR = (24, 24, 24)
TARGET_COLOUR = (225, 30, 30)  # the red dot in the centre of a target
BOX_COLOUR = (240, 190, 30)  # yellow
BOX_EDGE_COLOUR = (150, 105, 15)
PLAYER_COLOUR = (60, 200, 70)  # green
PLAYER_EDGE_COLOUR = (20, 90, 25)
TARGET_DOT = 0.18  # radius of the red dot, in tiles
BOX_INSET = 0.1  # margin of a box inside its tile, in tiles
PLAYER_RADIUS = 0.36


def render_level(level: Level, tile_px: int = 64) -> Image.Image:
    """The level as an image, tile_px pixels per cell: cell (r, c) covers x in [c t, (c+1) t), y in
    [r t, (r+1) t). Floor FLOOR_COLOUR, walls red bricks, targets a red dot, boxes yellow squares (the red dot
    shows on a box that is on a target), the player a green disc."""
    t = tile_px
    rows, cols = level.shape
    image = Image.new("RGB", (cols * t, rows * t), FLOOR_COLOUR)
    draw = ImageDraw.Draw(image)
    mortar = max(1, t // 16)
    for r in range(rows):
        for c in range(cols):
            x0, y0 = c * t, r * t
            cx, cy = x0 + t / 2, y0 + t / 2
            cell = (r, c)
            if cell in level.walls:
                draw.rectangle([x0, y0, x0 + t - 1, y0 + t - 1], fill=WALL_COLOUR)
                for k in (1, 2, 3):  # courses of bricks
                    draw.line([x0, y0 + k * t // 4, x0 + t - 1, y0 + k * t // 4], fill=MORTAR_COLOUR, width=mortar)
                for k in range(4):
                    bx = x0 + (t // 2 if k % 2 else t // 4)
                    draw.line([bx, y0 + k * t // 4, bx, y0 + (k + 1) * t // 4], fill=MORTAR_COLOUR, width=mortar)
                continue
            if cell in level.boxes:
                inset = BOX_INSET * t
                draw.rectangle([x0 + inset, y0 + inset, x0 + t - 1 - inset, y0 + t - 1 - inset], fill=BOX_COLOUR,
                               outline=BOX_EDGE_COLOUR, width=max(1, t // 12))
            elif cell == level.player:
                rad = PLAYER_RADIUS * t
                draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=PLAYER_COLOUR,
                             outline=PLAYER_EDGE_COLOUR, width=max(1, t // 20))
            if cell in level.targets and cell != level.player:
                rad = TARGET_DOT * t
                draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=TARGET_COLOUR)
    return image


# ---------------------------------------------------------------------------------------- the plan reward

def strip_reply(text: str) -> str:
    """LMM-R1 get_response_from_query: drop end-of-sequence strings, strip whitespace."""
    for eos in EOS_STRINGS:
        text = text.replace(eos, "")
    return text.strip()


def format_checks(text: str) -> dict[str, bool]:
    """LMM-R1 verify_format: one of each tag, and every comma-separated item of the first answer span
    (stripped, lower-cased) is an action."""
    try:
        items = [a.strip().lower() for a in text.split("<answer>")[1].split("</answer>")[0].split(",")]
        all_actions = all(a in MOVES for a in items)
    except IndexError:
        all_actions = False
    return {
        "one_end_think": text.count("</think>") == 1, "one_end_answer": text.count("</answer>") == 1,
        "one_think": text.count("<think>") == 1, "one_answer": text.count("<answer>") == 1,
        "all_actions": all_actions,
    }


def has_repeated_ngrams(text: str, n: int = REPEAT_TIMES, max_k: int = REPEAT_MAX_K) -> bool:
    """LMM-R1 check_repeated_substrings: over the words of `text` (regex \\b\\w[\\w']*\\b, lower-cased), is
    there a k-gram (1 <= k <= max_k) occurring more than n times back to back (each occurrence starting k
    words after the previous one)? Runs are tracked per k-gram by its latest start, as LMM-R1 does."""
    words = re.findall(r"\b\w[\w']*\b", text.lower())
    for k in range(1, max_k + 1):
        runs: dict[tuple[str, ...], tuple[int, int]] = {}
        for s in range(len(words) - k + 1):
            gram = tuple(words[s:s + k])
            last_start, count = runs.get(gram, (None, 0))
            count = count + 1 if last_start == s - k else 1
            runs[gram] = (s, count)
            if count > n:
                return True
    return False


def action_length_bonus(n: int) -> float:
    """0.05 n for n < 20; 1 - ((n - 20) / 30)^2 * 0.2 from 20 on (LMM-R1 `action_length_encourage`)."""
    if n < LENGTH_KNEE:
        return LENGTH_BONUS_PER_ACTION * n
    return LENGTH_KNEE * LENGTH_BONUS_PER_ACTION - ((n - LENGTH_KNEE) / LENGTH_SPAN) ** 2 * LENGTH_DROP


def thinking_bonus(thinking: str) -> float:
    """0.001 per word longer than one character (split on single spaces), capped at 200 words."""
    words = [w for w in thinking.split(" ") if len(w) > 1]
    return THINK_BONUS_PER_WORD * min(len(words), THINK_MAX_WORDS)


def replay(level: Level, actions: Sequence[str], max_steps: int = MAX_STEPS) -> tuple[float, Level, bool]:
    """Replay the first MAX_REPLAY actions: (best cumulative reward from 0, final level, solved). Stops when
    the game ends (solved or max_steps) or a step scores more than EARLY_STOP_REWARD."""
    reward = best = 0.0
    for i, name in enumerate(actions[:MAX_REPLAY], start=1):
        after, _, _ = push(level, MOVES[name])
        gained = step_reward(level, after)
        level = after
        reward += gained
        best = max(best, reward)
        if level.solved or i >= max_steps or gained > EARLY_STOP_REWARD:
            break
    return best, level, level.solved


@dataclass(frozen=True)
class PlanReward:
    """The score of one plan, in the shape of lmmr1's RewardResult (total, components, outcome)."""

    total: float
    components: dict[str, float]
    outcome: str
    """"invalid" (the format failed), "correct" (the plan solves the level) or "wrong"."""
    actions: tuple[str, ...] = ()


def plan_reward(response_text: str, level: Level) -> PlanReward:
    """LMM-R1's Sokoban reward of one reply (module docstring): components task, format, action_length,
    thinking, summing to total."""
    text = strip_reply(response_text)
    zero = {"task": 0.0, "format": 0.0, "action_length": 0.0, "thinking": 0.0}
    if not all(format_checks(text).values()):
        return PlanReward(total=0.0, components=zero, outcome="invalid")
    answer = text.split("<answer>")[1].split("</answer>")[0].strip()
    actions = [a.strip().lower() for a in answer.split(",")]
    length = action_length_bonus(len(actions))
    if has_repeated_ngrams(answer):
        length = min(0.0, length - REPEAT_PENALTY)
    thinking = thinking_bonus(text.split("<think>")[1].split("</think>")[0].strip())
    task, _, solved = replay(level, actions)
    components = {"task": task, "format": FORMAT_WEIGHT * 1.0, "action_length": length, "thinking": thinking}
    return PlanReward(total=task + FORMAT_WEIGHT + length + thinking, components=components,
                      outcome="correct" if solved else "wrong", actions=tuple(actions))


def sokoban_plan_reward(response_text: str, record: Any) -> PlanReward:
    """`plan_reward` on the level of a record (`meta["level"]`): the `(response_text, record) -> result`
    shape of lmmr1's rewards."""
    meta = record_meta(record)
    if "level" not in meta:
        raise ValueError(f"sokoban_plan reward: the record's meta has no level (source "
                         f"{getattr(record, 'source', '?')!r}); it scores records of data_pipelines.sokoban_tasks")
    return plan_reward(response_text, Level.from_rows(meta["level"]))


# ------------------------------------------------------------------------------------- the interactive env


def parse_actions(text: str, max_actions: int) -> list[str] | None:
    """The actions of one interactive reply, or None. Rule: the last <answer>...</answer>, else the first
    non-empty line after MageBench's "# action", else the whole reply; split on commas; every item
    (stripped, lower-cased) must be up/down/left/right, and there must be 1..max_actions of them."""
    candidate = action_text(text)
    items = [a.strip().strip("`'\"").strip().lower() for a in candidate.split(",")]
    if not items or len(items) > max_actions or not all(a in MOVES for a in items):
        return None
    return items


@dataclass
class SokobanConfig:
    """Settings of the interactive Sokoban env."""

    max_steps: int = MAX_STEPS
    """Game steps per episode (LMM-R1's DirectLoadSokobanEnv: 120)."""
    max_turns: int = 60
    """Turns per episode, invalid replies included."""
    max_actions_per_turn: int = 1
    """Actions one reply may carry (MageBench Online: 1; more lets the model commit to a few at once)."""
    format_penalty: float = 0.5
    """Reward of a reply without valid actions is -format_penalty (lmmr1's choice: the plan reward's
    format weight)."""
    image: bool = True
    """Show the board as an image (else only the text)."""
    tile_px: int = 64
    """Pixels per cell of the image (a 7 x 7 room: 448 x 448 = 16 x 16 Qwen2.5-VL patches)."""
    preset: str = "small-v0"
    """Generator preset for records that give a `seed` but no `level`."""

    @property
    def images_per_turn(self) -> int:
        return int(self.image)


@register_env("sokoban")
class SokobanEnv:
    """Interactive Sokoban (module docstring). record.meta: `level` (XSB rows), or `seed` (+ `preset`)."""

    config_class = SokobanConfig

    def __init__(self, config: SokobanConfig | None = None) -> None:
        self.config = config or SokobanConfig()
        self.level: Level | None = None
        self._done = True

    def reset(self, record: Any) -> Observation:
        meta = record_meta(record)
        if "level" in meta:
            self.level = Level.from_rows(meta["level"])
        elif "seed" in meta:
            self.level = generate_level(meta["seed"], PRESETS[meta.get("preset", self.config.preset)])
        else:
            raise KeyError("a Sokoban record's meta needs `level` (XSB rows) or `seed`")
        self._steps = self._turns = self._invalid_turns = 0
        self._total_reward = 0.0
        self._done = False
        return self._observation()

    def step(self, action_text: str) -> StepResult:
        if self._done:
            raise RuntimeError("the Sokoban episode is over; call reset()")
        self._turns += 1
        actions = parse_actions(strip_reply(action_text), self.config.max_actions_per_turn)
        game = 0.0
        note = ""
        if actions is None:
            self._invalid_turns += 1
            note = "Your reply named no valid action (Up, Down, Left or Right in <answer> </answer>). "
        else:
            for name in actions:
                after, _, _ = push(self.level, MOVES[name])
                game += step_reward(self.level, after)
                self.level = after
                self._steps += 1
                if self.level.solved or self._steps >= self.config.max_steps:
                    break
        components = {"game": game, "format": 0.0 if actions is not None else -self.config.format_penalty}
        reward = game + components["format"]
        self._total_reward += reward
        reason = ("solved" if self.level.solved else "max_steps" if self._steps >= self.config.max_steps
                  else "max_turns" if self._turns >= self.config.max_turns else None)
        self._done = reason is not None
        info = {"valid": actions is not None, "action": actions, "components": components,
                "solved": self.level.solved, "steps": self._steps, "turn": self._turns,
                "invalid_turns": self._invalid_turns, "total_reward": self._total_reward, "done_reason": reason}
        return self._observation(note), reward, self._done, info

    def close(self) -> None:
        pass

    def _observation(self, note: str = "") -> Observation:
        on = len(self.level.boxes & self.level.targets)
        text = (f"{note}Current board: {on} of {len(self.level.targets)} boxes on targets, "
                f"{self._steps} of {self.config.max_steps} steps used.")
        images = [render_level(self.level, self.config.tile_px)] if self.config.image else []
        return Observation(text, images)


def prompt_messages(kind: str = "plan") -> list[dict[str, Any]]:
    """The chat of a Sokoban record: LMM-R1's plan prompt ("plan") or the interactive one ("interactive"),
    with one image placeholder for the board."""
    if kind == "plan":
        system, text = SYSTEM_PROMPT, PLAN_INSTRUCTION
    elif kind == "interactive":
        system, text = INTERACTIVE_SYSTEM_PROMPT, f"Current board: the initial position. {INTERACTIVE_INSTRUCTION}"
    else:
        raise ValueError(f"Sokoban prompt kind {kind!r} is not 'plan' or 'interactive'")
    return [{"role": "system", "content": system},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
