"""Benchmark loaders: the public layouts of LMM-R1's evaluation sets, read from a local path, as lmmr1 records.

Nothing downloads. A benchmark path is a file (parquet, JSONL, JSON, CSV) or a folder: an HF dataset
repository snapshot (`huggingface-cli download --repo-type dataset <id> --local-dir DIR`, whose tables are
found by the split name as a word in their path below DIR, e.g. `data/testmini-00000-of-00001-*.parquet`;
when no table names the split, all tables of the first kind found, parquet first, are read) or a
`datasets.save_to_disk` folder.
A missing path is `BenchmarkMissingError`, naming the path and the dataset to fetch.

| name            | dataset to fetch         | split read          | fields read                                     |
|-----------------|--------------------------|---------------------|-------------------------------------------------|
| `mathvista`     | AI4Math/MathVista        | testmini            | pid, question, decoded_image / image, choices,  |
|                 |                          |                     | answer, question_type, precision                |
| `mathverse`     | AI4Math/MathVerse        | testmini            | sample_index, question (query_wo if empty),     |
|                 |                          |                     | image, answer, question_type, problem_version   |
| `mathvision`    | MathLLMs/MathVision      | test                | id, question, decoded_image / image, options,   |
|                 |                          |                     | answer, level, subject                          |
| `mmstar`        | Lin-Chen/MMStar          | val                 | index, question (options inline), image, answer |
| `olympiadbench` | Hothan/OlympiadBench     | OE_MM_maths_en_COMP | id, question, context, image_1..image_5,        |
|                 |                          |                     | final_answer (a list), unit                     |
| `math500`       | HuggingFaceH4/MATH-500   | test                | unique_id, problem, answer, subject, level      |
| `gpqa_diamond`  | Idavidrein/gpqa          | diamond (the csv)   | Question, Correct Answer, Incorrect Answer 1..3 |

Images: an HF `Image` cell (`{"bytes": ..., "path": ...}`) with bytes is written once under the run's image
cache; a path (a string or a cell without bytes) is resolved inside the benchmark folder. Each loaded
`Item` carries the folder its record's image paths are relative to.

Multiple choice: the gold is a letter (A, B, ...). MathVista and MathVision give choices as a list (MathVista's
gold is the choice's text, turned into its letter); GPQA's four answers are shuffled per row with a seeded
RNG (the correct one lands on a letter fixed by the question text, the same in every run); MathVerse and
MMStar carry the options in the question text. Records of multiple-choice rows have `task="multiple_choice"` and
`meta["choices"]` (the option texts, when known); `grade_choice` scores them.

Subsets: each loader carries its benchmark's published sub-categories in `record.meta["subsets"]`
(field -> value; a list for multi-label fields), read from these columns:

| name            | subset field: column read                                                           |
|-----------------|-------------------------------------------------------------------------------------|
| `mathvista`     | task: metadata.task, skills: metadata.skills (a list), question_type: question_type |
| `mathverse`     | problem_version: problem_version, subject: metadata.subject                         |
| `mathvision`    | subject: subject, level: level                                                      |
| `mmstar`        | category: category, l2_category: l2_category                                        |
| `olympiadbench` | subject: subject, subfield: subfield                                                |
| `math500`       | subject: subject, level: level                                                      |
| `gpqa_diamond`  | domain: High-level domain, subdomain: Subdomain                                     |

A missing or blank subset value is `UNKNOWN_SUBSET` ("unknown"): the row is still scored, and the runner
counts it under that value. (`metadata` may be a struct or, in JSON/CSV exports, a JSON string.)

A row that cannot be scored is excluded and counted, never scored: `missing_image` (no image cell, or a
path that does not exist), `malformed_answer` (empty or non-scalar gold, a multiple-choice gold that is not
one of the choices), `malformed_row` (no question). The first rows of each reason are kept with their
file and row number for the report.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from lmmr1.data.records import Record, RecordError, answer_text, iter_json_lines, validate_record
from lmmr1.rewards.base import RewardResult
from lmmr1.rewards.rules import boxed_contents, clean_response, detect_abstention, final_answer_slot

LETTERS = "ABCDEFGHIJ"
EXCLUSION_REASONS = ("missing_image", "malformed_answer", "malformed_row")
UNKNOWN_SUBSET = "unknown"  # the subset value of a row whose subset field is missing or blank
MAX_LISTED_EXCLUSIONS = 20  # rows named per benchmark in the report (all are counted)
MALFORMED = "__lmmr1_malformed_row__"  # read_table's stand-in for a JSONL line that does not parse


class BenchmarkMissingError(FileNotFoundError):
    """The benchmark's local path does not exist (or holds no table for the split)."""


