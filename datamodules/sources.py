"""Read any supported source into grading records.

Sources: ``demo`` (the small set shipped in this package), a local ``.json`` / ``.jsonl`` /
``.parquet`` file, or a hub dataset name such as ``prometheus-eval/Feedback-Collection``.
Row formats, detected from the first row (or named with ``format``):

- ``records``: this project's schema (see ``datamodules.records``);
- ``feedback_collection``: ``orig_instruction``, ``orig_response``, ``orig_reference_answer``,
  ``orig_criteria``, ``orig_score1_description`` .. ``orig_score5_description``,
  ``orig_feedback``, ``orig_score``;
- ``prometheus``: a formatted Prometheus prompt in ``instruction`` (the benchmark files),
  parsed back into fields; the score is the mean of ``gpt4_score`` (or ``score``);
- ``prometheus_pairs``: two formatted prompts, ``chosen_instruction`` and
  ``rejected_instruction`` (HHH, MT-Bench human, Preference Collection): two unscored records
  per row, ``extra`` holding ``pair`` (the row) and ``chosen`` (True or False).

Local JSON is parsed line by line here rather than by Arrow: Arrow's type inference stops at
the first column of mixed types (the real benchmark files hold booleans among texts) without
naming the row, and a user must be told which row and which field is wrong.
"""

from __future__ import annotations

import json
import logging
import statistics
from importlib import resources
from pathlib import Path
from typing import Iterator

from datamodules.prometheus import parse_prompt
from datamodules.records import SCORE_KEYS, Record, RecordError, found, validate_record

log = logging.getLogger(__name__)

DEMO = "demo"
FEEDBACK_COLLECTION = "prometheus-eval/Feedback-Collection"
FORMATS = ("auto", "records", "feedback_collection", "prometheus", "prometheus_pairs")


def demo_path() -> Path:
    return Path(str(resources.files("datamodules") / "data" / "demo.jsonl"))


