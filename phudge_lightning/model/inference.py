"""One place that makes a loaded judge ready to grade: the LoRA scale, the merge, the dtype.

``Judge`` calls it with the user's settings; ``phudge export`` calls it before writing (the
scale for both formats, the merge for a transformers folder, whose classes hold plain weights).
"""

from __future__ import annotations

import torch

from phudge_lightning.model.backbone import scale_lora


def members(judge) -> list:
    """An ensemble's members, or the judge itself."""
    return list(getattr(judge, "members", [judge]))


def prepare(judge, *, lora_scale: float = 1.0, merge: bool = True, dtype: str | None = None):
    """``judge`` (a module, a transformers wrapper or an ensemble) in eval mode, changed in place:

    - ``lora_scale`` (lambda) scales every LoRA update before the merge, as WiSE-FT does
      (Wortsman et al., 2022): W = W0 + lambda * (alpha / r) * B A, the head unchanged; 1 is the
      judge as trained, 0 the pretrained backbone under the trained head (``scale_lora``);
    - ``merge`` folds a peft adapter into the weights it adapts and drops peft's wrappers, whose
      per-layer Python costs 5-10% of a CPU forward even once merged (``phudge bench speed``);
      done before any cast: a LoRA update merged in bfloat16 would be partly rounded away;
    - ``dtype`` casts the backbone only: the head stays in float32 (heads cast their input), so
      close scores are not rounded to bfloat16's 3 digits and tied.
    """
    scale_lora(judge, lora_scale)
    for one in members(judge):
        if merge and hasattr(one.backbone, "merge_and_unload"):
            one.backbone = one.backbone.merge_and_unload()
        if dtype is not None:
            one.backbone.to(getattr(torch, dtype))
    return judge.eval()
