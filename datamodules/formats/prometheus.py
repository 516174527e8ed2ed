"""Formatted Prometheus prompts, parsed back into fields (the shared benchmark files).

- ``prometheus``: the prompt in ``instruction``, the score the mean of ``gpt4_score`` (a list of
  GPT-4 scores; or ``score``): Vicuna, MT-Bench, Feedback Collection's test sets;
- ``flask``: the same with ``human_score`` where a row has no ``gpt4_score``; ``flask_human``:
  against ``human_score``;
- ``prometheus_pairs``: two prompts that differ in the response, ``chosen_instruction`` (better)
  and ``rejected_instruction``; ``tie`` 1 marks a tie (HHH, MT-Bench human, Preference
  Collection).
"""

from __future__ import annotations

from typing import Sequence

from datamodules.formats.common import as_object, mean_score, renamed
from datamodules.formats.registry import register_format
from datamodules.prometheus import INSTRUCTION, RESPONSE, TASK, parse_prompt
from datamodules.records import Pair, Record, RecordError, found, validate_record


def from_prompt(row, source: str, row_no, score_fields: Sequence[str] = ("gpt4_score", "score"), *,
                require_score: bool = True, field: str = "instruction") -> Record:
    """The record in the prompt ``row[field]``, scored by the mean of the first of ``score_fields``."""
    row = as_object(row, source, row_no)
    text = row.get(field)
    if not isinstance(text, str):
        raise RecordError(source, row_no, field, "is missing" if field not in row
                          else f"must be a formatted Prometheus prompt, got {found(text)}")
    raw = {k: v for k, v in parse_prompt(text).items() if v is not None}  # an absent section is missing, not null
    if require_score or any(row.get(f) is not None for f in score_fields):
        raw["score"] = mean_score(row, score_fields, source, row_no)
    feedback = row.get("gpt4_feedback")
    raw["feedback"] = feedback[0] if isinstance(feedback, list) and feedback and isinstance(feedback[0], str) else None
    try:
        record = validate_record(raw, source=source, row=row_no, require_score=require_score)
    except RecordError as e:
        # The file's names: a section of the prompt in ``field``.
        raise renamed(e, {"score": score_fields[0], "instruction": f"{field} (its {INSTRUCTION} section)",
                          "response": f"{field} (its {RESPONSE} section)"}) from None
    record.extra = {k: v for k, v in row.items() if k not in (field, "gpt4_feedback", *score_fields)}
    return record


def _is_prompt(row) -> bool:
    text = row.get("instruction")
    return isinstance(text, str) and text.lstrip().startswith(TASK)


@register_format("prometheus", kind="absolute", label="mean of gpt4_score", detect=_is_prompt)
def prometheus(row, source: str, row_no, require_score: bool = True) -> Record:
    """A formatted prompt in ``instruction``; score: the mean of ``gpt4_score`` (or ``score``)."""
    return from_prompt(row, source, row_no, ("gpt4_score", "score"), require_score=require_score)


@register_format("flask", kind="absolute", label="mean of gpt4_score (human_score where a row has none)")
def flask(row, source: str, row_no, require_score: bool = True) -> Record:
    """A formatted prompt; score: the mean of ``gpt4_score``, or of ``human_score`` where absent."""
    return from_prompt(row, source, row_no, ("gpt4_score", "human_score"), require_score=require_score)


@register_format("flask_human", kind="absolute", label="mean of human_score")
def flask_human(row, source: str, row_no, require_score: bool = True) -> Record:
    """A formatted prompt; score: the mean of ``human_score``."""
    return from_prompt(row, source, row_no, ("human_score",), require_score=require_score)


@register_format("prometheus_pairs", kind="pairs", label="chosen_instruction over rejected_instruction (tie: 1 marks a tie)",
                 detect=lambda row: "chosen_instruction" in row and "rejected_instruction" in row)
def prometheus_pairs(row, source: str, row_no, require_score: bool = True) -> Pair:
    """Two prompts, ``chosen_instruction`` (a) over ``rejected_instruction`` (b); ``tie`` 1: a tie."""
    tie = as_object(row, source, row_no).get("tie")
    if tie not in (None, 0, 1):  # (True and False compare equal to 1 and 0)
        raise RecordError(source, row_no, "tie", f"must be 0 or 1, got {tie!r:.40}")
    pair = []
    for field, chosen in (("chosen_instruction", True), ("rejected_instruction", False)):
        record = from_prompt(row, source, row_no, require_score=False, field=field)
        record.score = None
        record.extra = {**{k: v for k, v in record.extra.items() if k not in ("chosen_instruction", "rejected_instruction")},
                        "pair": row_no, "chosen": chosen}
        pair.append(record)
    return Pair(pair[0], pair[1], 0.5 if tie else 1.0, row_no)
