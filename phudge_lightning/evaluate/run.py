"""``phudge evaluate``: measure a judge, or the length baseline, on one of the paper's benchmarks.

    phudge evaluate --checkpoint last.ckpt --benchmark vicuna --data ../shared/data/benchmarks/vicuna_eval.json
    phudge evaluate --baseline length --benchmark hhh --data ../shared/data/benchmarks/hhh_alignment_eval.json

Absolute sets report ``n``, ``pearson``, ``spearman``, ``kendall``, ``r2``, ``mae``, ``mse``
against the label (the mean of the GPT-4 scores where a row has several); relative sets report
``n``, ``accuracy``, ``ties``, ``invalid`` and the convention used (see
``phudge_lightning.benchmarks.pair_metrics``). The table goes to the terminal and, with
``--output``, the figures to a JSON file written atomically; ``--predictions`` writes each
item's scores and label as JSON lines, for analyses of your own. Several ``--checkpoint``\ s are
graded as one ensemble: each item's score is the mean of theirs (e.g. runs with other seeds).
HHH's pairs are also scored per subset (``accuracy_by_group``: helpful, harmless, honest, other).
RewardBench (``--benchmark rewardbench --data allenai/reward-bench``, or a local copy of its
``filtered`` split) reports each subset's accuracy, the four sections (Chat, Chat Hard, Safety,
Reasoning) weighted by the official counts and their mean, with the length baseline's beside.
``--ranking`` ranks the distinct answers to each instruction of a relative set once and reads
every pair off the rankings (``phudge_lightning.rank.agreement``). ``--rubric NAME`` grades
every item under a named (``phudge rubrics``) or free-text rubric instead of its own. A judge
trained on another score range reads the benchmark's scores against that range.

The length baseline grades a response by its length in characters (longer is better): the
floor any judge must clear, since judges and raters alike tend to favour long answers. Its
scores are characters, not points on 1-5, so for a baseline only the figures that do not depend
on the scale are reported: Pearson, Spearman, Kendall and pair accuracy (invariant under any
increasing linear map of the scores). ``r2``, ``mae`` and ``mse`` would compare characters with
scores and are left out; ``scale`` in the output says so. An empty response is 0 characters:
graded, the lowest score there is.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from typing import Sequence

from datamodules.records import DEFAULT_SCORE_RANGE, score_scale
from datamodules.rubrics import resolve_rubric
from phudge_lightning.benchmarks import ABSOLUTE, BENCHMARKS, Benchmark, benchmark_metrics, load_benchmark
from phudge_lightning.rewardbench import rewardbench_metrics
from phudge_lightning.io import atomic_write_json, atomic_write_text
from phudge_lightning.judge_options import add_judge_arguments, judge_options, rubric_option
from phudge_lightning.rank.agreement import group_pairs, pair_scores, rank_groups, ranking_agreement

BASELINES = ("length",)
# The table's order: the figures, then the counts behind them, then the settings.
# Figures that compare a score with the label on the label's own scale: meaningless for a
# baseline, whose scores are in another unit (characters).
SCALE_DEPENDENT = ("r2", "mae", "mse")
SCALE_FREE_NOTE = ("baseline scores are not on the 1-5 scale: only scale-free figures are reported "
                   "(pearson, spearman, kendall, accuracy); r2, mae and mse are left out")
HEADLINE = ("n", "pearson", "spearman", "kendall", "r2", "mae", "mse", "accuracy", "accuracy_with_ties",
            "n_with_ties", "ties", "predicted_ties", "no_score", "invalid", "dropped", "tie_margin",
            "ranking_agreement", "ranking_pairs", "rankings", "answers_ranked", "pair_grades",
            "rankings_of_3_or_more", "rankings_in_full_agreement")


def length_scores(records) -> list[float]:
    """The length baseline: each response's length in characters."""
    return [float(len(r.response)) for r in records]


