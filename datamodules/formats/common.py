"""Helpers the format modules share: objects, numbers, and errors named by the file's fields."""

from __future__ import annotations

import statistics
from typing import Sequence

from datamodules.records import Record, RecordError, validate_record


def as_object(row, source: str, row_no) -> dict:
    if not isinstance(row, dict):
        raise RecordError(source, row_no, None, f"must be a JSON object, got {type(row).__name__}")
    return row


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_score(row: dict, fields: Sequence[str], source: str, row_no) -> float:
    """The first of ``fields`` present: a number, or the mean of a list of numbers."""
    name = next((f for f in fields if row.get(f) is not None), None)
    if name is None:
        others = f" (as are {', '.join(fields[1:])})" if fields[1:] else ""
        raise RecordError(source, row_no, fields[0], "is missing" + others)
    values = row[name] if isinstance(row[name], list) else [row[name]]
    if not values or not all(is_number(v) for v in values):
        raise RecordError(source, row_no, name, f"must be a number or a non-empty list of numbers, got {row[name]!r:.60}")
    return statistics.fmean(values)


def renamed(error: RecordError, names: dict) -> RecordError:
    """The error with the schema's field named as the file names it (``response`` -> ``output_1``)."""
    field = error.field
    return RecordError(error.source, error.row, names.get(field, field), error.message)


def record_from(raw: dict, names: dict, source: str, row_no, extra: dict | None = None,
                require_score: bool = False) -> Record:
    """``validate_record`` on ``raw``, errors naming the file's fields via ``names``."""
    try:
        record = validate_record(raw, source=source, row=row_no, require_score=require_score)
    except RecordError as e:
        raise renamed(e, names) from None
    record.extra = dict(extra or {})
    return record


def text_field(row: dict, name: str, source: str, row_no) -> str:
    """``row[name]`` as non-blank text, or an error naming the field."""
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError(source, row_no, name, "is missing or empty" if not value else "is blank")
    if not isinstance(value, str):
        raise RecordError(source, row_no, name, f"must be text, got {type(value).__name__} ({value!r:.40})")
    return value
