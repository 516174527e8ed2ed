"""Issue 14's research probe: the features of each benchmark response with an empty user turn,
so that the conditioned likelihood minus this one (pointwise mutual information with the
instruction) can be scored.

    python scripts/research/smollm2_pmi.py
"""
import sys, numpy as np
sys.argv = [sys.argv[0]]  # feats.py runs nothing with no names
sys.path.insert(0, "scripts/research")
import smollm2_features as feats
names = {"hhh": "hhh_alignment_eval.json", "vicuna": "vicuna_eval.json", "mt_bench": "mt_bench_eval.json"}
for w in ["hhh", "vicuna", "mt_bench"]:
    items = [("", res) for _, res in feats.bench(w, names[w])]
    feats.feats(items, w + "_noinstr")
