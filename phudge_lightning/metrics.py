"""The paper's metrics, one owner: torchmetrics collections for training (correlations and errors
against the label), and the benchmark figures of ``phudge evaluate`` (absolute and pairwise,
and how much a judge leans on response length)."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torchmetrics.functional import (kendall_rank_corrcoef, mean_absolute_error, mean_squared_error,
                                     pearson_corrcoef, r2_score, spearman_corrcoef)
from torchmetrics.functional.classification import multiclass_accuracy
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection, PearsonCorrCoef, R2Score, SpearmanCorrCoef, KendallRankCorrCoef
from torchmetrics.classification import MulticlassAccuracy


class RoundedAccuracy(Metric):
    """Share of rows whose prediction, rounded to an integer score of ``score_range`` (1..5 by
    default; C = high - low + 1 classes), equals the rounded label."""

    def __init__(self, score_range: tuple[float, float] = (1, 5)):
        super().__init__()
        self.low, self.high = math.floor(score_range[0]), math.ceil(score_range[1])
        self.inner = MulticlassAccuracy(num_classes=self.high - self.low + 1, average="micro")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        as_class = lambda x: x.round().clamp(self.low, self.high).long() - self.low  # noqa: E731
        self.inner.update(as_class(prediction), as_class(target))

    def compute(self) -> torch.Tensor:
        return self.inner.compute()

    def reset(self) -> None:
        super().reset()
        self.inner.reset()


def score_metrics(prefix: str, score_range: tuple[float, float] = (1, 5)) -> MetricCollection:
    """``{prefix}pearson``, spearman, kendall, r2, mae, mse and accuracy, synchronised across devices."""
    return MetricCollection(
        {
            "pearson": PearsonCorrCoef(),
            "spearman": SpearmanCorrCoef(),
            "kendall": KendallRankCorrCoef(),
            "r2": R2Score(),
            "mae": MeanAbsoluteError(),
            "mse": MeanSquaredError(),
            "accuracy": RoundedAccuracy(score_range),
        },
        prefix=prefix,
    )


VERDICTS = ("A", "B", "tie", "invalid")  # class ids for the accuracy; a label is never "invalid"
STRICT = ("strict: pairs labelled tie are left out; on the rest a predicted tie (equal scores) "
          "or a missing score counts as wrong")
WITH_TIES = ("with ties: every pair; predicted tie when |score_a - score_b| <= tie_margin, "
             "right when the verdict equals the label")


def verdict(score_a: float | None, score_b: float | None, tie_margin: float = 0.0) -> str:
    """"A", "B" or "tie" (|score_a - score_b| <= tie_margin); "invalid" when a score is missing."""
    if score_a is None or score_b is None or not (math.isfinite(score_a) and math.isfinite(score_b)):
        return "invalid"
    if abs(score_a - score_b) <= tie_margin:
        return "tie"
    return "A" if score_a > score_b else "B"


def pairwise_probabilities(p_a: list[float], p_b: list[float]) -> tuple[float, float]:
    """P(X_A > X_B) = sum_{i > j} p_a[i] p_b[j] and P(X_A = X_B) = sum_i p_a[i] p_b[i], for
    independent X_A ~ p_a and X_B ~ p_b over the judge's integer scores."""
    a, b = torch.tensor(p_a, dtype=torch.float64), torch.tensor(p_b, dtype=torch.float64)
    joint = torch.outer(a, b)
    return float(torch.tril(joint, diagonal=-1).sum()), float(torch.diagonal(joint).sum())


# -- benchmark figures -------------------------------------------------------------------------------------
def _value(x: torch.Tensor) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None  # JSON has no NaN: an undefined figure is null


def absolute_metrics(predictions: Sequence[float | None], targets: Sequence[float]) -> dict:
    """The paper's absolute metrics over the rows that have a prediction (torchmetrics):

    - ``pearson`` = cov(p, t) / (sd(p) sd(t)); ``spearman``: Pearson of the ranks (ties get
      their mean rank); ``kendall``: tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2));
    - ``r2`` = 1 - sum (t - p)^2 / sum (t - mean t)^2; ``mae`` = mean |p - t|;
      ``mse`` = mean (p - t)^2.

    ``n`` counts the rows used; ``no_score`` the rows whose prediction is missing (the causal
    head without ``[RESULT]``), which are left out. A figure that is undefined (constant
    predictions, fewer than two rows) is None.
    """
    kept = [(p, t) for p, t in zip(predictions, targets) if p is not None and math.isfinite(p)]
    out = {"n": len(kept), "no_score": len(predictions) - len(kept)}
    names = ("pearson", "spearman", "kendall", "r2", "mae", "mse")
    if len(kept) < 2:
        return {**out, **dict.fromkeys(names)}
    p, t = torch.tensor(kept, dtype=torch.float64).T
    functions = (pearson_corrcoef, spearman_corrcoef, kendall_rank_corrcoef, r2_score,
                 mean_absolute_error, mean_squared_error)
    with warnings.catch_warnings():  # a constant judge: the correlation is reported as None instead
        warnings.filterwarnings("ignore", message=".*variance of predictions or target is close to zero.*")
        return {**out, **{name: _value(fn(p, t)) for name, fn in zip(names, functions)}}


