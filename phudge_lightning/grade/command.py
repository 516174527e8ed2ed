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
line in the rejects; run the same command again after a kill (even ``kill -9``) and it grades
the lines without one (``phudge_lightning.jsonl_resume`` says how).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from datamodules.records import validate_record
from datamodules.rubrics import resolve_rubric
from phudge_lightning.grades import GRADE_FIELDS, graded
from phudge_lightning.jsonl_command import file_arguments, run_file_command
from phudge_lightning.jsonl_resume import Summary, process_file, read_line


def parse_line(text: bytes, source: str, line_no: int):
    """(the line's object, its validated record); ``RecordError`` names the line and the field."""
    raw = read_line(text, source, line_no)
    # The judge's own output fields are replaced, so a stale or bad one must not reject the line.
    given = {k: v for k, v in raw.items() if k not in GRADE_FIELDS} if isinstance(raw, dict) else raw
    return raw, validate_record(given, source=source, row=line_no, require_score=False)


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


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="phudge grade", description=__doc__.split("\n\n")[0])
    file_arguments(parser, "records")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_file_command("phudge grade", "grading", parse_args(argv), grade_file)
