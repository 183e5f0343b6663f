"""The football game: Google Research Football (gfootball) in MageBench's setting, as an lmmr1 Env.

One turn = one reply of the model = one named action:

    env = FootballEnv(FootballConfig(image="topdown"))
    observation = env.reset(record)            # record.meta: {"scenario": ..., "seed": ..., "prefix": [...]}
    observation, reward, done, info = env.step("<think>...</think><answer>action_shot</answer>")

What the model sees: a picture of the game and a short text (score, clock, who has the ball). The picture
is, by default, a top-down pitch drawn from the raw observation (lmmr1.envs.football_render); with
`image="engine"` it is the engine's own 3D frame, the kind MageBench shows (needs a display: run under
`xvfb-run -a`; ~0.3-0.5 s per step on a CPU), and `image="both"` gives both.

Actions: the 16 named actions MageBench exposes (ACTIONS), read from the reply as `<answer>NAME</answer>`,
as MageBench's "# action" followed by NAME, or as a bare NAME (case and surrounding quotes ignored). A reply
without one is a counted no-op: the game does not advance, the reward is -format_penalty, the turn counts.

Turns (MageBench's "adaptive render", `adaptive=True`): a move repeated in the same direction keeps running
(up to MAX_AUTO_STEPS engine steps, while no opponent is in the way and the pitch does not end); a pass or
shot while someone has the ball is played out: (pass, direction) until the ball leaves the passer, then the
built-in AI until someone receives it (at most max_pass_steps engine steps). Otherwise one engine step.

Reward: MageBench's shaped reward summed over the turn's engine steps (lmmr1.envs.football_reward, with its
constants and sources); an episode ends on a goal, when the opponents get the ball, when the scenario ends
it (out of play, time) or after max_turns. The metric is the accumulated reward (`EpisodeResult.total_reward`).

Scenarios: gfootball's academy scenarios by name (ACADEMY_SCENARIOS), lmmr1's graded scenarios stored in
lmmr1/envs/scenarios/ (`lmmr1_scenarios()`), or any gfootball scenario file by path (MageBench's
`resources/Football/*.py` work as they are). gfootball imports scenarios as `gfootball.scenarios.<level>`;
lmmr1 loads its files under that module name into `sys.modules` (nothing is written into site-packages).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lmmr1.envs import register_env
from lmmr1.envs.base import Observation, StepResult, action_text, record_meta
from lmmr1.envs.football_render import DEFAULT_SIZE, draw_topdown
from lmmr1.envs.football_reward import COMPONENTS, ShapingState, initial_state, shaped_reward, we_have_ball
from lmmr1.utils.optional import require

# gfootball's action set "v2" (= "default" + builtin_ai), the indices MageBench's FootballAction uses.
ACTION_CODES: dict[str, int] = {
    "action_idle": 0, "action_left": 1, "action_top_left": 2, "action_top": 3, "action_top_right": 4,
    "action_right": 5, "action_bottom_right": 6, "action_bottom": 7, "action_bottom_left": 8,
    "action_long_pass": 9, "action_high_pass": 10, "action_short_pass": 11, "action_shot": 12,
    "action_sprint": 13, "action_release_direction": 14, "action_release_sprint": 15, "action_sliding": 16,
    "action_dribble": 17, "action_release_dribble": 18, "action_builtin_ai": 19,
}
ACTION_NAMES = {code: name for name, code in ACTION_CODES.items()}
# The 16 actions the model may choose (MageBench Flow/Online_HL_FBandSB.py `parse`), in its order.
ACTIONS: tuple[str, ...] = (
    "action_left", "action_top_left", "action_top", "action_top_right", "action_right", "action_bottom_right",
    "action_bottom", "action_bottom_left", "action_long_pass", "action_high_pass", "action_short_pass",
    "action_shot", "action_sprint", "action_release_sprint", "action_dribble", "action_release_dribble",
)
MOVES = frozenset(range(1, 9))  # the 8 directions
PASS_OR_SHOT = frozenset({9, 10, 11, 12})
BUILTIN_AI = 19
IDLE = 0
# Unit vectors of the 8 directions in gfootball coordinates (+y is "bottom").
DIRECTIONS: dict[int, tuple[float, float]] = {
    1: (-1.0, 0.0), 2: (-1.0, -1.0), 3: (0.0, -1.0), 4: (1.0, -1.0),
    5: (1.0, 0.0), 6: (1.0, 1.0), 7: (0.0, 1.0), 8: (-1.0, 1.0),
}

MAX_AUTO_STEPS = 10  # MageBench MAX_AUTO_STEPS: a repeated move runs at most this many engine steps
MOVE_MIN_DISTANCE = 0.01  # MageBench MOVE_MIN_DISTANCE: an opponent this close on the path stops a run
MOVE_LOOKAHEAD = 6  # MageBench check_move_or_not: steps ahead checked for opponents
EDGE_LOOKAHEAD = 3  # ... and for the edge of the pitch
PITCH_HALF_WIDTH = 0.42

ACADEMY_SCENARIOS: tuple[str, ...] = (
    "academy_empty_goal_close", "academy_empty_goal", "academy_run_to_score",
    "academy_run_to_score_with_keeper", "academy_pass_and_shoot_with_keeper",
    "academy_run_pass_and_shoot_with_keeper", "academy_3_vs_1_with_keeper", "academy_corner",
    "academy_counterattack_easy", "academy_counterattack_hard", "academy_single_goal_versus_lazy",
)
SCENARIO_DIR = Path(__file__).with_name("scenarios")

_TOPDOWN_SCENE = (
    "The image is a top-down view of the pitch: your team plays in yellow and attacks the goal on the right; the "
    "player you control is the larger light-blue disc; opponents are red; the ball is the small white disc, and a "
    "white ring marks the player who has it. Short lines show where players and the ball are heading."
)
_ENGINE_SCENE = (  # MageBench's description of the engine frame
    "The image is a frame of the game: your team wears yellow and attacks the goal on the right; the player you "
    "control has a blue name above his head; opponents wear other colours."
)
_ACTION_RULES = (
    "Pick one action per turn:\n"
    "- 'action_left', 'action_top_left', 'action_top', 'action_top_right', 'action_right', "
    "'action_bottom_right', 'action_bottom', 'action_bottom_left': run in that direction (top is up in the "
    "image); repeating a direction keeps running.\n"
    "- 'action_long_pass', 'action_high_pass', 'action_short_pass': pass to a teammate, chosen by the "
    "direction you are moving in.\n"
    "- 'action_shot': shoot at the opponents' goal.\n"
    "- 'action_sprint', 'action_release_sprint': start and stop sprinting (faster, worse ball control).\n"
    "- 'action_dribble', 'action_release_dribble': start and stop dribbling (slower, harder to tackle)."
)
SYSTEM_PROMPT = f"You are playing a football game. {_TOPDOWN_SCENE} {_ACTION_RULES}"
ENGINE_SYSTEM_PROMPT = f"You are playing a football game. {_ENGINE_SCENE} {_ACTION_RULES}"
FORMAT_INSTRUCTION = (
    "Think about the situation first, then answer with one action ID. Put the reasoning in <think> </think> "
    "and the action in <answer> </answer>, e.g. <think> ... </think><answer>action_shot</answer>."
)


# ---------------------------------------------------------------------------------------------- scenarios

def lmmr1_scenarios() -> list[str]:
    """Names of lmmr1's own scenarios (files in lmmr1/envs/scenarios/), easiest first."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("lmmr1_*.py"))


