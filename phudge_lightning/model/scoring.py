"""What every judge answers, whatever it is made of: the trained ``JudgeModule``, a plain
transformers model (``TransformersJudge``) and an ensemble (``JudgeEnsemble``) all grade a
batch of encoded prompts the same way, so ``Judge``, the server and ``phudge evaluate`` need
not know which one they hold.

    out = judge.predict_scores(input_ids, attention_mask)
    out["score"]          # (N,) float, NaN where a generating head wrote no score
    out["probabilities"]  # (N, C), for a head with a distribution over the C integer scores
    out["text"]           # list of N strings, for a head that generates

Besides ``predict_scores`` a judge has ``tokenizer``, ``prompt_settings`` (how its prompts were
built in training) and ``score_range``. How a raw prediction becomes a score is the head's
(``head.outputs``, see ``heads.registry``); ``predict_scores`` below runs the forward pass (or
the generation) and asks the head, once for the module and the transformers wrapper alike.
"""

from __future__ import annotations

from typing import Protocol

import torch


class Scorer(Protocol):
    tokenizer: object
    prompt_settings: dict
    score_range: tuple[float, float] | None

    def predict_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict: ...


@torch.inference_mode()
def predict_scores(judge, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
    """``judge.head``'s outputs on ``judge(input_ids, attention_mask)`` (its raw prediction); for a
    head that generates, what it generates with ``judge.backbone`` (``text`` and the scores read
    from it). ``judge`` has ``head``, ``backbone``, ``tokenizer`` and ``max_new_tokens``."""
    if judge.head.generates:
        return judge.head.generate_scores(judge.backbone, judge.tokenizer, input_ids, attention_mask,
                                          judge.max_new_tokens)
    return judge.head.outputs(judge(input_ids, attention_mask))
