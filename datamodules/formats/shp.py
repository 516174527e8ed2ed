"""``shp``: Stanford Human Preferences (``stanfordnlp/SHP``): two Reddit comments on one post.

Fields: ``history`` (the post: a question or instruction), ``human_ref_A`` and ``human_ref_B``
(two top-level comments), ``labels`` (1: A preferred by Reddit's users, 0: B), and ``domain``,
``post_id``, ``score_A``, ``score_B``, ``score_ratio`` (kept, so ``where`` can select a domain).
"""

from __future__ import annotations

from datamodules.formats.common import as_object
from datamodules.formats.pair_sets import two_responses
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, Pair, RecordError, found

KEPT = ("domain", "post_id", "score_A", "score_B", "score_ratio")


@register_format("shp", kind="pairs", label="labels (1: human_ref_A preferred, 0: human_ref_B)",
                 detect=lambda row: "human_ref_A" in row and "human_ref_B" in row)
def shp(row, source: str, row_no, require_score: bool = True) -> Pair:
    """SHP: ``history``, ``human_ref_A``, ``human_ref_B``, ``labels`` (1: A better, 0: B better)."""
    row = as_object(row, source, row_no)
    label = row.get("labels")
    if isinstance(label, bool) or label not in (0, 1):
        raise RecordError(source, row_no, "labels", f"must be 0 or 1, got {found(label)}")
    extra = {k: row[k] for k in KEPT if row.get(k) is not None}
    return two_responses({"instruction": row.get("history", MISSING)}, row.get("human_ref_A", MISSING),
                         row.get("human_ref_B", MISSING), ("human_ref_A", "human_ref_B"), "A" if label == 1 else "B",
                         source, row_no, extra, {"instruction": "history"})
