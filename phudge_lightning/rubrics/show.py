"""``phudge rubrics``: the library of named rubrics (``datamodules.rubrics``).

    phudge rubrics                       # each name and its criteria
    phudge rubrics helpfulness           # one rubric in full, as the judge reads it
    phudge rubrics --json                # every rubric as a JSON object, name -> rubric

A name goes wherever a rubric does: ``"rubric": "helpfulness"`` in a record, ``--rubric
helpfulness`` on ``phudge grade``, ``evaluate`` and ``rank``, ``rubric="helpfulness"`` in the
Judge API and in a request to ``phudge serve``.
"""

from __future__ import annotations

import argparse
import json
import sys

from datamodules.records import rubric_text
from datamodules.rubrics import RUBRICS, UnknownRubric, get_rubric


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="phudge rubrics", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="show this rubric in full")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.name:
        try:
            rubric = get_rubric(args.name)
        except UnknownRubric as e:
            print(f"phudge rubrics: {e}", file=sys.stderr)
            return 2
        print(json.dumps(rubric, indent=2) if args.json else rubric_text(rubric))
        return 0
    if args.json:
        print(json.dumps(RUBRICS, indent=2))
        return 0
    width = max(map(len, RUBRICS))
    for name, rubric in RUBRICS.items():
        print(f"{name:<{width}}  {rubric['criteria']}")
    return 0
