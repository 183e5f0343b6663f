"""Synthetic tasks for demos and algorithm tests, deterministic from a seed.

| task         | stage | what                                                       | unanswerable variant                            |
|--------------|-------|------------------------------------------------------------|-------------------------------------------------|
| `arithmetic` | FRE   | a word problem of `difficulty` steps (text only)           | one quantity is replaced by "some"              |
| `expression` | MGT   | an arithmetic expression rendered as an image              | one number is covered by a black box            |
| `counting`   | MGT   | coloured circles/squares/triangles; "how many red circles?"| asks for a property the image does not show     |
| `geometry`   | MGT   | a rectangle or right triangle with labelled sides          | a needed side is labelled "?"                   |
| `larger`     | FRE   | "Which number is larger, 3 or 8?" (text only)              | one number is replaced by "a secret number"     |
| `shapes`     | MGT   | 1..4 big shapes on a 2 x 2 grid; "how many shapes?"        | asks for a property the image does not show     |

`larger` and `shapes` are the embedded default stages' tasks: the answer depends on the question (or image) and
a tiny random transformer can learn the rule within a few hundred RL steps on a CPU, so held-out accuracy
can visibly rise (the other tasks are too hard for it: it learns only their answer prior).

Difficulty levels 1..5: arithmetic/expression use `difficulty` operations with numbers up to 10 x
difficulty; counting draws 3 x difficulty shapes; `larger` compares two distinct numbers in 0..10 x difficulty - 1;
`shapes` uses a (difficulty + 1)-square grid, one shape per cell at most; geometry picks the question type (1: rectangle area,
2: rectangle perimeter, 3: right-triangle area, 4: hypotenuse, 5: area of the rectangle minus an inner
right triangle). An unanswerable example's answer is `UNANSWERABLE`: the correct response abstains.

Determinism: example `i` of task `t` with seed `s` is drawn from `random.Random(f"{t}:{s}:{i}")` alone, so
it does not depend on how many examples are generated or in which order, and the PNGs are byte-identical
across runs (Pillow's bundled default font, no metadata).

CLI:
    python -m data_pipelines.synthetic --task arithmetic --n 1000 --seed 0 --difficulty 1-3 --out DIR/records.jsonl
        [--unanswerable-fraction 0.2] [--system-prompt auto|lmm_r1|abstain|none|TEXT] [--image-size 336]
Images go to DIR/images/. `--system-prompt auto` uses the abstain-licensing prompt when the fraction is > 0.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from data_pipelines._common import write_jsonl
from lmmr1.data.prompts import system_prompt
from lmmr1.data.records import UNANSWERABLE, Record, validate_record

GENERATOR_VERSION = 1
MAX_DIFFICULTY = 5

NAMES = ("Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Ivy", "Max")
ITEMS = ("marbles", "apples", "stickers", "coins", "shells", "pencils")
COLORS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220)}
SHAPES = ("circle", "square", "triangle")


@dataclass
class Example:
    """One generated example before it becomes a record."""

    question: str
    answer: str
    image: Image.Image | None = None
    meta: dict = field(default_factory=dict)


def latex_number(value: Fraction) -> str:
    """An integer as "12", a fraction as "\\frac{7}{2}" (negative: "-\\frac{7}{2}")."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


# -- arithmetic word problems (text) ----------------------------------------------------------------------


