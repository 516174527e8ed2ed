"""One registry of data formats: ``@register_format("name", kind=..., detect=...)`` and ``get_format``.

A format turns one row of a file (a dict from JSON, JSON lines or parquet) into what the
project reads: a ``Record`` (a response with a score), a ``Pair`` (two responses and a
preference), a list of them, or None for a row that carries no label (it is counted as
dropped, not as an error). Training, ``phudge data`` and ``phudge evaluate`` all read through
it. A bad row raises ``RecordError`` naming the file, the row and the file's own field.

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


FORMATS: dict[str, Format] = {}


def register_format(name: str, *, kind: str, label: str = "", detect: Callable[[object], bool] | None = None) -> Callable:
    """Register ``parse(row, source, row_no, require_score=True)`` as the format ``name``.

    ``detect(row)`` (optional) says whether a row looks like this format; ``format: auto``
    tries the detectors in registration order and falls back to ``records``.
    """
    if kind not in KINDS:
        raise ValueError(f"register_format({name!r}): kind must be one of {KINDS}, got {kind!r}")

    def decorator(parse: Callable) -> Callable:
        if name in FORMATS and FORMATS[name].parse is not parse:
            raise ValueError(f"a format named {name!r} is already registered ({FORMATS[name].parse!r})")
        FORMATS[name] = Format(name, kind, parse, detect, label, inspect.getdoc(parse) or "")
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
