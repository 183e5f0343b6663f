"""Benchmark loaders: each reads a small fixture written here in that benchmark's published layout (parquet with
HF Image cells, image paths beside the table, JSONL, CSV), and the runner evaluates the records it produces.

The runner is driven by an oracle backend (a test double for the model: it answers each question with a fixed
reply, chosen by the question text), so the grades are known: the gold reply scores 1 and a wrong one 0 on
every benchmark. The tiny model's real processor encodes the prompts (images included). Rows with a missing
image or a malformed answer are excluded and counted, in the loader's result and in results.json."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from eval.benchmarks import BENCHMARKS, BenchmarkMissingError, extract_choice, grade_choice, load_benchmark
from eval.run import evaluate_qa
from eval.suites import EvalConfig, apply_template
from lmmr1.data.prompts import LMM_R1_SYSTEM_PROMPT
from lmmr1.data.records import validate_record
from lmmr1.rewards import RewardConfig, get_reward
from lmmr1.rollout import Sample


def png(color=(200, 30, 30), size=(56, 56)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def cell(data: bytes | None, path: str | None = None) -> dict:
    """An HF `Image` feature cell as stored in parquet."""
    return {"bytes": data, "path": path}


def write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


# ------------------------------------------------------------------------------------------ the fixtures
# Each writer returns {question substring: gold reply}: the oracle's answers for the rows that must be scored.


def mathvista_metadata(task: str | None, skills: list[str] | None) -> dict:
    """MathVista's `metadata` struct (the dataset card's fields)."""
    return {"category": "math-targeted-vqa", "context": "geometry diagram", "grade": "high school", "img_height": 56,
            "img_width": 56, "language": "english", "skills": skills, "source": "Geometry3K", "split": "testmini",
            "task": task}


MATHVISTA_HINT = ("Hint: Please answer the question requiring an integer answer and provide the final value, e.g., "
                  "1, 2, 3, at the end.\nQuestion: ")


def with_query(row: dict) -> dict:
    """MathVista's `query`: the answer-format hint, then the question (what its own evaluation prompts)."""
    return {**row, "query": MATHVISTA_HINT + row["question"]}


def mathvista(root: Path) -> dict[str, str]:
    base = dict(unit=None, precision=None, answer_type="integer",
                metadata=mathvista_metadata("geometry problem solving", ["algebraic reasoning", "geometry reasoning"]))
    rows = [
        dict(pid="1", question="What is the value of x?", image="images/1.jpg", decoded_image=cell(png(), "1.jpg"),
             choices=None, answer="12", question_type="free_form", **base),
        dict(pid="2", question="Which shape is red?", image="images/2.jpg", decoded_image=cell(png(), "2.jpg"),
             choices=["circle", "square", "triangle"], answer="square", question_type="multi_choice", **base),
        dict(pid="3", question="Missing image row", image="images/3.jpg", decoded_image=None, choices=None,
             answer="4", question_type="free_form", **base),  # no bytes, and images/3.jpg does not exist
        dict(pid="4", question="Empty answer row", image="images/4.jpg", decoded_image=cell(png(), "4.jpg"),
             choices=None, answer="", question_type="free_form", **base),
        dict(pid="5", question="Gold not among the choices", image="images/5.jpg", decoded_image=cell(png(), "5.jpg"),
             choices=["1", "2"], answer="3", question_type="multi_choice", **base),
    ]
    rows = [with_query(row) for row in rows]
    write_parquet(root / "data" / "testmini-00000-of-00001-abc.parquet", rows)
    write_parquet(root / "data" / "test-00000-of-00002-abc.parquet", rows[:1])  # another split: not read
    return {"value of x": "\\boxed{12}", "Which shape": "<think>.</think><answer>\\boxed{B}</answer>"}


MATHVERSE_META = {"split": "testmini", "source": "GeoQA", "subject": "Plane Geometry", "subfield": "Length"}


def mathverse(root: Path) -> dict[str, str]:
    rows = [
        dict(sample_index="1", problem_index="1", problem_version="Text Lite",
             question="As shown, AB = 3 and BC = 4. Find AC.", image=cell(png((0, 0, 200))), answer="5",
             question_type="free-form", metadata=MATHVERSE_META, query_wo="q", query_cot="q",
             question_for_eval="q"),
        dict(sample_index="2", problem_index="2", problem_version="Vision Intensive",
             question="Which angle is largest? Choices: A:30 B:60 C:90", image=cell(png((0, 200, 0))), answer="C",
             question_type="multi-choice", metadata=MATHVERSE_META, query_wo="q", query_cot="q",
             question_for_eval="q"),
    ]
    write_parquet(root / "testmini.parquet", rows)
    return {"Find AC": "The answer is \\boxed{5}", "Which angle": "\\boxed{C}"}


