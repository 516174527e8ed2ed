"""A resumable JSON-lines engine: every line of an input file ends as exactly one outcome, an
output line or a reject, and a run cut short (even by ``kill -9``) continues where it stopped.
``phudge grade`` and ``phudge rank`` run on it; ``process_file`` is told how to read a line and
how to turn a batch of lines into output objects.

A bad line (malformed JSON, a missing or wrong field: ``parse`` raises ``RecordError``) does not
stop the run: it is reported with its line number and written to the rejects file (default: the
output path plus ``.rejects.jsonl``) as ``{"line", "field", "error", "text"}``. Blank lines are
skipped, and a UTF-8 byte-order mark before the first line is read past.

Resuming: both files are appended a batch at a time, complete lines only, flushed and fsynced,
a batch's rejects before its outputs. Run again after a kill: it cuts a trailing partial line
from either file, reads the rejected line numbers and counts the n output lines, skips the
rejected lines and the first n others, and processes the rest. Since rejects are written first,
a kill between the two writes can only leave rejects whose batch is processed again (its
rejected lines are then skipped), never outputs whose rejects are lost, so the count n always
names the right lines.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from datamodules.records import RecordError

REJECTS_SUFFIX = ".rejects.jsonl"


@dataclass
class Summary:
    graded: int = 0  # lines graded in this run
    rejected: int = 0  # lines rejected in this run
    already_done: int = 0  # lines with an outcome from an earlier run


def trim_partial_line(path: Path) -> int:
    """Cut whatever follows the last newline of ``path`` (a line a kill left half written) and
    return the number of complete lines; 0 when there is no file."""
    if not path.exists():
        return 0
    with path.open("r+b") as f:
        size = end = f.seek(0, os.SEEK_END)
        keep = 0
        while end > 0:  # search backwards, a block at a time: the file may be large
            start = max(0, end - (1 << 16))
            f.seek(start)
            newline = f.read(end - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        if keep != size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        f.seek(0)
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def rejected_lines(path: Path) -> set[int]:
    """The input line numbers in a rejects file (complete lines only: trim it first)."""
    if not path.exists():
        return set()
    lines = set()
    with path.open("rb") as f:
        for i, text in enumerate(f, 1):
            try:
                lines.add(int(json.loads(text)["line"]))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}, line {i}: not a rejects line ({e}); was it edited?") from None
    return lines


def read_line(text: bytes, source: str, line_no: int):
    """The JSON value of one input line; ``RecordError`` when it is not UTF-8 or not JSON."""
    try:
        return json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RecordError(source, line_no, None, f"is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise RecordError(source, line_no, None, f"malformed JSON: {e.msg} (column {e.colno})") from None


def reject_entry(line_no: int, text: bytes, error: RecordError) -> dict:
    where = f"line {line_no}" + (f", field '{error.field}'" if error.field else "")
    return {"line": line_no, "field": error.field, "error": f"{where}: {error.message}",
            "text": text.decode("utf-8", errors="replace").rstrip("\r\n")}


def _append(f, entries: list[dict]) -> None:
    # One write of whole lines, then to disk: a kill leaves complete lines and at most one partial.
    f.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode("utf-8"))
    f.flush()
    os.fsync(f.fileno())


def count_lines(path: Path) -> int:
    """Non-blank lines: the progress bar's total."""
    with path.open("rb") as f:
        return sum(1 for i, line in enumerate(f) if line.removeprefix(codecs.BOM_UTF8 if i == 0 else b"").strip())


def pending_lines(path: Path, rejected: set[int], graded: int,
                  advance: Callable[[int], None]) -> Iterator[tuple[int, bytes]]:
    """(line number, text) of the lines still without an outcome, in order (see the module doc)."""
    skip = graded
    with path.open("rb") as f:
        for line_no, text in enumerate(f, 1):
            if line_no == 1:  # a byte-order mark (Windows editors, spreadsheets) is not data
                text = text.removeprefix(codecs.BOM_UTF8)
            if not text.strip():
                continue
            if line_no in rejected:
                advance(1)
                continue
            if skip:
                skip -= 1
                advance(1)
                continue
            yield line_no, text
    if skip:
        raise RuntimeError(f"the output holds {graded} graded lines but {path} has only {graded - skip} lines "
                           "to grade: is it the output of another input? (--overwrite starts afresh)")


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def process_file(input_path: str | Path, output_path: str | Path, rejects_path: str | Path | None = None, *,
                 parse: Callable[[bytes, str, int], object], run: Callable[[list], list[dict]], batch_size: int = 8,
                 advance: Callable[[int], None] = lambda n: None,
                 report: Callable[[str], None] = lambda message: None) -> Summary:
    """The resumable loop of ``phudge grade`` and ``phudge rank``: every line of
    ``input_path`` ends as one output line or one reject, continuing a run that was cut short.

    ``parse(text, source, line_no)`` reads a line into an item or raises ``RecordError``;
    ``run(items)`` turns a batch of items into their output objects, in order. ``advance(n)``
    is told of every line that reaches an outcome (or had one), ``report(message)`` of every
    rejected line.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    rejects_path = Path(rejects_path) if rejects_path else Path(str(output_path) + REJECTS_SUFFIX)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    done_before = trim_partial_line(output_path)
    trim_partial_line(rejects_path)
    rejected = rejected_lines(rejects_path)
    summary = Summary()

    def skipped(n: int) -> None:
        summary.already_done += n
        advance(n)

    source = str(input_path)
    with output_path.open("ab") as out, contextlib.ExitStack() as stack:
        rejects = None  # opened at the first bad line: a clean input leaves no rejects file
        for batch in _batches(pending_lines(input_path, rejected, done_before, skipped), batch_size):
            good, bad = [], []
            for line_no, text in batch:
                try:
                    good.append(parse(text, source, line_no))
                except RecordError as e:
                    bad.append(reject_entry(line_no, text, e))
            if bad:  # first: see the module doc
                rejects = rejects or stack.enter_context(rejects_path.open("ab"))
                _append(rejects, bad)
                for entry in bad:
                    report(f"{source}, {entry['error']}")
            if good:
                _append(out, run(good))
            summary.graded += len(good)
            summary.rejected += len(bad)
            advance(len(batch))
    return summary
