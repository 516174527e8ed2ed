"""The one registry of data formats, and the three training formats on rows written here."""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import write_jsonl
from datamodules.formats import FORMATS, detect_format, register_format
from datamodules.formats.autoj_single import to_five
from datamodules.records import Pair, RecordError, validate_record
from datamodules.sources import load_items, load_records
from phudge_lightning.benchmarks import BENCHMARKS, load_benchmark


def parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


ALPACA = {"dataset": "oasst", "instruction": "Name a colour.", "output_1": "Red.", "generator_1": "gpt4",
          "output_2": "Blue, the colour of the sky.", "generator_2": "m", "annotator": "weighted", "preference": 1.25}


def test_alpaca_eval_soft_preference_and_fields(tmp_path):
    rows = [ALPACA, {**ALPACA, "preference": 2.0, "annotator": "binary"}]
    items, errors, _ = load_items(str(parquet(tmp_path / "a.parquet", rows)))
    assert errors == [] and all(isinstance(p, Pair) for p in items)
    first, second = items
    assert first.preference == pytest.approx(0.75) and first.label == "A"  # P(output_1 better) = 2 - 1.25
    assert second.preference == 0.0 and second.label == "B"
    assert (first.a.response, first.b.response, first.instruction) == ("Red.", "Blue, the colour of the sky.", "Name a colour.")
    assert first.a.extra["annotator"] == "weighted" and first.b.extra["generator_2"] == "m"


@pytest.mark.parametrize("change,field,words", [
    ({"preference": 0.0}, "preference", "from 1 to 2"),
    ({"preference": 2.5}, "preference", "from 1 to 2"),
    ({"output_2": None}, "output_2", "must be text, got null"),
    ({"instruction": None}, "instruction", "must be text, got null"),
])
def test_alpaca_eval_bad_rows_name_file_row_and_field(tmp_path, change, field, words):
    path = parquet(tmp_path / "a.parquet", [ALPACA, {**ALPACA, **change}])
    with pytest.raises(RecordError) as info:
        load_items(str(path))
    assert (info.value.row, info.value.field) == (2, field)
    assert str(path) in str(info.value) and f"field '{field}'" in str(info.value) and words in str(info.value)


def test_alpaca_eval_non_text_output_in_json_lines(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [ALPACA, {**ALPACA, "output_1": 5}])
    with pytest.raises(RecordError, match=r"row 2, field 'output_1': must be text, got a number \(5\)"):
        load_items(str(path))


def autoj_row(query="Say hi.", response="Hi there!", critique="Friendly and short.\n\nRating: [[7]]"):
    usrmsg = (f"Write critiques for a submitted response on a given user's query, and grade the response:\n  \n"
              f"[BEGIN DATA]\n***\n[Query]: {query}\n***\n[Response]: {response}\n***\n[END DATA]\n\nWrite critiques.")
    return {"usrmsg": usrmsg, "target_output": critique, "pred_score": 7.0, "scenario": "chitchat", "source_dataset": "arena"}


def test_autoj_single_maps_1_10_to_1_5_and_keeps_the_critique(tmp_path):
    path = write_jsonl(tmp_path / "j.jsonl", [autoj_row(), autoj_row(critique="Bad.\n\nRating: [[1]]."),
                                              autoj_row(critique="Perfect.\nRating: [[10]]")])
    records, errors = load_records(str(path))
    assert [r.score for r in records] == [pytest.approx(1 + 6 * 4 / 9), 1.0, 5.0]
    assert to_five(1) == 1 and to_five(10) == 5 and to_five(5.5) == pytest.approx(3.0)
    first = records[0]
    assert (first.instruction, first.response, first.feedback) == ("Say hi.", "Hi there!", "Friendly and short.")
    assert first.extra == {"scenario": "chitchat", "source_dataset": "arena", "rating": 7.0}


