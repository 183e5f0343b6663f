"""Records: the schema, validation errors that name file/row/field, and JSONL round trips."""

from __future__ import annotations

import copy
import json

import pytest

from lmmr1.data.records import (
    UNANSWERABLE,
    Record,
    RecordError,
    check_relative_image_path,
    count_image_placeholders,
    load_records,
    prompt_text,
    validate_record,
    write_records,
)

GOOD = {
    "messages": [
        {"role": "system", "content": "Solve it."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Find x."}]},
    ],
    "images": ["imgs/a.png"],
    "answer": "$3$",
    "task": "geometry",
    "source": "unit",
    "meta": {"id": 7},
}


def with_(**changes):
    data = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is KeyError:
            del data[key]
        else:
            data[key] = value
    return data


def test_valid_record_round_trips_through_jsonl(tmp_path):
    record = validate_record(GOOD, file="in.jsonl", row=1)
    assert record.images == ["imgs/a.png"] and record.task == "geometry" and record.meta == {"id": 7}
    assert count_image_placeholders(record.messages) == 1
    assert prompt_text(record) == "Find x."
    path = tmp_path / "records.jsonl"
    assert write_records(path, [record, record]) == 2
    assert load_records(path) == [record, record]
    assert not (tmp_path / "records.jsonl.tmp").exists()


def test_validation_copies_and_does_not_mutate_input():
    data = copy.deepcopy(GOOD)
    record = validate_record(data)
    record.messages[1]["content"][1]["text"] = "changed"
    assert data == GOOD


def test_defaults_and_numeric_answer():
    record = validate_record({"messages": [{"role": "user", "content": "1+1?"}], "answer": 2})
    assert (record.answer, record.images, record.task, record.source, record.meta) == ("2", [], "math", "", {})
    assert not record.unanswerable
    assert validate_record({"messages": [{"role": "user", "content": "?"}], "answer": UNANSWERABLE}).unanswerable


@pytest.mark.parametrize("number, text", [(1e-07, "0.0000001"), (2e16, "20000000000000000"), (0.5, "0.5"),
                                          (-2.25, "-2.25"), (7, "7")])
def test_numeric_answers_become_positional_text_the_verifier_grades(number, text):
    from lmmr1.rewards import get_reward

    record = validate_record({"messages": [{"role": "user", "content": "?"}], "answer": number})
    assert record.answer == text  # str(1e-07) is "1e-07", which math-verify does not equate with 0.0000001
    response = f"<think>computing</think><answer>\\boxed{{{text}}}</answer>"
    assert get_reward("lmm_r1")(response, record).outcome == "correct"


@pytest.mark.parametrize(
    "data, field, words",
    [
        (with_(answer=KeyError), "answer", "missing"),
        (with_(answer="  "), "answer", "empty"),
        (with_(answer=None), "answer", "missing"),
        (with_(answer=["3"]), "answer", "must be a string"),
        (with_(answer=float("nan")), "answer", "finite"),
        (with_(images=[]), "images", "1 image placeholder(s) in messages but 0 path(s)"),
        (with_(images=["a.png", "b.png"]), "images", "but 2 path(s)"),
        (with_(images=["/etc/passwd"]), "images[0]", "absolute"),
        (with_(images=["../../etc/passwd"]), "images[0]", "escapes the dataset root"),
        (with_(images=["imgs/../../x.png"]), "images[0]", "escapes the dataset root"),
        (with_(images=["http://example.com/a.png"]), "images[0]", "URL"),
        (with_(images=["file:///data/a.png"]), "images[0]", "URL"),
        (with_(images=[3]), "images[0]", "string path"),
        (with_(images="a.png"), "images", "list of paths"),
        (with_(messages=[]), "messages", "non-empty list"),
        (with_(messages=[{"role": "robot", "content": "hi"}]), "messages[0].role", "not one of"),
        (with_(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
         "messages[1].role", "last turn must be the user's"),
        (with_(messages=[{"role": "user", "content": [{"type": "image", "image": "a.png"}]}]),
         "messages[0].content[0]", "placeholder"),
        (with_(messages=[{"role": "user", "content": [{"type": "video"}]}]), "messages[0].content[0].type",
         "not 'text' or 'image'"),
        (with_(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages[0].content[0]", "text item"),
        (with_(messages=[{"role": "user", "content": "see <|image_pad|> here"}]), "messages[0].content",
         "vision token"),
        (with_(messages=[{"role": "user", "content": "q", "name": "x"}]), "messages[0]", "unknown keys"),
        (with_(task=""), "task", "non-empty"),
        (with_(source=3), "source", "must be a string"),
        (with_(meta={"x": {1, 2}}), "meta", "JSON-serialisable"),
        (with_(meta=[1]), "meta", "must be an object"),
    ],
)
def test_validation_errors_name_file_row_and_field(data, field, words):
    with pytest.raises(RecordError) as err:
        validate_record(data, file="data/train.jsonl", row=12)
    assert (err.value.file, err.value.row, err.value.field) == ("data/train.jsonl", 12, field)
    assert str(err.value).startswith(f"data/train.jsonl:12: {field}: ")
    assert words in str(err.value)


def test_unknown_top_level_field_and_non_object_row():
    with pytest.raises(RecordError, match=r"unknown fields \['label'\]"):
        validate_record({**GOOD, "label": "3"})
    with pytest.raises(RecordError, match="a record is a JSON object, got list"):
        validate_record([GOOD], file="f.jsonl", row=2)


def test_read_records_reports_the_line_of_a_bad_row(tmp_path):
    path = tmp_path / "r.jsonl"
    good = json.dumps(GOOD)
    path.write_text(good + "\n\n" + good + "\n" + '{"messages": [}\n')  # line 4 is malformed
    with pytest.raises(RecordError) as err:
        load_records(path)
    assert (err.value.file, err.value.row) == (str(path), 4)
    assert "malformed JSON" in str(err.value)
    no_answer = dict(GOOD)
    del no_answer["answer"]
    path.write_text(good + "\n" + json.dumps(no_answer) + "\n")
    with pytest.raises(RecordError, match=r"r\.jsonl:2: answer: missing"):
        load_records(path)


UNREADABLE_LINES = {  # each must cost its own row only, with a message saying why
    b'{"answer": "caf\xe9"}': "not UTF-8 (byte 0xe9",  # a Latin-1 byte
    b'{"answer": ' + b"9" * 5000 + b"}": "unreadable JSON value",  # past Python's int digit limit
    b"[" * 100_000: "JSON nested too deeply",
    b'{"messages": [}': "malformed JSON",
}


def test_unreadable_lines_cost_one_row_each_in_every_reader(tmp_path, caplog):
    from collections import Counter

    from data_pipelines._common import ConversionReport, read_jsonl_rows
    from lmmr1.engine.data import read_rows

    good = json.dumps(GOOD).encode()
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\n".join([good, *UNREADABLE_LINES, good]) + b"\n")
    skipped = Counter()
    rows = read_rows([str(path)], skipped)
    assert [r.where for r in rows] == [f"{path}:1", f"{path}:6"] and skipped["malformed_row"] == 4
    for line, (_bad, words) in enumerate(UNREADABLE_LINES.items(), start=2):
        assert any(f"r.jsonl:{line}: {words}" in m for m in caplog.messages), (words, "\n".join(caplog.messages))
    report = ConversionReport()
    assert [row for _file, row, _data in read_jsonl_rows(path, report)] == [1, 6]
    assert report.rejected["malformed_json"] == 4
    with pytest.raises(RecordError, match=r"r\.jsonl:2: not UTF-8"):
        load_records(path)


@pytest.mark.parametrize(
    "ref, ok",
    [("a.png", True), ("sub/dir/a.png", True), ("./a.png", True), ("a/../b.png", True), ("..", False),
     ("../a.png", False), ("a/../../b.png", False), ("/abs.png", False), ("C:/x.png", False),
     ("https://x/y.png", False), ("data:image/png;base64,AAAA", False), ("", False)],
)
def test_relative_image_path_rule(ref, ok):
    assert (check_relative_image_path(ref) is None) is ok


def test_record_is_frozen():
    record = Record(messages=[{"role": "user", "content": "q"}], answer="1")
    with pytest.raises(Exception):
        record.answer = "2"  # type: ignore[misc]
