"""``phudge bench serve``: latency and throughput of ``phudge serve``, with batching on and off.

    phudge bench serve --checkpoint judges/minilm
    phudge bench serve --untrained minilm-l6 --requests 64

For each setting (batching on: ``--max-batch-size`` records per forward pass; off: one) it
starts the server as a subprocess on 127.0.0.1, warms it up, then sends ``--requests``
``POST /grade`` requests from 1, 8 and 32 concurrent clients (each a thread with a keep-alive
connection, sending one record at a time, the next as soon as its answer comes) and prints p50
and p99 latency, requests per second, and how many forward passes the server ran.

``--overload`` checks load shedding instead: it starts the server with a small ``--max-queue``,
then, ``--bursts`` times, lets ``--burst`` clients (threads, one connection each) send one
request at the same instant. It counts the 200s and 503s (each 503 must carry ``Retry-After``),
checks that every request got one of them and none hung (no timeout, no reset), that the queue
is empty afterwards, that the server's memory (RSS) stayed flat from burst to burst, and that
the accepted requests' p99 latency stayed within a bound set by the queue, not by the burst:
(ceil(max_queue / max_batch_size) + 1) forward passes, each as long as the mean pass of that
burst, times 2 for the clients' share of the CPU, plus 1 s. It prints the figures of each burst
and exits 1 when a check fails.

    phudge bench serve --untrained minilm-l6 --overload --burst 400 --max-queue 16

``--untrained BACKBONE`` exports an untrained judge (classification head, the recipes' LoRA)
on that backbone to a temporary folder and measures it: speed does not depend on the
weights' values, only on the architecture, the prompt lengths and the batch sizes. The records
are those of the demo set (instruction, response, rubric, reference answer), as a live flow
would send them. Clients and server share the machine's cores, so on a small machine the
figures are a lower bound.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "datamodules" / "data" / "demo.jsonl"
RECORD_FIELDS = ("instruction", "response", "rubric", "reference_answer", "context")


@dataclass
class Row:
    batching: str
    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    forward_batches: int


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between the sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def demo_bodies() -> list[bytes]:
    rows = [json.loads(line) for line in DEMO.read_text().splitlines() if line.strip()]
    return [json.dumps({k: row[k] for k in RECORD_FIELDS if row.get(k) is not None}).encode() for row in rows]


# -- the server -----------------------------------------------------------------------------------
class ServerProcess:
    """``phudge serve`` on 127.0.0.1 in a subprocess; its output goes to ``log``."""

    def __init__(self, checkpoint: str, port: int, log: Path, *options: str):
        self.port, self.log = port, log
        command = [sys.executable, "-m", "phudge_lightning.cli", "serve", "--checkpoint", checkpoint,
                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *options]
        with log.open("w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def get(self, path: str) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def metric(self, name: str) -> float:
        """The value of one unlabelled sample of ``GET /metrics``."""
        from prometheus_client.parser import text_string_to_metric_families

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        return next(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name and not s.labels)

    def rss_mib(self) -> float:
        """The server process's resident memory (Linux /proc; NaN elsewhere)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return float("nan")
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()[-2000:]}")
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the server was not ready in {timeout:.0f}s:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen, grace: float = 60.0) -> int | None:
    """SIGTERM (the server drains its requests in flight), SIGKILL after ``grace`` seconds; the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the load -------------------------------------------------------------------------------------
def load(port: int, bodies: list[bytes], requests: int, concurrency: int, timeout: float) -> tuple[list[float], Counter, float]:
    """Send ``requests`` grade requests from ``concurrency`` threads; return the latencies (s)
    of the answered ones, the failures counted by kind, and the wall time."""
    latencies: list[float] = []
    errors: Counter = Counter()
    taken = 0
    lock = threading.Lock()

    def client() -> None:
        nonlocal taken
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            while True:
                with lock:
                    if taken >= requests:
                        return
                    body, taken = bodies[taken % len(bodies)], taken + 1
                start = time.perf_counter()
                try:
                    connection.request("POST", "/grade", body, {"Content-Type": "application/json"})
                    answer = connection.getresponse()
                    text = answer.read()
                    error = None if answer.status == 200 else f"HTTP {answer.status}: {text[:160].decode(errors='replace')}"
                except (OSError, http.client.HTTPException) as failure:
                    error = f"{type(failure).__name__}: {failure}"
                    connection.close()  # reconnects on the next request
                elapsed = time.perf_counter() - start
                with lock:
                    if error is None:
                        latencies.append(elapsed)
                    else:
                        errors[error] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - start


# -- the overload check ----------------------------------------------------------------------------
@dataclass
class Burst:
    """One burst of ``clients`` requests sent at once: answers by status, failures (no answer,
    timeouts included), 503s without Retry-After, latencies, and the server's state after."""

    clients: int
    ok: int = 0
    shed: int = 0
    other: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    shed_without_retry_after: int = 0
    ok_ms: list[float] = field(default_factory=list, repr=False)
    shed_ms: list[float] = field(default_factory=list, repr=False)
    wall_s: float = 0.0
    rss_mib: float = float("nan")
    queued_after: int = 0
    mean_pass_s: float = 0.0

    @property
    def answered(self) -> bool:
        return self.ok + self.shed == self.clients and not self.other and not self.failed


