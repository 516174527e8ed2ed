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
    """No parameters of its own: training is next-token prediction on the completion (the
    ``labels``, -100 on the prompt), and the prediction is the score parsed from a greedy
    generation."""

    target = "tokens"
    default_loss = "causal_lm"
    uses_lm_head = True
    label_key = "labels"
    generates = True

    def __init__(self, hidden_size: int = 0):
        super().__init__()

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    @torch.inference_mode()
    def generate_scores(self, backbone, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        max_new_tokens: int) -> dict:
        """Greedy generation of at most ``max_new_tokens``: ``text`` and its parsed ``score``
        (NaN where no ``[RESULT]`` came)."""
        out = backbone.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                                do_sample=False, pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(out[:, input_ids.shape[1]:], skip_special_tokens=True)
        return {"score": self.scores(texts), "text": texts}

    @staticmethod
    def scores(texts: list[str]) -> torch.Tensor:
        """Parsed scores, NaN where a generation has no score."""
        return torch.tensor([s if (s := parse_score(t)) is not None else float("nan") for t in texts])

    @staticmethod
    def probabilities(prediction) -> None:
        return None
