"""Encode a record, rendered as a Prometheus prompt (``datamodules.prometheus``), within a token budget."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

from datamodules import conversation, phudge_prompt
from datamodules.prometheus import completion, render, task_description  # noqa: F401 (the encoder's input)
from datamodules.records import Record, rubric_text

CUT_MARK = " [...] "
# The fields that truncation may shorten (the rubric as its text), never the headers or the prompt's end.
CUTTABLE = ("response", "reference_answer", "context", "instruction", "rubric")


# How a record becomes text: Prometheus' grading prompt, the chat a reward model reads, or the
# PHUDGE authors' prompt (``datamodules.phudge_prompt``: what their released judges read).
LAYOUTS = ("prometheus", "conversation", "phudge")

# Tokenizers with no stated limit report a huge sentinel (transformers: int(1e30)).
NO_LIMIT = 1_000_000


def token_budget(tokenizer, max_length: int | None = None) -> int | None:
    """The token budget of a prompt: ``max_length`` when given (the training budget), capped by
    the tokenizer's own limit when it states one; None when neither says anything."""
    limit = getattr(tokenizer, "model_max_length", None)
    limit = limit if limit and limit < NO_LIMIT else None
    if max_length is None:
        return limit
    return min(max_length, limit) if limit else max_length


def cut_level(lengths: list[int], excess: int, floor: int) -> int:
    """The length L that the longest fields are cut to: the largest L >= ``floor`` with
    sum_i max(0, n_i - L) >= ``excess`` (water-filling: the fields above L end at L, the others
    are untouched), or ``floor`` when even that does not save enough."""
    for level in range(max(lengths), floor - 1, -1):
        if sum(max(0, n - level) for n in lengths) >= excess:
            return level
    return floor


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int] | None  # causal head only: -100 on the prompt
    truncated: bool


class PromptEncoder:
    """Tokenise records into at most ``max_length`` tokens.

    Over the budget, the longest fields (response, reference answer, context, instruction, the
    rubric's text) lose their middles, marked ``[...]``, down to one common length, the largest
    that fits (``cut_level``): the section headers and the end of the prompt (where a decoder is
    pooled) stay whole, and so does every field shorter than that length. The rubric is a field
    like the others because on a small budget (MiniLM's 256 tokens: task description and rubric
    alone fill it) keeping it whole would leave no room for the response, the one field a judge
    cannot grade without.
    Only if every field is already short and the prompt is still too long is the middle of the
    token sequence itself dropped, so the result never exceeds the budget.
    """

    def __init__(self, tokenizer, max_length: int | None = None, use_chat_template: bool = True, with_completion: bool = False,
                 score_range=(1, 5), layout: str = "prometheus", reads_rubric: bool = True, reads_reference: bool = True):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if layout == "conversation" and with_completion:
            raise ValueError("the causal head generates after the Prometheus prompt: use layout 'prometheus' with it")
        self.layout = layout
        self.tokenizer = tokenizer
        self.score_range = tuple(score_range)
        self.max_length = max_length
        # The phudge layout writes its chat markup as text: never through the tokenizer's template.
        self.chat = bool(use_chat_template and layout != "phudge" and getattr(tokenizer, "chat_template", None))
        self.with_completion = with_completion
        # A judge trained on prompts that never held a rubric (or a reference answer) grades as
        # it was trained: the section is left out, since text it never saw only moves its score.
        self.reads_rubric, self.reads_reference = reads_rubric, reads_reference
        self._warned = False

    def as_read(self, record: Record) -> Record:
        """``record`` without the sections this judge does not read (a warning, once, if it had them)."""
        drop = {name: None for name, reads in (("rubric", self.reads_rubric), ("reference_answer", self.reads_reference))
                if not reads and getattr(record, name) is not None}
        if not drop:
            return record
        if not self._warned:
            self._warned = True
            warnings.warn(f"this judge was trained without {' or '.join(drop)}: left out of its prompts", stacklevel=3)
        return dataclasses.replace(record, **drop)

    def text(self, record: Record) -> str:
        if self.layout == "phudge":
            return phudge_prompt.render(record)
        if self.layout == "conversation":
            if not self.chat:
                return conversation.render_plain(record)
            # Ending on the end-of-turn token, not the newline after it: the last state has read
            # the whole answer and the turn's close.
            return self.tokenizer.apply_chat_template(conversation.messages(record), tokenize=False).rstrip()
        prompt = render(record, self.score_range)
        if not self.chat:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _ids(self, text: str) -> list[int]:
        # A chat template already writes the special tokens; plain text gets the tokenizer's own.
        return self.tokenizer(text, add_special_tokens=not self.chat, verbose=False)["input_ids"]

    def _completion_ids(self, record: Record) -> list[int]:
        ids = self.tokenizer(completion(record), add_special_tokens=False)["input_ids"]
        eos = self.tokenizer.eos_token_id
        return ids + ([eos] if eos is not None else [])

    def length(self, record: Record) -> int:
        """Untruncated token length (prompt plus completion for the causal head)."""
        record = self.as_read(record)
        n = len(self._ids(self.text(record)))
        return n + (len(self._completion_ids(record)) if self.with_completion else 0)

    def encode(self, record: Record) -> Encoded:
        record = self.as_read(record)
        tail = self._completion_ids(record) if self.with_completion else []
        budget = None if self.max_length is None else self.max_length - len(tail)
        if budget is not None and budget < 16:
            raise ValueError(f"max_length {self.max_length} leaves no room for the prompt")
        ids, truncated = self._fit(record, budget)
        labels = [-100] * len(ids) + tail if self.with_completion else None
        return Encoded(ids + tail, labels, truncated)

    def _fit(self, record: Record, budget: int | None) -> tuple[list[int], bool]:
        ids = self._ids(self.text(record))
        if budget is None or len(ids) <= budget:
            return ids, False
        fields = {name: rubric_text(record.rubric) if name == "rubric" else getattr(record, name)
                  for name in CUTTABLE if getattr(record, name)}
        mark = len(self.tokenizer(CUT_MARK, add_special_tokens=False)["input_ids"])
        floor = 16 + mark  # a field this short is not cut again
        slack = 8  # re-tokenising the joined text can cost a few tokens: more each round
        for _ in range(4 * len(CUTTABLE)):
            field_ids = {name: self.tokenizer(text, add_special_tokens=False)["input_ids"] for name, text in fields.items()}
            longer = {name: n for name, n in ((k, len(v)) for k, v in field_ids.items()) if n > floor}
            if not longer:
                break
            level = cut_level(list(longer.values()), len(ids) - budget + slack, floor)
            for name, n in longer.items():
                if n <= level:
                    continue
                keep = max(level - mark, 16)
                head, tail = field_ids[name][: keep // 2], field_ids[name][-(keep - keep // 2) :]
                # A cut through a multi-byte character decodes to U+FFFD, which re-encodes longer.
                head_text = self.tokenizer.decode(head).rstrip("\ufffd")
                tail_text = self.tokenizer.decode(tail).lstrip("\ufffd")
                fields[name] = head_text + CUT_MARK + tail_text
            ids = self._ids(self.text(dataclasses.replace(record, **fields)))
            if len(ids) <= budget:
                return ids, True
            slack *= 2
        half = budget // 2
        return ids[:half] + ids[len(ids) - (budget - half) :], True