class RowExcluded(ValueError):
    """A benchmark row that cannot be scored; `reason` is one of EXCLUSION_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in EXCLUSION_REASONS, reason
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class Item:
    """One scorable example: the record, the folder its image paths are relative to, and where it came from."""

    record: Record
    root: Path
    where: str


@dataclass
class LoadedBenchmark:
    """A benchmark's scorable items and what was excluded (reason -> count; the first rows named)."""

    name: str
    items: list[Item]
    source: str
    rows: int = 0
    excluded: Counter = field(default_factory=Counter)
    excluded_rows: list[str] = field(default_factory=list)

    def exclude(self, where: str, reason: str, detail: str) -> None:
        self.excluded[reason] += 1
        if len(self.excluded_rows) < MAX_LISTED_EXCLUSIONS * len(EXCLUSION_REASONS):
            self.excluded_rows.append(f"{where}: {reason}: {detail}")


# ------------------------------------------------------------------------------------------------ tables

TABLE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")


def find_tables(path: Path, split: str, name: str, fetch: str) -> list[Path]:
    """The table files of `split` under `path` (the file itself when `path` is a file)."""
    if not path.exists():
        raise BenchmarkMissingError(
            f"benchmark {name!r}: {path} does not exist; fetch the dataset {fetch} (e.g. `huggingface-cli download "
            f"--repo-type dataset {fetch.split()[0]} --local-dir {path}`) and pass its folder as benchmarks.{name}=PATH"
        )
    if path.is_file():
        return [path]
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return [path]  # a datasets.save_to_disk folder
    tables = sorted(p for p in path.rglob("*") if p.suffix in TABLE_SUFFIXES and p.is_file()
                    and not p.name.startswith(".") and p.name not in ("dataset_info.json", "state.json"))
    if split:
        # "test" must not match "testmini-...", and "testmini" prefers "testmini.parquet" / "testmini-0000-of-..."
        # over "testmini_text_only.parquet" (a split name followed by "_" names another table).
        for follows in ("[/.-]", "[/_.-]"):
            token = re.compile(rf"(^|[/_.-]){re.escape(split)}({follows}|$)")
            matching = [p for p in tables if token.search(p.relative_to(path).as_posix())]
            if matching:
                tables = matching
                break
    by_kind = {s: [p for p in tables if p.suffix == s] for s in TABLE_SUFFIXES}
    chosen = next((by_kind[s] for s in TABLE_SUFFIXES if by_kind[s]), [])
    if not chosen:
        raise BenchmarkMissingError(
            f"benchmark {name!r}: no {'/'.join(TABLE_SUFFIXES)} table for split {split!r} under {path}; fetch the "
            f"dataset {fetch}"
        )
    return chosen


def read_table(file: Path, split: str) -> Iterator[dict[str, Any]]:
    """The rows of one table file (or save_to_disk folder) as plain dicts; image cells stay undecoded.
    Parquet is streamed in batches (image bytes of a whole benchmark never sit in memory at once)."""
    if file.is_dir():
        import datasets

        ds = datasets.load_from_disk(str(file))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split] if split in ds else next(iter(ds.values()))
        for start in range(0, len(ds), 64):
            yield from ds.with_format("arrow")[start:start + 64].to_pylist()
        return
    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(file).iter_batches(batch_size=64):
            yield from batch.to_pylist()
        return
    if file.suffix == ".csv":
        import pandas as pd

        yield from pd.read_csv(file, dtype=str, keep_default_na=False).to_dict(orient="records")
        return
    if file.suffix == ".json" and file.read_bytes().lstrip().startswith(b"["):
        yield from json.loads(file.read_text(encoding="utf-8"))
        return
    for _row, value, error in iter_json_lines(file):
        yield {MALFORMED: str(error)} if error is not None else value


# ------------------------------------------------------------------------------------------------ images

_EXT = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif", b"RIFF": ".webp", b"BM": ".bmp"}