def _load_scenario_file(level: str, path: Path) -> None:
    """Import `path` as the module `gfootball.scenarios.<level>`, the name gfootball's Scenario imports."""
    module_name = f"gfootball.scenarios.{level}"
    if module_name in sys.modules:
        return
    require("gfootball.scenarios", "The football environment")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the football scenario file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    if not callable(getattr(module, "build_scenario", None)):
        del sys.modules[module_name]
        raise ImportError(f"football scenario file {path} defines no build_scenario(builder)")


def scenario_level(scenario: str) -> str:
    """The gfootball `level` for a scenario given as a gfootball name, an lmmr1 name or a .py path,
    loading lmmr1's and path scenarios so that gfootball can import them."""
    if scenario in lmmr1_scenarios():
        _load_scenario_file(scenario, SCENARIO_DIR / f"{scenario}.py")
        return scenario
    if scenario.endswith(".py") or os.sep in scenario:
        path = Path(scenario).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"football scenario file not found: {path}")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        level = f"lmmr1_file_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
        _load_scenario_file(level, path)
        return level
    builder = require("gfootball.env.scenario_builder", "The football environment")
    known = builder.all_scenarios()
    if scenario not in known:
        raise KeyError(f"unknown football scenario {scenario!r}; gfootball has {sorted(known)}, lmmr1 has "
                       f"{lmmr1_scenarios()}, or give a path to a scenario .py file")
    return scenario


