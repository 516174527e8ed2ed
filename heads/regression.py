"""The regression head: pooled hidden state -> one score on the 1..5 scale."""

from __future__ import annotations

import torch
from torch import nn

from heads.registry import register_head


@register_head("regression")
class RegressionHead(nn.Module):
    """score = w . dropout(h) + b, with b starting at 3 (the middle of the scale).

    Starting at the middle keeps the first MSE steps about the ranking, not about moving a
    zero output up to the scale.
    """

    target = "scalar"
    default_loss = "mse"
    uses_lm_head = False

    def __init__(self, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.proj.weight, std=hidden_size**-0.5 * 0.1)
        nn.init.constant_(self.proj.bias, 3.0)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(pooled.to(self.proj.weight.dtype))).squeeze(-1)

    @staticmethod
    def scores(prediction: torch.Tensor) -> torch.Tensor:
        return prediction.float()

    @staticmethod
    def probabilities(prediction: torch.Tensor) -> None:
        return None
