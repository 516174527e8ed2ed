"""Losses for the regression head: one score per row on the judge's scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losses.registry import register_loss


@register_loss("mse", target="scalar")
def mse(prediction: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Mean squared error: (1/N) sum_n (prediction_n - score_n)^2."""
    return F.mse_loss(prediction.float(), score.float())
