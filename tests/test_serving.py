"""``phudge serve``: a real server process on loopback, talked to over HTTP.

The judge is a tiny random Llama with a classification head, exported to a folder: its scores
mean nothing, but they are deterministic, so batched and single grades can be compared. The
batcher and the error naming are also tested in-process, without a server.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from datamodules.records import Record
from phudge_lightning.bench.serve import stop_process
from phudge_lightning.serve.batcher import Batcher
from phudge_lightning.serve.errors import _field_name
from phudge_lightning.serve.limits import MAX_RECORDS, MAX_TEXT_CHARS

REPO = Path(__file__).resolve().parents[1]
STARTUP_S = 180  # importing torch and transformers on a busy 2-core machine is slow
MAX_BODY = 65_536

RUBRIC = {"criteria": "Is the answer correct?", **{f"score{i}_description": f"Level {i}." for i in range(1, 6)}}
RECORDS = [
    {"id": "a", "instruction": "What is 2+2?", "response": "4", "reference_answer": "2 + 2 = 4"},
    {"id": "b", "instruction": "Why does bread need salt?", "response": "For flavour.", "rubric": RUBRIC},
    {"id": "c", "instruction": "How do I boil an egg?", "response": "Nine minutes in boiling water, then cool it.",
     "rubric": "Is it helpful?", "context": ["Eggs cook at 70 degrees.", "Cold water stops the cooking."]},
]


# -- a server process -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, body=None, *, raw: bytes | None = None, content_type: str = "application/json",
            timeout: float = 60) -> tuple[int, object]:
    """(status, parsed JSON body) of one request; 4xx and 5xx answers are returned, not raised."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text.startswith((b"{", b"[")) else text


class Server:
    """``phudge serve`` in a subprocess on 127.0.0.1, its output in a log file."""

    def __init__(self, checkpoint: Path, log: Path, *args: str):
        self.port, self.log = free_port(), log
        command = [sys.executable, "-m", "phudge_lightning.cli", "serve", "--checkpoint", str(checkpoint),
                   "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", *args]
        with log.open("w") as out:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if request(self.url + "/health", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"server not ready in {STARTUP_S}s:\n{self.log.read_text()[-3000:]}")

    def health(self) -> dict:
        status, body = request(self.url + "/health")
        assert status == 200, body
        return body

    def stop(self) -> None:
        stop_process(self.process, grace=30)


@pytest.fixture(scope="module")
def judge_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    from phudge_lightning.formats import save
    from phudge_lightning.model.module import JudgeModule

    module = JudgeModule(backbone=str(tiny_llama_dir), head="classification", lora=None)
    return save(module, tmp_path_factory.mktemp("judge"), "judge")


@pytest.fixture(scope="module")
def server(judge_dir, tmp_path_factory):
    served = Server(judge_dir, tmp_path_factory.mktemp("server") / "server.log",
                    "--max-batch-size", "16", "--batch-timeout", "0.05", "--max-body-bytes", str(MAX_BODY))
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


# -- grading and comparing ------------------------------------------------------------------------
@pytest.mark.slow
def test_health_and_openapi_describe_the_endpoints(server):
    health = server.health()
    assert health["status"] == "ok" and health["head"] == "classification" and health["max_batch_size"] == 16
    status, spec = request(server.url + "/openapi.json")
    assert status == 200
    grade_body = spec["paths"]["/grade"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/GradeRequest"} in grade_body["oneOf"]
    compare_body = spec["paths"]["/compare"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert compare_body == {"$ref": "#/components/schemas/CompareRequest"}
    assert "get" in spec["paths"]["/health"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["GradeRequest"]["required"]) == {"instruction", "response"}
    assert set(schemas["CompareRequest"]["required"]) == {"instruction", "response_a", "response_b"}
    assert schemas["GradeRequest"]["properties"]["response"]["maxLength"] == MAX_TEXT_CHARS
    assert {"400", "413", "422"} <= set(spec["paths"]["/grade"]["post"]["responses"])


@pytest.mark.slow
def test_grade_one_record_and_a_list_in_order(server):
    singles = []
    for record in RECORDS:
        status, grade = request(server.url + "/grade", record)
        assert status == 200, grade
        assert grade["id"] == record["id"] and 1 <= grade["score"] <= 5
        assert len(grade["probabilities"]) == 5 and math.isclose(sum(grade["probabilities"]), 1, abs_tol=1e-4)
        assert grade["confidence"] == max(grade["probabilities"])
        singles.append(grade)
    status, grades = request(server.url + "/grade", RECORDS)
    assert status == 200, grades
    assert [g["id"] for g in grades] == ["a", "b", "c"]
    # Graded in one padded batch, each score is the one it gets alone.
    for alone, batched in zip(singles, grades):
        assert batched["score"] == pytest.approx(alone["score"], abs=1e-4)


@pytest.mark.slow
def test_compare_grades_each_response_alone(server):
    pair = {"instruction": "What is 2+2?", "response_a": "4", "response_b": "Five, I think.", "rubric": RUBRIC}
    status, result = request(server.url + "/compare", pair)
    assert status == 200, result
    assert result["winner"] in ("A", "B", "tie")
    assert result["margin"] == pytest.approx(result["score_a"] - result["score_b"])
    expected = "tie" if result["margin"] == 0 else "A" if result["margin"] > 0 else "B"
    assert result["winner"] == expected
    assert 0 <= result["p_a_better"] <= 1 and 0 <= result["p_tie"] <= 1
    shared = {"instruction": pair["instruction"], "rubric": RUBRIC}
    _, alone = request(server.url + "/grade", [{**shared, "response": pair["response_a"]}, {**shared, "response": pair["response_b"]}])
    assert [result["score_a"], result["score_b"]] == pytest.approx([g["score"] for g in alone], abs=1e-4)
    status, wide = request(server.url + "/compare", {**pair, "tie_margin": 4})
    assert status == 200 and wide["winner"] == "tie"


@pytest.mark.slow
def test_empty_and_blank_responses_are_graded(server):
    """An empty answer is an answer (the worst): graded, never refused."""
    status, grades = request(server.url + "/grade", [{**RECORDS[0], "response": r} for r in ("", " ", "\n\t")])
    assert status == 200, grades
    assert all(1 <= g["score"] <= 5 and g["id"] == "a" and len(g["probabilities"]) == 5 for g in grades)
    status, result = request(server.url + "/compare", {"instruction": "What is 2+2?", "response_a": "4", "response_b": ""})
    assert status == 200 and result["winner"] in ("A", "B", "tie"), result


# -- bad requests ---------------------------------------------------------------------------------
GOOD = {"instruction": "What is 2+2?", "response": "4"}
PAIR = {"instruction": "What is 2+2?", "response_a": "4", "response_b": "5"}
BAD = {
    "missing response": ("/grade", {"instruction": "x"}, 422, "response"),
    "mistyped instruction": ("/grade", {"instruction": 5, "response": "4"}, 422, "instruction"),
    "blank instruction": ("/grade", {**GOOD, "instruction": "   "}, 422, "instruction"),
    "null response": ("/grade", {**GOOD, "response": None}, 422, "response"),
    "response as a list": ("/grade", {**GOOD, "response": ["4"]}, 422, "response"),
    "rubric lacks a score": ("/grade", {**GOOD, "rubric": {k: v for k, v in RUBRIC.items() if k != "score3_description"}},
                             422, "rubric.score3_description"),
    "rubric is a number": ("/grade", {**GOOD, "rubric": 3}, 422, "rubric"),
    "blank passage": ("/grade", {**GOOD, "context": ["fine", " "]}, 422, "context[1]"),
    "score out of range": ("/grade", {**GOOD, "score": 7}, 422, "score"),
    "second record bad": ("/grade", [GOOD, {"response": "4"}], 422, "[1].instruction"),
    "empty list": ("/grade", [], 422, "body"),
    "too many records": ("/grade", [GOOD] * (MAX_RECORDS + 1), 422, "body"),
    "text too long": ("/grade", {**GOOD, "response": "x" * (MAX_TEXT_CHARS + 1)}, 422, "response"),
    "not an object": ("/grade", "grade this", 422, "body"),
    "compare lacks response_b": ("/compare", {k: v for k, v in PAIR.items() if k != "response_b"}, 422, "response_b"),
    "compare response_a as a number": ("/compare", {**PAIR, "response_a": 4}, 422, "response_a"),
    "negative tie margin": ("/compare", {**PAIR, "tie_margin": -1}, 422, "tie_margin"),
    "tie margin as text": ("/compare", {**PAIR, "tie_margin": "0.5"}, 422, "tie_margin"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_answers_4xx_naming_the_field(server, case):
    path, body, expected, field = BAD[case]
    status, answer = request(server.url + path, body)
    assert status == expected, answer
    assert field in [d["field"] for d in answer["detail"]], answer
    assert f"{field}:" in answer["message"]


@pytest.mark.slow
def test_malformed_oversized_and_non_json_bodies(server):
    status, answer = request(server.url + "/grade", raw=b'{"instruction": "x", "response": ')
    assert status == 400 and "malformed JSON" in answer["message"]
    status, answer = request(server.url + "/grade", raw=b'{"instruction": "x", "response": "4", "id": NaN}')
    assert status == 422 and answer["detail"][0]["field"] == "id"
    status, answer = request(server.url + "/grade", raw=json.dumps({**GOOD, "id": "x" * MAX_BODY}).encode())
    assert status == 413 and str(MAX_BODY) in answer["message"]
    status, answer = request(server.url + "/grade", raw=b"instruction=x&response=4", content_type="application/x-www-form-urlencoded")
    assert status == 415 and "application/json" in answer["message"]
    assert request(server.url + "/nowhere", GOOD)[0] == 404
    # Fields the judge does not know are echoed back; one named like a grade field is dropped.
    status, grade = request(server.url + "/grade", {**GOOD, "id": "\u00e9t\u00e9", "confidence": "high", "meta": {"k": [1]}})
    assert status == 200 and grade["id"] == "\u00e9t\u00e9" and grade["meta"] == {"k": [1]}
    assert isinstance(grade["confidence"], float)
    assert server.health()["status"] == "ok"


# -- load and shutdown ----------------------------------------------------------------------------
@pytest.mark.slow
def test_32_concurrent_clients_are_all_answered_in_shared_batches(server):
    before = server.health()
    start = threading.Barrier(32)

    def client(i: int):
        start.wait(timeout=60)
        return request(server.url + "/grade", {"id": i, "instruction": f"What is {i} + {i}?", "response": str(2 * i)})

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(client, range(32)))
    assert [status for status, _ in answers] == [200] * 32, answers
    assert [grade["id"] for _, grade in answers] == list(range(32))
    after = server.health()
    assert after["records"] - before["records"] == 32
    assert after["batches"] - before["batches"] < 32  # some requests shared a forward pass
    assert after["in_flight"] == 0


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight(judge_dir, tmp_path):
    # A long batch timeout holds the request in the server while SIGTERM comes.
    served = Server(judge_dir, tmp_path / "server.log", "--batch-timeout", "3", "--max-batch-size", "64")
    try:
        served.wait_ready()
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(request, served.url + "/grade", RECORDS[0])
            deadline = time.monotonic() + 30
            while served.health()["in_flight"] == 0 and time.monotonic() < deadline and not pending.done():
                time.sleep(0.05)
            served.process.send_signal(signal.SIGTERM)
            status, grade = pending.result(timeout=60)
        assert status == 200 and grade["id"] == "a", grade
        assert served.process.wait(timeout=60) == 0, served.log.read_text()[-3000:]
    finally:
        served.stop()


# -- in-process: the batcher and error names --------------------------------------------------------
class FakeJudge:
    """Scores a record by its response's length; records every batch; fails on "boom"."""

    def __init__(self):
        self.batches: list[int] = []

    def grade_records(self, records, batch_size):
        from phudge_lightning.judge import Grade

        time.sleep(0.01)
        if any(r.response == "boom" for r in records):
            raise RuntimeError("boom")
        self.batches.append(len(records))
        return [Grade(score=float(len(r.response))) for r in records]


def run_requests(batcher: Batcher, sizes: list[int], fail: int | None = None) -> list:
    async def main():
        worker = asyncio.create_task(batcher.run())
        try:
            jobs = [batcher.grade([Record("q", "boom" if i == fail else "x" * (i + 1))] * n) for i, n in enumerate(sizes)]
            return await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 30)
        finally:
            worker.cancel()
            batcher.executor.shutdown()

    return asyncio.run(main())


def test_batcher_groups_requests_without_splitting_them():
    judge = FakeJudge()
    results = run_requests(Batcher(judge, max_batch_size=4, batch_timeout=0.05), [1, 2, 1, 3, 1, 1])
    assert [[g.score for g in grades] for grades in results] == [[1.0], [2.0] * 2, [3.0], [4.0] * 3, [5.0], [6.0]]
    assert sum(judge.batches) == 9 and max(judge.batches) <= 4 and len(judge.batches) < 6


def test_batcher_fails_only_the_bad_request():
    judge = FakeJudge()
    results = run_requests(Batcher(judge, max_batch_size=8, batch_timeout=0.05), [1, 1, 1], fail=1)
    assert isinstance(results[1], RuntimeError)
    assert [g.score for g in results[0]] == [1.0] and [g.score for g in results[2]] == [3.0]


def test_field_names_drop_body_and_union_tags():
    assert _field_name(("body", "records", 2, "rubric", "object", "criteria")) == "[2].rubric.criteria"
    assert _field_name(("body", "record", "context", "list", 1)) == "context[1]"
    assert _field_name(("body",)) == "body"


def test_bench_percentiles_interpolate():
    from phudge_lightning.bench.serve import percentile

    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0], 0.99) == pytest.approx(1.99)
    assert percentile([5.0], 0.99) == 5.0 and math.isnan(percentile([], 0.5))
