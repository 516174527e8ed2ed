"""Does a validation rank judges as a test set does? The agreement of two benchmarks across judges.

    python -m phudge_lightning.evaluate.agreement A.json B.json ... [--validation validation_pairs] [--test hhh]

Each file is one judge's ``phudge evaluate --output``, graded on both benchmarks. Prints each
judge's two figures (pair accuracy for pairs, Pearson for scores) and, across the judges,
Pearson's r and Spearman's rho between them. A validation chooses judges well only where r > 0:
a validation whose ranking runs against the test's picks the judges the test finds worst.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def figure(result: dict) -> float:
    """The benchmark's headline figure: pair accuracy for pairs, Pearson for scores."""
    return float(result["accuracy"] if result.get("kind") == "relative" or "accuracy" in result else result["pearson"])


def read(path: str, names: tuple[str, str]) -> tuple[str, list[float]]:
    """(judge, [figure of each benchmark in ``names``]) from one ``--output`` file."""
    results = json.loads(Path(path).read_text())
    results = results if isinstance(results, list) else [results]
    by_name = {r.get("benchmark"): r for r in results}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} in it (graded with --benchmark / --validation?)")
    return str(results[0].get("judge", path)), [figure(by_name[n]) for n in names]


def agreement(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(Pearson r, Spearman rho) of two figures across judges."""
    from scipy.stats import pearsonr, spearmanr

    return float(pearsonr(xs, ys)[0]), float(spearmanr(xs, ys)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phudge_lightning.evaluate.agreement", description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs", nargs="+", help="phudge evaluate --output files, one judge each")
    parser.add_argument("--validation", default="validation_pairs", help="the benchmark that chooses (default validation_pairs)")
    parser.add_argument("--test", default="hhh", help="the benchmark it should agree with (default hhh)")
    args = parser.parse_args(argv)
    try:
        rows = [read(path, (args.validation, args.test)) for path in args.outputs]
    except (OSError, ValueError) as e:
        print(f"agreement: {e}", file=sys.stderr)
        return 2
    if len(rows) < 3:
        print("agreement: at least 3 judges are needed", file=sys.stderr)
        return 2
    width = max(len(judge) for judge, _ in rows)
    print(f"{'judge':<{width}}  {args.validation:>16}  {args.test:>8}")
    for judge, (v, t) in sorted(rows, key=lambda row: -row[1][0]):
        print(f"{judge:<{width}}  {v:>16.4f}  {t:>8.4f}")
    r, rho = agreement([v for _, (v, _) in rows], [t for _, (_, t) in rows])
    print(f"{len(rows)} judges: {args.validation} against {args.test}: pearson {r:.3f}, spearman {rho:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
