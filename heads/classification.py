"""The classification head: pooled hidden state -> five logits over the scores 1..5."""

from __future__ import annotations

import torch
from torch import nn

from heads.registry import register_head

SCORES = torch.arange(1, 6, dtype=torch.float32)


@register_head("classification")
class ClassificationHead(nn.Module):
    """logits = W . dropout(h) + b; p = softmax(logits); score = sum_k k p_k (k = 1..5).

    The expected score keeps the fine grain that an argmax loses; the whole distribution is
    there too, for a confidence.
    """

    target = "distribution"
    default_loss = "emd_squared"
    uses_lm_head = False

    def __init__(self, hidden_size: int, dropout: float = 0.0, num_classes: int = 5):
        super().__init__()
        if num_classes != 5:
            raise ValueError("the classification head scores on 1..5: num_classes must be 5")
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, num_classes)
        nn.init.normal_(self.proj.weight, std=hidden_size**-0.5 * 0.1)
        nn.init.zeros_(self.proj.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(pooled.to(self.proj.weight.dtype)))

    @staticmethod
    def probabilities(prediction: torch.Tensor) -> torch.Tensor:
        return prediction.float().softmax(-1)

    @classmethod
    def scores(cls, prediction: torch.Tensor) -> torch.Tensor:
        return cls.probabilities(prediction) @ SCORES.to(prediction.device)
