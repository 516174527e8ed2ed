"""``autoj_single``: Auto-J's GPT-4 single-response ratings (1-10) with critiques.

Fields: ``usrmsg``, a grading prompt holding ``[Query]: ...`` and ``[Response]: ...`` between
``***`` lines; ``target_output``, GPT-4's critique ending ``Rating: [[x]]``; ``scenario``,
``source_dataset``. The rating x (1-10) maps linearly onto 1-5: (x - 1) * 4 / 9 + 1; the
critique, without its rating line, is kept as the feedback (the causal head's target).
"""

from __future__ import annotations

import re

from datamodules.formats.common import as_object, record_from, text_field
from datamodules.formats.registry import register_format
from datamodules.records import Record, RecordError

RATING = re.compile(r"\s*Rating:\s*\[\[\s*(\d+(?:\.\d+)?)\s*\]\]\W*$")
SECTIONS = re.compile(r"^\*\*\*\s*$", re.MULTILINE)


def to_five(rating: float) -> float:
    """A 1-10 rating on the 1-5 scale: (x - 1) * 4 / 9 + 1."""
    return (rating - 1) * 4 / 9 + 1


def split_usrmsg(text: str, source: str, row_no) -> tuple[str, str]:
    """The query and the response of Auto-J's grading prompt."""
    parts = [p.strip() for p in SECTIONS.split(text)]
    query = next((p for p in parts if p.startswith("[Query]:")), None)
    response = next((p for p in parts if p.startswith("[Response]:")), None)
    if query is None or response is None:
        missing = "[Query]:" if query is None else "[Response]:"
        raise RecordError(source, row_no, "usrmsg", f"holds no '***'-delimited section starting {missing}")
    return query.removeprefix("[Query]:").strip(), response.removeprefix("[Response]:").strip()


@register_format("autoj_single", kind="absolute", label="GPT-4 rating 1-10 mapped to 1-5",
                 detect=lambda row: "usrmsg" in row and "target_output" in row)
def autoj_single(row, source: str, row_no, require_score: bool = True) -> Record:
    """Auto-J single ratings: ``usrmsg`` (query and response), ``target_output`` (critique, ``Rating: [[x]]``)."""
    row = as_object(row, source, row_no)
    instruction, response = split_usrmsg(text_field(row, "usrmsg", source, row_no), source, row_no)
    critique = text_field(row, "target_output", source, row_no)
    match = RATING.search(critique)
    if match is None:
        raise RecordError(source, row_no, "target_output", "does not end with 'Rating: [[x]]'")
    rating = float(match.group(1))
    if not 1 <= rating <= 10:
        raise RecordError(source, row_no, "target_output", f"rating must be from 1 to 10, got {rating:g}")
    extra = {k: row[k] for k in ("scenario", "source_dataset") if k in row}
    raw = {"instruction": instruction, "response": response, "score": to_five(rating),
           "feedback": critique[: match.start()].strip() or None}
    return record_from(raw, {"instruction": "usrmsg", "response": "usrmsg", "feedback": "target_output"},
                       source, row_no, {**extra, "rating": rating}, require_score=require_score)
