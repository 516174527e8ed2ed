"""The limits of one request to ``phudge serve``: sizes the schemas enforce, and the body-size
limit applied before anything parses the body."""

from __future__ import annotations

from phudge_lightning.serve.responses import AsciiJSON

# Limits of one request. Text beyond the judge's token budget is cut anyway; these bound the
# tokenizer's work and the memory a request can ask for.
MAX_TEXT_CHARS = 32_768
MAX_RECORDS = 64
MAX_BODY_BYTES = 1 << 20


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


