"""``phudge grade``: grade a JSON-lines file with a judge, in input order, resumably.

    phudge grade --checkpoint last.ckpt --input in.jsonl --output out.jsonl [--batch-size 8]

Each input line is a record: ``instruction``, ``response``, optional ``rubric`` (text or an
object), ``reference_answer`` and ``context``; any other field (``id`` ...) is kept as it is.
Each output line is that line's object plus the grade's fields, the same as ``POST /grade``
answers (``phudge_lightning.grades``): ``score`` (always; null where the causal head wrote no
``[RESULT]``), ``probabilities`` and ``confidence`` for the classification head, ``feedback``
for the causal head and ``truncated: true`` where the prompt was shortened to fit; an input
field of one of those names is replaced. An empty or blank ``response`` is graded (it is an
answer); blank lines are skipped, and a UTF-8 byte-order mark before the first line is read
past. ``--rubric NAME`` (``phudge rubrics``) or ``--rubric TEXT`` is the rubric of the rows that
have none of their own.

A bad line (malformed JSON, a missing or wrong field) does not stop the run: it is reported
with its line number and written to the rejects file (default: the output path plus
``.rejects.jsonl``) as ``{"line", "field", "error", "text"}``.

Resuming: every input line ends as exactly one outcome, a graded line in the output or a
line in the rejects. Both files are appended a batch at a time, complete lines only, flushed
and fsynced, a batch's rejects before its grades. Run the same command again after a kill
(even ``kill -9``): it cuts a trailing partial line from either file, reads the rejected line
numbers and counts the n graded lines, skips the rejected lines and the first n others, and
grades the rest. Since rejects are written first, a kill between the two writes can only leave
rejects whose batch is graded again (its rejected lines are then skipped), never grades whose
rejects are lost, so the count n always names the right lines.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from datamodules.records import RecordError, validate_record
from datamodules.rubrics import resolve_rubric
from phudge_lightning.grades import GRADE_FIELDS, graded
from phudge_lightning.judge_options import add_judge_arguments, judge_options, rubric_option

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


def parse_line(text: bytes, source: str, line_no: int):
    """(the line's object, its validated record); ``RecordError`` names the line and the field."""
    raw = read_line(text, source, line_no)
    # The judge's own output fields are replaced, so a stale or bad one must not reject the line.
    given = {k: v for k, v in raw.items() if k not in GRADE_FIELDS} if isinstance(raw, dict) else raw
    return raw, validate_record(given, source=source, row=line_no, require_score=False)


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
    """The resumable loop of ``phudge grade`` (and ``phudge rank``): every line of
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


def with_default_rubric(record, rubric):
    """``record`` with ``rubric`` (a name, text or object) where it has none of its own."""
    if rubric is not None and record.rubric is None:
        record.rubric = resolve_rubric(rubric)
    return record


def grade_file(judge, input_path: str | Path, output_path: str | Path, rejects_path: str | Path | None = None, *,
               batch_size: int = 8, rubric: str | dict | None = None, advance: Callable[[int], None] = lambda n: None,
               report: Callable[[str], None] = lambda message: None) -> Summary:
    """Grade ``input_path`` into ``output_path``, continuing a run that was cut short.

    ``judge`` needs ``grade_many(records, batch_size)``; ``rubric`` is used for the rows without one.
    """
    def parse(text: bytes, source: str, line_no: int):
        raw, record = parse_line(text, source, line_no)
        return raw, with_default_rubric(record, rubric)

    def run(good: list) -> list[dict]:
        grades = judge.grade_many([record for _, record in good], batch_size=batch_size)
        return [graded(raw, grade) for (raw, _), grade in zip(good, grades)]

    return process_file(input_path, output_path, rejects_path, parse=parse, run=run, batch_size=batch_size,
                        advance=advance, report=report)


def run_with_progress(verb: str, input_path: Path, output_path: Path, rejects_path: Path, work) -> int:
    """Run ``work(advance, report)`` under a progress bar over the input's lines, then print the summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn(verb), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(verb, total=count_lines(input_path))
        # soft_wrap: a line is never broken, so a field's name is never cut in two.
        summary = work(lambda n: progress.advance(task, n),
                       lambda message: progress.console.print(f"rejected {message}", markup=False, highlight=False,
                                                              soft_wrap=True))
    rejects = f" (rejects: {rejects_path})" if rejects_path.exists() and rejects_path.stat().st_size else ""
    console.print(f"{'graded' if verb == 'grading' else 'ranked'} {summary.graded}, rejected {summary.rejected}, "
                  f"done before {summary.already_done}: {output_path}{rejects}", markup=False, highlight=False,
                  soft_wrap=True)
    return 0


def prepare_files(prog: str, args) -> tuple[Path, Path, Path] | None:
    """The input, output and rejects paths of ``args``; None (after saying why) when there is no input."""
    input_path, output_path = Path(args.input), Path(args.output)
    rejects_path = Path(args.rejects or str(output_path) + REJECTS_SUFFIX)
    if not input_path.exists():
        print(f"{prog}: no input file at {input_path}", file=sys.stderr)
        return None
    if args.overwrite:
        output_path.unlink(missing_ok=True)
        rejects_path.unlink(missing_ok=True)
    return input_path, output_path, rejects_path


def file_arguments(parser, what: str) -> None:
    """``--checkpoint``, ``--input``, ``--output``, ``--rejects``, ``--batch-size``, the judge's
    flags and ``--overwrite``: the command line of a resumable file command."""
    parser.add_argument("--checkpoint", default="default",
                        help="a .ckpt or a DeepSpeed checkpoint folder from phudge fit, a folder from phudge export, "
                        "or 'default' (the shipped judge; the default)")
    parser.add_argument("--input", required=True, help=f"a JSON-lines file of {what}")
    parser.add_argument("--output", required=True, help="the output JSON-lines file (continued if it exists)")
    parser.add_argument("--rejects", help=f"where bad lines go (default: OUTPUT{REJECTS_SUFFIX})")
    parser.add_argument("--batch-size", type=int, default=8)
    add_judge_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of continuing")
    parser.add_argument("--rubric", type=rubric_option, default=None, metavar="NAME_OR_TEXT",
                        help="for the rows without a rubric: a named rubric (phudge rubrics lists them) or free text")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="phudge grade", description=__doc__.split("\n\n")[0])
    file_arguments(parser, "records")
    return parser.parse_args(argv)


def run_file_command(prog: str, label: str, args, process) -> int:
    """The shared ``main`` of the file commands (grade, rank): check the files, load the judge
    (one line and exit 2 for a bad checkpoint), then ``process(judge, *paths, batch_size=...,
    rubric=..., advance=..., report=...)`` under a progress bar."""
    paths = prepare_files(prog, args)
    if paths is None:
        return 2
    from phudge_lightning.checkpoints import CheckpointError
    from phudge_lightning.judge import Judge

    try:
        judge = Judge.load(args.checkpoint, batch_size=args.batch_size, **judge_options(args))
    except CheckpointError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    return run_with_progress(label, *paths, lambda advance, report: process(
        judge, *paths, batch_size=args.batch_size, rubric=args.rubric, advance=advance, report=report))


def main(argv: list[str] | None = None) -> int:
    return run_file_command("phudge grade", "grading", parse_args(argv), grade_file)
