"""Grade one judge (or the length baseline) on Vicuna, MT-Bench and HHH in one process, and
print one summary line with its length robustness: the figures of the README's results table.

    python scripts/evaluate_judge.py --checkpoint runs/.../best.ckpt --output results.json
    python scripts/evaluate_judge.py --baseline length

Each figure is the one ``phudge evaluate`` prints for that benchmark (same loaders, same
metrics); this only saves loading the judge three times.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from phudge_lightning.benchmarks import benchmark_metrics, load_benchmark
from phudge_lightning.evaluate.run import judge_scores, length_scores

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/benchmarks"
SETS = {"vicuna": "vicuna_eval.json", "mt_bench": "mt_bench_eval.json", "hhh": "hhh_alignment_eval.json"}


def summary(name: str, results: dict) -> str:
    v, m, h = results["vicuna"], results["mt_bench"], results["hhh"]
    groups = h.get("accuracy_by_group", {})
    subsets = " ".join(f"{g}={a:.3f}" for g, a in groups.items())
    return (f"{name}: vicuna pearson {v['pearson']:.4f} | mt_bench pearson {m['pearson']:.4f} | hhh {h['accuracy']:.4f} "
            f"({subsets}) | vicuna length_pearson {v['length_pearson']:.3f} | hhh shorter-preferred "
            f"{h['accuracy_shorter_preferred']:.3f} (n={h['n_shorter_preferred']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    judge = parser.add_mutually_exclusive_group(required=True)
    judge.add_argument("--checkpoint")
    judge.add_argument("--baseline", choices=("length",))
    parser.add_argument("--data", default=str(DATA), help="the folder of the benchmark files")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--rubric-free", action="store_true")
    parser.add_argument("--reference-free", action="store_true")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output", help="write every figure to this JSON file")
    args = parser.parse_args()
    if args.checkpoint:
        from phudge_lightning.judge import Judge

        judge = Judge.load(args.checkpoint, batch_size=args.batch_size, max_length=args.max_length)
    results = {}
    for name in args.sets:
        start = time.time()
        bench = load_benchmark(name, str(Path(args.data) / SETS[name]), rubric_free=args.rubric_free,
                               reference_free=args.reference_free)
        records = bench.records()
        scores = length_scores(records) if args.baseline else judge_scores(judge, records)
        results[name] = {**benchmark_metrics(bench, scores), "seconds": round(time.time() - start, 1)}
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "convention"}), flush=True)
    if set(SETS) <= set(results):
        print(summary(args.checkpoint or f"baseline {args.baseline}", results))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
