"""lmmr1 football scenario, difficulty 6 of 6: building up from the back against a press, six a side.

Our centre back has the ball at (-0.60, 0.00); five opponents press high and a keeper waits; the opponents'
AI is strong (0.7). Teaches: keep possession under pressure and progress through passes.
"""

from gfootball.scenarios import (Team, e_PlayerRole_CB, e_PlayerRole_CF, e_PlayerRole_CM, e_PlayerRole_GK,
                                 e_PlayerRole_LB, e_PlayerRole_LM, e_PlayerRole_RB, e_PlayerRole_RM)

# Opponents in the observation's coordinates, added mirrored at (-x, -y) (gfootball's right-team frame).
OPPONENTS = [
    (1.0, 0.0, e_PlayerRole_GK),
    (-0.45, 0.0, e_PlayerRole_CF), (-0.35, -0.22, e_PlayerRole_LM), (-0.35, 0.22, e_PlayerRole_RM),
    (-0.10, -0.08, e_PlayerRole_CM), (0.30, 0.05, e_PlayerRole_CB),
]


def build_scenario(builder):
    builder.config().game_duration = 400
    builder.config().deterministic = False
    builder.config().offsides = False
    builder.config().end_episode_on_score = True
    builder.config().end_episode_on_out_of_play = True
    builder.config().end_episode_on_possession_change = True
    builder.config().right_team_difficulty = 0.7
    builder.config().left_team_difficulty = 1.0
    builder.SetBallPosition(-0.60, 0.0)

    builder.SetTeam(Team.e_Left)
    builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)
    builder.AddPlayer(-0.61, 0.0, e_PlayerRole_CB)
    builder.AddPlayer(-0.55, -0.30, e_PlayerRole_LB)
    builder.AddPlayer(-0.55, 0.30, e_PlayerRole_RB)
    builder.AddPlayer(-0.30, 0.05, e_PlayerRole_CM)
    builder.AddPlayer(0.00, 0.0, e_PlayerRole_CF)

    builder.SetTeam(Team.e_Right)
    for x, y, role in OPPONENTS:
        builder.AddPlayer(-x, -y, role)
