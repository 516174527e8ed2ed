"""The paper's benchmarks: a loader for each, read into records or pairs, and their metrics.

Absolute sets give each response a score (the label is the mean where a row has several):

- ``feedback_collection_test``, ``feedback_collection_ood``: Feedback Collection rows
  (``orig_*`` fields, see ``datamodules.sources``), formatted prompts with ``gpt4_score``, or
  this project's own records;
- ``vicuna``, ``mt_bench``: formatted Prometheus prompts in ``instruction``, ``gpt4_score`` a
  list of GPT-4 scores;
- ``flask``: formatted prompts with ``gpt4_score`` (or, where a row has none, ``human_score``);
  ``flask_human``: the same rows against ``human_score``.

Relative sets hold pairs, each response graded alone (no position bias), ``label`` "A" when
the first is better, "B" when the second is, or "tie":

- ``hhh``, ``mt_bench_human``, ``preference_collection``: two formatted prompts,
  ``chosen_instruction`` (first) and ``rejected_instruction``; ``tie`` 1 marks a tie;
- ``judgelm``: ``question_body``, ``answer1_body``, ``answer2_body``, ``score`` [s1, s2]
  (the larger wins, equal is a tie), optional ``reference`` (text, or ``{"text": ...}``);
- ``pandalm``: ``instruction``, ``input``, ``response1``, ``response2`` and three annotators
  (1 first better, 2 second better, 0 tie); the label is their majority, and rows where all
  three differ are dropped;
- ``autoj``: ``prompt``, ``response 1``, ``response 2``, ``label`` 0 (first better), 1 or 2 (tie).

A row that cannot be read (a missing field, a response that is not text) is counted as
invalid and left out; it never stops a run. An empty or blank response is an answer (the worst
kind) and is graded like any other. Pairs without a rubric are graded rubric-free, as the judge
was trained with rubric dropout.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torchmetrics.functional import (kendall_rank_corrcoef, mean_absolute_error, mean_squared_error,
                                     pearson_corrcoef, r2_score, spearman_corrcoef)
from torchmetrics.functional.classification import multiclass_accuracy

from datamodules.prometheus import INSTRUCTION, RESPONSE, parse_prompt
from datamodules.records import MISSING, Record, RecordError, found, validate_record
from datamodules.sources import detect_format, from_feedback_collection, iter_source, to_records
from phudge_lightning.judge import verdict

ABSOLUTE, RELATIVE = "absolute", "relative"
VERDICTS = ("A", "B", "tie", "invalid")  # class ids for the accuracy; a label is never "invalid"
STRICT = ("strict: pairs labelled tie are left out; on the rest a predicted tie (equal scores) "
          "or a missing score counts as wrong")
WITH_TIES = ("with ties: every pair; predicted tie when |score_a - score_b| <= tie_margin, "
             "right when the verdict equals the label")


@dataclass
class Pair:
    """Two responses to one instruction: ``label`` "A" (``a`` is better), "B" or "tie"."""

    a: Record
    b: Record
    label: str
    row: int | str = "?"

    @property
    def group(self) -> str | None:
        """The subset the pair belongs to, where its set has them (HHH's ``source``: helpful,
        harmless, honest, other); None elsewhere."""
        return self.a.extra.get("source")


@dataclass
class Benchmark:
    name: str
    kind: str  # ABSOLUTE: ``items`` are scored records; RELATIVE: ``items`` are pairs
    source: str
    label: str  # what the target is, in words
    items: list = field(default_factory=list)
    invalid: list[RecordError] = field(default_factory=list)
    dropped: int = 0  # rows without a label (PandaLM: three annotators who all differ)

    def records(self) -> list[Record]:
        """What the judge grades: the records, or ``a`` then ``b`` of each pair in turn."""
        if self.kind == ABSOLUTE:
            return list(self.items)
        return [r for pair in self.items for r in (pair.a, pair.b)]


@dataclass(frozen=True)
class Spec:
    kind: str
    parse: Callable[[object, str, int], "Record | Pair | None"]  # None: dropped (no label)
    label: str


BENCHMARKS: dict[str, Spec] = {}


def register(name: str, kind: str, label: str):
    def decorator(parse):
        BENCHMARKS[name] = Spec(kind, parse, label)
        return parse

    return decorator


# -- reading helpers -----------------------------------------------------------------------------
def _object(row, source: str, row_no) -> dict:
    if not isinstance(row, dict):
        raise RecordError(source, row_no, None, f"must be a JSON object, got {type(row).__name__}")
    return row


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_score(row: dict, fields: Sequence[str], source: str, row_no) -> float:
    """The first of ``fields`` present: a number, or the mean of a list of numbers."""
    name = next((f for f in fields if row.get(f) is not None), None)
    if name is None:
        others = f" (as are {', '.join(fields[1:])})" if fields[1:] else ""
        raise RecordError(source, row_no, fields[0], "is missing" + others)
    values = row[name] if isinstance(row[name], list) else [row[name]]
    if not values or not all(_is_number(v) for v in values):
        raise RecordError(source, row_no, name, f"must be a number or a non-empty list of numbers, got {row[name]!r:.60}")
    return statistics.fmean(values)


def _renamed(error: RecordError, names: dict) -> RecordError:
    # validate_record names the schema's fields; the user must read the file's own names.
    return RecordError(error.source, error.row, names.get(error.field, error.field), error.message)


def record_from(raw: dict, names: dict, source: str, row_no, extra: dict | None = None) -> Record:
    """``validate_record`` on ``raw`` (no score needed), errors naming the file's fields via ``names``."""
    try:
        record = validate_record(raw, source=source, row=row_no, require_score=False)
    except RecordError as e:
        raise _renamed(e, names) from None
    record.extra = dict(extra or {})
    return record