def mathvision(root: Path) -> dict[str, str]:
    (root / "images").mkdir(parents=True)
    (root / "images" / "7.jpg").write_bytes(png((10, 10, 10)))  # referenced by path, no bytes in the row
    rows = [
        dict(id="7", question="<image1>\nHow many dots are there?", options=[], image="images/7.jpg",
             decoded_image=None, answer="6", solution=None, level=2, subject="counting"),
        dict(id="8", question="Which figure comes next?", options=["A", "B", "C", "D", "E"], image="images/8.jpg",
             decoded_image=cell(png()), answer="D", solution=None, level=3, subject="logic"),
    ]
    write_parquet(root / "data" / "test-00000-of-00001-xyz.parquet", rows)
    write_parquet(root / "data" / "testmini-00000-of-00001-xyz.parquet", rows[:1])  # split "test" must skip it
    return {"How many dots": "\\boxed{6}", "comes next": "<answer>(D)</answer>"}


def mmstar(root: Path) -> dict[str, str]:
    rows = [dict(index=0, question="What color is the square?\nOptions: A: red, B: blue, C: green, D: black",
                 image=cell(png()), answer="A", category="coarse perception", l2_category="color",
                 meta_info={"source": "x"})]
    write_parquet(root / "mmstar.parquet", rows)
    return {"color is the square": "\\boxed{A}"}


def olympiadbench(root: Path) -> dict[str, str]:
    empty = {f"image_{j}": None for j in range(2, 6)}
    rows = [
        dict(id=1, question="In the figure <image_1>, find the area.", solution=["..."], final_answer=["$24$"],
             context=None, image_1=cell(png()), modality="Multimodal", difficulty="Competition",
             is_multiple_answer=False, unit=None, answer_type="Numerical", error=None, question_type="Open-ended",
             subfield="Geometry", subject="Math", language="English", **empty),
        dict(id=2, question="Find all x with x^2 = 4.", solution=["..."], final_answer=["$2$", "$-2$"], context=None,
             image_1=None, modality="Text-only", difficulty="Competition", is_multiple_answer=True, unit=None,
             answer_type="Numerical", error=None, question_type="Open-ended", subfield="Algebra", subject="Math",
             language="English", **empty),
    ]
    write_parquet(root / "OE_MM_maths_en_COMP" / "train" / "0000.parquet", rows)
    return {"find the area": "\\boxed{24}", "x^2 = 4": "\\boxed{2, -2}"}


def math500(root: Path) -> dict[str, str]:
    root.mkdir(parents=True)
    rows = [dict(problem="Compute $1+2+3$.", solution="6", answer="6", subject="Algebra", level=1,
                 unique_id="test/algebra/1.json"),
            dict(problem="Simplify $\\frac{2}{4}$.", solution="...", answer="\\frac{1}{2}", subject="Algebra", level=1,
                 unique_id="test/algebra/2.json")]
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"1+2+3": "\\boxed{6}", "Simplify": "\\boxed{\\frac{1}{2}}"}


def gpqa_diamond(root: Path) -> dict[str, str]:
    import pandas as pd

    root.mkdir(parents=True)
    rows = [{"Question": "Which particle is a lepton?", "Correct Answer": "electron", "Incorrect Answer 1": "proton",
             "Incorrect Answer 2": "neutron", "Incorrect Answer 3": "pion", "Record ID": "rec1",
             "High-level domain": "Physics", "Subdomain": "Physics (general)", "Explanation": "..."}]
    pd.DataFrame(rows).to_csv(root / "gpqa_diamond.csv", index=False)
    return {"lepton": "\\boxed{electron}"}  # the option's text maps to its (shuffled) letter


FIXTURES = {"mathvista": mathvista, "mathverse": mathverse, "mathvision": mathvision, "mmstar": mmstar,
            "olympiadbench": olympiadbench, "math500": math500, "gpqa_diamond": gpqa_diamond}


