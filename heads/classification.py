"""The classification head: pooled hidden state -> one logit per integer score of the range."""

from __future__ import annotations

import torch
from torch import nn

from heads.folded import projection
from heads.registry import register_head


def score_classes(score_range) -> torch.Tensor:
    """The integer scores low, low + 1, ..., high of an integer ``score_range`` (one class each).

    >>> score_classes((1, 5)).tolist()
    [1.0, 2.0, 3.0, 4.0, 5.0]
    """
    low, high = (float(x) for x in score_range)
    if not (low.is_integer() and high.is_integer() and high > low):
        raise ValueError(f"the classification head needs an integer score range with high > low, got {list(score_range)}: "
                         "use the regression head for a continuous scale")
    return torch.arange(low, high + 1, dtype=torch.float32)


@register_head("classification")
class ClassificationHead(nn.Module):
    """logits = W . dropout(h) + b; p = softmax(logits); score = sum_k s_k p_k over the integer
    scores s_k of ``score_range`` (1..5 by default: five classes; [1, 10]: ten; [0, 1]: two).

    The expected score keeps the fine grain that an argmax loses; the whole distribution is
    there too, for a confidence. Losses see the class position of a score,
    score - low + 1 in 1..C (``loss_target``), so they work for any number of classes.
    ``bias=False`` drops b, and ``bias="folded"`` learns it along a fixed direction of the
    pooled states (``heads.folded``): the forms a decoder's ``*ForSequenceClassification`` holds
    (its ``score`` layer has no bias).
    """

    target = "distribution"
    default_loss = "emd_squared"
    uses_lm_head = False

    def __init__(self, hidden_size: int, dropout: float = 0.0, score_range: tuple[float, float] = (1, 5),
                 bias: bool | str = True):
        super().__init__()
        scores = score_classes(score_range)
        # Not persistent: derived from the range (a hyperparameter), and absent from older checkpoints.
        self.register_buffer("score_values", scores, persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.proj = projection(hidden_size, len(scores), bias, offset=0.0)
        nn.init.normal_(self.proj.weight, std=hidden_size**-0.5 * 0.1)
        if bias is True:
            nn.init.zeros_(self.proj.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(pooled.to(self.proj.weight.dtype)))

    @staticmethod
    def probabilities(prediction: torch.Tensor) -> torch.Tensor:
        return prediction.float().softmax(-1)

    def scores(self, prediction: torch.Tensor) -> torch.Tensor:
        return self.probabilities(prediction) @ self.score_values.to(prediction.device)

    def loss_target(self, score: torch.Tensor) -> torch.Tensor:
        """A score's class position, score - low + 1, on 1..C: what the distribution losses read."""
        return score - self.score_values[0] + 1
