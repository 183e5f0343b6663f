"""The football env on the real gfootball engine: scripted play scores, random play scores less, the shaped
reward's components add up (and telescope as their definitions say), the top-down image puts the ball and
the controlled player where the raw observation says, invalid replies are counted no-ops, lmmr1's scenario
files load through gfootball's own loader, and a missing gfootball names the extra to install."""

from __future__ import annotations

import copy
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gfootball")

from lmmr1.envs import ENVS, get_env, play_episode  # noqa: E402
from lmmr1.envs import football_reward as fr  # noqa: E402
from lmmr1.envs.football import (ACTIONS, FootballConfig, FootballEnv, action_choice_reward,  # noqa: E402
                                 lmmr1_scenarios, parse_action, scripted_action)
from lmmr1.envs.football_render import ACTIVE, BALL, GRASS, OURS, THEM, draw_topdown, pitch_to_pixel  # noqa: E402


@pytest.fixture(scope="module")
def env():
    env = FootballEnv(FootballConfig(image="none"))
    yield env
    env.close()


def answer(name: str) -> str:
    return f"<think>...</think><answer>{name}</answer>"


# ------------------------------------------------------------------------------------------ play and metric

def test_scripted_attacker_scores_and_random_play_scores_less(env):
    # academy_empty_goal: our player starts on the centre spot with the ball, the goal is empty. The scripted
    # attacker runs at the goal and shoots past x = 0.75: it scores in every seeded episode, and the goal and
    # (capped) shot terms are exact: goal = 20 * 2.0 = 40, shot = 20 * min(100 * clearance * 1, 2/3) = 40/3.
    seeds = range(6)
    scripted = [play_episode(env, {"scenario": "academy_empty_goal", "seed": s},
                             lambda _: answer(scripted_action(env.raw_observation))) for s in seeds]
    rng = random.Random(0)
    randoms = [play_episode(env, {"scenario": "academy_empty_goal", "seed": s},
                            lambda _: answer(rng.choice(ACTIONS))) for s in seeds]

    assert [r.infos[-1]["score"] for r in scripted] == [[1, 0]] * 6
    assert all(r.infos[-1]["done_reason"] == "goal" for r in scripted)
    for r in scripted:
        assert r.components["goal"] == 40.0
        assert r.components["shot"] == pytest.approx(40 / 3, abs=1e-12)
    random_goals = sum(r.infos[-1]["score"][0] for r in randoms)
    assert random_goals < 6
    mean = lambda results: sum(r.total_reward for r in results) / len(results)  # noqa: E731
    assert mean(randoms) < mean(scripted) - 20  # scripted ~66.7 per episode here, random play far below


def test_reward_components_add_up_and_telescope(env):
    # One engine step per turn (adaptive off), random actions in lmmr1's 3-vs-2 scenario. Per step the reward
    # is the sum of its components; over the episode the progress and opponents-passed terms telescope:
    #   sum(progress)         = 20 * 0.8 * (best x of the ball while ours - x at reset)
    #   sum(opponents_passed) = 20 * 1.0 * (opponents behind the ball when we last had it - at reset) / 11
    #   sum(goal)             = 40 * our goals
    one_step = FootballEnv(FootballConfig(image="none", adaptive=False))
    try:
        for seed in range(3):
            one_step.reset({"scenario": "lmmr1_4_three_vs_two", "seed": seed})
            obs = one_step.raw_observation
            x0, best_x, behind0, behind = obs["ball"][0], obs["ball"][0], fr.opponents_behind(obs), None
            totals = dict.fromkeys([*fr.COMPONENTS, "format"], 0.0)
            total_reward, done, rng = 0.0, False, random.Random(seed)
            while not done:
                _, reward, done, info = one_step.step(answer(rng.choice(ACTIONS)))
                assert reward == pytest.approx(sum(info["components"].values()), abs=1e-12)
                total_reward += reward
                for k, v in info["components"].items():
                    totals[k] += v
                obs = one_step.raw_observation
                if fr.we_have_ball(obs):
                    best_x, behind = max(best_x, obs["ball"][0]), fr.opponents_behind(obs)
            assert info["total_reward"] == pytest.approx(total_reward, abs=1e-9)
            assert total_reward == pytest.approx(sum(totals.values()), abs=1e-9)
            assert totals["progress"] == pytest.approx(16.0 * (best_x - x0), abs=1e-9)
            expected_passed = 0.0 if behind is None else 20.0 * (behind - behind0) / 11
            assert totals["opponents_passed"] == pytest.approx(expected_passed, abs=1e-9)
            assert totals["goal"] == 40.0 * info["score"][0]
    finally:
        one_step.close()


