"""The one record schema every source is read into, and its validation.

A grading record:

- ``instruction`` (str, required, not blank): the task given to the model being judged;
- ``response`` (str, required): the answer to grade; an empty or blank response is an answer
  (the worst kind: a model that said nothing) and is graded like any other;
- ``rubric`` (optional): free text, a rubric name from ``datamodules.rubrics``
  (``"helpfulness"``: one token, see that module for the rule), or ``{"criteria": str,
  "score1_description": str, ..., "score5_description": str}``;
- ``reference_answer`` (str, optional): an answer that deserves a 5;
- ``context`` (str or list of str, optional): retrieved passages;
- ``score`` (int or float in the score range, [1, 5] unless a judge or data module says
  otherwise, see ``score_scale``; required to train or evaluate): e.g. the mean of raters;
- ``feedback`` (str, optional): the grader's explanation (the causal head's target).

Any other field (``id`` and so on) is kept in ``extra`` and written back by the grading tools.

Bad input is only a missing field, a value of the wrong type (a number, a list, an object or
null where text is required), a blank instruction, or a score outside 1-5. A blank instruction
is refused because it is not something a model answered: with no task there is nothing the
response could be right or wrong about, so it marks a broken row, not a bad answer.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from datamodules.rubrics import UnknownRubric, resolve_rubric

SCORE_KEYS = tuple(f"score{i}_description" for i in range(1, 6))
DEFAULT_SCORE_RANGE = (1.0, 5.0)
# The range scores are checked against where no ``score_range`` is passed: set by whoever reads
# the data for a judge of another scale (the data module, phudge evaluate), so that every
# reader of every format checks against the judge's range without each taking an argument.
_SCORE_RANGE: contextvars.ContextVar[tuple[float, float]] = contextvars.ContextVar("score_range", default=DEFAULT_SCORE_RANGE)
FIELDS = ("instruction", "response", "rubric", "reference_answer", "context", "score", "feedback")
MISSING = object()  # a field the row does not have, told apart from one that is null
JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "text",
              list: "a list", dict: "an object"}


def found(value, width: int = 60) -> str:
    """What a row holds, for an error message, in JSON's words: ``a number (3)``, ``null``,
    ``a list (['a', 'b'])``; a long value is cut and marked ``...``."""
    if value is None:
        return "null"
    shown = repr(value)
    shown = shown if len(shown) <= width else shown[: width - 3] + "..."
    return f"{JSON_TYPES.get(type(value), type(value).__name__)} ({shown})"


class RecordError(ValueError):
    """A bad row, named by its source, row number and field."""

    def __init__(self, source: str, row: int | str, field: str | None, message: str):
        self.source, self.row, self.field, self.message = source, row, field, message
        self.problems = [self]
        where = f"{source}, row {row}" + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass
class Record:
    instruction: str
    response: str
    rubric: str | dict | None = None
    reference_answer: str | None = None
    context: str | None = None
    score: float | None = None
    feedback: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


LABELS = ("A", "B", "tie")


@dataclass
class Pair:
    """Two responses to one instruction, and which is better.

    ``preference`` is the probability that ``a`` is the better one, in [0, 1]: 1 or 0 for a
    chosen/rejected pair, 0.5 for a tie, anything between for a soft label (the mean of
    raters, AlpacaEval's weighted annotator). ``label`` reads it as "A", "B" or "tie".
    """

    a: Record
    b: Record
    preference: float = 1.0
    row: int | str = "?"

    @classmethod
    def labelled(cls, a: Record, b: Record, label: str, row: int | str = "?") -> "Pair":
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        return cls(a, b, {"A": 1.0, "B": 0.0, "tie": 0.5}[label], row)

    @property
    def label(self) -> str:
        return "A" if self.preference > 0.5 else "B" if self.preference < 0.5 else "tie"

    @property
    def group(self) -> str | None:
        """The subset the pair belongs to, where its set has them (HHH's ``source``: helpful,
        harmless, honest, other); None elsewhere."""
        return self.a.extra.get("source")

    @property
    def instruction(self) -> str:
        return self.a.instruction


def _text(value: Any, name: str, source: str, row, *, required: bool, blank: bool = False) -> str | None:
    """``value`` as text. Required: it must be there and be text, and not blank unless ``blank``
    (the response: an empty answer is graded). Optional: absent, null or blank is None."""
    if value is MISSING:
        if required:
            raise RecordError(source, row, name, "is missing")
        return None
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise RecordError(source, row, name, f"must be text, got {found(value)}")
    if not value.strip() and not blank:
        if required:
            raise RecordError(source, row, name, "is empty" if value == "" else f"is blank ({value!r})")
        return None
    return value


def _rubric(value: Any, source: str, row) -> str | dict | None:
    if value is None or value is MISSING or isinstance(value, str):
        text = _text(value, "rubric", source, row, required=False)
        try:
            return resolve_rubric(text)
        except UnknownRubric as e:
            raise RecordError(source, row, "rubric", str(e)) from None
    if not isinstance(value, dict):
        raise RecordError(source, row, "rubric", f"must be text or an object, got {found(value)}")
    rubric = {}
    for key in ("criteria", *SCORE_KEYS):
        rubric[key] = _text(value.get(key, MISSING), f"rubric.{key}", source, row, required=True)
    return rubric


def _context(value: Any, source: str, row) -> str | None:
    if isinstance(value, list):
        for i, passage in enumerate(value):
            _text(passage, f"context[{i}]", source, row, required=True)
        return "\n\n".join(value) or None
    return _text(value, "context", source, row, required=False)


def check_score_range(score_range) -> tuple[float, float]:
    """``[low, high]`` as two floats with low < high, or a ``ValueError`` saying what is wrong."""
    try:
        low, high = (float(x) for x in score_range)
    except (TypeError, ValueError):
        raise ValueError(f"score_range must be two numbers [low, high], got {score_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"score_range must be [low, high] with low < high, got {list(score_range)}")
    return low, high


def score_range_now() -> tuple[float, float]:
    """The range that ``validate_record`` checks scores against when given none."""
    return _SCORE_RANGE.get()


@contextlib.contextmanager
def score_scale(score_range) -> Iterator[tuple[float, float]]:
    """Within the block, records are validated against ``score_range`` unless told otherwise."""
    token = _SCORE_RANGE.set(check_score_range(score_range))
    try:
        yield _SCORE_RANGE.get()
    finally:
        _SCORE_RANGE.reset(token)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def validate_score(value: Any, source: str, row, score_range=None) -> float:
    low, high = score_range_now() if score_range is None else check_score_range(score_range)
    scale = f"from {_number(low)} to {_number(high)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(source, row, "score", f"must be a number {scale}, got {found(value)}")
    if not math.isfinite(value) or not low <= value <= high:
        raise RecordError(source, row, "score", f"must be {scale}, got {value}")
    return float(value)


def validate_record(raw: Any, *, source: str = "<records>", row: int | str = "?", require_score: bool = True,
                    score_range=None) -> Record:
    """Check one raw row against the schema; raise ``RecordError`` naming the row and every bad
    field (its ``field`` is the first; ``problems`` holds one error per bad field). A rubric
    name becomes its rubric object; ``score`` is checked against ``score_range`` (default: the
    one ``score_scale`` set, [1, 5] outside any)."""
    if not isinstance(raw, dict):
        raise RecordError(source, row, None, f"must be a JSON object, got {type(raw).__name__}")
    problems: list[RecordError] = []

    def check(validate, *args, **kwargs):
        try:
            return validate(*args, **kwargs)
        except RecordError as error:  # keep going: one pass over the row names all its faults
            problems.append(error)
            return None

    score = raw.get("score")
    if score is None and require_score:
        problems.append(RecordError(source, row, "score", "is missing" if "score" not in raw else "is null"))
    given = lambda name: raw.get(name, MISSING)  # noqa: E731
    record = Record(
        instruction=check(_text, given("instruction"), "instruction", source, row, required=True),
        response=check(_text, given("response"), "response", source, row, required=True, blank=True),
        rubric=check(_rubric, given("rubric"), source, row),
        reference_answer=check(_text, given("reference_answer"), "reference_answer", source, row, required=False),
        context=check(_context, given("context"), source, row),
        score=None if score is None else check(validate_score, score, source, row, score_range),
        feedback=check(_text, given("feedback"), "feedback", source, row, required=False),
        extra={k: v for k, v in raw.items() if k not in FIELDS},
    )
    if problems:
        problems.sort(key=lambda e: FIELDS.index(e.field.split(".")[0].split("[")[0]))
        first, rest = problems[0], problems[1:]
        message = first.message + "".join(f"; field '{e.field}' {e.message}" for e in rest)
        error = RecordError(source, row, first.field, message)
        error.problems = problems
        raise error
    return record


def rubric_text(rubric: str | dict | None) -> str | None:
    """The rubric as Prometheus writes it: ``[criteria]`` then ``Score 1: ...`` .. ``Score 5: ...``."""
    if rubric is None or isinstance(rubric, str):
        return rubric
    lines = [f"[{rubric['criteria']}]"] + [f"Score {i}: {rubric[k]}" for i, k in enumerate(SCORE_KEYS, 1)]
    return "\n".join(lines)
