"""A request id on every answer, one access-log line per request, and the request metrics.

``X-Request-ID`` is echoed when the caller sends one (up to 128 printable ASCII characters
without spaces; anything else is replaced), else made up (32 hex digits). The log line names
the method, path, status, records graded, milliseconds and id: never the body (the graded
text), the query string, nor a header (a key).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Iterable

log = logging.getLogger("phudge_lightning.serve.access")
HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"[!-~]{1,128}")


def request_id(scope) -> str:
    given = next((v for k, v in scope["headers"] if k == HEADER), None)
    return given.decode("ascii") if given is not None and _VALID_ID.fullmatch(given) else uuid.uuid4().hex


class AccessLog:
    """Outermost: sets ``scope["state"]["request_id"]``, adds ``X-Request-ID`` to the answer, and
    once it is sent logs the request and counts it in ``metrics`` under its route (a path
    outside ``routes`` counts as ``other``). An endpoint puts the number of records it graded
    in ``request.state.records``."""

    def __init__(self, app, metrics, routes: Iterable[str]):
        self.app, self.metrics, self.routes = app, metrics, frozenset(routes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        rid = request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status, done = None, False

        def finish() -> None:
            nonlocal done
            done = True
            seconds = time.perf_counter() - start
            route = scope["path"] if scope["path"] in self.routes else "other"
            # No status: the client went away before an answer was sent.
            self.metrics.observe_request(route, status if status is not None else "none", seconds)
            path = scope.get("raw_path", scope["path"].encode()).decode("ascii", "backslashreplace")
            log.info("%s %s %s records=%s %.1fms id=%s", scope["method"], path, status or "-",
                     state.get("records", 0), 1000 * seconds, rid)

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (HEADER, rid.encode("ascii"))]}
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not done:
                finish()  # before the last bytes go: a client that has its answer finds it logged
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not done:
                finish()
