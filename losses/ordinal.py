"""Losses for the classification head: logits (N, C) over C classes, targets as class positions
1..C (the default scale 1..5 is five classes and its scores are their own positions).

Every loss here takes float scores; non-integer scores become soft targets (see
``losses.targets.soft_targets``), never rounded labels.
"""

from __future__ import annotations

import torch

from losses.registry import register_loss
from losses.targets import soft_targets


def _cdf_gap(logits: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """CDF(softmax(logits)) - CDF(target), shape (N, C), in float64: the generalised EMD raises
    the gaps to fractional powers, which would blow float32 rounding (1e-8) up to 1e-4."""
    p = logits.double().softmax(-1)
    t = soft_targets(score.double(), logits.shape[-1]).to(device=p.device, dtype=p.dtype)
    return p.cumsum(-1) - t.cumsum(-1)


@register_loss("ce", target="distribution")
def cross_entropy(logits: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Cross-entropy: (1/N) sum_n -sum_k t_nk log softmax(logits_n)_k.

    Positions 1..C map to the classes 0..C-1; t is one-hot for integer scores (plain CE) and the
    two-point soft target for non-integer ones.
    """
    t = soft_targets(score, logits.shape[-1]).to(logits.device)
    return -(t * logits.float().log_softmax(-1)).sum(-1).mean()


@register_loss("emd_squared", target="distribution")
def emd_squared(logits: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Squared earth mover's distance (the paper's eq. 2), mean over the batch:

        (1/N) sum_n sum_i (CDF_i(softmax(logits_n)) - CDF_i(t_n))^2

    Predicting 2 for a true 3 moves less mass a shorter way than predicting 5, so it costs less:
    the ordinal property that plain cross-entropy lacks.
    """
    return _cdf_gap(logits, score).pow(2).sum(-1).mean().float()


@register_loss("emd_squared_summed", target="distribution")
def emd_squared_summed(logits: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Squared EMD with the class-wise errors summed over the batch (section 4.2.1):

        E_i = sum_n (CDF_i(softmax(logits_n)) - CDF_i(t_n))^2,   loss = (1/C) sum_i E_i

    The batch's errors per class are added up first and the classes then averaged, so the loss
    grows with the batch (it equals N/C times ``emd_squared``): the same minimum, a gradient
    that scales with the batch size, which is what the paper compared against the mean.
    """
    per_class = _cdf_gap(logits, score).pow(2).sum(0)  # (C,): summed over the batch
    return per_class.mean().float()


@register_loss("emd", target="distribution")
class EMDLoss:
    """Generalised EMD (the paper's eq. 3), on the CDFs x of softmax(logits) and y of the target:

        EMD_n = (sum_i |x_i - y_i|^p)^(alpha / p),   loss = (1/N) sum_n EMD_n

    p = alpha = 2 is ``emd_squared``. alpha < p relaxes large errors, alpha > p sharpens them.
    """

    def __init__(self, p: float = 2.0, alpha: float = 2.0):
        if p <= 0 or alpha <= 0:
            raise ValueError(f"emd: p and alpha must be positive, got p={p}, alpha={alpha}")
        self.p, self.alpha = float(p), float(alpha)

    def __call__(self, logits: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        # The last CDF gap is 1 - 1: zero but for rounding, which |x|^p with p < 1 would magnify.
        gap = _cdf_gap(logits, score)[..., :-1].abs()
        if self.p < 1:  # |x|^p has an infinite slope at 0 when p < 1: keep the gradient finite
            gap = gap.clamp_min(1e-12)
        norm_p = gap.pow(self.p).sum(-1)
        power = self.alpha / self.p
        if power < 1:  # x^power has an infinite slope at 0: shift by eps, and back, so 0 stays 0
            eps = 1e-12
            return ((norm_p + eps).pow(power) - eps**power).mean().float()
        return norm_p.pow(power).mean().float()

    def __repr__(self) -> str:
        return f"EMDLoss(p={self.p}, alpha={self.alpha})"
