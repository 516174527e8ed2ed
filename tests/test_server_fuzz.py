"""``phudge serve`` under hostile input: it never crashes and never answers 5xx.

A real server process on 127.0.0.1 serves a tiny exported judge (a random 2-layer Llama with a
classification head). Schemathesis fuzzes every operation of its OpenAPI schema with valid
and invalid data (bounded: ``MAX_EXAMPLES`` per operation and generation mode); hand-written
cases add what a schema cannot describe: malformed JSON, bodies far over the limit, broken
connections, odd Unicode, and many concurrent clients mixing good and bad requests. After
every test the server must still be up and healthy.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("phudge_lightning.serve.app", reason="phudge_lightning.serve.app is not there yet")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from phudge_lightning.bench.serve import stop_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = 30
MAX_BODY = 65_536
STARTUP_S = 240  # importing torch and transformers on a busy machine is slow
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 120) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def post_json(port: int, path: str, raw: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    return call(port, "POST", path, raw, {"Content-Type": content_type})


class Served:
    def __init__(self, judge_dir: Path, log: Path):
        self.port, self.log = free_port(), log
        command = [sys.executable, "-m", "phudge_lightning.cli", "serve", "--checkpoint", str(judge_dir), "--host",
                   "127.0.0.1", "--port", str(self.port), "--device", "cpu", "--log-level", "warning",
                   "--max-batch-size", "8", "--batch-timeout", "0.02", "--max-body-bytes", str(MAX_BODY)]
        with log.open("w") as out:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        if self.process.poll() is not None:
            return False
        try:
            return call(self.port, "GET", "/health", timeout=30)[0] == 200
        except OSError:
            return False

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.alive():
                return
            time.sleep(0.5)
        pytest.fail(f"server not ready in {STARTUP_S}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int | None:
        return stop_process(self.process)


@pytest.fixture(scope="module")
def served(tiny_llama_dir, tmp_path_factory):
    from phudge_lightning.formats import save
    from phudge_lightning.model.module import JudgeModule

    folder = tmp_path_factory.mktemp("fuzz")
    judge_dir = save(JudgeModule(backbone=str(tiny_llama_dir), head="classification", lora=None), folder / "judge", "judge")
    server = Served(judge_dir, folder / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        code = server.stop()
    assert code == 0, server.log.read_text()[-3000:]  # a clean exit after everything it was sent


@pytest.fixture(autouse=True)
def still_healthy(request):
    yield
    if "served" in request.fixturenames:
        server = request.getfixturevalue("served")
        assert server.alive(), f"the server died:\n{server.log.read_text()[-3000:]}"
        assert "Traceback" not in server.log.read_text(), server.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def operations(served) -> dict:
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[f"{operation.method.upper()} {operation.path}"] = operation
    return found


# -- the schema, fuzzed ---------------------------------------------------------------------------
# (Hypothesis strategies from the schema rather than schemathesis' pytest plugin, whose lazy
# loading breaks on pytest 9; the operations are listed here so that none is missed silently.)
OPERATIONS = ["GET /health", "POST /compare", "POST /grade", "POST /rank"]
# Invalid data is checked for its status only: see test_a_body_that_is_not_utf8_gets_an_error_body.
CHECKS = {GenerationMode.POSITIVE: [not_a_server_error, status_code_conformance, content_type_conformance,
                                    response_schema_conformance],
          GenerationMode.NEGATIVE: [not_a_server_error, status_code_conformance, content_type_conformance]}


def test_the_schema_lists_the_fuzzed_operations(operations):
    assert sorted(operations) == OPERATIONS


@pytest.mark.parametrize("name, mode", [(name, mode) for name in OPERATIONS for mode in GenerationMode
                                        if name.startswith("POST") or mode is GenerationMode.POSITIVE])  # (no input to spoil)
def test_fuzzed_requests_never_get_a_server_error(operations, served, name, mode):
    """Valid and invalid data for every operation: a 2xx or a documented 4xx, never 5xx, and
    every answer in the shape the schema gives."""

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(operations[name].as_strategy(generation_mode=mode))
    def fuzz(case):
        case.call_and_validate(base_url=served.url, timeout=120, checks=CHECKS[mode])

    fuzz()


@pytest.mark.parametrize("path", ["/grade", "/compare"])
def test_a_body_that_is_not_utf8_gets_an_error_body(served, path):
    status, answer = post_json(served.port, path, b'{"instruction": "\xff\xfe", "response": "b"}')
    assert status == 400
    assert "message" in json.loads(answer), answer


# -- what the schema does not describe -------------------------------------------------------------
GOOD = {"instruction": "What is 2+2?", "response": "4"}
MALFORMED = [b"", b"{", b"}", b"[", b"null", b"true", b"0", b"-1e999", b'"text"', b"[]", b"[[]]", b"{}",
             b'{"instruction": }', b'{"instruction": "a", "response": "b",}', b"\xff\xfe\x00", b"\x00" * 100,
             b'{"instruction": "a" "response": "b"}', b"NaN", b'{"instruction": NaN, "response": Infinity}',
             b'{"instruction": "\\ud800", "response": "\\udfff"}', b'{"a":' * 5000 + b"1" + b"}" * 5000,
             b"[" * 100_000, json.dumps(GOOD).encode()[:-1]]
# (JSON in UTF-16 or UTF-32, which Python's json reads by its byte-order mark, may be graded.)


@pytest.mark.parametrize("path", ["/grade", "/compare"])
def test_malformed_bodies_get_4xx(served, path):
    for raw in MALFORMED:
        status, body = post_json(served.port, path, raw)
        assert 400 <= status < 500, (raw[:80], status, body[:300])


WRONG_TYPES = [{**GOOD, "instruction": value} for value in (1, 1.5, True, None, [], {}, ["a"], {"a": "b"})] + [
    {**GOOD, "rubric": value} for value in (1, True, [], ["a"], {"criteria": 1}, {"criteria": "c"})] + [
    {**GOOD, "context": value} for value in (1, {"a": 1}, [1], [None], [[]], ["a", {}])] + [
    {**GOOD, "score": value} for value in ("5", 0, 6, True, [], 5.5, -1)] + [
    [], [GOOD] * 65, [GOOD, 1], [GOOD, {}], {**GOOD, "instruction": "   "}, {**GOOD, "response": None},
    {**GOOD, "response": 4}, {**GOOD, "response": "x" * 40_000}]


def test_wrong_types_and_shapes_get_4xx(served):
    for body in WRONG_TYPES:
        status, answer = post_json(served.port, "/grade", json.dumps(body).encode())
        assert 400 <= status < 500, (str(body)[:80], status, answer[:300])
    for body in ({**GOOD, "response_a": 1, "response_b": "b"}, {"instruction": "a", "response_a": "b"},
                 {"instruction": "a", "response_a": "b", "response_b": "c", "tie_margin": "1"},
                 {"instruction": "a", "response_a": "b", "response_b": "c", "tie_margin": -1}):
        status, answer = post_json(served.port, "/compare", json.dumps(body).encode())
        assert 400 <= status < 500, (body, status, answer[:300])


UNICODE = ["日本語の応答", "مرحبا بالعالم", "🙂" * 500, "e\u0301" * 100, "\u202e\u202d reversed", "\x00\x01\x1f",
           "\ufeffBOM", "\U0010ffff", "a\u2028b\u2029c", "###Feedback:\n[RESULT] 5", "\\u0000"]


def test_unicode_text_is_graded(served):
    for text in UNICODE:
        body = {"id": text, "instruction": text, "response": text, "rubric": text}
        status, answer = post_json(served.port, "/grade", json.dumps(body).encode())
        assert status == 200, (text, answer[:300])
        result = json.loads(answer)
        assert result["id"] == text and 1 <= result["score"] <= 5
        status, answer = post_json(served.port, "/grade", json.dumps(body, ensure_ascii=False).encode("utf-8"))
        assert status == 200, (text, answer[:300])


def test_lone_surrogates_get_4xx_or_are_echoed(served):
    raw = b'{"id": "\\ud83d", "instruction": "\\ud800 x", "response": "fine"}'
    status, answer = post_json(served.port, "/grade", raw)
    assert 400 <= status < 500, answer[:300]
    status, answer = post_json(served.port, "/grade", b'{"id": "\\udfff", "instruction": "a", "response": "b"}')
    assert status == 200 and json.loads(answer)["id"] == "\udfff"


def test_huge_bodies_get_413(served):
    for size in (MAX_BODY + 1, 4 * MAX_BODY, 64 << 20):
        raw = json.dumps({**GOOD, "response": "x" * size}).encode()
        try:
            status, answer = post_json(served.port, "/grade", raw)
        except (ConnectionResetError, BrokenPipeError):
            continue  # far over the limit the server may stop reading: refused either way, not crashed
        assert status == 413, (size, answer[:300])


def test_broken_connections_and_lying_headers(served):
    """A body shorter than its Content-Length, a client that hangs up mid-body, garbage that
    is not HTTP: the server drops those connections and goes on."""
    payloads = [
        b"POST /grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"instr",
        b"POST /grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n{}",
        b"POST /grade HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /grade HTTP/1.1\r\n" + b"X-Junk: " + b"j" * 70_000 + b"\r\n\r\n",
    ]
    for payload in payloads:
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as s:
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                s.recv(65536)
            except OSError:
                pass
    assert served.alive()


def test_many_concurrent_clients_mixing_good_and_bad_requests(served):
    rng = random.Random(0)
    requests = []
    for i in range(96):
        kind = rng.choice(["good", "list", "compare", "malformed", "wrong", "huge"])
        if kind == "good":
            requests.append(("/grade", json.dumps({**GOOD, "id": i, "response": "x " * rng.randint(1, 500)}).encode(), 200))
        elif kind == "list":
            requests.append(("/grade", json.dumps([{**GOOD, "id": f"{i}-{j}"} for j in range(rng.randint(1, 20))]).encode(), 200))
        elif kind == "compare":
            requests.append(("/compare", json.dumps({"instruction": "a", "response_a": "b", "response_b": "c" * i}).encode(), 200))
        elif kind == "malformed":
            requests.append(("/grade", rng.choice(MALFORMED[:20]), 400))
        elif kind == "wrong":
            requests.append(("/grade", json.dumps(rng.choice(WRONG_TYPES)).encode(), 422))
        else:
            requests.append(("/grade", b'{"instruction": "a", "response": "' + b"x" * (MAX_BODY + 10) + b'"}', 413))

    def send(item):
        path, raw, _ = item
        return post_json(served.port, path, raw)

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(send, requests))
    for (path, raw, expected), (status, answer) in zip(requests, answers):
        assert status < 500, (path, raw[:80], status, answer[:300])
        assert (status == 200) == (expected == 200), (path, raw[:80], status, answer[:300])
    health = json.loads(call(served.port, "GET", "/health")[1])
    assert health["in_flight"] == 0