def _obs(**overrides):
    obs = {"ball": np.array([0.5, 0.0, 0.1]), "ball_direction": np.zeros(3), "ball_owned_team": 0,
           "ball_owned_player": 1, "left_team": np.array([[-1.0, 0.0], [0.5, 0.0], [0.3, 0.2]]),
           "right_team": np.array([[0.4, 0.3], [0.9, -0.4]]), "score": [0, 0], "steps_left": 300, "active": 1}
    obs.update(overrides)
    return obs


def test_shaped_reward_worked_example():
    # Before: best ball x 0.2, no opponent behind the ball. After the step we have the ball at x = 0.5 and
    # one opponent (x = 0.4) is behind it; the action is a shot.
    #   progress         = 20 * 0.8 * (0.5 - 0.2)                      = 4.8
    #   opponents_passed = 20 * 1.0 * (1 - 0) / 11                     = 1.8181...
    #   shot             = 20 * min(100 * clearance * distance, 2/3): distance factor = max(0.5, 0) = 0.5,
    #                      the lanes to goal pass >= 0.2 from both opponents, so 100 * 0.2 * 0.5 > 2/3: capped
    #                    = 13.333...
    state = fr.ShapingState(best_ball_x=0.2, opponents_behind=0)
    parts, after, lost = fr.shaped_reward(state, _obs(), fr.SHOT_ACTION)
    assert parts == pytest.approx({"progress": 4.8, "opponents_passed": 20 / 11, "goal": 0.0, "possession": 0.0,
                                   "pass": 0.0, "shot": 40 / 3}, abs=1e-12)
    assert not lost and after.shot_taken and after.best_ball_x == 0.5 and after.opponents_behind == 1
    # A goal is paid once: with one goal already counted, a score of 1-0 pays 0, 2-0 pays 20 * 2.0 = 40.
    counted = fr.ShapingState(best_ball_x=0.5, opponents_behind=1, goals=1)
    assert fr.shaped_reward(counted, _obs(score=[1, 0]), 0)[0]["goal"] == 0.0
    assert fr.shaped_reward(counted, _obs(score=[2, 0]), 0)[0]["goal"] == 40.0
    # A second shot before the ball has left and come back is not paid again.
    again, _, _ = fr.shaped_reward(after, _obs(), fr.SHOT_ACTION)
    assert again["shot"] == 0.0 and again["progress"] == 0.0

    # The opponents win the ball with 300 of 400 steps left: possession = 20 * 1.0 * (1 - 300/400) = 5.0.
    parts, _, lost = fr.shaped_reward(state, _obs(ball_owned_team=1, ball_owned_player=0), 5)
    assert lost and parts["possession"] == 5.0 and parts["progress"] == 0.0

    # A pass (pending, last owner player 1) reaches player 2 at (0.3, 0.2), which now has the ball:
    #   pass_clearance: opponent (0.4, 0.3) is at distance sqrt(0.02) ahead-ish of the ball, cos = (0.1*0.7 +
    #   0.1*-0.2) / (sqrt(0.02) * sqrt(0.53)); opponent (0.9, -0.4) likewise; the value is their min, below.
    passing = fr.ShapingState(best_ball_x=0.5, opponents_behind=0, pass_pending=True, last_owner=1)
    receiver = _obs(ball=np.array([0.3, 0.2, 0.1]), ball_owned_player=2)
    to_goal = np.array([0.7, -0.2])
    expected = min(np.linalg.norm(o - [0.3, 0.2]) / (10 * max((o - [0.3, 0.2]) @ to_goal
                                                               / np.linalg.norm(o - [0.3, 0.2])
                                                               / np.linalg.norm(to_goal), 0) + 1)
                   for o in np.array([[0.4, 0.3], [0.9, -0.4]]))
    parts, after, _ = fr.shaped_reward(passing, receiver, 0)
    assert parts["pass"] == pytest.approx(20 * 20 * expected, abs=1e-12)
    assert after.pass_scale == 0.75 and not after.pass_pending and after.last_owner == 2


