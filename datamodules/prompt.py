"""Render a record into the judge's input, and encode it within a token budget.

The layout is Prometheus' absolute-grading prompt (the one of Feedback Collection and of the
benchmark files), so a judge reads at grading time what it read in training. Four variants
come from leaving out the rubric and/or the reference answer (the paper's augmentation);
retrieved context, when given, gets a section of its own before the reference answer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from datamodules.records import Record, rubric_text

TASK_HEADER = "###Task Description:"
CUT_MARK = " [...] "
# The free-text fields that truncation may shorten, never the rubric, headers or prompt's end.
CUTTABLE = ("response", "reference_answer", "context", "instruction")


def task_description(has_reference: bool, has_rubric: bool, has_context: bool) -> str:
    given = ["an instruction (which may contain an input)", "a response to evaluate"]
    if has_context:
        given.append("passages of context retrieved for the instruction")
    if has_reference:
        given.append("a reference answer that would get a score of 5")
    if has_rubric:
        given.append("a score rubric that states the evaluation criteria")
    listed = ", ".join(given[:-1]) + " and " + given[-1]
    basis = "strictly by the score rubric" if has_rubric else "by its helpfulness, correctness and clarity"
    return (
        f"{listed[0].upper()}{listed[1:]} are given.\n"
        f"1. Write a detailed feedback that judges the response {basis}, not in general terms.\n"
        "2. After the feedback, give a score that is an integer from 1 to 5.\n"
        '3. Answer in this format: "Feedback: (the feedback) [RESULT] (an integer from 1 to 5)"\n'
        "4. Write nothing else: no opening, closing or extra explanation."
    )


def render(record: Record) -> str:
    """The absolute-grading prompt for ``record``; absent sections are left out."""
    rubric = rubric_text(record.rubric)
    parts = [
        (TASK_HEADER, task_description(record.reference_answer is not None, rubric is not None, record.context is not None)),
        ("###The instruction to evaluate:", record.instruction),
        ("###Response to evaluate:", record.response),
        ("###Context:", record.context),
        ("###Reference Answer (Score 5):", record.reference_answer),
        ("###Score Rubrics:", rubric),
    ]
    body = "\n\n".join(f"{header}\n{text}" for header, text in parts if text is not None)
    return body + "\n\n###Feedback: "


def completion(record: Record) -> str:
    """The causal head's target: ``Feedback: ... [RESULT] n``."""
    score = record.score
    shown = int(score) if score is not None and float(score).is_integer() else score
    feedback = (record.feedback or "").strip()
    return f"Feedback: {feedback} [RESULT] {shown}" if feedback else f"[RESULT] {shown}"


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int] | None  # causal head only: -100 on the prompt
    truncated: bool


class PromptEncoder:
    """Tokenise records into at most ``max_length`` tokens.

    Over the budget, the longest free-text field (response, reference answer, context,
    instruction) loses its middle, marked ``[...]``, until the prompt fits: the rubric, the
    section headers and the end of the prompt (where a decoder is pooled) stay whole. Only if
    every field is already short and the prompt is still too long is the middle of the token
    sequence itself dropped, so the result never exceeds the budget.
    """

    def __init__(self, tokenizer, max_length: int | None = None, use_chat_template: bool = True, with_completion: bool = False):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.chat = bool(use_chat_template and getattr(tokenizer, "chat_template", None))
        self.with_completion = with_completion

    def text(self, record: Record) -> str:
        prompt = render(record)
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
        n = len(self._ids(self.text(record)))
        return n + (len(self._completion_ids(record)) if self.with_completion else 0)

    def encode(self, record: Record) -> Encoded:
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
        fields = {name: getattr(record, name) for name in CUTTABLE if getattr(record, name)}
        mark = len(self.tokenizer(CUT_MARK, add_special_tokens=False)["input_ids"])
        floor = 16 + mark  # a field this short is not cut again
        slack = 8  # re-tokenising the joined text can cost a few tokens: more each round
        for _ in range(4 * len(CUTTABLE)):
            field_ids = {name: self.tokenizer(text, add_special_tokens=False)["input_ids"] for name, text in fields.items()}
            name = max(field_ids, key=lambda n: len(field_ids[n]), default=None)
            if name is None or len(field_ids[name]) <= floor:
                break
            excess = len(ids) - budget
            keep = max(len(field_ids[name]) - excess - mark - slack, 16)
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
