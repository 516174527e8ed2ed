"""``preference_collection``: Prometheus' Preference Collection (``prometheus-eval/Preference-Collection``).

Fields: ``orig_instruction``, ``orig_response_A``, ``orig_response_B``, ``orig_reference_answer``,
``orig_criteria`` and ``orig_score1_description`` .. ``orig_score5_description`` (the rubric),
``orig_preference`` ("A" or "B"), ``orig_score_A``, ``orig_score_B`` (kept), ``orig_feedback_A``
and ``orig_feedback_B``. Both responses share the instruction, rubric and reference answer.
Where ``orig_preference`` is absent the larger of ``orig_score_A`` and ``orig_score_B`` wins.
"""

from __future__ import annotations

from datamodules.formats.common import as_object
from datamodules.formats.pair_sets import two_responses
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, SCORE_KEYS, Pair, RecordError, found


def _number(value):
    try:
        return float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except ValueError:
        return None


def rubric_of(row: dict):
    """The rubric: criteria and five descriptions when all are given, the criteria alone otherwise."""
    descriptions = [row.get(f"orig_{key}") for key in SCORE_KEYS]
    criteria = row.get("orig_criteria")
    if all(d is not None for d in descriptions):
        return {"criteria": criteria if criteria is not None else MISSING, **dict(zip(SCORE_KEYS, descriptions))}
    return criteria


def label_of(row: dict, source: str, row_no) -> str:
    preference = row.get("orig_preference")
    if preference is not None:
        if preference not in ("A", "B"):
            raise RecordError(source, row_no, "orig_preference", f"must be 'A' or 'B', got {found(preference)}")
        return preference
    a, b = _number(row.get("orig_score_A")), _number(row.get("orig_score_B"))
    if a is None or b is None:
        raise RecordError(source, row_no, "orig_preference", "is missing (as are numeric orig_score_A and orig_score_B)")
    return "A" if a > b else "B" if b > a else "tie"


@register_format("preference_collection", kind="pairs", label="orig_preference (A or B)",
                 detect=lambda row: "orig_response_A" in row and "orig_response_B" in row)
def preference_collection(row, source: str, row_no, require_score: bool = True) -> Pair:
    """Preference Collection's ``orig_*`` columns: two responses, a rubric, a reference, the preference."""
    row = as_object(row, source, row_no)
    label = label_of(row, source, row_no)
    shared = {"instruction": row.get("orig_instruction", MISSING), "reference_answer": row.get("orig_reference_answer"),
              "rubric": rubric_of(row)}
    extra = {k: row[k] for k in ("orig_score_A", "orig_score_B") if row.get(k) is not None}
    pair = two_responses(shared, row.get("orig_response_A", MISSING), row.get("orig_response_B", MISSING),
                         ("orig_response_A", "orig_response_B"), label, source, row_no, extra,
                         {"instruction": "orig_instruction", "reference_answer": "orig_reference_answer",
                          "rubric": "orig_criteria", "rubric.criteria": "orig_criteria",
                          **{f"rubric.{k}": f"orig_{k}" for k in SCORE_KEYS}})
    for record, name in ((pair.a, "orig_feedback_A"), (pair.b, "orig_feedback_B")):
        if isinstance(row.get(name), str):
            record.feedback = row[name]
    return pair