def _accuracy(predicted: list[str], labels: list[str]) -> float | None:
    if not labels:
        return None
    ids = lambda xs: torch.tensor([VERDICTS.index(x) for x in xs])  # noqa: E731
    return _value(multiclass_accuracy(ids(predicted), ids(labels), num_classes=len(VERDICTS), average="micro"))


def pair_metrics(labels: Sequence[str], scores_a: Sequence[float | None], scores_b: Sequence[float | None],
                 tie_margin: float = 0.0, groups: Sequence[str | None] | None = None) -> dict:
    """Pair accuracy under two conventions.

    - ``accuracy`` (strict, the default convention): pairs labelled tie are left out (their
      number is ``ties``); over the other ``n`` pairs a pair is right only when the better
      response got the strictly higher score: equal scores (``predicted_ties``) and missing
      scores (``no_score``) count as wrong.
      accuracy = #{label A and s_a > s_b, or label B and s_b > s_a} / n.
    - ``accuracy_with_ties`` (only where some pairs are labelled tie): over all ``n_with_ties``
      pairs, the verdict is "tie" when |s_a - s_b| <= ``tie_margin``, else the higher score,
      and a pair is right when the verdict equals the label.
    - ``accuracy_by_group`` (where ``groups`` names a subset per pair, e.g. HHH's helpful /
      harmless / honest / other): the strict accuracy within each subset.
    """
    labels = list(labels)
    strict = [i for i, label in enumerate(labels) if label != "tie"]
    predicted = [verdict(a, b, 0.0) for a, b in zip(scores_a, scores_b)]
    out = {
        "n": len(strict),
        "accuracy": _accuracy([predicted[i] for i in strict], [labels[i] for i in strict]),
        "ties": len(labels) - len(strict),
        "predicted_ties": sum(predicted[i] == "tie" for i in strict),
        "no_score": sum(p == "invalid" for p in predicted),
        "convention": STRICT,
    }
    if groups is not None and any(g is not None for g in groups):
        names = sorted({str(g) for g in groups})
        out["accuracy_by_group"] = {
            name: _accuracy([predicted[i] for i in strict if str(groups[i]) == name],
                            [labels[i] for i in strict if str(groups[i]) == name]) for name in names}
    if out["ties"]:
        with_margin = [verdict(a, b, tie_margin) for a, b in zip(scores_a, scores_b)]
        out.update({"accuracy_with_ties": _accuracy(with_margin, labels), "n_with_ties": len(labels),
                    "tie_margin": tie_margin, "convention_with_ties": WITH_TIES})
    return out




def length_robustness(kind: str, scores: Sequence[float | None], lengths: Sequence[int], labels: Sequence | None = None) -> dict:
    """How much a judge's scores follow response length (in characters).

    - absolute sets: ``length_pearson``, the Pearson correlation of the scores with the
      responses' lengths;
    - pairwise sets (``scores`` and ``lengths`` a then b of each pair, ``labels`` "A"/"B"/"tie"):
      ``accuracy_shorter_preferred``, the strict accuracy on the pairs whose better response is
      the shorter one (``n_shorter_preferred`` of them), where a length judge is always wrong;
      and ``length_pearson`` over every response.
    """
    kept = [(s, n) for s, n in zip(scores, lengths) if s is not None and math.isfinite(s)]
    out = {"length_pearson": None}
    if len(kept) >= 2:
        s, n = torch.tensor(kept, dtype=torch.float64).T
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*variance of predictions or target is close to zero.*")
            out["length_pearson"] = _value(pearson_corrcoef(s, n))
    if kind == "absolute":
        return out
    sa, sb, la, lb = scores[0::2], scores[1::2], lengths[0::2], lengths[1::2]
    shorter = [i for i, label in enumerate(labels)
               if (label == "A" and la[i] < lb[i]) or (label == "B" and lb[i] < la[i])]
    out["n_shorter_preferred"] = len(shorter)
    out["accuracy_shorter_preferred"] = _accuracy([verdict(sa[i], sb[i]) for i in shorter],
                                                  [labels[i] for i in shorter])
    return out
