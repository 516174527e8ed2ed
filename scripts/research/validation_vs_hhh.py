"""Does a judge's validation accuracy predict its HHH accuracy? Across judges, the Pearson and
Spearman correlation of each validation figure (all pairs, and each pair source's) with HHH
accuracy and with Vicuna Pearson (and of those two with each other), from ``scripts/evaluate_judge.py --output`` files graded with
the same ``--validation`` (e.g. the length-balanced one, ``configs/judge-search/balanced-val.yaml``).
Give each judge once: two files of one judge count it twice.

    python scripts/research/validation_vs_hhh.py runs/balval/*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import pearsonr, spearmanr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs", nargs="+", help="--output files of scripts/evaluate_judge.py")
    args = parser.parse_args()
    rows = {}
    for path in args.outputs:
        result = json.loads(Path(path).read_text())
        if not {"hhh", "vicuna", "validation_pairs"} <= set(result):
            print(f"skipped {path}: it lacks hhh, vicuna or validation_pairs")
            continue
        validation = {name: v["accuracy"] for name, v in result.items() if name.startswith("validation_pairs")}
        rows[path] = {**validation, "hhh": result["hhh"]["accuracy"], "vicuna": result["vicuna"]["pearson"]}
    names = sorted(set.intersection(*(set(r) for r in rows.values())) - {"hhh", "vicuna"})
    print(f"{len(rows)} judges")
    for name in names:
        x = [r[name] for r in rows.values()]
        for target in ("hhh", "vicuna"):
            y = [r[target] for r in rows.values()]
            print(f"{name} vs {target}: pearson {pearsonr(x, y)[0]:.2f}, spearman {spearmanr(x, y)[0]:.2f}")
    hhh, vicuna = [r["hhh"] for r in rows.values()], [r["vicuna"] for r in rows.values()]
    print(f"hhh vs vicuna: pearson {pearsonr(hhh, vicuna)[0]:.2f}, spearman {spearmanr(hhh, vicuna)[0]:.2f}")


if __name__ == "__main__":
    main()
