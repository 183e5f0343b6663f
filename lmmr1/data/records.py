"""The unified example: `Record`, its validation, and JSONL I/O.

One record is one prompt with its gold answer (DESIGN.md, "The pieces"):

    messages  chat turns, OpenAI style: {"role": "system"|"user"|"assistant", "content": str | [item, ...]},
              item = {"type": "text", "text": str} or {"type": "image"} (a placeholder: no path inside).
              The last turn is the user's: the model answers it.
    images    one path per image placeholder, in order, relative to the dataset root (the folder holding
              the records file). Never absolute, never a URL, never escaping the root.
    answer    the gold answer as LaTeX (LMM-R1 style: "$3$", "$\\frac{1}{2}$", "\\boxed{60}"), or
              `UNANSWERABLE` for a question whose correct response is to abstain (UCPO-style variants).
    task      what kind of example this is ("math", "geometry", "counting", ...), keys per-task metrics.
    source    where it came from ("deepscaler", "synthetic/arithmetic", ...); OpenRLHF's `datasource`.
    meta      anything else (JSON-serialisable): original ids, difficulty, the raw question.

`validate_record` is the single gate: every converter and loader calls it, and a bad row raises
`RecordError` naming the file, row and field, so a conversion can count it and move on.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")

# The gold answer of a question that cannot be answered from what it gives: the right response abstains.
# A string (not a flag in `meta`) because OpenRLHF's reward_func sees only the label.
UNANSWERABLE = "[unanswerable]"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")  # "http:", "file:", "data:" (not a drive letter "C:")

# Text that a Qwen processor would read as vision tokens: a record holding one would get image tokens
# without pixels (or the wrong count). Refused in every text field of `messages`.
VISION_TOKEN_STRINGS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>")

RECORD_FIELDS = ("messages", "images", "answer", "task", "source", "meta")


class RecordError(ValueError):
    """A row that is not a valid record. `str(err)` reads "file:row: field: what is wrong"."""

    def __init__(self, message: str, *, file: str | Path | None = None, row: int | None = None,
                 field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.row = row
        self.field = field
        self.reason = message
        where = ":".join(str(p) for p in (self.file, row) if p is not None)
        head = f"{where}: " if where else ""
        super().__init__(f"{head}{field + ': ' if field else ''}{message}")


@dataclass(frozen=True)
class Record:
    """One example. Build it with `validate_record(...)` (or `Record(...)` then `.validate()`)."""

    messages: list[dict[str, Any]]
    answer: str
    images: list[str] = field(default_factory=list)
    task: str = "math"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def unanswerable(self) -> bool:
        """True when the correct response is to abstain."""
        return self.answer.strip() == UNANSWERABLE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self, *, file: str | Path | None = None, row: int | None = None) -> "Record":
        return validate_record(self.to_dict(), file=file, row=row)


def count_image_placeholders(messages: list[dict[str, Any]]) -> int:
    """Number of {"type": "image"} items over all turns."""
    return sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for item in message["content"]
        if isinstance(item, dict) and item.get("type") == "image"
    )


def prompt_text(record: Record) -> str:
    """The text of the last user turn (image placeholders dropped): the question, for logs and dedup."""
    content = record.messages[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(item["text"] for item in content if item["type"] == "text")


def is_url(ref: str) -> bool:
    """A reference with a scheme ("http://", "file://", "data:"): not a dataset-relative path."""
    return _SCHEME.match(ref) is not None


def check_relative_image_path(ref: str) -> str | None:
    """Why `ref` is not an acceptable dataset-relative image path, or None when it is.

    Lexical check only (the image loader re-checks after resolving symlinks)."""
    if not ref or not ref.strip():
        return "empty path"
    if is_url(ref):
        return f"{ref!r} is a URL; records hold paths relative to the dataset root"
    if ref.startswith(("/", "\\")) or (len(ref) > 1 and ref[1] == ":"):
        return f"{ref!r} is absolute; records hold paths relative to the dataset root"
    normal = posixpath.normpath(ref.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return f"{ref!r} escapes the dataset root"
    return None


def _fail(message: str, file, row, field) -> RecordError:
    return RecordError(message, file=file, row=row, field=field)


def _check_text(text: str, file, row, where: str) -> None:
    token = next((t for t in VISION_TOKEN_STRINGS if t in text), None)
    if token is not None:
        raise _fail(f"text contains the vision token {token!r} (it would become image tokens without pixels)",
                    file, row, where)


def _validate_messages(messages: Any, file, row) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _fail("must be a non-empty list of chat turns", file, row, "messages")
    clean: list[dict[str, Any]] = []
    for t, message in enumerate(messages):
        where = f"messages[{t}]"
        if not isinstance(message, Mapping):
            raise _fail(f"must be an object, got {type(message).__name__}", file, row, where)
        extra = set(message) - {"role", "content"}
        if extra:
            raise _fail(f"unknown keys {sorted(extra)}", file, row, where)
        role = message.get("role")
        if role not in ROLES:
            raise _fail(f"role {role!r} is not one of {list(ROLES)}", file, row, f"{where}.role")
        content = message.get("content")
        if isinstance(content, str):
            _check_text(content, file, row, f"{where}.content")
            clean.append({"role": role, "content": content})
            continue
        if not isinstance(content, list) or not content:
            raise _fail("must be a string or a non-empty list of items", file, row, f"{where}.content")
        items: list[dict[str, Any]] = []
        for i, item in enumerate(content):
            at = f"{where}.content[{i}]"
            if not isinstance(item, Mapping):
                raise _fail(f"must be an object, got {type(item).__name__}", file, row, at)
            kind = item.get("type")
            if kind == "text":
                if set(item) != {"type", "text"} or not isinstance(item["text"], str):
                    raise _fail('a text item is {"type": "text", "text": str}', file, row, at)
                _check_text(item["text"], file, row, f"{at}.text")
                items.append({"type": "text", "text": item["text"]})
            elif kind == "image":
                if set(item) != {"type"}:
                    raise _fail(
                        'an image item is the placeholder {"type": "image"}; its path goes in "images"',
                        file, row, at,
                    )
                items.append({"type": "image"})
            else:
                raise _fail(f"type {kind!r} is not 'text' or 'image'", file, row, f"{at}.type")
        clean.append({"role": role, "content": items})
    if clean[-1]["role"] != "user":
        raise _fail(f"the last turn must be the user's, got {clean[-1]['role']!r}", file, row,
                    f"messages[{len(clean) - 1}].role")
    return clean


def validate_record(data: Any, *, file: str | Path | None = None, row: int | None = None) -> Record:
    """Check one row against the schema and return it as a `Record` (copies; the input is not mutated).

    Raises RecordError(file, row, field) on the first problem found."""
    if isinstance(data, Record):
        data = data.to_dict()
    if not isinstance(data, Mapping):
        raise _fail(f"a record is a JSON object, got {type(data).__name__}", file, row, None)
    unknown = set(data) - set(RECORD_FIELDS)
    if unknown:
        raise _fail(f"unknown fields {sorted(unknown)}; a record has {list(RECORD_FIELDS)}", file, row, None)

    messages = _validate_messages(data.get("messages"), file, row)

    answer = data.get("answer")
    if answer is None:
        raise _fail("missing (every record needs a gold answer)", file, row, "answer")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise _fail(f"must be a string, got {type(answer).__name__}", file, row, "answer")
    if isinstance(answer, float) and not math.isfinite(answer):
        raise _fail(f"must be finite, got {answer!r}", file, row, "answer")
    answer = answer_text(answer)
    if not answer.strip():
        raise _fail("empty (every record needs a gold answer)", file, row, "answer")

    images = data.get("images", [])
    if images is None:
        images = []
    if not isinstance(images, list):
        raise _fail(f"must be a list of paths, got {type(images).__name__}", file, row, "images")
    for i, ref in enumerate(images):
        if not isinstance(ref, str):
            raise _fail(f"must be a string path, got {type(ref).__name__}", file, row, f"images[{i}]")
        problem = check_relative_image_path(ref)
        if problem:
            raise _fail(problem, file, row, f"images[{i}]")
    placeholders = count_image_placeholders(messages)
    if placeholders != len(images):
        raise _fail(
            f"{placeholders} image placeholder(s) in messages but {len(images)} path(s) in images",
            file, row, "images",
        )

    task = data.get("task", "math")
    if not isinstance(task, str) or not task.strip():
        raise _fail("must be a non-empty string", file, row, "task")
    source = data.get("source", "")
    if not isinstance(source, str):
        raise _fail(f"must be a string, got {type(source).__name__}", file, row, "source")
    meta = data.get("meta", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise _fail(f"must be an object, got {type(meta).__name__}", file, row, "meta")
    try:
        meta = json.loads(json.dumps(meta, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise _fail(f"not JSON-serialisable: {err}", file, row, "meta") from None

    return Record(messages=messages, answer=answer, images=list(images), task=task, source=source, meta=meta)


def answer_text(answer: str | int | float) -> str:
    """A gold answer as text; numbers in positional notation (1e-07 -> "0.0000001", 2e16 ->
    "20000000000000000"): `str(float)` writes an exponent the verifier reads as e * 10^..., so a correct
    "\\boxed{0.0000001}" would be graded wrong."""
    if isinstance(answer, float):
        return format(Decimal(repr(answer)), "f")
    return str(answer)


class MalformedRow(ValueError):
    """A JSONL line that is not one JSON value: bad UTF-8, bad JSON, an integer past Python's digit limit,
    nesting deeper than the parser's recursion limit. The message says which and where on the line."""


