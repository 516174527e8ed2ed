"""``llmeval2``: LLMEval2's human pairwise preferences.

Fields: ``query``, ``response1``, ``response2``, ``human`` (``model1``: the first is better,
``model2``: the second, ``TIE``), ``dataset`` (the preference set the row comes from: webgpt,
shp, hh-rlhf, summarizefeedback, eli5, pku-saferlhf, ...). Ties are kept as ties (preference
0.5): the pair loss then pulls the two scores together, and pair accuracy leaves them out.
"""

from __future__ import annotations

from datamodules.formats.pair_sets import two_responses
from datamodules.formats.common import as_object
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, Pair, RecordError

VERDICTS = {"model1": "A", "model2": "B", "TIE": "tie"}


@register_format("llmeval2", kind="pairs", label="human: model1, model2 or TIE",
                 detect=lambda row: "human" in row and "response1" in row and "query" in row)
def llmeval2(row, source: str, row_no, require_score: bool = True) -> Pair:
    """LLMEval2: ``query``, ``response1``, ``response2``, ``human`` (model1 / model2 / TIE)."""
    row = as_object(row, source, row_no)
    verdict = row.get("human")
    if verdict not in VERDICTS:
        raise RecordError(source, row_no, "human", f"must be one of {', '.join(VERDICTS)}, got {verdict!r:.40}")
    extra = {"dataset": row["dataset"]} if "dataset" in row else {}
    return two_responses({"instruction": row.get("query", MISSING)}, row.get("response1", MISSING),
                         row.get("response2", MISSING), ("response1", "response2"), VERDICTS[verdict], source, row_no,
                         extra, {"instruction": "query"})
