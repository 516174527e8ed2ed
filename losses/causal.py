"""The loss of the causal head: next-token cross-entropy on the completion only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losses.registry import register_loss


@register_loss("causal_lm", target="tokens")
def causal_lm(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over completion tokens of -log p(token_t | tokens_<t).

    ``logits`` (N, T, V) and ``labels`` (N, T) are aligned as the model returns them; the shift
    by one happens here. Labels of -100 (the prompt and the padding) take no loss, which is
    the paper's finding: masking the prompt trains a better judge than the whole sequence.
    """
    shifted = logits[:, :-1].float()
    target = labels[:, 1:]
    return F.cross_entropy(shifted.reshape(-1, shifted.shape[-1]), target.reshape(-1), ignore_index=-100)