def parse_json_line(line: bytes) -> Any:
    """One JSONL line (raw bytes) -> its JSON value; anything that makes it unreadable raises MalformedRow,
    so a reader can skip that row and go on with the next (a file is decoded line by line: one bad byte
    costs one row, not the file)."""
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise MalformedRow(f"not UTF-8 (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    except json.JSONDecodeError as err:
        raise MalformedRow(f"malformed JSON: {err.msg} at column {err.colno}") from None
    except ValueError as err:  # e.g. an integer literal longer than sys.get_int_max_str_digits()
        raise MalformedRow(f"unreadable JSON value: {err}") from None
    except RecursionError:
        raise MalformedRow("JSON nested too deeply") from None


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, Any, MalformedRow | None]]:
    """(line number from 1, value, None) per non-blank line of a JSONL file, or (line number, None, error)
    for a line `parse_json_line` cannot read."""
    with Path(path).open("rb") as f:
        for row, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield row, parse_json_line(line), None
            except MalformedRow as err:
                yield row, None, err


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield the records of a JSONL file; the first bad row raises RecordError(file, row, field).

    Rows are numbered from 1 (the line number); blank lines are skipped."""
    path = Path(path)
    for row, data, error in iter_json_lines(path):
        if error is not None:
            raise RecordError(str(error), file=path, row=row)
        yield validate_record(data, file=path, row=row)


def load_records(path: str | Path) -> list[Record]:
    """All records of a JSONL file (see `read_records`)."""
    return list(read_records(path))


def record_to_json(record: Record) -> str:
    """One JSONL line (no trailing newline)."""
    return json.dumps(record.to_dict(), ensure_ascii=False, allow_nan=False)


def write_records(path: str | Path, records) -> int:
    """Write records as JSONL (atomically: a temporary file renamed into place). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(record_to_json(record) + "\n")
            n += 1
    tmp.replace(path)
    return n
