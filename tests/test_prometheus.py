"""Parsing formatted Prometheus prompts back into record fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamodules.prometheus import parse_prompt, parse_rubric
from datamodules.prompt import render
from datamodules.records import Record

BENCHMARKS = Path(__file__).parents[1].parent / "shared/data/benchmarks"
FILES = {  # file -> (prompt fields, rows, has a reference answer)
    "vicuna_eval.json": (("instruction",), 320, True),
    "mt_bench_eval.json": (("instruction",), 320, True),
    "hhh_alignment_eval.json": (("chosen_instruction", "rejected_instruction"), 221, False),
}

RUBRIC = {
    "criteria": "Is the answer correct?",
    "score1_description": "Wrong.",
    "score2_description": "Mostly wrong.",
    "score3_description": "Half right.",
    "score4_description": "Mostly right.",
    "score5_description": "Right.",
}


def _load(name: str) -> list[dict]:
    path = BENCHMARKS / name
    if not path.exists():
        pytest.skip(f"benchmark file absent: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_benchmark_prompt_parses(name):
    fields, count, has_reference = FILES[name]
    rows = _load(name)
    assert len(rows) == count
    for i, row in enumerate(rows):
        for field in fields:
            parsed = parse_prompt(row[field])
            where = f"{name} row {i} {field}"
            for key in ("instruction", "response"):
                assert isinstance(parsed[key], str) and parsed[key].strip(), f"{where}: empty {key}"
            assert parsed["rubric"], f"{where}: no rubric"
            # The benchmark rubrics are all in the [criteria] + Score 1..5 form.
            assert isinstance(parsed["rubric"], dict) and parsed["rubric"]["criteria"], where
            assert set(parsed["rubric"]) == {"criteria", *(f"score{k}_description" for k in range(1, 6))}
            if has_reference:
                assert isinstance(parsed["reference_answer"], str) and parsed["reference_answer"].strip(), where
            else:
                assert parsed["reference_answer"] is None, where
            # No section swallowed the next one's header.
            for key in ("instruction", "response", "reference_answer"):
                text = parsed[key] or ""
                assert "###Score Rubrics:\n" not in text and not text.rstrip().endswith("###Feedback:"), where


def test_hhh_pair_differs_only_in_response():
    rows = _load("hhh_alignment_eval.json")
    for i, row in enumerate(rows[:40]):
        chosen, rejected = parse_prompt(row["chosen_instruction"]), parse_prompt(row["rejected_instruction"])
        assert chosen["instruction"] == rejected["instruction"], i
        assert chosen["rubric"] == rejected["rubric"], i


def _prompt(instruction, response, reference, rubric_body):
    parts = ["###Task Description:\nAn instruction, a response ... ###Weird task text.",
             f"###The instruction to evaluate:\n{instruction}", f"###Response to evaluate:\n{response}"]
    if reference is not None:
        parts.append(f"###Reference Answer (Score 5):\n{reference}")
    if rubric_body is not None:
        parts.append(f"###Score Rubrics:\n{rubric_body}")
    return "\n\n".join(parts) + "\n\n###Feedback: "


RUBRIC_BODY = "[Is the answer correct?]\nScore 1: Wrong.\nScore 2: Mostly wrong.\nScore 3: Half right.\nScore 4: Mostly right.\nScore 5: Right."


def test_hashes_inside_content_survive():
    response = ("Here is markdown:\n### A heading\nand a fake header line below\n###Score Rubrics:\n"
                "###Reference Answer (Score 5):\nstill the response ### end")
    instruction = "Explain this C# line: x ### y\n###Response to evaluate: (quoted, not at line start?)"
    parsed = parse_prompt(_prompt(instruction, response, "The reference ###.", RUBRIC_BODY))
    assert parsed["response"] == response
    assert parsed["reference_answer"] == "The reference ###."
    assert parsed["rubric"] == RUBRIC


def test_header_line_inside_instruction_does_not_end_it_early():
    # A line in the instruction that looks like the rubric header must not be taken for it.
    instruction = "Write a doc with these headers:\n###Score Rubrics:\n###Feedback:\nthanks"
    parsed = parse_prompt(_prompt(instruction, "Done.", None, RUBRIC_BODY))
    assert parsed["response"] == "Done."
    assert parsed["rubric"] == RUBRIC
    assert parsed["reference_answer"] is None


def test_missing_sections_are_none():
    parsed = parse_prompt(_prompt("Do it.", "Did it.", None, None))
    assert parsed == {"instruction": "Do it.", "response": "Did it.", "context": None, "reference_answer": None,
                      "rubric": None}
    assert parse_prompt("nothing formatted here") == {
        "instruction": None, "response": None, "context": None, "reference_answer": None, "rubric": None}


def test_free_text_rubric_stays_text():
    parsed = parse_prompt(_prompt("Do it.", "Did it.", "Ref.", "Is it good? Score 1 to 5."))
    assert parsed["rubric"] == "Is it good? Score 1 to 5."
    # A malformed rubric (score lines out of order) is kept as text, not half-parsed.
    body = RUBRIC_BODY.replace("Score 2:", "Score 9:")
    assert parse_rubric(body) == body


def test_non_text_prompt_raises():
    with pytest.raises(ValueError, match="must be text"):
        parse_prompt(None)


@pytest.mark.parametrize("rubric", [None, RUBRIC, "A free-text rubric: be helpful."])
@pytest.mark.parametrize("reference", [None, "The ideal answer.\n### with hashes\nand lines"])
def test_render_parse_round_trip(rubric, reference):
    # A header-like line inside the response is told apart from the real section only when
    # that section follows (the last match wins); without a rubric it would be ambiguous.
    fake = "###Score Rubrics:\n" if rubric is not None else "### Score rubrics\n"
    record = Record(
        instruction="Explain ### headings in markdown.\n###Response to evaluate: is quoted here.",
        response=fake + "A line that looks like a header, then text ### more.\n###Feedback: not yet",
        rubric=rubric, reference_answer=reference,
    )
    parsed = parse_prompt(render(record))
    assert parsed == {"instruction": record.instruction, "response": record.response, "context": None,
                      "reference_answer": reference, "rubric": rubric}
