"""The causal head: the backbone's language-model head writes a feedback, then ``[RESULT] n``."""

from __future__ import annotations

import re

import torch
from torch import nn

from heads.registry import register_head

# Prometheus ends its output with "[RESULT] n"; take the last such marker in the text.
RESULT_PATTERN = re.compile(r"\[RESULT\]\s*\(?\s*([1-5](?:\.\d+)?)\b")


def parse_score(text: str) -> float | None:
    """The score after the last ``[RESULT]`` in ``text``, or None when there is none.

    None is a missing score, to be reported as such: never replaced by a number.
    """
    matches = RESULT_PATTERN.findall(text)
    return float(matches[-1]) if matches else None


@register_head("causal")
class CausalHead(nn.Module):
    """No parameters of its own: training is next-token prediction on the completion, and the
    prediction is the score parsed from a greedy generation of at most ``max_new_tokens``."""

    target = "tokens"
    default_loss = "causal_lm"
    uses_lm_head = True

    def __init__(self, hidden_size: int = 0, max_new_tokens: int = 256):
        super().__init__()
        self.max_new_tokens = max_new_tokens

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    @staticmethod
    def scores(texts: list[str]) -> torch.Tensor:
        """Parsed scores, NaN where a generation has no score."""
        return torch.tensor([s if (s := parse_score(t)) is not None else float("nan") for t in texts])

    @staticmethod
    def probabilities(prediction) -> None:
        return None
