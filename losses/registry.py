"""A plain registry of losses: ``@register_loss("name", target=...)`` and ``get_loss(name, **params)``.

A loss is a callable ``loss(prediction, target) -> scalar tensor``. ``target`` says what the
prediction of the head it suits looks like, so a head can refuse a loss that does not fit it:

- ``"scalar"``: prediction (N,), a score on the judge's scale (the regression head; 1..5 by default);
- ``"distribution"``: prediction (N, C), logits over C classes, target the class position in
  1..C (a score minus the scale's low end plus one: the classification head's ``loss_target``),
  so these losses work for any number of classes;
- ``"tokens"``: prediction (N, T, V), language-model logits, target (N, T) token ids with -100
  where no loss is taken (the causal head);
- ``"pairwise"``: called as ``loss(score_a, score_b, preference)``: the scores (P,) a head gave
  the two responses of P pairs (the regression head's score, the classification head's
  expected score) and the probability (P,) that ``a`` is the better one (1: a chosen, 0: b
  chosen, between: a soft preference). Any scoring head trains with it, beside its own loss.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

TARGETS = ("scalar", "distribution", "tokens", "pairwise")


@dataclass(frozen=True)
class LossEntry:
    name: str
    target: str
    factory: Callable
    doc: str


LOSSES: dict[str, LossEntry] = {}


def register_loss(name: str, *, target: str) -> Callable:
    """Register a loss under ``name``: a class whose instances are called as
    ``loss(prediction, target)``, or a function ``fn(prediction, target, **params)``."""
    if target not in TARGETS:
        raise ValueError(f"register_loss({name!r}): target must be one of {TARGETS}, got {target!r}")

    def decorator(obj: Callable) -> Callable:
        if name in LOSSES and LOSSES[name].factory is not obj:
            raise ValueError(f"a loss named {name!r} is already registered ({LOSSES[name].factory!r})")
        LOSSES[name] = LossEntry(name, target, obj, inspect.getdoc(obj) or "")
        return obj

    return decorator


def _import_plugin(name: str) -> None:
    # "my_pkg.my_losses.huber" -> import my_pkg.my_losses, whose decorators register "huber".
    module, _, _ = name.rpartition(".")
    if module:
        importlib.import_module(module)


def get_entry(name: str) -> LossEntry:
    if name not in LOSSES and "." in name:
        _import_plugin(name)
        name = name.rpartition(".")[2] if name not in LOSSES else name
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; registered: {sorted(LOSSES)}")
    return LOSSES[name]


def get_loss(name: str, **params) -> Callable:
    """Return the ready callable ``loss(prediction, target)`` registered as ``name``.

    A registered class is instantiated with ``params``; a registered function
    ``fn(prediction, target, **params)`` gets ``params`` bound. ``name`` may also be
    ``"package.module.loss_name"``: the module is imported first, so a loss defined in the
    user's own code is found without touching this package.
    """
    factory = get_entry(name).factory
    if inspect.isclass(factory):
        return factory(**params)
    return functools.partial(factory, **params) if params else factory
