"""Several trained judges graded as one (a deep ensemble, e.g. one recipe trained with several seeds).

The rule, the same wherever judges are combined (an ensemble folder, ``Judge.load([A, B])``,
``phudge evaluate --checkpoint A B``, ``--scores`` of judges graded before):

- each response's score is the mean of the members' scores, s = (1/J) sum_j s_j, and missing
  (NaN, None) where any member's is (``ensemble_mean``);
- when every member has a classification head, the probability of each score is the mean of
  theirs, p_k = (1/J) sum_j p_jk;
- the members must read the same prompt (backbone tokenizer, layout, token budget) and grade on
  the same scale, in one forward pass (``check_member``): the prompt is encoded once.

Why: a small judge trained on a few hundred preferences depends a lot on its seed (the shipped
recipe's HHH accuracy ranged 0.62-0.66 over seeds); averaging the seeds' scores keeps what they
agree on. ``Judge`` reads an ensemble like one module (``predict_scores``); training, validation
and ``phudge test/predict`` take one member at a time.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

# What the members must share: the prompt they read and the scale they grade on.
SHARED_HPARAMS = ("backbone", "score_range")


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def signature(judge) -> dict:
    """What a member must share with the others: its backbone, scale and prompt settings."""
    hparams = dict(getattr(judge, "hparams", {}) or {})
    return {**{key: _plain(hparams.get(key)) for key in SHARED_HPARAMS}, "prompt": dict(judge.prompt_settings or {})}


def check_member(first: dict, judge, number: int) -> None:
    """``ValueError`` naming what member ``number`` does not share with member 1 (``first``, its
    ``signature``), or that its head generates (an ensemble averages one forward pass)."""
    if judge.head.generates:
        raise ValueError(f"ensemble member {number} has a head that generates: an ensemble averages scores from "
                         "one forward pass")
    mine = signature(judge)
    for key in SHARED_HPARAMS:
        if mine[key] != first[key]:
            raise ValueError(f"ensemble member {number} has {key}={mine[key]!r}, member 1 {first[key]!r}: "
                             "the members must share it")
    if mine["prompt"] != first["prompt"]:
        raise ValueError(f"ensemble member {number} reads prompts as {mine['prompt']}, member 1 as "
                         f"{first['prompt']}: the members must read the same prompt")


def ensemble_mean(values: torch.Tensor) -> torch.Tensor:
    """(J, N, ...) -> (N, ...): the mean over the J members, NaN where any member's is NaN."""
    return values.float().mean(0)


def mean_scores(runs: Sequence[Sequence[float | None]]) -> list[float | None]:
    """``ensemble_mean`` of lists of scores (one list per member, None for a missing score)."""
    values = torch.tensor([[float("nan") if s is None else s for s in run] for run in runs], dtype=torch.float64)
    return [None if torch.isnan(v) else float(v) for v in values.mean(0)]


class JudgeEnsemble(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 judges, got {len(members)}")
        first = signature(members[0])
        for number, member in enumerate(members, 1):
            check_member(first, member, number)
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
        result = {"score": ensemble_mean(torch.stack([o["score"] for o in outs]))}
        if all("probabilities" in o for o in outs):
            result["probabilities"] = ensemble_mean(torch.stack([o["probabilities"] for o in outs]))
        return result
