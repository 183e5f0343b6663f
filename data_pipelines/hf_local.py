"""Local Hugging Face dataset files (parquet / JSONL / JSON) -> lmmr1 records.

Nothing is downloaded: point it at files you already have (a `huggingface-cli download` folder, a
`datasets` parquet export, a JSONL dump). Supported layouts (`--layout`, or detected from the columns):

| layout       | example dataset                          | question                 | answer     | images                         |
|--------------|------------------------------------------|--------------------------|------------|--------------------------------|
| `deepscaler` | agentica-org/DeepScaleR-Preview-Dataset  | `problem`                | `answer`   | none (text-only, FRE)          |
| `geometry3k` | hiyouga/geometry3k                       | `problem` (`<image>` tag)| `answer`   | `images`: [{"bytes", "path"}]  |
| `mathv360k`  | Zhiqiang007/MathV360K (LLaVA json)       | first human turn of      | first gpt  | `image`: a path relative to    |
|              |                                          | `conversations`          | turn       | --image-root                   |

`--question-key/--answer-key/--image-key` override a layout's columns (any flat table works). Images given
as bytes are decoded (checked) and written under `<output folder>/images/`; images given as paths are
read relative to `--image-root` (default: the input's folder) and must lie inside the output's folder,
the dataset root. `<image>` tags in the question place the images; without tags the images come first
(Qwen's convention). A system prompt is added (`--system-prompt lmm_r1|abstain|none|TEXT`, default
LMM-R1's). Other scalar columns go to `meta`.

CLI:
    python -m data_pipelines.hf_local INPUT OUTPUT.jsonl [--layout auto] [--split train] [--image-root DIR]
        [--source NAME] [--task TASK] [--system-prompt lmm_r1] [--limit N] [--no-check-images]
INPUT is a file or a folder (all *.parquet / *.jsonl / *.json below it, sorted; `--split` keeps the files
whose path contains that word).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from data_pipelines._common import (
    ConversionReport,
    add_image_arguments,
    convert_rows,
    image_config_from_args,
    read_jsonl_rows,
    write_jsonl,
    write_report,
)
from data_pipelines.lmmr1_messages import relative_to_root, source_image_path
from lmmr1.data.images import ImageConfig, decode_image
from lmmr1.data.prompts import system_prompt
from lmmr1.data.records import Record, RecordError, answer_text, validate_record


@dataclass(frozen=True)
class Layout:
    """Which columns hold what."""

    name: str
    question: str
    answer: str
    images: str | None
    task: str = "math"
    conversations: bool = False
    """LLaVA style: `question` and `answer` are both the `conversations` list of {"from", "value"} turns."""


LAYOUTS = {
    "deepscaler": Layout("deepscaler", question="problem", answer="answer", images=None, task="math"),
    "geometry3k": Layout("geometry3k", question="problem", answer="answer", images="images", task="geometry"),
    "mathv360k": Layout("mathv360k", question="conversations", answer="conversations", images="image",
                        task="math", conversations=True),
}

DATA_SUFFIXES = (".parquet", ".jsonl", ".json")
SKIP_META = {"images", "image", "conversations", "messages"}


def detect_layout(columns: set[str]) -> Layout:
    """Pick a layout from a row's columns (error lists the columns and the layouts)."""
    if "conversations" in columns:
        return LAYOUTS["mathv360k"]
    if {"problem", "answer", "images"} <= columns:
        return LAYOUTS["geometry3k"]
    if {"problem", "answer"} <= columns:
        return LAYOUTS["deepscaler"]
    raise ValueError(
        f"cannot detect the layout from columns {sorted(columns)}; pass --layout ({', '.join(LAYOUTS)}) or "
        "--question-key/--answer-key/--image-key"
    )


