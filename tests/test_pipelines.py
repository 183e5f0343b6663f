"""Converters and generators: LMM-R1 rows -> records -> OpenRLHF rows (read by the real PromptDataset),
local HF layouts -> records, and the synthetic tasks. Bad rows are counted by reason, never fatal."""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from fractions import Fraction
from types import SimpleNamespace

import pytest
from PIL import Image

from data_pipelines import hf_local, lmmr1_messages, synthetic, to_openrlhf
from lmmr1.data.images import ImageConfig, load_image
from lmmr1.data.prompts import LMM_R1_SYSTEM_PROMPT
from lmmr1.data.records import UNANSWERABLE, load_records


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def image_bytes(size=(120, 90), fmt="PNG", seed=0) -> bytes:
    image = Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def lmmr1_row(image_ref: str | None, question: str, answer: str | None, **extra) -> dict:
    """A row in LMM-R1's format (TideDra/lmm-r1 examples/data/test_message.jsonl): stringified messages."""
    user = [{"type": "text", "text": question}] if image_ref is None else [
        {"type": "image", "image": image_ref}, {"type": "text", "text": question}]
    message = [{"role": "system", "content": LMM_R1_SYSTEM_PROMPT}, {"role": "user", "content": user}]
    row = {"message": json.dumps(message), "question": question, **extra}
    if answer is not None:
        row["answer"] = answer
    return row


@pytest.fixture
def lmmr1_dataset(tmp_path):
    """A VerMulti-like folder: images/ and an LMM-R1 message JSONL, with good and bad rows."""
    root = tmp_path / "vermulti"
    (root / "images").mkdir(parents=True)
    (root / "images" / "geo.png").write_bytes(image_bytes((120, 90)))
    (root / "images" / "chart.jpg").write_bytes(image_bytes((300, 200), "JPEG", seed=1))
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    jpeg = image_bytes((200, 200), "JPEG", seed=2)
    (root / "images" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "images" / "bomb.png").write_bytes(png_header_only(20000, 20000))
    img = f"file://{root}/images"
    lines = [
        json.dumps(lmmr1_row(f"{img}/geo.png", "Find the angle x.", "$\\boxed{60}$", datasource="geo")),
        json.dumps(lmmr1_row(None, "What is 1+2?", "$3$", datasource="deepscaler")),
        json.dumps(lmmr1_row("file:///data/authors/VerMulti/images/chart.jpg", "Read the chart.", "$12$")),
        json.dumps(lmmr1_row("images/geo.png", "Same figure, relative path.", "$60$")),
        # bad rows, one per reason
        json.dumps(lmmr1_row(f"{img}/corrupt.png", "q", "$1$")),          # image_corrupt
        json.dumps(lmmr1_row(f"{img}/truncated.jpg", "q", "$1$")),        # image_truncated
        json.dumps(lmmr1_row(f"{img}/missing.png", "q", "$1$")),          # image_missing
        json.dumps(lmmr1_row("../../etc/passwd", "q", "$1$")),            # image_outside_root
        json.dumps(lmmr1_row(f"{img}/bomb.png", "q", "$1$")),             # image_too_large
        json.dumps(lmmr1_row("https://example.com/cat.png", "q", "$1$")), # image_remote_refused
        json.dumps(lmmr1_row(f"{img}/geo.png", "q", None)),                # invalid_answer
        '{"message": "[{\\"role\\": \\"user\\"", "answer": "$1$"}',        # invalid_message (not a JSON list)
        '{"message": oops}',                                              # malformed_json
    ]
    path = root / "mathv_message.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return root, path


EXPECTED_REJECTED = {
    "image_corrupt": 1, "image_truncated": 1, "image_missing": 1, "image_outside_root": 1, "image_too_large": 1,
    "image_remote_refused": 1, "invalid_answer": 1, "invalid_message": 1, "malformed_json": 1,
}