# ------------------------------------------------------------------------------------------------ actions


def parse_action(text: str) -> str | None:
    """The action named in a reply, or None.

    Rule: the content of the last <answer>...</answer>; else, after MageBench's "# action" marker, its first
    non-empty line; else the whole reply. Stripped of whitespace, quotes and backticks and lower-cased, it
    must be one of ACTIONS exactly."""
    candidate = action_text(text).strip().strip("`'\"").strip().lower()
    return candidate if candidate in ACTIONS else None


def direction_toward(src: tuple[float, float], dst: tuple[float, float]) -> int:
    """The move (1..8) whose direction is closest in angle to src -> dst."""
    dx, dy = dst[0] - src[0], dst[1] - src[1]
    return max(DIRECTIONS, key=lambda a: (dx * DIRECTIONS[a][0] + dy * DIRECTIONS[a][1]) / math.hypot(*DIRECTIONS[a]))


SCRIPTED_SHOOT_X = 0.75  # the scripted policy shoots once the ball carrier is past this x


def scripted_action(obs: Mapping[str, Any]) -> str:
    """A baseline: without the ball, run to it; with it, run at the goal centre and shoot past x = 0.75."""
    me = np.asarray(obs["left_team"])[int(obs["active"])]
    if not we_have_ball(obs):
        return ACTION_NAMES[direction_toward(me, np.asarray(obs["ball"])[:2])]
    if me[0] > SCRIPTED_SHOOT_X:
        return "action_shot"
    return ACTION_NAMES[direction_toward(me, (1.0, 0.0))]


def keeps_running(obs: Mapping[str, Any]) -> bool:
    """MageBench's check_move_or_not: a repeated move goes on unless, extrapolating the current velocities,
    the ball carrier (or the ball) leaves the pitch within EDGE_LOOKAHEAD steps or comes within
    MOVE_MIN_DISTANCE of an opponent within MOVE_LOOKAHEAD steps."""
    position = np.asarray(obs["ball"], dtype=np.float64)[:2]
    velocity = np.asarray(obs["ball_direction"], dtype=np.float64)[:2]
    owner = int(obs["ball_owned_player"])
    if owner != -1 and int(obs["ball_owned_team"]) == 0:
        position = np.asarray(obs["left_team"], dtype=np.float64)[owner]
        velocity = np.asarray(obs["left_team_direction"], dtype=np.float64)[owner]
    ahead = position + EDGE_LOOKAHEAD * velocity
    if abs(ahead[0]) >= 1.0 or abs(ahead[1]) >= PITCH_HALF_WIDTH:
        return False
    opponents = np.asarray(obs["right_team"], dtype=np.float64)
    opponents_velocity = np.asarray(obs["right_team_direction"], dtype=np.float64)
    for i in range(MOVE_LOOKAHEAD):
        gaps = np.linalg.norm(position + i * velocity - (opponents + i * opponents_velocity), axis=1)
        if np.any(gaps < MOVE_MIN_DISTANCE):
            return False
    return True


# -------------------------------------------------------------------------------------------------- the env

@dataclass
class FootballConfig:
    """Settings of the football env. A record's meta may override scenario and seed per episode."""

    scenario: str = "academy_empty_goal_close"
    """Scenario when the record names none: a gfootball name, an lmmr1 name or a .py path."""
    seed: int = 0
    """Engine seed when the record gives none (the same seed replays the same game)."""
    image: str = "topdown"
    """What the model sees: "topdown" (drawn from the observation), "engine" (gfootball's 3D frame; needs a
    display, e.g. `xvfb-run -a`), "both", or "none" (text only)."""
    image_size: tuple[int, int] = DEFAULT_SIZE
    """Width, height of the top-down image (672 x 336 = 24 x 12 Qwen2.5-VL patches of 28 px)."""
    engine_resolution: tuple[int, int] = (1280, 720)
    """Width, height of the engine's frame (MageBench renders 1280 wide)."""
    adaptive: bool = True
    """MageBench's adaptive turns: repeated moves keep running, passes and shots are played out."""
    max_pass_steps: int = 40
    """Cap on the engine steps of one played-out pass or shot (MageBench has none; a game lasts 400)."""
    max_turns: int = 400
    """Turns per episode, invalid replies included (MageBench --max_loop 400)."""
    format_penalty: float = 1.0
    """Reward of a reply without a valid action is -format_penalty (lmmr1's choice: MageBench re-asks
    without a penalty; 1.0 is 1/40 of a goal on the shaped scale)."""
    describe_positions: bool = False
    """Also list the coordinates of the ball and every player in the text (text-only ablations)."""

    @property
    def images_per_turn(self) -> int:
        return {"none": 0, "both": 2}.get(self.image, 1)

    def __post_init__(self) -> None:
        if self.image not in ("topdown", "engine", "both", "none"):
            raise ValueError(f"FootballConfig.image {self.image!r} is not topdown, engine, both or none")


