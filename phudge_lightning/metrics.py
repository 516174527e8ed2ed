"""The paper's metrics as torchmetrics collections: correlations and errors against the label."""

from __future__ import annotations

import math

import torch
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
