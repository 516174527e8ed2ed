"""The paper's metrics as torchmetrics collections: correlations and errors against the label."""

from __future__ import annotations

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection, PearsonCorrCoef, R2Score, SpearmanCorrCoef, KendallRankCorrCoef
from torchmetrics.classification import MulticlassAccuracy


class RoundedAccuracy(Metric):
    """Share of rows whose prediction, rounded to the scale 1..5, equals the rounded label."""

    def __init__(self):
        super().__init__()
        self.inner = MulticlassAccuracy(num_classes=5, average="micro")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        as_class = lambda x: x.round().clamp(1, 5).long() - 1  # noqa: E731
        self.inner.update(as_class(prediction), as_class(target))

    def compute(self) -> torch.Tensor:
        return self.inner.compute()

    def reset(self) -> None:
        super().reset()
        self.inner.reset()


def score_metrics(prefix: str) -> MetricCollection:
    """``{prefix}pearson``, spearman, kendall, r2, mae, mse and accuracy, synchronised across devices."""
    return MetricCollection(
        {
            "pearson": PearsonCorrCoef(),
            "spearman": SpearmanCorrCoef(),
            "kendall": KendallRankCorrCoef(),
            "r2": R2Score(),
            "mae": MeanAbsoluteError(),
            "mse": MeanSquaredError(),
            "accuracy": RoundedAccuracy(),
        },
        prefix=prefix,
    )
