"""Issue 14's research probe: score HHH, Vicuna and MT-Bench by the response's pointwise mutual
information with the instruction under SmolLM2-Instruct (mean log-likelihood given the
instruction minus given an empty user turn), alone and beside the plain likelihood.

    python scripts/research/smollm2_pmi_score.py      (after smollm2_features.py and smollm2_pmi.py)
"""
import os, sys
import numpy as np
sys.path.insert(0, ".")
from phudge_lightning.benchmarks import benchmark_metrics, load_benchmark

F = "runs/research/features/"
FILES = {"hhh": "hhh_alignment", "vicuna": "vicuna", "mt_bench": "mt_bench"}
for name, file in FILES.items():
    if not os.path.exists(F + name + "_noinstr.npz"):
        continue
    bench = load_benchmark(name, f"../shared/data/benchmarks/{file}_eval.json", rubric_free=True, reference_free=True)
    given, alone = np.load(F + name + ".npz"), np.load(F + name + "_noinstr.npz")
    for label, scores in (("lp_mean", given["lp_mean"]), ("pmi_mean", given["lp_mean"] - alone["lp_mean"]),
                          ("pmi_sum", given["lp_sum"] - alone["lp_sum"])):
        m = benchmark_metrics(bench, list(scores))
        if bench.kind == "relative":
            groups = " ".join(f"{g}={a:.3f}" for g, a in m["accuracy_by_group"].items())
            print(f"{name} {label}: accuracy {m['accuracy']:.4f} ({groups}) shorter-preferred {m['accuracy_shorter_preferred']:.3f}")
        else:
            print(f"{name} {label}: pearson {m['pearson']:.4f} length_pearson {m['length_pearson']:.3f}")