class OracleBackend:
    """TEST DOUBLE for the model: replies to each prompt with the reply whose key occurs in the prompt text."""

    name = "oracle"

    def __init__(self, replies: dict[str, str]):
        self.replies = replies
        self.prompts = []

    def generate(self, prompts, n, sampling, seed=None):
        self.prompts.extend(prompts)
        out = []
        for i, p in enumerate(prompts):
            reply = next((r for key, r in self.replies.items() if key in p.text), "no idea")
            out.append([Sample(prompt_index=i, response_ids=[], logprobs=[], text=reply + "<|im_end|>")
                        for _ in range(n)])
        return out


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def reward():
    return get_reward("math_uncertainty", RewardConfig())


# The subsets every fixture's first scored row must carry (field -> value, from the published columns).
FIRST_ROW_SUBSETS = {
    "mathvista": {"task": "geometry problem solving", "skills": ["algebraic reasoning", "geometry reasoning"],
                  "question_type": "free_form"},
    "mathverse": {"problem_version": "Text Lite", "subject": "Plane Geometry"},
    "mathvision": {"subject": "counting", "level": "2"},
    "mmstar": {"category": "coarse perception", "l2_category": "color"},
    "olympiadbench": {"subject": "Math", "subfield": "Geometry"},
    "math500": {"subject": "Algebra", "level": "1"},
    "gpqa_diamond": {"domain": "Physics", "subdomain": "Physics (general)"},
}


def test_every_benchmark_has_a_fixture():
    assert set(FIXTURES) == set(BENCHMARKS) == set(FIRST_ROW_SUBSETS)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_loader_reads_published_layout_and_runner_scores_it(name, tmp_path, processor, reward):
    replies = FIXTURES[name](tmp_path / name)
    loaded = load_benchmark(name, tmp_path / name, tmp_path / "cache")
    expected_images = {"mathvista": 1, "mathverse": 1, "mathvision": 1, "mmstar": 1, "olympiadbench": 1,
                       "math500": 0, "gpqa_diamond": 0}[name]
    assert len(loaded.items) == len(replies)
    assert loaded.items[0].record.images.__len__() == expected_images
    assert loaded.items[0].record.meta["subsets"] == FIRST_ROW_SUBSETS[name]
    for item in loaded.items:
        for ref in item.record.images:
            assert (item.root / ref).is_file()  # embedded bytes were written to the cache; paths resolved

    cfg = EvalConfig(prompt="r1", max_prompt_len=2048)
    task = {"kind": "benchmark", "benchmark": name, "path": str(tmp_path / name)}
    oracle = OracleBackend(replies)
    result = evaluate_qa(task, oracle, processor, cfg, reward, tmp_path / "out")
    assert result["scored"] == len(replies)
    assert result["metrics"]["accuracy"] == 1.0, json.loads((tmp_path / "out" / "samples" / f"{name}.jsonl")
                                                           .read_text().splitlines()[0])
    assert all(LMM_R1_SYSTEM_PROMPT[:40] in p.text for p in oracle.prompts)  # the R1 template was applied
    assert sum(len(p.images) for p in oracle.prompts) >= expected_images

    # Per-subset scores: every published field, every question counted once per label, all correct.
    assert list(result["subsets"]) == list(FIRST_ROW_SUBSETS[name])
    for field, groups in result["subsets"].items():
        first = FIRST_ROW_SUBSETS[name][field]
        assert all(label in groups for label in (first if isinstance(first, list) else [first]))
        assert all(g["accuracy"] == 1.0 for g in groups.values())
        if field != "skills":  # single-label: the subsets partition the questions
            assert sum(g["questions"] for g in groups.values()) == result["scored"]
    assert result["subset_unknown"] == {field: 0 for field in FIRST_ROW_SUBSETS[name]}
    assert result["extraction"] == {"extractor": "rule"}

    wrong = evaluate_qa(task, OracleBackend({k: "\\boxed{Z9}" for k in replies}), processor, cfg, reward,
                        tmp_path / "out2")
    assert wrong["metrics"]["accuracy"] == 0.0
    assert all(g["accuracy"] == 0.0 for groups in wrong["subsets"].values() for g in groups.values())


