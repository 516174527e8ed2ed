"""The human-labelled training formats: TruthfulQA labels and references, LLMEval2, GSM8K, HaluEval.

Rows written here in each file's layout, and, where ``../shared/data/train`` is present, the
first rows of the real files.
"""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from conftest import write_jsonl
from datamodules.formats import detect_format
from datamodules.formats.truthfulqa import PAIRS_PER_QUESTION
from datamodules.records import Pair, Record, RecordError
from datamodules.sources import load_items
from phudge_lightning.data.summary import summarize

TRAIN = Path(__file__).resolve().parents[2] / "shared/data/train"


def labelled(question, answer, truthful, informative=True):
    return {"question": question, "answer": answer, "truthful": truthful, "informative": informative}


MOON = "What is the moon made of?"
LABELS = [
    labelled(MOON, "Mostly silicate rock.", True),
    labelled(MOON, "Green cheese.", False),
    labelled(MOON, "I have no comment.", True, False),
    labelled(MOON, "Iron and ice, entirely.", False),
    labelled("How many legs has a spider?", "Eight.", True),
    labelled("How many legs has a spider?", "Six.", False),
    labelled("How many legs has a spider?", "Ten.", None),  # unlabelled: dropped
]


def test_truthfulqa_labels_pair_answers_to_one_question(tmp_path):
    path = tmp_path / "labels.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(row) + "\n" for row in LABELS)
    stats = {}
    items, errors, dropped = load_items(str(path), stats=stats)
    assert stats == {"format": "truthfulqa_labels", "rows": 7} and errors == [] and dropped == 1
    assert all(isinstance(p, Pair) and p.preference == 1.0 for p in items)
    got = {(p.a.response, p.b.response) for p in items}
    # truthful over untruthful (the hedge too), and the informative truth over the hedge
    assert got == {("Mostly silicate rock.", "Green cheese."), ("Mostly silicate rock.", "Iron and ice, entirely."),
                   ("I have no comment.", "Green cheese."), ("I have no comment.", "Iron and ice, entirely."),
                   ("Mostly silicate rock.", "I have no comment."), ("Eight.", "Six.")}
    assert all(p.a.instruction == p.b.instruction for p in items)


def test_truthfulqa_labels_cap_the_pairs_of_one_question(tmp_path):
    rows = [labelled(MOON, f"True answer {i}.", True) for i in range(5)] + \
           [labelled(MOON, f"False answer {i}.", False) for i in range(5)]
    items, _, _ = load_items(str(write_jsonl(tmp_path / "many.jsonl", rows)))
    assert len(items) == PAIRS_PER_QUESTION < 25
    again, _, _ = load_items(str(write_jsonl(tmp_path / "again.jsonl", rows)))
    assert [(p.a.response, p.b.response) for p in items] == [(p.a.response, p.b.response) for p in again]


def test_truthfulqa_labels_bad_label_names_row_and_field(tmp_path):
    rows = [LABELS[0], {**LABELS[1], "truthful": "yes"}]
    with pytest.raises(RecordError, match=r"row 2, field 'truthful': must be true, false or null"):
        load_items(str(write_jsonl(tmp_path / "bad.jsonl", rows)))


def test_truthfulqa_references_pair_correct_with_incorrect(tmp_path):
    row = {"question": MOON, "best_answer": "Rock.", "correct_answers": ["Rock.", "Silicate rock."],
           "incorrect_answers": ["Cheese.", "Ice.", "Gas."], "category": "Science"}
    items, _, _ = load_items(str(write_jsonl(tmp_path / "refs.jsonl", [row])))
    assert [(p.a.response, p.b.response) for p in items] == [("Rock.", "Cheese."), ("Silicate rock.", "Ice."), ("Rock.", "Gas.")]
    assert items[0].a.extra["category"] == "Science"
    with pytest.raises(RecordError, match=r"row 1, field 'incorrect_answers'"):
        load_items(str(write_jsonl(tmp_path / "bad.jsonl", [{**row, "incorrect_answers": []}])))


def test_llmeval2_verdicts_and_ties(tmp_path):
    base = {"query": "Summarise: the cat sat.", "response1": "A cat sat.", "response2": "Dogs bark.", "dataset": "shp"}
    rows = [{**base, "human": "model1"}, {**base, "human": "model2"}, {**base, "human": "TIE"}]
    items, _, _ = load_items(str(write_jsonl(tmp_path / "llm.jsonl", rows)))
    assert [p.label for p in items] == ["A", "B", "tie"] and items[0].a.extra["dataset"] == "shp"
    with pytest.raises(RecordError, match=r"row 1, field 'human': must be one of model1, model2, TIE"):
        load_items(str(write_jsonl(tmp_path / "bad.jsonl", [{**base, "human": "both"}])))


def test_gsm8k_correct_solutions_over_incorrect(tmp_path):
    row = {"question": "2 + 3?", "ground_truth": "2 + 3 = 5\nA: 5",
           "solutions": [{"model": "m1", "solution": "A: 5", "is_correct": True},
                         {"model": "m2", "solution": "A: 6", "is_correct": False},
                         {"model": "m3", "solution": "A: 7", "is_correct": False}]}
    all_right = {**row, "solutions": [row["solutions"][0]]}
    items, _, dropped = load_items(str(write_jsonl(tmp_path / "gsm.jsonl", [row, all_right])))
    assert dropped == 1  # no incorrect solution: nothing to compare
    pairs = {(p.a.extra["model"], p.b.extra["model"]) for p in items}
    assert pairs == set(itertools.product(("person", "m1"), ("m2", "m3")))
    bad = {**row, "solutions": [{"solution": "A: 5"}]}
    with pytest.raises(RecordError, match=r"row 1, field 'solutions\[0\]'"):
        load_items(str(write_jsonl(tmp_path / "bad.jsonl", [bad])))


def test_halueval_reads_absolute_scores(tmp_path):
    rows = [{"query": "Who wrote Hamlet?", "response": "Shakespeare.", "hallucination": False},
            {"query": "Who wrote Hamlet?", "response": "Dickens, in 1950.", "hallucination": True}]
    items, _, _ = load_items(str(write_jsonl(tmp_path / "halu.jsonl", rows)))
    assert all(isinstance(r, Record) for r in items) and items[0].score > items[1].score
    with pytest.raises(RecordError, match=r"row 1, field 'hallucination'"):
        load_items(str(write_jsonl(tmp_path / "bad.jsonl", [{**rows[0], "hallucination": "no"}])))


REAL = {"truthfulqa_human_labels.jsonl.gz": "truthfulqa_labels", "truthfulqa_reference_answers.jsonl": "truthfulqa_references",
        "llmeval2_human_pairs.jsonl": "llmeval2", "gsm8k_model_solutions.jsonl": "gsm8k_solutions",
        "halueval_general.jsonl": "halueval"}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_are_detected_and_read(name, tmp_path):
    path = TRAIN / name
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [json.loads(line) for line in itertools.islice(f, 300)]
    assert {detect_format(row) for row in rows} == {REAL[name]}
    sample = write_jsonl(tmp_path / "sample.jsonl", rows)
    result, errors = summarize(str(sample), backbone=None)
    assert errors == [] and result["format"] == REAL[name] and result["rows"] == len(rows) and result["valid"] > 0
    if REAL[name] != "halueval":
        assert result["pairs"] == result["valid"] and 0.2 < result["longer_preferred"] < 0.8
