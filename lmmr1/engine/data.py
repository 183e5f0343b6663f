"""Training prompts: records read once, images loaded and prompts encoded lazily, bad rows skipped and counted.

A record that cannot become a prompt (malformed row, missing or corrupt image, a path outside the dataset
root, a prompt longer than max_prompt_len) is skipped with its reason counted under `data/skipped_<reason>`
and a warning naming file, row and field; the run goes on. Only a dataset with no usable record at all is
an error.

Order: a seeded permutation per epoch; the position (epoch, cursor) is part of the checkpoint, so a resumed
run sees exactly the prompts an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmmr1.data.images import ImageConfig, ImageLoadError, dataset_root, load_record_images
from lmmr1.data.records import Record, RecordError, iter_json_lines, validate_record
from lmmr1.rollout.prompts import EncodedPrompt, PromptTooLongError, encode_prompt

log = logging.getLogger(__name__)


@dataclass
class Row:
    record: Record
    root: Path
    where: str
    """"file:row", for messages."""


@dataclass
class Prompt:
    """A record ready for rollout and training."""

    record: Record
    encoded: EncodedPrompt
    where: str


def read_rows(files: list[str], skipped: Counter) -> list[Row]:
    """Valid records of JSONL files; a bad row is logged (file:row: field: reason) and counted."""
    rows: list[Row] = []
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} does not exist")
        root = dataset_root(path)
        for number, data, error in iter_json_lines(path):
            if error is not None:
                skipped["malformed_row"] += 1
                log.warning("%s:%d: %s; row skipped", path, number, error)
                continue
            try:
                record = validate_record(data, file=path, row=number)
            except RecordError as err:
                skipped["invalid_record"] += 1
                log.warning("%s; row skipped", err)
                continue
            rows.append(Row(record, root, f"{path}:{number}"))
    return rows


def prepare(row: Row, processor, image_config: ImageConfig, max_prompt_len: int) -> Prompt:
    images = load_record_images(row.record.images, row.root, image_config)
    encoded = encode_prompt(processor, row.record.messages, images, max_prompt_len=max_prompt_len)
    return Prompt(row.record, encoded, row.where)


def try_prepare(row: Row, processor, image_config: ImageConfig, max_prompt_len: int, skipped: Counter) -> Prompt | None:
    """`prepare`, or None for a record that cannot become a prompt (its reason counted in `skipped`, logged)."""
    try:
        return prepare(row, processor, image_config, max_prompt_len)
    except ImageLoadError as err:
        skipped[f"image_{err.reason}"] += 1
        log.warning("%s: images: %s; record skipped", row.where, err)
    except PromptTooLongError as err:
        skipped["prompt_too_long"] += 1
        log.warning("%s: messages: %s; record skipped", row.where, err)
    return None


class PromptSource:
    """An endless, seeded, resumable stream of prompts over a record set."""

    def __init__(self, files: list[str], processor, image_config: ImageConfig, max_prompt_len: int, seed: int,
                 shuffle: bool = True):
        self.skipped: Counter = Counter()
        self.rows = read_rows(files, self.skipped)
        if not self.rows:
            raise ValueError(f"no usable record in {', '.join(map(str, files))} (skipped: {dict(self.skipped)})")
        self.processor = processor
        self.image_config = image_config
        self.max_prompt_len = max_prompt_len
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.cursor = 0
        self.unusable: set[int] = set()  # rows that failed to become a prompt: skipped, counted once
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.rows)))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.rows)).tolist()

    def _next_index(self) -> int:
        if self.cursor >= len(self._order):
            self.epoch += 1
            self.cursor = 0
            self._order = self._permutation(self.epoch)
        index = self._order[self.cursor]
        self.cursor += 1
        return index

    def take(self, n: int) -> list[Prompt]:
        """The next n usable prompts (an unusable record is counted the first time, then passed over)."""
        out: list[Prompt] = []
        while len(out) < n:
            if len(self.unusable) == len(self.rows):
                raise ValueError(f"no record of the dataset can be used (skipped: {dict(self.skipped)})")
            index = self._next_index()
            if index in self.unusable:
                continue
            prompt = try_prepare(self.rows[index], self.processor, self.image_config, self.max_prompt_len,
                                 self.skipped)
            if prompt is None:
                self.unusable.add(index)
            else:
                out.append(prompt)
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor, "skipped": dict(self.skipped),
                "unusable": sorted(self.unusable)}

    def load_state(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.cursor = state["cursor"]
        self.skipped = Counter(state.get("skipped", {}))
        self.unusable = set(state.get("unusable", []))
        self._order = self._permutation(self.epoch)

    def metrics(self) -> dict[str, float]:
        return {f"data/skipped_{reason}": float(count) for reason, count in sorted(self.skipped.items())}


def load_eval_prompts(files: list[str], processor, image_config: ImageConfig, max_prompt_len: int,
                      limit: int) -> tuple[list[Prompt], Counter]:
    """Held-out prompts in file order (at most `limit`); unusable ones are counted, never scored."""
    skipped: Counter = Counter()
    prompts: list[Prompt] = []
    for row in read_rows(files, skipped):
        if len(prompts) >= limit:
            break
        prompt = try_prepare(row, processor, image_config, max_prompt_len, skipped)
        if prompt is not None:
            prompts.append(prompt)
    return prompts, skipped