def test_missing_image_and_malformed_answer_rows_are_excluded_and_counted(tmp_path, processor, reward):
    replies = mathvista(tmp_path / "mv")
    loaded = load_benchmark("mathvista", tmp_path / "mv", tmp_path / "cache")
    assert loaded.rows == 5 and len(loaded.items) == 2
    assert dict(loaded.excluded) == {"missing_image": 1, "malformed_answer": 2}
    assert any("testmini-00000-of-00001-abc.parquet:3: missing_image" in r for r in loaded.excluded_rows)
    result = evaluate_qa({"kind": "benchmark", "benchmark": "mathvista", "path": str(tmp_path / "mv")},
                         OracleBackend(replies), processor, EvalConfig(), reward, tmp_path / "out")
    assert result["excluded"] == {"missing_image": 1, "malformed_answer": 2} and result["excluded_total"] == 3
    assert result["scored"] == 2 and result["metrics"]["accuracy"] == 1.0  # the excluded rows were not scored as 0
    lines = (tmp_path / "out" / "samples" / "mathvista.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_rows_without_a_subset_value_are_scored_as_unknown_and_counted(tmp_path, processor, reward):
    # MathVista rows: one with the full metadata struct, one whose struct lacks task and skills, one with no
    # metadata at all (a JSON export may drop it). All three are scored; the missing fields are "unknown".
    base = dict(unit=None, precision=None, answer_type="integer", choices=None, question_type="free_form",
                image="images/x.jpg")
    rows = [dict(pid="1", question="Q one?", decoded_image=cell(png()), answer="1",
                 metadata=mathvista_metadata("figure question answering", ["statistical reasoning"]), **base),
            dict(pid="2", question="Q two?", decoded_image=cell(png()), answer="2",
                 metadata=mathvista_metadata(None, None), **base),
            dict(pid="3", question="Q three?", decoded_image=cell(png()), answer="3", metadata=None, **base)]
    write_parquet(tmp_path / "mv" / "testmini.parquet", [with_query(row) for row in rows])
    replies = {"Q one": "\\boxed{1}", "Q two": "\\boxed{2}", "Q three": "\\boxed{0}"}
    result = evaluate_qa({"kind": "benchmark", "benchmark": "mathvista", "path": str(tmp_path / "mv")},
                         OracleBackend(replies), processor, EvalConfig(), reward, tmp_path / "out")
    assert result["scored"] == 3 and result["excluded_total"] == 0
    assert result["subset_unknown"] == {"task": 2, "skills": 2, "question_type": 0}
    # Q two (right) and Q three (wrong) share the unknown task: 1/2; Q one alone in its task: 1/1.
    assert result["subsets"]["task"] == {"unknown": {"questions": 2, "accuracy": 0.5},
                                         "figure question answering": {"questions": 1, "accuracy": 1.0}}
    assert result["subsets"]["question_type"] == {"free_form": {"questions": 3, "accuracy": 2 / 3}}
    line = json.loads((tmp_path / "out" / "samples" / "mathvista.jsonl").read_text().splitlines()[2])
    assert line["subsets"] == {"task": "unknown", "skills": "unknown", "question_type": "free_form"}


def test_subset_values_are_normalised():
    from eval.benchmarks import UNKNOWN_SUBSET, subset_value

    assert subset_value(None) == subset_value("  ") == subset_value(float("nan")) == UNKNOWN_SUBSET
    assert subset_value([]) == subset_value([None, ""]) == UNKNOWN_SUBSET
    assert subset_value(3) == subset_value(3.0) == subset_value(" 3 ") == "3"
    assert subset_value(["b", "a", "b"]) == ["b", "a"]  # labels deduplicated, order kept
    assert subset_value('["x", "y"]') == ["x", "y"]  # a list stored as a JSON string (CSV / JSONL exports)


def test_malformed_jsonl_line_and_bad_answer_are_counted(tmp_path):
    (tmp_path / "m500").mkdir()
    (tmp_path / "m500" / "test.jsonl").write_text(
        json.dumps({"problem": "Compute $1+1$.", "answer": "2"}) + "\n"
        + "{not json\n"
        + json.dumps({"problem": "Compute $2+2$.", "answer": None}) + "\n"
        + json.dumps({"problem": "Compute $3+3$.", "answer": ["6", "7"]}) + "\n"
        + json.dumps({"answer": "1"}) + "\n")
    loaded = load_benchmark("math500", tmp_path / "m500", tmp_path / "cache")
    assert [i.record.answer for i in loaded.items] == ["2"] and loaded.rows == 5
    assert dict(loaded.excluded) == {"malformed_row": 2, "malformed_answer": 2}
    assert any("test.jsonl:2: malformed_row: malformed JSON" in r for r in loaded.excluded_rows)


def test_corrupt_image_found_at_encode_time_is_excluded(tmp_path, processor, reward):
    rows = [dict(index=0, question="Q one? Options: A: x, B: y", image=cell(b"\x89PNG not really"), answer="A",
                 category="c", l2_category="c", meta_info={"source": "x"}),
            dict(index=1, question="Q two? Options: A: x, B: y", image=cell(png()), answer="B", category="c",
                 l2_category="c", meta_info={"source": "x"})]
    write_parquet(tmp_path / "mmstar" / "mmstar.parquet", rows)
    result = evaluate_qa({"kind": "benchmark", "benchmark": "mmstar", "path": str(tmp_path / "mmstar")},
                         OracleBackend({"Q two": "\\boxed{B}"}), processor, EvalConfig(), reward, tmp_path / "out")
    assert result["excluded"] == {"image_corrupt": 1} and result["scored"] == 1
    assert result["metrics"]["accuracy"] == 1.0


def test_missing_benchmark_names_the_path_and_the_dataset(tmp_path):
    with pytest.raises(BenchmarkMissingError) as err:
        load_benchmark("mathvista", tmp_path / "nowhere", tmp_path / "cache")
    assert str(tmp_path / "nowhere") in str(err.value) and "AI4Math/MathVista" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkMissingError, match="MATH-500"):
        load_benchmark("math500", tmp_path / "empty", tmp_path / "cache")