def test_clearances_on_simple_geometry():
    # pass: ball at the origin, one opponent 0.3 straight ahead (cos 1: 0.3 / (10 + 1)) and one 0.2 behind
    # (cos -1: 0.2 / 1): min = 0.3 / 11.
    obs = _obs(ball=np.array([0.0, 0.0, 0.0]), right_team=np.array([[0.3, 0.0], [-0.2, 0.0]]))
    assert fr.pass_clearance(obs) == pytest.approx(0.3 / 11, abs=1e-15)
    # shot: one opponent 0.3 behind the ball. On each path to (1, y) the closest sample is the first, at
    # (0.01, 0.01 y), distance sqrt(0.31^2 + (0.01 y)^2); the widest lane is |y| = 0.044.
    obs = _obs(ball=np.array([0.0, 0.0, 0.0]), right_team=np.array([[-0.3, 0.0]]))
    assert fr.shot_clearance(obs) == pytest.approx(np.hypot(0.31, 0.00044), abs=1e-12)
    assert fr.shot_distance(_obs(ball=np.array([0.8, 0.0, 0.0]))) == 1.0  # 0.2 from the line < 0.3
    assert fr.shot_distance(_obs(ball=np.array([0.4, 0.0, 0.0]))) == pytest.approx(0.4)


# ------------------------------------------------------------------------------------------------- the image

def test_topdown_image_puts_ball_and_players_where_the_observation_says(env):
    # academy_3_vs_1_with_keeper at reset: ball (0.62, 0), we control our keeper (index 0) at (-1.011, 0),
    # teammate 2 at (0.708, 0.203), opponents at (0.758, 0) and (1.011, 0). At 672 x 336 the scale is
    # 300 px per unit and (px, py) = (336 + 300 x, 168 + 300 y):
    #   ball (522.0, 168.0), keeper (32.7, 168.0), teammate 2 (548.3, 229.0), opponent 1 (563.5, 168.0).
    env.reset({"scenario": "academy_3_vs_1_with_keeper", "seed": 0})
    obs = env.raw_observation
    assert obs["active"] == 0 and obs["ball_owned_team"] == -1
    assert pitch_to_pixel(0.62, 0.0) == (522.0, 168.0)

    def at(image, x, y):
        px, py = pitch_to_pixel(x, y, image.size)
        return image.getpixel((round(px), round(py)))

    image = draw_topdown(obs)
    assert image.size == (672, 336)
    assert at(image, *obs["ball"][:2]) == BALL
    assert at(image, *obs["left_team"][0]) == ACTIVE
    assert at(image, *obs["left_team"][2]) == OURS
    assert at(image, *obs["right_team"][1]) == THEM
    assert at(image, -0.5, 0.3) == GRASS

    # Move the ball and hand control to teammate 2: the picture follows the numbers.
    moved = copy.deepcopy(obs)
    moved["ball"] = np.array([-0.5, 0.25, 0.1])
    moved["active"] = 2
    image = draw_topdown(moved)
    assert image.getpixel((186, 243)) == BALL  # (336 - 150, 168 + 75)
    assert at(image, 0.62, 0.0) == OURS  # where the ball was: now teammate 1's disc (x 0.607, radius 6.6 px)
    assert at(image, *obs["left_team"][2]) == ACTIVE
    assert at(image, *obs["left_team"][0]) == OURS

    # Any size: the same layout scaled (336 x 168: 150 px per unit).
    small = draw_topdown(obs, (336, 168))
    assert small.size == (336, 168) and small.getpixel((261, 84)) == BALL  # (168 + 150 * 0.62, 84)


def test_env_observation_has_the_image_and_the_text():
    env = FootballEnv(FootballConfig(image="topdown", image_size=(448, 224)))
    try:
        observation = env.reset({"scenario": "academy_empty_goal_close", "seed": 0})
        assert [im.size for im in observation.images] == [(448, 224)]
        assert observation.text == "Current game scene: score 0-0, 401 steps left, nobody has the ball."
    finally:
        env.close()


# ------------------------------------------------------------------------------------------------- actions

