"""TruthfulQA, judged by people: ``truthfulqa_labels`` and ``truthfulqa_references``.

``truthfulqa_labels``: one short answer a row: ``question``, ``answer``, ``truthful`` and
``informative`` (booleans, null where unlabelled), the TruthfulQA authors' own judgments. A row
is one answer; the labels compare answers to one question, so the source's items are pairs
formed across its rows (``combine``), the preferred answer first:

- a truthful answer over an untruthful one (truth);
- a truthful and informative answer over a truthful, uninformative one (helpfulness).

"I have no comment" and the like are truthful but uninformative: they are preferred to a false
answer and placed below a true, informative one. People prefer a hedge to a confident falsehood
and a true answer to a hedge, and a judge should learn both orders. A row whose ``truthful`` is
null carries no label (dropped). At most ``PAIRS_PER_QUESTION`` pairs are kept per question,
drawn by a hash of the question, so that questions with many answers do not dominate.

``truthfulqa_references``: one question a row: ``question``, ``best_answer``,
``correct_answers`` and ``incorrect_answers`` (lists), ``category``: each incorrect answer is
paired with a correct one (``best_answer`` first, then the others in turn), the correct first.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np

from datamodules.formats.common import as_object, record_from, text_field
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, Pair, Record, RecordError

PAIRS_PER_QUESTION = 8


def _label(row: dict, name: str, source: str, row_no) -> bool | None:
    value = row.get(name)
    if value is not None and not isinstance(value, bool):
        raise RecordError(source, row_no, name, f"must be true, false or null, got {value!r:.40}")
    return value


def _is_labelled_answer(row) -> bool:
    return {"question", "answer", "truthful"} <= set(row)


def _rng(text: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big"))


def truthfulqa_pairs(records: list[Record]) -> list[Pair]:
    """Pairs of answers to one question: truthful over untruthful, informative-and-truthful over
    uninformative-and-truthful; at most ``PAIRS_PER_QUESTION`` per question, drawn by its hash."""
    by_question: dict[str, list[Record]] = {}
    for record in records:
        by_question.setdefault(record.instruction, []).append(record)
    pairs = []
    for question, answers in by_question.items():
        true = [r for r in answers if r.extra["truthful"]]
        false = [r for r in answers if not r.extra["truthful"]]
        informative = [r for r in true if r.extra.get("informative") is True]
        hedges = [r for r in true if r.extra.get("informative") is False]
        candidates = list(itertools.product(true, false)) + list(itertools.product(informative, hedges))
        if len(candidates) > PAIRS_PER_QUESTION:
            keep = _rng(question).choice(len(candidates), size=PAIRS_PER_QUESTION, replace=False)
            candidates = [candidates[i] for i in sorted(keep)]
        pairs += [Pair(a, b, 1.0, f"{a.extra['row']}/{b.extra['row']}") for a, b in candidates]
    return pairs


@register_format("truthfulqa_labels", kind="pairs", detect=_is_labelled_answer, combine=truthfulqa_pairs,
                 label="people's truthful/informative labels: truthful over untruthful, informative over not")
def truthfulqa_labels(row, source: str, row_no, require_score: bool = True) -> Record | None:
    """TruthfulQA human labels: ``question``, ``answer``, ``truthful``, ``informative``; paired by question."""
    row = as_object(row, source, row_no)
    truthful, informative = _label(row, "truthful", source, row_no), _label(row, "informative", source, row_no)
    if truthful is None:
        return None
    raw = {"instruction": row.get("question", MISSING), "response": row.get("answer", MISSING)}
    return record_from(raw, {"instruction": "question", "response": "answer"}, source, row_no,
                       {"truthful": truthful, "informative": informative, "row": row_no})


def _answers(row: dict, name: str, source: str, row_no) -> list[str]:
    value = row.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise RecordError(source, row_no, name, f"must be a non-empty list of texts, got {value!r:.60}")
    return value


@register_format("truthfulqa_references", kind="pairs", label="the authors' correct answers over their incorrect ones",
                 detect=lambda row: "correct_answers" in row and "incorrect_answers" in row)
def truthfulqa_references(row, source: str, row_no, require_score: bool = True) -> list[Pair]:
    """TruthfulQA's own answers: ``question``, ``best_answer``, ``correct_answers``, ``incorrect_answers``."""
    row = as_object(row, source, row_no)
    question = text_field(row, "question", source, row_no)
    best = text_field(row, "best_answer", source, row_no)
    correct = [best] + [a for a in _answers(row, "correct_answers", source, row_no) if a != best]
    incorrect = _answers(row, "incorrect_answers", source, row_no)
    extra = {k: row[k] for k in ("category", "type") if k in row}
    pairs = []
    for i, wrong in enumerate(incorrect):
        right = correct[i % len(correct)]
        a, b = (record_from({"instruction": question, "response": text}, {"response": field}, source, row_no,
                            {**extra, "pair": row_no})
                for text, field in ((right, "correct_answers"), (wrong, "incorrect_answers")))
        pairs.append(Pair(a, b, 1.0, row_no))
    return pairs
