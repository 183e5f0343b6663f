"""A top-down picture of the pitch drawn from gfootball's raw observation (PIL, no display needed).

This is the football environment's default image: every thing the model needs to pick an action is drawn
from the observation's numbers, in flat, distinct colours:

    grass GRASS, lines LINES, goals GOAL_NET
    our team OURS (yellow discs), the player we control ACTIVE (a larger light-blue disc),
    opponents THEM (red discs), the ball BALL (white, black rim, drawn last, on top of everything)
    a short dark line from each player and a white one from the ball: where they are heading
    (DIRECTION_STEPS engine steps ahead); a white ring around the player who has the ball;
    the score and the steps left in the strip above the pitch.

Geometry. The picture shows the window x in [-WINDOW_X, WINDOW_X], y in [-WINDOW_Y, WINDOW_Y] of
gfootball's coordinates (the pitch is x in [-1, 1], y in [-0.42, 0.42]; +y is down), at one scale for both
axes, centred: scale = min(W / (2 WINDOW_X), H / (2 WINDOW_Y)) pixels per unit, and

    px = W / 2 + x * scale,    py = H / 2 + y * scale.

The default 672 x 336 (a multiple of Qwen2.5-VL's 28-pixel patch) gives scale 300 and px = 336 + 300 x,
py = 168 + 300 y. Markings follow a 105 m x 68 m pitch mapped onto that box (so the centre circle is an
ellipse, as it is in gfootball's coordinates).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WINDOW_X = 1.12  # half-width of the drawn window: the pitch (1.0) plus room for goals and players behind the line
WINDOW_Y = 0.56  # half-height: the pitch (0.42) plus a strip above it for the score
DEFAULT_SIZE = (672, 336)

GRASS = (46, 125, 50)
LINES = (205, 230, 205)
GOAL_NET = (160, 160, 160)
OURS = (250, 210, 20)
ACTIVE = (40, 160, 255)
THEM = (220, 40, 40)
BALL = (255, 255, 255)
OUTLINE = (0, 0, 0)
TEXT = (255, 255, 255)

PLAYER_RADIUS = 0.022  # pitch units
ACTIVE_RADIUS = 0.03
BALL_RADIUS = 0.013
DIRECTION_STEPS = 15  # a direction is a per-step displacement; the line shows this many steps ahead

# Markings in pitch units (a 105 m x 68 m pitch on x in [-1, 1], y in [-0.42, 0.42]).
_M_X = 2.0 / 105.0
_M_Y = 0.84 / 68.0
PENALTY_DEPTH = 16.5 * _M_X
PENALTY_HALF_WIDTH = 20.16 * _M_Y
GOAL_AREA_DEPTH = 5.5 * _M_X
GOAL_AREA_HALF_WIDTH = 9.16 * _M_Y
GOAL_HALF_WIDTH = 0.044  # the goal mouth (MageBench's goal points span it)
GOAL_DEPTH = 0.04
CENTRE_CIRCLE = (9.15 * _M_X, 9.15 * _M_Y)


def pixels_per_unit(size: tuple[int, int]) -> float:
    """scale = min(W / (2 WINDOW_X), H / (2 WINDOW_Y))."""
    width, height = size
    return min(width / (2 * WINDOW_X), height / (2 * WINDOW_Y))


def pitch_to_pixel(x: float, y: float, size: tuple[int, int] = DEFAULT_SIZE) -> tuple[float, float]:
    """(px, py) = (W/2 + x * scale, H/2 + y * scale): gfootball coordinates to image pixels."""
    width, height = size
    scale = pixels_per_unit(size)
    return width / 2 + x * scale, height / 2 + y * scale


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _disc(draw: ImageDraw.ImageDraw, centre: tuple[float, float], radius: float, fill, outline=OUTLINE,
          width: int = 1) -> None:
    cx, cy = centre
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill, outline=outline, width=width)


def _rect(draw: ImageDraw.ImageDraw, size, x0, y0, x1, y1, **kw) -> None:
    a, b = pitch_to_pixel(x0, y0, size), pitch_to_pixel(x1, y1, size)
    draw.rectangle([min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])], **kw)


def _draw_pitch(draw: ImageDraw.ImageDraw, size: tuple[int, int]) -> None:
    line = max(1, round(pixels_per_unit(size) * 0.006))
    _rect(draw, size, -1.0, -0.42, 1.0, 0.42, outline=LINES, width=line)
    top, bottom = pitch_to_pixel(0.0, -0.42, size), pitch_to_pixel(0.0, 0.42, size)
    draw.line([top, bottom], fill=LINES, width=line)
    rx, ry = CENTRE_CIRCLE
    _rect_ellipse = [*pitch_to_pixel(-rx, -ry, size), *pitch_to_pixel(rx, ry, size)]
    draw.ellipse(_rect_ellipse, outline=LINES, width=line)
    for side in (-1.0, 1.0):
        _rect(draw, size, side, -PENALTY_HALF_WIDTH, side * (1.0 - PENALTY_DEPTH), PENALTY_HALF_WIDTH,
              outline=LINES, width=line)
        _rect(draw, size, side, -GOAL_AREA_HALF_WIDTH, side * (1.0 - GOAL_AREA_DEPTH), GOAL_AREA_HALF_WIDTH,
              outline=LINES, width=line)
        _rect(draw, size, side, -GOAL_HALF_WIDTH, side * (1.0 + GOAL_DEPTH), GOAL_HALF_WIDTH,
              fill=GOAL_NET, outline=LINES, width=line)


def _heading(draw, size, position, direction, colour) -> None:
    x, y = position
    dx, dy = direction
    end = (x + dx * DIRECTION_STEPS, y + dy * DIRECTION_STEPS)
    width = max(1, round(pixels_per_unit(size) * 0.006))
    draw.line([pitch_to_pixel(x, y, size), pitch_to_pixel(*end, size)], fill=colour, width=width)


def draw_topdown(obs: Mapping[str, Any], size: tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
    """The top-down picture of one raw gfootball observation (see the module docstring for what is where)."""
    width, height = size
    scale = pixels_per_unit(size)
    image = Image.new("RGB", (width, height), GRASS)
    draw = ImageDraw.Draw(image)
    _draw_pitch(draw, size)

    ours = np.asarray(obs["left_team"], dtype=np.float64).reshape(-1, 2)
    them = np.asarray(obs["right_team"], dtype=np.float64).reshape(-1, 2)
    ours_dir = np.asarray(obs.get("left_team_direction", np.zeros_like(ours)), dtype=np.float64).reshape(-1, 2)
    them_dir = np.asarray(obs.get("right_team_direction", np.zeros_like(them)), dtype=np.float64).reshape(-1, 2)
    ball = np.asarray(obs["ball"], dtype=np.float64)[:2]
    ball_dir = np.asarray(obs.get("ball_direction", (0.0, 0.0)), dtype=np.float64)[:2]
    active = int(obs.get("active", -1))
    owner_team, owner = int(obs["ball_owned_team"]), int(obs["ball_owned_player"])

    # 1. headings (under every disc)
    for position, direction in zip(np.concatenate([ours, them]), np.concatenate([ours_dir, them_dir])):
        _heading(draw, size, position, direction, OUTLINE)
    _heading(draw, size, ball, ball_dir, BALL)

    # 2. players: opponents, our team, the player we control; a white ring marks the ball carrier
    ring = max(2, round(scale * 0.006))
    for team, positions, colour in ((1, them, THEM), (0, ours, OURS)):
        for index, (x, y) in enumerate(positions):
            is_active = team == 0 and index == active
            radius = max(2.0, (ACTIVE_RADIUS if is_active else PLAYER_RADIUS) * scale)
            carrier = owner_team == team and owner == index
            _disc(draw, pitch_to_pixel(x, y, size), radius, ACTIVE if is_active else colour,
                  outline=BALL if carrier else OUTLINE, width=ring if carrier else 1)

    # 3. the ball, on top
    _disc(draw, pitch_to_pixel(*ball, size), max(2.0, BALL_RADIUS * scale), BALL)

    # 4. score and clock in the strip above the pitch
    score = obs.get("score", (0, 0))
    label = f"score {int(score[0])} - {int(score[1])}    steps left {int(obs.get('steps_left', 0))}"
    font_px = max(8, round((WINDOW_Y - 0.42) * scale * 0.55))
    draw.text(pitch_to_pixel(-1.0, -0.42 - (WINDOW_Y - 0.42) * 0.8, size), label, fill=TEXT, font=_font(font_px))
    return image
