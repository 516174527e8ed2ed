"""``halueval``: HaluEval's general queries, ChatGPT's answers marked by people as hallucinated or not.

Fields: ``query``, ``response``, ``hallucination`` (boolean). The rows are single answers to
different queries, so they are read as absolute records: a clean answer scores 4, a
hallucinated one 2. The label says only whether the answer holds unverifiable or false
content, not how good it is otherwise, so the two scores sit in the upper and lower half of
the 1-5 scale rather than at its ends.
"""

from __future__ import annotations

from datamodules.formats.common import as_object, record_from
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, Record, RecordError

CLEAN, HALLUCINATED = 4.0, 2.0


@register_format("halueval", kind="absolute", label="hallucination: false scores 4, true scores 2",
                 detect=lambda row: "hallucination" in row and "query" in row)
def halueval(row, source: str, row_no, require_score: bool = True) -> Record:
    """HaluEval general: ``query``, ``response``, ``hallucination`` (true / false)."""
    row = as_object(row, source, row_no)
    flag = row.get("hallucination")
    if not isinstance(flag, bool):
        raise RecordError(source, row_no, "hallucination", f"must be true or false, got {flag!r:.40}")
    raw = {"instruction": row.get("query", MISSING), "response": row.get("response", MISSING), "score": HALLUCINATED if flag else CLEAN}
    return record_from(raw, {"instruction": "query"}, source, row_no, {"hallucination": flag})
