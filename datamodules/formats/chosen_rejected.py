"""``chosen_rejected``: preference pairs as reward-model trainers write them (TRL's layouts).

- conversational: ``chosen`` and ``rejected`` are lists of chat messages (``{"role": ...,
  "content": ...}``), the same conversation ending in two different assistant turns, with or
  without a ``prompt`` (text, or the messages before the answers): UltraFeedback
  (``argilla/ultrafeedback-binarized-preferences-cleaned``: also ``chosen-rating``,
  ``rejected-rating``, ``chosen-model``, ``rejected-model``, ``source``) and Skywork
  (``Skywork/Skywork-Reward-Preference-80K-v0.2``: ``chosen``, ``rejected``, ``source``);
- plain text: ``prompt``, ``chosen`` and ``rejected`` as text.

The instruction is the conversation before the last assistant turn: one user turn is its text;
several turns are written ``Role: text`` and joined by blank lines. The response is the last
assistant turn. ``chosen`` is the better one (label A).
"""

from __future__ import annotations

from datamodules.formats.common import as_object
from datamodules.formats.registry import register_format
from datamodules.records import MISSING, Pair, RecordError, found
from datamodules.formats.pair_sets import two_responses

KEPT = ("source", "chosen-rating", "rejected-rating", "chosen-model", "rejected-model", "id")


def check_messages(value, field: str, source: str, row_no) -> list[dict]:
    """``value`` as a list of ``{role, content}`` messages with text content, or an error naming ``field``."""
    if not isinstance(value, list) or not value:
        raise RecordError(source, row_no, field, f"must be a non-empty list of chat messages, got {found(value)}")
    for i, message in enumerate(value):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str) and isinstance(message.get("content"), str)):
            raise RecordError(source, row_no, f"{field}[{i}]", f"must be {{'role': text, 'content': text}}, got {found(message)}")
    return value


def conversation_text(messages: list[dict]) -> str:
    """One user turn: its text; several turns: ``Role: text`` each, joined by blank lines."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def split_answer(messages: list[dict], field: str, source: str, row_no) -> tuple[list[dict], str]:
    """(the messages before the last assistant turn, that turn's text)."""
    if messages[-1]["role"] != "assistant":
        raise RecordError(source, row_no, field, f"must end with an assistant turn, ends with {messages[-1]['role']!r}")
    return messages[:-1], messages[-1]["content"]


def _side(row: dict, field: str, source: str, row_no) -> tuple[str | object, str | object]:
    """(context, answer) of ``chosen`` or ``rejected``; context MISSING when the side is plain text."""
    value = row.get(field, MISSING)
    if isinstance(value, list):
        context, answer = split_answer(check_messages(value, field, source, row_no), field, source, row_no)
        return (conversation_text(context) if context else MISSING), answer
    return MISSING, value


def _prompt(row: dict, source: str, row_no) -> str | object:
    prompt = row.get("prompt", MISSING)
    if isinstance(prompt, list):
        return conversation_text(check_messages(prompt, "prompt", source, row_no))
    return prompt


@register_format("chosen_rejected", kind="pairs", label="chosen over rejected",
                 detect=lambda row: "chosen" in row and "rejected" in row)
def chosen_rejected(row, source: str, row_no, require_score: bool = True) -> Pair:
    """``chosen`` (a) over ``rejected`` (b): chat-message lists, or text with a ``prompt``."""
    row = as_object(row, source, row_no)
    (context_a, answer_a), (context_b, answer_b) = (_side(row, f, source, row_no) for f in ("chosen", "rejected"))
    if context_a != context_b:
        raise RecordError(source, row_no, "rejected", "differs from 'chosen' before the last assistant turn")
    prompt = _prompt(row, source, row_no)
    # The prompt column, where there is one, is the conversation so far (UltraFeedback repeats
    # it as the first turn of chosen and rejected); else the turns before the answers are.
    instruction, name = (prompt, "prompt") if prompt is not MISSING else (context_a, "chosen")
    extra = {k: row[k] for k in KEPT if row.get(k) is not None}
    return two_responses({"instruction": instruction}, answer_a, answer_b, ("chosen", "rejected"), "A", source, row_no,
                         extra, {"instruction": name})