def test_lmmr1_conversion_keeps_good_rows_and_counts_each_bad_one(lmmr1_dataset):
    root, path = lmmr1_dataset
    out = root / "records.jsonl"
    report = lmmr1_messages.convert_lmmr1_file(
        path, out, prefix_map=[(f"/data/authors/VerMulti", str(root))],
    )
    assert report.kept == 4
    assert dict(report.rejected) == EXPECTED_REJECTED  # 4 kept + 9 rejected = 13 rows
    assert any("mathv_message.jsonl:13" in m for m in report.examples["malformed_json"])
    assert any("mathv_message.jsonl:11: answer: missing" in m for m in report.examples["invalid_answer"])

    records = load_records(out)
    geo, text, chart, relative = records
    assert geo.images == ["images/geo.png"] and geo.answer == "$\\boxed{60}$" and geo.source == "geo"
    assert geo.messages[0] == {"role": "system", "content": LMM_R1_SYSTEM_PROMPT}
    assert geo.messages[1]["content"] == [{"type": "image"}, {"type": "text", "text": "Find the angle x."}]
    assert geo.meta == {"question": "Find the angle x."}
    assert text.images == [] and text.source == "deepscaler" and text.answer == "$3$"
    assert chart.images == ["images/chart.jpg"] and chart.source == "lmm_r1"  # prefix-mapped, default source
    assert relative.images == ["images/geo.png"]
    for record in records:  # every kept image loads through the one loader
        for ref in record.images:
            load_image(ref, root)


def test_lmmr1_cli_writes_records_and_report(lmmr1_dataset, capsys):
    root, path = lmmr1_dataset
    out = root / "cli.jsonl"
    code = lmmr1_messages.main([str(path), str(out), "--image-prefix-map", f"/data/authors/VerMulti={root}"])
    assert code == 0
    report = json.loads((root / "cli.jsonl.report.json").read_text())
    assert report["kept"] == 4 and report["rejected"] == EXPECTED_REJECTED
    assert "kept 4 rows, rejected 9" in capsys.readouterr().err


def test_output_outside_the_image_folder_is_refused_per_row(lmmr1_dataset, tmp_path):
    root, path = lmmr1_dataset
    elsewhere = tmp_path / "elsewhere" / "records.jsonl"
    report = lmmr1_messages.convert_lmmr1_file(path, elsewhere, check_images=False)
    # Only the text-only row survives: every image lies outside elsewhere/, the would-be dataset root
    # (the URL row is still refused as remote; the malformed rows as before).
    assert report.kept == 1
    assert report.rejected["image_outside_root"] == 9  # 3 good image rows + 6 bad image-path rows
    assert "--image-prefix-map" in report.examples["image_outside_root"][0]


def test_openrlhf_prompt_dataset_accepts_converted_rows_and_images_load(lmmr1_dataset, openrlhf_cpu, tiny_model_dir):
    from openrlhf.datasets import PromptDataset
    from openrlhf.datasets.utils import blending_datasets
    from openrlhf.utils.vlm_utils import process_prompt_with_images
    from transformers import AutoProcessor

    root, path = lmmr1_dataset
    records_path = root / "records.jsonl"
    lmmr1_messages.convert_lmmr1_file(path, records_path, prefix_map=[("/data/authors/VerMulti", str(root))])
    out = root / "openrlhf" / "prompts.jsonl"
    report = to_openrlhf.convert_records_file(records_path, out)
    assert (report.kept, report.total_rejected) == (4, 0)

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    data_args = SimpleNamespace(input_key="messages", label_key="answer", image_key="images", apply_chat_template=True)
    strategy = SimpleNamespace(args=SimpleNamespace(data=data_args), is_rank_0=lambda: True, print=lambda *a: None)
    data = blending_datasets(str(out), None, strategy)  # OpenRLHF's own loader (HF datasets, json)
    dataset = PromptDataset(data, processor, strategy)
    assert len(dataset) == 4

    records = load_records(records_path)
    config = ImageConfig.from_processor(processor)
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for i, record in enumerate(records):
        datasource, prompt, label, images = dataset[i]
        assert (datasource, label) == (record.source, record.answer)
        assert images == [str((root / ref).resolve()) for ref in record.images]
        assert prompt.count("<|vision_start|><|image_pad|><|vision_end|>") == len(record.images)
        assert prompt.startswith("<|im_start|>system\n" + LMM_R1_SYSTEM_PROMPT) and prompt.endswith("<|im_start|>assistant\n")
        # OpenRLHF's rollout-side tokenisation: image tokens must match our loader's size for the image.
        token_ids, mm_inputs, pil_images = process_prompt_with_images(processor, prompt, images)
        expected_pads = 0
        for ref in record.images:
            w, h = load_image(ref, root, config).size
            expected_pads += (w // 28) * (h // 28)  # one token per 2x2 merge of 14-pixel patches
        assert token_ids.count(pad_id) == expected_pads
        assert len(pil_images) == len(record.images)
    # geo.png is 120 x 90 -> smart_resize -> 112 x 84 (round(120/28)=4, round(90/28)=3) -> 4 x 3 = 12 tokens
    assert load_image("images/geo.png", root, config).size == (112, 84)


def test_openrlhf_export_rejects_records_whose_image_broke_after_conversion(tmp_path):
    (tmp_path / "ok.png").write_bytes(image_bytes())
    (tmp_path / "gone.png").write_bytes(image_bytes())
    rows = [
        {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}],
         "images": [name], "answer": "1"} for name in ("ok.png", "gone.png")
    ] + [{"messages": [{"role": "user", "content": "q"}]}]  # no answer
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "gone.png").unlink()
    report = to_openrlhf.convert_records_file(records, tmp_path / "out.jsonl")
    assert report.kept == 1 and dict(report.rejected) == {"image_missing": 1, "invalid_answer": 1}
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row["messages"][0]["content"] == [{"type": "image"}, {"type": "text", "text": "q"}]
    assert row["images"] == [str((tmp_path / "ok.png").resolve())] and row["datasource"] == "default"
    assert json.loads(row["meta"]) == {}


