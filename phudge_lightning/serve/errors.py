"""Error answers of ``phudge serve``: every 4xx names the field as the client wrote it."""

from __future__ import annotations

import json
import logging

from datamodules.records import Record, RecordError, validate_record
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from phudge_lightning.serve.responses import AsciiJSON
from phudge_lightning.serve.schemas import UNION_TAGS
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


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


async def invalid_request(request: Request, error: RequestValidationError) -> AsciiJSON:
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


async def http_error(request: Request, error: StarletteHTTPException) -> AsciiJSON:
    # FastAPI's own 4xx answers (a body that is not UTF-8, say) in the documented error shape.
    return AsciiJSON(status_code=error.status_code, content={"message": str(error.detail), "detail": "http_error"},
                     headers=getattr(error, "headers", None))


async def server_error(request: Request, error: Exception) -> AsciiJSON:
    log.exception("unexpected error on %s", request.url.path)
    return AsciiJSON(status_code=500, content={"message": f"internal error: {type(error).__name__}", "detail": "internal"})


def request_record(raw: dict, loc: tuple, rename: dict[str, str] | None = None, score_range=None) -> Record:
    """``validate_record`` on a request's record (a ``score`` checked against ``score_range``,
    the judge's); its ``RecordError`` (a blank field, say) becomes a 422 naming the field as
    the client wrote it (``response_a``, not ``response``)."""
    try:
        record = validate_record(raw, source="request", row=loc[-1] if loc else 0, require_score=False,
                                 score_range=score_range)
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




def check_echoed(fields: dict, loc: tuple) -> None:
    """Fields to be echoed back must be writable as JSON: NaN or Infinity is a 422 naming them."""
    for key, value in fields.items():
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            where = "".join(f"[{i}]" if isinstance(i, int) else f".{i}" for i in loc).lstrip(".")
            raise RequestValidationError([{"loc": ("body", *loc, key), "field": f"{where}.{key}" if where else key,
                                           "msg": "must be valid JSON: NaN and Infinity are not", "type": "value_error"}]) from None