def data_files(path: Path, split: str | None) -> list[Path]:
    """The data files of a file or folder (sorted), filtered by split."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or folder: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES and ".report" not in p.name)
    if split:
        files = [p for p in files if re.search(rf"(?<![A-Za-z]){re.escape(split)}(?![A-Za-z])", str(p.relative_to(path)))]
    if not files:
        raise FileNotFoundError(f"no {'/'.join(DATA_SUFFIXES)} files under {path}" + (f" for split {split!r}" if split else ""))
    return files


def iter_rows(path: Path, report: ConversionReport) -> Iterator[tuple[str, int, Any]]:
    """(file, row number from 1, row dict) of one data file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                f"reading {path} needs pyarrow: pip install pyarrow (lmmr1[openrlhf] brings it via datasets)"
            ) from None

        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            for item in batch.to_pylist():
                row += 1
                yield str(path), row, item
    elif path.suffix == ".jsonl":
        yield from read_jsonl_rows(path, report)
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "data" in data:
            data = data["data"]
        if not isinstance(data, list):
            raise ValueError(f"{path}: a .json dataset is a list of rows")
        for row, item in enumerate(data, start=1):
            yield str(path), row, item


def conversation_turns(turns: Any, file: str, row: int) -> tuple[str, str | None]:
    """(first human/user text, first gpt/assistant text after it) of a LLaVA conversation."""
    if not isinstance(turns, list):
        raise RecordError("must be a list of turns", file=file, row=row, field="conversations")
    question = answer = None
    for turn in turns:
        speaker = str(turn.get("from", turn.get("role", ""))).lower() if isinstance(turn, dict) else ""
        text = turn.get("value", turn.get("content")) if isinstance(turn, dict) else None
        if question is None and speaker in ("human", "user"):
            question = text
        elif question is not None and speaker in ("gpt", "assistant"):
            answer = text
            break
    if not isinstance(question, str):
        raise RecordError("no human turn", file=file, row=row, field="conversations")
    return question, answer


def image_values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def user_content(question: str, n_images: int, file: str, row: int) -> str | list[dict[str, str]]:
    """The user turn: images at the `<image>` tags, or first when there are none."""
    tags = question.count("<image>")
    if n_images == 0:
        if tags:
            raise RecordError(f"{tags} <image> tag(s) but no image", file=file, row=row, field="images")
        return question
    if tags == 0:
        return [{"type": "image"}] * n_images + [{"type": "text", "text": question.strip()}]
    if tags != n_images:
        raise RecordError(f"{tags} <image> tag(s) but {n_images} image(s)", file=file, row=row, field="images")
    items: list[dict[str, str]] = []
    for i, part in enumerate(question.split("<image>")):
        if i:
            items.append({"type": "image"})
        if part.strip():
            items.append({"type": "text", "text": part.strip()})
    return items


