"""lmmr1 records -> OpenRLHF 0.11 prompt JSONL.

Each record becomes one row that OpenRLHF's `PromptDataset` reads with
    --data.input_key messages --data.label_key label --data.image_key images --data.apply_chat_template
(openrlhf 0.11.2 `openrlhf/datasets/prompts_dataset.py`):

    messages    the chat, every `content` as a list of items ({"type": "text", "text": ...} / {"type": "image"}).
                Always lists, so that HF `datasets` infers one Arrow type for the column (a file mixing
                string and list contents fails to load), and so that OpenRLHF's `<image>`-tag splitting of
                string contents never touches our text.
    images      absolute paths (symlinks resolved), in placeholder order: OpenRLHF opens them in the
                rollout actors, so they must be reachable from every node. An image with transparency
                is replaced by a flattened copy (onto white, as lmmr1's loader composites it) under
                `flattened_images/` beside the output: OpenRLHF's processor would drop the alpha channel
                instead, and the two engines would see different pixels.
    answer      the gold answer.
    label       {"answer": ..., "meta": {...}} as a JSON string: the label lmmr1's reward_func receives
                (`--data.label_key label`), so rewards that read the record's meta (football, Sokoban) work
                in OpenRLHF's rollout actors too; `--data.label_key answer` passes the bare answer.
    datasource  the record's source ("default" when empty): OpenRLHF's per-source eval metrics key.
    task        the record's task.
    meta        the record's meta as a JSON string (one Arrow type whatever the keys).

CLI:
    python -m data_pipelines.to_openrlhf RECORDS.jsonl OUTPUT.jsonl [--no-check-images]
Images are loaded through lmmr1.data.images while converting unless --no-check-images; a record whose
image is missing, corrupt or outside its dataset root is rejected and counted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

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
from lmmr1.data.images import ImageConfig, load_image, resolve_image_path, to_rgb
from lmmr1.data.records import Record, validate_record

OPENRLHF_FLAGS = (
    "--data.input_key messages --data.label_key label --data.image_key images --data.apply_chat_template"
)


def has_transparency(image: Image.Image) -> bool:
    """Whether an opened image carries an alpha channel or a transparent palette entry (header only)."""
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def flattened_copy(path: Path, out_dir: Path) -> Path:
    """`path` composited onto white (`lmmr1.data.images.to_rgb`) as an RGB PNG in `out_dir`, named by the
    source's content hash (written once, atomically); `path` itself when it has no transparency, or when it
    cannot be opened (with --no-check-images nothing vouches for it: OpenRLHF skips it with a warning)."""
    try:
        image = Image.open(path)
    except OSError:
        return path
    with image:
        if not has_transparency(image):
            return path
        data = path.read_bytes()
        target = out_dir / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
        if not target.exists():
            out_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            try:
                to_rgb(image).save(tmp, format="PNG")
            except OSError:  # undecodable past its header (only reachable with --no-check-images)
                tmp.unlink(missing_ok=True)
                return path
            tmp.replace(target)
    return target.resolve()


def record_to_openrlhf(record: Record, root: str | Path, flattened_dir: Path | None = None) -> dict[str, Any]:
    """One record -> one OpenRLHF prompt row (image paths made absolute against dataset `root`; with
    `flattened_dir`, transparent images replaced by their flattened copies there)."""
    messages = []
    for message in record.messages:
        content = message["content"]
        items = [{"type": "text", "text": content}] if isinstance(content, str) else [dict(item) for item in content]
        messages.append({"role": message["role"], "content": items})
    return {
        "messages": messages,
        "images": [str(resolve_image_path(ref, root) if flattened_dir is None else
                       flattened_copy(resolve_image_path(ref, root), flattened_dir)) for ref in record.images],
        "answer": record.answer,
        "label": json.dumps({"answer": record.answer, "meta": record.meta}, ensure_ascii=False, sort_keys=True),
        "datasource": record.source or "default",
        "task": record.task,
        "meta": json.dumps(record.meta, ensure_ascii=False, sort_keys=True),
    }


def convert_records_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    check_images: bool = True,
    image_config: ImageConfig | None = None,
    progress: bool = False,
    processor=None,
    max_prompt_len: int | None = None,
) -> ConversionReport:
    """Records JSONL -> OpenRLHF JSONL; returns the report. The dataset root is the input file's folder.

    With `processor` and `max_prompt_len`, every prompt is also encoded as the rollout will encode it (chat
    template, images expanded) and a record longer than `max_prompt_len` tokens is rejected and counted
    (`prompt_too_long`): OpenRLHF's executor would stop the whole run on an over-long image prompt."""
    input_path, output_path = Path(input_path), Path(output_path)
    root = Path(os.path.abspath(input_path)).parent
    report = ConversionReport()
    if image_config is None and processor is not None and hasattr(processor, "image_processor"):
        # The processor's own bounds: OpenRLHF resizes the raw file once with them, and so must the length
        # check (a default-sized copy resized again can land on another grid: 300x299 -> 16x16 patches,
        # where the processor alone gives 14x16).
        image_config = ImageConfig.from_processor(processor)
    config = image_config or ImageConfig()

    def to_row(raw: Any, file: str, row: int) -> dict[str, Any]:
        record = validate_record(raw, file=file, row=row)
        check_length = processor is not None and max_prompt_len is not None
        if check_images or check_length:
            images = [load_image(ref, root, config) for ref in record.images]
        if check_length:
            from lmmr1.rollout.prompts import encode_prompt

            encode_prompt(processor, record.messages, images, max_prompt_len=max_prompt_len)
        return record_to_openrlhf(record, root, output_path.parent / "flattened_images")

    rows = convert_rows(read_jsonl_rows(input_path, report), to_row, report, progress=progress,
                        total=count_lines(input_path) if progress else None, desc=input_path.name)
    write_jsonl(output_path, rows)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_pipelines.to_openrlhf", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="lmmr1 records JSONL (its folder is the dataset root)")
    parser.add_argument("output", type=Path, help="OpenRLHF prompt JSONL to write")
    add_image_arguments(parser)
    args = parser.parse_args(argv)
    report = convert_records_file(args.input, args.output, check_images=not args.no_check_images,
                                  image_config=image_config_from_args(args), progress=True)
    write_report(args.output, report)
    print(f"train with: --data.prompt_dataset {os.path.abspath(args.output)} {OPENRLHF_FLAGS}")
    return 0 if report.kept else 1


if __name__ == "__main__":
    raise SystemExit(main())