# -- local HF layouts -------------------------------------------------------------------------------------


def test_deepscaler_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "deepscaler" / "data"
    src.mkdir(parents=True)
    table = pa.table({
        "problem": ["What is $1+1$?", "Compute $\\frac{1}{2}+\\frac{1}{4}$.", "No answer here."],
        "answer": ["2", "\\frac{3}{4}", ""],
        "solution": ["1+1=2", "...", "..."],
    })
    pq.write_table(table, src / "train-00000-of-00001.parquet")
    out = tmp_path / "deepscaler" / "records.jsonl"
    report = hf_local.convert_hf_local(tmp_path / "deepscaler", out, split="train")
    assert report.kept == 2 and dict(report.rejected) == {"invalid_answer": 1}
    first, second = load_records(out)
    assert first.messages == [{"role": "system", "content": LMM_R1_SYSTEM_PROMPT},
                              {"role": "user", "content": "What is $1+1$?"}]
    assert (first.answer, first.source, first.task, first.meta) == ("2", "deepscaler", "math", {"solution": "1+1=2"})
    assert second.answer == "\\frac{3}{4}"


def test_geometry3k_parquet_with_embedded_image_bytes(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = image_bytes((200, 150))
    table = pa.table({
        "images": [[{"bytes": good, "path": "a.png"}], [{"bytes": b"\x89PNG junk", "path": "b.png"}],
                   [{"bytes": good, "path": "c.png"}]],
        "problem": ["<image>Find x.", "<image>Find y.", "<image><image>Two tags, one image."],
        "answer": ["3", "4", "5"],
    })
    pq.write_table(table, tmp_path / "test.parquet")
    out = tmp_path / "geo" / "records.jsonl"
    report = hf_local.convert_hf_local(tmp_path / "test.parquet", out, system="none")
    assert report.kept == 1 and dict(report.rejected) == {"image_corrupt": 1, "invalid_images": 1}
    (record,) = load_records(out)
    assert record.task == "geometry" and record.source == "geometry3k"
    assert record.messages == [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Find x."}]}]
    assert record.images[0].startswith("images/test-1-0-") and record.images[0].endswith(".png")
    assert (out.parent / record.images[0]).read_bytes() == good
    assert load_image(record.images[0], out.parent).size == (196, 140)  # round(200/28)=7, round(150/28)=5


def test_mathv360k_llava_json(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "q1.png").write_bytes(image_bytes())
    rows = [
        {"id": "q1", "image": "images/q1.png",
         "conversations": [{"from": "human", "value": "<image>\nWhat is the value of x?"}, {"from": "gpt", "value": "5"}]},
        {"id": "q2", "image": "images/missing.png",
         "conversations": [{"from": "human", "value": "<image>\nAnd y?"}, {"from": "gpt", "value": "6"}]},
        {"id": "q3", "image": "images/q1.png", "conversations": [{"from": "human", "value": "<image>\nNo reply."}]},
    ]
    (tmp_path / "train.json").write_text(json.dumps(rows))
    out = tmp_path / "records.jsonl"
    report = hf_local.convert_hf_local(tmp_path / "train.json", out)
    assert report.kept == 1 and dict(report.rejected) == {"image_missing": 1, "invalid_answer": 1}
    (record,) = load_records(out)
    assert record.images == ["images/q1.png"] and record.answer == "5" and record.meta == {"id": "q1"}
    assert record.messages[-1]["content"] == [{"type": "image"}, {"type": "text", "text": "What is the value of x?"}]


def test_unknown_layout_error_lists_columns(tmp_path):
    (tmp_path / "x.jsonl").write_text(json.dumps({"prompt": "q", "label": "1"}) + "\n")
    with pytest.raises(ValueError, match=r"columns \['label', 'prompt'\].*--question-key"):
        hf_local.convert_hf_local(tmp_path / "x.jsonl", tmp_path / "out.jsonl")
    report = hf_local.convert_hf_local(tmp_path / "x.jsonl", tmp_path / "out.jsonl", layout="deepscaler",
                                       question_key="prompt", answer_key="label")
    assert report.kept == 1 and load_records(tmp_path / "out.jsonl")[0].answer == "1"


# -- synthetic tasks --------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_independent_of_n(tmp_path):
    for task in synthetic.GENERATORS:
        a = synthetic.generate(task, 4, 7, tmp_path / "a" / f"{task}.jsonl", difficulty="1-5", unanswerable_fraction=0.3)
        b = synthetic.generate(task, 2, 7, tmp_path / "b" / f"{task}.jsonl", difficulty="1-5", unanswerable_fraction=0.3)
        c = synthetic.generate(task, 4, 8, tmp_path / "c" / f"{task}.jsonl", difficulty="1-5", unanswerable_fraction=0.3)
        assert a[:2] == b
        assert a != c
        assert (tmp_path / "a" / f"{task}.jsonl").read_text().startswith((tmp_path / "b" / f"{task}.jsonl").read_text())
        for record in b:
            for ref in record.images:
                assert (tmp_path / "a" / ref).read_bytes() == (tmp_path / "b" / ref).read_bytes()


def test_synthetic_arithmetic_pinned_example():
    example, level, unanswerable = synthetic.make_example("arithmetic", seed=0, index=0, difficulty=2)
    assert (level, unanswerable) == (2, False)
    assert example.question == (
        "Max has 10 stickers. Then Max shares the stickers equally among 5 boxes and keeps one box. "
        "Then Max buys 2 packs with 4 stickers in each pack. How many stickers does Max have now?"
    )
    assert example.answer == "10"  # 10 / 5 = 2; 2 + 2 x 4 = 10
    hidden, _, unanswerable = synthetic.make_example("arithmetic", seed=0, index=0, difficulty=2, unanswerable_fraction=1.0)
    assert unanswerable and hidden.answer == UNANSWERABLE and "buys some packs" in hidden.question


def test_synthetic_answers_agree_with_their_metadata(tmp_path):
    for record in synthetic.generate("expression", 20, 1, tmp_path / "e.jsonl", difficulty="1-5"):
        value = Fraction(eval(record.meta["expression"]))  # only digits, + - * and parentheses
        assert record.answer == synthetic.latex_number(value)
    for record in synthetic.generate("counting", 20, 1, tmp_path / "c.jsonl", difficulty="1-5"):
        question = record.messages[-1]["content"][-1]["text"]
        color, shape = question.split(" ")[2], question.split(" ")[3][:-1]  # "How many red circles are ..."
        assert int(record.answer) == sum(1 for d in record.meta["shapes"] if d == [color, shape])
    for record in synthetic.generate("geometry", 20, 1, tmp_path / "g.jsonl", difficulty="1-5"):
        m, level = record.meta, record.meta["difficulty"]
        expected = {
            1: lambda: Fraction(m.get("w", 0) * m.get("h", 0)),
            2: lambda: Fraction(2 * (m.get("w", 0) + m.get("h", 0))),
            3: lambda: Fraction(m.get("a", 0) * m.get("b", 0), 2),
            4: lambda: Fraction(m.get("c", 0)),
            5: lambda: Fraction(m.get("w", 0) * m.get("h", 0)) - Fraction(m.get("a", 0) * m.get("h", 0), 2),
        }[level]()
        assert record.answer == synthetic.latex_number(expected)
        assert load_image(record.images[0], tmp_path).size == (336, 336)  # already a multiple of 28


def test_synthetic_unanswerable_variants_and_rewards(tmp_path):
    from lmmr1.rewards import get_reward

    records = synthetic.generate("geometry", 3, 0, tmp_path / "u.jsonl", difficulty=1, unanswerable_fraction=1.0)
    assert all(r.answer == UNANSWERABLE and r.meta["unanswerable"] for r in records)
    assert "I don't know" in records[0].messages[0]["content"]  # the abstain-licensing system prompt
    answerable = synthetic.generate("geometry", 1, 0, tmp_path / "a.jsonl", difficulty=1)[0]
    reward = get_reward("lmm_r1_uncertainty")
    abstain = "<think>The width is not given.</think><answer>I don't know</answer>"
    commit = f"<think>w*h</think><answer>$\\boxed{{{answerable.answer}}}$</answer>"
    assert (reward(abstain, records[0]).outcome, reward(commit, records[0]).outcome) == ("correct", "wrong")
    assert (reward(abstain, answerable).outcome, reward(commit, answerable).outcome) == ("uncertain", "correct")


def test_synthetic_larger_answer_is_read_off_the_question(tmp_path):
    example, level, _ = synthetic.make_example("larger", seed=0, index=0)
    assert (example.question, example.answer, level) == ("Which number is larger, 2 or 0?", "2", 1)  # pinned
    records = synthetic.generate("larger", 50, 3, tmp_path / "l.jsonl", difficulty="1-5", system="none")
    for record in records:
        a, b = record.meta["numbers"]
        lo, hi = 0, 10 * record.meta["difficulty"] - 1
        assert a != b and lo <= min(a, b) and max(a, b) <= hi
        assert record.messages == [{"role": "user", "content": f"Which number is larger, {a} or {b}?"}]
        assert record.answer == str(max(a, b)) and record.images == []
    assert {r.answer for r in records if r.meta["difficulty"] == 1} <= {str(n) for n in range(1, 10)}
    hidden = synthetic.make_example("larger", 0, 0, unanswerable_fraction=1.0)[0]
    assert hidden.answer == UNANSWERABLE and "a secret number" in hidden.question


def test_synthetic_shapes_count_matches_the_pixels(tmp_path):
    example, _, _ = synthetic.make_example("shapes", seed=0, index=0, image_size=56)
    assert (example.question, example.answer, example.meta["cells"]) == (
        "How many shapes are in the image?", "4", [0, 1, 2, 3])  # pinned
    records = synthetic.generate("shapes", 40, 1, tmp_path / "s.jsonl", difficulty="1-2", image_size=56)
    counts = set()
    for record in records:
        grid = record.meta["difficulty"] + 1
        cells = record.meta["cells"]
        assert record.answer == str(len(cells)) == str(len(record.meta["shapes"]))
        assert 1 <= len(cells) <= grid * grid and cells == sorted(set(cells))
        image = load_image(record.images[0], tmp_path)
        assert image.size == (56, 56)
        # A drawn cell has colour at its centre; an empty cell is white all over.
        side = 56 // grid
        for c in range(grid * grid):
            row, col = divmod(c, grid)
            box = image.crop((col * side, row * side, (col + 1) * side, (row + 1) * side))
            white = box.getcolors(side * side) == [(side * side, (255, 255, 255))]
            assert white == (c not in cells), (record.meta, c)
        if grid == 2:
            counts.add(len(cells))
    assert counts == {1, 2, 3, 4}
    hidden = synthetic.make_example("shapes", 0, 0, unanswerable_fraction=1.0, image_size=56)[0]
    assert hidden.answer == UNANSWERABLE and "weight" in hidden.question


@pytest.mark.parametrize("spec", ["0", "6", "3-1", "x", "1-"])
def test_bad_difficulty(spec):
    with pytest.raises(ValueError, match="difficulty"):
        synthetic.parse_difficulty(spec)


def test_synthetic_cli(tmp_path, capsys):
    out = tmp_path / "fre" / "arith.jsonl"
    assert synthetic.main(["--task", "arithmetic", "--n", "5", "--difficulty", "1-3", "--out", str(out)]) == 0
    assert len(load_records(out)) == 5
    assert "wrote 5 arithmetic records (0 unanswerable)" in capsys.readouterr().err
    with pytest.raises(KeyError, match="valid tasks"):
        synthetic.make_example("sudoku", 0, 0)


def test_prompt_length_check_sizes_images_as_the_processor_does(tiny_model_dir, tmp_path):
    """With a processor, the length check resizes each image once with the processor's own min/max pixels,
    as OpenRLHF does with the raw file: a prompt exactly at max_prompt_len is kept, one token over rejected."""
    from transformers import AutoProcessor

    from lmmr1.rollout.prompts import encode_prompt

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    processor.image_processor.size = {"shortest_edge": 3136, "longest_edge": 50176}
    image = Image.new("RGB", (300, 299), "red")  # resized twice (default bounds, then these) -> 2 more rows of patches
    image.save(tmp_path / "a.png")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}]
    (tmp_path / "r.jsonl").write_text(json.dumps({"messages": messages, "images": ["a.png"], "answer": "red"}) + "\n")
    true_length = len(encode_prompt(processor, messages, [image]).prompt_ids)  # the processor alone, raw file
    for limit, kept in ((true_length, 1), (true_length - 1, 0)):
        report = to_openrlhf.convert_records_file(tmp_path / "r.jsonl", tmp_path / "out.jsonl", processor=processor,
                                                  max_prompt_len=limit)
        assert report.kept == kept, (limit, report.to_dict())


