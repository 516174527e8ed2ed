"""Grade one judge, an ensemble of judges, or the length baseline on Vicuna, MT-Bench and HHH in
one process, and print one summary line with its length robustness: the figures of the README's
results table.

    python scripts/evaluate_judge.py --checkpoint runs/.../best.ckpt --output results.json
    python scripts/evaluate_judge.py --checkpoint A.ckpt B.ckpt C.ckpt   # an ensemble (mean score)
    python scripts/evaluate_judge.py --checkpoint A.ckpt --validation configs/judge.yaml
    python scripts/evaluate_judge.py --baseline length

Each figure is the one ``phudge evaluate`` prints for that benchmark (same loaders, same
metrics, same ensemble rule: each item's mean score over the judges); this only saves loading
the judges once per benchmark. ``--validation CONFIG [OVERLAY...]`` also grades that training config's
validation split (the items its run held out, by instruction): the figure a checkpoint is
chosen on, computed here for an ensemble too. ``--output`` keeps every member's score of every
item, so ensembles of members already graded can be formed without grading again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from phudge_lightning.benchmarks import benchmark_metrics, load_benchmark
from phudge_lightning.evaluate.run import ensemble_scores, judge_scores, length_scores
from phudge_lightning.metrics import absolute_metrics, pair_metrics

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/benchmarks"
SETS = {"vicuna": "vicuna_eval.json", "mt_bench": "mt_bench_eval.json", "hhh": "hhh_alignment_eval.json"}


def summary(name: str, results: dict) -> str:
    v, m, h = results["vicuna"], results["mt_bench"], results["hhh"]
    groups = h.get("accuracy_by_group", {})
    subsets = " ".join(f"{g}={a:.3f}" for g, a in groups.items())
    line = (f"{name}: vicuna pearson {v['pearson']:.4f} | mt_bench pearson {m['pearson']:.4f} | hhh {h['accuracy']:.4f} "
            f"({subsets}) | vicuna length_pearson {v['length_pearson']:.3f} | hhh shorter-preferred "
            f"{h['accuracy_shorter_preferred']:.3f} (n={h['n_shorter_preferred']})")
    if "validation" in results:
        val = results["validation"]
        line += f" | val pair_accuracy {val['pair_accuracy']:.4f} (n={val['pairs']}), val pearson {val['pearson']:.4f}"
    return line


def validation_items(configs: list[str]) -> list:
    """The validation split of a training config and its overlays (their ``data`` sections, each
    key of a later one replacing the earlier; the tokenizer of ``model.backbone``): records and
    pairs, built as ``phudge fit`` builds them."""
    import yaml

    from datamodules.feedback_collection import FeedbackCollectionDataModule

    data, model = {}, {}
    for config in configs:
        cfg = yaml.safe_load(Path(config).read_text())
        data.update(cfg.get("data") or {})
        model.update(cfg.get("model") or {})
    module = FeedbackCollectionDataModule(**{**data, "backbone": model["backbone"]})
    module.setup("validate")
    return module.sets["val"].items


def validation_metrics(items: list, scores: list) -> dict:
    """``pair_accuracy`` over the decided pairs (a soft preference read as its side; ties left out,
    as ``val/pair_accuracy`` in training) and ``pearson`` over the scored records."""
    from datamodules.records import Pair

    pairs, records, position = [], [], 0
    for item in items:
        if isinstance(item, Pair):
            pairs.append((item, scores[position], scores[position + 1]))
            position += 2
        else:
            records.append((item, scores[position]))
            position += 1
    decided = [(p, a, b) for p, a, b in pairs if p.label != "tie"]
    out = pair_metrics([p.label for p, _, _ in decided], [a for _, a, _ in decided], [b for _, _, b in decided])
    result = {"pair_accuracy": out["accuracy"], "pairs": len(decided)}
    if len(records) >= 2:
        result.update({"pearson": absolute_metrics([s for _, s in records], [r.score for r, _ in records])["pearson"],
                       "records": len(records)})
    return result


def flat_records(items: list) -> list:
    from datamodules.records import Pair

    return [r for item in items for r in ((item.a, item.b) if isinstance(item, Pair) else (item,))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    judge = parser.add_mutually_exclusive_group(required=True)
    judge.add_argument("--checkpoint", nargs="+", help="one judge, or several: an ensemble (each item's mean score)")
    judge.add_argument("--baseline", choices=("length",))
    parser.add_argument("--data", default=str(DATA), help="the folder of the benchmark files")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--validation", metavar="CONFIG", nargs="+",
                        help="also grade the validation split of this training config (and overlays)")
    parser.add_argument("--rubric-free", action="store_true")
    parser.add_argument("--reference-free", action="store_true")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output", help="write every figure, and every member's scores, to this JSON file")
    args = parser.parse_args()
    sets = {}
    for name in args.sets:
        bench = load_benchmark(name, str(Path(args.data) / SETS[name]), rubric_free=args.rubric_free,
                               reference_free=args.reference_free)
        sets[name] = (bench, bench.records())
    if args.validation:
        items = validation_items(args.validation)
        sets["validation"] = (items, flat_records(items))
    members: dict[str, dict[str, list]] = {}
    seconds: dict[str, float] = {name: 0.0 for name in sets}
    if args.baseline:
        members["length"] = {name: length_scores(records) for name, (_, records) in sets.items()}
    else:
        from phudge_lightning.judge import Judge

        for path in args.checkpoint:
            judge = Judge.load(path, batch_size=args.batch_size, max_length=args.max_length)
            members[path] = {}
            for name, (_, records) in sets.items():
                start = time.time()
                members[path][name] = judge_scores(judge, records)
                seconds[name] += time.time() - start
            del judge
    results = {}
    for name, (bench, _) in sets.items():
        scores = ensemble_scores([m[name] for m in members.values()])
        if name == "validation":
            results[name] = validation_metrics(bench, scores)
        else:
            results[name] = {**benchmark_metrics(bench, scores), "seconds": round(seconds[name], 1)}
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "convention"}), flush=True)
    if len(members) > 1:  # each member alone too: what the ensemble adds
        for path, scores in members.items():
            alone = {name: (validation_metrics(bench, scores[name]) if name == "validation"
                            else benchmark_metrics(bench, scores[name])) for name, (bench, _) in sets.items()}
            if set(SETS) <= set(alone):
                print("member", summary(path, alone))
    if set(SETS) <= set(results):
        print(summary(" + ".join(args.checkpoint) if args.checkpoint else f"baseline {args.baseline}", results))
    if args.output:
        Path(args.output).write_text(json.dumps({**results, "scores": members}, indent=1))


if __name__ == "__main__":
    main()
