"""``phudge serve`` on a network: API keys, load shedding, Prometheus metrics, request ids and
the access log, and ``JudgeClient`` against ``Judge`` on the same tiny random judge.

Servers run in this process (uvicorn in a thread, on loopback); a judge that waits on an event
holds the queue full for the shedding tests, so they need no timing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from phudge_lightning.client import MAX_RECORDS, JudgeClient, ServerError
from phudge_lightning.grades import Grade
from phudge_lightning.serve import app as serving
from phudge_lightning.serve.auth import RequireKey, api_keys, is_loopback
from phudge_lightning.serve.limits import MAX_RECORDS as SERVER_MAX_RECORDS
from live_server import InThreadServer

KEYS = ["k-one", "k-two"]
RUBRIC = {"criteria": "Is the answer correct?", **{f"score{i}_description": f"Level {i}." for i in range(1, 6)}}


@pytest.fixture(scope="module")
def judge(tiny_llama_dir):
    from phudge_lightning.judge import Judge
    from phudge_lightning.model.module import JudgeModule

    return Judge(JudgeModule(backbone=str(tiny_llama_dir), head="classification", lora=None), device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def keyed(judge):
    with InThreadServer(judge, api_keys=KEYS, load_seconds=1.5) as served:
        yield served


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# -- keys -----------------------------------------------------------------------------------------
def test_a_keyed_server_refuses_an_unkeyed_request_and_grades_a_keyed_one(keyed, caplog):
    body = {"instruction": "What is 2+2?", "response": "4"}
    with caplog.at_level(logging.INFO, logger="phudge_lightning.serve.access"):
        status, head, answer = keyed.call("/grade", body)
        assert status == 401 and head["WWW-Authenticate"] == "Bearer"
        assert answer["message"].startswith("missing API key") and "\n" not in answer["message"]
        status, _, answer = keyed.call("/grade", body, bearer("k-wrong"))
        assert status == 401 and answer["message"].startswith("wrong API key")
        assert keyed.call("/grade", body, {"Authorization": "Basic k-one"})[0] == 401
        for key in KEYS:  # either key grades
            status, _, answer = keyed.call("/grade", body, bearer(key))
            assert status == 200 and 1 <= answer["score"] <= 5, answer
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(key in logged for key in KEYS + ["k-wrong"]) and "2+2" not in logged  # neither keys nor text
    assert keyed.call("/health")[0] == 200  # open to probes
    for path in ("/metrics", "/openapi.json"):
        assert keyed.call(path)[0] == 401


def test_nothing_is_graded_without_the_key(keyed):
    before = keyed.call("/health")[2]["records"]
    for path, body in (("/grade", [{"instruction": "q", "response": "a"}] * 3),
                       ("/compare", {"instruction": "q", "response_a": "a", "response_b": "b"}),
                       ("/rank", {"instruction": "q", "responses": ["a", "b"]})):
        assert keyed.call(path, body, bearer("nope"))[0] == 401
    assert keyed.call("/health")[2]["records"] == before


def test_keys_are_compared_in_full():
    guard = RequireKey(None, KEYS)
    assert guard.allows(b"Bearer k-one") and guard.allows(b"bearer  k-two ")
    for header in (None, b"", b"Bearer", b"Bearer k-on", b"Bearer k-one2", b"k-one", b"Token k-one"):
        assert not guard.allows(header), header


def test_keys_come_from_the_flag_and_the_environment():
    assert api_keys(["a"], {"PHUDGE_API_KEY": "b, c"}) == ["a", "b", "c"]
    assert api_keys(None, {}) == []
    with pytest.raises(ValueError, match="blank"):
        api_keys(["a"], {"PHUDGE_API_KEY": "b,,c"})


def test_without_a_key_the_server_refuses_to_listen_beyond_loopback(monkeypatch, capsys):
    monkeypatch.delenv("PHUDGE_API_KEY", raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.7")
    # It stops before loading a judge, so a checkpoint that does not exist is never read.
    assert serving.main(["--checkpoint", "/nonexistent", "--host", "0.0.0.0"]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "refusing to listen on 0.0.0.0 without an API key" in message
    assert "--allow-no-key" in message


# -- metrics, request ids, the access log ---------------------------------------------------------
def test_metrics_parse_and_count_requests_batches_and_records(keyed):
    key = bearer(KEYS[0])
    records = [{"instruction": "What is 2+2?", "response": str(i)} for i in range(3)]
    assert keyed.call("/grade", records, key)[0] == 200
    keyed.call("/grade", {"instruction": "q"}, key)  # 422
    keyed.call("/no-such-route", None, key)  # 404, counted as "other"
    status, head, text = keyed.call("/metrics", None, key)
    assert status == 200 and head["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("phudge_requests_total", (("route", "/grade"), ("status", "200")))] >= 1
    assert samples[("phudge_requests_total", (("route", "/grade"), ("status", "422")))] >= 1
    assert samples[("phudge_requests_total", (("route", "other"), ("status", "404")))] >= 1
    assert samples[("phudge_request_duration_seconds_count", (("route", "/grade"),))] >= 2
    assert samples[("phudge_records_graded_total", ())] >= 3
    assert samples[("phudge_batch_records_sum", ())] == samples[("phudge_records_graded_total", ())]
    assert samples[("phudge_queue_records", ())] == 0 and samples[("phudge_queue_limit_records", ())] > 0
    assert samples[("phudge_judge_load_seconds", ())] == 1.5
    assert "/no-such-route" not in text


def test_public_metrics_need_no_key(judge):
    with InThreadServer(judge, api_keys=KEYS, metrics_public=True) as served:
        status, _, text = served.call("/metrics")
        assert status == 200 and "phudge_requests_total" in text
        assert served.call("/grade", {"instruction": "q", "response": "a"})[0] == 401


def test_every_answer_carries_a_request_id_and_one_log_line(keyed, caplog):
    with caplog.at_level(logging.INFO, logger="phudge_lightning.serve.access"):
        status, head, _ = keyed.call("/grade", [{"instruction": "Secret question?", "response": "secret answer"}] * 2,
                                     {**bearer(KEYS[0]), "X-Request-ID": "trace-42"})
        assert status == 200 and head["X-Request-ID"] == "trace-42"
        made = [keyed.call(path, None, h)[1]["X-Request-ID"] for path, h in (("/health", {}), ("/grade", {}),
                                                                             ("/health", {"X-Request-ID": "bad id"}))]
    assert all(len(rid) == 32 for rid in made) and len(set(made)) == 3  # made up, and for 401s too
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[0].startswith("POST /grade 200 records=2 ") and lines[0].endswith("ms id=trace-42")
    assert lines[2].startswith("GET /grade 401 records=0 ")
    assert not any("secret" in line.lower() for line in lines)


# -- load shedding --------------------------------------------------------------------------------
class HeldJudge:
    """Grades every record 3.0, but only once ``release`` is set: the queue stays as it is."""

    module, score_range = None, (1.0, 5.0)

    def __init__(self):
        self.release = threading.Event()

    def grade_records(self, records, batch_size):
        assert self.release.wait(60)
        return [Grade(score=3.0) for _ in records]


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_full_queue_answers_503_with_retry_after_and_every_request_taken_is_answered(caplog):
    judge = HeldJudge()
    one = {"instruction": "q", "response": "a"}
    with InThreadServer(judge, max_batch_size=1, batch_timeout=0.0, max_queue=3) as served, ThreadPoolExecutor(8) as pool:
        batcher = served.app.batcher
        taken = [pool.submit(served.call, "/grade", one) for _ in range(2)]
        wait_for(lambda: batcher.queued == 2)
        # Two more records would bring the queue over 3: refused by the batcher, after parsing.
        with caplog.at_level(logging.INFO, logger="phudge_lightning.serve.access"):
            status, head, answer = served.call("/grade", [one, one])
        assert status == 503 and int(head["Retry-After"]) >= 1 and "overloaded" in answer["message"]
        assert caplog.records[-1].getMessage().startswith("POST /grade 503 records=0 ")  # nothing graded
        taken.append(pool.submit(served.call, "/grade", one))
        wait_for(lambda: batcher.queued == 3)
        # Full: refused at once, before the body is parsed (a body that is not even JSON gets 503, not 400).
        start = time.monotonic()
        status, head, answer = served.call("/grade", one)
        assert status == 503 and int(head["Retry-After"]) >= 1 and "3 records are waiting" in answer["message"]
        req = urllib.request.Request(served.url + "/rank", data=b"{not json", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 503 and int(refused.value.headers["Retry-After"]) >= 1
        assert time.monotonic() - start < 5
        assert served.call("/health")[0] == 200  # probes are never shed
        judge.release.set()
        results = [f.result(timeout=30) for f in taken]
        assert [r[0] for r in results] == [200, 200, 200] and all(r[2]["score"] == 3.0 for r in results)
        assert batcher.queued == 0 and served.call("/grade", [one, one, one])[0] == 200


def test_the_client_retries_503_honouring_retry_after():
    judge = HeldJudge()
    with InThreadServer(judge, max_batch_size=1, batch_timeout=0.0, max_queue=1) as served, ThreadPoolExecutor(2) as pool:
        batcher = served.app.batcher
        first = pool.submit(served.call, "/grade", {"instruction": "q", "response": "a"})
        wait_for(lambda: batcher.queued == 1)
        impatient = JudgeClient(served.url, retries=0, timeout=10)
        with pytest.raises(ServerError) as refused:
            impatient.grade("q", "b")
        assert refused.value.status == 503 and "overloaded" in refused.value.message
        threading.Timer(0.5, judge.release.set).start()
        start = time.monotonic()
        patient = JudgeClient(served.url, retries=3, backoff=0.05, timeout=10)
        assert patient.grade("q", "b").score == 3.0  # refused, waited Retry-After (1 s), then graded
        assert time.monotonic() - start >= 1.0
        assert first.result(timeout=30)[0] == 200


# -- the client -----------------------------------------------------------------------------------
def close(a, b) -> bool:
    """Equal, floats to 1e-5: rows batched differently are padded differently (float noise)."""
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and close(dataclasses.asdict(a), dataclasses.asdict(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(close, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, abs=1e-5)
    return a == b


def test_the_client_returns_what_judge_returns(keyed, judge):
    client = JudgeClient(keyed.url, api_key=KEYS[1], timeout=60)
    args = ("Why does bread need salt?", "For flavour.")
    grade = client.grade(*args, rubric=RUBRIC, reference_answer="Flavour and gluten.")
    assert close(grade, judge.grade(*args, rubric=RUBRIC, reference_answer="Flavour and gluten."))
    records = [{"instruction": "What is 2+2?", "response": "x" * i, "context": ["Arithmetic."]} for i in range(5)]
    assert close(client.grade_many(records, batch_size=2), judge.grade_many(records))
    comparison = client.compare("What is 2+2?", "4", "5", rubric="factual_correctness", tie_margin=0.25)
    expected = judge.compare("What is 2+2?", "4", "5", rubric="factual_correctness", tie_margin=0.25)
    assert close(comparison, expected) and comparison.winner == expected.winner
    responses = ["4", {"id": "b", "response": "5", "model": "m"}, "four"]
    ranking = client.rank("What is 2+2?", responses, rubric="factual_correctness")
    expected = judge.rank("What is 2+2?", responses, rubric="factual_correctness")
    assert type(ranking) is type(expected) and close(ranking, expected)
    assert [a.index for a in ranking.answers] == [a.index for a in expected.answers]
    assert [a.item for a in ranking.answers] == [a.item for a in expected.answers] and ranking.answers[0].score is not None
    assert "k-two" not in repr(client)


def test_the_client_raises_the_server_message_and_times_out(keyed):
    with pytest.raises(ServerError) as error:
        JudgeClient(keyed.url, api_key="wrong").grade("q", "a")
    assert error.value.status == 401 and error.value.message.startswith("wrong API key") and error.value.request_id
    with pytest.raises(ServerError, match="instruction"):
        JudgeClient(keyed.url, api_key=KEYS[0]).grade("  ", "a")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        with pytest.raises(OSError):
            JudgeClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5).grade("q", "a")
        assert time.monotonic() - start < 5
    assert MAX_RECORDS == SERVER_MAX_RECORDS


def test_the_command_passes_keys_queue_and_load_time_to_the_app(monkeypatch, caplog):
    import uvicorn

    from phudge_lightning.judge import Judge

    made, served = {}, {}
    monkeypatch.setenv("PHUDGE_API_KEY", "env-key")
    monkeypatch.setattr(Judge, "load", classmethod(lambda cls, path, **kw: "the judge"))
    monkeypatch.setattr(serving, "create_app", lambda judge, *args, **kwargs: made.update(judge=judge, args=args, **kwargs) or "app")
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: served.update(config=self.config))
    with caplog.at_level(logging.INFO, logger="phudge_lightning.serve.app"):
        assert serving.main(["--host", "0.0.0.0", "--api-key", "flag-key", "--max-queue", "32", "--metrics-public"]) == 0
    assert made["judge"] == "the judge" and made["api_keys"] == ["flag-key", "env-key"]
    assert made["max_queue"] == 32 and made["metrics_public"] and made["load_seconds"] >= 0
    assert served["config"].host == "0.0.0.0" and served["config"].access_log is False  # the app logs each request once
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "2 API keys" in logged and "flag-key" not in logged and "env-key" not in logged


class SlowJudge:
    """Grades every record 3.0 after 0.2 s a batch: a judge far slower than a burst."""

    module, score_range = None, (1.0, 5.0)

    def grade_records(self, records, batch_size):
        time.sleep(0.2)
        return [Grade(score=3.0) for _ in records]


def test_a_burst_of_clients_gets_only_200s_and_503s():
    from phudge_lightning.bench.serve import burst

    body = json.dumps({"instruction": "q", "response": "a"}).encode()
    with InThreadServer(SlowJudge(), max_batch_size=4, batch_timeout=0.01, max_queue=4) as served:
        result = burst(served.port, [body], 150, timeout=60)
        assert result.answered and result.ok + result.shed == 150, (result.other, result.failed)
        assert 4 <= result.ok < 150 and result.shed > 0 and result.shed_without_retry_after == 0
        assert served.call("/health")[2]["queued"] == 0
