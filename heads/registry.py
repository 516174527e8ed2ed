"""A plain registry of heads: ``@register_head("name")`` and ``get_head(name)``.

A head is an ``nn.Module`` class, built as ``Head(hidden_size=..., **head_params)``, whose
``forward`` takes the backbone's features: the pooled hidden state (N, H), or the language-model
logits (N, T, V) when ``uses_lm_head``. It says what it needs with class attributes, so the
module and the data module ask the head instead of testing its name:

- ``target``: the kind of prediction it makes (``"scalar"``, ``"distribution"`` or ``"tokens"``);
  a loss registered for another target does not suit it;
- ``default_loss``: the loss used when the config names none;
- ``uses_lm_head``: True when the backbone's own language-model head makes the prediction (the
  backbone is loaded with it, and training prompts carry the completion to learn);
- ``label_key``: the batch entry the loss compares the prediction with (default ``"score"``;
  ``"labels"``, the completion's token ids, for a head that learns to write);
- ``generates``: True when grading generates text (default False): such a head defines
  ``generate_scores(backbone, tokenizer, input_ids, attention_mask, max_new_tokens)`` and is
  scored by generation, not in the validation loop.

and two methods: ``scores(prediction)`` -> (N,) and ``probabilities(prediction)`` -> (N, K) or
None. From them the registry gives every head ``outputs(prediction)``, what a judge returns for
a batch: ``{"score": scores}`` plus ``"probabilities"`` where the head has them (a head may
define its own). A head that takes ``score_range`` in ``__init__`` is given the judge's (``model.score_range``);
one that does not works on 1..5 only. A ``loss_target(score)`` method, where there is one, maps
the scores before the loss sees them (the classification head: a score's class position).
"""

from __future__ import annotations

import importlib
from typing import Callable

HEADS: dict[str, type] = {}
# Class attributes a head may leave out, and what they then are.
OPTIONAL = {"label_key": "score", "generates": False}


def outputs(head, prediction) -> dict:
    """``score`` (N,) and, where the head has a distribution, ``probabilities`` (N, K)."""
    out = {"score": head.scores(prediction)}
    probabilities = head.probabilities(prediction)
    if probabilities is not None:
        out["probabilities"] = probabilities
    return out


def register_head(name: str) -> Callable[[type], type]:
    def decorator(cls: type) -> type:
        for attribute in ("target", "default_loss", "uses_lm_head"):
            if not hasattr(cls, attribute):
                raise TypeError(f"head {name!r} ({cls.__name__}) must define the class attribute {attribute!r}")
        for attribute, default in {**OPTIONAL, "outputs": outputs}.items():
            if not hasattr(cls, attribute):
                setattr(cls, attribute, default)
        if name in HEADS and HEADS[name] is not cls:
            raise ValueError(f"a head named {name!r} is already registered ({HEADS[name]!r})")
        HEADS[name] = cls
        cls.name = name
        return cls

    return decorator


def get_head(name: str) -> type:
    """The head class registered as ``name`` (or ``"package.module.head_name"``, imported first)."""
    if name not in HEADS and "." in name:
        module, _, short = name.rpartition(".")
        importlib.import_module(module)
        name = short
    if name not in HEADS:
        raise KeyError(f"unknown head {name!r}; registered: {sorted(HEADS)}")
    return HEADS[name]


def check_loss(head: type, loss_name: str, loss_target: str) -> None:
    """Raise a configuration error when a loss does not fit the head's prediction."""
    if loss_target != head.target:
        raise ValueError(
            f"loss {loss_name!r} expects a {loss_target!r} prediction but head {head.name!r} makes a "
            f"{head.target!r} one; pick a loss registered with target={head.target!r}"
        )
