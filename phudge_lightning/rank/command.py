"""``phudge rank``: rank the answers of each row of a JSON-lines file, in input order, resumably.

    phudge rank --checkpoint last.ckpt --input in.jsonl --output out.jsonl [--rubric helpfulness]

Each input line is a row to rank (``phudge_lightning.rank.ranking``): ``instruction``,
``responses`` (texts, or objects with ``response`` and an optional ``id``), optional
``rubric``, ``reference_answer`` and ``context``; other fields are kept. Each output line is
that line's object plus ``ranking``, the answers best first (``index`` in ``responses``,
``id`` where given, ``rank``, ``score``, and ``probabilities`` / ``confidence`` /
``feedback`` / ``truncated`` as ``phudge grade`` writes them), and, for the classification
head, ``p_better``: P(answer i beats answer j), in the ranking's order.

Bad lines go to the rejects file and a killed run continues where it stopped, exactly as in
``phudge grade`` (the same machinery: ``phudge_lightning.jsonl_resume.process_file``).
``--batch-size`` counts rows; all the answers of a batch of rows are graded together.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from datamodules.rubrics import resolve_rubric
from phudge_lightning.jsonl_command import file_arguments, run_file_command
from phudge_lightning.jsonl_resume import Summary, process_file, read_line
from phudge_lightning.rank.ranking import RANK_FIELDS, validate_rank_row


def parse_rank_line(text: bytes, source: str, line_no: int, rubric: str | dict | None = None):
    """(the line's object, its validated ``RankQuery``); ``RecordError`` names the line and field."""
    raw = read_line(text, source, line_no)
    given = {k: v for k, v in raw.items() if k not in RANK_FIELDS} if isinstance(raw, dict) else raw
    if rubric is not None and isinstance(given, dict) and given.get("rubric") is None:
        given = {**given, "rubric": resolve_rubric(rubric)}
    return raw, validate_rank_row(given, source=source, row=line_no)


def rank_file(judge, input_path: str | Path, output_path: str | Path, rejects_path: str | Path | None = None, *,
              batch_size: int = 8, rubric: str | dict | None = None, advance: Callable[[int], None] = lambda n: None,
              report: Callable[[str], None] = lambda message: None) -> Summary:
    """Rank every row of ``input_path`` into ``output_path``, continuing a run cut short;
    ``judge`` needs ``rank_many(queries)``; ``rubric`` is used for the rows without one."""
    def run(good: list) -> list[dict]:
        rankings = judge.rank_many([query for _, query in good])
        return [{k: v for k, v in raw.items() if k not in RANK_FIELDS} | ranking.to_dict()
                for (raw, _), ranking in zip(good, rankings)]

    return process_file(input_path, output_path, rejects_path, batch_size=batch_size, run=run, advance=advance,
                        report=report, parse=lambda text, source, n: parse_rank_line(text, source, n, rubric))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="phudge rank", description=__doc__.split("\n\n")[0])
    file_arguments(parser, "rows to rank (instruction, responses)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_file_command("phudge rank", "ranking", parse_args(argv), rank_file)
