"""One grade, four writers: the Judge API, ``POST /grade``, ``phudge grade`` and ``phudge predict``
give a record's grade the same fields (``phudge_lightning.grades``), ``score`` always there.

The server runs in this process (uvicorn in a thread, on loopback) around a real tiny judge:
the same judge then grades the same records through each writer.
"""

from __future__ import annotations

import json

import pytest
import torch

from datamodules.records import validate_record
from phudge_lightning.grade.command import grade_file
from phudge_lightning.grades import GRADE_FIELDS, Grade, graded
from phudge_lightning.judge import Judge
from phudge_lightning.model.module import JudgeModule
from phudge_lightning.predict.writer import prediction_rows
from phudge_lightning.rank.ranking import ANSWER_FIELDS, rank_grades
from phudge_lightning.serve.schemas import GradeResult, RankedAnswer
from live_server import InThreadServer

RECORDS = [
    {"id": "full", "instruction": "What is 2+2?", "response": "4", "reference_answer": "2 + 2 = 4",
     "rubric": "Is it right?"},
    {"id": "empty", "instruction": "Say hi.", "response": ""},  # an empty answer: graded like any other
    {"id": "blank", "instruction": "Say hi.", "response": "  \n ", "score": 2},  # a label named like a grade field
]


def test_the_fields_are_defined_once():
    assert GRADE_FIELDS == ("score", "probabilities", "confidence", "feedback", "truncated")
    assert tuple(GradeResult.model_fields) == GRADE_FIELDS  # the server's schema is made from Grade
    assert GradeResult.model_fields["score"].is_required()
    assert tuple(RankedAnswer.model_fields) == ANSWER_FIELDS == ("index", "rank", *GRADE_FIELDS)  # a ranking's too
    answer = rank_grades([Grade(score=2.0, truncated=True)], [{"id": "x", "confidence": "stale"}]).answers[0]
    assert answer.to_dict() == {"id": "x", "index": 0, "rank": 1, "score": 2.0, "truncated": True}
    assert Grade(score=None, feedback="no verdict").to_dict() == {"score": None, "feedback": "no verdict"}
    assert graded({"id": 1, "score": 5, "confidence": "stale"}, Grade(score=3.0)) == {"id": 1, "score": 3.0}


@pytest.fixture(scope="module", params=["classification", "causal"])
def judge(request, tiny_llama_dir):
    # A random causal judge never writes "[RESULT] n" in 4 tokens: its score is None.
    kwargs = {"max_new_tokens": 4} if request.param == "causal" else {}
    module = JudgeModule(backbone=str(tiny_llama_dir), head=request.param, lora=None, **kwargs)
    return Judge(module, device="cpu", batch_size=4)


def given(record: dict) -> dict:
    """The record as the Judge API takes it: its fields, without the id and the label."""
    return {k: v for k, v in record.items() if k not in ("id", "score")}


def grade_part(row: dict) -> dict:
    return {k: row[k] for k in GRADE_FIELDS if k in row}


def test_phudge_grade_writes_the_fields_post_grade_answers(judge, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    output = tmp_path / "out.jsonl"
    summary = grade_file(judge, source, output, batch_size=4)
    assert (summary.graded, summary.rejected) == (3, 0)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    with InThreadServer(judge) as server:
        status, answers = server.post("/grade", RECORDS)
        assert status == 200, answers
        singles = [server.post("/grade", record) for record in RECORDS]
        status, comparison = server.post("/compare", {"instruction": "Say hi.", "response_a": "hi", "response_b": ""})
        assert status == 200, comparison
    api = [judge.grade_many([given(r)])[0].to_dict() for r in RECORDS]
    causal = judge.module.hparams.head == "causal"
    expected_keys = {"score", "feedback"} if causal else {"score", "probabilities", "confidence"}
    for record, line, answer, (single_status, single), own in zip(RECORDS, lines, answers, singles, api):
        assert single_status == 200, single
        assert set(grade_part(line)) == set(grade_part(answer)) == set(grade_part(single)) == set(own) == expected_keys
        assert "score" in line and "score" in answer  # always: null when the causal head gave none
        assert (line["score"] is None) == (answer["score"] is None) == causal
        for key in expected_keys:  # the same values too (the server batches, so up to float noise)
            if isinstance(own[key], (float, list)):
                assert line[key] == pytest.approx(own[key], abs=1e-4) and answer[key] == pytest.approx(own[key], abs=1e-4)
            else:
                assert line[key] == answer[key] == own[key]
        assert line["id"] == answer["id"] == record["id"]  # the record's own fields come back
        assert line["response"] == record["response"]  # phudge grade keeps the whole line
    if causal:
        assert comparison == {"winner": "invalid", "score_a": None, "score_b": None, "margin": None}
    else:
        assert set(comparison) == {"winner", "score_a", "score_b", "margin", "p_a_better", "p_tie"}


def test_phudge_predict_rows_carry_the_same_fields(judge):
    """``predict_step``'s output, written by the prediction writer, against the Judge's grade."""
    encoded = [judge.encoder.encode(validate_record(given(r), require_score=False)) for r in RECORDS]
    batch = judge.collate([{"input_ids": e.input_ids, "index": i} for i, e in enumerate(encoded)])
    with torch.no_grad():
        output = judge.module.predict_step(batch, 0)
    rows = prediction_rows(output)
    grades = [judge.grade_many([given(r)])[0] for r in RECORDS]
    for row, grade in zip(sorted(rows, key=lambda r: r["index"]), grades):
        assert set(grade_part(row)) == set(grade.to_dict()) and "score" in row
        if grade.score is None:
            assert row["score"] is None
        else:
            assert row["score"] == pytest.approx(grade.score, abs=1e-4)
            assert row["confidence"] == max(row["probabilities"])