@pytest.mark.parametrize("text, expected", [
    ("<think>run</think><answer>action_right</answer>", "action_right"),
    ("<think>x</think><answer> Action_Shot </answer>", "action_shot"),
    ("<answer>action_left</answer> then <answer>action_shot</answer>", "action_shot"),  # the last answer
    ("# analyze\nthe goal is open\n# action\naction_shot\n", "action_shot"),  # MageBench's form
    ("action_top_right", "action_top_right"),
    ("<answer>`action_sprint`</answer>", "action_sprint"),
    ("<answer>shoot</answer>", None),
    ("<answer>action_idle</answer>", None),  # a gfootball action the model is not offered
    ("<answer>action_builtin_ai</answer>", None),
    ("# action\n", None),
    ("I think I should shoot.", None),
    ("", None),
])
def test_parse_action(text, expected):
    assert parse_action(text) == expected


def test_invalid_reply_is_a_counted_noop_with_the_format_penalty(env):
    env.reset({"scenario": "academy_empty_goal_close", "seed": 1})
    before = env.raw_observation
    observation, reward, done, info = env.step("I will shoot now!")
    assert reward == -1.0 and not done
    assert info["valid"] is False and info["action"] is None and info["engine_steps"] == 0
    assert info["turn"] == 1 and info["invalid_turns"] == 1
    assert info["components"]["format"] == -1.0 and sum(info["components"].values()) == -1.0
    assert np.array_equal(env.raw_observation["ball"], before["ball"])  # the game did not advance
    assert observation.text.startswith("Your reply named no valid action.")
    _, _, _, info = env.step(answer("action_right"))
    assert info["valid"] and info["engine_steps"] == 1 and info["turn"] == 2


def test_adaptive_turns(env):
    # MageBench's adaptive turns in lmmr1_3 (striker with the ball, teammate free at (0.55, 0.28)): the first
    # turn is one engine step; repeating "right" runs (MAX_AUTO_STEPS = 10 here, nobody in the way); a new
    # direction is one step; a short pass is played out until the teammate (index 2) has the ball.
    env.reset({"scenario": "lmmr1_3_defender_in_the_way", "seed": 0})
    infos = [env.step(answer(name))[3] for name in ("action_right", "action_right", "action_top_right")]
    assert [info["engine_steps"] for info in infos] == [1, 10, 1]
    _, _, done, info = env.step(answer("action_short_pass"))
    obs = env.raw_observation
    assert not done and (obs["ball_owned_team"], obs["ball_owned_player"]) == (0, 2)
    assert 2 < info["engine_steps"] <= 41 and info["components"]["pass"] > 0
    # Without adaptive turns every reply is one engine step.
    plain = FootballEnv(FootballConfig(image="none", adaptive=False))
    try:
        plain.reset({"scenario": "lmmr1_3_defender_in_the_way", "seed": 0})
        steps = [plain.step(answer(n))[3]["engine_steps"] for n in ("action_right", "action_right", "action_short_pass")]
        assert steps == [1, 1, 1]
    finally:
        plain.close()


def test_max_turns_ends_the_episode():
    env = FootballEnv(FootballConfig(image="none", max_turns=3))
    try:
        env.reset({"scenario": "academy_empty_goal", "seed": 0})
        dones = [env.step("no action here")[2] for _ in range(3)]
        assert dones == [False, False, True]
        with pytest.raises(RuntimeError, match="over"):
            env.step(answer("action_right"))
    finally:
        env.close()


def test_same_record_same_game(env):
    record = {"meta": {"scenario": "lmmr1_5_counter_attack", "seed": 11}}
    trajectories = []
    for _ in range(2):
        env.reset(record)
        rewards = [env.step(answer(name))[1] for name in ("action_right",) * 3 + ("action_short_pass",)]
        trajectories.append((rewards, env.raw_observation["ball"].tolist()))
    assert trajectories[0] == trajectories[1]


def test_prefix_reset_rebuilds_the_state(env):
    env.reset({"scenario": "lmmr1_3_defender_in_the_way", "seed": 5})
    for name in ("action_right", "action_top_right", "action_top_right"):
        env.step(answer(name))
    prefix, ball = env.engine_actions, env.raw_observation["ball"].copy()
    env.reset({"scenario": "lmmr1_3_defender_in_the_way", "seed": 5, "prefix": prefix})
    assert np.array_equal(env.raw_observation["ball"], ball)


def test_action_choice_reward_reads_the_record_values():
    record = {"meta": {"action_values": {"action_shot": 10.0, "action_right": 4.0, "action_left": -10.0},
                       "best_actions": ["action_shot"]}}
    best = action_choice_reward(answer("action_shot"), record)
    assert (best.total, best.outcome) == (1.0, "correct")
    middle = action_choice_reward(answer("action_right"), record)  # (4 - (-10)) / (10 - (-10)) = 0.7
    assert middle.total == pytest.approx(0.7) and middle.outcome == "wrong"
    invalid = action_choice_reward("shoot!", record)
    assert (invalid.total, invalid.outcome) == (0.0, "invalid")


