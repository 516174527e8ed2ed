"""``phudge serve``: a judge over HTTP, with dynamic batching.

    phudge serve --checkpoint judges/minilm --port 8000
    curl -s 127.0.0.1:8000/grade -H 'Content-Type: application/json' \
         -d '{"instruction": "What is 2+2?", "response": "4"}'

Endpoints:

- ``POST /grade``: one record or a list of them, in the schema of ``phudge grade``
  (``instruction``, ``response``, optional ``rubric`` as text or object, ``reference_answer``,
  ``context``; other fields, such as ``id``, are echoed back); answers one grade or a list, in
  order: the fields of ``phudge grade``'s lines (``phudge_lightning.grades``): ``score``
  (always; null when a causal judge gave none), and for the classification head
  ``probabilities`` and ``confidence``. An empty or blank ``response`` is graded;
- ``POST /compare``: ``instruction``, ``response_a``, ``response_b``, optional ``rubric``,
  ``reference_answer``, ``context`` and ``tie_margin``; answers ``winner`` ("A", "B" or
  "tie"), ``score_a``, ``score_b`` and ``margin`` (each response is graded alone, as in
  ``Judge.compare``, so there is no position bias);
- ``POST /rank``: ``instruction``, ``responses`` (texts, or objects with ``response`` and an
  optional ``id``), optional ``rubric``, ``reference_answer``, ``context``; answers
  ``ranking``, the answers best first (``index``, ``id``, ``rank``, ``score``...), and for the
  classification head ``p_better`` (each answer graded alone, as in ``Judge.rank``);
- ``GET /health``: 200 once the judge is loaded, with counters of requests and forward passes;
- ``GET /metrics``: Prometheus metrics (``phudge_lightning.serve.metrics``);
- ``GET /openapi.json`` (and the Swagger UI at ``/docs``): the request and response schemas.

With ``--api-key`` (or ``PHUDGE_API_KEY``; several allowed) every route but ``/health`` needs
``Authorization: Bearer <key>`` (``/metrics`` too, unless ``--metrics-public``); a missing or
wrong key gets 401 and nothing is graded. Without a key the server refuses to listen beyond
loopback unless given ``--allow-no-key``. Every answer carries ``X-Request-ID`` (the caller's,
when sent), and each request is logged in one line (route, status, records, ms, id; never the
text graded).

Load shedding: while ``--max-queue`` records wait to be graded, a grading request gets 503 with
``Retry-After`` (seconds) at once, before its body is parsed; a request taken is always answered.

Requests that arrive together are graded in one forward pass: a batcher collects up to
``--max-batch-size`` records, waiting at most ``--batch-timeout`` seconds after the first, and
grades them in a worker thread while the event loop keeps accepting requests. Records of
``/grade`` and ``/compare`` share the batches. ``--max-batch-size 1`` turns batching off.

Bad requests get a 4xx answer naming the field: 422 for a missing, mistyped or too long field,
or a blank instruction or rubric (``detail`` lists ``field`` and ``msg``; ``message`` says it in
one line; a blank response is an answer and is graded), 400 for malformed JSON, 413 for a body
over ``--max-body-bytes``, 415 for a body not sent as ``application/json``. SIGTERM (or Ctrl-C) stops accepting connections, finishes the requests in
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
import logging
import signal
import sys
import time
from contextlib import asynccontextmanager
from typing import Union

from datamodules.records import DEFAULT_SCORE_RANGE
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from phudge_lightning.grades import graded
from phudge_lightning.judge_options import add_judge_arguments, judge_options
from phudge_lightning.serve.access import AccessLog
from phudge_lightning.serve.auth import ENV, PUBLIC, RequireKey, api_keys, is_loopback
from phudge_lightning.serve.batcher import Batcher, Overloaded
from phudge_lightning.serve.errors import (
    check_echoed,
    http_error,
    invalid_request,
    request_record,
    server_error,
)
from phudge_lightning.serve.limits import MAX_BODY_BYTES, BodyLimit
from phudge_lightning.serve.metrics import CONTENT_TYPE, ServerMetrics
from phudge_lightning.serve.responses import AsciiJSON
from phudge_lightning.serve.schemas import (
    ERRORS,
    CompareRequest,
    CompareResult,
    GradeBody,
    GradeResult,
    Health,
    RankRequest,
    RankResult,
)
from phudge_lightning.serve.shedding import DEFAULT_MAX_QUEUE, ShedLoad, overloaded
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


# -- the app --------------------------------------------------------------------------------------
GRADING = ("/grade", "/compare", "/rank")


def create_app(judge, max_batch_size: int = 16, batch_timeout: float = 0.01, max_body_bytes: int = MAX_BODY_BYTES, *,
               api_keys: list[str] | tuple = (), max_queue: int | None = DEFAULT_MAX_QUEUE, metrics_public: bool = False,
               load_seconds: float | None = None):
    """The ASGI app serving ``judge`` (a ``Judge``); its batcher runs while the app does.

    From the outside in: the request id and access log, the key check (none without
    ``api_keys``), the body limit, load shedding (``max_queue`` records waiting; None: no
    limit), then the routes."""
    metrics = ServerMetrics()
    batcher = Batcher(judge, max_batch_size, batch_timeout, max_queue, on_batch=metrics.observe_batch)
    metrics.watch(batcher)
    if load_seconds is not None:
        metrics.load_seconds.set(load_seconds)
    hparams = dict(getattr(judge.module, "hparams", {}))
    score_range = tuple(getattr(judge, "score_range", None) or DEFAULT_SCORE_RANGE)

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
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)

    @app.exception_handler(Overloaded)
    async def shed(request: Request, error: Overloaded):
        return overloaded(str(error), error.retry_after)

    # exclude_unset, not exclude_none: ``score`` is always there, null when the judge gave none.
    @app.post("/grade", response_model=Union[GradeResult, list[GradeResult]], response_model_exclude_unset=True,
              responses=ERRORS)
    async def grade(body: GradeBody, request: Request):
        """Grade one record (answers one grade) or a list (answers a list, in order)."""
        many = isinstance(body, list)
        items = body if many else [body]
        records = [request_record(item.model_dump(), (i,) if many else (), score_range=score_range)
                   for i, item in enumerate(items)]
        grades = await batcher.grade(records)
        request.state.records = len(records)  # graded: the access log's count
        results = [graded(r.extra, g) for r, g in zip(records, grades)]
        return results if many else results[0]

    @app.post("/compare", response_model=CompareResult, response_model_exclude_unset=True, responses=ERRORS)
    async def compare(body: CompareRequest, request: Request):
        """Which response is better: each is graded alone, then the scores are compared."""
        from phudge_lightning.judge import compare_grades

        shared = body.model_dump(exclude={"response_a", "response_b", "tie_margin"})
        records = [request_record({**shared, "response": body.response_a}, (), {"response": "response_a"}),
                   request_record({**shared, "response": body.response_b}, (), {"response": "response_b"})]
        grade_a, grade_b = await batcher.grade(records)
        request.state.records = len(records)
        return compare_grades(grade_a, grade_b, body.tie_margin).to_dict()

    @app.post("/rank", response_model=RankResult, response_model_exclude_none=True, responses=ERRORS)
    async def rank(body: RankRequest, request: Request):
        """The answers best first, each graded alone (no position bias), in one batch."""
        from phudge_lightning.rank.ranking import RANK_FIELDS, rank_grades

        shared = body.model_dump(include={"instruction", "rubric", "reference_answer", "context"})
        extra = {k: v for k, v in body.model_dump(exclude={"responses", *shared}).items() if k not in RANK_FIELDS}
        check_echoed(extra, ())
        records, items = [], []
        for i, answer in enumerate(body.responses):
            text, item = (answer, {}) if isinstance(answer, str) else (answer.response, answer.model_dump(exclude={"response"}, exclude_none=True))
            name = f"responses[{i}]" + ("" if isinstance(answer, str) else ".response")
            check_echoed(item, ("responses", i))
            records.append(request_record({**shared, "response": text}, (), {"response": name}))
            items.append(item)
        grades = await batcher.grade(records)
        request.state.records = len(records)
        return extra | rank_grades(grades, items).to_dict()

    @app.get("/health", response_model=Health)
    async def health():
        """200 once the judge is loaded and serving."""
        return Health(status="ok", head=str(hparams.get("head", "?")), backbone=str(hparams.get("backbone", "?")),
                      max_batch_size=max_batch_size, batch_timeout=batch_timeout,
                      requests=batcher.requests, records=batcher.records, batches=batcher.batches,
                      in_flight=batcher.in_flight, queued=batcher.queued, max_queue=max_queue,
                      score_range=list(score_range))

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics():
        """Prometheus metrics, in its text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    public = (*PUBLIC, "/metrics") if metrics_public else PUBLIC
    guarded = RequireKey(BodyLimit(ShedLoad(app, batcher, GRADING), max_body_bytes), api_keys, public)
    served = AccessLog(guarded, metrics, {route.path for route in app.routes})
    served.batcher = batcher  # its queue, for whoever embeds the app
    return served


