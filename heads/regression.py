"""The regression head: pooled hidden state -> one score on the judge's scale."""

from __future__ import annotations

import torch
from torch import nn

from heads.folded import projection
from heads.registry import register_head


@register_head("regression")
class RegressionHead(nn.Module):
    """score = w . dropout(h) + b, with b starting at (low + high) / 2, the middle of
    ``score_range`` (3 on the default 1..5), and w's spread scaled with the range's width.

    Starting at the middle keeps the first MSE steps about the ranking, not about moving a
    zero output up to the scale. The score is not clipped to the range. ``bias=False`` drops b
    (score = w . h); ``bias="folded"`` learns b along a fixed direction u of the pooled states
    (score = w . h + b (u . h), ``heads.folded``): both are the form a decoder's
    ``*ForSequenceClassification`` holds, whose ``score`` layer has no bias (``phudge export
    --format hf`` refuses a decoder judge with a plain non-zero b). Folded keeps the start at
    the middle of the range, so the decoder recipes use it.
    """

    target = "scalar"
    default_loss = "mse"
    uses_lm_head = False

    def __init__(self, hidden_size: int, dropout: float = 0.0, score_range: tuple[float, float] = (1, 5),
                 bias: bool | str = True):
        super().__init__()
        low, high = (float(x) for x in score_range)
        if not high > low:
            raise ValueError(f"score_range must be [low, high] with low < high, got {list(score_range)}")
        self.dropout = nn.Dropout(dropout)
        self.proj = projection(hidden_size, 1, bias, offset=(low + high) / 2)
        nn.init.normal_(self.proj.weight, std=hidden_size**-0.5 * 0.1 * (high - low) / 4)
        if bias is True:
            nn.init.constant_(self.proj.bias, (low + high) / 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(pooled.to(self.proj.weight.dtype))).squeeze(-1)

    @staticmethod
    def scores(prediction: torch.Tensor) -> torch.Tensor:
        return prediction.float()

    @staticmethod
    def probabilities(prediction: torch.Tensor) -> None:
        return None
