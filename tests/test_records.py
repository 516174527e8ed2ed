"""The record schema, its validation, and the sources read into it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import BENCHMARKS, small_records, write_jsonl
from datamodules.prompt import render
from datamodules.records import Record, RecordError, rubric_text, validate_record
from datamodules.sources import detect_format, load_records

GOOD = {"instruction": "Say hi.", "response": "Hi!", "score": 4}
RUBRIC = {"criteria": "Friendly?", **{f"score{k}_description": f"level {k}" for k in range(1, 6)}}


def _file(tmp_path: Path, rows, name="rows.jsonl") -> Path:
    return write_jsonl(tmp_path / name, rows)


def test_good_record_fields_and_extra():
    record = validate_record({**GOOD, "id": "x1", "rubric": RUBRIC, "reference_answer": "Hello!",
                              "context": ["one", "two"], "feedback": "Nice."})
    assert record.score == 4.0 and isinstance(record.score, float)
    assert record.rubric == RUBRIC and record.reference_answer == "Hello!"
    assert record.context == "one\n\ntwo"
    assert record.extra == {"id": "x1"}
    assert rubric_text(record.rubric).splitlines() == ["[Friendly?]"] + [f"Score {k}: level {k}" for k in range(1, 6)]


def test_blank_optional_text_becomes_none():
    record = validate_record({**GOOD, "reference_answer": "  ", "rubric": "", "feedback": None})
    assert record.reference_answer is None and record.rubric is None and record.feedback is None


# (the row's changes, the field named, words of the message)
BAD = [
    ({"instruction": None}, "instruction", "must be text, got null"),
    ({"instruction": ""}, "instruction", "is empty"),
    ({"instruction": "  \n"}, "instruction", "is blank ('  \\n')"),
    ({"response": None}, "response", "must be text, got null"),
    ({"response": 42}, "response", "must be text, got a number (42)"),
    ({"response": ["a", "list"]}, "response", "must be text, got a list (['a', 'list'])"),
    ({"response": {"text": "hi"}}, "response", "must be text, got an object ({'text': 'hi'})"),
    ({"score": 0}, "score", "from 1 to 5"),
    ({"score": 6}, "score", "from 1 to 5"),
    ({"score": 5.01}, "score", "from 1 to 5"),
    ({"score": "abc"}, "score", "got text ('abc')"),
    ({"score": True}, "score", "got a boolean (True)"),
    ({"score": float("nan")}, "score", "nan"),
    ({"score": float("inf")}, "score", "inf"),
    ({"score": None}, "score", "is null"),
    ({"response": True}, "response", "must be text, got a boolean (True)"),
    ({"instruction": 12}, "instruction", "must be text, got a number (12)"),
    ({"reference_answer": False}, "reference_answer", "must be text, got a boolean (False)"),
    ({"rubric": 5}, "rubric", "text or an object, got a number (5)"),
    ({"rubric": ["a", "b"]}, "rubric", "text or an object, got a list"),
    ({"rubric": {"criteria": "c"}}, "rubric.score1_description", "is missing"),
    ({"context": ["ok", 3]}, "context[1]", "must be text, got a number (3)"),
]


@pytest.mark.parametrize("change,field,words", BAD, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(BAD)])
def test_bad_row_names_row_and_field(tmp_path, change, field, words):
    rows = [dict(GOOD), dict(GOOD), {**GOOD, **change}]
    path = _file(tmp_path, [json.dumps(r, allow_nan=True) for r in rows])
    with pytest.raises(RecordError) as info:
        load_records(str(path))
    error = info.value
    assert (error.row, error.field) == (3, field)
    message = str(error)
    assert str(path) in message and "row 3" in message and f"field '{field}'" in message
    assert words.lower() in message.lower()


@pytest.mark.parametrize("response", ["", " ", "\n\t  "])
def test_an_empty_or_blank_response_is_an_answer(tmp_path, response):
    """A model that answered nothing is graded (and trained on), not refused: kept as given."""
    assert validate_record({**GOOD, "response": response}).response == response
    path = _file(tmp_path, [json.dumps(GOOD), json.dumps({**GOOD, "response": response, "score": 1})])
    records, errors = load_records(str(path))
    assert errors == [] and [r.response for r in records] == ["Hi!", response]


@pytest.mark.parametrize("field", ["instruction", "response"])
def test_a_missing_field_is_named_and_said_missing(tmp_path, field):
    row = {k: v for k, v in GOOD.items() if k != field}
    path = _file(tmp_path, [json.dumps(GOOD), json.dumps(row)])
    with pytest.raises(RecordError) as info:
        load_records(str(path))
    assert str(info.value) == f"{path}, row 2, field '{field}': is missing"


def test_a_long_wrong_value_is_shown_cut_and_marked():
    with pytest.raises(RecordError) as info:
        validate_record({**GOOD, "response": list(range(100))}, source="f.jsonl", row=9)
    message = str(info.value)
    assert message.startswith("f.jsonl, row 9, field 'response': must be text, got a list ([0, 1, 2")
    assert message.endswith("...)") and len(message) < 140


@pytest.mark.parametrize("layout", ["lines", "array"])
def test_a_file_with_a_byte_order_mark_loads(tmp_path, layout):
    """Windows editors and spreadsheets start UTF-8 files with a BOM: it is not data."""
    rows = [GOOD, {**GOOD, "response": "Olá!", "score": 5}]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) if layout == "lines" else json.dumps(rows)
    path = tmp_path / ("rows.jsonl" if layout == "lines" else "rows.json")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    records, errors = load_records(str(path))
    assert errors == [] and [(r.response, r.score) for r in records] == [("Hi!", 4.0), ("Olá!", 5.0)]


def test_validate_record_not_an_object():
    with pytest.raises(RecordError, match=r"src, row 7: must be a JSON object, got list"):
        validate_record([1, 2], source="src", row=7)


def test_score_optional_when_not_required():
    record = validate_record({"instruction": "a", "response": "b"}, require_score=False)
    assert record.score is None
    with pytest.raises(RecordError, match="from 1 to 5"):  # given, it is still checked
        validate_record({"instruction": "a", "response": "b", "score": 9}, require_score=False)


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = _file(tmp_path, [json.dumps(GOOD), "", json.dumps(GOOD), '{"instruction": "x", "response": ', json.dumps(GOOD)])
    with pytest.raises(RecordError) as info:
        load_records(str(path))
    assert info.value.row == 4  # blank line 2 still counts as a line
    assert str(path) in str(info.value) and "row 4" in str(info.value) and "malformed JSON" in str(info.value)


def test_malformed_json_array_names_file_and_line(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n{"instruction": "a", "response": "b", "score": 3},\n{"instruction": ]\n')
    with pytest.raises(RecordError, match=r"rows\.json, row \? \(line 3\): malformed JSON"):
        load_records(str(path))


def test_json_array_rows_are_numbered_by_position(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([GOOD, GOOD, {**GOOD, "score": 7}]))
    with pytest.raises(RecordError) as info:
        load_records(str(path))
    assert (info.value.row, info.value.field) == (3, "score")


def test_skip_invalid_skips_and_counts(tmp_path):
    rows = [json.dumps(r) for r in small_records(10)]
    bad = {2: {**GOOD, "score": 0}, 5: {**GOOD, "response": 3}, 7: {**GOOD, "score": True}}
    for i, row in bad.items():
        rows[i] = json.dumps(row)
    rows.insert(9, "{not json")
    path = _file(tmp_path, rows)
    records, errors = load_records(str(path), skip_invalid=True)
    assert len(records) == 7 and len(errors) == 4
    assert [e.row for e in errors] == [3, 6, 8, 10]
    assert [e.field for e in errors] == ["score", "response", "score", None]
    assert [r.extra["id"] for r in records] == [f"row-{i:03d}" for i in (0, 1, 3, 4, 6, 8, 9)]


def test_no_valid_rows_raises(tmp_path):
    path = _file(tmp_path, [{**GOOD, "score": 0}])
    with pytest.raises(RecordError, match="no valid rows"):
        load_records(str(path), skip_invalid=True)


def test_limit_and_missing_file(tmp_path):
    path = _file(tmp_path, small_records(10))
    records, _ = load_records(str(path), limit=4)
    assert len(records) == 4
    with pytest.raises(FileNotFoundError, match="no data file"):
        load_records(str(tmp_path / "absent.jsonl"))
    with pytest.raises(ValueError, match="format must be one of"):
        load_records(str(path), format="csv")


def test_small_records_fixture_is_valid(small_records_file):
    records, errors = load_records(str(small_records_file))
    assert len(records) == 40 and not errors
    scores = [r.score for r in records]
    assert set(range(1, 6)) <= set(scores) and any(not s.is_integer() for s in scores)
    assert any(r.rubric is None for r in records) and any(r.reference_answer is None for r in records)
    assert any(isinstance(r.rubric, dict) for r in records) and any(isinstance(r.rubric, str) for r in records)


# -- Feedback Collection -------------------------------------------------------------------------

def _fc_row(**over):
    row = {
        "orig_instruction": "Explain rain.", "orig_response": "Water falls.", "orig_reference_answer": "Clouds...",
        "orig_criteria": "Is it scientific?", "orig_feedback": "Too short.", "orig_score": "4",
        **{f"orig_score{k}_description": f"desc {k}" for k in range(1, 6)},
        "instruction": "###Task Description: ... (formatted)", "output": "Too short. [RESULT] 4",
    }
    row.update(over)
    return row


def test_feedback_collection_rows_map(tmp_path):
    path = _file(tmp_path, [_fc_row(), _fc_row(orig_score=2, orig_reference_answer=None), _fc_row(orig_score="3.5")])
    assert detect_format(_fc_row()) == "feedback_collection"
    records, _ = load_records(str(path))
    first = records[0]
    assert first.instruction == "Explain rain." and first.response == "Water falls."
    assert first.reference_answer == "Clouds..." and first.feedback == "Too short."
    assert first.score == 4.0  # from the text "4"
    assert first.rubric == {"criteria": "Is it scientific?", **{f"score{k}_description": f"desc {k}" for k in range(1, 6)}}
    assert records[1].score == 2.0 and records[1].reference_answer is None
    assert records[2].score == 3.5
    # The formatted prompt and output of the export are not read as the instruction.
    assert all(r.instruction == "Explain rain." for r in records)


def test_feedback_collection_bad_score_text(tmp_path):
    path = _file(tmp_path, [_fc_row(), _fc_row(orig_score="four")])
    with pytest.raises(RecordError) as info:
        load_records(str(path))
    assert (info.value.row, info.value.field) == (2, "score")


def test_feedback_collection_partial_rubric_names_the_part(tmp_path):
    path = _file(tmp_path, [_fc_row(orig_score3_description=None)])
    with pytest.raises(RecordError, match=r"row 1, field 'rubric.score3_description'"):
        load_records(str(path))


# -- Prometheus formatted prompts ----------------------------------------------------------------

def _prometheus_text(response="Fine.", reference="Ref.", rubric=RUBRIC):
    return render(Record(instruction="Task?", response=response, rubric=rubric, reference_answer=reference))


def test_prometheus_rows_score_is_mean_of_gpt4_scores(tmp_path):
    rows = [{"idx": 0, "instruction": _prometheus_text(), "gpt4_score": [4, 5, 5], "gpt4_feedback": ["Good. [RESULT] 4"]},
            {"idx": 1, "instruction": _prometheus_text(reference=None), "gpt4_score": [1, 2, 2]}]
    path = _file(tmp_path, rows)
    records, _ = load_records(str(path))
    assert [r.score for r in records] == pytest.approx([14 / 3, 5 / 3])
    assert records[0].feedback == "Good. [RESULT] 4" and records[1].feedback is None
    assert records[0].rubric == RUBRIC and records[0].reference_answer == "Ref." and records[1].reference_answer is None
    assert records[0].extra == {"idx": 0}


@pytest.mark.parametrize("bad", [[], [4, "5"], [True, 3]])
def test_prometheus_bad_gpt4_score(tmp_path, bad):
    path = _file(tmp_path, [{"instruction": _prometheus_text(), "gpt4_score": bad}])
    with pytest.raises(RecordError) as info:
        load_records(str(path))
    assert (info.value.row, info.value.field) == (1, "gpt4_score")


def test_prometheus_pairs_give_two_records(tmp_path):
    rows = [{"source": "helpful", "chosen_instruction": _prometheus_text("Good answer.", None),
             "rejected_instruction": _prometheus_text("Bad answer.", None)} for _ in range(3)]
    path = _file(tmp_path, rows)
    records, errors = load_records(str(path))
    assert len(records) == 6 and not errors
    assert [(r.extra["pair"], r.extra["chosen"]) for r in records] == [(1, True), (1, False), (2, True), (2, False), (3, True), (3, False)]
    assert [r.response for r in records[:2]] == ["Good answer.", "Bad answer."]
    assert all(r.score is None for r in records)
    assert all(r.extra["source"] == "helpful" and "chosen_instruction" not in r.extra for r in records)


@pytest.mark.parametrize("name,rows,fmt", [("vicuna_eval.json", 320, "prometheus"),
                                           ("hhh_alignment_eval.json", 442, "prometheus_pairs")])
def test_benchmark_files_load(name, rows, fmt):
    path = BENCHMARKS / name
    if not path.exists():
        pytest.skip(f"benchmark file absent: {path}")
    raw = json.loads(path.read_text())
    assert detect_format(raw[0]) == fmt
    records, errors = load_records(str(path))
    assert len(records) == rows and not errors
    if fmt == "prometheus":
        for record, row in zip(records, raw):
            assert record.score == pytest.approx(sum(row["gpt4_score"]) / len(row["gpt4_score"]))
            assert 1 <= record.score <= 5 and not math.isnan(record.score)


def test_demo_loads():
    records, errors = load_records("demo")
    assert records and not errors
    assert all(1 <= r.score <= 5 for r in records)


def test_every_bad_field_of_a_row_is_named():
    raw = {"instruction": "", "response": 3, "rubric": {"criteria": "c"}, "score": 9}
    with pytest.raises(RecordError) as caught:
        validate_record(raw, source="in.jsonl", row=7)
    error = caught.value
    assert [e.field for e in error.problems] == ["instruction", "response", "rubric.score1_description", "score"]
    assert error.field == "instruction" and str(error).startswith("in.jsonl, row 7, field 'instruction': ")
    for name in ("'response' must be text", "'rubric.score1_description' is missing", "'score' must be from 1 to 5"):
        assert name in str(error)
    # One bad field: the message is the field's own, as before.
    with pytest.raises(RecordError, match=r"row 2, field 'score': is missing$"):
        validate_record({"instruction": "q", "response": "a"}, row=2)
