"""MageBench's shaped football reward, as pure functions over gfootball's raw observation.

Source: microsoft/MageBench `env/football_env.py::FootballEnv.get_reward` (@5ebd4fb), the reward behind
MageBench's Football metric (the accumulated reward of an episode) and, by LMM-R1's account, behind its
"complex Football Game tasks". After every engine step the reward is a sum of six components, each a
weight times a quantity, the whole times SCALE = 20:

    progress          W_PROGRESS  * max(0, ball_x - best_ball_x)     while our team has the ball; best_ball_x
                                                                      is the furthest x the ball reached so far
    opponents_passed  W_OPPONENTS * (n_behind - n_behind_before) / 11 while our team has the ball; n_behind =
                                                                      opponents with x < ball_x (can be < 0)
    goal              W_GOAL      * (goals scored this step)
    possession        W_POSSESSION * (1 - steps_left / EPISODE_STEPS) when the opponents get the ball; the
                                                                      episode ends. MageBench's sign: a bonus for
                                                                      the time the ball was kept, never negative.
    pass              W_PASS * pass_clearance * pass_scale            when a pass we made reaches a teammate;
                                                                      pass_scale starts at 1, *= PASS_DECAY each
    shot              min(W_SHOT * shot_clearance * shot_distance, W_GOAL / 3)
                                                                      on the shot action while we have the ball,
                                                                      once until we have the ball again

Coordinates are gfootball's: x in [-1, 1] (we attack the goal at x = +1), y in [-0.42, 0.42] (+y is the
bottom of the screen), the opponents' goal mouth spans y in [-0.044, 0.044].

    pass_clearance(obs) = min over opponents o of  |o - ball| / (PASS_BETA * max(cos θ_o, 0) + PASS_EPS)
        θ_o: angle between (o - ball) and (goal centre - ball): an opponent near and in front of the new ball
        carrier makes the pass worth little; opponents behind count only by distance.
    shot_clearance(obs) = max over 5 points of the goal mouth of the smallest distance from any opponent to
        the straight path ball -> point (sampled at 100 points): the widest open lane to goal.
    shot_distance(obs) = 1 if 1 - ball_x < SHOT_CLOSE else max(0, ball_x)   (1 - distance to the goal line).

Where lmmr1 differs from MageBench's code, and why (each an obvious slip there, fixed here):
- The baseline (best_ball_x, n_behind) is the observation at reset. MageBench takes it from the observation
  after the first action and scores that first action 0.
- `components` holds exactly what was added: the pass component includes pass_scale and the shot component
  its cap, so the components always add up to the total. (MageBench's `detailed` list omits both.)
- A pass counts only when a *teammate* receives it. MageBench also pays it when the goalkeeper catches a shot
  (a change of `ball_owned_player` index across teams).
- Any change of possession to the opponents ends the episode with the possession term. MageBench exempts the
  step of a shot, but its exemption is cleared as soon as the ball leaves the shooter, so in effect it does
  the same; here that is said directly, and `shot_taken` only stops repeated shot rewards until our team has
  the ball again after it was in the air.
- The goal term is paid once per goal (MageBench pays it on every step while the score is > 0; its scenarios
  end the episode on a goal, so the two agree there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

SCALE = 20.0  # MageBench `scaling`: every component is multiplied by it
W_PROGRESS = 0.8  # MageBench l1, "position moved"
W_OPPONENTS = 1.0  # MageBench l2, "opponent passed" (divided by TEAM_SIZE)
W_GOAL = 2.0  # MageBench l3, "scored"
W_POSSESSION = 1.0  # MageBench l4, "stoled"
W_PASS = 20.0  # MageBench l5, "pass success"
W_SHOT = 100.0  # MageBench l6, "shot"
SHOT_CAP = W_GOAL / 3  # MageBench: the shot term never exceeds a third of a goal
PASS_DECAY = 0.75  # MageBench: each successful pass is worth 0.75x the previous one
PASS_BETA = 10.0  # MageBench get_pass_clear `beta`
PASS_EPS = 1.0  # MageBench get_pass_clear `epsilon`
SHOT_CLOSE = 0.3  # MageBench get_shot_distance: closer than this to the goal line, distance factor 1
SHOT_SAMPLES = 100  # MageBench get_shot_clear: points sampled along each shot path
GOAL_MOUTH_Y = (-0.044, -0.02, 0.0, 0.022, 0.044)  # MageBench get_shot_clear `goal_points` (at x = 1)
TEAM_SIZE = 11  # MageBench divides the opponents-passed count by 11 whatever the team size
EPISODE_STEPS = 400  # MageBench NSTEPS: the game_duration of all its scenarios

# gfootball action indices (action sets "default"/"v2") that the shaping reacts to.
PASS_ACTIONS = frozenset({9, 10, 11})  # long, high, short pass
SHOT_ACTION = 12

COMPONENTS = ("progress", "opponents_passed", "goal", "possession", "pass", "shot")

LEFT, RIGHT = 0, 1  # gfootball `ball_owned_team`: 0 us (left), 1 them (right), -1 nobody


@dataclass(frozen=True)
class ShapingState:
    """What the reward remembers between engine steps (MageBench `reward_utils`)."""

    best_ball_x: float
    """Furthest x the ball has reached while we had it (starts at the ball's x at reset)."""
    opponents_behind: int
    """Opponents behind the ball when we last had it."""
    goals: int = 0
    """Our goals so far (the goal term pays the increase)."""
    pass_scale: float = 1.0
    """Multiplier of the next successful pass."""
    pass_pending: bool = False
    """A pass action was taken and no teammate has received the ball since."""
    last_owner: int = -1
    """Index of the last player of ours who had the ball (-1: none yet)."""
    shot_taken: bool = False
    """A shot was rewarded and our team has not had the ball back since it was in the air."""
    ball_free_since_shot: bool = False
    """The ball was owned by nobody at some step after the rewarded shot."""


def ball_xy(obs: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(obs["ball"], dtype=np.float64)[:2]


def we_have_ball(obs: Mapping[str, Any]) -> bool:
    """True when a player of ours (left team) owns the ball."""
    return int(obs["ball_owned_team"]) == LEFT and int(obs["ball_owned_player"]) != -1


def opponents_behind(obs: Mapping[str, Any]) -> int:
    """Number of opponents whose x is smaller than the ball's (MageBench `count_pass`)."""
    return int(np.sum(np.asarray(obs["right_team"], dtype=np.float64)[:, 0] < ball_xy(obs)[0]))


def pass_clearance(obs: Mapping[str, Any]) -> float:
    """min over opponents of distance / (PASS_BETA * max(cos θ, 0) + PASS_EPS), θ measured against the
    direction ball -> goal centre (1, 0). An opponent exactly on the ball counts as distance 0."""
    ball = ball_xy(obs)
    to_goal = np.array([1.0, 0.0]) - ball  # [2]
    to_opponents = np.asarray(obs["right_team"], dtype=np.float64) - ball  # [M, 2]
    dist = np.linalg.norm(to_opponents, axis=1)  # [M]
    norm = dist * np.linalg.norm(to_goal)
    cos = np.divide(to_opponents @ to_goal, norm, out=np.zeros_like(dist), where=norm > 0)  # [M]
    return float(np.min(dist / (PASS_BETA * np.maximum(cos, 0.0) + PASS_EPS)))


def shot_clearance(obs: Mapping[str, Any]) -> float:
    """The widest open lane to goal: for each goal-mouth point, the smallest opponent distance to the
    path ball -> point (sampled at fractions 1/100 .. 100/100); the largest of these over the points."""
    ball = ball_xy(obs)
    targets = np.array([[1.0, y] for y in GOAL_MOUTH_Y])  # [T, 2]
    fractions = np.arange(1, SHOT_SAMPLES + 1) / SHOT_SAMPLES  # [S]
    paths = ball + fractions[None, :, None] * (targets - ball)[:, None, :]  # [T, S, 2]
    opponents = np.asarray(obs["right_team"], dtype=np.float64)  # [M, 2]
    gaps = np.linalg.norm(paths[:, :, None, :] - opponents[None, None, :, :], axis=-1)  # [T, S, M]
    return float(gaps.min(axis=(1, 2)).max())


def shot_distance(obs: Mapping[str, Any]) -> float:
    """1 within SHOT_CLOSE of the goal line, else 1 - distance to it, floored at 0 (= max(0, ball_x))."""
    distance = 1.0 - ball_xy(obs)[0]
    return 1.0 if distance < SHOT_CLOSE else max(1.0 - distance, 0.0)


def initial_state(obs: Mapping[str, Any]) -> ShapingState:
    """The reward's memory at reset: the ball's x and the opponents behind it."""
    return ShapingState(best_ball_x=float(ball_xy(obs)[0]), opponents_behind=opponents_behind(obs),
                        goals=int(obs["score"][0]))


def shaped_reward(state: ShapingState, obs: Mapping[str, Any], action: int
                  ) -> tuple[dict[str, float], ShapingState, bool]:
    """Score one engine step. `obs` is the observation after the step, `action` the gfootball action index
    taken. Returns (components scaled by SCALE, the next state, whether the opponents got the ball)."""
    raw = dict.fromkeys(COMPONENTS, 0.0)
    ours = we_have_ball(obs)
    owner = int(obs["ball_owned_player"])
    ball_x = float(ball_xy(obs)[0])
    s = state

    if ours:
        raw["progress"] = W_PROGRESS * max(0.0, ball_x - s.best_ball_x)
        behind = opponents_behind(obs)
        raw["opponents_passed"] = W_OPPONENTS * (behind - s.opponents_behind) / TEAM_SIZE
        s = replace(s, best_ball_x=max(s.best_ball_x, ball_x), opponents_behind=behind)

    goals = int(obs["score"][0])
    raw["goal"] = W_GOAL * max(0, goals - s.goals)
    s = replace(s, goals=goals)

    lost = int(obs["ball_owned_team"]) == RIGHT
    if lost:
        raw["possession"] = W_POSSESSION * (1.0 - float(obs["steps_left"]) / EPISODE_STEPS)

    if s.pass_pending and ours and s.last_owner != -1 and owner != s.last_owner:
        raw["pass"] = W_PASS * pass_clearance(obs) * s.pass_scale
        s = replace(s, pass_scale=s.pass_scale * PASS_DECAY, pass_pending=False)
    if ours:
        s = replace(s, last_owner=owner)
    if action in PASS_ACTIONS:
        s = replace(s, pass_pending=True)

    if s.shot_taken:
        if owner == -1:
            s = replace(s, ball_free_since_shot=True)
        elif ours and s.ball_free_since_shot:
            s = replace(s, shot_taken=False, ball_free_since_shot=False)
    if action == SHOT_ACTION and ours and not s.shot_taken:
        raw["shot"] = min(W_SHOT * shot_clearance(obs) * shot_distance(obs), SHOT_CAP)
        s = replace(s, shot_taken=True, ball_free_since_shot=False)

    return {name: SCALE * value for name, value in raw.items()}, s, lost