def test_save_to_disk_folder_is_read(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{"problem": "Compute $2+2$.", "answer": "4", "unique_id": "a"}])
    ds.save_to_disk(str(tmp_path / "m500"))
    loaded = load_benchmark("math500", tmp_path / "m500", tmp_path / "cache")
    assert [i.record.answer for i in loaded.items] == ["4"]


@pytest.mark.parametrize("text, letter", [
    ("\\boxed{B}", "B"), ("<answer>(C)</answer>", "C"), ("<answer>\\boxed{\\text{D}}</answer>", "D"),
    ("the answer is A", "A"), ("<answer>B. square</answer>", "B"), ("\\boxed{square}", "B"), ("\\boxed{7}", None),
    ("<answer>The answer is a square.</answer>", None),  # the article is not option A
    ("If the answer is A, then x < 0, a contradiction. So the answer is C.", "C"),  # the last statement
    ("<answer>(A) is wrong, the correct option is (C)</answer>", "C"), ("Answer: (D)", "D"),
])
def test_extract_choice(text, letter):
    assert extract_choice(text, ["circle", "square", "triangle", "x"]) == letter


def test_grade_choice_outcomes():
    record = validate_record({"messages": [{"role": "user", "content": "Q? (A) 1 (B) 2"}], "answer": "B",
                              "task": "multiple_choice", "meta": {"choices": ["1", "2"]}})
    assert grade_choice("\\boxed{B}", record).outcome == "correct"
    assert grade_choice("\\boxed{A}", record).outcome == "wrong"
    assert grade_choice("<answer>I don't know</answer>", record).outcome == "uncertain"
    assert grade_choice("hmm", record).outcome == "invalid"
    # A committed letter wins over an abstention phrase in the reasoning or in the option's own text.
    assert grade_choice("AC cannot be determined from the figure alone, so use the angle. The answer is B.",
                        record).outcome == "correct"
    option_d = validate_record({"messages": [{"role": "user", "content": "Q?"}], "answer": "D", "task": "multiple_choice",
                                "meta": {"choices": ["1", "2", "3", "Cannot be determined"]}})
    assert grade_choice("<answer>D. Cannot be determined</answer>", option_d).outcome == "correct"


def test_a_split_name_followed_by_an_underscore_names_another_table(tmp_path):
    from eval.benchmarks import find_tables

    for name in ("testmini.parquet", "testmini_text_only.parquet", "data/testmini-00000-of-00001.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_tables(tmp_path, "testmini", "mathverse", "AI4Math/MathVerse")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == [
        "data/testmini-00000-of-00001.parquet", "testmini.parquet"]
    only_text = tmp_path / "only_text"
    only_text.mkdir()
    (only_text / "testmini_text_only.parquet").write_bytes(b"")
    assert find_tables(only_text, "testmini", "mathverse", "AI4Math/MathVerse") == [
        only_text / "testmini_text_only.parquet"]  # the looser match when nothing else fits