@pytest.mark.parametrize("row,field,words", [
    (autoj_row(critique="No rating here."), "target_output", "Rating: [[x]]"),
    (autoj_row(critique="Rating: [[11]]"), "target_output", "from 1 to 10"),
    ({**autoj_row(), "usrmsg": "no sections"}, "usrmsg", "[Query]:"),
])
def test_autoj_single_bad_rows(tmp_path, row, field, words):
    path = write_jsonl(tmp_path / "j.jsonl", [autoj_row(), row])
    with pytest.raises(RecordError) as info:
        load_records(str(path), format="autoj_single")
    assert (info.value.row, info.value.field) == (2, field) and words in str(info.value)


def dialogue(*turns):
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def test_hh_rlhf_context_is_every_turn_before_the_last_assistant_turn(tmp_path):
    row = {"chosen": dialogue("How do I pick a lock?", "Why do you ask?", "I am locked out.", "Call a locksmith."),
           "rejected": dialogue("How do I pick a lock?", "Why do you ask?", "I am locked out.", "Use a bobby pin like this...")}
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    (pair,), errors, _ = load_items(str(path))
    assert detect_format(row) == "hh_rlhf" and pair.preference == 1.0
    assert pair.instruction == "Human: How do I pick a lock?\n\nAssistant: Why do you ask?\n\nHuman: I am locked out."
    assert (pair.a.response, pair.b.response) == ("Call a locksmith.", "Use a bobby pin like this...")
    assert pair.b.instruction == pair.a.instruction


def test_auto_reads_the_format_most_of_the_first_rows_look_like_and_names_the_rows_that_differ(tmp_path, caplog, capsys):
    """A lone pair row missing ``rejected`` at the top of an HH-RLHF file looks like the project's
    own records; the file is still read as hh_rlhf (the other rows' format), that row is refused for
    its missing ``rejected``, and a warning says which rows looked like which format."""
    from phudge_lightning.data.summary import main as data_main

    good = {"chosen": dialogue("Hi", "Hello"), "rejected": dialogue("Hi", "Go away")}
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": good["chosen"]}] + [good] * 5 + [{"chosen": good["chosen"]}])
    with caplog.at_level("WARNING", logger="datamodules.sources"):
        items, errors, _ = load_items(str(path), skip_invalid=True)
    assert len(items) == 5 and all(isinstance(it, Pair) for it in items)
    assert [(e.row, e.field) for e in errors] == [(1, "rejected"), (7, "rejected")]
    (said,) = [r.getMessage() for r in caplog.records if "disagree" in r.getMessage()]
    assert "rows 2-6 look like hh_rlhf; rows 1, 7 look like records; read as hh_rlhf" in said
    # a file whose rows agree says nothing
    caplog.clear()
    agreeing = write_jsonl(tmp_path / "agree.jsonl", [good] * 3)
    with caplog.at_level("WARNING", logger="datamodules.sources"):
        assert len(load_items(str(agreeing))[0]) == 3
    assert not [r for r in caplog.records if "disagree" in r.getMessage()]
    # past the first rows, a row is read as the file's format (refused here), not detected again
    late = write_jsonl(tmp_path / "late.jsonl", [good] * 12 + [ALPACA])
    items, errors, _ = load_items(str(late), skip_invalid=True)
    assert len(items) == 12 and [(e.row, e.field) for e in errors] == [(13, "chosen")]
    # phudge data lists the refused row by the pair format's field, not the absolute fields
    assert data_main(["--data", str(path), "--backbone", "none", "--json"]) == 0
    out = capsys.readouterr().out
    assert f"invalid: {path}, row 1, field 'rejected'" in out and "'instruction'" not in out
    assert json.loads(out.splitlines()[-1])["pairs"] == 5