def _blank(value: Any) -> bool:
    return (value is None or (isinstance(value, float) and math.isnan(value))
            or (isinstance(value, str) and not value.strip()))


class ImageResolver:
    """Turns image cells into (root, relative path): bytes are written once under `cache`, paths are
    checked inside the benchmark folder `base`."""

    def __init__(self, base: Path, cache: Path) -> None:
        self.base = base
        self.cache = cache

    def __call__(self, cell: Any, key: str) -> tuple[Path, str]:
        if isinstance(cell, dict):
            data, ref = cell.get("bytes"), cell.get("path")
        else:
            data, ref = None, cell
        if data:
            data = bytes(data)
            ext = next((e for magic, e in _EXT.items() if data.startswith(magic)), ".img")
            name = re.sub(r"[^0-9A-Za-z_.-]", "_", key) + "-" + hashlib.sha1(data).hexdigest()[:10] + ext
            self.cache.mkdir(parents=True, exist_ok=True)
            target = self.cache / name
            if not target.exists():
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(target)
            return self.cache, name
        if _blank(ref) or not isinstance(ref, str):
            raise RowExcluded("missing_image", "no image in the row")
        for candidate in (ref, f"images/{ref}"):
            if (self.base / candidate).is_file():
                return self.base, candidate
        raise RowExcluded("missing_image", f"image {ref!r} not found under {self.base}")


# -------------------------------------------------------------------------------------------- row helpers


def scalar_answer(value: Any, field_name: str) -> str:
    """A gold answer as a non-empty string, or RowExcluded("malformed_answer")."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if _blank(value) or isinstance(value, (bool, dict, list, tuple, bytes)):
        raise RowExcluded("malformed_answer", f"{field_name}={value!r} is not a scalar answer")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowExcluded("malformed_answer", f"{field_name}={value!r}")
    return str(value).strip()


def letter_answer(value: Any, n_choices: int | None, field_name: str = "answer") -> str:
    """A multiple-choice gold letter ("B", "(B)", "B." accepted), checked against the number of choices."""
    text = scalar_answer(value, field_name)
    match = re.fullmatch(r"\(?([A-Ja-j])\)?[.:]?", text)
    if not match:
        raise RowExcluded("malformed_answer", f"{field_name}={text!r} is not an option letter")
    letter = match.group(1).upper()
    if n_choices is not None and LETTERS.index(letter) >= n_choices:
        raise RowExcluded("malformed_answer", f"{field_name}={letter!r} but the row has {n_choices} options")
    return letter


def format_choices(question: str, choices: list[str]) -> str:
    """The question followed by its lettered options, as LMM-R1's eval prompts list them."""
    lines = [f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)]
    return f"{question}\nChoices:\n" + "\n".join(lines) + "\nAnswer with the option's letter."


def user_turn(text: str, n_images: int) -> list[dict[str, Any]]:
    if not n_images:
        return [{"role": "user", "content": text}]
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def _question(row: dict, key: str) -> str:
    value = row.get(key)
    if _blank(value) or not isinstance(value, str):
        raise RowExcluded("malformed_row", f"no {key!r} text")
    return value.strip()