@dataclass
class HFRowConverter:
    """Turns one row of a layout into a record; writes embedded image bytes under `output_root/images/`."""

    layout: Layout
    output_root: Path
    image_root: Path
    source: str
    system: str
    image_config: ImageConfig

    def __call__(self, row: Any, file: str, n: int) -> Record:
        if not isinstance(row, dict):
            raise RecordError(f"a row is an object, got {type(row).__name__}", file=file, row=n)
        layout = self.layout
        if layout.conversations:
            question, answer = conversation_turns(row.get(layout.question), file, n)
        else:
            question, answer = row.get(layout.question), row.get(layout.answer)
            if not isinstance(question, str) or not question.strip():
                raise RecordError("missing or empty question", file=file, row=n, field=layout.question)
        if answer is None or not str(answer).strip():
            raise RecordError("missing (every record needs a gold answer)", file=file, row=n, field="answer")

        raw_images = image_values(row.get(layout.images)) if layout.images else []
        content = user_content(question, len(raw_images), file, n)
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": content}
        ]
        meta = {k: v for k, v in row.items() if k not in SKIP_META | {layout.question, layout.answer} and _jsonable(v)}
        images = [self._image(value, file, n, i) for i, value in enumerate(raw_images)]
        return validate_record(
            {"messages": messages, "images": images, "answer": answer_text(answer).strip(), "task": layout.task,
             "source": self.source, "meta": meta},
            file=file, row=n,
        )

    def _image(self, value: Any, file: str, n: int, i: int) -> str:
        """A dataset-relative path for one image value (a path, or {"bytes", "path"} written out)."""
        if isinstance(value, dict) and value.get("bytes"):
            data = value["bytes"]
            name = str(value.get("path") or "")
            decode_image(data, f"{file}:{n}:images[{i}]", self.image_config)  # refuse before writing
            suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp") else ".png"
            digest = hashlib.sha1(data).hexdigest()[:16]
            target = self.output_root / "images" / f"{Path(file).stem}-{n}-{i}-{digest}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(target)
            return target.relative_to(self.output_root).as_posix()
        ref = value.get("path") if isinstance(value, dict) else value
        if not isinstance(ref, str) or not ref:
            raise RecordError(f"an image is a path or {{'bytes', 'path'}}, got {type(value).__name__}", file=file,
                              row=n, field=f"images[{i}]")
        return relative_to_root(source_image_path(ref, self.image_root, []), self.output_root, ref)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def convert_hf_local(
    input_path: str | Path,
    output_path: str | Path,
    *,
    layout: str = "auto",
    question_key: str | None = None,
    answer_key: str | None = None,
    image_key: str | None = None,
    split: str | None = None,
    image_root: str | Path | None = None,
    source: str | None = None,
    task: str | None = None,
    system: str = "lmm_r1",
    limit: int | None = None,
    check_images: bool = True,
    image_config: ImageConfig | None = None,
    progress: bool = False,
) -> ConversionReport:
    """Convert local HF dataset files to a records JSONL at `output_path`; returns the report."""
    input_path, output_path = Path(input_path), Path(output_path)
    output_root = Path(os.path.abspath(output_path)).parent
    files = data_files(input_path, split)
    config = image_config or ImageConfig()
    report = ConversionReport()

    def rows() -> Iterator[tuple[str, int, Any]]:
        count = 0
        for path in files:
            for item in iter_rows(path, report):
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item

    row_iter = rows()
    first = next(row_iter, None)
    if first is None:
        write_jsonl(output_path, [])
        return report
    chosen = LAYOUTS[layout] if layout != "auto" else detect_layout(set(first[2]) if isinstance(first[2], dict) else set())
    if question_key or answer_key or image_key:
        chosen = replace(chosen, question=question_key or chosen.question, answer=answer_key or chosen.answer,
                         images=image_key or chosen.images, conversations=False if (question_key or answer_key) else chosen.conversations)
    if task:
        chosen = replace(chosen, task=task)
    base = input_path if input_path.is_dir() else input_path.parent
    converter = HFRowConverter(
        layout=chosen, output_root=output_root,
        image_root=Path(os.path.abspath(image_root)) if image_root else Path(os.path.abspath(base)),
        source=source or chosen.name, system=system_prompt(system), image_config=config,
    )

    def all_rows() -> Iterator[tuple[str, int, Any]]:
        yield first
        yield from row_iter

    records = convert_rows(all_rows(), converter, report, image_root=output_root if check_images else None,
                           image_config=config, progress=progress, desc=input_path.name)
    write_jsonl(output_path, records)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_pipelines.hf_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="a parquet/JSONL/JSON file or a folder of them")
    parser.add_argument("output", type=Path, help="records JSONL to write (its folder is the dataset root)")
    parser.add_argument("--layout", default="auto", choices=["auto", *LAYOUTS], help="column layout")
    parser.add_argument("--question-key", help="override the layout's question column")
    parser.add_argument("--answer-key", help="override the layout's answer column")
    parser.add_argument("--image-key", help="override the layout's image column")
    parser.add_argument("--split", help="only files whose path contains this word (train, test, ...)")
    parser.add_argument("--image-root", type=Path, help="folder that image paths are relative to (default: input's)")
    parser.add_argument("--source", help="record source (default: the layout name)")
    parser.add_argument("--task", help="record task (default: the layout's)")
    parser.add_argument("--system-prompt", default="lmm_r1", help="lmm_r1 | abstain | none | literal text")
    parser.add_argument("--limit", type=int, help="convert at most this many rows")
    add_image_arguments(parser)
    args = parser.parse_args(argv)
    report = convert_hf_local(
        args.input, args.output, layout=args.layout, question_key=args.question_key, answer_key=args.answer_key,
        image_key=args.image_key, split=args.split, image_root=args.image_root, source=args.source, task=args.task,
        system=args.system_prompt, limit=args.limit, check_images=not args.no_check_images,
        image_config=image_config_from_args(args), progress=True,
    )
    write_report(args.output, report)
    return 0 if report.kept else 1


if __name__ == "__main__":
    raise SystemExit(main())
