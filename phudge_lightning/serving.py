"""``phudge serve``: a judge over HTTP, with dynamic batching.

    phudge serve --checkpoint judges/minilm --port 8000
    curl -s 127.0.0.1:8000/grade -H 'Content-Type: application/json' \
         -d '{"instruction": "What is 2+2?", "response": "4"}'

Endpoints:

- ``POST /grade``: one record or a list of them, in the schema of ``phudge grade``
  (``instruction``, ``response``, optional ``rubric`` as text or object, ``reference_answer``,
  ``context``; other fields, such as ``id``, are echoed back); answers one grade or a list, in
  order: ``score``, and for the classification head ``probabilities`` and ``confidence``;
- ``POST /compare``: ``instruction``, ``response_a``, ``response_b``, optional ``rubric``,
  ``reference_answer``, ``context`` and ``tie_margin``; answers ``winner`` ("A", "B" or
  "tie"), ``score_a``, ``score_b`` and ``margin`` (each response is graded alone, as in
  ``Judge.compare``, so there is no position bias);
- ``GET /health``: 200 once the judge is loaded, with counters of requests and forward passes;
- ``GET /openapi.json`` (and the Swagger UI at ``/docs``): the request and response schemas.

Requests that arrive together are graded in one forward pass: a batcher collects up to
``--max-batch-size`` records, waiting at most ``--batch-timeout`` seconds after the first, and
grades them in a worker thread while the event loop keeps accepting requests. Records of
``/grade`` and ``/compare`` share the batches. ``--max-batch-size 1`` turns batching off.

Bad requests get a 4xx answer naming the field: 422 for a missing, mistyped, blank or too long
field (``detail`` lists ``field`` and ``msg``; ``message`` says it in one line), 400 for
malformed JSON, 413 for a body over ``--max-body-bytes``, 415 for a body not sent as
``application/json``. SIGTERM (or Ctrl-C) stops accepting connections, finishes the requests in
flight, then exits with status 0.

Built on FastAPI and uvicorn with a small asyncio batcher rather than LitServe (0.2.19), which
this project first meant to use, because:

- LitServe batches per ``LitAPI``, and each ``LitAPI`` (one per path) runs in its own inference
  worker process with its own copy of the model: ``/grade`` and ``/compare`` could neither share
  the model nor a forward pass;
- its batches count requests, not records: a ``/grade`` list of 50 records is one item;
- ``LitServer.run`` installs no SIGTERM handler, and its shutdown closes the queue to the
  inference workers before it stops uvicorn, so requests in flight are dropped.

LitServe serves through FastAPI and uvicorn itself; what it would add here (worker processes,
multi-GPU placement) a one-model judge does not need.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Literal, Union

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from datamodules.records import Record, RecordError, validate_record
from phudge_lightning.judge_options import add_judge_arguments, judge_options

log = logging.getLogger(__name__)

# Limits of one request. Text beyond the judge's token budget is cut anyway; these bound the
# tokenizer's work and the memory a request can ask for.
MAX_TEXT_CHARS = 32_768
MAX_RECORDS = 64
MAX_BODY_BYTES = 1 << 20
# The grade's own fields: an echoed field of the same name would be overwritten, so it is dropped.
GRADE_FIELDS = ("score", "probabilities", "confidence", "feedback", "truncated")


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
# client generated from /openapi.json, or a fuzzer, knows which texts are valid.
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(_unicode)]
Required = Annotated[Text, Field(json_schema_extra={"pattern": r"\S"}), AfterValidator(_not_blank)]
Score = Annotated[float, Field(strict=True, ge=1, le=5)]


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
    response: Required
    rubric: RubricField | None = None
    reference_answer: Text | None = None
    context: ContextField | None = None
    score: Score | None = None
    feedback: Text | None = None


class CompareRequest(BaseModel):
    """Two responses to one instruction; ``tie_margin``: a score gap up to it is a tie."""

    instruction: Required
    response_a: Required
    response_b: Required
    rubric: RubricField | None = None
    reference_answer: Text | None = None
    context: ContextField | None = None
    tie_margin: float = Field(0.0, ge=0.0, le=4.0, strict=True)


# One record or a list of them (a record's errors then name its fields, not also "not a list").
GradeBody = Annotated[
    Union[Annotated[GradeRequest, Tag("record")],
          Annotated[list[GradeRequest], Field(min_length=1, max_length=MAX_RECORDS), Tag("records")]],
    Discriminator(lambda body: "records" if isinstance(body, list) else "record"),
]


class GradeResult(BaseModel):
    """``score`` on 1..5 (null when a causal judge gave none); the classification head adds the
    probability of each score and ``confidence``, the causal head its ``feedback``. The
    request's extra fields come back beside them."""

    model_config = ConfigDict(extra="allow")

    score: float | None
    probabilities: list[float] | None = None
    confidence: float | None = None
    feedback: str | None = None
    truncated: bool | None = None