@dataclass(frozen=True)
class FootballSnapshot:
    """Everything needed to continue an episode from a point (engine state and the env's own memory)."""

    engine_state: bytes
    obs: dict[str, Any]
    shaping: ShapingState
    prev_action: int
    prev_direction: int
    turns: int
    invalid_turns: int
    total_reward: float
    engine_actions: tuple[int, ...]


@register_env("football")
class FootballEnv:
    """Google Research Football as an lmmr1 Env (see the module docstring)."""

    config_class = FootballConfig

    def __init__(self, config: FootballConfig | None = None) -> None:
        self.config = config or FootballConfig()
        self._engine = None  # gfootball.env.football_env.FootballEnv, built on the first reset
        self._engine_config = None
        self._level: str | None = None
        self._obs: dict[str, Any] | None = None
        self._engine_actions: list[int] = []
        self._done = True

    # -- the Env interface -----------------------------------------------------------------------------

    def reset(self, record: Any = None) -> Observation:
        """Start the episode a record describes. record.meta keys (all optional): `scenario`, `seed`, and
        `prefix`, gfootball action indices played (one engine step each) before the first turn."""
        meta = record_meta(record) if record is not None else {}
        seed = int(meta.get("seed", self.config.seed))
        self._start_engine(scenario_level(str(meta.get("scenario", self.config.scenario))))
        # The seed, and the team-processing order gfootball derives from it once per Config, set per episode.
        self._engine_config["game_engine_random_seed"] = seed
        self._engine_config["reverse_team_processing"] = bool(seed % 2)
        self._obs = self._engine.reset()[0]
        self._shaping = initial_state(self._obs)
        self._prev_action, self._prev_direction = -1, 5  # MageBench auto_acting_utils
        self._turns = self._invalid_turns = 0
        self._total_reward = 0.0
        self._done = False
        self._engine_actions = []
        for code in meta.get("prefix", ()):
            done, _ = self._engine_step(int(code))
            if done:
                raise ValueError(f"football record's prefix ends the episode after {code}: {dict(meta)}")
        self._shaping = initial_state(self._obs)
        return self._observation()

    def step(self, action_text: str) -> StepResult:
        if self._done:
            raise RuntimeError("the football episode is over; call reset()")
        name = parse_action(action_text)
        self._turns += 1
        components = dict.fromkeys(COMPONENTS, 0.0)
        engine_steps, done, reason = 0, False, None
        if name is None:
            self._invalid_turns += 1
            components["format"] = -self.config.format_penalty
            note = ("Your reply named no valid action. Answer with exactly one action ID in "
                    "<answer> </answer>, e.g. <answer>action_right</answer>.")
        else:
            done, engine_steps, turn_components = self._play_turn(ACTION_CODES[name])
            for key, value in turn_components.items():
                components[key] += value
            components["format"] = 0.0
            reason = self._end_reason() if done else None
            note = ""
        if not done and self._turns >= self.config.max_turns:
            done, reason = True, "max_turns"
        reward = float(sum(components.values()))
        self._total_reward += reward
        self._done = done
        info = {
            "valid": name is not None, "action": name, "components": components, "engine_steps": engine_steps,
            "turn": self._turns, "invalid_turns": self._invalid_turns, "score": list(self._obs["score"]),
            "total_reward": self._total_reward, "done_reason": reason,
        }
        return self._observation(note), reward, done, info

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
            self._level = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    # -- for data generation and scripted players ---------------------------------------------------------

    @property
    def raw_observation(self) -> dict[str, Any]:
        """gfootball's raw observation of the current state (a copy)."""
        return copy.deepcopy(self._obs)

    @property
    def done(self) -> bool:
        return self._done

    def snapshot(self) -> FootballSnapshot:
        """The current point of the episode; `restore` returns to it (deterministically)."""
        return FootballSnapshot(self._engine.get_state(), copy.deepcopy(self._obs), self._shaping,
                                self._prev_action, self._prev_direction, self._turns, self._invalid_turns,
                                self._total_reward, tuple(self._engine_actions))

    def restore(self, snap: FootballSnapshot) -> None:
        self._engine.set_state(snap.engine_state)
        self._obs = copy.deepcopy(snap.obs)
        self._shaping = snap.shaping
        self._prev_action, self._prev_direction = snap.prev_action, snap.prev_direction
        self._turns, self._invalid_turns, self._total_reward = snap.turns, snap.invalid_turns, snap.total_reward
        self._engine_actions = list(snap.engine_actions)
        self._done = False

    @property
    def engine_actions(self) -> list[int]:
        """gfootball action indices of every engine step since reset (the prefix included): a record with
        this list as `prefix` resets to the current state."""
        return list(self._engine_actions)

    def play(self, code: int, *, commit: bool = False) -> tuple[bool, int, dict[str, float]]:
        """Play one turn of gfootball action `code` (any index, not only the model's 16). commit=True plays
        it as a committed choice even on the first turn: a move runs as if repeated (up to MAX_AUTO_STEPS),
        a pass or shot is played out. Returns (done, engine steps, reward components)."""
        if commit and self.config.adaptive:
            if code in MOVES:
                self._prev_action = code
            elif self._prev_action == -1:
                self._prev_action = IDLE
        done, steps, components = self._play_turn(code)
        self._done = done
        return done, steps, components

    # -- internals ---------------------------------------------------------------------------------------

    def _start_engine(self, level: str) -> None:
        if self._engine is not None and level == self._level:
            return
        self.close()
        if self.config.image in ("engine", "both") and not os.environ.get("DISPLAY"):
            raise RuntimeError("FootballConfig.image='engine' renders with OpenGL and needs a display; run under "
                               "`xvfb-run -a python ...`, or use image='topdown'")
        config_module = require("gfootball.env.config", "The football environment")
        env_module = require("gfootball.env.football_env", "The football environment")
        width, height = self.config.engine_resolution
        self._engine_config = config_module.Config({
            "level": level, "players": ["agent:left_players=1"], "action_set": "v2", "real_time": False,
            "render_resolution_x": width, "render_resolution_y": height,
            "game_engine_random_seed": self.config.seed,
        })
        self._engine = env_module.FootballEnv(self._engine_config)
        if self.config.image in ("engine", "both"):
            self._engine.render("rgb_array")  # switch this engine to rendering: every observation gets a frame
        self._level = level

    def _engine_step(self, code: int) -> tuple[bool, dict[str, float]]:
        observations, _, engine_done, _ = self._engine.step([code])
        self._engine_actions.append(code)
        self._obs = observations[0]
        components, self._shaping, lost = shaped_reward(self._shaping, self._obs, code)
        return bool(engine_done) or lost, components

    def _play_turn(self, code: int) -> tuple[bool, int, dict[str, float]]:
        """One turn (MageBench FootballEnv.take_action). Returns (done, engine steps, summed components)."""
        total = dict.fromkeys(COMPONENTS, 0.0)
        steps = 0

        def advance(c: int) -> bool:
            nonlocal steps
            done, parts = self._engine_step(c)
            steps += 1
            for key, value in parts.items():
                total[key] += value
            return done

        first_turn = self._prev_action == -1
        if code in MOVES:
            self._prev_direction = code
        if not self.config.adaptive or first_turn:
            self._prev_action = code
            return advance(code), steps, total

        if code in MOVES and code == self._prev_action:
            # a repeated move keeps running
            while True:
                done = advance(code)
                if done or steps >= MAX_AUTO_STEPS or not keeps_running(self._obs):
                    return done, steps, total
        if code in PASS_OR_SHOT and int(self._obs["ball_owned_player"]) != -1:
            # a pass or shot is played out: (action, direction) while the passer has the ball, then the built-in
            # AI while the ball is in the air, until someone has it
            self._prev_action = code
            passer = int(self._obs["ball_owned_player"])
            done = False
            while not done and steps < self.config.max_pass_steps:
                owner = int(self._obs["ball_owned_player"])
                if owner == passer:
                    done = advance(code) or advance(self._prev_direction)
                elif owner == -1:
                    done = advance(BUILTIN_AI)
                else:
                    break
            return done, steps, total
        self._prev_action = code
        return advance(code), steps, total

    def _end_reason(self) -> str:
        obs = self._obs
        if int(obs["score"][0]) > 0:
            return "goal"
        if int(obs["score"][1]) > 0:
            return "conceded"
        if int(obs["ball_owned_team"]) == 1:
            return "possession_lost"
        if int(obs["game_mode"]) != 0:
            return "out_of_play"
        return "time"

    def _images(self) -> list[Image.Image]:
        images = []
        if self.config.image in ("topdown", "both"):
            images.append(draw_topdown(self._obs, tuple(self.config.image_size)))
        if self.config.image in ("engine", "both"):
            images.append(Image.fromarray(np.ascontiguousarray(self._obs["frame"])))
        return images

    def _observation(self, note: str = "") -> Observation:
        return Observation(describe(self._obs, self.config.describe_positions, note), self._images())


