"""Read any supported source into records and pairs, through the format registry.

Sources: ``demo`` (the small set shipped in this package), a local ``.json`` / ``.jsonl`` /
``.jsonl.gz`` / ``.parquet`` file, or a hub dataset name such as
``prometheus-eval/Feedback-Collection``. Each row is read by a registered format
(``datamodules.formats``: records, feedback_collection, prometheus, prometheus_pairs,
alpaca_eval, autoj_single, hh_rlhf, ...), detected from the first rows (``detect_rows``: the format
most of them look like; a warning names the rows that look otherwise) or named with ``format``.
``load_items`` returns records and pairs; ``load_records`` turns each pair into its two records.

Local JSON is parsed line by line here rather than by Arrow: Arrow's type inference stops at
the first column of mixed types (the real benchmark files hold booleans among texts) without
naming the row, and a user must be told which row and which field is wrong.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Iterator

from datamodules.formats import DETECT_ROWS, detect_format, detect_rows, get_format  # noqa: F401 (detect_format: re-exported)
from datamodules.records import Pair, Record, RecordError

log = logging.getLogger(__name__)

DEMO = "demo"
FEEDBACK_COLLECTION = "prometheus-eval/Feedback-Collection"


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
    opener = gzip.open if path.suffix == ".gz" else open  # (x.jsonl.gz: gzip-compressed JSON lines)
    with opener(path, "rt", encoding="utf-8-sig") as f:  # a byte-order mark (Windows editors) is not data
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


def iter_source(spec: str, errors: list | None = None, split: str | None = None) -> tuple[str, Iterator[tuple[int, object]]]:
    """(display name, rows) for ``demo``, a local file, or a hub dataset name, read from its
    ``split`` (``train`` when None; ``errors``: see ``read_rows``)."""
    if spec == DEMO:
        return str(demo_path()), read_rows(demo_path(), errors)
    path = Path(spec).expanduser()
    if path.exists():
        return str(path), read_rows(path, errors)
    if path.suffix in (".json", ".jsonl", ".parquet", ".gz") or spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no data file at {spec}")
    import datasets

    try:  # a hub dataset, e.g. prometheus-eval/Feedback-Collection
        hub = datasets.load_dataset(spec, split=split or "train")
    except Exception as e:  # offline, or no such dataset
        raise FileNotFoundError(
            f"{spec!r} is neither a local file nor a dataset that could be loaded from the hub ({e.__class__.__name__}: {e}). "
            "Offline, download it elsewhere and pass the local json/jsonl/parquet path."
        ) from e
    return spec if split in (None, "train") else f"{spec} ({split})", enumerate(hub, 1)


def load_items(
    spec: str, *, format: str = "auto", skip_invalid: bool = False, require_score: bool = True,
    limit: int | None = None, errors: list | None = None, split: str | None = None, stats: dict | None = None,
) -> tuple[list[Record | Pair], list[RecordError], int]:
    """Items (records and pairs) read from ``spec`` through the format registry (``split``: a
    hub dataset's split, ``train`` when None; local files have one).

    Returns (items, errors, dropped): bad rows raise ``RecordError``, or with ``skip_invalid``
    are returned in ``errors``; ``dropped`` counts rows that carry no label (a format's None).
    ``stats``, given, receives the ``format`` used and the number of ``rows`` read.
    """
    if format != "auto":
        get_format(format)  # an unknown name fails before reading
    errors = [] if errors is None else errors
    known = len(errors)  # (the caller's, kept first)
    items: list[Record | Pair] = []
    dropped = 0
    source, rows = iter_source(spec, errors if skip_invalid else None, split)
    if format == "auto":
        first = list(itertools.islice(rows, DETECT_ROWS))
        name, disagreement = detect_rows(first)
        if disagreement:
            log.warning("%s: %s", source, disagreement)
        fmt, rows = get_format(name), itertools.chain(first, rows)
    else:
        fmt = get_format(format)
    read = 0
    for row_no, row in rows:
        read += 1
        try:
            parsed = fmt.parse(row, source, row_no, require_score=require_score and fmt.kind == "absolute")
        except RecordError as e:
            if not skip_invalid:
                raise
            errors.append(e)
            continue
        if parsed is None:
            dropped += 1
            continue
        items.extend(parsed if isinstance(parsed, list) else [parsed])
        if limit is not None and len(items) >= limit and fmt.combine is None:
            break
    # Malformed lines among the first rows were met while detecting: back in file order.
    errors[known:] = sorted(errors[known:], key=lambda e: e.row if isinstance(e.row, int) else float("inf"))
    if fmt.combine is not None:  # rows are answers; the items pair them
        items = fmt.combine(items)[:limit]
    if stats is not None:
        stats.update(format=fmt.name, rows=read)
    if errors:
        log.warning("%s: skipped %d invalid rows (first: %s)", source, len(errors), errors[0])
    return items, errors, dropped


def load_records(
    spec: str, *, format: str = "auto", skip_invalid: bool = False, require_score: bool = True, limit: int | None = None
) -> tuple[list[Record], list[RecordError]]:
    """Validated records from ``spec``; invalid rows raise, or with ``skip_invalid`` are returned apart.

    A pair becomes its two records, unscored, in turn (``extra`` holds the ``pair``'s row).
    """
    items, errors, _ = load_items(spec, format=format, skip_invalid=skip_invalid, require_score=require_score)
    records: list[Record] = []
    for item in items:
        records.extend((item.a, item.b) if isinstance(item, Pair) else (item,))
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise no_valid_rows(spec)
    return records, errors


def no_valid_rows(spec: str) -> RecordError:
    """The error for a source that gave nothing to grade or train on."""
    return RecordError(iter_source(spec)[0] if spec == DEMO else spec, "-", None, "holds no valid rows")