def judge_scores(judge, records, console=None) -> list[float | None]:
    """The judge's score of each record, in order, under a progress bar; None where missing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    scores = []
    columns = (TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("grading", total=len(records))
        for grade in judge.iter_grades(records):
            scores.append(grade.score)
            progress.advance(task)
    return scores


def ensemble_scores(runs: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Each item's mean score over the judges, (1/J) sum_j s_j; None where any judge gave none."""
    return [None if any(s is None for s in item) else sum(item) / len(item) for item in zip(*runs)]


def item_rows(bench: Benchmark, scores: Sequence[float | None]) -> list[dict]:
    """One row per item, in the benchmark's order: its row number, label and score(s)."""
    if bench.kind == ABSOLUTE:
        return [{"row": i, "label": r.score, "score": s} for i, (r, s) in enumerate(zip(bench.items, scores), 1)]
    return [{"row": p.row, "label": p.label, "score_a": a, "score_b": b,
             **({"source": p.group} if p.group is not None else {})}
            for p, a, b in zip(bench.items, scores[0::2], scores[1::2])]


def with_rubric(bench: Benchmark, rubric: str | dict) -> Benchmark:
    """``bench`` with every item graded under ``rubric`` instead of its own (``--rubric``)."""
    rubric = resolve_rubric(rubric)

    def replace(record):
        return dataclasses.replace(record, rubric=rubric)

    items = [dataclasses.replace(item, a=replace(item.a), b=replace(item.b)) if bench.kind != ABSOLUTE else replace(item)
             for item in bench.items]
    return dataclasses.replace(bench, items=items)


def scale_free(result: dict) -> dict:
    """``result`` without the figures that compare a score with its label on the label's scale
    (r2, mae, mse), saying so under ``scale``: for a baseline, whose scores are in another unit."""
    if result["kind"] != ABSOLUTE:  # pair accuracy depends only on which score is higher
        return result
    return {k: v for k, v in result.items() if k not in SCALE_DEPENDENT} | {"scale": SCALE_FREE_NOTE}


def length_beside(bench: Benchmark) -> dict:
    """The length baseline's RewardBench sections and score, to print beside a judge's."""
    baseline = benchmark_metrics(bench, length_scores(bench.records()))
    return {"length_baseline_by_section": baseline["score_by_section"],
            "length_baseline_score": baseline["rewardbench_score"]}


def print_table(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"{result['benchmark']}: {result['judge']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    ordered = [k for k in HEADLINE if k in result] + sorted(k for k in result if k not in HEADLINE)
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    for key in ordered:
        value = result[key]
        if isinstance(value, dict):  # accuracy_by_group: a row per group
            for name, v in value.items():
                table.add_row(f"{key.removesuffix('_by_group')} ({name})", cell(v))
        else:
            table.add_row(key, cell(value))
    console.print(table)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="phudge evaluate", description=__doc__.split("\n\n")[0])
    judge = parser.add_mutually_exclusive_group(required=True)
    judge.add_argument("--checkpoint", nargs="+", help="a .ckpt or a DeepSpeed checkpoint folder from phudge fit, "
                       "a folder from phudge export, or 'default' (the shipped judge); "
                       "several: an ensemble scoring each item by the mean of their scores")
    judge.add_argument("--baseline", choices=BASELINES, help="a judge without a model: response length")
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"one of: {', '.join(sorted(BENCHMARKS))}")
    parser.add_argument("--data", required=True, help="the benchmark's json / jsonl / parquet file, or a hub dataset "
                        "name (e.g. allenai/reward-bench)")
    parser.add_argument("--output", help="write the figures to this JSON file")
    parser.add_argument("--predictions", help="write each item's scores and label to this JSON-lines file")
    parser.add_argument("--tie-margin", type=float, default=0.0,
                        help="|score_a - score_b| at most this is a predicted tie (accuracy_with_ties)")
    rubrics = parser.add_mutually_exclusive_group()
    rubrics.add_argument("--rubric-free", action="store_true", help="grade without the rubrics")
    rubrics.add_argument("--rubric", type=rubric_option, default=None, metavar="NAME_OR_TEXT",
                         help="grade every item with this rubric instead of its own: a name (phudge rubrics) or free text")
    parser.add_argument("--reference-free", action="store_true", help="grade without the reference answers")
    parser.add_argument("--batch-size", type=int, default=8)
    add_judge_arguments(parser)
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N items only")
    parser.add_argument("--ranking", action="store_true",
                        help="relative sets: rank the distinct answers to each instruction once and read every "
                             "pair off the rankings (ranking_agreement ...)")
    return parser.parse_args(argv)