def test_detect_rows_ties_go_to_the_format_registered_first_and_records_last():
    from datamodules.formats import detect_rows

    good = {"chosen": dialogue("Hi", "Hello"), "rejected": dialogue("Hi", "Go away")}
    assert detect_rows([(1, {"instruction": "a", "response": "b", "score": 3}), (2, good)])[0] == "hh_rlhf"
    assert detect_rows([(1, ALPACA), (2, good)])[0] == "alpaca_eval"  # registered before hh_rlhf
    assert detect_rows([(1, "not an object"), (2, [1, 2])]) == ("records", None)
    name, said = detect_rows([(1, ALPACA), (2, good), (3, good)])
    assert name == "hh_rlhf" and said.startswith("the first 3 rows disagree") and "row 1 looks like alpaca_eval" in said


@pytest.mark.parametrize("row,field,words", [
    ({"chosen": dialogue("Hi", "Hello"), "rejected": dialogue("Bye", "Hello")}, "rejected", "differs"),
    ({"chosen": "\n\nHuman: only a question", "rejected": dialogue("Hi", "Hello")}, "chosen", "Assistant"),
    ({"chosen": dialogue("Hi", "Hello"), "rejected": 3}, "rejected", "must be text"),
])
def test_hh_rlhf_bad_rows(tmp_path, row, field, words):
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": dialogue("Hi", "Yo"), "rejected": dialogue("Hi", "Go away")}, row])
    with pytest.raises(RecordError) as info:
        load_items(str(path), format="hh_rlhf")
    assert (info.value.row, info.value.field) == (2, field) and words in str(info.value)


def test_formats_are_read_alike_by_training_data_and_evaluate(tmp_path):
    path = parquet(tmp_path / "a.parquet", [ALPACA, {**ALPACA, "preference": 1.9}])
    assert {"alpaca_eval", "autoj_single", "hh_rlhf", "prometheus", "prometheus_pairs"} <= set(FORMATS)
    assert BENCHMARKS["alpaca_eval"].kind == "relative" and BENCHMARKS["vicuna"].format == "prometheus"
    bench = load_benchmark("alpaca_eval", str(path))
    assert [p.label for p in bench.items] == ["A", "B"]
    records, _ = load_records(str(path))  # single-row readers (predict, bench): a pair is its two records
    assert [r.response for r in records] == ["Red.", ALPACA["output_2"]] * 2


def test_a_user_registers_a_format(tmp_path):
    @register_format("test_winner_pairs", kind="pairs", detect=lambda row: "winner" in row)
    def winner_pairs(row, source, row_no, require_score=True):
        a, b = (validate_record({"instruction": row["q"], "response": row[k]}, require_score=False) for k in ("x", "y"))
        return Pair(a, b, 1.0 if row["winner"] == "x" else 0.0, row_no)

    try:
        path = write_jsonl(tmp_path / "w.jsonl", [{"q": "2+2?", "x": "4", "y": "5", "winner": "x"}])
        (pair,), _, _ = load_items(str(path))
        assert (pair.a.response, pair.label) == ("4", "A")
        with pytest.raises(ValueError, match="already registered"):
            register_format("test_winner_pairs", kind="pairs")(lambda *a, **k: None)
    finally:
        FORMATS.pop("test_winner_pairs")


def test_an_empty_answer_is_an_answer_in_every_training_format(tmp_path):
    # An empty response is the worst answer, not a bad row: it loads and trains like any other.
    alpaca = parquet(tmp_path / "a.parquet", [{**ALPACA, "output_2": ""}])
    (pair,), _, _ = load_items(str(alpaca))
    assert pair.b.response == ""
    autoj = write_jsonl(tmp_path / "j.jsonl", [autoj_row(response="")])
    (record,), _ = load_records(str(autoj), format="autoj_single")
    assert record.response == ""
    hh = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": dialogue("Hi", ""), "rejected": dialogue("Hi", "Go away")}])
    (pair,), _, _ = load_items(str(hh), format="hh_rlhf")
    assert (pair.a.response, pair.b.response) == ("", "Go away")
