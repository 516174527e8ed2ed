"""The ``phudge`` layout renders the PHUDGE authors' prompt byte for byte: their Phi-3 markup and
one of four task descriptions, for every combination of rubric and reference answer."""

from __future__ import annotations

import pytest

from datamodules.phudge_prompt import render
from datamodules.prompt import PromptEncoder
from datamodules.records import Record

RUBRIC = {"criteria": "Is the answer correct?", **{f"score{i}_description": f"Level {i}." for i in range(1, 6)}}
FORMAT_LINES = ('3. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] '
                '(an integer number between 1 and 5)"\n'
                "4. Please do not generate any other opening, closing, and explanations.")

# Written out from the authors' create_prometheus_prompt, one per combination.
EXPECTED = {
    ("rubric", "reference"): (
        "<|system|>\n###Task Description:\n"
        "An instruction (might include an Input inside it), a response to evaluate, a reference answer that gets a "
        "score of 5, and a score rubric representing a evaluation criteria are given.\n"
        "1. Write a detailed feedback that assess the quality of the response strictly based on the given score "
        "rubric, not evaluating in general. You can also refer to the reference answer (which has a perfect score of 5) "
        "to get the idea for scoring.\n"
        "2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.\n"
        + FORMAT_LINES + "<|end|>\n\n<|user|>\n"
        "###The instruction to evaluate:\nWhat is 2 + 2?\n\n###Response to evaluate:\nIt is 4.\n\n"
        "###Reference Answer (Score 5):\n2 + 2 = 4.\n\n"
        "###Score Rubrics:\n[Is the answer correct?]\nScore 1: Level 1.\nScore 2: Level 2.\nScore 3: Level 3.\n"
        "Score 4: Level 4.\nScore 5: Level 5.<|end|>\n\n<|assistant|>\n"),
    ("rubric",): (
        "<|system|>\n###Task Description:\n"
        "An instruction (might include an Input inside it), a response to evaluate and a score rubric representing a "
        "evaluation criteria are given.\n"
        "1. Write a detailed feedback that assess the quality of the response strictly based on the given score "
        "rubric, not evaluating in general.\n"
        "2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.\n"
        + FORMAT_LINES + "<|end|>\n\n<|user|>\n"
        "###The instruction to evaluate:\nWhat is 2 + 2?\n\n###Response to evaluate:\nIt is 4.\n\n"
        "###Score Rubrics:\n[Is the answer correct?]\nScore 1: Level 1.\nScore 2: Level 2.\nScore 3: Level 3.\n"
        "Score 4: Level 4.\nScore 5: Level 5.<|end|>\n\n<|assistant|>\n"),
    ("reference",): (
        "<|system|>\n###Task Description:\n"
        "An instruction (might include an Input inside it), a response to evaluate and a reference answer that gets a "
        "score of 5 are given.\n"
        "1. Write a detailed feedback that assess the quality of the response.\n"
        "2. After writing a feedback, write a score that is an integer between 1 and 5. You can refer to the reference "
        "answer (which has a perfect score of 5) to get the idea for scoring.\n"
        + FORMAT_LINES + "<|end|>\n\n<|user|>\n"
        "###The instruction to evaluate:\nWhat is 2 + 2?\n\n###Response to evaluate:\nIt is 4.\n\n"
        "###Reference Answer (Score 5):\n2 + 2 = 4.<|end|>\n\n<|assistant|>\n"),
    (): (
        "<|system|>\n###Task Description:\n"
        "An instruction (might include an Input inside it) and a response to evaluate are given.\n"
        "1. Write a detailed feedback that assess the quality of the response strictly.\n"
        "2. After writing a feedback, write a score that is an integer between 1 and 5.\n"
        + FORMAT_LINES + "<|end|>\n\n<|user|>\n"
        "###The instruction to evaluate:\nWhat is 2 + 2?\n\n###Response to evaluate:\nIt is 4.<|end|>\n\n<|assistant|>\n"),
}


def record(given, response="It is 4.", rubric=RUBRIC) -> Record:
    return Record("What is 2 + 2?", response, rubric=rubric if "rubric" in given else None,
                  reference_answer="2 + 2 = 4." if "reference" in given else None)


@pytest.mark.parametrize("given", EXPECTED, ids=lambda g: "+".join(g) or "neither")
def test_every_rubric_reference_combination_is_theirs(given):
    assert render(record(given)) == EXPECTED[given]


@pytest.mark.parametrize("given", EXPECTED, ids=lambda g: "+".join(g) or "neither")
def test_trailing_whitespace_of_the_last_field_of_a_section_is_stripped_as_theirs(given):
    # Their sections are cut from the Feedback Collection prompt and stripped: the response's
    # trailing newlines go, and the reference answer's where it ends its section.
    padded = record(given, response="It is 4.\n\n  ")
    if "reference" in given:
        padded.reference_answer = "2 + 2 = 4.\n"
    assert render(padded) == EXPECTED[given]


def test_a_text_rubric_is_written_as_given():
    text = render(record(("rubric",), rubric="Is it right?"))
    assert text.endswith("###Score Rubrics:\nIs it right?<|end|>\n\n<|assistant|>\n")


def test_the_encoder_tokenises_the_markup_as_text_with_special_tokens():
    from tests.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer(chat=True)  # a chat template the layout must not use
    encoder = PromptEncoder(tokenizer, layout="phudge")
    given = record(("rubric", "reference"))
    assert encoder.text(given) == EXPECTED[("rubric", "reference")]
    assert encoder.encode(given).input_ids == tokenizer(EXPECTED[("rubric", "reference")])["input_ids"]
    assert encoder.encode(given).input_ids[0] == tokenizer.bos_token_id


@pytest.mark.parametrize("rubric", [None, "a plain rubric", RUBRIC, "  "])
@pytest.mark.parametrize("reference", [None, "ref\nanswer \n", ""])
@pytest.mark.parametrize("context", [None, "one passage", ["p1", "p2"]])
def test_the_exported_template_renders_the_layout(rubric, reference, context):
    from datamodules.records import validate_record
    from phudge_lightning.formats.prompt_template import render_template

    raw = {"instruction": "Q? {{ not jinja }}\n", "response": " A %} B \n\n", "rubric": rubric,
           "reference_answer": reference, "context": context}
    assert render_template(layout="phudge", **raw) == render(validate_record(raw, require_score=False))