def prompt_record(row, source: str, row_no, score_fields: Sequence[str]) -> Record:
    """A formatted Prometheus prompt in ``instruction``, scored by the mean of ``score_fields``."""
    row = _object(row, source, row_no)
    text = row.get("instruction")
    if not isinstance(text, str):
        raise RecordError(source, row_no, "instruction", "is missing" if "instruction" not in row
                          else f"must be a formatted Prometheus prompt, got {found(text)}")
    sections = {k: v for k, v in parse_prompt(text).items() if v is not None}  # absent: missing, not null
    raw = {**sections, "score": mean_score(row, score_fields, source, row_no)}
    try:
        record = validate_record(raw, source=source, row=row_no)
    except RecordError as e:  # the file's names: a section of the prompt in ``instruction``
        raise _renamed(e, {"score": score_fields[0], "instruction": f"instruction (its {INSTRUCTION} section)",
                           "response": f"instruction (its {RESPONSE} section)"}) from None
    record.extra = {k: v for k, v in row.items() if k not in ("instruction", "gpt4_feedback", *score_fields)}
    return record


def two_responses(shared: dict, first, second, names: tuple[str, str], label: str, source: str, row_no,
                  extra: dict | None = None, shared_names: dict | None = None) -> Pair:
    """A pair of records sharing ``shared`` (instruction, reference...), responses named ``names``."""
    records = [record_from({**shared, "response": response}, {"response": name, **(shared_names or {})},
                           source, row_no, {**(extra or {}), "pair": row_no, "position": position})
               for position, (response, name) in enumerate(((first, names[0]), (second, names[1])), 1)]
    return Pair(records[0], records[1], label, row_no)


# -- absolute ------------------------------------------------------------------------------------
@register("feedback_collection_test", ABSOLUTE, "orig_score (or the mean of gpt4_score)")
@register("feedback_collection_ood", ABSOLUTE, "orig_score (or the mean of gpt4_score)")
def feedback_collection(row, source: str, row_no) -> Record:
    fmt = detect_format(row)
    if fmt == "feedback_collection":
        return from_feedback_collection(row, source=source, row_no=row_no)
    if fmt == "prometheus":
        return prompt_record(row, source, row_no, ("gpt4_score", "score"))
    return validate_record(row, source=source, row=row_no)


@register("vicuna", ABSOLUTE, "mean of gpt4_score")
@register("mt_bench", ABSOLUTE, "mean of gpt4_score")
def gpt4_scored(row, source: str, row_no) -> Record:
    return prompt_record(row, source, row_no, ("gpt4_score",))


@register("flask", ABSOLUTE, "mean of gpt4_score (human_score where a row has none)")
def flask(row, source: str, row_no) -> Record:
    return prompt_record(row, source, row_no, ("gpt4_score", "human_score"))


@register("flask_human", ABSOLUTE, "mean of human_score")
def flask_human(row, source: str, row_no) -> Record:
    return prompt_record(row, source, row_no, ("human_score",))


