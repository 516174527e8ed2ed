"""Dynamic batching: the records of requests that arrive together go through the judge in one pass."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from datamodules.records import Record

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """The queue is full: the request is refused (503) before it is queued; ``retry_after``
    is the seconds the waiting records should take to be graded."""

    def __init__(self, queued: int, max_queue: int, retry_after: int):
        super().__init__(f"the judge is overloaded: {queued} records are waiting (at most {max_queue}); "
                         f"retry after {retry_after} s")
        self.retry_after = retry_after


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

    ``queued`` counts the records taken and not yet answered. With ``max_queue``, a request that
    would bring it over ``max_queue`` is refused at once (``Overloaded``) unless nothing waits
    (so a request larger than the queue still gets through, alone); a request taken is always
    answered. ``on_batch(records, seconds)`` is called after each graded batch.
    """

    def __init__(self, judge, max_batch_size: int, batch_timeout: float, max_queue: int | None = None,
                 on_batch: Callable[[int, float], None] | None = None):
        self.judge, self.max_batch_size, self.batch_timeout = judge, max_batch_size, batch_timeout
        self.max_queue, self.on_batch = max_queue, on_batch
        self.pending: deque[_Job] = deque()
        self.arrived = asyncio.Event()
        # One thread: the judge is not thread-safe, and one pass at a time uses every core.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
        self.requests = self.records = self.batches = self.in_flight = self.queued = 0
        self.seconds_per_record: float | None = None  # a moving average over the graded batches

    @property
    def full(self) -> bool:
        return self.max_queue is not None and self.queued >= self.max_queue

    def retry_after(self) -> int:
        """Whole seconds the records waiting should take to be graded, from 1 to 60:
        ceil(queued x seconds per record), the latter averaged over recent batches."""
        return min(60, max(1, math.ceil(self.queued * (self.seconds_per_record or 0.0))))

    async def grade(self, records: list[Record]):
        """The grades of ``records``, in order, once a batch holding them is graded; raises
        ``Overloaded`` at once, queueing nothing, when the queue has no room for them."""
        if self.max_queue is not None and self.queued and self.queued + len(records) > self.max_queue:
            raise Overloaded(self.queued, self.max_queue, self.retry_after())
        job = _Job(records, asyncio.get_running_loop().create_future())
        self.pending.append(job)
        self.arrived.set()
        self.in_flight += 1
        self.queued += len(records)
        try:
            return await job.future
        finally:
            self.in_flight -= 1
            self.queued -= len(records)

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
        start = time.perf_counter()
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
        seconds = time.perf_counter() - start
        per_record = seconds / len(records)
        # An average over about the last ten batches: Retry-After follows the judge's speed now.
        self.seconds_per_record = per_record if self.seconds_per_record is None else (
            0.9 * self.seconds_per_record + 0.1 * per_record)
        if self.on_batch is not None:
            self.on_batch(len(records), seconds)
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(grades[start : start + len(job.records)])
            start += len(job.records)


