"""Pairwise test sets with two plain responses: JudgeLM, PandaLM and Auto-J's pairwise set.

- ``judgelm``: ``question_body``, ``answer1_body``, ``answer2_body``, ``score`` [s1, s2] (the
  larger wins, equal is a tie), optional ``reference`` (text, or ``{"text": ...}``);
- ``pandalm``: ``instruction``, ``input``, ``response1``, ``response2`` and three annotators (1
  first better, 2 second better, 0 tie); the label is their majority; a row where all three
  differ has none (dropped);
- ``autoj_pairs``: ``prompt``, ``response 1``, ``response 2``, ``label`` 0 (first better), 1 or 2 (tie).
"""

from __future__ import annotations

from collections import Counter

from datamodules.formats.common import as_object, is_number, record_from
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, Pair, RecordError


def two_responses(shared: dict, first, second, names: tuple[str, str], label: str, source: str, row_no,
                  extra: dict | None = None, shared_names: dict | None = None) -> Pair:
    """A pair of records sharing ``shared`` (instruction, reference...), responses named ``names``."""
    records = [record_from({**shared, "response": response}, {"response": name, **(shared_names or {})},
                           source, row_no, {**(extra or {}), "pair": row_no, "position": position})
               for position, (response, name) in enumerate(((first, names[0]), (second, names[1])), 1)]
    return Pair.labelled(records[0], records[1], label, row_no)


@register_format("judgelm", kind="pairs", label="the larger of score [s1, s2] (equal: tie)",
                 detect=lambda row: "answer1_body" in row and "answer2_body" in row)
def judgelm(row, source: str, row_no, require_score: bool = True) -> Pair:
    """JudgeLM: ``question_body``, ``answer1_body``, ``answer2_body``, ``score`` [s1, s2], ``reference``."""
    row = as_object(row, source, row_no)
    score = row.get("score")
    if not (isinstance(score, list) and len(score) == 2 and all(is_number(s) for s in score)):
        raise RecordError(source, row_no, "score", f"must be a list of two numbers [s1, s2], got {score!r:.60}")
    s1, s2 = score
    reference = row.get("reference")
    if isinstance(reference, dict):
        reference = reference.get("text", reference.get("answer"))
    shared = {"instruction": row.get("question_body", MISSING), "reference_answer": reference}
    extra = {k: v for k, v in row.items() if k in ("question_id", "answer1_model_id", "answer2_model_id")}
    return two_responses(shared, row.get("answer1_body", MISSING), row.get("answer2_body", MISSING), ("answer1_body", "answer2_body"),
                         "A" if s1 > s2 else "B" if s2 > s1 else "tie", source, row_no, extra,
                         {"instruction": "question_body", "reference_answer": "reference"})


PANDALM_VOTES = {1: "A", 2: "B", 0: "tie"}


@register_format("pandalm", kind="pairs", label="the majority of annotator1..3 (1: first, 2: second, 0: tie)",
                 detect=lambda row: "annotator1" in row and "response1" in row)
def pandalm(row, source: str, row_no, require_score: bool = True) -> Pair | None:
    """PandaLM: ``instruction``, ``input``, ``response1``, ``response2``, ``annotator1..3``."""
    row = as_object(row, source, row_no)
    votes = []
    for name in ("annotator1", "annotator2", "annotator3"):
        vote = row.get(name)
        if isinstance(vote, bool) or vote not in PANDALM_VOTES:
            raise RecordError(source, row_no, name, f"must be 0, 1 or 2, got {vote!r:.40}")
        votes.append(vote)
    vote, count = Counter(votes).most_common(1)[0]
    if count == 1:
        return None  # three different verdicts: no label
    instruction, given = row.get("instruction", MISSING), row.get("input")
    if given is not None and not isinstance(given, str):
        raise RecordError(source, row_no, "input", f"must be text, got {type(given).__name__}")
    if isinstance(instruction, str) and given and given.strip():
        instruction = f"{instruction}\n\n{given}"
    extra = {"idx": row["idx"]} if "idx" in row else {}
    return two_responses({"instruction": instruction}, row.get("response1", MISSING), row.get("response2", MISSING),
                         ("response1", "response2"), PANDALM_VOTES[vote], source, row_no, extra)


AUTOJ_LABELS = {0: "A", 1: "B", 2: "tie"}


@register_format("autoj_pairs", kind="pairs", label="label (0: first, 1: second, 2: tie)",
                 detect=lambda row: "response 1" in row and "response 2" in row)
def autoj_pairs(row, source: str, row_no, require_score: bool = True) -> Pair:
    """Auto-J's pairwise test set: ``prompt``, ``response 1``, ``response 2``, ``label``."""
    row = as_object(row, source, row_no)
    label = row.get("label")
    if isinstance(label, bool) or label not in AUTOJ_LABELS:
        raise RecordError(source, row_no, "label", f"must be 0, 1 or 2, got {label!r:.40}")
    extra = {"scenario": row["scenario"]} if "scenario" in row else {}
    return two_responses({"instruction": row.get("prompt", MISSING)}, row.get("response 1", MISSING), row.get("response 2", MISSING),
                         ("response 1", "response 2"), AUTOJ_LABELS[label], source, row_no, extra,
                         {"instruction": "prompt"})
