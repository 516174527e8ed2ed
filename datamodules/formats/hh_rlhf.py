"""``hh_rlhf``: Anthropic's HH-RLHF preference dialogues.

Fields: ``chosen`` and ``rejected``, the same dialogue (``\\n\\nHuman: ...\\n\\nAssistant: ...``
turns) ending in two different last assistant turns; ``chosen`` was preferred by people. The
instruction is every turn before the last assistant turn (the conversation so far, ending
with the human's last turn); the response is that last assistant turn.
"""

from __future__ import annotations

from datamodules.formats.common import as_object, record_from, text_field
from datamodules.formats.registry import register_format
from datamodules.records import Pair, RecordError

ASSISTANT = "\n\nAssistant:"


def split_dialogue(text: str, field: str, source: str, row_no) -> tuple[str, str]:
    """(every turn before the last assistant turn, that turn)."""
    cut = text.rfind(ASSISTANT)
    if cut < 0:
        raise RecordError(source, row_no, field, "holds no '\\n\\nAssistant:' turn")
    return text[:cut].strip(), text[cut + len(ASSISTANT):].strip()


def _is_dialogue(row) -> bool:
    chosen = row.get("chosen")
    return isinstance(chosen, str) and "rejected" in row and chosen.lstrip().startswith("Human:")


@register_format("hh_rlhf", kind="pairs", label="chosen over rejected (people's preference)", detect=_is_dialogue)
def hh_rlhf(row, source: str, row_no, require_score: bool = True) -> Pair:
    """HH-RLHF: ``chosen`` (a) over ``rejected`` (b), two dialogues differing in the last assistant turn."""
    row = as_object(row, source, row_no)
    sides = {}
    for field in ("chosen", "rejected"):
        sides[field] = split_dialogue(text_field(row, field, source, row_no), field, source, row_no)
    if sides["chosen"][0] != sides["rejected"][0]:
        raise RecordError(source, row_no, "rejected", "differs from 'chosen' before the last assistant turn")
    a, b = (record_from({"instruction": context, "response": response}, {"instruction": field, "response": field},
                        source, row_no, {"pair": row_no, "chosen": field == "chosen"})
            for field, (context, response) in sides.items())
    return Pair(a, b, 1.0, row_no)