def describe(obs: Mapping[str, Any], positions: bool = False, note: str = "") -> str:
    """The text of an observation: score, steps left, who has the ball (and coordinates when asked)."""
    owner_team, owner = int(obs["ball_owned_team"]), int(obs["ball_owned_player"])
    if owner_team == 0 and owner == int(obs["active"]):
        ball = "you have the ball"
    elif owner_team == 0:
        ball = "a teammate has the ball"
    elif owner_team == 1:
        ball = "the opponents have the ball"
    else:
        ball = "nobody has the ball"
    text = (f"Current game scene: score {int(obs['score'][0])}-{int(obs['score'][1])}, "
            f"{int(obs['steps_left'])} steps left, {ball}.")
    if positions:
        def fmt(p) -> str:
            return f"({float(p[0]):.2f}, {float(p[1]):.2f})"
        ours = ", ".join(fmt(p) + (" you" if i == int(obs["active"]) else "") for i, p in enumerate(obs["left_team"]))
        text += (f" Ball {fmt(obs['ball'])}. Your team: {ours}. "
                 f"Opponents: {', '.join(fmt(p) for p in obs['right_team'])}.")
    return f"{note} {text}".strip() if note else text


@dataclass(frozen=True)
class ActionChoiceScore:
    """The score of one single-step reply, in the shape of lmmr1's RewardResult (total, components, outcome)."""

    total: float
    components: dict[str, float]
    outcome: str
    """"invalid" (no action parsed), "correct" (one of the best actions) or "wrong"."""
    action: str | None = None


