"""``rewardbench``: RewardBench's pairs (``allenai/reward-bench``, split ``filtered``).

Fields: ``prompt`` (the user's turn), ``chosen`` and ``rejected`` (two answers to it, the first
the better), ``subset`` (``alpacaeval-easy``, ``mt-bench-hard``, ``hep-python``, ...; the sections
are built from these, see ``phudge_lightning.rewardbench``), ``chosen_model``, ``rejected_model``
and ``id``. The pair is (chosen, rejected), label A; the subset is the pair's group.
"""

from __future__ import annotations

from datamodules.formats.common import as_object, text_field
from datamodules.formats.pair_sets import two_responses
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, Pair

KEPT = ("id", "chosen_model", "rejected_model")


def _is_rewardbench(row) -> bool:
    return {"prompt", "chosen", "rejected", "subset"} <= set(row) and isinstance(row.get("chosen"), str)


@register_format("rewardbench", kind="pairs", label="chosen over rejected (RewardBench)", detect=_is_rewardbench)
def rewardbench(row, source: str, row_no, require_score: bool = True) -> Pair:
    """RewardBench: ``prompt``, ``chosen`` (a) over ``rejected`` (b), ``subset``, ``id``, the models."""
    row = as_object(row, source, row_no)
    subset = text_field(row, "subset", source, row_no)
    extra = {"source": subset, **{k: row[k] for k in KEPT if row.get(k) is not None}}
    return two_responses({"instruction": row.get("prompt", MISSING)}, row.get("chosen", MISSING),
                         row.get("rejected", MISSING), ("chosen", "rejected"), "A", source, row_no, extra,
                         {"instruction": "prompt"})
