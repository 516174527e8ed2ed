"""``gsm8k_solutions``: GSM8K problems with a person's solution and model solutions marked correct.

Fields: ``question``, ``ground_truth`` (a person's worked solution ending ``A: n``),
``solutions`` (a list of ``{"model", "solution", "is_correct"}``). A row gives pairs, the
correct solution first: every correct model solution against every incorrect one, and the
person's solution against every incorrect one. A row with no incorrect solution gives none
(dropped).
"""

from __future__ import annotations

from datamodules.formats.common import as_object, record_from, text_field
from datamodules.formats.registry import register_format
from datamodules.records import Pair, RecordError


def _solutions(row: dict, source: str, row_no) -> list[tuple[str, bool, str]]:
    solutions = row.get("solutions")
    if not isinstance(solutions, list) or not solutions:
        raise RecordError(source, row_no, "solutions", f"must be a non-empty list, got {solutions!r:.60}")
    out = []
    for i, solution in enumerate(solutions):
        if not (isinstance(solution, dict) and isinstance(solution.get("solution"), str)
                and isinstance(solution.get("is_correct"), bool)):
            raise RecordError(source, row_no, f"solutions[{i}]",
                              f"must be an object with 'solution' (text) and 'is_correct' (true/false), got {solution!r:.60}")
        out.append((solution["solution"], solution["is_correct"], str(solution.get("model", i))))
    return out


@register_format("gsm8k_solutions", kind="pairs", label="a correct solution over an incorrect one",
                 detect=lambda row: "ground_truth" in row and "solutions" in row)
def gsm8k_solutions(row, source: str, row_no, require_score: bool = True) -> list[Pair] | None:
    """GSM8K solutions: ``question``, ``ground_truth``, ``solutions`` [{model, solution, is_correct}]."""
    row = as_object(row, source, row_no)
    question = text_field(row, "question", source, row_no)
    person = text_field(row, "ground_truth", source, row_no)
    solutions = _solutions(row, source, row_no)
    right = [("person", person)] + [(model, text) for text, ok, model in solutions if ok]
    wrong = [(model, text) for text, ok, model in solutions if not ok]
    if not wrong:
        return None

    def record(model: str, text: str, field: str):
        return record_from({"instruction": question, "response": text}, {"instruction": "question", "response": field},
                           source, row_no, {"pair": row_no, "model": model})

    return [Pair(record(good, good_text, "ground_truth" if good == "person" else "solutions"),
                 record(bad, bad_text, "solutions"), 1.0, row_no)
            for good, good_text in right for bad, bad_text in wrong]
