"""Shared plumbing of the converters: the kept/rejected report, image checks, the write loop, CLI helpers.

Every converter turns input rows into `Record`s one at a time. A row that cannot become a valid record is
*rejected*: it is counted under a reason ("malformed_json", "invalid_answer", "image_missing", ...), its
first few messages (file:row: field: what) are kept for the summary, and the conversion goes on. Nothing is
silently dropped: kept + rejected = rows read.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmmr1.data.images import ImageConfig, ImageLoadError, load_image
from lmmr1.data.records import Record, RecordError, iter_json_lines, record_to_json

EXAMPLES_PER_REASON = 3


@dataclass
class ConversionReport:
    """Rows kept and rejected (by reason) in one conversion."""

    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, message: str) -> None:
        self.rejected[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(message)

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "rejected": dict(self.rejected), "examples": self.examples}

    def summary(self) -> str:
        lines = [f"kept {self.kept} rows, rejected {self.total_rejected}"]
        for reason, count in self.rejected.most_common():
            lines.append(f"  {count:>7}  {reason}")
            lines.extend(f"             e.g. {example}" for example in self.examples.get(reason, []))
        return "\n".join(lines)


def reason_for(err: Exception) -> str:
    """The counting key of a rejection: image_<reason>, invalid_<field>, or the exception type."""
    if isinstance(err, ImageLoadError):
        return f"image_{err.reason}"
    if isinstance(err, RecordError):
        root = (err.field or "row").split(".")[0].split("[")[0]
        return f"invalid_{root}"
    from lmmr1.rollout.prompts import PromptTooLongError

    if isinstance(err, PromptTooLongError):
        return "prompt_too_long"
    return type(err).__name__


def check_record_images(record: Record, root: Path, config: ImageConfig) -> None:
    """Load every image of `record` through the one loader (raises ImageLoadError on the first bad one)."""
    for ref in record.images:
        load_image(ref, root, config)


def convert_rows(
    rows: Iterable[tuple[str, int, Any]],
    to_record: Callable[[Any, str, int], Record],
    report: ConversionReport,
    *,
    image_root: Path | None = None,
    image_config: ImageConfig | None = None,
    progress: bool = False,
    total: int | None = None,
    desc: str = "converting",
) -> Iterator[Record]:
    """Yield a record per good row; count and skip the bad ones.

    `rows` yields (file, row_number, raw_row); `to_record(raw_row, file, row_number)` raises RecordError /
    ImageLoadError / ValueError for a bad row. With `image_root`, every image is also loaded (and sized)
    by `lmmr1.data.images.load_image` relative to it."""
    iterator: Iterable = rows
    if progress:
        from tqdm import tqdm

        iterator = tqdm(rows, total=total, desc=desc, unit="row", file=sys.stderr)
    for file, row, raw in iterator:
        try:
            record = to_record(raw, file, row)
            if image_root is not None:
                check_record_images(record, image_root, image_config or ImageConfig())
        except (RecordError, ImageLoadError, ValueError, TypeError, KeyError) as err:
            message = str(err) if isinstance(err, RecordError) else f"{file}:{row}: {err}"
            report.reject(reason_for(err), message)
            continue
        report.kept += 1
        yield record


def read_jsonl_rows(path: Path, report: ConversionReport) -> Iterator[tuple[str, int, Any]]:
    """(file, line number, parsed object) per non-blank line; malformed JSON is counted and skipped."""
    for row, data, error in iter_json_lines(path):
        if error is not None:
            report.reject("malformed_json", f"{path}:{row}: {error}")
            continue
        yield str(path), row, data


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def write_jsonl(path: Path, objects: Iterable[dict | Record]) -> int:
    """Write JSONL atomically (temporary file renamed into place); returns the number of lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for obj in objects:
                line = record_to_json(obj) if isinstance(obj, Record) else json.dumps(obj, ensure_ascii=False)
                f.write(line + "\n")
                n += 1
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def write_report(out: Path, report: ConversionReport) -> Path:
    """`<out>.report.json` beside the output, and the summary on stderr."""
    report_path = out.with_name(out.name + ".report.json")
    report_path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(report.summary(), file=sys.stderr)
    print(f"wrote {out} and {report_path}", file=sys.stderr)
    return report_path


def add_image_arguments(parser) -> None:
    """CLI flags of ImageConfig shared by the converters."""
    defaults = ImageConfig()
    parser.add_argument("--no-check-images", action="store_true",
                        help="do not load every image while converting (faster; bad images then fail at training)")
    parser.add_argument("--min-pixels", type=int, default=defaults.min_pixels, help="processor min_pixels")
    parser.add_argument("--max-pixels", type=int, default=defaults.max_pixels, help="processor max_pixels")
    parser.add_argument("--max-source-pixels", type=int, default=defaults.max_source_pixels,
                        help="refuse images whose header declares more pixels (decompression bombs)")


def image_config_from_args(args) -> ImageConfig:
    return ImageConfig(min_pixels=args.min_pixels, max_pixels=args.max_pixels, max_source_pixels=args.max_source_pixels)
