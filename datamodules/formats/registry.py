"""One registry of data formats: ``@register_format("name", kind=..., detect=...)`` and ``get_format``.

A format turns one row of a file (a dict from JSON, JSON lines or parquet) into what the
project reads: a ``Record`` (a response with a score), a ``Pair`` (two responses and a
preference), a list of them, or None for a row that carries no label (it is counted as
dropped, not as an error). Training, ``phudge data`` and ``phudge evaluate`` all read through
it. A bad row raises ``RecordError`` naming the file, the row and the file's own field.

A format whose rows are single answers but whose labels compare answers to one question
(TruthfulQA's human labels) also gives ``combine(items) -> items``: it runs once over all the
rows' records and returns the pairs (``limit`` then counts what it returns).

    from datamodules.formats import register_format

    @register_format("my_pairs", kind="pairs", detect=lambda row: "winner" in row)
    def my_pairs(row, source, row_no, require_score=True):
        ...
        return Pair(a, b, preference, row_no)
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

KINDS = ("absolute", "pairs")


@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # "absolute": scored records; "pairs": Pair items
    parse: Callable  # (row, source, row_no, require_score=True) -> Record | Pair | list | None
    detect: Callable[[object], bool] | None
    label: str  # what the label is, in words
    doc: str
    combine: Callable[[list], list] | None = None  # the whole source's records -> its items (pairs)


FORMATS: dict[str, Format] = {}


def register_format(name: str, *, kind: str, label: str = "", detect: Callable[[object], bool] | None = None,
                    combine: Callable[[list], list] | None = None) -> Callable:
    """Register ``parse(row, source, row_no, require_score=True)`` as the format ``name``.

    ``detect(row)`` (optional) says whether a row looks like this format; ``format: auto``
    tries the detectors in registration order and falls back to ``records``. ``combine``
    (optional) turns the records of all rows into the source's items, e.g. pairs of answers to
    one question.
    """
    if kind not in KINDS:
        raise ValueError(f"register_format({name!r}): kind must be one of {KINDS}, got {kind!r}")

    def decorator(parse: Callable) -> Callable:
        if name in FORMATS and FORMATS[name].parse is not parse:
            raise ValueError(f"a format named {name!r} is already registered ({FORMATS[name].parse!r})")
        FORMATS[name] = Format(name, kind, parse, detect, label, inspect.getdoc(parse) or "", combine)
        return parse

    return decorator


def get_format(name: str) -> Format:
    """The format registered as ``name`` (or ``"package.module.name"``, imported first)."""
    if name not in FORMATS and "." in name:
        module, _, short = name.rpartition(".")
        importlib.import_module(module)
        name = short
    if name not in FORMATS:
        raise ValueError(f"format must be one of auto, {', '.join(sorted(FORMATS))}; got {name!r}")
    return FORMATS[name]


def detect_format(row: object) -> str:
    """The first registered format whose detector accepts ``row``; ``records`` otherwise."""
    if isinstance(row, dict):
        for fmt in FORMATS.values():
            if fmt.detect is not None and fmt.detect(row):
                return fmt.name
    return "records"


# How many rows ``auto`` looks at: one row missing a field would otherwise decide a whole file.
DETECT_ROWS = 10


def detect_rows(rows: list[tuple[object, object]]) -> tuple[str, str | None]:
    """The format of a source from its first ``(row number, row)`` pairs: the one most of its
    objects look like (``detect_format``; a tie goes to the format registered first, the fallback
    ``records`` last), and, when they disagree, one line saying which rows look like which
    format (None when they agree). Rows that are not objects have no say: they are refused
    whatever the format."""
    looks: dict[str, list] = {}
    for row_no, row in rows:
        if isinstance(row, dict):
            looks.setdefault(detect_format(row), []).append(row_no)
    if not looks:
        return "records", None
    order = list(FORMATS)
    name = max(looks, key=lambda n: (len(looks[n]), n != "records", -order.index(n)))
    if len(looks) == 1:
        return name, None
    ranked = sorted(looks, key=lambda n: n != name)
    said = "; ".join(f"{_row_numbers(looks[n])} {'look' if len(looks[n]) > 1 else 'looks'} like {n}" for n in ranked)
    return name, (f"the first {len(rows)} rows disagree on their format: {said}; read as {name} "
                  "(name the format to read them otherwise)")


def _row_numbers(numbers: list) -> str:
    """``row 3``, ``rows 2-10``, ``rows 1, 4-6``: consecutive runs as ranges."""
    runs: list[list] = []
    for n in numbers:
        if runs and isinstance(n, int) and isinstance(runs[-1][-1], int) and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    text = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)
    return f"row {text}" if len(numbers) == 1 else f"rows {text}"
