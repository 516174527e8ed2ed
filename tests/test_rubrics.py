"""Rubrics by name: the library, the name rule in records, ``phudge rubrics``, ``--rubric`` on
grade and evaluate, and the API (the server is checked in ``test_rank.py``)."""

from __future__ import annotations

import json

import pytest

from conftest import BENCHMARKS, write_jsonl
from datamodules.records import RecordError, SCORE_KEYS, validate_record
from datamodules.rubrics import RUBRICS, get_rubric, is_name, resolve_rubric
from phudge_lightning.judge import Grade

REQUIRED = ("helpfulness", "harmlessness", "honesty", "factual_correctness", "reasoning", "instruction_following")


def test_the_library_has_the_rubrics_with_a_criterion_and_five_distinct_descriptions():
    assert set(REQUIRED) <= set(RUBRICS)
    for name, rubric in RUBRICS.items():
        assert list(rubric) == ["criteria", *SCORE_KEYS], name
        texts = list(rubric.values())
        assert all(isinstance(t, str) and len(t) > 20 for t in texts) and len(set(texts)) == 6, name
        validate_record({"instruction": "q", "response": "a", "rubric": rubric}, require_score=False)  # a valid object


@pytest.mark.parametrize("text, name", [("helpfulness", True), ("Factual-Correctness", True), ("instruction_following", True),
                                        ("Is the answer helpful?", False), ("helpful and correct", False),
                                        ("Helpfulness.", False), ("score: 1-5", False)])
def test_the_name_rule(text, name):
    assert is_name(text) is name


def test_a_record_resolves_a_name_and_keeps_free_text():
    row = {"instruction": "q", "response": "a", "score": 4}
    assert validate_record({**row, "rubric": "helpfulness"}).rubric == RUBRICS["helpfulness"]
    assert validate_record({**row, "rubric": " Factual-Correctness "}).rubric == RUBRICS["factual_correctness"]
    assert validate_record({**row, "rubric": "Is the answer helpful?"}).rubric == "Is the answer helpful?"
    resolved = get_rubric("honesty")
    resolved["criteria"] = "changed"  # a copy: the library stays as written
    assert RUBRICS["honesty"]["criteria"] != "changed"


def test_an_unknown_name_is_an_error_listing_the_known_ones():
    with pytest.raises(RecordError) as error:
        validate_record({"instruction": "q", "response": "a", "rubric": "helpfullness", "score": 4}, source="in.jsonl", row=4)
    assert error.value.field == "rubric" and "in.jsonl, row 4" in str(error.value)
    assert "unknown rubric name 'helpfullness'" in str(error.value)
    assert all(name in str(error.value) for name in RUBRICS)


def test_phudge_rubrics_lists_and_shows(capsys):
    from phudge_lightning.cli import main

    assert main(["rubrics"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(RUBRICS)
    assert main(["rubrics", "reasoning"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"[{RUBRICS['reasoning']['criteria']}]") and "Score 5: " in shown
    assert main(["rubrics", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == RUBRICS
    assert main(["rubrics", "nope"]) == 2
    assert "known: helpfulness" in capsys.readouterr().err


class RecordingJudge:
    """Grades every record 3.0 and keeps what it was given."""

    def __init__(self):
        self.seen = []

    def grade_many(self, records, batch_size=None):
        self.seen += records
        return [Grade(score=3.0) for _ in records]


def test_grade_rubric_fills_the_rows_without_one(tmp_path):
    from phudge_lightning.grade.command import grade_file

    rows = [{"instruction": "q", "response": "a"}, {"instruction": "q", "response": "b", "rubric": "Is it short?"},
            {"instruction": "q", "response": "c", "rubric": "honesty"}]
    judge = RecordingJudge()
    grade_file(judge, write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", rubric="harmlessness")
    assert [r.rubric for r in judge.seen] == [RUBRICS["harmlessness"], "Is it short?", RUBRICS["honesty"]]


def test_grade_and_evaluate_refuse_an_unknown_rubric_name(capsys):
    from phudge_lightning.evaluate.run import parse_args as evaluate_args
    from phudge_lightning.grade.command import parse_args as grade_args

    for parse, rest in ((grade_args, ["--checkpoint", "x", "--input", "i", "--output", "o"]),
                        (evaluate_args, ["--baseline", "length", "--benchmark", "vicuna", "--data", "d"])):
        with pytest.raises(SystemExit):
            parse([*rest, "--rubric", "helpfullness"])
        assert "unknown rubric name 'helpfullness'" in capsys.readouterr().err
        assert parse([*rest, "--rubric", "helpfulness"]).rubric == "helpfulness"
    with pytest.raises(SystemExit):  # one or the other
        evaluate_args(["--baseline", "length", "--benchmark", "vicuna", "--data", "d", "--rubric", "honesty", "--rubric-free"])


@pytest.mark.skipif(not (BENCHMARKS / "vicuna_eval.json").exists(), reason="shared benchmark files not here")
def test_evaluate_grades_every_item_under_the_named_rubric():
    from phudge_lightning.benchmarks import load_benchmark
    from phudge_lightning.evaluate.run import with_rubric

    bench = with_rubric(load_benchmark("vicuna", BENCHMARKS / "vicuna_eval.json", limit=5), "reasoning")
    assert [r.rubric for r in bench.records()] == [RUBRICS["reasoning"]] * 5
    pairs = with_rubric(load_benchmark("hhh", BENCHMARKS / "hhh_alignment_eval.json", limit=3), "Is it kind?")
    assert {r.rubric for r in pairs.records()} == {"Is it kind?"}


def test_the_api_takes_a_name(tiny_bert_dir):
    from phudge_lightning.judge import Judge
    from phudge_lightning.model.module import JudgeModule

    judge = Judge(JudgeModule(backbone=str(tiny_bert_dir), head="regression", lora=None), device="cpu")
    named = judge.grade("Why does bread need salt?", "For flavour.", rubric="helpfulness").score
    spelled = judge.grade("Why does bread need salt?", "For flavour.", rubric=resolve_rubric("helpfulness")).score
    assert named == pytest.approx(spelled)
    with pytest.raises(RecordError, match="unknown rubric name"):
        judge.grade("q", "a", rubric="helpfullness")