# -- the command ----------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="phudge serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="default",
                   help="a .ckpt or a DeepSpeed checkpoint folder from phudge fit, a folder from phudge export, "
                   "or 'default' (the shipped judge; the default)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, default=16, help="records graded in one forward pass at most; 1 turns batching off")
    p.add_argument("--batch-timeout", type=float, default=0.01, help="seconds a batch waits for more requests after its first")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="larger request bodies get 413")
    p.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                   help="records waiting to be graded beyond which grading requests get 503 with Retry-After")
    p.add_argument("--api-key", action="append", metavar="KEY",
                   help=f"a key callers must send as 'Authorization: Bearer KEY' (repeat for several; or {ENV}, "
                   "comma-separated, which keeps keys out of the process list)")
    p.add_argument("--allow-no-key", action="store_true",
                   help="serve beyond loopback without a key (anyone who reaches the port can use the judge)")
    p.add_argument("--metrics-public", action="store_true", help="serve /metrics without a key")
    add_judge_arguments(p)
    p.add_argument("--graceful-timeout", type=float, default=30.0, help="seconds SIGTERM waits for requests in flight")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.max_batch_size < 1 or args.batch_timeout < 0 or args.max_body_bytes < 1 or args.max_queue < 1:
        parser().error("--max-batch-size, --max-body-bytes and --max-queue must be positive, --batch-timeout not negative")
    try:
        keys = api_keys(args.api_key)
    except ValueError as e:
        parser().error(str(e))
    if not keys and not args.allow_no_key and not is_loopback(args.host):
        print(f"phudge serve: refusing to listen on {args.host} without an API key: anyone who reaches the port could "
              f"use the judge; give --api-key (or {ENV}), or --allow-no-key to serve without one", file=sys.stderr)
        return 2
    import uvicorn
    from phudge_lightning.formats import CheckpointError
    from phudge_lightning.judge import Judge

    # Uvicorn handles SIGTERM while serving (drains, then stops) and re-raises it afterwards;
    # this handler turns that, or a SIGTERM while the judge loads, into a clean exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    try:
        judge = Judge.load(args.checkpoint, batch_size=args.max_batch_size, **judge_options(args))
    except (CheckpointError, ValueError) as e:  # (ValueError: --lora-scale on a judge without LoRA)
        print(f"phudge serve: {e}", file=sys.stderr)
        return 2
    app = create_app(judge, args.max_batch_size, args.batch_timeout, args.max_body_bytes, api_keys=keys,
                     max_queue=args.max_queue, metrics_public=args.metrics_public,
                     load_seconds=time.perf_counter() - start)
    # uvicorn's own access log is off: the app logs each request once, with its id.
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=args.graceful_timeout, access_log=False)
    log.info("serving %s on http://%s:%d (max batch %d, timeout %.3fs, max queue %d, %s)", args.checkpoint, args.host,
             args.port, args.max_batch_size, args.batch_timeout, args.max_queue,
             f"{len(keys)} API key{'s' * (len(keys) != 1)}" if keys else "no API key")
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # Ctrl-C, re-raised by uvicorn once it has drained like SIGTERM
        pass
    return 0
