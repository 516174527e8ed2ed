"""Issue 14's research probe: the response's mean log-likelihood under SmolLM2-Instruct as a
zero-shot judge, its accuracy on the training pairs, and a 2-feature fit (with log length).

    python scripts/research/smollm2_likelihood.py
"""
import sys, numpy as np, os
sys.path.insert(0, ".")
from phudge_lightning.benchmarks import load_benchmark, benchmark_metrics
from sklearn.linear_model import LogisticRegression
F = "runs/research/features/"
def hard(s):
    f = np.load(F + s + ".npz"); pref = np.load(F + s + "_lab.npz")["pref"]; return f, pref
def feat(f): return np.c_[f["lp_mean"], np.log1p(f["n"]), f["lp_sum"]]
for s in ("hh", "alpaca"):
    f, pref = hard(s); keep = pref != 0.5; y = pref[keep] > 0.5
    for k, name in enumerate(("lp_mean", "logn", "lp_sum")):
        d = feat(f)[0::2, k] - feat(f)[1::2, k]; print(s, name, "train-pair acc", round(((d[keep] > 0) == y).mean(), 3))
X, Y = [], []
for s in ("hh", "alpaca"):
    f, pref = hard(s); keep = pref != 0.5; D = (feat(f)[0::2] - feat(f)[1::2])[keep][:, :2]; y = pref[keep] > 0.5
    X += [D, -D]; Y += [y, ~y]
clf = LogisticRegression(fit_intercept=False).fit(np.concatenate(X), np.concatenate(Y)); print("coef lp_mean, logn", clf.coef_)
for n in ("hhh", "vicuna", "mt_bench"):
    if not os.path.exists(F + n + ".npz"): continue
    b = load_benchmark(n, f"../shared/data/benchmarks/{ {'hhh':'hhh_alignment','vicuna':'vicuna','mt_bench':'mt_bench'}[n]}_eval.json", rubric_free=True, reference_free=True)
    f = np.load(F + n + ".npz")
    for name, sc in (("lp_mean", f["lp_mean"]), ("combo", feat(f)[:, :2] @ clf.coef_[0])):
        m = benchmark_metrics(b, list(sc))
        print(n, name, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items() if k in ("pearson", "accuracy", "accuracy_by_group", "length_pearson", "accuracy_shorter_preferred")})
