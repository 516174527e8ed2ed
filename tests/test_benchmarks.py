"""Benchmark loaders (one small file per documented format) and metrics (against scipy)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats

from phudge_lightning.benchmarks import (ABSOLUTE, BENCHMARKS, RELATIVE, absolute_metrics, benchmark_metrics,
                                         load_benchmark, pair_metrics)

RUBRIC = "[Is the answer helpful?]\n" + "\n".join(f"Score {i}: level {i}." for i in range(1, 6))


def prompt(instruction: str, response: str, reference: str | None = "The best answer.", rubric: str = RUBRIC) -> str:
    """A formatted Prometheus absolute prompt, as the benchmark files hold them."""
    parts = ["###Task Description:\nGrade the response.", f"###The instruction to evaluate:\n{instruction}",
             f"###Response to evaluate:\n{response}"]
    if reference is not None:
        parts.append(f"###Reference Answer (Score 5):\n{reference}")
    parts += [f"###Score Rubrics:\n{rubric}", "###Feedback: "]
    return "\n\n".join(parts)


def write(path, rows, *, array: bool = False):
    if array:
        path.write_text(json.dumps(rows, indent=1))
    else:
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_every_paper_benchmark_is_registered():
    names = {"feedback_collection_test", "feedback_collection_ood", "vicuna", "mt_bench", "flask", "hhh",
             "mt_bench_human", "preference_collection", "judgelm", "pandalm", "autoj"}
    assert names <= set(BENCHMARKS)
    assert {BENCHMARKS[n].kind for n in ("vicuna", "flask", "feedback_collection_ood")} == {ABSOLUTE}
    assert {BENCHMARKS[n].kind for n in ("hhh", "judgelm", "pandalm", "autoj")} == {RELATIVE}


# -- absolute ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vicuna", "mt_bench"])
def test_gpt4_scored_prompts(tmp_path, name):
    rows = [
        {"idx": 0, "category": "writing", "instruction": prompt("Write a poem.", "Roses are red."), "gpt4_score": [4, 5, 3],
         "gpt4_feedback": ["ok"] * 3},
        {"idx": 1, "instruction": prompt("Add 2 and 2.", "5", reference=None), "gpt4_score": [1, 2, 2]},
        {"idx": 2, "instruction": prompt("Say hi.", "hi"), "gpt4_score": []},  # no label
        {"idx": 3, "instruction": prompt("Say hi.", "hi"), "gpt4_score": [9, 9, 9]},  # off the scale
    ]
    bench = load_benchmark(name, write(tmp_path / "set.json", rows, array=True))
    assert bench.kind == ABSOLUTE
    assert [r.score for r in bench.items] == [4.0, pytest.approx(5 / 3)]
    first, second = bench.items
    assert (first.instruction, first.response, first.reference_answer) == ("Write a poem.", "Roses are red.", "The best answer.")
    assert first.rubric["criteria"] == "Is the answer helpful?" and first.rubric["score5_description"] == "level 5."
    assert second.reference_answer is None
    assert first.extra == {"idx": 0, "category": "writing"}
    assert [(e.row, e.field) for e in bench.invalid] == [(3, "gpt4_score"), (4, "gpt4_score")]


def test_flask_gpt4_or_human_scores(tmp_path):
    rows = [
        {"instruction": prompt("Q1", "A1"), "gpt4_score": [4, 4], "human_score": [2, 3]},
        {"instruction": prompt("Q2", "A2"), "human_score": [1, 2, 3]},  # no GPT-4 score: the human one
        {"instruction": prompt("Q3", "A3"), "gpt4_score": [5]},
        {"instruction": prompt("Q4", "A4")},
    ]
    path = write(tmp_path / "flask.jsonl", rows)
    gpt4 = load_benchmark("flask", path)
    assert [r.score for r in gpt4.items] == [4.0, 2.0, 5.0]
    assert [(e.row, e.field) for e in gpt4.invalid] == [(4, "gpt4_score")]
    human = load_benchmark("flask_human", path)
    assert [r.score for r in human.items] == [2.5, 2.0]
    assert [(e.row, e.field) for e in human.invalid] == [(3, "human_score"), (4, "human_score")]


@pytest.mark.parametrize("name", ["feedback_collection_test", "feedback_collection_ood"])
def test_feedback_collection_rows(tmp_path, name):
    def row(i, **changes):
        base = {"orig_instruction": f"Task {i}", "orig_response": f"Answer {i}", "orig_reference_answer": "Ref",
                "orig_criteria": "Clear?", **{f"orig_score{k}_description": f"d{k}" for k in range(1, 6)},
                "orig_feedback": "fine", "orig_score": str(1 + i % 5)}
        return {**base, **changes}

    rows = [row(0), row(1, orig_score=3), row(2, orig_response=None), row(3, orig_score="7")]
    bench = load_benchmark(name, write(tmp_path / "fc.jsonl", rows))
    assert [r.score for r in bench.items] == [1.0, 3.0]
    assert bench.items[0].rubric == {"criteria": "Clear?", **{f"score{k}_description": f"d{k}" for k in range(1, 6)}}
    assert [(e.row, e.field) for e in bench.invalid] == [(3, "response"), (4, "score")]


def test_feedback_collection_ood_as_formatted_prompts(tmp_path):
    rows = [{"instruction": prompt("Q", "A"), "gpt4_score": 4}, {"instruction": prompt("Q", "B"), "score": [2, 3]}]
    bench = load_benchmark("feedback_collection_ood", write(tmp_path / "ood.json", rows, array=True))
    assert [r.score for r in bench.items] == [4.0, 2.5]


# -- relative ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["hhh", "mt_bench_human", "preference_collection"])
def test_chosen_rejected_pairs(tmp_path, name):
    rows = [
        {"source": "helpful", "chosen_instruction": prompt("Q", "good answer", reference=None),
         "rejected_instruction": prompt("Q", "bad", reference=None)},
        {"chosen_instruction": prompt("Q2", "same"), "rejected_instruction": prompt("Q2", "same too"), "tie": 1},
        {"chosen_instruction": prompt("Q3", "x"), "rejected_instruction": prompt("Q3", "y"), "tie": 0},
        {"chosen_instruction": prompt("Q4", "x"), "rejected_instruction": prompt("Q4", "y"), "tie": 7},
        {"chosen_instruction": prompt("Q5", "x"), "rejected_instruction": 3},
    ]
    bench = load_benchmark(name, write(tmp_path / "pairs.json", rows, array=True))
    assert bench.kind == RELATIVE
    assert [p.label for p in bench.items] == ["A", "tie", "A"]
    first = bench.items[0]
    assert (first.a.response, first.b.response, first.a.instruction) == ("good answer", "bad", "Q")
    assert first.a.rubric["criteria"] == "Is the answer helpful?" and first.a.reference_answer is None
    assert bench.items[1].a.reference_answer == "The best answer."
    assert [(e.row, e.field) for e in bench.invalid] == [(4, "tie"), (5, "rejected_instruction")]
    assert bench.records() == [first.a, first.b, bench.items[1].a, bench.items[1].b, bench.items[2].a, bench.items[2].b]


def test_judgelm(tmp_path):
    rows = [
        {"question_id": 1, "question_body": "Q1", "answer1_body": "long answer", "answer2_body": "short", "score": [8, 6]},
        {"question_id": 2, "question_body": "Q2", "answer1_body": "a", "answer2_body": "b", "score": [3.0, 7.5],
         "reference": {"text": "the reference"}},
        {"question_id": 3, "question_body": "Q3", "answer1_body": "a", "answer2_body": "b", "score": [5, 5],
         "reference": "plain reference"},
        {"question_id": 4, "question_body": "Q4", "answer1_body": "a", "answer2_body": "b", "score": [5]},
        {"question_id": 5, "question_body": "Q5", "answer1_body": None, "answer2_body": "b", "score": [1, 2]},
        {"question_id": 6, "question_body": "", "answer1_body": "a", "answer2_body": "b", "score": [1, 2]},
    ]
    bench = load_benchmark("judgelm", write(tmp_path / "judgelm.jsonl", rows))
    assert [p.label for p in bench.items] == ["A", "B", "tie"]
    assert [p.a.reference_answer for p in bench.items] == [None, "the reference", "plain reference"]
    assert bench.items[0].a.response == "long answer" and bench.items[0].b.response == "short"
    assert bench.items[0].a.rubric is None  # graded rubric-free
    assert bench.items[0].a.extra["question_id"] == 1
    assert [(e.row, e.field) for e in bench.invalid] == [(4, "score"), (5, "answer1_body"), (6, "question_body")]


def test_pandalm_majority_dropped_and_invalid(tmp_path):
    def row(votes, r1="first", r2="second", given=""):
        return {"instruction": "Do it.", "input": given, "response1": r1, "response2": r2,
                **{f"annotator{i}": v for i, v in enumerate(votes, 1)}}

    rows = [row((1, 1, 2)), row((2, 0, 2)), row((0, 0, 1), given="with this input"), row((0, 1, 2)),  # all differ
            row((1, 1, 1), r2=42), row((1, 1, 1), r1=["a list"]), row((1, 3, 1))]
    bench = load_benchmark("pandalm", write(tmp_path / "pandalm.json", rows, array=True))
    assert [p.label for p in bench.items] == ["A", "B", "tie"]
    assert bench.items[2].a.instruction == "Do it.\n\nwith this input"
    assert bench.items[0].a.instruction == "Do it."
    assert bench.dropped == 1
    assert [(e.row, e.field) for e in bench.invalid] == [(5, "response2"), (6, "response1"), (7, "annotator2")]


def test_autoj_labels(tmp_path):
    rows = [{"prompt": "P", "response 1": "r1", "response 2": "r2", "label": label, "scenario": "code"}
            for label in (0, 1, 2, 3)]
    rows.append({"prompt": "P", "response 1": "", "response 2": "r2", "label": 0})  # an empty answer: a pair
    rows.append({"prompt": "P", "response 2": "r2", "label": 0})  # a missing one: invalid
    bench = load_benchmark("autoj", write(tmp_path / "autoj.jsonl", rows))
    assert [p.label for p in bench.items] == ["A", "B", "tie", "A"]
    assert (bench.items[0].a.response, bench.items[0].b.response) == ("r1", "r2")
    assert (bench.items[3].a.response, bench.items[3].b.response) == ("", "r2")
    assert [(e.row, e.field) for e in bench.invalid] == [(4, "label"), (6, "response 1")]
    assert str(bench.invalid[1]).endswith("row 6, field 'response 1': is missing")


# Each documented format, one row whose second response is empty (or blank) and one whose
# second response is missing: (benchmark, good row, bad row, the bad field's name).
EMPTY_SIDE = {
    "hhh": ({"chosen_instruction": prompt("Q", "an answer"), "rejected_instruction": prompt("Q", "")},
            {"chosen_instruction": prompt("Q", "an answer")}, "rejected_instruction"),
    "judgelm": ({"question_body": "Q", "answer1_body": "an answer", "answer2_body": "", "score": [7, 1]},
                {"question_body": "Q", "answer1_body": "an answer", "score": [7, 1]}, "answer2_body"),
    "pandalm": ({"instruction": "Q", "input": "", "response1": "an answer", "response2": "  \n",
                 "annotator1": 1, "annotator2": 1, "annotator3": 1},
                {"instruction": "Q", "input": "", "response1": "an answer", "annotator1": 1, "annotator2": 1,
                 "annotator3": 1}, "response2"),
    "autoj": ({"prompt": "Q", "response 1": "an answer", "response 2": "", "label": 0},
              {"prompt": "Q", "response 1": "an answer", "label": 0}, "response 2"),
}


@pytest.mark.parametrize("name", sorted(EMPTY_SIDE))
def test_a_pair_with_an_empty_answer_is_scored_and_a_missing_one_is_invalid(tmp_path, name):
    """An empty or blank answer is the worst answer, not a bad row: the pair is counted and
    scored (length gets it right); a missing answer is invalid, named by the file's field."""
    good, bad, field = EMPTY_SIDE[name]
    bench = load_benchmark(name, write(tmp_path / f"{name}.jsonl", [good, bad]))
    assert len(bench.items) == 1 and bench.items[0].a.response == "an answer"
    assert not bench.items[0].b.response.strip()
    assert [(e.row, e.field) for e in bench.invalid] == [(2, field)]
    assert str(bench.invalid[0]).endswith(f"row 2, field '{field}': is missing")
    lengths = [float(len(r.response)) for r in bench.records()]
    assert benchmark_metrics(bench, lengths)["accuracy"] == 1.0