# -- relative ------------------------------------------------------------------------------------
@register("hhh", RELATIVE, "chosen_instruction over rejected_instruction")
@register("mt_bench_human", RELATIVE, "chosen_instruction over rejected_instruction (tie: 1 marks a tie)")
@register("preference_collection", RELATIVE, "chosen_instruction over rejected_instruction")
def prometheus_pair(row, source: str, row_no) -> Pair:
    tie = _object(row, source, row_no).get("tie")
    if tie not in (None, 0, 1):  # (True and False compare equal to 1 and 0)
        raise RecordError(source, row_no, "tie", f"must be 0 or 1, got {tie!r:.40}")
    chosen, rejected = to_records(row, "prometheus_pairs", source=source, row_no=row_no)
    return Pair(chosen, rejected, "tie" if tie else "A", row_no)


@register("judgelm", RELATIVE, "the larger of score [s1, s2] (equal: tie)")
def judgelm(row, source: str, row_no) -> Pair:
    row = _object(row, source, row_no)
    score = row.get("score")
    if not (isinstance(score, list) and len(score) == 2 and all(_is_number(s) for s in score)):
        raise RecordError(source, row_no, "score", f"must be a list of two numbers [s1, s2], got {score!r:.60}")
    s1, s2 = score
    reference = row.get("reference")
    if isinstance(reference, dict):
        reference = reference.get("text", reference.get("answer"))
    shared = {"instruction": row.get("question_body", MISSING), "reference_answer": reference}
    extra = {k: v for k, v in row.items() if k in ("question_id", "answer1_model_id", "answer2_model_id")}
    return two_responses(shared, row.get("answer1_body", MISSING), row.get("answer2_body", MISSING),
                         ("answer1_body", "answer2_body"),
                         "A" if s1 > s2 else "B" if s2 > s1 else "tie", source, row_no, extra,
                         {"instruction": "question_body", "reference_answer": "reference"})


PANDALM_VOTES = {1: "A", 2: "B", 0: "tie"}


@register("pandalm", RELATIVE, "the majority of annotator1..3 (1: first, 2: second, 0: tie)")
def pandalm(row, source: str, row_no) -> Pair | None:
    row = _object(row, source, row_no)
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


@register("autoj", RELATIVE, "label (0: first, 1: second, 2: tie)")
def autoj(row, source: str, row_no) -> Pair:
    row = _object(row, source, row_no)
    label = row.get("label")
    if isinstance(label, bool) or label not in AUTOJ_LABELS:
        raise RecordError(source, row_no, "label", f"must be 0, 1 or 2, got {label!r:.40}")
    extra = {"scenario": row["scenario"]} if "scenario" in row else {}
    return two_responses({"instruction": row.get("prompt", MISSING)}, row.get("response 1", MISSING),
                         row.get("response 2", MISSING),
                         ("response 1", "response 2"), AUTOJ_LABELS[label], source, row_no, extra,
                         {"instruction": "prompt"})


# -- loading -------------------------------------------------------------------------------------
def _strip(record: Record, rubric_free: bool, reference_free: bool) -> Record:
    return dataclasses.replace(record, rubric=None if rubric_free else record.rubric,
                               reference_answer=None if reference_free else record.reference_answer)


def load_benchmark(name: str, data: str, *, rubric_free: bool = False, reference_free: bool = False,
                   limit: int | None = None) -> Benchmark:
    """Read ``data`` (a json / jsonl / parquet file) as the benchmark ``name``.

    Bad rows (and malformed JSON lines) go to ``invalid``; ``rubric_free`` / ``reference_free``
    drop those sections from every prompt (the paper's robustness settings).
    """
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    spec = BENCHMARKS[name]
    errors: list[RecordError] = []
    source, rows = iter_source(str(data), errors)
    bench = Benchmark(name, spec.kind, source, spec.label, invalid=errors)
    for row_no, row in rows:
        try:
            item = spec.parse(row, source, row_no)
        except RecordError as e:
            errors.append(e)
            continue
        if item is None:
            bench.dropped += 1
            continue
        if isinstance(item, Pair):
            item.a, item.b = (_strip(r, rubric_free, reference_free) for r in (item.a, item.b))
        else:
            item = _strip(item, rubric_free, reference_free)
        bench.items.append(item)
        if limit is not None and len(bench.items) >= limit:
            break
    return bench


# -- metrics -------------------------------------------------------------------------------------
def _value(x: torch.Tensor) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None  # JSON has no NaN: an undefined figure is null


