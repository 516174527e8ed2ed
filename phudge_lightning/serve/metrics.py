"""Prometheus metrics of ``phudge serve`` (``GET /metrics``, the text format of ``prometheus_client``).

- ``phudge_requests_total{route,status}``: requests answered, by route and HTTP status (a path
  that is no route counts as ``route="other"``, so odd paths cannot grow the label set);
- ``phudge_request_duration_seconds{route}``: a histogram of the time from the request's first
  byte to its answer;
- ``phudge_batch_records`` and ``phudge_batch_duration_seconds``: histograms of the records in
  each forward batch and of the time it took;
- ``phudge_records_graded_total``: records graded;
- ``phudge_queue_records``: records taken and not yet answered (waiting or being graded), with
  ``phudge_queue_limit_records``, the ``--max-queue`` beyond which requests get 503;
- ``phudge_requests_in_flight``: requests taken and not yet answered;
- ``phudge_judge_load_seconds``: the seconds the judge took to load.

Each server holds its own registry, so two apps in one process (tests) keep their own counts.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("phudge_requests", "Requests answered, by route and HTTP status", ["route", "status"], registry=r)
        self.latency = Histogram("phudge_request_duration_seconds", "Seconds from a request's arrival to its answer",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_records = Histogram("phudge_batch_records", "Records in each forward batch", buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("phudge_batch_duration_seconds", "Seconds each forward batch took",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.records = Counter("phudge_records_graded", "Records graded", registry=r)
        self.queue = Gauge("phudge_queue_records", "Records taken and not yet answered", registry=r)
        self.queue_limit = Gauge("phudge_queue_limit_records", "Records waiting beyond which requests get 503 (--max-queue)", registry=r)
        self.in_flight = Gauge("phudge_requests_in_flight", "Requests taken and not yet answered", registry=r)
        self.load_seconds = Gauge("phudge_judge_load_seconds", "Seconds the judge took to load", registry=r)

    def watch(self, batcher) -> None:
        """Read the queue gauges from ``batcher`` at each scrape."""
        self.queue.set_function(lambda: batcher.queued)
        self.in_flight.set_function(lambda: batcher.in_flight)
        if batcher.max_queue is not None:
            self.queue_limit.set(batcher.max_queue)

    def observe_batch(self, records: int, seconds: float) -> None:
        self.batch_records.observe(records)
        self.batch_seconds.observe(seconds)
        self.records.inc(records)

    def observe_request(self, route: str, status: int | str, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
