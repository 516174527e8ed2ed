"""Issue 14's research probe: how well the frozen SmolLM2 features separate HHH's own pairs
(5-fold cross-validation on HHH itself, folds by pair): an upper bound on what the backbone
holds, not a judge (it is fitted on the test set).

    python scripts/research/smollm2_hhh_cv.py      (after smollm2_features.py hhh)
"""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
f = np.load("runs/research/features/hhh.npz"); d = 576
for kind in ("last", "mean"):
    X = f[kind]
    for li in range(5):
        Z = X[:, li*d:(li+1)*d]; D = Z[0::2] - Z[1::2]
        D2 = np.concatenate([D, -D]); y = np.r_[np.ones(len(D)), np.zeros(len(D))]
        # folds must keep a pair and its mirror together: use groups
        from sklearn.model_selection import GroupKFold
        g = np.r_[np.arange(len(D)), np.arange(len(D))]
        for C in (0.01, 0.1):
            s = cross_val_score(LogisticRegression(C=C, max_iter=2000, fit_intercept=False), D2, y, groups=g, cv=GroupKFold(5))
            print(kind, li, C, round(s.mean(), 3))
