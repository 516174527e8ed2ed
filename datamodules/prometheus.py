"""The Prometheus absolute-grading prompt, owned here: its headers, rendering a record into it,
the causal head's completion, and parsing formatted prompts back into record fields.

The layout is the one of Feedback Collection and of the benchmark files, so a judge reads at
grading time what it read in training. Four variants come from leaving out the rubric and/or
the reference answer (the paper's augmentation); retrieved context, when given, gets a section
of its own before the reference answer.

The layout (see ../shared/data/benchmarks/README.md): sections whose headers stand alone at the
start of a line, in this order: task description, instruction, response, reference answer
(absent in reference-free prompts), score rubrics, feedback. Content may itself contain
``###``, even a line that looks like a header, so the parser anchors on the known headers only
and, for the sections after the response, takes the last line-start match: text inside the
instruction or the response cannot then end those sections early.
"""

from __future__ import annotations

import re

from datamodules.records import Record, rubric_text

TASK = "###Task Description:"
INSTRUCTION = "###The instruction to evaluate:"
RESPONSE = "###Response to evaluate:"
CONTEXT = "###Context:"  # this project's section for retrieved passages (not Prometheus')
REFERENCE = "###Reference Answer (Score 5):"
RUBRIC = "###Score Rubrics:"
FEEDBACK = "###Feedback:"

def _shown(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def task_description(has_reference: bool, has_rubric: bool, has_context: bool, score_range=(1, 5)) -> str:
    """The task section; on another ``score_range`` than 1..5 it names that range instead."""
    low, high = _shown(score_range[0]), _shown(score_range[1])
    given = ["an instruction (which may contain an input)", "a response to evaluate"]
    if has_context:
        given.append("passages of context retrieved for the instruction")
    if has_reference:
        given.append(f"a reference answer that would get a score of {high}")
    if has_rubric:
        given.append("a score rubric that states the evaluation criteria")
    listed = ", ".join(given[:-1]) + " and " + given[-1]
    basis = "strictly by the score rubric" if has_rubric else "by its helpfulness, correctness and clarity"
    return (
        f"{listed[0].upper()}{listed[1:]} are given.\n"
        f"1. Write a detailed feedback that judges the response {basis}, not in general terms.\n"
        f"2. After the feedback, give a score that is an integer from {low} to {high}.\n"
        f'3. Answer in this format: "Feedback: (the feedback) [RESULT] (an integer from {low} to {high})"\n'
        "4. Write nothing else: no opening, closing or extra explanation."
    )


def render(record: Record, score_range=(1, 5)) -> str:
    """The absolute-grading prompt for ``record``; absent sections are left out. The section
    headers stay Prometheus' own on any ``score_range`` (the parser reads them back)."""
    rubric = rubric_text(record.rubric)
    has = (record.reference_answer is not None, rubric is not None, record.context is not None)
    parts = [
        (TASK, task_description(*has, score_range=score_range)),
        (INSTRUCTION, record.instruction),
        (RESPONSE, record.response),
        (CONTEXT, record.context),
        (REFERENCE, record.reference_answer),
        (RUBRIC, rubric),
    ]
    body = "\n\n".join(f"{header}\n{text}" for header, text in parts if text is not None)
    return f"{body}\n\n{FEEDBACK} "


def completion(record: Record) -> str:
    """The causal head's target: ``Feedback: ... [RESULT] n``."""
    score = record.score
    shown = int(score) if score is not None and float(score).is_integer() else score
    feedback = (record.feedback or "").strip()
    return f"Feedback: {feedback} [RESULT] {shown}" if feedback else f"[RESULT] {shown}"


_SCORE_LINE = re.compile(r"^Score ([1-5]):\s?(.*)$")


def _line_starts(text: str, header: str) -> list[int]:
    """Offsets where ``header`` starts a line (and is the whole line but trailing spaces)."""
    pattern = re.compile(r"(?m)^" + re.escape(header) + r"[ \t]*(?:\n|$)")
    return [m.start() for m in pattern.finditer(text)]


def _body(text: str, start: int, header: str, end: int) -> str:
    return text[start + len(header) : end].strip("\n").strip()


def parse_rubric(body: str | None) -> str | dict | None:
    """``[criteria]`` + five ``Score n:`` lines -> a rubric object; anything else stays text."""
    if not body:
        return None
    lines = body.strip().split("\n")
    if len(lines) == 6 and lines[0].startswith("[") and lines[0].endswith("]"):
        descriptions = [_SCORE_LINE.match(line) for line in lines[1:]]
        if all(m and int(m.group(1)) == i for i, m in enumerate(descriptions, 1)):
            rubric = {"criteria": lines[0][1:-1].strip()}
            rubric.update({f"score{i}_description": m.group(2).strip() for i, m in enumerate(descriptions, 1)})
            return rubric
    return body.strip()


def parse_prompt(text: str) -> dict:
    """Split a formatted absolute prompt into ``instruction``, ``response``, ``context``,
    ``reference_answer`` and ``rubric``; a section that is not there becomes None, and so does
    an empty one, except the response: its header with nothing after it is the empty answer ""."""
    if not isinstance(text, str):
        raise ValueError(f"a Prometheus prompt must be text, got {type(text).__name__}")
    end = len(text)
    feedback = [p for p in _line_starts(text, FEEDBACK)]
    end_all = feedback[-1] if feedback else end
    ins = [p for p in _line_starts(text, INSTRUCTION) if p < end_all]
    ins_at = ins[0] if ins else None
    after_ins = ins_at if ins_at is not None else 0
    res = [p for p in _line_starts(text, RESPONSE) if after_ins <= p < end_all]
    res_at = res[0] if res else None
    floor = res_at if res_at is not None else after_ins
    rub = [p for p in _line_starts(text, RUBRIC) if floor < p < end_all]
    rub_at = rub[-1] if rub else None
    ref_ceiling = rub_at if rub_at is not None else end_all
    ref = [p for p in _line_starts(text, REFERENCE) if floor < p < ref_ceiling]
    ref_at = ref[-1] if ref else None
    ctx_ceiling = ref_at if ref_at is not None else ref_ceiling
    ctx = [p for p in _line_starts(text, CONTEXT) if floor < p < ctx_ceiling]
    ctx_at = ctx[-1] if ctx else None

    def section(start, header, empty=None):
        if start is None:
            return None
        following = [p for p in (res_at, ctx_at, ref_at, rub_at, end_all) if p is not None and p > start]
        body = _body(text, start, header, min(following) if following else end)
        return body or empty

    return {
        "instruction": section(ins_at, INSTRUCTION),
        "response": section(res_at, RESPONSE, empty=""),  # an empty answer is still an answer
        "reference_answer": section(ref_at, REFERENCE),
        "context": section(ctx_at, CONTEXT),
        "rubric": parse_rubric(section(rub_at, RUBRIC)),
    }
