"""Pairwise losses: two responses to one prompt, their scores compared (target ``pairwise``).

Each is called as ``loss(score_a, score_b, preference)``, with ``preference`` = P(a is better)
in [0, 1]; a chosen/rejected pair has preference 1 (a chosen) or 0 (b chosen).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losses.registry import register_loss


@register_loss("bradley_terry", target="pairwise")
def bradley_terry(score_a: torch.Tensor, score_b: torch.Tensor, preference: torch.Tensor,
                  scale: float = 1.0) -> torch.Tensor:
    """Bradley-Terry with soft targets: with d = scale (s_a - s_b) and p = P(a better),
    -(1/P) sum [p log sigmoid(d) + (1 - p) log sigmoid(-d)]; for p = 1, -log sigmoid(s_a - s_b).

    ``scale`` turns score differences (on the 1..5 scale) into logits.
    """
    d = scale * (score_a.float() - score_b.float())
    p = preference.to(d.dtype)
    return -(p * F.logsigmoid(d) + (1 - p) * F.logsigmoid(-d)).mean()


@register_loss("margin", target="pairwise")
def margin(score_a: torch.Tensor, score_b: torch.Tensor, preference: torch.Tensor,
           margin: float = 0.5) -> torch.Tensor:
    """Margin ranking loss: the preferred score should exceed the other by ``margin``.

    (1/P) sum |2p - 1| max(0, margin - sign(2p - 1) (s_a - s_b)): a tie (p = 0.5) costs nothing,
    a soft preference counts in proportion to its strength.
    """
    strength = 2 * preference.float() - 1
    d = score_a.float() - score_b.float()
    return (strength.abs() * F.relu(margin - torch.sign(strength) * d)).mean()