def arithmetic(rng: random.Random, difficulty: int, unanswerable: bool, image_size: int) -> Example:
    """Start value plus `difficulty` events (gain, loss, packs, doubling, equal sharing); integer answer."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    top = 10 * difficulty
    value = rng.randint(2, top)
    sentences = [f"{name} has {value} {item}."]
    quantities = [0]  # sentence index of each stated number (the start counts)
    for _ in range(difficulty):
        kind = rng.choice(["gain", "loss", "packs", "double", "share"])
        if kind == "loss" and value < 3:
            kind = "gain"
        if kind == "share" and not [k for k in (2, 3, 4, 5) if value % k == 0 and value >= k]:
            kind = "packs"
        if kind == "gain":
            x = rng.randint(2, max(2, top))
            value += x
            sentences.append(f"Then {name} finds {x} more {item}.")
        elif kind == "loss":
            x = rng.randint(2, value - 1)  # >= 2 keeps the plural right
            value -= x
            sentences.append(f"Then {name} gives {x} {item} to a friend.")
        elif kind == "packs":
            k, m = rng.randint(2, 4), rng.randint(2, max(2, top // 2))
            value += k * m
            sentences.append(f"Then {name} buys {k} packs with {m} {item} in each pack.")
        elif kind == "double":
            value *= 2
            sentences.append(f"Then the number of {item} {name} has doubles.")
            continue  # no stated number to hide
        else:
            k = rng.choice([k for k in (2, 3, 4, 5) if value % k == 0 and value >= k])
            value //= k
            sentences.append(f"Then {name} shares the {item} equally among {k} boxes and keeps one box.")
        quantities.append(len(sentences) - 1)
    answer = str(value)
    if unanswerable:
        hide = rng.choice(quantities)
        sentences[hide] = _hide_number(sentences[hide])
        answer = UNANSWERABLE
    question = " ".join(sentences) + f" How many {item} does {name} have now?"
    return Example(question, answer, meta={"hidden_sentence": hide} if unanswerable else {})


def _hide_number(sentence: str) -> str:
    """Replace the first number of a sentence by "some" ("12 marbles" -> "some marbles")."""
    words = sentence.split(" ")
    for i, word in enumerate(words):
        if word.rstrip(".").isdigit():
            words[i] = "some" + ("." if word.endswith(".") else "")
            break
    return " ".join(words)


# -- rendered expressions (image) -------------------------------------------------------------------------


def random_expression(rng: random.Random, n_ops: int, top: int) -> tuple[str, list[str], Fraction]:
    """An expression of `n_ops` binary operations with exact rational value; returns (text, numbers, value)."""
    numbers = [str(rng.randint(1, top))]
    text, value = numbers[0], Fraction(int(numbers[0]))
    additive = False  # does the text so far end in a top-level sum or difference?
    for _ in range(n_ops):
        op = rng.choice("+-*")
        n = rng.randint(1, top)
        numbers.append(str(n))
        if op == "*":
            # The running value is the whole text so far: bracket it when its top level is a sum/difference.
            text = f"({text}) * {n}" if additive else f"{text} * {n}"
            value *= n
            additive = False
        else:
            text = f"{text} {op} {n}"
            value = value + n if op == "+" else value - n
            additive = True
    return text, numbers, value


def expression(rng: random.Random, difficulty: int, unanswerable: bool, image_size: int) -> Example:
    text, numbers, value = random_expression(rng, difficulty, 10 * difficulty)
    shown = text + " = ?"
    hidden = None
    if unanswerable:
        hidden = rng.randrange(len(numbers))
    image = Image.new("RGB", (image_size, image_size // 2), "white")
    draw = ImageDraw.Draw(image)
    size = 28
    while size > 10 and draw.textbbox((0, 0), shown, font=font(size))[2] > image_size - 20:
        size -= 2
    f = font(size)
    box = draw.textbbox((0, 0), shown, font=f)
    x, y = (image_size - box[2]) // 2, (image_size // 2 - box[3]) // 2
    draw.text((x, y), shown, font=f, fill="black")
    if hidden is not None:
        # Cover the hidden number: locate its character span (the k-th number token) and paint over it.
        start = _nth_number_span(shown, hidden)
        left = draw.textbbox((x, y), shown[: start[0]], font=f)[2] if start[0] else x
        right = draw.textbbox((x, y), shown[: start[1]], font=f)[2]
        draw.rectangle([left - 1, y + box[1] - 2, right + 1, y + box[3] + 2], fill="black")
    question = "What is the value of the expression in the image?"
    answer = UNANSWERABLE if unanswerable else latex_number(value)
    return Example(question, answer, image, meta={"expression": text, "covered_number": hidden} if unanswerable
                   else {"expression": text})


def _nth_number_span(text: str, k: int) -> tuple[int, int]:
    match = list(re.finditer(r"\d+", text))[k]
    return match.start(), match.end()


# -- shape counting (image) -------------------------------------------------------------------------------


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, color: tuple[int, int, int], cx: int, cy: int, r: int) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)


def draw_on_grid(rng: random.Random, cells: list[int], grid: int, image_size: int, radius: Fraction
                 ) -> tuple[Image.Image, list[tuple[str, str]]]:
    """A white image with a random shape of a random colour centred in each of `cells` of a grid x grid
    layout, of radius floor(`radius` x cell size) pixels; (image, [(colour, shape)] in cell order)."""
    cell = image_size // grid
    image = Image.new("RGB", (image_size, image_size), "white")
    draw = ImageDraw.Draw(image)
    drawn = []
    for c in cells:
        shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
        row, col = divmod(c, grid)
        draw_shape(draw, shape, COLORS[color], col * cell + cell // 2, row * cell + cell // 2, int(cell * radius))
        drawn.append((color, shape))
    return image, drawn


def counting(rng: random.Random, difficulty: int, unanswerable: bool, image_size: int) -> Example:
    """3 x difficulty shapes on a grid (no overlaps); ask for one colour-shape combination's count."""
    grid = 6
    cells = rng.sample(range(grid * grid), 3 * difficulty)
    image, drawn = draw_on_grid(rng, cells, grid, image_size, radius=Fraction(1, 3))
    color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
    count = sum(1 for d in drawn if d == (color, shape))
    if unanswerable:
        question = f"What is the total weight, in grams, of the {color} {shape}s in the image?"
        return Example(question, UNANSWERABLE, image, meta={"shapes": drawn})
    return Example(f"How many {color} {shape}s are in the image?", str(count), image, meta={"shapes": drawn})


