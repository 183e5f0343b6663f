"""lmmr1 football scenario, difficulty 4 of 6: three attackers against two defenders and a keeper.

Attack from just past the halfway line: our centre forward has the ball at (0.10, 0.00), wingers at
(0.15, -0.25) and (0.15, 0.25); two centre backs at (0.50, -0.08) and (0.50, 0.08). Teaches: draw a
defender, pass into space, finish.
"""

from gfootball.scenarios import (Team, e_PlayerRole_CB, e_PlayerRole_CF, e_PlayerRole_GK, e_PlayerRole_LM,
                                 e_PlayerRole_RM)

# Opponents in the observation's coordinates, added mirrored at (-x, -y) (gfootball's right-team frame).
OPPONENTS = [(1.0, 0.0, e_PlayerRole_GK), (0.50, -0.08, e_PlayerRole_CB), (0.50, 0.08, e_PlayerRole_CB)]


def build_scenario(builder):
    builder.config().game_duration = 400
    builder.config().deterministic = False
    builder.config().offsides = False
    builder.config().end_episode_on_score = True
    builder.config().end_episode_on_out_of_play = True
    builder.config().end_episode_on_possession_change = True
    builder.config().right_team_difficulty = 0.4
    builder.config().left_team_difficulty = 1.0
    builder.SetBallPosition(0.10, 0.0)

    builder.SetTeam(Team.e_Left)
    builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)
    builder.AddPlayer(0.09, 0.0, e_PlayerRole_CF)
    builder.AddPlayer(0.15, -0.25, e_PlayerRole_LM)
    builder.AddPlayer(0.15, 0.25, e_PlayerRole_RM)

    builder.SetTeam(Team.e_Right)
    for x, y, role in OPPONENTS:
        builder.AddPlayer(-x, -y, role)
