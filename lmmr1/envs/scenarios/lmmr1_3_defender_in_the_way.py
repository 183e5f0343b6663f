"""lmmr1 football scenario, difficulty 3 of 6: a defender in the way, a teammate free on the wing.

Our striker has the ball at (0.30, 0.00); a centre back stands at (0.55, 0.00) between him and the goal,
a teammate is free at (0.55, 0.28). Teaches: dribble round the defender or pass to the free man, then shoot.
"""

from gfootball.scenarios import Team, e_PlayerRole_CB, e_PlayerRole_CF, e_PlayerRole_GK, e_PlayerRole_RM

# Opponents in the observation's coordinates, added mirrored at (-x, -y) (gfootball's right-team frame).
OPPONENTS = [(1.0, 0.0, e_PlayerRole_GK), (0.55, 0.0, e_PlayerRole_CB)]


def build_scenario(builder):
    builder.config().game_duration = 400
    builder.config().deterministic = False
    builder.config().offsides = False
    builder.config().end_episode_on_score = True
    builder.config().end_episode_on_out_of_play = True
    builder.config().end_episode_on_possession_change = True
    builder.config().right_team_difficulty = 0.3
    builder.config().left_team_difficulty = 1.0
    builder.SetBallPosition(0.30, 0.0)

    builder.SetTeam(Team.e_Left)
    builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)
    builder.AddPlayer(0.29, 0.0, e_PlayerRole_CF)
    builder.AddPlayer(0.55, 0.28, e_PlayerRole_RM)

    builder.SetTeam(Team.e_Right)
    for x, y, role in OPPONENTS:
        builder.AddPlayer(-x, -y, role)
