"""lmmr1 football scenario, difficulty 1 of 6: an open goal from a wide angle.

Our striker has the ball on the right side of the box (0.70, 0.20); the opponents' goalkeeper is out of the
picture at the far end, so a run and a shot score. Teaches: aim at the goal, shoot when close.
"""

from gfootball.scenarios import Team, e_PlayerRole_CF, e_PlayerRole_GK

# Opponents are listed in the observation's coordinates; gfootball places the right team in its own
# (mirrored) frame, so each is added at (-x, -y).
OPPONENTS = [(-1.0, 0.0, e_PlayerRole_GK)]  # the keeper at our end: the goal is empty


def build_scenario(builder):
    builder.config().game_duration = 400
    builder.config().deterministic = False
    builder.config().offsides = False
    builder.config().end_episode_on_score = True
    builder.config().end_episode_on_out_of_play = True
    builder.config().end_episode_on_possession_change = True
    builder.config().right_team_difficulty = 0.0
    builder.config().left_team_difficulty = 1.0
    builder.SetBallPosition(0.70, 0.20)

    builder.SetTeam(Team.e_Left)
    builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)
    builder.AddPlayer(0.69, 0.20, e_PlayerRole_CF)

    builder.SetTeam(Team.e_Right)
    for x, y, role in OPPONENTS:
        builder.AddPlayer(-x, -y, role)
