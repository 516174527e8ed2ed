"""Grade one judge, an ensemble of judges, or the length baseline on Vicuna, MT-Bench and HHH in
one process, and print one summary line with its length robustness: the figures of the README's
results table.

    python scripts/evaluate_judge.py --checkpoint runs/.../best.ckpt --output results.json
    python scripts/evaluate_judge.py --checkpoint A.ckpt B.ckpt C.ckpt   # an ensemble (mean score)
    python scripts/evaluate_judge.py --checkpoint A.ckpt --validation configs/judge.yaml
    python scripts/evaluate_judge.py --baseline length
    python scripts/evaluate_judge.py --scores a.json b.json   # an ensemble of judges graded before

Each figure is the one ``phudge evaluate`` prints for that benchmark (same loaders, same
metrics, same ensemble rule: each item's mean score over the judges); this only saves loading
the judges once per benchmark. ``--validation CONFIG [OVERLAY...]`` also grades that training
config's validation split (the items its run held out, by instruction) as two more benchmarks,
its pairs and its scored records: the figure a checkpoint is chosen on (pair accuracy, ties
left out, as ``val/pair_accuracy``), computed here for an ensemble too. ``--output`` keeps every member's score of every
item, so ensembles of members already graded can be formed without grading again: ``--scores``
reads them back (every member of every file, graded with the same sets and options).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from phudge_lightning.benchmarks import ABSOLUTE, RELATIVE, Benchmark, benchmark_metrics, load_benchmark
from phudge_lightning.evaluate.run import ensemble_scores, judge_scores, length_scores

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/benchmarks"
SETS = {"vicuna": "vicuna_eval.json", "mt_bench": "mt_bench_eval.json", "hhh": "hhh_alignment_eval.json"}


def summary(name: str, results: dict) -> str:
    v, m, h = results["vicuna"], results["mt_bench"], results["hhh"]
    groups = h.get("accuracy_by_group", {})
    subsets = " ".join(f"{g}={a:.3f}" for g, a in groups.items())
    line = (f"{name}: vicuna pearson {v['pearson']:.4f} | mt_bench pearson {m['pearson']:.4f} | hhh {h['accuracy']:.4f} "
            f"({subsets}) | vicuna length_pearson {v['length_pearson']:.3f} | hhh shorter-preferred "
            f"{h['accuracy_shorter_preferred']:.3f} (n={h['n_shorter_preferred']})")
    if "validation_pairs" in results:
        pairs = results["validation_pairs"]
        line += f" | val pair_accuracy {pairs['accuracy']:.4f} (n={pairs['n']})"
        per_source = [f"{name.split('/', 1)[1]}={r['accuracy']:.3f} (n={r['n']})"
                      for name, r in results.items() if name.startswith("validation_pairs/")]
        line += f" [{' '.join(per_source)}]" if per_source else ""
    if "validation_ratings" in results:
        line += f", val pearson {results['validation_ratings']['pearson']:.4f}"
    return line


def validation_sets(configs: list[str]) -> tuple[dict, dict]:
    """The validation split of a training config and its overlays (their ``data`` sections, each
    key of a later one replacing the earlier; the tokenizer of ``model.backbone``), built as
    ``phudge fit`` builds it, as two benchmarks: its pairs and its scored records; and, when
    several sources hold pairs, each source's pairs as ``validation_pairs/<file stem>``, with
    where its records lie among the validation pairs' records (the sources' validation items
    follow one another in the split, in the config's order): (benchmarks, {name: slice})."""
    import yaml

    from datamodules import mixing
    from datamodules.judge_datamodule import JudgeDataModule
    from datamodules.records import Pair

    data, model = {}, {}
    for config in configs:
        cfg = yaml.safe_load(Path(config).read_text())
        data.update(cfg.get("data") or {})
        model.update(cfg.get("model") or {})
    module = JudgeDataModule(**{**data, "backbone": model["backbone"]})
    module.setup("validate")
    items, source = module.sets["val"].items, " ".join(configs)
    sets = {"validation_pairs": Benchmark("validation_pairs", RELATIVE, source, "the held-out preference",
                                          [it for it in items if isinstance(it, Pair)]),
            "validation_ratings": Benchmark("validation_ratings", ABSOLUTE, source, "the held-out score",
                                            [it for it in items if not isinstance(it, Pair)])}
    sets = {name: bench for name, bench in sets.items() if bench.items}  # a split may hold no pairs or no ratings
    sources = [mixing.Source.from_config(spec).data for spec in data.get("sources") or []]
    counts = [module.stats.get(f"val_items/{name}", 0) for name in sources]
    per_source = {}  # name: (its pairs, where their records lie among the validation pairs' records)
    if len(set(sources)) == len(sources) and sum(counts) == len(items):  # else the slices are not known
        start, first = 0, 0
        for name, count in zip(sources, counts):
            pairs = [it for it in items[start:start + count] if isinstance(it, Pair)]
            start += count
            if pairs:
                per_source[f"validation_pairs/{Path(name).name.split('.')[0]}"] = (pairs, slice(2 * first, 2 * (first + len(pairs))))
                first += len(pairs)
    if len(per_source) < 2:  # one source's pairs are the validation pairs themselves
        return sets, {}
    sets.update({name: Benchmark(name, RELATIVE, source, "the held-out preference", pairs)
                 for name, (pairs, _) in per_source.items()})
    return sets, {name: part for name, (_, part) in per_source.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    judge = parser.add_mutually_exclusive_group(required=True)
    judge.add_argument("--checkpoint", nargs="+", help="one judge, or several: an ensemble (each item's mean score)")
    judge.add_argument("--baseline", choices=("length",))
    judge.add_argument("--scores", nargs="+", metavar="JSON",
                       help="the members' scores in earlier --output files: their ensemble, graded again from those")
    parser.add_argument("--data", default=str(DATA), help="the folder of the benchmark files")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--validation", metavar="CONFIG", nargs="+",
                        help="also grade the validation split of this training config (and overlays)")
    parser.add_argument("--rubric-free", action="store_true")
    parser.add_argument("--reference-free", action="store_true")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lora-scale", type=float, default=1.0, metavar="LAMBDA",
                        help="grade with each LoRA update times LAMBDA (WiSE-FT: 0 = the pretrained backbone, 1 = as trained)")
    parser.add_argument("--output", help="write every figure, and every member's scores, to this JSON file")
    args = parser.parse_args()
    benches = {name: load_benchmark(name, str(Path(args.data) / SETS[name]), rubric_free=args.rubric_free,
                                    reference_free=args.reference_free) for name in args.sets}
    # Each source's held-out pairs are a run of the validation pairs: their scores are sliced from
    # those, not graded twice.
    slices = {}
    if args.validation:
        held_out, slices = validation_sets(args.validation)
        benches.update(held_out)
    sets = {name: (bench, bench.records()) for name, bench in benches.items()}
    graded = {name: value for name, value in sets.items() if name not in slices}
    members: dict[str, dict[str, list]] = {}
    seconds: dict[str, float] = {name: 0.0 for name in sets}
    if args.baseline:
        members["length"] = {name: length_scores(records) for name, (_, records) in graded.items()}
    elif args.scores:
        for path in args.scores:
            for member, scores in json.loads(Path(path).read_text())["scores"].items():
                missing = [name for name, (_, records) in graded.items() if len(scores.get(name, ())) != len(records)]
                if missing:
                    parser.error(f"{path}: {member} has no scores, or not one per item, for {missing}: "
                                 "grade with the same --sets, --validation and options")
                if member in members:  # two files naming one member (``default``) would average one of them away
                    parser.error(f"{path}: {member} is also in an earlier file; grade it once")
                members[member] = {name: scores[name] for name in graded}
    else:
        from phudge_lightning.judge import Judge

        for path in args.checkpoint:
            judge = Judge.load(path, batch_size=args.batch_size, max_length=args.max_length, lora_scale=args.lora_scale)
            members[path] = {}
            for name, (_, records) in graded.items():
                start = time.time()
                members[path][name] = judge_scores(judge, records)
                seconds[name] += time.time() - start
            del judge
    for scores in members.values():
        scores.update({name: scores["validation_pairs"][part] for name, part in slices.items()})
    results = {}
    for name, (bench, _) in sets.items():
        scores = ensemble_scores([m[name] for m in members.values()])
        results[name] = {**benchmark_metrics(bench, scores), "seconds": round(seconds[name], 1)}
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "convention"}), flush=True)
    if len(members) > 1:  # each member alone too: what the ensemble adds
        for path, scores in members.items():
            alone = {name: benchmark_metrics(bench, scores[name]) for name, (bench, _) in sets.items()}
            if set(SETS) <= set(alone):
                print("member", summary(path, alone))
    if set(SETS) <= set(results):
        print(summary(" + ".join(members) if not args.baseline else f"baseline {args.baseline}", results))
    if args.output:
        Path(args.output).write_text(json.dumps({**results, "scores": members}, indent=1))


if __name__ == "__main__":
    main()
