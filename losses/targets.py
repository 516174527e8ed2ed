"""Class positions 1..C (scores on the 1..5 scale by default) as class distributions."""

from __future__ import annotations

import torch

NUM_CLASSES = 5


def soft_targets(score: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Turn scores in [1, num_classes] into distributions over the classes 0..num_classes-1.

    An integer score s is the one-hot vector of class s-1. A non-integer score (the mean of
    several raters, say 3.4) splits its mass between the two neighbouring classes so that the
    distribution's mean is the score: t[floor] = ceil(s) - s, t[ceil] = s - floor(s)
    (3.4 -> 0.6 on class 3, 0.4 on class 4).
    """
    dtype = torch.float64 if score.dtype == torch.float64 else torch.float32
    s = score.to(dtype).clamp(1, num_classes) - 1  # class scale 0..C-1
    low = s.floor().long()
    high = (low + 1).clamp(max=num_classes - 1)
    upper_weight = s - low.to(dtype)
    t = torch.zeros(*s.shape, num_classes, dtype=dtype, device=score.device)
    t.scatter_add_(-1, low.unsqueeze(-1), (1 - upper_weight).unsqueeze(-1))
    t.scatter_add_(-1, high.unsqueeze(-1), upper_weight.unsqueeze(-1))
    return t