def _choices(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else []
    return [str(v) for v in value]


def _metadata(row: dict) -> dict:
    """A row's `metadata` struct (MathVista, MathVerse) as a dict: {} when absent, parsed when a JSON string."""
    value = row.get("metadata")
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


def subset_value(value: Any) -> str | list[str]:
    """One subset field's value: a string, or a list of strings for a multi-label field (MathVista's
    skills). Missing, blank or empty -> UNKNOWN_SUBSET; 2.0 -> "2" (levels stored as floats by pandas)."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and not isinstance(value, str)):
        labels = [subset_value(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
        labels = [v for v in labels if v != UNKNOWN_SUBSET]
        return list(dict.fromkeys(labels)) or UNKNOWN_SUBSET
    if _blank(value) or isinstance(value, (dict, bytes)):
        return UNKNOWN_SUBSET
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def subsets(**fields: Any) -> dict[str, str | list[str]]:
    """`meta["subsets"]` of a row: every field of the benchmark, missing ones as UNKNOWN_SUBSET."""
    return {name: subset_value(value) for name, value in fields.items()}


# ------------------------------------------------------------------------------------------- the loaders

RowParser = Callable[[dict, "ImageResolver", str], tuple[str, list[tuple[Path, str]], str, str, dict]]
"""(row, images, key) -> (question text, [(root, image path)], gold, task, meta)."""


def parse_mathvista(row: dict, images: ImageResolver, key: str):
    # Free-form rows are asked with MathVista's `query`: the question behind its answer-format hint ("requiring a
    # floating-point number with two decimal places ..."), as the benchmark's own evaluation prompts it.
    free_form = row.get("question_type") != "multi_choice" and not _blank(row.get("query"))
    question = _question(row, "query" if free_form else "question")
    cell = row.get("decoded_image") or row.get("image")
    pics = [images(cell, f"mathvista-{row.get('pid', key)}")]
    info = _metadata(row)
    meta = {"id": str(row.get("pid", key)), "question_type": row.get("question_type"),
            "answer_type": row.get("answer_type"), "precision": row.get("precision"), "unit": row.get("unit"),
            "subsets": subsets(task=info.get("task"), skills=info.get("skills"),
                               question_type=row.get("question_type"))}
    if row.get("question_type") == "multi_choice":
        choices = _choices(row.get("choices"))
        gold = scalar_answer(row.get("answer"), "answer")
        if gold not in choices:
            raise RowExcluded("malformed_answer", f"answer {gold!r} is not one of the choices {choices}")
        meta["choices"] = choices
        return format_choices(question, choices), pics, LETTERS[choices.index(gold)], "multiple_choice", meta
    return question, pics, scalar_answer(row.get("answer"), "answer"), "math", meta


def parse_mathverse(row: dict, images: ImageResolver, key: str):
    # "Vision Only" rows put the whole question in the image; their `question` is empty, `query_wo` is not.
    question = _question(row, "question" if not _blank(row.get("question")) else "query_wo")
    pics = [images(row.get("image"), f"mathverse-{row.get('sample_index', key)}")]
    meta = {"id": str(row.get("sample_index", key)), "problem_version": row.get("problem_version"),
            "question_type": row.get("question_type"),
            "subsets": subsets(problem_version=row.get("problem_version"), subject=_metadata(row).get("subject"))}
    if row.get("question_type") == "multi-choice":
        return question, pics, letter_answer(row.get("answer"), None), "multiple_choice", meta
    return question, pics, scalar_answer(row.get("answer"), "answer"), "math", meta


def parse_mathvision(row: dict, images: ImageResolver, key: str):
    question = _question(row, "question")
    cell = row.get("decoded_image") or row.get("image")
    pics = [images(cell, f"mathvision-{row.get('id', key)}")]
    meta = {"id": str(row.get("id", key)), "level": row.get("level"), "subject": row.get("subject"),
            "subsets": subsets(subject=row.get("subject"), level=row.get("level"))}
    choices = _choices(row.get("options"))
    if choices:
        meta["choices"] = choices
        gold = letter_answer(row.get("answer"), len(choices))
        return format_choices(question.replace("<image1>", "").strip(), choices), pics, gold, "multiple_choice", meta
    return question.replace("<image1>", "").strip(), pics, scalar_answer(row.get("answer"), "answer"), "math", meta


def parse_mmstar(row: dict, images: ImageResolver, key: str):
    question = _question(row, "question")
    pics = [images(row.get("image"), f"mmstar-{row.get('index', key)}")]
    meta = {"id": str(row.get("index", key)), "category": row.get("category"), "l2_category": row.get("l2_category"),
            "subsets": subsets(category=row.get("category"), l2_category=row.get("l2_category"))}
    return question, pics, letter_answer(row.get("answer"), None), "multiple_choice", meta


def parse_olympiadbench(row: dict, images: ImageResolver, key: str):
    question = _question(row, "question")
    context = row.get("context")
    if isinstance(context, str) and context.strip():
        question = f"{context.strip()}\n{question}"
    pics = []
    for j in range(1, 6):
        cell = row.get(f"image_{j}")
        if not _blank(cell) and cell != {"bytes": None, "path": None}:
            pics.append(images(cell, f"olympiadbench-{row.get('id', key)}-{j}"))
    mentioned = len(set(re.findall(r"<image_(\d)>", question)))
    if mentioned > len(pics):
        raise RowExcluded("missing_image", f"the question refers to {mentioned} images, the row has {len(pics)}")
    answers = row.get("final_answer")
    if isinstance(answers, str):
        answers = json.loads(answers) if answers.strip().startswith("[") else [answers]
    if not answers or not isinstance(answers, (list, tuple)) or any(_blank(a) for a in answers):
        raise RowExcluded("malformed_answer", f"final_answer={answers!r}")
    gold = ", ".join(answer_text(a).strip() for a in answers)
    meta = {"id": str(row.get("id", key)), "unit": row.get("unit"), "answer_type": row.get("answer_type"),
            "subfield": row.get("subfield"),
            "subsets": subsets(subject=row.get("subject"), subfield=row.get("subfield"))}
    return question, pics, gold, "math", meta


def parse_math500(row: dict, images: ImageResolver, key: str):
    question = _question(row, "problem")
    meta = {"id": str(row.get("unique_id", key)), "subject": row.get("subject"), "level": row.get("level"),
            "subsets": subsets(subject=row.get("subject"), level=row.get("level"))}
    return question, [], scalar_answer(row.get("answer"), "answer"), "math", meta


def parse_gpqa(row: dict, images: ImageResolver, key: str, seed: int = 0):
    question = _question(row, "Question")
    correct = scalar_answer(row.get("Correct Answer"), "Correct Answer")
    wrong = [scalar_answer(row.get(f"Incorrect Answer {j}"), f"Incorrect Answer {j}") for j in (1, 2, 3)]
    choices = [correct, *wrong]
    rng = random.Random(f"gpqa:{seed}:{question}")
    rng.shuffle(choices)
    meta = {"id": str(row.get("Record ID", key)), "choices": choices, "domain": row.get("High-level domain"),
            "subsets": subsets(domain=row.get("High-level domain"), subdomain=row.get("Subdomain"))}
    return format_choices(question, choices), [], LETTERS[choices.index(correct)], "multiple_choice", meta


@dataclass(frozen=True)
class BenchmarkSpec:
    fetch: str
    """The dataset to fetch (HF id and what to take from it)."""
    split: str
    parse: RowParser
    multimodal: bool


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "mathvista": BenchmarkSpec("AI4Math/MathVista", "testmini", parse_mathvista, True),
    "mathverse": BenchmarkSpec("AI4Math/MathVerse (config testmini)", "testmini", parse_mathverse, True),
    "mathvision": BenchmarkSpec("MathLLMs/MathVision", "test", parse_mathvision, True),
    "mmstar": BenchmarkSpec("Lin-Chen/MMStar", "val", parse_mmstar, True),
    "olympiadbench": BenchmarkSpec("Hothan/OlympiadBench (config OE_MM_maths_en_COMP)", "OE_MM_maths_en_COMP",
                                   parse_olympiadbench, True),
    "math500": BenchmarkSpec("HuggingFaceH4/MATH-500", "test", parse_math500, False),
    "gpqa_diamond": BenchmarkSpec("Idavidrein/gpqa (gpqa_diamond.csv)", "diamond", parse_gpqa, False),
}


def load_benchmark(name: str, path: str | Path, cache_dir: str | Path, *, split: str | None = None,
                   limit: int | None = None) -> LoadedBenchmark:
    """Read benchmark `name` from `path` into scorable items; excluded rows are counted, not raised."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; valid benchmarks: {sorted(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    path = Path(path).expanduser()
    split = spec.split if split is None else split
    files = find_tables(path, split, name, spec.fetch)
    loaded = LoadedBenchmark(name, [], source=str(path))
    for file in files:
        base = file if file.is_dir() else file.parent
        # Images referenced by path live beside the table or at the snapshot's top (MathVista's images/).
        resolver = ImageResolver(path if path.is_dir() else base, Path(cache_dir) / name)
        for number, row in enumerate(read_table(file, split), start=1):
            if limit is not None and len(loaded.items) >= limit:
                break
            loaded.rows += 1
            where = f"{file}:{number}"
            try:
                if MALFORMED in row:
                    raise RowExcluded("malformed_row", row[MALFORMED])
                question, pics, gold, task, meta = spec.parse(row, resolver, str(number))
                roots = {root for root, _ in pics}
                if len(roots) > 1:  # a row mixing embedded and path images: put all of them in the cache
                    raise RowExcluded("missing_image", "images split between the cache and the dataset folder")
                root = roots.pop() if roots else base
                record = validate_record({
                    "messages": user_turn(question, len(pics)), "images": [p for _, p in pics], "answer": gold,
                    "task": task, "source": f"benchmark/{name}",
                    "meta": {k: v for k, v in meta.items() if v is not None},
                }, file=file, row=number)
            except RowExcluded as err:
                loaded.exclude(where, err.reason, err.detail)
                continue
            except RecordError as err:
                detail = err.reason if err.field is None else f"{err.field}: {err.reason}"
                loaded.exclude(where, "malformed_row", detail)
                continue
            loaded.items.append(Item(record, root, where))
    return loaded


# ----------------------------------------------------------------------------------- multiple choice


def extract_choice(response: str, choices: list[str] | None = None) -> str | None:
    """The option letter a response commits to, or None.

    Rule: the final-answer slot (the last <answer> block, else the whole response); inside it the last
    \\boxed{...} if any. The candidate is the letter of its last "option B" / "answer is B" / "answer: (B)"
    statement; else a letter when it reads "B", "(B)", "B.", "B:", "B) text" or "\\text{B}"; else, when it
    equals one option's text (case and spaces ignored), that option's letter."""
    slot = final_answer_slot(clean_response(response))
    boxes = boxed_contents(slot)
    candidate = boxes[-1] if boxes else slot
    candidate = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", candidate).replace("$", "").strip()
    # "answer is C" / "option (C)" / "the correct choice: C": the keyword in any case, the letter a capital (the
    # article in "the answer is a square" is not option A), the last such statement (a reply may rule options out
    # before it commits).
    matches = re.findall(r"(?i:\b(?:option|choice|answer)(?:\s+is|\s*:)?)\s*\(?([A-J])\)?(?![A-Za-z])", candidate)
    if matches:
        return matches[-1]
    match = re.fullmatch(r"\(?([A-J])\)?(?:[.:)]\s*.*)?", candidate, re.DOTALL)  # "B", "(B)", "B. square"
    if match:
        return match.group(1)
    if choices:
        norm = lambda s: re.sub(r"\s+", " ", s).strip().lower().rstrip(".")  # noqa: E731
        for i, choice in enumerate(choices):
            if norm(candidate) == norm(choice):
                return LETTERS[i]
    return None


def grade_at_precision(response: str, record: Record, result: RewardResult) -> RewardResult:
    """MathVista's rule for float answers (its `precision` field): the prediction rounded to `precision` decimals
    equals the gold. Applied to a `result` the verifier graded wrong; the prediction is the last number of the
    final-answer slot's last \\boxed{} (else of the slot). Anything else returns `result` as it is."""
    precision = record.meta.get("precision")
    if (result.outcome != "wrong" or not isinstance(precision, (int, float)) or not math.isfinite(precision)
            or record.meta.get("answer_type", "float") != "float"):
        return result
    slot = final_answer_slot(clean_response(response))
    boxes = boxed_contents(slot)
    numbers = re.findall(r"-?\d+(?:\.\d+)?", (boxes[-1] if boxes else slot).replace(",", ""))
    try:
        gold = float(record.answer.strip().strip("$"))
    except ValueError:
        return result
    if numbers and round(float(numbers[-1]), int(precision)) == round(gold, int(precision)):
        return RewardResult(1.0, {**result.components, "precision_match": 1.0}, "correct")
    return result


def grade_choice(response: str, record: Record) -> RewardResult:
    """Score a multiple-choice response: 1 when its letter equals the gold letter. Outcomes: correct, wrong,
    uncertain (no letter, and it abstains: lmmr1.rewards' abstention rule), invalid (no letter found). A letter
    wins over an abstention phrase: "D. Cannot be determined" commits to option D."""
    letter = extract_choice(response, record.meta.get("choices"))
    if letter is None:
        outcome = "uncertain" if detect_abstention(response).abstained else "invalid"
        return RewardResult(0.0, {"choice_accuracy": 0.0}, outcome)
    hit = float(letter == record.answer.strip().upper())
    return RewardResult(hit, {"choice_accuracy": hit}, "correct" if hit else "wrong")


def iter_items(records: Iterable[Record], root: Path, where: str) -> list[Item]:
    """Items of records that already exist (synthetic suites): one root for all."""
    return [Item(r, root, f"{where}:{i}") for i, r in enumerate(records, start=1)]