@pytest.mark.parametrize("response", ["", "   "])
def test_an_absolute_row_with_an_empty_answer_is_scored(tmp_path, response):
    rows = [{"instruction": prompt("Say hi.", "hi"), "gpt4_score": [4, 4, 5]},
            {"instruction": prompt("Say hi.", response), "gpt4_score": [1, 1, 1]},
            {"instruction": prompt("Say hi.", "hello").replace("###Response to evaluate:\nhello\n\n", ""),
             "gpt4_score": [3, 3, 3]}]  # no response section at all: missing
    bench = load_benchmark("vicuna", write(tmp_path / "vicuna.json", rows, array=True))
    assert [(r.response, r.score) for r in bench.items] == [("hi", pytest.approx(13 / 3)), ("", 1.0)]
    assert [str(e) for e in bench.invalid] == [f"{bench.source}, row 3, field 'instruction (its ###Response to "
                                               "evaluate: section)': is missing"]


def test_malformed_json_line_is_invalid_not_a_crash(tmp_path):
    path = write(tmp_path / "autoj.jsonl", [{"prompt": "P", "response 1": "a", "response 2": "b", "label": 0}, "{oops",
                                            {"prompt": "P", "response 1": "a", "response 2": "b", "label": 1}])
    bench = load_benchmark("autoj", path)
    assert len(bench.items) == 2 and [e.row for e in bench.invalid] == [2]