def test_transparent_images_reach_openrlhf_flattened_as_lmmr1_loads_them(tmp_path, openrlhf_cpu):
    """A transparent PNG (black under alpha 0): lmmr1's loader composites it onto white; OpenRLHF's loader and
    processor would drop the alpha (black). The converted row points at a flattened copy, so both engines see
    the same pixels; an opaque image keeps its own path."""
    import numpy as np
    from openrlhf.utils.vlm_utils import load_images
    from transformers.image_transforms import convert_to_rgb

    pixels = np.zeros((56, 56, 4), dtype=np.uint8)
    pixels[:28, :, :] = (200, 30, 30, 255)  # the top half opaque red, the bottom half transparent black
    Image.fromarray(pixels, "RGBA").save(tmp_path / "clear.png")
    Image.new("RGB", (56, 56), "blue").save(tmp_path / "opaque.png")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "?"}]}]
    (tmp_path / "r.jsonl").write_text(json.dumps({"messages": messages, "images": ["clear.png", "opaque.png"],
                                                  "answer": "1"}) + "\n")
    report = to_openrlhf.convert_records_file(tmp_path / "r.jsonl", tmp_path / "out" / "rows.jsonl")
    assert report.kept == 1
    (row,) = [json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    flattened, opaque = row["images"]
    assert opaque == str((tmp_path / "opaque.png").resolve())
    assert flattened.startswith(str((tmp_path / "out" / "flattened_images").resolve()))
    theirs = np.asarray(convert_to_rgb(load_images([flattened])[0]))  # OpenRLHF's loader, the processor's RGB
    ours = np.asarray(load_image("clear.png", tmp_path, ImageConfig(resize=False)))
    assert (theirs == ours).all() and tuple(ours[50, 10]) == (255, 255, 255)
    unflattened = np.asarray(convert_to_rgb(load_images([str(tmp_path / "clear.png")])[0]))
    assert tuple(unflattened[50, 10]) == (0, 0, 0)  # what OpenRLHF would have seen
