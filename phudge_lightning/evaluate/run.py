"""``phudge evaluate``: measure a judge, an ensemble, or the length baseline on the paper's benchmarks
and on a training config's validation split, in one call.

    phudge evaluate --checkpoint last.ckpt --benchmark vicuna --data ../shared/data/benchmarks/vicuna_eval.json
    phudge evaluate --checkpoint default --benchmark vicuna mt_bench hhh --data ../shared/data/benchmarks \\
        --validation configs/judge.yaml --output results.json
    phudge evaluate --checkpoint seed1.ckpt seed2.ckpt seed3.ckpt --benchmark hhh --data hhh_alignment_eval.json
    phudge evaluate --scores seed1.json seed2.json --benchmark vicuna mt_bench hhh --data ../shared/data/benchmarks
    phudge evaluate --baseline length --benchmark hhh --data ../shared/data/benchmarks/hhh_alignment_eval.json

``--data`` gives one file per ``--benchmark``, in order, or one folder holding the paper's files
under their released names (``benchmarks.FILES``). Absolute sets report ``n``, ``pearson``,
``spearman``, ``kendall``, ``r2``, ``mae``, ``mse`` against the label (the mean of the GPT-4 scores
where a row has several); relative sets report ``n``, ``accuracy``, ``ties``, ``invalid`` and the
convention used (see ``phudge_lightning.benchmarks.pair_metrics``); both report how much the
judge leans on length (``length_pearson``, ``accuracy_shorter_preferred``). HHH's pairs are also
scored per subset (``accuracy_by_group``: helpful, harmless, honest, other).
RewardBench (``--benchmark rewardbench --data allenai/reward-bench``, or a local copy of its
``filtered`` split) reports each subset's accuracy, the four sections (Chat, Chat Hard, Safety,
Reasoning) weighted by the official counts and their mean, with the length baseline's beside.

``--validation CONFIG [OVERLAY...]`` also grades that training config's validation split
(``evaluate/validation.py``): ``validation_pairs``, ``validation_ratings`` and, for a mixture,
each source's pairs. Several ``--checkpoint``\\ s are graded as one ensemble, by the rule of
``model/ensemble.py`` (each item's score is the mean of theirs; the members read one prompt and
are held in memory together).

A table per benchmark goes to the terminal (and a summary when there are several); ``--output``
writes the figures to a JSON file, written atomically: the result object of the one benchmark,
or a list of them, each with ``scores``, the judge's score of every graded item, so that
``--scores FILE...`` forms the ensemble of judges graded before without grading again (graded
with the same benchmarks and options). ``--predictions`` writes each item's scores and label as
JSON lines, for analyses of your own. ``--ranking`` ranks the distinct answers to each
instruction of a relative set once and reads every pair off the rankings
(``phudge_lightning.rank.agreement``). ``--rubric NAME`` grades every item under a named
(``phudge rubrics``) or free-text rubric instead of its own. A judge trained on another score
range reads the benchmark's scores against that range.

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
import json
import sys
import time
from pathlib import Path

from datamodules.records import DEFAULT_SCORE_RANGE, score_scale
from datamodules.rubrics import resolve_rubric
from phudge_lightning.benchmarks import ABSOLUTE, BENCHMARKS, FILES, Benchmark, benchmark_metrics, load_benchmark
from phudge_lightning.evaluate.tables import print_summary, print_table
from phudge_lightning.formats import CheckpointError
from phudge_lightning.io import atomic_write_json, atomic_write_text
from phudge_lightning.judge_options import add_judge_arguments, judge_options, rubric_option
from phudge_lightning.rank.agreement import group_pairs, pair_scores, rank_groups, ranking_agreement
from phudge_lightning.rewardbench import rewardbench_metrics

BASELINES = ("length",)
# Figures that compare a score with the label on the label's own scale: meaningless for a
# baseline, whose scores are in another unit (characters).
SCALE_DEPENDENT = ("r2", "mae", "mse")
SCALE_FREE_NOTE = ("baseline scores are not on the 1-5 scale: only scale-free figures are reported "
                   "(pearson, spearman, kendall, accuracy); r2, mae and mse are left out")


class EvaluationError(ValueError):
    """Arguments that cannot be evaluated together; the message is one line (exit status 2)."""


class NoValidRows(EvaluationError):
    """A benchmark file with no row to grade (exit status 1: the data, not the command line)."""


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


def item_rows(bench: Benchmark, scores) -> list[dict]:
    """One row per item, in the benchmark's order: its row number, label and score(s)."""
    if bench.kind == ABSOLUTE:
        return [{"benchmark": bench.name, "row": i, "label": r.score, "score": s}
                for i, (r, s) in enumerate(zip(bench.items, scores), 1)]
    return [{"benchmark": bench.name, "row": p.row, "label": p.label, "score_a": a, "score_b": b,
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


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="phudge evaluate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    judge = parser.add_mutually_exclusive_group(required=True)
    judge.add_argument("--checkpoint", nargs="+", help="a .ckpt or a DeepSpeed checkpoint folder from phudge fit, "
                       "a folder from phudge export, or 'default' (the shipped judge); "
                       "several: an ensemble scoring each item by the mean of their scores")
    judge.add_argument("--baseline", choices=BASELINES, help="a judge without a model: response length")
    judge.add_argument("--scores", nargs="+", metavar="JSON",
                       help="--output files of judges graded before: their ensemble, from the scores they hold")
    parser.add_argument("--benchmark", nargs="+", default=[], choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"one or more of: {', '.join(sorted(BENCHMARKS))}")
    parser.add_argument("--data", nargs="+", default=[], metavar="PATH",
                        help="each benchmark's json / jsonl / parquet file (or hub dataset name, e.g. "
                             "allenai/reward-bench), in order; or one folder holding "
                             f"{', '.join(FILES.values())} under those names")
    parser.add_argument("--validation", nargs="+", metavar="CONFIG",
                        help="also grade the validation split of this training config (and overlays)")
    parser.add_argument("--output", help="write the figures (and every graded item's score) to this JSON file")
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
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N items of each benchmark only")
    parser.add_argument("--ranking", action="store_true",
                        help="relative sets: rank the distinct answers to each instruction once and read every "
                             "pair off the rankings (ranking_agreement ...)")
    args = parser.parse_args(argv)
    if not args.benchmark and not args.validation:
        parser.error("give --benchmark NAME ... (with --data), --validation CONFIG, or both")
    if args.benchmark and not args.data:
        parser.error("--benchmark needs --data: a file per benchmark, or the folder of the paper's files")
    if args.ranking and args.scores:
        parser.error("--ranking ranks the answers as graded: it cannot be read from --scores")
    return args


def data_paths(names: list[str], data: list[str]) -> list[str]:
    """The file of each benchmark: ``data`` one per name, or one folder with the released names."""
    if len(data) == 1 and Path(data[0]).is_dir():
        unknown = [name for name in names if name not in FILES]
        if unknown:
            raise EvaluationError(f"--data {data[0]} is a folder, and {', '.join(unknown)} has no released file name "
                                  f"(known: {', '.join(FILES)}): give its file")
        return [str(Path(data[0]) / FILES[name]) for name in names]
    if len(data) != len(names):
        raise EvaluationError(f"{len(names)} benchmarks but {len(data)} --data paths: give one file per benchmark, "
                              "or one folder")
    return list(data)


def load_sets(args, score_range, errors) -> tuple[dict[str, Benchmark], dict[str, slice]]:
    """The benchmarks to grade by name, and the validation sets that are slices of another."""
    sets = {}
    with score_scale(score_range):
        for name, path in zip(args.benchmark, data_paths(args.benchmark, args.data)):
            bench = load_benchmark(name, path, rubric_free=args.rubric_free, reference_free=args.reference_free,
                                   limit=args.limit)
            for error in bench.invalid[:10]:  # soft_wrap: never broken inside a field's name
                errors.print(f"invalid: {error}", markup=False, highlight=False, soft_wrap=True)
            if len(bench.invalid) > 10:
                errors.print(f"... and {len(bench.invalid) - 10} more invalid rows", markup=False)
            if not bench.items:
                raise NoValidRows(f"{path} holds no valid {name} rows")
            sets[name] = bench
    slices = {}
    if args.validation:
        from phudge_lightning.evaluate.validation import validation_sets

        held_out, slices = validation_sets(args.validation)
        sets.update(held_out)
    if args.rubric is not None:
        sets = {name: with_rubric(bench, args.rubric) for name, bench in sets.items()}
    if args.ranking:
        absolute = [name for name, bench in sets.items() if bench.kind == ABSOLUTE]
        if absolute:
            raise EvaluationError(f"--ranking reads pairs off rankings; {', '.join(absolute)} has no pairs")
    return sets, slices


def saved_scores(paths: list[str], sets: dict[str, Benchmark], graded: list[str]) -> dict[str, dict[str, list]]:
    """{judge: {benchmark: scores}} from earlier ``--output`` files, each checked to hold one score
    per item of every benchmark graded here; a judge named twice is refused."""
    judges: dict[str, dict[str, list]] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise EvaluationError(f"--scores {path}: not a readable JSON file ({type(e).__name__})") from None
        found: dict[str, dict[str, list]] = {}
        for result in data if isinstance(data, list) else [data]:
            for judge, scores in (result.get("scores") or {}).items() if isinstance(result, dict) else ():
                found.setdefault(judge, {})[result.get("benchmark")] = scores
        if not found:
            raise EvaluationError(f"--scores {path}: no scores in it (written by phudge evaluate --output?)")
        for judge, scores in found.items():
            missing = [name for name in graded if len(scores.get(name) or ()) != len(sets[name].records())]
            if missing:
                raise EvaluationError(f"--scores {path}: {judge} has no scores, or not one per item, for "
                                      f"{', '.join(missing)}: grade with the same benchmarks and options")
            if judge in judges:  # two files naming one judge (``default``) would average one of them away
                raise EvaluationError(f"--scores {path}: {judge} is also in an earlier file; grade it once")
            judges[judge] = scores
    return judges


def grade_sets(args, judge, sets, graded, errors) -> tuple[dict[str, list], dict[str, dict], dict[str, float]]:
    """Each graded benchmark's scores (one per ``bench.records()``), its ranking figures
    (``--ranking``) and the seconds it took."""
    scores, rankings, seconds = {}, {}, {}
    for name in graded:
        bench, start = sets[name], time.time()
        groups = group_pairs(bench.items) if args.ranking else None
        records = groups.records() if groups else bench.records()  # with --ranking, each distinct answer once
        found = length_scores(records) if judge is None else judge_scores(judge, records, errors)
        if groups:
            rankings[name] = ranking_agreement([p.label for p in bench.items], groups, rank_groups(groups, found))
            found = pair_scores(groups, found)
        scores[name], seconds[name] = found, round(time.time() - start, 1)
    return scores, rankings, seconds


def evaluate(args, errors) -> tuple[list[dict], dict[str, list], dict[str, Benchmark]]:
    """The result of every benchmark, the scores behind them and the benchmarks, by name
    (``EvaluationError`` or ``CheckpointError``, one line, for what cannot be run)."""
    judge, score_range, name = None, DEFAULT_SCORE_RANGE, f"baseline: {args.baseline}"
    if args.checkpoint:
        from phudge_lightning.judge import Judge

        try:  # several: one ensemble (formats.load checks every path before loading any)
            judge = Judge.load(args.checkpoint, batch_size=args.batch_size, **judge_options(args))
        except CheckpointError:
            raise
        except ValueError as e:  # members that cannot make one ensemble; a scale without LoRA
            raise EvaluationError(str(e)) from e
        score_range, name = judge.score_range, " + ".join(args.checkpoint)  # benchmarks read on the judge's scale
    sets, slices = load_sets(args, score_range, errors)
    graded = [n for n in sets if n not in slices]  # each source's validation pairs are a slice of them all
    rankings, seconds = {}, {}
    if args.scores:
        from phudge_lightning.model.ensemble import mean_scores

        judges = saved_scores(args.scores, sets, graded)
        scores = {n: mean_scores([s[n] for s in judges.values()]) for n in graded}
        name = " + ".join(judges)
    else:
        scores, rankings, seconds = grade_sets(args, judge, sets, graded, errors)
    for part, where in slices.items():
        scores[part] = scores["validation_pairs"][where]
    results = []
    for bench_name, bench in sets.items():
        result = {
            **benchmark_metrics(bench, scores[bench_name], args.tie_margin), **rankings.get(bench_name, {}),
            "benchmark": bench_name, "kind": bench.kind, "label": bench.label, "data": bench.source,
            "judge": name, "rubric_free": args.rubric_free, "reference_free": args.reference_free,
            **({"rubric": args.rubric} if args.rubric is not None else {}),
            **({"score_range": list(score_range)} if tuple(score_range) != DEFAULT_SCORE_RANGE else {}),
            **({"lora_scale": args.lora_scale} if args.lora_scale != 1.0 else {}),
            **({"seconds": seconds[bench_name]} if args.checkpoint and bench_name in seconds else {}),
        }
        if args.baseline:
            result = scale_free(result)
        elif getattr(BENCHMARKS.get(bench_name), "report", None) is rewardbench_metrics:
            result.update(length_beside(bench))
        results.append(result)
    return results, scores, sets


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console

    console, errors = Console(), Console(stderr=True)
    try:
        results, scores, sets = evaluate(args, errors)
    except (CheckpointError, EvaluationError) as e:
        print(f"phudge evaluate: {e}", file=sys.stderr)
        return 1 if isinstance(e, NoValidRows) else 2
    for result in results:
        print_table(result, console)
    if len(results) > 1:
        print_summary(results, console)
    if args.output:
        judge = results[0]["judge"]
        written = [{**r, "scores": {judge: scores[r["benchmark"]]}} for r in results]
        atomic_write_json(args.output, written[0] if len(written) == 1 else written)
    if args.predictions:
        rows = [row for name, bench in sets.items() for row in item_rows(bench, scores[name])]
        atomic_write_text(args.predictions, "".join(json.dumps(row) + "\n" for row in rows))
    return 0
