"""The PHUDGE authors' prompt (layout ``phudge``): what their released judges read.

Their training script builds it from a Feedback Collection prompt: Phi-3's chat markup written
as text, a system turn holding one of four task descriptions (chosen by which of the rubric and
the reference answer are given), and a user turn holding the instruction and response sections,
then the reference answer and the rubric where given, each section stripped of surrounding
whitespace and the sections joined by blank lines:

    <|system|>\\n{task}<|end|>\\n\\n<|user|>\\n{sections}<|end|>\\n\\n<|assistant|>\\n

The text is tokenised as it stands, with the tokenizer's own special tokens (Phi-3: ``<s>``
first), never through a chat template: the markup is already in it. Retrieved context, which
their prompt has no place for, goes after the response under ``###Context:`` (this project's
section). The task descriptions name scores 1 to 5 whatever the judge's range.
"""

from __future__ import annotations

from datamodules.prometheus import CONTEXT, INSTRUCTION, REFERENCE, RESPONSE, RUBRIC
from datamodules.records import Record, rubric_text

_OUTPUT = ('3. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] '
           '(an integer number between 1 and 5)"\n4. Please do not generate any other opening, closing, and explanations.')
_GIVEN = "###Task Description:\nAn instruction (might include an Input inside it)"
_RUBRIC = "a score rubric representing a evaluation criteria"
_REFERENCE = "a reference answer that gets a score of 5"

# The authors' four task descriptions (their spelling kept: the judge was trained on it), keyed
# by (reference answer given, rubric given).
TASKS = {
    (True, True): (
        f"{_GIVEN}, a response to evaluate, {_REFERENCE}, and {_RUBRIC} are given.\n"
        "1. Write a detailed feedback that assess the quality of the response strictly based on the given score "
        "rubric, not evaluating in general. You can also refer to the reference answer (which has a perfect score "
        "of 5) to get the idea for scoring.\n"
        "2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the "
        f"score rubric.\n{_OUTPUT}"),
    (False, True): (
        f"{_GIVEN}, a response to evaluate and {_RUBRIC} are given.\n"
        "1. Write a detailed feedback that assess the quality of the response strictly based on the given score "
        "rubric, not evaluating in general.\n"
        "2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the "
        f"score rubric.\n{_OUTPUT}"),
    (True, False): (
        f"{_GIVEN}, a response to evaluate and {_REFERENCE} are given.\n"
        "1. Write a detailed feedback that assess the quality of the response.\n"
        "2. After writing a feedback, write a score that is an integer between 1 and 5. You can refer to the "
        f"reference answer (which has a perfect score of 5) to get the idea for scoring.\n{_OUTPUT}"),
    (False, False): (
        f"{_GIVEN} and a response to evaluate are given.\n"
        "1. Write a detailed feedback that assess the quality of the response strictly.\n"
        f"2. After writing a feedback, write a score that is an integer between 1 and 5.\n{_OUTPUT}"),
}


def render(record: Record) -> str:
    """The authors' prompt for ``record`` (their rendering of a Feedback Collection row, byte for
    byte, wherever the fields do not themselves contain the section headers)."""
    rubric = rubric_text(record.rubric)
    user = f"{INSTRUCTION}\n{record.instruction}\n\n{RESPONSE}\n{record.response}"
    if record.context is not None:
        user += f"\n\n{CONTEXT}\n{record.context}"
    sections = [user.strip()]
    if record.reference_answer is not None:
        sections.append(f"{REFERENCE}\n{record.reference_answer}".strip())
    if rubric is not None:
        sections.append(f"{RUBRIC}\n{rubric}".strip())
    task = TASKS[(record.reference_answer is not None, rubric is not None)]
    return f"<|system|>\n{task}<|end|>\n\n<|user|>\n" + "\n\n".join(sections) + "<|end|>\n\n<|assistant|>\n"