# -- geometry (image) -------------------------------------------------------------------------------------


def geometry(rng: random.Random, difficulty: int, unanswerable: bool, image_size: int) -> Example:
    """A labelled rectangle or right triangle; the question type is set by the difficulty (module docstring)."""
    image = Image.new("RGB", (image_size, image_size), "white")
    draw = ImageDraw.Draw(image)
    f = font(22)
    m = image_size // 6  # margin
    kind = min(difficulty, MAX_DIFFICULTY)
    if kind in (1, 2, 5):
        w, h = rng.randint(2, 12 * kind), rng.randint(2, 12 * kind)
        # Drawn to scale, within the square between the margins (each side at least a fifth of it).
        span = image_size - 2 * m
        bw = max(span // 5, span * w // max(w, h))
        bh = max(span // 5, span * h // max(w, h))
        x0, y0 = (image_size - bw) // 2, (image_size - bh) // 2
        box = [x0, y0, x0 + bw, y0 + bh]
        draw.rectangle(box, outline="black", width=3)
        labels = {"w": str(w), "h": str(h)}
        if kind == 5:
            # an inner right triangle with legs a (along the bottom) and h (the left side) is cut out
            a = rng.randint(1, w)
            ax = box[0] + (box[2] - box[0]) * a // w
            draw.polygon([(box[0], box[1]), (box[0], box[3]), (ax, box[3])], fill=(200, 200, 200), outline="black")
            labels["a"] = str(a)
        hidden = rng.choice(sorted(labels)) if unanswerable else None
        text = {k: ("?" if k == hidden else v) for k, v in labels.items()}
        draw.text(((box[0] + box[2]) // 2, box[3] + 8), text["w"], font=f, fill="black", anchor="mt")
        draw.text((box[2] + 8, (box[1] + box[3]) // 2), text["h"], font=f, fill="black", anchor="lm")
        if kind == 5:
            draw.text(((box[0] + ax) // 2, box[3] - 8), text["a"], font=f, fill="blue", anchor="mb")
        if kind == 1:
            question, value = "What is the area of the rectangle?", Fraction(w * h)
        elif kind == 2:
            question, value = "What is the perimeter of the rectangle?", Fraction(2 * (w + h))
        else:
            question = ("The grey right triangle shares the rectangle's left side and part of its bottom side "
                        "(the blue label). What is the area of the white part of the rectangle?")
            value = Fraction(w * h) - Fraction(a * h, 2)
        meta = {"shape": "rectangle", **{k: int(v) for k, v in labels.items()}}
    else:
        a, b, c = rng.choice([(3, 4, 5), (5, 12, 13), (6, 8, 10), (8, 15, 17), (9, 12, 15), (7, 24, 25)])
        scale = rng.randint(1, 3)
        a, b, c = a * scale, b * scale, c * scale
        p0, p1, p2 = (m, image_size - m), (m, m), (image_size - m, image_size - m)  # right angle at p0
        draw.polygon([p0, p1, p2], outline="black", width=3)
        draw.rectangle([p0[0], p0[1] - 16, p0[0] + 16, p0[1]], outline="black", width=2)  # right-angle mark
        labels = {"a": str(a), "b": str(b)}
        hidden = rng.choice(sorted(labels)) if unanswerable else None
        text = {k: ("?" if k == hidden else v) for k, v in labels.items()}
        draw.text((p0[0] - 8, (p0[1] + p1[1]) // 2), text["a"], font=f, fill="black", anchor="rm")
        draw.text(((p0[0] + p2[0]) // 2, p0[1] + 8), text["b"], font=f, fill="black", anchor="mt")
        if kind == 3:
            question, value = "What is the area of the right triangle?", Fraction(a * b, 2)
        else:
            question, value = "What is the length of the hypotenuse of the right triangle?", Fraction(c)
        meta = {"shape": "right_triangle", "a": a, "b": b, "c": c}
    if unanswerable:
        meta["hidden_label"] = hidden
        return Example(question, UNANSWERABLE, image, meta=meta)
    return Example(question, latex_number(value), image, meta=meta)


# -- the larger of two numbers (text) ----------------------------------------------------------------------


def larger(rng: random.Random, difficulty: int, unanswerable: bool, image_size: int) -> Example:
    """Two distinct numbers in 0..10 x difficulty - 1; the answer is the larger one (read off the question)."""
    a, b = rng.sample(range(10 * difficulty), 2)
    if unanswerable:
        shown = [str(a), "a secret number"]
        rng.shuffle(shown)
        return Example(f"Which number is larger, {shown[0]} or {shown[1]}?", UNANSWERABLE, meta={"numbers": [a]})
    return Example(f"Which number is larger, {a} or {b}?", str(max(a, b)), meta={"numbers": [a, b]})


# -- big shapes on a grid (image) -------------------------------------------------------------------------


def shapes(rng: random.Random, difficulty: int, unanswerable: bool, image_size: int) -> Example:
    """1..grid^2 shapes, one per cell of a (difficulty + 1)-square grid, each filling most of its cell; ask how many.

    At difficulty 1 and image_size 56 a cell is one 28 px merged vision token of the tiny Qwen2.5-VL, so the
    count is the number of non-white tokens: a rule its small vision tower can learn."""
    grid = difficulty + 1
    count = rng.randint(1, grid * grid)
    cells = sorted(rng.sample(range(grid * grid), count))
    image, drawn = draw_on_grid(rng, cells, grid, image_size, radius=Fraction(2, 5))
    meta = {"shapes": drawn, "cells": cells}
    if unanswerable:
        return Example("What is the total weight, in grams, of the shapes in the image?", UNANSWERABLE, image, meta=meta)
    return Example("How many shapes are in the image?", str(count), image, meta=meta)


GENERATORS: dict[str, Callable[[random.Random, int, bool, int], Example]] = {
    "arithmetic": arithmetic,
    "expression": expression,
    "counting": counting,
    "geometry": geometry,
    "larger": larger,
    "shapes": shapes,
}


def parse_difficulty(spec: str | int) -> tuple[int, int]:
    """"3" -> (3, 3); "1-5" -> (1, 5); levels must lie in 1..MAX_DIFFICULTY."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(spec))
    if match is None:
        raise ValueError(f"difficulty {spec!r}: expected N or A-B")
    lo = int(match.group(1))
    hi = int(match.group(2) or lo)
    if not 1 <= lo <= hi <= MAX_DIFFICULTY:
        raise ValueError(f"difficulty {spec!r}: levels are 1..{MAX_DIFFICULTY}")
    return lo, hi


def make_example(task: str, seed: int, index: int, difficulty: str | int = 1, unanswerable_fraction: float = 0.0,
                 image_size: int = 336) -> tuple[Example, int, bool]:
    """Example `index` of `task` for `seed` (and its drawn difficulty and unanswerable flag)."""
    if task not in GENERATORS:
        raise KeyError(f"unknown synthetic task {task!r}; valid tasks: {sorted(GENERATORS)}")
    if not 0.0 <= unanswerable_fraction <= 1.0:
        raise ValueError(f"unanswerable_fraction must be in [0, 1], got {unanswerable_fraction}")
    lo, hi = parse_difficulty(difficulty)
    rng = random.Random(f"{task}:{seed}:{index}")
    level = rng.randint(lo, hi)
    unanswerable = rng.random() < unanswerable_fraction
    return GENERATORS[task](rng, level, unanswerable, image_size), level, unanswerable


def generate(
    task: str,
    n: int,
    seed: int,
    out: str | Path,
    *,
    difficulty: str | int = 1,
    unanswerable_fraction: float = 0.0,
    system: str = "auto",
    image_size: int = 336,
    start: int = 0,
    progress: bool = False,
) -> list[Record]:
    """Write examples start..start+n-1 of `task` as records to `out` (images under out's folder/images)."""
    out = Path(out)
    root = out.parent
    prompt = system_prompt(("abstain" if unanswerable_fraction > 0 else "lmm_r1") if system == "auto" else system)
    records = []
    indices = range(start, start + n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=task, unit="example", file=sys.stderr)
    for index in indices:
        example, level, unanswerable = make_example(task, seed, index, difficulty, unanswerable_fraction, image_size)
        images, content = [], example.question
        if example.image is not None:
            rel = f"images/{task}-s{seed}-{index:06d}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            example.image.save(root / rel, format="PNG")
            images = [rel]
            content = [{"type": "image"}, {"type": "text", "text": example.question}]
        messages = ([{"role": "system", "content": prompt}] if prompt else []) + [{"role": "user", "content": content}]
        meta = {"seed": seed, "index": index, "difficulty": level, "unanswerable": unanswerable,
                "generator_version": GENERATOR_VERSION, **example.meta}
        records.append(validate_record(
            {"messages": messages, "images": images, "answer": example.answer, "task": task,
             "source": f"synthetic/{task}", "meta": meta},
            file=out, row=index - start + 1,
        ))
    write_jsonl(out, records)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_pipelines.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=sorted(GENERATORS))
    parser.add_argument("--n", type=int, required=True, help="number of examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="index of the first example (to extend a set)")
    parser.add_argument("--difficulty", default="1", help="a level N or a range A-B (levels 1..5)")
    parser.add_argument("--unanswerable-fraction", type=float, default=0.0)
    parser.add_argument("--system-prompt", default="auto", help="auto | lmm_r1 | abstain | none | literal text")
    parser.add_argument("--image-size", type=int, default=336, help="image side in pixels (a multiple of 28)")
    parser.add_argument("--out", type=Path, required=True, help="records JSONL to write")
    args = parser.parse_args(argv)
    records = generate(args.task, args.n, args.seed, args.out, difficulty=args.difficulty,
                       unanswerable_fraction=args.unanswerable_fraction, system=args.system_prompt,
                       image_size=args.image_size, start=args.start, progress=True)
    unanswerable = sum(r.answer == UNANSWERABLE for r in records)
    print(f"wrote {len(records)} {args.task} records ({unanswerable} unanswerable) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