def test_rubric_free_and_reference_free(tmp_path):
    rows = [{"instruction": prompt("Q", "A"), "gpt4_score": [3]}]
    path = write(tmp_path / "v.json", rows, array=True)
    full = load_benchmark("vicuna", path).items[0]
    assert full.rubric is not None and full.reference_answer is not None
    bare = load_benchmark("vicuna", path, rubric_free=True, reference_free=True).items[0]
    assert bare.rubric is None and bare.reference_answer is None and bare.response == "A"
    pair_row = {"chosen_instruction": prompt("Q", "a"), "rejected_instruction": prompt("Q", "b")}
    pairs = write(tmp_path / "hhh.json", [pair_row], array=True)
    pair = load_benchmark("hhh", pairs, rubric_free=True).items[0]
    assert pair.a.rubric is None and pair.b.rubric is None and pair.a.reference_answer == "The best answer."


def test_unknown_benchmark():
    with pytest.raises(KeyError, match="known:"):
        load_benchmark("nope", "x.json")


# -- metrics -------------------------------------------------------------------------------------
def test_absolute_metrics_match_scipy():
    gen = torch.Generator().manual_seed(0)
    targets = (torch.randint(1, 6, (50,), generator=gen).double() + torch.rand(50, generator=gen).double().round()).tolist()
    predictions = [t + float(e) for t, e in zip(targets, torch.randn(50, generator=gen))]
    predictions[3] = predictions[4]  # a tie in the ranks
    m = absolute_metrics(predictions, targets)
    p, t = torch.tensor(predictions), torch.tensor(targets)
    assert m["n"] == 50 and m["no_score"] == 0
    assert m["pearson"] == pytest.approx(stats.pearsonr(predictions, targets)[0], abs=1e-9)
    assert m["spearman"] == pytest.approx(stats.spearmanr(predictions, targets)[0], abs=1e-6)
    assert m["kendall"] == pytest.approx(stats.kendalltau(predictions, targets)[0], abs=1e-6)
    assert m["mae"] == pytest.approx(float((p - t).abs().mean()), rel=1e-6)
    assert m["mse"] == pytest.approx(float(((p - t) ** 2).mean()), rel=1e-6)
    assert m["r2"] == pytest.approx(1 - float(((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum()), rel=1e-6)


def test_absolute_metrics_leave_out_missing_scores_and_undefined_figures():
    m = absolute_metrics([1.0, None, 3.0, float("nan"), 2.0], [1.0, 5.0, 3.0, 4.0, 2.5])
    assert m["n"] == 3 and m["no_score"] == 2
    assert m["pearson"] == pytest.approx(stats.pearsonr([1, 3, 2], [1, 3, 2.5])[0])
    constant = absolute_metrics([3.0, 3.0, 3.0], [1.0, 2.0, 3.0])
    assert constant["pearson"] is None and constant["mae"] == pytest.approx(1.0)
    assert json.dumps(constant)  # no NaN in the JSON
    assert absolute_metrics([1.0], [1.0])["pearson"] is None


def test_pair_accuracy_strict_convention():
    labels = ["A", "B", "A", "A", "tie", "B"]
    a = [4.0, 2.0, 3.0, None, 3.0, 1.0]
    b = [3.0, 3.0, 3.0, 2.0, 3.5, 4.0]
    m = pair_metrics(labels, a, b, tie_margin=0.0)
    # right: pairs 1, 2, 6; pair 3 is a predicted tie (wrong), pair 4 has no score (wrong); the tie pair is left out
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(3 / 5)
    assert m["ties"] == 1 and m["predicted_ties"] == 1 and m["no_score"] == 1
    assert "left out" in m["convention"]


def test_pair_accuracy_with_ties_uses_the_margin():
    labels = ["A", "tie", "tie", "B"]
    a, b = [4.0, 3.0, 3.25, 2.0], [3.0, 3.0, 3.0, 2.125]
    exact = pair_metrics(labels, a, b, tie_margin=0.0)
    assert exact["accuracy"] == 1.0 and exact["n"] == 2  # strict: the two tie labels are left out
    assert exact["accuracy_with_ties"] == pytest.approx(3 / 4)  # pair 3 differs by 0.25 > 0
    margin = pair_metrics(labels, a, b, tie_margin=0.25)
    assert margin["accuracy_with_ties"] == pytest.approx(3 / 4)  # pair 3 now a tie, but pair 4 (0.125) too
    assert margin["accuracy"] == 1.0  # the strict figure ignores the margin
    assert margin["n_with_ties"] == 4 and margin["tie_margin"] == 0.25


def test_no_with_ties_figure_without_tie_labels():
    m = pair_metrics(["A", "B"], [2.0, 1.0], [1.0, 2.0], tie_margin=0.5)
    assert m["accuracy"] == 1.0 and m["ties"] == 0 and "accuracy_with_ties" not in m


def test_benchmark_metrics_counts_invalid_and_dropped(tmp_path):
    rows = [{"instruction": "I", "input": "", "response1": "a", "response2": "bb", "annotator1": 2, "annotator2": 2,
             "annotator3": 1},
            {"instruction": "I", "input": "", "response1": "a", "response2": "b", "annotator1": 0, "annotator2": 1,
             "annotator3": 2},
            {"instruction": "I", "input": "", "response1": 1, "response2": "b", "annotator1": 1, "annotator2": 1,
             "annotator3": 1}]
    bench = load_benchmark("pandalm", write(tmp_path / "p.json", rows, array=True))
    m = benchmark_metrics(bench, [1.0, 2.0])
    assert (m["n"], m["accuracy"], m["invalid"], m["dropped"]) == (1, 1.0, 1, 1)
    with pytest.raises(ValueError):
        benchmark_metrics(bench, [1.0])
    assert not math.isnan(m["accuracy"])
