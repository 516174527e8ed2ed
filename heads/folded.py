"""A linear layer whose bias is folded into its weight: what a decoder's standard classifier holds.

    y = W h + b (u . h)

``u`` is a fixed direction (a buffer) along which every pooled state has about unit length:
u = m / |m|^2, m the mean pooled state of the first training batch, so u . h is close to 1 on
the data and ``b`` acts as a bias. Decoders' pooled states share a large common component, so
u . h stays near 1 from prompt to prompt. Because u is fixed, y = (W + b u^T) h exactly: a
linear layer *without* bias computes it, which is the form of the ``score`` layer of a
decoder's ``*ForSequenceClassification`` (``folded_weight``; ``phudge export`` writes that).
Until u is set (an untrained judge), u = 0 and y = W h.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FoldedBias(nn.Module):
    bias = None  # no separate bias: b lives in the weight once folded (as nn.Linear(bias=False) reads)

    def __init__(self, in_features: int, out_features: int, offset: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.offset = nn.Parameter(torch.full((out_features,), float(offset)))
        self.register_buffer("direction", torch.zeros(in_features))

    @property
    def has_direction(self) -> bool:
        return bool(self.direction.any())

    @torch.no_grad()
    def set_direction(self, mean: torch.Tensor) -> None:
        """u = m / |m|^2 for the mean pooled state m (so u . m = 1)."""
        mean = mean.detach().float()
        self.direction.copy_((mean / mean.dot(mean).clamp_min(1e-12)).to(self.direction))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.weight) + (h @ self.direction.to(h.dtype)).unsqueeze(-1) * self.offset.to(h.dtype)

    def folded_weight(self) -> torch.Tensor:
        """W + b u^T: the weight of a bias-free linear layer computing the same y."""
        return self.weight.detach().float() + self.offset.detach().float()[:, None] * self.direction.float()[None, :]


def projection(hidden_size: int, outputs: int, bias: bool | str, offset: float) -> nn.Module:
    """The head's last layer: ``nn.Linear`` with or without bias, or ``FoldedBias`` (``bias="folded"``)."""
    if bias == "folded":
        return FoldedBias(hidden_size, outputs, offset)
    if not isinstance(bias, bool):
        raise ValueError(f"bias must be true, false or 'folded', got {bias!r}")
    return nn.Linear(hidden_size, outputs, bias=bias)
