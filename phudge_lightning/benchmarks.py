"""The paper's benchmarks, read through the one format registry (``datamodules.formats``).

Each benchmark name is a registered format (the format's own name works too, e.g.
``--benchmark hh_rlhf`` or ``alpaca_eval``):

- absolute sets give each response a score (the label is the mean where a row has several):
  ``feedback_collection_test``, ``feedback_collection_ood`` (any absolute format, detected),
  ``vicuna``, ``mt_bench`` (``prometheus``), ``flask``, ``flask_human``;
- relative sets hold pairs, each response graded alone (no position bias), ``label`` "A" when
  the first is better, "B" when the second is, or "tie": ``hhh``, ``mt_bench_human``,
  ``preference_collection`` (``prometheus_pairs``), ``judgelm``, ``pandalm``, ``autoj``
  (``autoj_pairs``), ``rewardbench`` (each subset's accuracy, the four sections weighted by the
  official counts and their mean: ``phudge_lightning.rewardbench``; by name
  ``allenai/reward-bench``, split ``filtered``).

A row that cannot be read (a missing field, a response that is not text) is counted as
invalid and left out; it never stops a run. An empty or blank response is an answer (the worst
kind) and is graded like any other. Pairs without a rubric are graded rubric-free, as the judge
was trained with rubric dropout. The metrics themselves live in ``phudge_lightning.metrics``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Sequence

from datamodules.formats import FORMATS
from datamodules.records import Pair, Record, RecordError
from datamodules.sources import load_items
from phudge_lightning import rewardbench
from phudge_lightning.metrics import STRICT, VERDICTS, WITH_TIES, absolute_metrics, length_robustness, pair_metrics  # noqa: F401

ABSOLUTE, RELATIVE = "absolute", "relative"


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
    format: str  # the registered format that reads the file ("auto": detected from the first rows)
    kind: str  # ABSOLUTE or RELATIVE
    label: str
    split: str | None = None  # the split of a hub dataset named as the data (``train`` when None)
    # Figures of its own from the per-subset accuracies (``accuracy_by_group``): RewardBench's sections.
    report: Callable[[dict], dict] | None = None


def _spec(format_name: str, kind: str | None = None, label: str | None = None, **more) -> Spec:
    fmt = FORMATS.get(format_name)
    kind = kind or (RELATIVE if fmt.kind == "pairs" else ABSOLUTE)
    return Spec(format_name, kind, label or fmt.label, **more)


# The paper's names; every registered format is a benchmark under its own name too.
BENCHMARKS: dict[str, Spec] = {name: _spec(name) for name in FORMATS}
BENCHMARKS.update({
    "feedback_collection_test": _spec("auto", ABSOLUTE, "orig_score (or the mean of gpt4_score)"),
    "feedback_collection_ood": _spec("auto", ABSOLUTE, "orig_score (or the mean of gpt4_score)"),
    "vicuna": _spec("prometheus"), "mt_bench": _spec("prometheus"),
    "hhh": _spec("prometheus_pairs", label="chosen_instruction over rejected_instruction"),
    "mt_bench_human": _spec("prometheus_pairs"),
    "preference_collection": _spec("prometheus_pairs", label="chosen_instruction over rejected_instruction"),
    "autoj": _spec("autoj_pairs"),
    "rewardbench": _spec("rewardbench", split=rewardbench.SPLIT, report=rewardbench.rewardbench_metrics),
})

# The file names of the paper's evaluation sets as released with Prometheus (``--data FOLDER``).
FILES = {"vicuna": "vicuna_eval.json", "mt_bench": "mt_bench_eval.json", "hhh": "hhh_alignment_eval.json"}


# -- loading -------------------------------------------------------------------------------------
def _strip(record: Record, rubric_free: bool, reference_free: bool) -> Record:
    return dataclasses.replace(record, rubric=None if rubric_free else record.rubric,
                               reference_answer=None if reference_free else record.reference_answer)


def load_benchmark(name: str, data: str, *, rubric_free: bool = False, reference_free: bool = False,
                   limit: int | None = None) -> Benchmark:
    """Read ``data`` (a json / jsonl / parquet file, or a hub dataset name, read from the
    benchmark's split) as the benchmark ``name``.

    Bad rows (and malformed JSON lines) go to ``invalid``; ``rubric_free`` / ``reference_free``
    drop those sections from every prompt (the paper's robustness settings).
    """
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    spec = BENCHMARKS[name]
    items, errors, dropped = load_items(str(data), format=spec.format, skip_invalid=True, limit=limit,
                                         split=spec.split)
    bench = Benchmark(name, spec.kind, str(data), spec.label, invalid=errors, dropped=dropped)
    for item in items:
        if isinstance(item, Pair) != (spec.kind == RELATIVE):
            continue  # (a pair in an absolute set, or a scored row in a pair set: not this benchmark's)
        if isinstance(item, Pair):
            item.a, item.b = (_strip(r, rubric_free, reference_free) for r in (item.a, item.b))
        else:
            item = _strip(item, rubric_free, reference_free)
        bench.items.append(item)
    return bench


def benchmark_metrics(bench: Benchmark, scores: Sequence[float | None], tie_margin: float = 0.0) -> dict:
    """The metrics of ``bench`` given one score per ``bench.records()``, in that order."""
    if len(scores) != len(bench.records()):
        raise ValueError(f"{len(scores)} scores for {len(bench.records())} records")
    if bench.kind == ABSOLUTE:
        out = absolute_metrics(scores, [r.score for r in bench.items])
    else:
        out = pair_metrics([p.label for p in bench.items], scores[0::2], scores[1::2], tie_margin,
                           [p.group for p in bench.items])
    lengths = [len(r.response) for r in bench.records()]
    labels = None if bench.kind == ABSOLUTE else [p.label for p in bench.items]
    out.update(length_robustness(bench.kind, scores, lengths, labels))
    spec = BENCHMARKS.get(bench.name)
    if spec is not None and spec.report is not None:
        out.update(spec.report(out.get("accuracy_by_group") or {}))
    out["invalid"] = len(bench.invalid)
    if bench.dropped:
        out["dropped"] = bench.dropped
    return out