def burst(port: int, bodies: list[bytes], clients: int, timeout: float) -> Burst:
    """``clients`` threads, each with its own connection, send one ``POST /grade`` at the same instant."""
    result, lock = Burst(clients), threading.Lock()
    start_line = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            start_line.wait()
            start = time.perf_counter()
            connection.request("POST", "/grade", bodies[i % len(bodies)], {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            ms = 1000 * (time.perf_counter() - start)
            with lock:
                if answer.status == 200:
                    result.ok += 1
                    result.ok_ms.append(ms)
                elif answer.status == 503:
                    result.shed += 1
                    result.shed_ms.append(ms)
                    result.shed_without_retry_after += not (answer.getheader("Retry-After") or "").isdigit()
                else:
                    result.other[answer.status] += 1
        except (OSError, http.client.HTTPException) as failure:  # a timeout is an OSError: the request hung
            with lock:
                result.failed[type(failure).__name__] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - start
    return result


def p99_bound_ms(max_queue: int, max_batch_size: int, mean_pass_s: float) -> float:
    """What an accepted request may wait: the passes for a full queue ahead of it and its own,
    ``(ceil(max_queue / max_batch_size) + 1)`` x the mean pass, x 2 for the clients' share of the
    CPU, plus 1 s for connecting and parsing amid the burst."""
    return 1000 * (2 * (math.ceil(max_queue / max_batch_size) + 1) * mean_pass_s + 1.0)


def overload(args, checkpoint: str, scratch: Path) -> int:
    bodies = demo_bodies()
    options = ["--max-batch-size", str(args.max_batch_size), "--batch-timeout", str(args.batch_timeout),
               "--max-queue", str(args.max_queue), *(["--device", args.device] if args.device else [])]
    server = ServerProcess(checkpoint, free_port(), scratch / "server.log", *options)
    bursts: list[Burst] = []
    try:
        server.wait_ready(args.startup_timeout)
        info = server.get("/health")
        load(server.port, bodies, args.warmup or 1, min(args.max_batch_size, 8), args.timeout)
        rss_before = server.rss_mib()
        for i in range(args.bursts):
            passes, seconds = server.metric("phudge_batch_duration_seconds_count"), server.metric("phudge_batch_duration_seconds_sum")
            result = burst(server.port, bodies, args.burst, args.timeout)
            passes = server.metric("phudge_batch_duration_seconds_count") - passes
            result.mean_pass_s = (server.metric("phudge_batch_duration_seconds_sum") - seconds) / max(passes, 1)
            result.rss_mib, result.queued_after = server.rss_mib(), server.get("/health")["queued"]
            bursts.append(result)
            print(f"  burst {i + 1}: {result.ok} graded, {result.shed} shed in {result.wall_s:.1f}s", file=sys.stderr)
    finally:
        server.stop()
    bound = [p99_bound_ms(args.max_queue, args.max_batch_size, b.mean_pass_s) for b in bursts]
    growth = bursts[-1].rss_mib - bursts[0].rss_mib
    flat = not growth > max(64.0, 0.1 * bursts[0].rss_mib)  # NaN (no /proc) passes, and says so below
    checks = {
        "every request answered 200 or 503, none hung": all(b.answered for b in bursts),
        "every 503 carries Retry-After": all(b.shed_without_retry_after == 0 for b in bursts),
        "the queue empty after each burst": all(b.queued_after == 0 for b in bursts),
        "memory flat from the first burst to the last": flat,
        "accepted p99 within the bound": all(percentile(b.ok_ms, 0.99) <= c for b, c in zip(bursts, bound) if b.ok_ms),
    }
    print(f"phudge bench serve --overload: {args.checkpoint or 'untrained ' + args.untrained} ({info['backbone']}, "
          f"{info['head']} head), {args.bursts} bursts of {args.burst} clients at once, max queue {args.max_queue} "
          f"records, max batch {args.max_batch_size}, demo-set records, loopback; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared by clients and server")
    header = (f"{'burst':>5}{'clients':>8}{'200':>6}{'503':>6}{'other':>6}{'failed':>7}{'wall s':>8}{'200 p50 ms':>11}"
              f"{'200 p99 ms':>11}{'bound ms':>10}{'503 p99 ms':>11}{'pass s':>8}{'RSS MiB':>9}")
    print(header + "\n" + "-" * len(header))
    for i, (b, c) in enumerate(zip(bursts, bound), 1):
        print(f"{i:>5}{b.clients:>8}{b.ok:>6}{b.shed:>6}{sum(b.other.values()):>6}{sum(b.failed.values()):>7}{b.wall_s:>8.1f}"
              f"{percentile(b.ok_ms, 0.5):>11.0f}{percentile(b.ok_ms, 0.99):>11.0f}{c:>10.0f}{percentile(b.shed_ms, 0.99):>11.0f}"
              f"{b.mean_pass_s:>8.2f}{b.rss_mib:>9.0f}")
        for kind, count in [*b.other.items(), *b.failed.items()]:
            print(f"      {count} x {kind}")
    print(f"server RSS: {rss_before:.0f} MiB after warm-up, {bursts[0].rss_mib:.0f} after the first burst, "
          f"{bursts[-1].rss_mib:.0f} after the last ({growth:+.0f} MiB)")
    for name, held in checks.items():
        print(f"  {'ok  ' if held else 'FAIL'} {name}")
    if args.output:
        Path(args.output).write_text(json.dumps([{**asdict(b), "answered": b.answered, "p99_bound_ms": c,
                                                  "ok_p99_ms": percentile(b.ok_ms, 0.99)}
                                                 for b, c in zip(bursts, bound)], indent=2, default=str) + "\n")
    return 0 if all(checks.values()) else 1


def measure(server: ServerProcess, label: str, bodies: list[bytes], requests: int, concurrency: int, timeout: float) -> Row:
    before = server.get("/health")["batches"]
    latencies, errors, wall = load(server.port, bodies, requests, concurrency, timeout)
    batches = server.get("/health")["batches"] - before
    for error, count in errors.most_common(3):
        print(f"  {count} failed with {error}", file=sys.stderr)
    return Row(label, concurrency, requests, sum(errors.values()), 1000 * percentile(latencies, 0.5), 1000 * percentile(latencies, 0.99),
               len(latencies) / wall, batches)


def format_table(rows: list[Row]) -> str:
    header = f"{'batching':<22}{'clients':>8}{'requests':>9}{'errors':>7}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}{'passes':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.batching:<22}{r.concurrency:>8}{r.requests:>9}{r.errors:>7}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
                     f"{r.requests_per_s:>8.1f}{r.forward_batches:>8}")
    return "\n".join(lines)


def export_untrained(backbone: str, folder: Path) -> Path:
    from phudge_lightning.formats import save
    from phudge_lightning.model.module import JudgeModule

    return save(JudgeModule(backbone=backbone, head="classification"), folder, "judge")


# -- the command ----------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="phudge bench serve", description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a .ckpt or an exported judge folder")
    which.add_argument("--untrained", metavar="BACKBONE", help="export an untrained judge on this backbone (e.g. minilm-l6)")
    p.add_argument("--requests", type=int, default=64, help="requests per row (p99 of few requests is near their maximum)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients of each row")
    p.add_argument("--warmup", type=int, default=16, help="requests sent first, at the highest concurrency, not measured")
    p.add_argument("--max-batch-size", type=int, default=16, help="the server's batch size with batching on")
    p.add_argument("--batch-timeout", type=float, default=0.01, help="the server's batch timeout with batching on (s)")
    p.add_argument("--device", default=None, help="the server's device (default: its own choice)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds a request may take before it counts as an error")
    p.add_argument("--startup-timeout", type=float, default=600.0, help="seconds the server may take to load the judge")
    p.add_argument("--output", help="also write the rows as JSON here")
    overload = p.add_argument_group("the overload check (--overload)")
    overload.add_argument("--overload", action="store_true", help="check load shedding instead of measuring speed")
    overload.add_argument("--burst", type=int, default=400, help="clients sending one request each at the same instant")
    overload.add_argument("--bursts", type=int, default=3, help="bursts, one after another (memory must stay flat)")
    overload.add_argument("--max-queue", type=int, default=16, help="the server's --max-queue")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.requests < 1 or min(args.concurrency) < 1 or args.max_batch_size < 1:
        parser().error("--requests, --concurrency and --max-batch-size must be positive")
    if args.overload:
        if min(args.burst, args.bursts, args.max_queue) < 1:
            parser().error("--burst, --bursts and --max-queue must be positive")
        with tempfile.TemporaryDirectory(prefix="phudge-bench-serve-") as scratch:
            checkpoint = args.checkpoint or str(export_untrained(args.untrained, Path(scratch) / "judge"))
            return overload(args, checkpoint, Path(scratch))
    bodies = demo_bodies()
    settings = [(f"on (max {args.max_batch_size}, {1000 * args.batch_timeout:g} ms)",
                 ["--max-batch-size", str(args.max_batch_size), "--batch-timeout", str(args.batch_timeout)]),
                ("off (max 1)", ["--max-batch-size", "1", "--batch-timeout", "0"])]
    device = ["--device", args.device] if args.device else []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="phudge-bench-serve-") as scratch:
        checkpoint = args.checkpoint or str(export_untrained(args.untrained, Path(scratch) / "judge"))
        for label, options in settings:
            server = ServerProcess(checkpoint, free_port(), Path(scratch) / "server.log", *options, *device)
            try:
                server.wait_ready(args.startup_timeout)
                info = server.get("/health")
                if args.warmup:  # the first passes allocate and pick kernels: not what a live server sees
                    load(server.port, bodies, args.warmup, max(args.concurrency), args.timeout)
                for concurrency in args.concurrency:
                    rows.append(measure(server, label, bodies, args.requests, concurrency, args.timeout))
                    print(f"  {label}, {concurrency} clients: {rows[-1].requests_per_s:.1f} req/s", file=sys.stderr)
            finally:
                server.stop()
                if any(r.errors for r in rows if r.batching == label):
                    print(f"  the server's log ends:\n{server.log.read_text()[-2000:]}", file=sys.stderr)
    print(f"phudge bench serve: {args.checkpoint or 'untrained ' + args.untrained} ({info['backbone']}, {info['head']} head), "
          f"{args.requests} requests per row, demo-set records, loopback; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared by clients and server")
    print(format_table(rows))
    if args.output:
        Path(args.output).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.errors == 0 for r in rows) else 1