def load_judges(args, errors):
    """Yield each ``--checkpoint``'s judge in turn (one in memory at a time); all must share the
    first one's score range."""
    from phudge_lightning.judge import Judge

    first = None
    for checkpoint in args.checkpoint:
        judge = Judge.load(checkpoint, batch_size=args.batch_size, **judge_options(args))
        if first is not None and judge.score_range != first:
            raise ValueError(f"{checkpoint} scores on {list(judge.score_range)} but {args.checkpoint[0]} on "
                             f"{list(first)}: an ensemble needs one scale")
        first = judge.score_range
        yield judge
        del judge


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console

    console, errors = Console(), Console(stderr=True)
    judges, score_range = None, DEFAULT_SCORE_RANGE
    if args.checkpoint:
        from phudge_lightning.checkpoints import CheckpointError, check_paths

        try:  # every one before loading any: an ensemble should not fail after its first judge ran
            check_paths(args.checkpoint)
        except CheckpointError as e:
            print(f"phudge evaluate: {e}", file=sys.stderr)
            return 2
        judges = load_judges(args, errors)
        first = next(judges)
        score_range = first.score_range  # the benchmark's scores are read on the judge's scale
        judges = itertools.chain([first], judges)
        del first  # (so that one judge at a time is held, as the chain moves on)
    with score_scale(score_range):
        bench = load_benchmark(args.benchmark, args.data, rubric_free=args.rubric_free,
                               reference_free=args.reference_free, limit=args.limit)
    for error in bench.invalid[:10]:  # soft_wrap: never broken inside a field's name
        errors.print(f"invalid: {error}", markup=False, highlight=False, soft_wrap=True)
    if len(bench.invalid) > 10:
        errors.print(f"... and {len(bench.invalid) - 10} more invalid rows", markup=False)
    if not bench.items:
        print(f"phudge evaluate: {args.data} holds no valid {args.benchmark} rows", file=sys.stderr)
        return 1
    if args.ranking and bench.kind == ABSOLUTE:
        print(f"phudge evaluate: --ranking reads pairs off rankings; {args.benchmark} has no pairs", file=sys.stderr)
        return 2
    if args.rubric is not None:
        bench = with_rubric(bench, args.rubric)
    groups = group_pairs(bench.items) if args.ranking else None
    records = groups.records() if groups else bench.records()  # with --ranking, each distinct answer once
    if args.baseline:
        scores, judge_name = length_scores(records), f"baseline: {args.baseline}"
    else:
        runs = [judge_scores(judge, records, errors) for judge in judges]
        scores, judge_name = ensemble_scores(runs), " + ".join(args.checkpoint)
    ranking = None
    if groups:
        ranking = ranking_agreement([p.label for p in bench.items], groups, rank_groups(groups, scores))
        scores = pair_scores(groups, scores)
    result = {
        **benchmark_metrics(bench, scores, args.tie_margin), **(ranking or {}),
        "benchmark": args.benchmark, "kind": bench.kind, "label": bench.label, "data": bench.source,
        "judge": judge_name, "rubric_free": args.rubric_free, "reference_free": args.reference_free,
        **({"rubric": args.rubric} if args.rubric is not None else {}),
        **({"score_range": list(score_range)} if tuple(score_range) != DEFAULT_SCORE_RANGE else {}),
    }
    if args.baseline:
        result = scale_free(result)
    elif BENCHMARKS[args.benchmark].report is rewardbench_metrics:
        result.update(length_beside(bench))
    print_table(result, console)
    if args.output:
        atomic_write_json(args.output, result)
    if args.predictions:
        atomic_write_text(args.predictions, "".join(json.dumps(row) + "\n" for row in item_rows(bench, scores)))
    return 0
