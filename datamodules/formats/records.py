"""``records``: this project's own schema (see ``datamodules.records``); the fallback of ``auto``."""

from __future__ import annotations

from datamodules.formats.registry import register_format
from datamodules.records import Record, validate_record


@register_format("records", kind="absolute", label="score")
def records(row, source: str, row_no, require_score: bool = True) -> Record:
    """One row of the project's schema: ``instruction``, ``response``, ``score`` and the optional fields."""
    return validate_record(row, source=source, row=row_no, require_score=require_score)
