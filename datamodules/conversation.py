"""The conversation layout: a record as the chat a reward model reads (TRL's RewardTrainer and
the like), an alternative to the Prometheus grading prompt (``datamodules.prometheus``).

The user's turn holds the instruction, then any retrieved context, reference answer and rubric
under Prometheus' own headers (so the judge has read them before the answer); the assistant's
turn is the response. Nothing asks for a score: the judge's head reads the states at the end of
the answer. Why a second layout: the Prometheus task description alone is about 120 tokens, as
long as a typical answer, and a small backbone's budget is better spent on the answer; an
instruction-tuned decoder also reads its own chat format best. The causal head generates after
the Prometheus prompt, so it keeps that one.
"""

from __future__ import annotations

from datamodules.prometheus import CONTEXT, RUBRIC
from datamodules.records import Record, rubric_text

REFERENCE = "###Reference Answer:"
RESPONSE = "###Response:"


def user_turn(record: Record) -> str:
    """The instruction, then the sections given (context, reference answer, rubric)."""
    parts = [(None, record.instruction), (CONTEXT, record.context), (REFERENCE, record.reference_answer),
             (RUBRIC, rubric_text(record.rubric))]
    return "\n\n".join(text if header is None else f"{header}\n{text}" for header, text in parts if text is not None)


def messages(record: Record) -> list[dict]:
    return [{"role": "user", "content": user_turn(record)}, {"role": "assistant", "content": record.response}]


def render_plain(record: Record) -> str:
    """For a tokenizer without a chat template (an encoder): the user's turn, then the response."""
    return f"{user_turn(record)}\n\n{RESPONSE}\n{record.response}"
