"""Several trained judges graded as one (a deep ensemble, e.g. one recipe trained with several seeds).

Each response's score is the mean of the members' scores, s = (1/J) sum_j s_j (the rule of
``phudge evaluate --checkpoint A B``), and, when every member has a classification head, the
probability of each score is the mean of theirs, p_k = (1/J) sum_j p_jk. The members must read the
same prompt (backbone tokenizer, layout, token budget) and grade on the same scale: the prompt is
encoded once and each member runs on it.

Why: a small judge trained on a few hundred preferences depends a lot on its seed (the shipped
recipe's HHH accuracy ranged 0.62-0.66 over seeds); averaging the seeds' scores keeps what they
agree on. ``Judge`` reads an ensemble like one module (``predict_scores``); training, validation
and ``phudge test/predict`` take one member at a time.
"""

from __future__ import annotations

import torch
from torch import nn

# What the members must share: the prompt they read and the scale they grade on.
SHARED_HPARAMS = ("backbone", "score_range")


class JudgeEnsemble(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 judges, got {len(members)}")
        first = members[0]
        for i, member in enumerate(members[1:], 2):
            for key in SHARED_HPARAMS:
                a, b = first.hparams.get(key), member.hparams.get(key)
                if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
                    raise ValueError(f"ensemble member {i} has {key}={b!r}, member 1 {a!r}: the members must share it")
            if member.prompt_settings != first.prompt_settings:
                raise ValueError(f"ensemble member {i} reads prompts as {member.prompt_settings}, member 1 as "
                                 f"{first.prompt_settings}: the members must read the same prompt")
        if any(m.head.generates for m in members):
            raise ValueError("an ensemble averages scores from one forward pass: a head that generates cannot join it")
        self.members = nn.ModuleList(members)

    # What ``Judge`` and the server read from a module: the first member's (all share them).
    @property
    def tokenizer(self):
        return self.members[0].tokenizer

    @property
    def prompt_settings(self) -> dict:
        return self.members[0].prompt_settings

    @property
    def score_range(self) -> tuple[float, float]:
        return self.members[0].score_range

    @property
    def hparams(self) -> dict:
        return {**dict(self.members[0].hparams), "ensemble": len(self.members)}

    @torch.no_grad()
    def predict_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """``score`` (N,): the members' mean; ``probabilities`` (N, C): theirs averaged, when all have them."""
        outs = [m.predict_scores(input_ids, attention_mask) for m in self.members]
        result = {"score": torch.stack([o["score"].float() for o in outs]).mean(0)}
        if all("probabilities" in o for o in outs):
            result["probabilities"] = torch.stack([o["probabilities"].float() for o in outs]).mean(0)
        return result
