"""LMM-R1 message JSONL -> lmmr1 records.

Input (TideDra/lmm-r1 README "Prepare Datasets", `examples/data/test_message.jsonl`; the released
VLM-Reasoner/deepscaler and VLM-Reasoner/VerMulti files): one JSON object per line,

    {"message": "<JSON string of a chat message list>", "answer": "$...$", "question": ..., "datasource": ...}

where image items are {"type": "image", "image": "file:///abs/path.jpg"} (or a plain path). Each row
becomes a record: the message list is parsed, each image item becomes the placeholder {"type": "image"}
and its path goes, in order, into `images`, made relative to the output file's folder (the dataset root).
Per-image sizing keys (min_pixels, max_pixels) are dropped: sizing is global (lmmr1.data.images).
`answer` is kept verbatim (the reward `$`-wraps it as LMM-R1 does); `datasource` becomes `source`; every
other key (question, ...) goes to `meta`. The system prompt in the message is kept.

The released files hold absolute paths of the authors' machines: map them with
`--image-prefix-map /their/prefix=/your/prefix`. Relative paths are read relative to the input file.

CLI:
    python -m data_pipelines.lmmr1_messages INPUT.jsonl OUTPUT.jsonl [--task math] [--source NAME]
        [--image-prefix-map OLD=NEW ...] [--no-check-images] [--min-pixels N] [--max-pixels N]
Writes OUTPUT.jsonl and OUTPUT.jsonl.report.json (rows kept / rejected and why) and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from data_pipelines._common import (
    ConversionReport,
    add_image_arguments,
    convert_rows,
    count_lines,
    image_config_from_args,
    read_jsonl_rows,
    write_jsonl,
    write_report,
)
from lmmr1.data.images import ImageConfig, ImageLoadError
from lmmr1.data.records import Record, RecordError, is_url, validate_record


def parse_prefix_map(pairs: list[str] | None) -> list[tuple[str, str]]:
    """["OLD=NEW", ...] -> [(OLD, NEW), ...]; longest OLD first so the most specific prefix wins."""
    mapping = []
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--image-prefix-map expects OLD=NEW, got {pair!r}")
        old, new = pair.split("=", 1)
        mapping.append((old, new))
    return sorted(mapping, key=lambda p: -len(p[0]))


def source_image_path(ref: str, input_dir: Path, prefix_map: list[tuple[str, str]]) -> Path:
    """Absolute (normalised, not symlink-resolved) path of an image reference in an LMM-R1 row."""
    if ref.startswith("file://"):
        ref = ref[len("file://"):]
    elif is_url(ref):
        raise ImageLoadError(ref[:80], "remote_refused", "records hold local files; download remote images first")
    for old, new in prefix_map:
        if ref.startswith(old):
            ref = new + ref[len(old):]
            break
    path = Path(ref)
    return Path(os.path.abspath(path if path.is_absolute() else input_dir / path))


def relative_to_root(path: Path, root: Path, ref: str) -> str:
    """`path` relative to dataset `root` (POSIX separators); refuses a path outside the root."""
    rel = os.path.relpath(path, root)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise ImageLoadError(
            ref, "outside_root",
            f"{path} is outside the dataset root {root} (the output file's folder); write the output inside "
            "the folder that holds the images, or map the paths with --image-prefix-map",
        )
    return Path(rel).as_posix()


def lmmr1_row_to_record(
    row: Any,
    file: str,
    row_number: int,
    *,
    input_dir: Path,
    output_root: Path,
    prefix_map: list[tuple[str, str]] = (),
    task: str = "math",
    default_source: str = "lmm_r1",
) -> Record:
    """One LMM-R1 row -> a validated Record (raises RecordError / ImageLoadError naming file and row)."""
    if not isinstance(row, dict):
        raise RecordError(f"a row is a JSON object, got {type(row).__name__}", file=file, row=row_number)
    message = row.get("message", row.get("messages"))
    if message is None:
        raise RecordError("missing (LMM-R1 rows carry the chat as 'message')", file=file, row=row_number, field="message")
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except json.JSONDecodeError as err:
            raise RecordError(f"not a JSON message list: {err.msg}", file=file, row=row_number, field="message") from None
    if not isinstance(message, list):
        raise RecordError(f"must be a list of chat turns, got {type(message).__name__}", file=file, row=row_number,
                          field="message")

    messages, images = [], []
    for t, turn in enumerate(message):
        if not isinstance(turn, dict):
            raise RecordError("a chat turn is an object", file=file, row=row_number, field=f"message[{t}]")
        content = turn.get("content")
        if isinstance(content, list):
            items = []
            for i, item in enumerate(content):
                where = f"message[{t}].content[{i}]"
                if not isinstance(item, dict):
                    raise RecordError("an item is an object", file=file, row=row_number, field=where)
                kind = item.get("type")
                if kind == "image" or (kind is None and "image" in item):
                    ref = item.get("image", item.get("image_url"))
                    if not isinstance(ref, str) or not ref:
                        raise RecordError("an image item needs a path in 'image'", file=file, row=row_number,
                                          field=f"{where}.image")
                    images.append(relative_to_root(source_image_path(ref, input_dir, prefix_map), output_root, ref))
                    items.append({"type": "image"})
                elif kind == "text":
                    items.append({"type": "text", "text": item.get("text")})
                else:
                    raise RecordError(f"unsupported item type {kind!r} (text and image only)", file=file,
                                      row=row_number, field=f"{where}.type")
            content = items
        messages.append({"role": turn.get("role"), "content": content})

    meta = {k: v for k, v in row.items() if k not in ("message", "messages", "answer", "datasource")}
    return validate_record(
        {
            "messages": messages,
            "images": images,
            "answer": row.get("answer"),
            "task": task,
            "source": str(row.get("datasource") or default_source),
            "meta": meta,
        },
        file=file,
        row=row_number,
    )


def convert_lmmr1_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    task: str = "math",
    source: str = "lmm_r1",
    prefix_map: list[tuple[str, str]] = (),
    check_images: bool = True,
    image_config: ImageConfig | None = None,
    progress: bool = False,
) -> ConversionReport:
    """Convert one LMM-R1 JSONL file; returns the report (the records go to `output_path`)."""
    input_path, output_path = Path(input_path), Path(output_path)
    output_root = Path(os.path.abspath(output_path)).parent
    report = ConversionReport()
    records = convert_rows(
        read_jsonl_rows(input_path, report),
        lambda row, file, n: lmmr1_row_to_record(
            row, file, n, input_dir=Path(os.path.abspath(input_path)).parent, output_root=output_root,
            prefix_map=prefix_map, task=task, default_source=source,
        ),
        report,
        image_root=output_root if check_images else None,
        image_config=image_config,
        progress=progress,
        total=count_lines(input_path) if progress else None,
        desc=input_path.name,
    )
    write_jsonl(output_path, records)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_pipelines.lmmr1_messages", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="LMM-R1 message JSONL")
    parser.add_argument("output", type=Path, help="records JSONL to write (its folder is the dataset root)")
    parser.add_argument("--task", default="math", help="record task (default: math)")
    parser.add_argument("--source", default="lmm_r1", help="record source when a row has no datasource")
    parser.add_argument("--image-prefix-map", action="append", metavar="OLD=NEW", help="rewrite image path prefixes")
    add_image_arguments(parser)
    args = parser.parse_args(argv)
    report = convert_lmmr1_file(
        args.input, args.output, task=args.task, source=args.source, prefix_map=parse_prefix_map(args.image_prefix_map),
        check_images=not args.no_check_images, image_config=image_config_from_args(args), progress=True,
    )
    write_report(args.output, report)
    return 0 if report.kept else 1


if __name__ == "__main__":
    raise SystemExit(main())