class CompareResult(BaseModel):
    """``margin`` = score_a - score_b; with probabilities, ``p_a_better`` = P(A > B) and
    ``p_tie`` = P(A = B). ``invalid`` when a causal judge gave no score."""

    winner: Literal["A", "B", "tie", "invalid"]
    score_a: float | None
    score_b: float | None
    margin: float | None
    p_a_better: float | None = None
    p_tie: float | None = None


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
    413: {"model": ErrorBody, "description": f"request body over the limit (default {MAX_BODY_BYTES} bytes)"},
    415: {"model": ErrorBody, "description": "the body is not sent as application/json"},
    422: {"model": ErrorBody, "description": "a missing, mistyped, blank or too long field, named in `detail`"},
    500: {"model": ErrorBody, "description": "the judge failed on this batch"},
}


class AsciiJSON(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate echoed back (in an ``id``, say) is
    written as ``\\udXXX`` instead of failing to encode."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


# -- dynamic batching -----------------------------------------------------------------------------
@dataclass
class _Job:
    records: list[Record]
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Grades the records of requests that arrive together in one forward pass.

    A worker task takes the first waiting request, then more until it holds ``max_batch_size``
    records or ``batch_timeout`` seconds have passed, and grades them in one call on a worker
    thread, so the event loop keeps taking requests meanwhile; those wait for the next batch.
    A request is never split across batches unless it alone holds more than ``max_batch_size``
    records (then the judge grades it in chunks of that size).
    """

    def __init__(self, judge, max_batch_size: int, batch_timeout: float):
        self.judge, self.max_batch_size, self.batch_timeout = judge, max_batch_size, batch_timeout
        self.pending: deque[_Job] = deque()
        self.arrived = asyncio.Event()
        # One thread: the judge is not thread-safe, and one pass at a time uses every core.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
        self.requests = self.records = self.batches = self.in_flight = 0

    async def grade(self, records: list[Record]):
        """The grades of ``records``, in order, once a batch holding them is graded."""
        job = _Job(records, asyncio.get_running_loop().create_future())
        self.pending.append(job)
        self.arrived.set()
        self.in_flight += 1
        try:
            return await job.future
        finally:
            self.in_flight -= 1

    async def run(self) -> None:
        while True:
            while not self.pending:
                self.arrived.clear()
                await self.arrived.wait()
            await self._grade(await self._collect())

    async def _collect(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_timeout
        jobs, size = [], 0
        while size < self.max_batch_size:
            if not self.pending and not await self._arrival(deadline):
                break
            if jobs and size + len(self.pending[0].records) > self.max_batch_size:
                break  # it opens the next batch rather than splitting this one
            job = self.pending.popleft()
            if not job.future.done():  # done: its client went away
                jobs.append(job)
                size += len(job.records)
        return jobs

    async def _arrival(self, deadline: float) -> bool:
        # An Event, not `wait_for(queue.get())`: a timeout racing a get could lose a request.
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining > 0:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass
        return bool(self.pending)

    async def _grade(self, jobs: list[_Job]) -> None:
        records = [r for job in jobs for r in job.records]
        if not records:
            return
        try:
            grades = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.judge.grade_records, records, self.max_batch_size)
        except Exception as error:
            if len(jobs) > 1:  # one bad request must not fail the others: grade each alone
                for job in jobs:
                    await self._grade([job])
                return
            log.exception("grading a request of %d records failed", len(records))
            for job in jobs:  # the request fails (500), the server goes on
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self.requests, self.records, self.batches = self.requests + len(jobs), self.records + len(records), self.batches + 1
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(grades[start : start + len(job.records)])
            start += len(job.records)


# -- errors ---------------------------------------------------------------------------------------
def _field_name(loc) -> str:
    """``("body", "records", 2, "rubric", "object", "criteria")`` -> ``[2].rubric.criteria``:
    the path as the client wrote it, without ``body`` and the tags of the unions above."""
    name = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part not in UNION_TAGS:
            name += f".{part}" if name else part
    return name or "body"


def _error_response(status: int, errors: list[dict]) -> AsciiJSON:
    detail = [{"field": e.get("field") or _field_name(e["loc"]), "msg": e["msg"], "type": e["type"], "loc": list(e["loc"])} for e in errors]
    fields: dict[str, list[str]] = {}
    for d in detail:
        fields.setdefault(d["field"], []).append(d["msg"])
    message = "; ".join(f"{name}: {' or '.join(dict.fromkeys(msgs))}" for name, msgs in fields.items())
    return AsciiJSON(status_code=status, content=jsonable_encoder({"message": message, "detail": detail}))


async def _invalid_request(request: Request, error: RequestValidationError) -> AsciiJSON:
    errors = list(error.errors())
    content_type = request.headers.get("content-type", "")
    if not content_type.split(";")[0].strip().endswith("json"):
        # FastAPI reads no other body as JSON: say so, not "Input should be a valid dictionary".
        return AsciiJSON(status_code=415, content={
            "message": f"send the body as JSON with Content-Type: application/json (got {content_type or 'none'!r})",
            "detail": "unsupported_media_type"})
    if any(e["type"] == "json_invalid" for e in errors):
        where = errors[0].get("ctx", {}).get("error", "")
        return AsciiJSON(status_code=400, content={"message": f"malformed JSON: {where}".strip(), "detail": "json_invalid"})
    return _error_response(422, errors)


async def _http_error(request: Request, error: StarletteHTTPException) -> AsciiJSON:
    # FastAPI's own 4xx answers (a body that is not UTF-8, say) in the documented error shape.
    return AsciiJSON(status_code=error.status_code, content={"message": str(error.detail), "detail": "http_error"},
                     headers=getattr(error, "headers", None))


async def _server_error(request: Request, error: Exception) -> AsciiJSON:
    log.exception("unexpected error on %s", request.url.path)
    return AsciiJSON(status_code=500, content={"message": f"internal error: {type(error).__name__}", "detail": "internal"})


def _record(raw: dict, loc: tuple, rename: dict[str, str] | None = None) -> Record:
    """``validate_record`` on a request's record; its ``RecordError`` (a blank field, say)
    becomes a 422 naming the field as the client wrote it (``response_a``, not ``response``)."""
    try:
        record = validate_record(raw, source="request", row=loc[-1] if loc else 0, require_score=False)
        for key, value in record.extra.items():
            try:  # echoed back, so it must be writable as JSON
                json.dumps(value, allow_nan=False)
            except ValueError:
                raise RecordError("request", 0, key, "must be valid JSON: NaN and Infinity are not") from None
        return record
    except RecordError as error:
        name = (rename or {}).get(error.field, error.field) or "body"
        where = "".join(f"[{i}]" for i in loc)
        raise RequestValidationError([{"loc": ("body", *loc, name), "field": f"{where}.{name}" if where else name,
                                       "msg": error.message, "type": "value_error"}]) from None


# -- body size ------------------------------------------------------------------------------------
class BodyLimit:
    """Answers 413 to a request body over ``max_bytes``, before anything parses it.

    The body is read here (counting, since a chunked request declares no length), then handed
    on. An oversized body is read on and thrown away up to ``drain_bytes``, so the client, still
    sending, reads the 413 rather than a reset connection.
    """

    def __init__(self, app, max_bytes: int, drain_bytes: int | None = None):
        self.app, self.max_bytes = app, max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(4 * max_bytes, 16 << 20)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            if size > self.drain_bytes:
                break
            if size <= self.max_bytes:
                chunks.append(message.get("body", b""))
        if size > self.max_bytes:
            return await AsciiJSON(status_code=413, content={
                "message": f"request body is over the limit of {self.max_bytes} bytes", "detail": "body_too_large",
            })(scope, receive, send)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# -- the app --------------------------------------------------------------------------------------
def create_app(judge, max_batch_size: int = 16, batch_timeout: float = 0.01, max_body_bytes: int = MAX_BODY_BYTES):
    """The ASGI app serving ``judge`` (a ``Judge``); its batcher runs while the app does."""
    batcher = Batcher(judge, max_batch_size, batch_timeout)
    hparams = dict(getattr(judge.module, "hparams", {}))

    @asynccontextmanager
    async def lifespan(app):
        worker = asyncio.create_task(batcher.run())
        try:
            yield
        finally:  # uvicorn gets here after the requests in flight are answered
            worker.cancel()
            batcher.executor.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="phudge judge", version="1", lifespan=lifespan, default_response_class=AsciiJSON,
                  description=__doc__.split("\n\n")[0] + " Schemas follow the record format of `phudge grade`.")
    app.state.batcher = batcher
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)

    @app.post("/grade", response_model=Union[GradeResult, list[GradeResult]], response_model_exclude_none=True, responses=ERRORS)
    async def grade(body: GradeBody):
        """Grade one record (answers one grade) or a list (answers a list, in order)."""
        many = isinstance(body, list)
        items = body if many else [body]
        records = [_record(item.model_dump(), (i,) if many else ()) for i, item in enumerate(items)]
        grades = await batcher.grade(records)
        results = [{**{k: v for k, v in r.extra.items() if k not in GRADE_FIELDS}, **g.to_dict()}
                   for r, g in zip(records, grades)]
        return results if many else results[0]

    @app.post("/compare", response_model=CompareResult, response_model_exclude_none=True, responses=ERRORS)
    async def compare(body: CompareRequest):
        """Which response is better: each is graded alone, then the scores are compared."""
        from phudge_lightning.judge import compare_grades

        shared = body.model_dump(exclude={"response_a", "response_b", "tie_margin"})
        records = [_record({**shared, "response": body.response_a}, (), {"response": "response_a"}),
                   _record({**shared, "response": body.response_b}, (), {"response": "response_b"})]
        grade_a, grade_b = await batcher.grade(records)
        return compare_grades(grade_a, grade_b, body.tie_margin).to_dict()

    @app.get("/health", response_model=Health)
    async def health():
        """200 once the judge is loaded and serving."""
        return Health(status="ok", head=str(hparams.get("head", "?")), backbone=str(hparams.get("backbone", "?")),
                      max_batch_size=max_batch_size, batch_timeout=batch_timeout,
                      requests=batcher.requests, records=batcher.records, batches=batcher.batches,
                      in_flight=batcher.in_flight)

    return BodyLimit(app, max_body_bytes)


# -- the command ----------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="phudge serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a .ckpt written by phudge fit, or a folder from phudge export")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, default=16, help="records graded in one forward pass at most; 1 turns batching off")
    p.add_argument("--batch-timeout", type=float, default=0.01, help="seconds a batch waits for more requests after its first")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="larger request bodies get 413")
    add_judge_arguments(p)
    p.add_argument("--graceful-timeout", type=float, default=30.0, help="seconds SIGTERM waits for requests in flight")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.max_batch_size < 1 or args.batch_timeout < 0 or args.max_body_bytes < 1:
        parser().error("--max-batch-size and --max-body-bytes must be positive, --batch-timeout not negative")
    import uvicorn

    from phudge_lightning.judge import Judge

    # Uvicorn handles SIGTERM while serving (drains, then stops) and re-raises it afterwards;
    # this handler turns that, or a SIGTERM while the judge loads, into a clean exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    judge = Judge.load(args.checkpoint, batch_size=args.max_batch_size, **judge_options(args))
    app = create_app(judge, args.max_batch_size, args.batch_timeout, args.max_body_bytes)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=args.graceful_timeout, access_log=args.log_level == "debug")
    log.info("serving %s on http://%s:%d (max batch %d, timeout %.3fs)", args.checkpoint, args.host, args.port,
             args.max_batch_size, args.batch_timeout)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # Ctrl-C, re-raised by uvicorn once it has drained like SIGTERM
        pass
    return 0
