"""A grade, and its fields as every writer gives them: the Judge API (``Grade.to_dict``),
``phudge serve`` (``GradeResult``, built from ``Grade``), ``phudge grade``'s lines and
``phudge predict``'s rows (both ``graded``). Defined once here, so the four cannot drift.

Torch-free on purpose: ``phudge grade --help`` and the server's schemas import it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Sequence


@dataclass
class Grade:
    """One judgment: ``score`` on the judge's ``score_range`` (1..5 by default); for the
    classification head also the probability of each integer score and the ``confidence`` (the
    largest of them); for the causal head the generated ``feedback``, and ``score`` None when no
    ``[RESULT]`` came within the token limit."""

    score: float | None
    probabilities: list[float] | None = None
    confidence: float | None = None
    feedback: str | None = None
    truncated: bool = False

    def to_dict(self) -> dict:
        """``score`` always (null when the causal head found none); the other fields when set;
        ``truncated`` only when true."""
        return {"score": self.score} | {k: v for k, v in asdict(self).items() if v is not None and k not in (
            "score", "truncated")} | ({"truncated": True} if self.truncated else {})


# The grade's own fields. A row's field of one of these names would be stale next to the
# grade (a label called ``score``, an earlier run's ``probabilities``), so writers replace it.
GRADE_FIELDS = tuple(f.name for f in fields(Grade))
PROBABILITY_DIGITS = 6


def graded(row: dict, grade: Grade | dict) -> dict:
    """``row``'s own fields, less those named like a grade field, then the grade's
    (``grade.to_dict()``, or a dict already made of it, such as a prediction row)."""
    fields = grade if isinstance(grade, dict) else grade.to_dict()
    return {k: v for k, v in row.items() if k not in GRADE_FIELDS} | fields


def grades_from_outputs(out: dict, truncated: Sequence[bool] | None = None) -> list[Grade]:
    """The module's batch output as grades: ``score`` (N,) with NaN where there is none (the
    causal head without ``[RESULT]``), optional ``probabilities`` (N, 5), rounded to 6 digits,
    with ``confidence`` = max_k p_k, and optional ``text``, the causal head's feedback."""
    scores = out["score"].float().tolist()  # one copy to the host, not one per row
    probabilities = out["probabilities"].float().tolist() if "probabilities" in out else None
    grades = []
    for i, score in enumerate(scores):
        grade = Grade(score=score if math.isfinite(score) else None, truncated=bool(truncated and truncated[i]))
        if probabilities is not None:
            grade.probabilities = [round(p, PROBABILITY_DIGITS) for p in probabilities[i]]
            grade.confidence = max(grade.probabilities)
        if "text" in out:
            grade.feedback = out["text"][i]
        grades.append(grade)
    return grades
