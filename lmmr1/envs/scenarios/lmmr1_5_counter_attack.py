"""lmmr1 football scenario, difficulty 5 of 6: a counter-attack from our own half, chased.

Our midfielder has the ball at (-0.20, 0.00) with three teammates ahead and wide; three opponents chase from
behind, two defenders and the keeper wait. Teaches: move the ball forward fast (passes beat runs), keep it.
"""

from gfootball.scenarios import (Team, e_PlayerRole_CB, e_PlayerRole_CF, e_PlayerRole_CM, e_PlayerRole_GK,
                                 e_PlayerRole_LM, e_PlayerRole_RM)

# Opponents in the observation's coordinates, added mirrored at (-x, -y) (gfootball's right-team frame).
OPPONENTS = [
    (1.0, 0.0, e_PlayerRole_GK),
    (0.55, -0.10, e_PlayerRole_CB), (0.55, 0.10, e_PlayerRole_CB),
    (-0.32, -0.05, e_PlayerRole_CM), (-0.35, 0.15, e_PlayerRole_CM), (-0.40, -0.20, e_PlayerRole_CF),
]


def build_scenario(builder):
    builder.config().game_duration = 400
    builder.config().deterministic = False
    builder.config().offsides = False
    builder.config().end_episode_on_score = True
    builder.config().end_episode_on_out_of_play = True
    builder.config().end_episode_on_possession_change = True
    builder.config().right_team_difficulty = 0.5
    builder.config().left_team_difficulty = 1.0
    builder.SetBallPosition(-0.20, 0.0)

    builder.SetTeam(Team.e_Left)
    builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)
    builder.AddPlayer(-0.21, 0.0, e_PlayerRole_CM)
    builder.AddPlayer(0.05, -0.28, e_PlayerRole_LM)
    builder.AddPlayer(0.05, 0.28, e_PlayerRole_RM)
    builder.AddPlayer(0.20, 0.02, e_PlayerRole_CF)

    builder.SetTeam(Team.e_Right)
    for x, y, role in OPPONENTS:
        builder.AddPlayer(-x, -y, role)
