"""Rank many answers to one instruction: the rows to rank, and a ranking made from their grades.

A head judge grades each answer alone, so ranking n answers costs n forward passes (not the
n(n-1)/2 comparisons a generative judge needs), and the order cannot depend on the order the
answers were given in. A row to rank:

- ``instruction`` (required), optional ``rubric`` (text, a name, or an object),
  ``reference_answer`` and ``context``, shared by every answer;
- ``responses``: a non-empty list whose items are texts, or objects with ``response`` and
  optional ``id`` (other fields of an item come back with its place in the ranking);

each answer is validated as a grading record (``datamodules.records``), so an answer is
accepted or refused exactly as ``phudge grade`` would accept or refuse it; an error names the
whole field (``responses[2].response``). Other fields of the row are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datamodules.records import FIELDS, Record, RecordError, validate_record
from phudge_lightning.grades import GRADE_FIELDS, Grade
from phudge_lightning.metrics import pairwise_probabilities

SHARED = ("instruction", "rubric", "reference_answer", "context")
# The fields a ranking adds to a row; an input field of the same name is replaced.
RANK_FIELDS = ("ranking", "p_better")
# The answer fields a ranking writes (its place, then the grade's); an item field of the same name
# would be stale beside them, so it is left out.
ANSWER_FIELDS = ("index", "rank", *GRADE_FIELDS)


@dataclass
class RankQuery:
    """One instruction and its answers as grading records; ``items`` are the answers' own
    fields besides ``response`` (``id`` ...), one dict per answer."""

    records: list[Record]
    items: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


@dataclass
class RankedAnswer:
    """One answer's place: ``index`` in the input list, ``rank`` 1 for the best (equal scores
    share a rank; None for an answer without a score, placed last), and its grade."""

    index: int
    rank: int | None
    grade: Grade
    item: dict = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        return self.grade.score

    def to_dict(self) -> dict:
        """The item's own fields, then ``index``, ``rank`` and the grade's fields as every writer
        gives them (``Grade.to_dict``)."""
        own = {k: v for k, v in self.item.items() if k not in ANSWER_FIELDS}
        return own | {"index": self.index, "rank": self.rank} | self.grade.to_dict()


@dataclass
class Ranking:
    """``answers`` best first. With the classification head, ``p_better[i][j]`` = P(X_i > X_j)
    for answers i and j in that order (X_i drawn from answer i's score distribution, the two
    independent; ``Judge.compare``'s formula), None on the diagonal; P(X_i = X_j) is
    1 - p_better[i][j] - p_better[j][i]."""

    answers: list[RankedAnswer]
    p_better: list[list[float | None]] | None = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"ranking": [a.to_dict() for a in self.answers]}
        if self.p_better is not None:
            out["p_better"] = self.p_better
        return out


def _rename(error: RecordError, index: int, item_is_object: bool) -> RecordError:
    """An answer's error, its ``response`` field named as the row has it (``responses[i]``)."""
    own = f"responses[{index}]" + (".response" if item_is_object else "")
    problems = [RecordError(e.source, e.row, own if e.field == "response" else e.field, e.message) for e in error.problems]
    first = problems[0]
    message = first.message + "".join(f"; field '{e.field}' {e.message}" for e in problems[1:])
    renamed = RecordError(first.source, first.row, first.field, message)
    renamed.problems = problems
    return renamed


def validate_rank_row(raw: Any, *, source: str = "<rank>", row: int | str = "?") -> RankQuery:
    """Check one row to rank (see the module doc); ``RecordError`` names the row and field."""
    if not isinstance(raw, dict):
        raise RecordError(source, row, None, f"must be a JSON object, got {type(raw).__name__}")
    responses = raw.get("responses")
    if not isinstance(responses, list) or not responses:
        got = "nothing" if responses is None else type(responses).__name__ if not isinstance(responses, list) else "an empty list"
        raise RecordError(source, row, "responses", f"must be a non-empty list of answers (texts or objects), got {got}")
    shared = {k: raw[k] for k in SHARED if k in raw}  # an absent field is missing, not null
    records, items = [], []
    for i, item in enumerate(responses):
        is_object = isinstance(item, dict)
        if is_object and "response" not in item:
            raise RecordError(source, row, f"responses[{i}].response", "is missing")
        try:
            record = validate_record({**shared, "response": item["response"] if is_object else item},
                                     source=source, row=row, require_score=False)
        except RecordError as e:
            raise _rename(e, i, is_object) from None
        records.append(record)
        items.append({k: v for k, v in item.items() if k != "response"} if is_object else {})
    extra = {k: v for k, v in raw.items() if k not in (*SHARED, "responses") and k not in FIELDS}
    return RankQuery(records, items, extra)


def ranks(scores: list[float | None]) -> list[int | None]:
    """Competition ranks, 1 for the highest score: equal scores share a rank and the next rank
    skips as many places (5, 3, 3, 1 -> 1, 2, 2, 4); a missing score has no rank.

    >>> ranks([3.0, 5.0, 3.0, None])
    [2, 1, 2, None]
    """
    return [None if s is None else 1 + sum(t is not None and t > s for t in scores) for s in scores]


def rank_grades(grades: list, items: list[dict] | None = None) -> Ranking:
    """The ranking of answers from their grades (``judge.Grade``), in input order: best first,
    ties in input order, answers without a score last."""
    scores = [g.score for g in grades]
    places = ranks(scores)
    order = sorted(range(len(grades)), key=lambda i: (places[i] is None, places[i] or 0, i))
    items = items or [{} for _ in grades]
    answers = [RankedAnswer(i, places[i], grades[i], items[i]) for i in order]
    p_better = None
    if grades and all(g.probabilities for g in grades):
        p_better = [[None if i == j else round(pairwise_probabilities(grades[i].probabilities, grades[j].probabilities)[0], 6)
                     for j in order] for i in order]
    return Ranking(answers, p_better)