def test_mathvista_free_form_questions_carry_the_answer_format_hint(tmp_path):
    mathvista(tmp_path / "mv")
    loaded = load_benchmark("mathvista", tmp_path / "mv", tmp_path / "cache")
    texts = {item.record.meta["id"]: item.record.messages[-1]["content"][-1]["text"] for item in loaded.items}
    assert texts["1"].startswith("Hint: Please answer") and texts["1"].endswith("What is the value of x?")
    assert not texts["2"].startswith("Hint:") and "(B) square" in texts["2"]


def test_sampled_eval_seeds_are_distinct_across_batches():
    from eval.run import batch_seed

    n, batch, prompts = 4, 3, 10
    seeds = [batch_seed(7, start, n) + i * n + j for start in range(0, prompts, batch)
             for i in range(min(batch, prompts - start)) for j in range(n)]
    assert len(set(seeds)) == len(seeds) == prompts * n


def test_prompt_templates():
    user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}
    record = validate_record({"messages": [{"role": "system", "content": "old"}, user],
                              "images": ["a.png"], "answer": "1"})
    assert apply_template(record, "r1").messages[0]["content"] == LMM_R1_SYSTEM_PROMPT
    cot = apply_template(record, "cot").messages
    assert [m["role"] for m in cot] == ["user"] and cot[0]["content"][-1]["text"].endswith("within \\boxed{}.")
    assert apply_template(record, "record") is record


def test_report_and_compare_show_subsets(tmp_path, processor, reward):
    from eval.compare import compare
    from eval.report import write_report
    from eval.suites import config_dict

    replies = mathvista(tmp_path / "mv")
    task = {"kind": "benchmark", "benchmark": "mathvista", "path": str(tmp_path / "mv")}
    runs = []
    for label, answers in (("before", {k: "\\boxed{Z9}" for k in replies}), ("after", replies)):
        result = evaluate_qa(task, OracleBackend(answers), processor, EvalConfig(), reward, tmp_path / label)
        results = {"suite": "s", "model": "m", "config": config_dict(EvalConfig()), "seconds": 1.0,
                   "tasks": [result], "summary": {}}
        write_report(results, tmp_path / label)
        runs.append(tmp_path / label)
    md = (tmp_path / "after" / "report.md").read_text()
    assert "mathvista by subset:" in md and "| field | subset | questions | acc % |" in md
    assert "| task | geometry problem solving | 2 | 100.00 |" in md
    assert "| skills | algebraic reasoning | 2 | 100.00 |" in md
    assert "| question_type | free_form | 1 | 100.00 |" in md and "| question_type | multi_choice | 1 | 100.00 |" in md
    assert "without a subset value" not in md  # nothing unknown in this fixture
    assert (tmp_path / "after" / "plots" / "subsets_mathvista.png").read_bytes().startswith(b"\x89PNG")
    assert "plots/subsets_mathvista.png" in json.loads((tmp_path / "after" / "results.json").read_text())["plots"]

    table = json.loads((compare(runs, tmp_path / "cmp", ["before", "after"]) / "comparison.json").read_text())
    row = next(r for r in table["rows"] if r["task"] == "mathvista · task=geometry problem solving")
    assert row["values"] == {"before": 0.0, "after": 1.0} and row["delta"] == 1.0


def test_mathvista_float_answers_are_compared_at_their_precision(reward):
    from eval.run import grade

    def record(answer: str, **meta):
        return validate_record({"messages": [{"role": "user", "content": "Q?"}], "answer": answer, "task": "math",
                                "meta": meta})

    one_decimal = record("1.2", precision=1.0, answer_type="float")
    assert grade("<answer>\\boxed{1.23}</answer>", one_decimal, reward).outcome == "correct"  # round(1.23, 1) = 1.2
    assert grade("<answer>\\boxed{1.3}</answer>", one_decimal, reward).outcome == "wrong"
    assert grade("<answer>The value is $1.24$.</answer>", one_decimal, reward).outcome == "correct"
    assert grade("<answer>\\boxed{1.23}</answer>", record("1.2"), reward).outcome == "wrong"  # no precision: exact
    assert grade("<answer>\\boxed{12}</answer>", record("12", precision=1.0, answer_type="integer"),
                 reward).outcome == "correct"