def read_rows(path: str | Path, errors: list | None = None) -> Iterator[tuple[int, object]]:
    """(row number, parsed value) for a JSON array, JSON lines or parquet file.

    Row numbers are 1-based: the line for JSON lines, the position for an array. A malformed
    JSON line raises ``RecordError``, or, given an ``errors`` list, is added to it and skipped.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        import datasets

        for i, row in enumerate(datasets.load_dataset("parquet", data_files=str(path), split="train"), 1):
            yield i, row
        return
    with path.open(encoding="utf-8-sig") as f:  # a byte-order mark (Windows editors) is not data
        first = f.read(1)
        while first and first.isspace():
            first = f.read(1)
        f.seek(0)
        if first == "[":
            try:
                rows = json.load(f)
            except json.JSONDecodeError as e:
                raise RecordError(str(path), f"? (line {e.lineno})", None, f"malformed JSON: {e.msg}") from None
            yield from enumerate(rows, 1)
            return
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as e:
                error = RecordError(str(path), line_no, None, f"malformed JSON: {e.msg} (column {e.colno})")
                if errors is None:
                    raise error from None
                errors.append(error)


def detect_format(row: object) -> str:
    if isinstance(row, dict):
        if "orig_instruction" in row:
            return "feedback_collection"
        if "chosen_instruction" in row and "rejected_instruction" in row:
            return "prometheus_pairs"
        text = row.get("instruction")
        if isinstance(text, str) and text.lstrip().startswith("###Task Description:"):
            return "prometheus"
    return "records"


def _number(value):
    # Feedback Collection stores orig_score as text ("4") in some exports.
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        return float(value)
    return value


def from_feedback_collection(row: dict, *, source: str, row_no, require_score: bool = True) -> Record:
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


def prometheus_score(row: dict, source: str, row_no):
    scores = row.get("gpt4_score", row.get("score"))
    if isinstance(scores, list):
        if not scores or any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in scores):
            raise RecordError(source, row_no, "gpt4_score", f"must be a non-empty list of numbers, got {scores!r:.60}")
        return statistics.fmean(scores)
    return scores


def from_prometheus(row: dict, *, source: str, row_no, require_score: bool = True, field: str = "instruction") -> Record:
    text = row.get(field)
    if not isinstance(text, str):
        raise RecordError(source, row_no, field, "is missing" if field not in row
                          else f"must be a formatted Prometheus prompt, got {found(text)}")
    raw = {k: v for k, v in parse_prompt(text).items() if v is not None}  # an absent section is missing, not null
    raw["score"] = prometheus_score(row, source, row_no)
    feedback = row.get("gpt4_feedback")
    raw["feedback"] = feedback[0] if isinstance(feedback, list) and feedback and isinstance(feedback[0], str) else None
    record = validate_record(raw, source=source, row=row_no, require_score=require_score)
    record.extra = {k: v for k, v in row.items() if k not in (field, "gpt4_score", "gpt4_feedback")}
    return record


def to_records(row, fmt: str, *, source: str, row_no, require_score: bool = True) -> list[Record]:
    """The records of one row: one, or two for a pair."""
    if fmt == "feedback_collection":
        return [from_feedback_collection(row, source=source, row_no=row_no, require_score=require_score)]
    if fmt in ("prometheus", "prometheus_pairs") and not isinstance(row, dict):
        raise RecordError(source, row_no, None, f"must be a JSON object, got {type(row).__name__}")
    if fmt == "prometheus":
        return [from_prometheus(row, source=source, row_no=row_no, require_score=require_score)]
    if fmt == "prometheus_pairs":
        pair = []
        for field, chosen in (("chosen_instruction", True), ("rejected_instruction", False)):
            record = from_prometheus(row, source=source, row_no=row_no, require_score=False, field=field)
            record.score = None
            record.extra = {**{k: v for k, v in record.extra.items() if k != "rejected_instruction" and k != "chosen_instruction"},
                            "pair": row_no, "chosen": chosen}
            pair.append(record)
        return pair
    return [validate_record(row, source=source, row=row_no, require_score=require_score)]


def iter_source(spec: str, errors: list | None = None) -> tuple[str, Iterator[tuple[int, object]]]:
    """(display name, rows) for ``demo``, a local file, or a hub dataset name (``errors``: see ``read_rows``)."""
    if spec == DEMO:
        return str(demo_path()), read_rows(demo_path(), errors)
    path = Path(spec).expanduser()
    if path.exists():
        return str(path), read_rows(path, errors)
    if path.suffix in (".json", ".jsonl", ".parquet") or spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no data file at {spec}")
    import datasets

    try:  # a hub dataset, e.g. prometheus-eval/Feedback-Collection
        hub = datasets.load_dataset(spec, split="train")
    except Exception as e:  # offline, or no such dataset
        raise FileNotFoundError(
            f"{spec!r} is neither a local file nor a dataset that could be loaded from the hub ({e.__class__.__name__}: {e}). "
            "Offline, download it elsewhere and pass the local json/jsonl/parquet path."
        ) from e
    return spec, enumerate(hub, 1)


def load_records(
    spec: str, *, format: str = "auto", skip_invalid: bool = False, require_score: bool = True, limit: int | None = None
) -> tuple[list[Record], list[RecordError]]:
    """Validated records from ``spec``; invalid rows raise, or with ``skip_invalid`` are returned apart."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    records, errors = [], []
    # With skip_invalid, a malformed JSON line is skipped and counted like any invalid row.
    source, rows = iter_source(spec, errors if skip_invalid else None)
    fmt = None if format == "auto" else format
    for row_no, row in rows:
        fmt = fmt or detect_format(row)
        if fmt == "prometheus_pairs":
            require_score = False  # pairs carry a preference, not a score
        try:
            records.extend(to_records(row, fmt, source=source, row_no=row_no, require_score=require_score))
        except RecordError as e:
            if not skip_invalid:
                raise
            errors.append(e)
        if limit is not None and len(records) >= limit:
            break
    if errors:
        log.warning("%s: skipped %d invalid rows (first: %s)", source, len(errors), errors[0])
    if not records:
        raise RecordError(source, "-", None, "holds no valid rows")
    return records, errors