# ----------------------------------------------------------------------------------------------- scenarios

def test_lmmr1_scenarios_load_through_gfootballs_loader(env):
    import gfootball

    names = lmmr1_scenarios()
    assert len(names) == 6 and names == sorted(names)
    site = Path(gfootball.__file__).parent / "scenarios"
    for name in names:
        observation = env.reset({"scenario": name, "seed": 0})
        module = sys.modules[f"gfootball.scenarios.{name}"]
        assert Path(module.__file__).parent == Path(__file__).parents[1] / "lmmr1" / "envs" / "scenarios"
        assert not (site / f"{name}.py").exists()  # nothing was written into site-packages
        assert observation.text.startswith("Current game scene")
    # The opponents sit where the scenario file says, in the observation's frame (added mirrored).
    env.reset({"scenario": "lmmr1_3_defender_in_the_way", "seed": 0})
    assert env.raw_observation["right_team"][1] == pytest.approx([0.55 * 1.011, 0.0], abs=0.01)


def test_scenario_by_path(env, tmp_path):
    path = tmp_path / "my_drill.py"
    path.write_text(textwrap.dedent("""
        from gfootball.scenarios import Team, e_PlayerRole_CF, e_PlayerRole_GK

        def build_scenario(builder):
            builder.config().game_duration = 50
            builder.config().deterministic = False
            builder.config().end_episode_on_score = True
            builder.SetBallPosition(-0.3, 0.1)
            builder.SetTeam(Team.e_Left)
            builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)
            builder.AddPlayer(-0.31, 0.1, e_PlayerRole_CF)
            builder.SetTeam(Team.e_Right)
            builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)
    """))
    env.reset({"scenario": str(path), "seed": 0})
    assert env.raw_observation["ball"][:2] == pytest.approx([-0.3, 0.1], abs=1e-6)
    assert env.raw_observation["steps_left"] == 51


def test_unknown_scenario_lists_the_choices(env):
    with pytest.raises(KeyError, match="academy_empty_goal.*lmmr1_1_open_goal_angle"):
        env.reset({"scenario": "no_such_drill"})


def test_registry():
    assert get_env("football") is FootballEnv and ENVS["football"].config_class is FootballConfig
    with pytest.raises(KeyError, match=r"valid envs: \['football', 'sokoban'\]"):
        get_env("chess")


def test_missing_gfootball_names_the_extra(monkeypatch):
    from lmmr1.utils.optional import MissingExtraError

    for name in [m for m in sys.modules if m == "gfootball" or m.startswith("gfootball.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gfootball", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"football environment needs `gfootball.*`football` extra"):
        FootballEnv().reset({"scenario": "academy_empty_goal"})


# ----------------------------------------------------------------------------------------- engine frames

@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="the engine's frames need a display (xvfb-run)")
def test_engine_frames_under_xvfb(tmp_path):
    # The engine's own 3D frame next to the top-down image, rendered on a virtual display (~15 s: the
    # rendering engine starts slowly on a CPU). The frame is mostly grass: green is its strongest channel.
    script = textwrap.dedent("""
        import numpy as np
        from lmmr1.envs.football import FootballConfig, FootballEnv
        env = FootballEnv(FootballConfig(image="both", engine_resolution=(320, 180)))
        observation = env.reset({"scenario": "academy_empty_goal_close", "seed": 0})
        observation, *_ = env.step("<answer>action_right</answer>")
        topdown, frame = observation.images
        mean = np.asarray(frame, dtype=float).reshape(-1, 3).mean(0)
        print("SIZES", topdown.size, frame.size, "GREEN", bool(mean[1] > mean[0] and mean[1] > mean[2]))
        env.close()
    """)
    result = subprocess.run(["xvfb-run", "-a", sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=240, cwd=Path(__file__).parents[1], env={**os.environ, "PYTHONPATH": "."})
    assert "SIZES (672, 336) (320, 180) GREEN True" in result.stdout, result.stderr[-2000:]


def test_engine_frames_without_a_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(RuntimeError, match="xvfb-run"):
        FootballEnv(FootballConfig(image="engine")).reset({"scenario": "academy_empty_goal"})
