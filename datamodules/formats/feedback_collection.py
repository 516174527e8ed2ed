"""``feedback_collection``: Feedback Collection's ``orig_*`` columns."""

from __future__ import annotations

from datamodules.formats.registry import register_format
from datamodules.records import SCORE_KEYS, Record, validate_record


def _number(value):
    # Feedback Collection stores orig_score as text ("4") in some exports.
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        return float(value)
    return value


@register_format("feedback_collection", kind="absolute", label="orig_score",
                 detect=lambda row: "orig_instruction" in row)
def feedback_collection(row, source: str, row_no, require_score: bool = True) -> Record:
    """``orig_instruction``, ``orig_response``, ``orig_reference_answer``, ``orig_criteria``,
    ``orig_score1_description`` .. ``orig_score5_description``, ``orig_feedback``, ``orig_score``."""
    criteria = row.get("orig_criteria")
    descriptions = [row.get(f"orig_{key}") for key in SCORE_KEYS]
    rubric = None
    if criteria is not None or any(d is not None for d in descriptions):
        rubric = {"criteria": criteria, **dict(zip(SCORE_KEYS, descriptions))}
    raw = {
        "instruction": row.get("orig_instruction"),
        "response": row.get("orig_response"),
        "reference_answer": row.get("orig_reference_answer"),
        "rubric": rubric,
        "feedback": row.get("orig_feedback"),
        "score": _number(row.get("orig_score")),
    }
    return validate_record(raw, source=source, row=row_no, require_score=require_score)
