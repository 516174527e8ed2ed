"""Load shedding for ``phudge serve``: a full queue answers 503 with ``Retry-After`` at once.

Two checks, both before a request is queued: ``ShedLoad`` refuses a grading request while the
queue is full, before its body is parsed; the batcher refuses one whose records would bring the
queue over ``--max-queue`` (requests that passed the first check together). A request taken is
always answered.
"""

from __future__ import annotations

from typing import Iterable

from phudge_lightning.serve.responses import AsciiJSON

DEFAULT_MAX_QUEUE = 256


def overloaded(message: str, retry_after: int) -> AsciiJSON:
    return AsciiJSON(status_code=503, content={"message": message, "detail": "overloaded"},
                     headers={"Retry-After": str(retry_after)})


class ShedLoad:
    """Answers 503 to a POST on one of ``paths`` while ``batcher.full``, without parsing its body."""

    def __init__(self, app, batcher, paths: Iterable[str]):
        self.app, self.batcher, self.paths = app, batcher, frozenset(paths)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths and self.batcher.full:
            b = self.batcher
            retry = b.retry_after()
            return await overloaded(f"the judge is overloaded: {b.queued} records are waiting (at most {b.max_queue}); "
                                    f"retry after {retry} s", retry)(scope, receive, send)
        await self.app(scope, receive, send)
