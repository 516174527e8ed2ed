"""The hub preference sets by name: each layout read from small local files written in it
(JSON lines and parquet, as ``datasets`` hands the hub's rows over), and ``configs/hub``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from datamodules.formats import FORMATS, detect_format
from datamodules.records import RecordError
from datamodules.sources import load_items

REPO = Path(__file__).resolve().parents[1]
RUBRIC = {"orig_criteria": "Is it kind?", **{f"orig_score{i}_description": f"level {i}" for i in range(1, 6)}}


def msgs(*turns):
    return [{"role": role, "content": text} for role, text in zip(("user", "assistant") * 3, turns)]


# One row per layout, as the datasets' real columns have it: (format, row, expected pair).
LAYOUTS = {
    "Anthropic/hh-rlhf": ("hh_rlhf", {
        "chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Boil it for nine minutes.",
        "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: No."},
        ("Human: How do I boil an egg?", "Boil it for nine minutes.", "No.", "A")),
    "stanfordnlp/SHP": ("shp", {
        "post_id": "qt3nxl", "domain": "askculinary_train", "upvote_ratio": 0.99, "history": "Why rest a steak?",
        "c_root_id_A": "a1", "c_root_id_B": "b1", "created_at_utc_A": 1, "created_at_utc_B": 2, "score_A": 3,
        "score_B": 52, "human_ref_A": "No idea.", "human_ref_B": "So the juices settle.", "labels": 0,
        "seconds_difference": 3.0, "score_ratio": 17.3},
        ("Why rest a steak?", "No idea.", "So the juices settle.", "B")),
    "argilla/ultrafeedback-binarized-preferences-cleaned": ("chosen_rejected", {
        "source": "evol_instruct", "prompt": "Write a haiku about rain.",
        "chosen": msgs("Write a haiku about rain.", "Soft rain on the roof"), "chosen-rating": 5.0,
        "chosen-model": "gpt-4", "rejected": msgs("Write a haiku about rain.", "Rain."), "rejected-rating": 2.0,
        "rejected-model": "alpaca-7b"},
        ("Write a haiku about rain.", "Soft rain on the roof", "Rain.", "A")),
    "Skywork/Skywork-Reward-Preference-80K-v0.2": ("chosen_rejected", {
        "chosen": msgs("Hi", "Hello! How can I help?", "Sum 2 and 2", "4"),
        "rejected": msgs("Hi", "Hello! How can I help?", "Sum 2 and 2", "5"), "source": "magpie_ultra"},
        ("User: Hi\n\nAssistant: Hello! How can I help?\n\nUser: Sum 2 and 2", "4", "5", "A")),
    "prometheus-eval/Preference-Collection": ("preference_collection", {
        "orig_instruction": "Comfort a friend.", "orig_response_A": "Cheer up.", "orig_response_B": "I'm here for you.",
        "orig_reference_answer": "I'm so sorry; I'm here.", **RUBRIC, "orig_score_A": "2", "orig_score_B": "5",
        "orig_preference": "B", "orig_feedback_A": "Curt.", "orig_feedback_B": "Warm.",
        "instruction": "...", "output": "..."},
        ("Comfort a friend.", "Cheer up.", "I'm here for you.", "B")),
}


def write(tmp_path, rows, suffix):
    path = tmp_path / f"rows{suffix}"
    if suffix == ".parquet":
        import datasets

        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("name", LAYOUTS)
def test_each_layout_is_read_by_its_format_and_detected(tmp_path, name, suffix):
    fmt, row, (instruction, a, b, label) = LAYOUTS[name]
    path = write(tmp_path, [row], suffix)
    for format in (fmt, "auto"):
        (pair,), errors, _ = load_items(str(path), format=format)
        assert (pair.instruction, pair.a.response, pair.b.response, pair.label) == (instruction, a, b, label)
        assert pair.a.instruction == pair.b.instruction and not errors
    assert detect_format(row) == fmt


def test_plain_text_prompt_chosen_rejected(tmp_path):
    path = write(tmp_path, [{"prompt": "Name a fruit.", "chosen": "An apple.", "rejected": "A car."}], ".jsonl")
    (pair,), _, _ = load_items(str(path), format="chosen_rejected")
    assert (pair.instruction, pair.a.response, pair.b.response, pair.label) == ("Name a fruit.", "An apple.", "A car.", "A")


def test_ultrafeedback_keeps_ratings_and_models():
    (pair,) = [FORMATS["chosen_rejected"].parse(LAYOUTS["argilla/ultrafeedback-binarized-preferences-cleaned"][1], "f", 1)]
    assert pair.a.extra["chosen-rating"] == 5.0 and pair.a.extra["rejected-model"] == "alpaca-7b"


def test_preference_collection_keeps_rubric_reference_and_feedback():
    pair = FORMATS["preference_collection"].parse(LAYOUTS["prometheus-eval/Preference-Collection"][1], "f", 1)
    assert pair.a.rubric == pair.b.rubric == {"criteria": "Is it kind?", **{f"score{i}_description": f"level {i}" for i in range(1, 6)}}
    assert pair.a.reference_answer == "I'm so sorry; I'm here." and (pair.a.feedback, pair.b.feedback) == ("Curt.", "Warm.")
    no_preference = {k: v for k, v in LAYOUTS["prometheus-eval/Preference-Collection"][1].items() if k != "orig_preference"}
    assert FORMATS["preference_collection"].parse(no_preference, "f", 1).label == "B"  # from the scores, 2 < 5


@pytest.mark.parametrize("fmt, row, field", [
    ("shp", {"history": "q", "human_ref_A": "a", "human_ref_B": "b", "labels": 2}, "labels"),
    ("shp", {"history": "q", "human_ref_A": 3, "human_ref_B": "b", "labels": 1}, "human_ref_A"),
    ("chosen_rejected", {"chosen": msgs("q", "a"), "rejected": msgs("other q", "b")}, "rejected"),
    ("chosen_rejected", {"chosen": [{"role": "user", "content": "q"}], "rejected": msgs("q", "b")}, "chosen"),
    ("chosen_rejected", {"chosen": msgs("q", "a"), "rejected": [{"role": "user"}]}, r"rejected\[0\]"),
    ("preference_collection", {"orig_instruction": "q", "orig_response_A": "a", "orig_response_B": "b",
                               "orig_preference": "C"}, "orig_preference"),
    ("preference_collection", {"orig_instruction": "q", "orig_response_A": "a", "orig_response_B": "b",
                               "orig_preference": "A", **{**RUBRIC, "orig_criteria": None}}, "orig_criteria"),
])
def test_bad_rows_name_the_file_row_and_field(tmp_path, fmt, row, field):
    path = write(tmp_path, [row], ".jsonl")
    with pytest.raises(RecordError, match=rf"rows.jsonl, row 1, field '{field}'"):
        load_items(str(path), format=fmt)


HUB = sorted((REPO / "configs/hub").glob("*.yaml"))


def test_every_hub_dataset_has_a_config():
    named = {source["data"] for path in HUB for source in yaml.safe_load(path.read_text())["data"]["sources"]}
    assert set(LAYOUTS) <= named


@pytest.mark.parametrize("path", HUB, ids=lambda p: p.name)
def test_hub_configs_name_a_dataset_read_by_a_tested_format(tmp_path, path):
    for source in yaml.safe_load(path.read_text())["data"]["sources"]:
        assert source["format"] in FORMATS, f"{path.name}: unknown format {source['format']!r}"
        if source["data"] in LAYOUTS:
            fmt, row, expected = LAYOUTS[source["data"]]
            assert source["format"] == fmt
            (pair,), _, _ = load_items(str(write(tmp_path, [row], ".parquet")), format=source["format"],
                                       split=source.get("split"))
            assert pair.label == expected[3]
