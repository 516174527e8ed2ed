"""Ranking many answers: the ranking from grades, the rows to rank, ``Judge.rank``, ``phudge
rank`` (resumable, as grade is), ``POST /rank``, and pairs read off rankings (``--ranking``)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import BENCHMARKS, write_jsonl
from datamodules.records import RecordError
from datamodules.rubrics import RUBRICS
from phudge_lightning.judge import Grade
from phudge_lightning.metrics import pairwise_probabilities
from phudge_lightning.rank.agreement import group_pairs, pair_scores, rank_groups, ranking_agreement
from phudge_lightning.rank.ranking import rank_grades, ranks, validate_rank_row
from phudge_lightning.rank.command import main, rank_file


# -- the ranking ------------------------------------------------------------------------------------
def test_competition_ranks():
    assert ranks([3.0, 5.0, 3.0, 1.0]) == [2, 1, 2, 4]
    assert ranks([None, 2.0, 2.0]) == [None, 1, 1]
    assert ranks([]) == []


def test_ranking_is_best_first_with_ties_in_input_order_and_no_score_last():
    grades = [Grade(score=2.0), Grade(score=None), Grade(score=4.5), Grade(score=2.0)]
    ranking = rank_grades(grades, [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}])
    assert [(a.index, a.rank, a.item["id"]) for a in ranking.answers] == [(2, 1, "c"), (0, 2, "a"), (3, 2, "d"), (1, None, "b")]
    assert ranking.p_better is None  # no distributions
    assert ranking.to_dict()["ranking"][0] == {"id": "c", "index": 2, "rank": 1, "score": 4.5}


def test_p_better_is_compares_formula_for_every_pair():
    distributions = [[0.1, 0.1, 0.2, 0.3, 0.3], [0.5, 0.2, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]]
    grades = [Grade(score=sum(k * p for k, p in enumerate(d, 1)), probabilities=d) for d in distributions]
    ranking = rank_grades(grades)
    order = [a.index for a in ranking.answers]
    assert order == [0, 2, 1]
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            if i == j:
                assert ranking.p_better[i][j] is None
                continue
            better, tie = pairwise_probabilities(distributions[a], distributions[b])
            assert ranking.p_better[i][j] == pytest.approx(better, abs=1e-6)
            assert ranking.p_better[i][j] + ranking.p_better[j][i] + tie == pytest.approx(1.0, abs=1e-5)
    assert ranking.p_better[0][2] > 0.5 > ranking.p_better[2][0]  # the best beats the worst more often than not


# -- rows to rank -----------------------------------------------------------------------------------
def test_a_row_to_rank_takes_texts_and_objects_and_keeps_other_fields():
    query = validate_rank_row({"instruction": "q", "responses": ["a", {"id": 7, "response": "b", "model": "m"}],
                               "rubric": "honesty", "qid": "x"})
    assert [r.response for r in query.records] == ["a", "b"]
    assert all(r.rubric == RUBRICS["honesty"] and r.instruction == "q" for r in query.records)
    assert query.items == [{}, {"id": 7, "model": "m"}] and query.extra == {"qid": "x"}


@pytest.mark.parametrize("row, field, message", [
    ({"instruction": "q"}, "responses", "non-empty list"),
    ({"instruction": "q", "responses": []}, "responses", "an empty list"),
    ({"instruction": "q", "responses": "a"}, "responses", "got str"),
    ({"instruction": "q", "responses": ["a", 5]}, "responses[1]", "must be text"),
    ({"instruction": "q", "responses": ["a", {"id": 1}]}, "responses[1].response", "is missing"),
    ({"instruction": "q", "responses": ["a", {"response": 3}]}, "responses[1].response", "must be text"),
    ({"responses": ["a"]}, "instruction", "missing"),
    ({"instruction": "q", "responses": ["a"], "rubric": "helpfullness"}, "rubric", "unknown rubric name"),
])
def test_a_bad_row_names_the_whole_field(row, field, message):
    with pytest.raises(RecordError) as error:
        validate_rank_row(row, source="in.jsonl", row=3)
    assert error.value.field == field and message in error.value.message and "in.jsonl, row 3" in str(error.value)


def test_an_answer_is_refused_or_accepted_exactly_as_grading_would():
    from datamodules.records import validate_record

    for answer in ("", "   ", "x"):
        try:
            validate_record({"instruction": "q", "response": answer}, require_score=False)
            graded = True
        except RecordError:
            graded = False
        try:
            validate_rank_row({"instruction": "q", "responses": ["ok", answer]})
            ranked = True
        except RecordError as e:
            assert e.field == "responses[1]"
            ranked = False
        assert ranked == graded, repr(answer)


# -- phudge rank: the file, resumably ----------------------------------------------------------------
class LengthJudge:
    """Scores an answer by its length; fails (like a kill) on its ``fail_on``-th call."""

    def __init__(self, fail_on: int | None = None):
        self.calls, self.fail_on = 0, fail_on

    def rank_many(self, queries):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("killed")
        return [rank_grades([Grade(score=float(len(r.response))) for r in q.records], q.items) for q in queries]


def rank_rows(n: int) -> list:
    rows = []
    for i in range(n):
        if i % 5 == 3:
            rows.append({"instruction": "q", "responses": []})  # bad: rejected
        else:
            rows.append({"id": i, "instruction": f"q{i}", "responses": ["a" * (i % 3 + 1), {"id": "long", "response": "b" * 5}, "c"]})
    return rows


def test_rank_file_writes_each_row_once_in_order_and_resumes(tmp_path):
    rows = rank_rows(12)
    source, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        rank_file(LengthJudge(fail_on=3), source, output, batch_size=2)
    first = len(output.read_text().splitlines())
    assert 0 < first < 10
    summary = rank_file(LengthJudge(), source, output, batch_size=2)
    assert summary.already_done > 0
    out = [json.loads(line) for line in output.read_text().splitlines()]
    rejects = [json.loads(line) for line in Path(str(output) + ".rejects.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == [i for i in range(12) if i % 5 != 3]
    assert sorted(r["line"] for r in rejects) == [4, 9] and {r["field"] for r in rejects} == {"responses"}
    for row in out:
        assert row["ranking"][0] == {"id": "long", "index": 1, "rank": 1, "score": 5.0}
        # lengths k, 5, 1 (k = 1..3): the object first, then the others, tied ones in input order
        assert [a["index"] for a in row["ranking"]] == [1, 0, 2]
        assert [a["rank"] for a in row["ranking"]] == ([1, 2, 2] if row["id"] % 3 == 0 else [1, 2, 3])


def test_rank_rubric_fills_the_rows_without_one(tmp_path):
    seen = []

    class Recording(LengthJudge):
        def rank_many(self, queries):
            seen.extend(r.rubric for q in queries for r in q.records)
            return super().rank_many(queries)

    rows = [{"instruction": "q", "responses": ["a"]}, {"instruction": "q", "responses": ["a"], "rubric": "Be brief, please."}]
    rank_file(Recording(), write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", rubric="reasoning")
    assert seen == [RUBRICS["reasoning"], "Be brief, please."]


@pytest.fixture(scope="module")
def judge_dir(tiny_llama_dir, tmp_path_factory):
    from phudge_lightning.formats import save
    from phudge_lightning.model.module import JudgeModule

    module = JudgeModule(backbone=str(tiny_llama_dir), head="classification", lora={"r": 2, "alpha": 4, "dropout": 0.0})
    return save(module, tmp_path_factory.mktemp("judge"), "judge")


def test_judge_rank_orders_by_the_grades_and_compare_agrees(judge_dir):
    from phudge_lightning.judge import Judge

    judge = Judge.load(judge_dir, device="cpu")
    answers = ["Rest it five minutes.", "Ten.", "Rest it for about five minutes so the juice stays in the meat.", "No."]
    ranking = judge.rank("How long should a steak rest?", answers, rubric="helpfulness")
    grades = judge.grade_many([{"instruction": "How long should a steak rest?", "response": a, "rubric": "helpfulness"}
                               for a in answers])
    assert sorted(a.index for a in ranking.answers) == [0, 1, 2, 3]
    assert [a.score for a in ranking.answers] == sorted((g.score for g in grades), reverse=True)
    assert all(a.score == pytest.approx(grades[a.index].score) for a in ranking.answers)
    best, worst = ranking.answers[0].index, ranking.answers[-1].index
    c = judge.compare("How long should a steak rest?", answers[best], answers[worst], rubric="helpfulness")
    assert ranking.p_better[0][-1] == pytest.approx(c.p_a_better, abs=1e-5)


def test_phudge_rank_command(tmp_path, judge_dir):
    rows = rank_rows(6)
    source, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    args = ["--checkpoint", str(judge_dir), "--input", str(source), "--output", str(output), "--device", "cpu",
            "--rubric", "helpfulness"]
    assert main(args) == 0
    out = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(out) == 5 and all(len(r["ranking"]) == 3 and len(r["p_better"]) == 3 for r in out)
    assert all(len(a["probabilities"]) == 5 for r in out for a in r["ranking"])
    assert main(args) == 0  # all done: nothing added
    assert len(output.read_text().splitlines()) == 5
    with pytest.raises(SystemExit):
        main([*args[:-1], "helpfullness"])


# -- POST /rank --------------------------------------------------------------------------------------
def post(url: str, body) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(judge_dir):
    import uvicorn

    from phudge_lightning.judge import Judge
    from phudge_lightning.serve.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Judge.load(judge_dir, device="cpu"), max_batch_size=8, batch_timeout=0.01)
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not served.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(timeout=30)


def test_post_rank(server):
    body = {"instruction": "What is 2+2?", "responses": ["4", {"id": "b", "response": "5", "model": "m"}, "four"],
            "rubric": "factual_correctness", "qid": 9}
    status, answer = post(server + "/rank", body)
    assert status == 200, answer
    assert answer["qid"] == 9 and sorted(a["index"] for a in answer["ranking"]) == [0, 1, 2]
    assert [a["rank"] for a in answer["ranking"]] == sorted(a["rank"] for a in answer["ranking"])
    by_index = {a["index"]: a for a in answer["ranking"]}
    assert by_index[1]["id"] == "b" and by_index[1]["model"] == "m"
    p = answer["p_better"]
    assert len(p) == 3 and p[0][0] is None and 0 <= p[0][1] <= 1
    # the same grades as /grade gives
    status, graded = post(server + "/grade", [{"instruction": "What is 2+2?", "response": r, "rubric": "factual_correctness"}
                                              for r in ("4", "5", "four")])
    assert status == 200 and [by_index[i]["score"] for i in range(3)] == pytest.approx([g["score"] for g in graded])


@pytest.mark.parametrize("body, field", [
    ({"instruction": "q", "responses": []}, "responses"),
    ({"instruction": "q", "responses": ["a", 5]}, "responses[1]"),  # a number; a blank answer is an answer
    ({"instruction": "q", "responses": ["a", {"id": "x"}]}, "responses[1].response"),
    ({"instruction": "q", "responses": ["a"], "rubric": "helpfullness"}, "rubric"),
])
def test_post_rank_names_the_bad_field(server, body, field):
    status, answer = post(server + "/rank", body)
    assert status == 422 and answer["detail"][0]["field"] == field, answer


def test_grade_takes_a_rubric_name_and_refuses_an_unknown_one(server):
    status, answer = post(server + "/grade", {"instruction": "q", "response": "a", "rubric": "helpfulness"})
    assert status == 200 and 1 <= answer["score"] <= 5
    status, answer = post(server + "/compare", {"instruction": "q", "response_a": "a", "response_b": "b", "rubric": "nope"})
    assert status == 422 and answer["detail"][0]["field"] == "rubric" and "helpfulness" in answer["message"]


# -- pairs read off rankings ---------------------------------------------------------------------------
def make_pairs(spec):
    from datamodules.records import Pair, Record

    return [Pair.labelled(Record(instruction=q, response=a), Record(instruction=q, response=b), label)
            for q, a, b, label in spec]


def test_pairs_are_read_off_each_instructions_ranking():
    pairs = make_pairs([("q1", "x", "y", "A"), ("q1", "y", "z", "A"), ("q1", "x", "z", "A"), ("q2", "u", "v", "B"),
                        ("q2", "u", "v", "tie")])
    groups = group_pairs(pairs)
    assert [[r.response for r in g] for g in groups.answers] == [["x", "y", "z"], ["u", "v"]]
    assert groups.places == [(0, 0, 1), (0, 1, 2), (0, 0, 2), (1, 0, 1), (1, 0, 1)]
    scores = [3.0, 1.0, 2.0, 1.0, 1.0]  # x > z > y: the pair (y, z) is read wrong; u = v: a shared rank is wrong
    result = ranking_agreement([p.label for p in pairs], groups, rank_groups(groups, scores))
    assert result["ranking_agreement"] == pytest.approx(2 / 4) and result["ranking_pairs"] == 4
    assert result["rankings"] == 2 and result["answers_ranked"] == 5 and result["pair_grades"] == 10
    assert result["rankings_of_3_or_more"] == 1 and result["rankings_in_full_agreement"] == 0.0
    assert pair_scores(groups, scores) == [3.0, 1.0, 1.0, 2.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.skipif(not (BENCHMARKS / "hhh_alignment_eval.json").exists(), reason="shared benchmark files not here")
def test_evaluate_ranking_on_hhh_with_the_length_baseline(tmp_path):
    from phudge_lightning.evaluate import main as evaluate_main

    out = tmp_path / "hhh.json"
    assert evaluate_main(["--baseline", "length", "--benchmark", "hhh", "--data", str(BENCHMARKS / "hhh_alignment_eval.json"),
                          "--ranking", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["rankings"] == 102 and result["answers_ranked"] == 258 and result["pair_grades"] == 442
    # A judge that grades each answer alone ranks consistently: the pairs read off its rankings
    # are its pair verdicts, so the agreement is the strict pair accuracy (0.6290 for length).
    assert result["ranking_agreement"] == pytest.approx(result["accuracy"]) == pytest.approx(0.629, abs=1e-3)
    assert 0 < result["rankings_in_full_agreement"] < 1 and result["rankings_of_3_or_more"] == 42


def test_a_request_score_is_checked_against_the_judges_range(server):
    with urllib.request.urlopen(server + "/health", timeout=30) as answer:
        assert json.loads(answer.read())["score_range"] == [1.0, 5.0]
    status, answer = post(server + "/grade", {"instruction": "q", "response": "a", "score": 8})
    assert status == 422 and answer["detail"][0]["field"] == "score" and "from 1 to 5" in answer["message"]
    assert post(server + "/grade", {"instruction": "q", "response": "a", "score": 4.5})[0] == 200