def action_choice_reward(response_text: str, record: Any) -> ActionChoiceScore:
    """Score a reply to a single-step football task (data_pipelines.football_tasks) from the action values
    its record holds: action_value = (v(a) - min v) / (max v - min v), 1 for a best action; no parsable
    action scores 0 ("invalid"). The format of the reply is left to the composing reward."""
    meta = record_meta(record)
    missing = [key for key in ("action_values", "best_actions") if key not in meta]
    if missing:
        raise ValueError(f"football action reward: the record's meta has no {' / '.join(missing)} (source "
                         f"{getattr(record, 'source', '?')!r}); it scores records of data_pipelines.football_tasks")
    values: Mapping[str, float] = meta["action_values"]
    action = parse_action(response_text)
    if action is None:
        return ActionChoiceScore(0.0, {"action_value": 0.0}, "invalid")
    best, worst = max(values.values()), min(values.values())
    score = 1.0 if best == worst else (values[action] - worst) / (best - worst)
    outcome = "correct" if action in meta["best_actions"] else "wrong"
    return ActionChoiceScore(score, {"action_value": score}, outcome, action)


def prompt_messages(observation_text: str, image: str = "topdown") -> list[dict[str, Any]]:
    """The chat of a football record: the rules, then the scene (one image placeholder per image the env
    shows for this `FootballConfig.image` kind) and the format."""
    system = {
        "topdown": SYSTEM_PROMPT, "engine": ENGINE_SYSTEM_PROMPT,
        "both": f"{SYSTEM_PROMPT}\nThe second image is the game's own frame of the same moment.",
        "none": f"You are playing a football game; you attack the goal on the right. {_ACTION_RULES}",
    }[image]
    n_images = {"topdown": 1, "engine": 1, "both": 2, "none": 0}[image]
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": f"{observation_text}\n{FORMAT_INSTRUCTION}"})
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


__all__ = [
    "ACADEMY_SCENARIOS", "ACTIONS", "ACTION_CODES", "ACTION_NAMES", "ActionChoiceScore", "FootballConfig",
    "FootballEnv", "action_choice_reward",
    "FootballSnapshot", "SYSTEM_PROMPT", "describe", "direction_toward", "keeps_running", "lmmr1_scenarios",
    "parse_action", "prompt_messages", "scenario_level", "scripted_action",
]
