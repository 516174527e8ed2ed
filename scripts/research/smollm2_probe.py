"""Issue 14's research probe, step 2: logistic regression on the features' pair differences
(training pairs: AlpacaEval length-balanced and/or HH-RLHF; ``autoj`` adds Auto-J ratings as
pairs of rows with different scores), scored on HHH, Vicuna and MT-Bench (rubric- and
reference-free) with the project's metrics.

    python scripts/research/smollm2_probe.py alpaca,hh
"""
import sys, numpy as np, os, itertools
sys.path.insert(0, ".")
from sklearn.linear_model import LogisticRegression, Ridge
from phudge_lightning.benchmarks import load_benchmark, benchmark_metrics
F = "runs/research/features/"; d = 576
B = {n: (load_benchmark(n, f"../shared/data/benchmarks/{fn}_eval.json", rubric_free=True, reference_free=True), np.load(F + n + ".npz"))
     for n, fn in (("hhh", "hhh_alignment"), ("vicuna", "vicuna"), ("mt_bench", "mt_bench")) if os.path.exists(F + n + ".npz")}
def X(f, kind, li, extra):
    Z = f[kind][:, li*d:(li+1)*d] if li is not None else f[kind]
    cols = [Z]
    if "lp" in extra: cols.append(f["lp_mean"][:, None] * 10)
    if "n" in extra: cols.append(np.log1p(f["n"])[:, None] * 10)
    return np.concatenate(cols, 1)
srcs = sys.argv[1].split(","); use_autoj = "autoj" in srcs; srcs = [s for s in srcs if s != "autoj"]
for kind, li, extra, C in itertools.product(("mean", "last"), (0, 1, 4), ("", "lp"), (0.01, 0.1)):
    Ds, ys, ws = [], [], []
    for s in srcs:
        f = np.load(F + s + ".npz"); p = np.load(F + s + "_lab.npz")["pref"]; Z = X(f, kind, li, extra)
        D = Z[0::2] - Z[1::2]; k = p != 0.5; D, y, w = D[k], (p[k] > .5).astype(float), np.abs(p[k] - .5) * 2
        Ds += [D, -D]; ys += [y, 1 - y]; ws += [w, w]
    if use_autoj:  # absolute ratings as pairs within the same score gap: all pairs of rows with different scores (sampled)
        f = np.load(F + "autoj.npz"); sc = np.load(F + "autoj_lab.npz")["score"]; Z = X(f, kind, li, extra)
        rng = np.random.default_rng(0); i, j = rng.integers(0, len(sc), 3000), rng.integers(0, len(sc), 3000); k = sc[i] != sc[j]
        D = Z[i[k]] - Z[j[k]]; y = (sc[i[k]] > sc[j[k]]).astype(float); Ds += [D, -D]; ys += [y, 1 - y]; ws += [np.full(len(y), .3)] * 2
    D = np.concatenate(Ds); y = np.concatenate(ys); w = np.concatenate(ws); sd = D.std(0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=3000, fit_intercept=False).fit(D / sd, y, sample_weight=w)
    line = f"{kind} L{li} {extra or '-'} C{C}:"
    for n, (b, f) in B.items():
        m = benchmark_metrics(b, list((X(f, kind, li, extra) / sd) @ clf.coef_[0]))
        if n == "hhh": line += f" hhh {m['accuracy']:.3f} (" + " ".join(f"{g[:4]}={a:.2f}" for g, a in m["accuracy_by_group"].items()) + f") short {m['accuracy_shorter_preferred']:.2f}"
        else: line += f" | {n} {m['pearson']:.3f} (len {m['length_pearson']:.2f})"
    print(line, flush=True)
