"""Request and response schemas of ``phudge serve`` (pydantic)."""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, create_model
from pydantic_core import PydanticCustomError

from phudge_lightning.grades import Grade
from phudge_lightning.serve.limits import MAX_BODY_BYTES, MAX_RECORDS, MAX_TEXT_CHARS


# -- request and response schemas ----------------------------------------------------------------
def _unicode(value: str) -> str:
    # JSON lets a string hold a lone surrogate; the tokenizer, and UTF-8, do not.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("text_encoding", "must be Unicode text (it holds a lone surrogate)") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "is blank")
    return value


# The schema says what the checks do (pattern: something other than whitespace), so that a
# client generated from /openapi.json, or a fuzzer, knows which texts are valid. A response is
# plain ``Text``: an empty or blank answer is graded, not refused.
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(_unicode)]
Required = Annotated[Text, Field(json_schema_extra={"pattern": r"\S"}), AfterValidator(_not_blank)]
# A grader's score: checked against the judge's own score range by the server (a 422 naming it).
Score = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class Rubric(BaseModel):
    """A rubric as an object: the criteria and what each score from 1 to 5 means."""

    criteria: Required
    score1_description: Required
    score2_description: Required
    score3_description: Required
    score4_description: Required
    score5_description: Required


UNION_TAGS = ("text", "list", "object", "record", "records")


def _json_type(value) -> str | None:
    return "text" if isinstance(value, str) else "list" if isinstance(value, list) else (
        "object" if isinstance(value, (dict, BaseModel)) else None)


# Unions told apart by the JSON type, so that an error names the one branch the client meant
# (not "should be a valid string" beside each missing rubric field).
RubricField = Annotated[
    Union[Annotated[Text, Tag("text")], Annotated[Rubric, Tag("object")]],
    Discriminator(_json_type, custom_error_type="rubric_type",
                  custom_error_message="must be text or an object with criteria and score1_description .. score5_description"),
]
ContextField = Annotated[
    Union[Annotated[Text, Tag("text")], Annotated[list[Required], Field(max_length=MAX_RECORDS), Tag("list")]],
    Discriminator(_json_type, custom_error_type="context_type", custom_error_message="must be text or a list of texts"),
]


class GradeRequest(BaseModel):
    """One record to grade; fields beyond these (``id`` and so on) are echoed in the answer.
    ``score`` and ``feedback`` (a grader's, as in training files) are checked, then ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"id": "q1", "instruction": "What is 2+2?", "response": "4", "reference_answer": "2 + 2 = 4"}]})

    instruction: Required
    response: Text
    rubric: RubricField | None = None
    reference_answer: Text | None = None
    context: ContextField | None = None
    score: Score | None = None
    feedback: Text | None = None


class CompareRequest(BaseModel):
    """Two responses to one instruction; ``tie_margin``: a score gap up to it is a tie."""

    instruction: Required
    response_a: Text
    response_b: Text
    rubric: RubricField | None = None
    reference_answer: Text | None = None
    context: ContextField | None = None
    tie_margin: float = Field(0.0, ge=0.0, le=4.0, strict=True)


class RankItem(BaseModel):
    """One answer to rank, as an object: its text and an optional ``id`` (other fields are echoed)."""

    model_config = ConfigDict(extra="allow")

    response: Text  # the same check as GradeRequest.response: an answer is an answer wherever it is given
    id: str | int | None = None


AnswerField = Annotated[
    Union[Annotated[Text, Tag("text")], Annotated[RankItem, Tag("object")]],
    Discriminator(_json_type, custom_error_type="answer_type",
                  custom_error_message="must be text or an object with response (and an optional id)"),
]


class RankRequest(BaseModel):
    """Answers to one instruction, to be ranked; fields beyond these are echoed in the answer."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"instruction": "What is 2+2?", "responses": ["4", {"id": "b", "response": "5"}], "rubric": "factual_correctness"}]})

    instruction: Required
    responses: list[AnswerField] = Field(min_length=1, max_length=MAX_RECORDS)
    rubric: RubricField | None = None
    reference_answer: Text | None = None
    context: ContextField | None = None