def absolute_metrics(predictions: Sequence[float | None], targets: Sequence[float]) -> dict:
    """The paper's absolute metrics over the rows that have a prediction (torchmetrics):

    - ``pearson`` = cov(p, t) / (sd(p) sd(t)); ``spearman``: Pearson of the ranks (ties get
      their mean rank); ``kendall``: tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2));
    - ``r2`` = 1 - sum (t - p)^2 / sum (t - mean t)^2; ``mae`` = mean |p - t|;
      ``mse`` = mean (p - t)^2.

    ``n`` counts the rows used; ``no_score`` the rows whose prediction is missing (the causal
    head without ``[RESULT]``), which are left out. A figure that is undefined (constant
    predictions, fewer than two rows) is None.
    """
    kept = [(p, t) for p, t in zip(predictions, targets) if p is not None and math.isfinite(p)]
    out = {"n": len(kept), "no_score": len(predictions) - len(kept)}
    names = ("pearson", "spearman", "kendall", "r2", "mae", "mse")
    if len(kept) < 2:
        return {**out, **dict.fromkeys(names)}
    p, t = torch.tensor(kept, dtype=torch.float64).T
    functions = (pearson_corrcoef, spearman_corrcoef, kendall_rank_corrcoef, r2_score,
                 mean_absolute_error, mean_squared_error)
    with warnings.catch_warnings():  # a constant judge: the correlation is reported as None instead
        warnings.filterwarnings("ignore", message=".*variance of predictions or target is close to zero.*")
        return {**out, **{name: _value(fn(p, t)) for name, fn in zip(names, functions)}}


def _accuracy(predicted: list[str], labels: list[str]) -> float | None:
    if not labels:
        return None
    ids = lambda xs: torch.tensor([VERDICTS.index(x) for x in xs])  # noqa: E731
    return _value(multiclass_accuracy(ids(predicted), ids(labels), num_classes=len(VERDICTS), average="micro"))


def pair_metrics(labels: Sequence[str], scores_a: Sequence[float | None], scores_b: Sequence[float | None],
                 tie_margin: float = 0.0, groups: Sequence[str | None] | None = None) -> dict:
    """Pair accuracy under two conventions.

    - ``accuracy`` (strict, the default convention): pairs labelled tie are left out (their
      number is ``ties``); over the other ``n`` pairs a pair is right only when the better
      response got the strictly higher score: equal scores (``predicted_ties``) and missing
      scores (``no_score``) count as wrong.
      accuracy = #{label A and s_a > s_b, or label B and s_b > s_a} / n.
    - ``accuracy_with_ties`` (only where some pairs are labelled tie): over all ``n_with_ties``
      pairs, the verdict is "tie" when |s_a - s_b| <= ``tie_margin``, else the higher score,
      and a pair is right when the verdict equals the label.
    - ``accuracy_by_group`` (where ``groups`` names a subset per pair, e.g. HHH's helpful /
      harmless / honest / other): the strict accuracy within each subset.
    """
    labels = list(labels)
    strict = [i for i, label in enumerate(labels) if label != "tie"]
    predicted = [verdict(a, b, 0.0) for a, b in zip(scores_a, scores_b)]
    out = {
        "n": len(strict),
        "accuracy": _accuracy([predicted[i] for i in strict], [labels[i] for i in strict]),
        "ties": len(labels) - len(strict),
        "predicted_ties": sum(predicted[i] == "tie" for i in strict),
        "no_score": sum(p == "invalid" for p in predicted),
        "convention": STRICT,
    }
    if groups is not None and any(g is not None for g in groups):
        names = sorted({str(g) for g in groups})
        out["accuracy_by_group"] = {
            name: _accuracy([predicted[i] for i in strict if str(groups[i]) == name],
                            [labels[i] for i in strict if str(groups[i]) == name]) for name in names}
    if out["ties"]:
        with_margin = [verdict(a, b, tie_margin) for a, b in zip(scores_a, scores_b)]
        out.update({"accuracy_with_ties": _accuracy(with_margin, labels), "n_with_ties": len(labels),
                    "tie_margin": tie_margin, "convention_with_ties": WITH_TIES})
    return out


def benchmark_metrics(bench: Benchmark, scores: Sequence[float | None], tie_margin: float = 0.0) -> dict:
    """The metrics of ``bench`` given one score per ``bench.records()``, in that order."""
    if len(scores) != len(bench.records()):
        raise ValueError(f"{len(scores)} scores for {len(bench.records())} records")
    if bench.kind == ABSOLUTE:
        out = absolute_metrics(scores, [r.score for r in bench.items])
    else:
        out = pair_metrics([p.label for p in bench.items], scores[0::2], scores[1::2], tie_margin,
                           [p.group for p in bench.items])
    out["invalid"] = len(bench.invalid)
    if bench.dropped:
        out["dropped"] = bench.dropped
    return out
