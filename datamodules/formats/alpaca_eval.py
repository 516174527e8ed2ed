"""``alpaca_eval``: AlpacaEval's GPT-4 annotations, one instruction and two outputs per row.

Fields: ``instruction``, ``output_1`` (a fixed baseline model, ``generator_1``), ``output_2``
(``generator_2``), ``preference`` in [1, 2] (1: output_1 better, 2: output_2 better; continuous
for the weighted annotator: 1 + P(output_2 better), 1.5 a tie), ``annotator``, ``dataset``.
The pair's preference is P(output_1 better) = 2 - preference. Rows whose preference is outside
[1, 2] (AlpacaEval writes 0 where an annotator gave no verdict) are errors.
"""

from __future__ import annotations

import math

from datamodules.formats.common import as_object, is_number, record_from
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, Pair, RecordError

KEPT = ("dataset", "annotator", "generator_1", "generator_2")


@register_format("alpaca_eval", kind="pairs", label="preference in [1, 2]: P(output_1 better) = 2 - preference",
                 detect=lambda row: {"output_1", "output_2", "preference"} <= set(row))
def alpaca_eval(row, source: str, row_no, require_score: bool = True) -> Pair:
    """AlpacaEval annotations: ``instruction``, ``output_1``, ``output_2``, ``preference`` (1..2)."""
    row = as_object(row, source, row_no)
    preference = row.get("preference")
    if not is_number(preference) or not math.isfinite(preference) or not 1 <= preference <= 2:
        raise RecordError(source, row_no, "preference", f"must be a number from 1 to 2, got {preference!r:.40}")
    extra = {k: row[k] for k in KEPT if row.get(k) is not None}
    a, b = (record_from({"instruction": row.get("instruction", MISSING), "response": row.get(name, MISSING)}, {"response": name},
                        source, row_no, {**extra, "pair": row_no, "position": position})
            for position, name in ((1, "output_1"), (2, "output_2")))
    return Pair(a, b, 2.0 - float(preference), row_no)