# One record or a list of them (a record's errors then name its fields, not also "not a list").
GradeBody = Annotated[
    Union[Annotated[GradeRequest, Tag("record")],
          Annotated[list[GradeRequest], Field(min_length=1, max_length=MAX_RECORDS), Tag("records")]],
    Discriminator(lambda body: "records" if isinstance(body, list) else "record"),
]


def _with_grade_fields(name: str, doc: str, **leading) -> type[BaseModel]:
    """A schema with ``leading`` fields, then ``Grade``'s (so the server cannot drift from the
    API), open to the request's extra fields."""
    hints = typing.get_type_hints(Grade)
    return create_model(name, __config__=ConfigDict(extra="allow"), __doc__=doc, **leading,
                        **{f.name: (hints[f.name], ... if f.default is MISSING else f.default) for f in fields(Grade)})


GradeResult = _with_grade_fields("GradeResult", (
    "``score`` on the judge's score range, 1..5 by default, always there (null when a causal judge gave "
    "none); the classification head adds the probability of each score and ``confidence``, the causal head "
    "its ``feedback``; ``truncated`` is true when the prompt was shortened. The request's extra fields "
    "come back beside them."))


class CompareResult(BaseModel):
    """``margin`` = score_a - score_b; with probabilities, ``p_a_better`` = P(A > B) and
    ``p_tie`` = P(A = B). ``invalid`` when a causal judge gave no score."""

    winner: Literal["A", "B", "tie", "invalid"]
    score_a: float | None
    score_b: float | None
    margin: float | None
    p_a_better: float | None = None
    p_tie: float | None = None


RankedAnswer = _with_grade_fields("RankedAnswer", (
    "An answer's place: ``index`` in ``responses``, ``rank`` (1 the best; equal scores share a rank; null "
    "without a score), its grade, and the item's own ``id`` and fields."), index=(int, ...), rank=(int | None, ...))


class RankResult(BaseModel):
    """``ranking``: the answers best first; with probabilities, ``p_better[i][j]`` = P(answer i
    beats answer j) in the ranking's order (null on the diagonal). The request's extra fields
    come back beside them."""

    model_config = ConfigDict(extra="allow")

    ranking: list[RankedAnswer]
    p_better: list[list[float | None]] | None = None


class Health(BaseModel):
    status: Literal["ok"]
    head: str
    backbone: str
    max_batch_size: int
    batch_timeout: float
    requests: int = Field(description="requests graded so far (a compare counts once)")
    records: int = Field(description="records graded so far")
    batches: int = Field(description="batches graded so far: each is one forward pass when it holds up to max_batch_size records")
    in_flight: int = Field(description="requests received and not answered yet")
    queued: int = Field(0, description="records taken and not answered yet (waiting or being graded)")
    max_queue: int | None = Field(None, description="records waiting beyond which grading requests get 503")
    score_range: list[float] = Field(description="[low, high] of the judge's scores")


class FieldError(BaseModel):
    field: str
    msg: str
    type: str
    loc: list[str | int]


class ErrorBody(BaseModel):
    message: str
    detail: list[FieldError] | str


ERRORS = {
    400: {"model": ErrorBody, "description": "malformed JSON"},
    401: {"model": ErrorBody, "description": "a missing or wrong API key (`Authorization: Bearer <key>`)"},
    413: {"model": ErrorBody, "description": f"request body over the limit (default {MAX_BODY_BYTES} bytes)"},
    415: {"model": ErrorBody, "description": "the body is not sent as application/json"},
    422: {"model": ErrorBody, "description": "a missing, mistyped, too long or (instruction, rubric) blank field, named in `detail`"},
    500: {"model": ErrorBody, "description": "the judge failed on this batch"},
    503: {"model": ErrorBody, "description": "the queue is full: retry after the seconds in `Retry-After`"},
}
