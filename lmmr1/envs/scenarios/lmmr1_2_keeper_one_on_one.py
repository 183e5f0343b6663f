"""lmmr1 football scenario, difficulty 2 of 6: one on one with the goalkeeper.

Our striker has the ball at (0.45, -0.10) with only the opponents' goalkeeper (weak AI) between him and the
goal. Teaches: approach, then shoot into the open side of the goal.
"""

from gfootball.scenarios import Team, e_PlayerRole_CF, e_PlayerRole_GK

# Opponents in the observation's coordinates, added mirrored at (-x, -y) (gfootball's right-team frame).
OPPONENTS = [(1.0, 0.0, e_PlayerRole_GK)]


def build_scenario(builder):
    builder.config().game_duration = 400
    builder.config().deterministic = False
    builder.config().offsides = False
    builder.config().end_episode_on_score = True
    builder.config().end_episode_on_out_of_play = True
    builder.config().end_episode_on_possession_change = True
    builder.config().right_team_difficulty = 0.2
    builder.config().left_team_difficulty = 1.0
    builder.SetBallPosition(0.45, -0.10)

    builder.SetTeam(Team.e_Left)
    builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)
    builder.AddPlayer(0.44, -0.10, e_PlayerRole_CF)

    builder.SetTeam(Team.e_Right)
    for x, y, role in OPPONENTS:
        builder.AddPlayer(-x, -y, role)
